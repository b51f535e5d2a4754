"""`pravah dev`: developer commands that need a source checkout.

`pravah dev cluster up` starts the same cluster the integration tests use
(pravah.localcluster) in the background and leaves it running: a Kubernetes control plane
built from source, real kubelets on containerd and runc, PostgreSQL and an S3 server, with
Pravah's images built from the Dockerfile and installed by `kubectl apply -k`; `down`
stops it, `status` shows it.

`pravah dev up` is that cluster made ready to use on any Linux machine without Docker:
namespace `default` prepared for PravahJobs, its `datasets` and `results` volumes
(examples/data copied in), and a user who may manage PravahJobs for the REST API.
`pravah dev down` stops all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

CHECKOUT = Path(__file__).resolve().parents[2]


def _state_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "pravah" / "dev"
    return Path(os.environ.get("PRAVAH_STATE") or default).expanduser()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _daemon_pid(state: Path) -> int | None:
    try:
        pid = int((state / "daemon.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _info(state: Path) -> dict | None:
    try:
        return json.loads((state / "platform.json").read_text())
    except (OSError, ValueError):
        return None


def _print_info(info: dict) -> None:
    s3 = info["s3"]
    click.echo(f"kubeconfig:  {info['kubeconfig']}")
    click.echo(f"API server:  {info['server']}")
    if info.get("kubectl"):
        click.echo(f"kubectl:     {info['kubectl']}")
    click.echo(f"nodes:       {', '.join(info['nodes'])}  (kubelets on containerd; pod logs: kubectl logs)")
    click.echo(f"PostgreSQL:  {info['postgres_dsn']}")
    click.echo(f"S3 ({s3['kind']}): {s3['endpoint']}  access key {s3['access_key']}  "
               f"secret key {s3['secret_key']}  region {s3['region']}")
    click.echo("")
    click.echo(f"export KUBECONFIG={info['kubeconfig']}")
    if info.get("kubectl"):
        click.echo(f"export PATH={Path(info['kubectl']).parent}:$PATH")
    click.echo(f"export AWS_ENDPOINT_URL={s3['endpoint']} AWS_ACCESS_KEY_ID={s3['access_key']} "
               f"AWS_SECRET_ACCESS_KEY={s3['secret_key']} AWS_DEFAULT_REGION={s3['region']}")
    click.echo(f"export PRAVAH_DATABASE_URL={info['postgres_dsn']}")


@click.group()
def dev() -> None:
    """Developer tools (need a source checkout)."""


@dev.group()
def cluster() -> None:
    """A local cluster: control plane, real nodes, PostgreSQL, S3, Pravah installed."""


@cluster.command("up")
@click.option("--timeout", default=900, show_default=True,
              help="Seconds to wait for the cluster (the first start builds the images).")
def cluster_up(timeout: int) -> None:
    """Start the platform in the background and print how to reach it."""
    _print_info(_platform_up(timeout))


def _platform_up(timeout: int) -> dict:
    """Start the platform daemon unless it runs; its connection details."""
    from pravah import localcluster

    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    pid = _daemon_pid(state)
    if pid is not None:
        info = _info(state)
        if info:
            click.echo(f"already running (pid {pid}); state in {state}", err=True)
            return info
        raise click.ClickException(f"a platform daemon (pid {pid}) is starting or stuck; "
                                   "run `pravah dev cluster down` first")
    try:
        localcluster.k8s_bin_dir()
    except localcluster.PlatformError:
        # A fresh machine: build Kubernetes, etcd and MinIO (once, cached in ~/.cache/pravah)
        # and install PostgreSQL, containerd, runc, CNI plugins and buildah, as `make test` does.
        prereqs = CHECKOUT / "scripts" / "platform-prereqs"
        click.echo(f"the platform binaries are not built yet: running {prereqs.relative_to(CHECKOUT)} "
                   "(once per machine; a cold build takes about ten minutes) ...", err=True)
        if subprocess.run([str(prereqs)], cwd=str(CHECKOUT)).returncode != 0:
            raise click.ClickException("scripts/platform-prereqs failed; see its messages above") from None
        try:
            localcluster.k8s_bin_dir()
        except localcluster.PlatformError as e:
            raise click.ClickException(str(e)) from None

    log_path = state / "daemon.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pravah.localcluster", "serve", "--state", str(state)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=str(state), env=env, start_new_session=True,
        )
    (state / "daemon.pid").write_text(str(proc.pid))
    click.echo(f"starting the platform (pid {proc.pid}, log {log_path}) ...", err=True)
    t0 = time.monotonic()
    while True:
        info = _info(state)
        if info is not None:
            break
        if proc.poll() is not None:
            (state / "daemon.pid").unlink(missing_ok=True)
            raise click.ClickException(
                f"the platform did not start (exit code {proc.returncode}):\n{localcluster.procs.tail(log_path, 30)}")
        if time.monotonic() - t0 > timeout:
            proc.send_signal(signal.SIGTERM)
            raise click.ClickException(
                f"the platform did not start within {timeout}s:\n{localcluster.procs.tail(log_path, 30)}")
        time.sleep(0.3)
    click.echo(f"platform up in {time.monotonic() - t0:.1f}s; state in {state}", err=True)
    return info


@cluster.command("down")
@click.option("--timeout", default=60, show_default=True, help="Seconds to wait before killing it.")
def cluster_down(timeout: int) -> None:
    """Stop the platform and everything it started."""
    _platform_down(timeout)


def _platform_down(timeout: int) -> None:
    state = _state_dir()
    pid = _daemon_pid(state)
    if pid is None:
        click.echo("not running")
        (state / "daemon.pid").unlink(missing_ok=True)
        (state / "platform.json").unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        click.echo(f"the daemon (pid {pid}) did not stop in {timeout}s; killed it", err=True)
    (state / "daemon.pid").unlink(missing_ok=True)
    (state / "platform.json").unlink(missing_ok=True)
    click.echo("stopped")


@cluster.command("status")
def cluster_status() -> None:
    """Show whether the platform is running and whether each part is healthy."""
    state = _state_dir()
    pid = _daemon_pid(state)
    info = _info(state)
    if pid is None or info is None:
        click.echo("not running" if pid is None else f"starting (pid {pid})")
        if pid is None:
            sys.exit(3)
        return
    click.echo(f"running (pid {pid}) since {info.get('started')}; state in {state}")
    healthy = True
    kubectl = info.get("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, f"--kubeconfig={info['kubeconfig']}", "get", "--raw", "/readyz"],
                           capture_output=True, text=True, timeout=15, check=False)
        ok = r.returncode == 0
        healthy &= ok
        click.echo(f"  kube-apiserver /readyz: {'ok' if ok else (r.stderr.strip() or r.stdout.strip())}")
        r = subprocess.run([kubectl, f"--kubeconfig={info['kubeconfig']}", "get", "nodes", "--no-headers"],
                           capture_output=True, text=True, timeout=15, check=False)
        for line in r.stdout.splitlines():
            click.echo(f"  node {line.split()[0]}: {line.split()[1]}")
    import socket
    from urllib.parse import urlparse

    for name, url in (("PostgreSQL", info["postgres_dsn"]), ("S3", info["s3"]["endpoint"])):
        u = urlparse(url)
        try:
            socket.create_connection((u.hostname, u.port), timeout=3).close()
            click.echo(f"  {name}: ok ({url})")
        except OSError as e:
            healthy = False
            click.echo(f"  {name}: unreachable ({e})")
    if not healthy:
        sys.exit(1)


# -- the whole local stack: the cluster made ready for PravahJobs (pravah dev up / down) -----

STACK_NAMESPACE = "default"
SYSTEM_NAMESPACE = "pravah-system"
DEV_USER = "pravah-dev-user"
EXAMPLES = CHECKOUT / "examples"


def _stack(state: Path) -> dict | None:
    try:
        return json.loads((state / "stack.json").read_text())
    except (OSError, ValueError):
        return None


def _kubectl(info: dict, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([info["kubectl"], f"--kubeconfig={info['kubeconfig']}", *args], input=input,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise click.ClickException(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def _prepare_namespace(info: dict) -> None:
    """What a namespace that runs PravahJobs needs (manifests/base/rbac/runner.yaml), and a
    user who may manage PravahJobs there (for the REST API, which acts as its caller)."""
    import yaml

    from pravah.localcluster import install

    install.prepare_namespace(_ClusterCli(info), STACK_NAMESPACE)
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEV_USER, "namespace": STACK_NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "pravahjob-editor", "namespace": STACK_NAMESPACE},
         "rules": [{"apiGroups": ["pravah.io"], "resources": ["pravahjobs"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": DEV_USER, "namespace": STACK_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pravahjob-editor"},
         "subjects": [{"kind": "ServiceAccount", "name": DEV_USER, "namespace": STACK_NAMESPACE}]},
    ]
    _kubectl(info, "apply", "-f", "-", input=yaml.safe_dump_all(docs))


class _ClusterCli:
    """The `kubectl` of a running cluster, shaped like ControlPlane.kubectl for install.py."""

    def __init__(self, info: dict) -> None:
        self.info = info

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        return _kubectl(self.info, *args, input=input, check=check)


def _bind_volume(info: dict, state: Path, claim: str) -> Path:
    """A hostPath PersistentVolume pre-bound to `claim` in the stack namespace: every node is
    this machine, so each sees the same directory."""
    import yaml

    local = state / "volumes" / claim
    local.mkdir(parents=True, exist_ok=True)
    local.chmod(0o777)  # runners write as uid 10001
    pv_name = f"{STACK_NAMESPACE}-{claim}"
    docs = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(local), "type": "Directory"},
                  "claimRef": {"namespace": STACK_NAMESPACE, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": claim, "namespace": STACK_NAMESPACE},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                  "resources": {"requests": {"storage": "10Gi"}}}},
    ]
    _kubectl(info, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    _wait(lambda: json.loads(_kubectl(info, "get", "pvc", claim, "-n", STACK_NAMESPACE, "-o", "json").stdout)
          .get("status", {}).get("phase") == "Bound", 60, f"claim {claim} to be Bound")
    return local


def _api_url(info: dict) -> str:
    """The REST API's Service address (kube-proxy routes it from this machine too)."""
    service = json.loads(_kubectl(info, "get", "service", "pravah-api", "-n", SYSTEM_NAMESPACE, "-o", "json").stdout)
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def _print_stack(info: dict, stack: dict) -> None:
    bin_dir = Path(sys.executable).parent
    click.echo(f"kubeconfig:  {info['kubeconfig']}   (admin)")
    click.echo(f"API server:  {info['server']}")
    click.echo(f"kubectl:     {info['kubectl']}")
    click.echo(f"nodes:       {', '.join(info['nodes'])}  (kubelets on containerd)")
    for key, image in info.get("images", {}).items():
        click.echo(f"image:       {image['image']}  ({image['size'] / 1e6:.0f} MB)  [{key}]")
    click.echo(f"PostgreSQL:  {info['postgres_dsn']}")
    s3 = info["s3"]
    click.echo(f"S3 ({s3['kind']}): {s3['endpoint']}  access key {s3['access_key']}  secret key {s3['secret_key']}")
    click.echo(f"operator:    deployment/pravah-operator in {SYSTEM_NAMESPACE}  "
               f"(kubectl -n {SYSTEM_NAMESPACE} logs deploy/pravah-operator)")
    click.echo(f"REST API:    {stack['api']}  (docs {stack['api']}/docs)")
    click.echo(f"volumes:     datasets -> {stack['volumes']['datasets']}  (examples/data copied to data/)")
    click.echo(f"             results  -> {stack['volumes']['results']}")
    click.echo("")
    click.echo(f"export KUBECONFIG={info['kubeconfig']} PATH={Path(info['kubectl']).parent}:{bin_dir}:$PATH")
    click.echo(f"kubectl apply -f {EXAMPLES / 'stats-volume.yaml'}")
    click.echo("kubectl get pj -w")
    click.echo(f"TOKEN=$(kubectl create token {DEV_USER}); curl -H \"Authorization: Bearer $TOKEN\" {stack['api']}/jobs")
    click.echo("pravah dev down      # stops everything")


@dev.command()
@click.option("--timeout", default=900, show_default=True,
              help="Seconds to wait for the cluster (the first start builds the images).")
def up(timeout: int) -> None:
    """Start the local cluster with Pravah installed, ready for the examples.

    Prints the kubeconfig and the URLs; then `kubectl apply -f examples/stats-volume.yaml`
    runs a PravahJob in real containers. State and logs go to $PRAVAH_STATE (default
    ~/.local/state/pravah/dev).
    """
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    existing = _stack(state)
    info = _info(state)
    if existing and info and _daemon_pid(state) is not None:
        click.echo(f"already running; state in {state}", err=True)
        _print_stack(info, existing)
        return
    info = _platform_up(timeout)
    click.echo(f"preparing namespace {STACK_NAMESPACE} and its volumes ...", err=True)
    _prepare_namespace(info)
    volumes = {claim: _bind_volume(info, state, claim) for claim in ("datasets", "results")}
    shutil.copytree(EXAMPLES / "data", volumes["datasets"] / "data", dirs_exist_ok=True)
    stack = {"volumes": {k: str(v) for k, v in volumes.items()}, "api": _api_url(info)}
    (state / "stack.json").write_text(json.dumps(stack, indent=2))
    _print_stack(info, stack)


@dev.command()
@click.option("--timeout", default=60, show_default=True, help="Seconds to wait for the cluster to stop.")
def down(timeout: int) -> None:
    """Stop the cluster: Pravah, every pod, the nodes, the control plane, PostgreSQL and S3."""
    state = _state_dir()
    (state / "stack.json").unlink(missing_ok=True)
    _platform_down(timeout)


@dev.command()
def status() -> None:
    """Show whether the stack runs and how to reach it."""
    state = _state_dir()
    stack, info = _stack(state), _info(state)
    if not stack or not info:
        click.echo("not running")
        sys.exit(3)
    _print_stack(info, stack)
