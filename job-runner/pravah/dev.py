"""`pravah dev`: developer commands that need a source checkout.

`pravah dev cluster up` starts the same platform the integration tests use — a Kubernetes
control plane built from source, the test node agent, PostgreSQL and an S3 server — in the
background and leaves it running; `down` stops it, `status` shows it.

`pravah dev up` is the whole local stack on any Linux machine, no container engine needed:
the platform, then the CRD, the manifests' service accounts and RBAC, the `datasets` and
`results` volumes of namespace `default` (examples/data copied in), the operator and the
REST API as processes with their own service-account tokens. `pravah dev down` stops all.
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
TESTS_DIR = CHECKOUT / "tests"


def _state_dir() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "pravah" / "dev"
    return Path(os.environ.get("PRAVAH_STATE") or default).expanduser()


def _testbed():
    """Import the test platform from the checkout's tests/ directory."""
    if not (TESTS_DIR / "testbed" / "__init__.py").exists():
        raise click.ClickException(
            "`pravah dev` needs a source checkout of Pravah: the test platform "
            f"(tests/testbed) was not found next to the installed package ({CHECKOUT}). "
            "Clone the repository and install it with `pip install -e .`."
        )
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import testbed

    return testbed


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
    click.echo(f"nodes:       {', '.join(info['nodes'])}")
    click.echo(f"PostgreSQL:  {info['postgres_dsn']}")
    click.echo(f"S3 ({s3['kind']}): {s3['endpoint']}  access key {s3['access_key']}  "
               f"secret key {s3['secret_key']}  region {s3['region']}")
    click.echo(f"pod logs:    {info['node_agent_state']}/logs/<namespace>/<pod>.log")
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
    """A local platform: Kubernetes control plane, node agent, PostgreSQL, S3."""


@cluster.command("up")
@click.option("--timeout", default=180, show_default=True, help="Seconds to wait for the platform.")
def cluster_up(timeout: int) -> None:
    """Start the platform in the background and print how to reach it."""
    _print_info(_platform_up(timeout))


def _platform_up(timeout: int) -> dict:
    """Start the platform daemon unless it runs; its connection details."""
    testbed = _testbed()
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
        testbed.k8s_bin_dir()
    except testbed.PlatformError:
        # A fresh machine: build Kubernetes, etcd and MinIO (once, cached in ~/.cache/pravah)
        # and install PostgreSQL if missing, as `make test` does.
        prereqs = CHECKOUT / "scripts" / "platform-prereqs"
        click.echo(f"the platform binaries are not built yet: running {prereqs.relative_to(CHECKOUT)} "
                   "(once per machine; a cold build takes about ten minutes) ...", err=True)
        if subprocess.run([str(prereqs)], cwd=str(CHECKOUT)).returncode != 0:
            raise click.ClickException("scripts/platform-prereqs failed; see its messages above") from None
        try:
            testbed.k8s_bin_dir()
        except testbed.PlatformError as e:
            raise click.ClickException(str(e)) from None

    log_path = state / "daemon.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.platform", "serve", "--state", str(state)],
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
                f"the platform did not start (exit code {proc.returncode}):\n{testbed.procs.tail(log_path, 30)}")
        if time.monotonic() - t0 > timeout:
            proc.send_signal(signal.SIGTERM)
            raise click.ClickException(
                f"the platform did not start within {timeout}s:\n{testbed.procs.tail(log_path, 30)}")
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


# -- the whole local stack: platform + operator + API (pravah dev up / down) ---------------

STACK_NAMESPACE = "default"
OPERATOR_NAMESPACE = "pravah-system"
DEV_USER = "pravah-dev-user"
MANIFESTS_BASE = CHECKOUT / "manifests" / "base"
CRD_FILE = CHECKOUT / "crds" / "pravahjobs.pravah.io.yaml"
EXAMPLES = CHECKOUT / "examples"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise click.ClickException(f"{what}: the process exited ({proc.returncode}):\n{tail}")
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def _install(info: dict) -> None:
    """The CRD, and the manifests' namespace, service accounts, roles and bindings."""
    import yaml

    _kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    _kubectl(info, "wait", "--for=condition=Established", "--timeout=60s", "crd/pravahjobs.pravah.io")
    rendered = _kubectl(info, "kustomize", str(MANIFESTS_BASE)).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] in RBAC_KINDS]
    # What a namespace that runs PravahJobs needs (see manifests/base/rbac/runner.yaml), and
    # a user who may manage PravahJobs there (for the REST API, which checks the caller).
    docs += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": False,
         "metadata": {"name": "pravah-runner", "namespace": STACK_NAMESPACE}},
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
    _wait(lambda: _kubectl(info, "get", "serviceaccount", "pravah-operator", "-n", OPERATOR_NAMESPACE,
                           check=False).returncode == 0, 30, "the operator's service account")


def _bind_volume(info: dict, claim: str) -> Path:
    """A PersistentVolume on a local directory, pre-bound to `claim` in the stack namespace
    (the node agent runs pods on this machine, so a hostPath is the directory itself)."""
    import yaml

    local = Path(info["node_agent_state"]) / "pvc" / STACK_NAMESPACE / claim
    local.mkdir(parents=True, exist_ok=True)
    pv_name = f"{STACK_NAMESPACE}-{claim}"
    docs = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(local)}, "claimRef": {"namespace": STACK_NAMESPACE, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": claim, "namespace": STACK_NAMESPACE},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                  "resources": {"requests": {"storage": "10Gi"}}}},
    ]
    _kubectl(info, "apply", "-f", "-", input=yaml.safe_dump_all(docs))
    _wait(lambda: json.loads(_kubectl(info, "get", "pvc", claim, "-n", STACK_NAMESPACE, "-o", "json").stdout)
          .get("status", {}).get("phase") == "Bound", 60, f"claim {claim} to be Bound")
    return local


def _token_kubeconfig(info: dict, account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig with a TokenRequest token of `namespace/account` (not the admin's)."""
    import yaml

    token = _kubectl(info, "create", "token", account, "-n", namespace, "--duration=48h").stdout.strip()
    admin = yaml.safe_load(Path(info["kubeconfig"]).read_text())
    user = f"system:serviceaccount:{namespace}:{account}"
    config = {"apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
              "users": [{"name": user, "user": {"token": token}}],
              "contexts": [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": user}}],
              "current-context": account}
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _database(info: dict, name: str = "pravah") -> str:
    """A database of its own on the platform's PostgreSQL; its DSN."""
    import asyncio

    import asyncpg

    admin_dsn = info["postgres_dsn"]

    async def create() -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


def _spawn(name: str, argv: list[str], env: dict[str, str], state: Path) -> tuple[subprocess.Popen, Path]:
    log_path = state / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(state), env=env, start_new_session=True)
    (state / f"{name}.pid").write_text(str(proc.pid))
    return proc, log_path


def _api_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("pravah_api.main") is not None
    except ImportError:
        return False


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _stop_pid(pid: int, timeout: float) -> bool:
    """SIGTERM the process group, then SIGKILL; True if it had to be killed."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return False
        except PermissionError:
            os.kill(pid, signum)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _pid_alive(pid):
            return signum == signal.SIGKILL
    return True


def _print_stack(info: dict, stack: dict) -> None:
    bin_dir = Path(sys.executable).parent
    click.echo(f"kubeconfig:  {info['kubeconfig']}   (admin)")
    click.echo(f"API server:  {info['server']}")
    click.echo(f"kubectl:     {info['kubectl']}")
    click.echo(f"nodes:       {', '.join(info['nodes'])}")
    click.echo(f"PostgreSQL:  {stack['database_url']}")
    s3 = info["s3"]
    click.echo(f"S3 ({s3['kind']}): {s3['endpoint']}  access key {s3['access_key']}  secret key {s3['secret_key']}")
    click.echo(f"operator:    pid {stack['operator']['pid']}, metrics {stack['operator']['metrics']}, "
               f"log {stack['operator']['log']}")
    if stack.get("api"):
        click.echo(f"REST API:    {stack['api']['url']}  (docs {stack['api']['url']}/docs), pid {stack['api']['pid']}, "
                   f"log {stack['api']['log']}")
    else:
        click.echo(f"REST API:    not started: {stack.get('api_missing')}")
    click.echo(f"volumes:     datasets -> {stack['volumes']['datasets']}  (examples/data copied to data/)")
    click.echo(f"             results  -> {stack['volumes']['results']}")
    click.echo(f"pod logs:    {info['node_agent_state']}/logs/<namespace>/<pod>.log")
    click.echo("")
    click.echo(f"export KUBECONFIG={info['kubeconfig']} PATH={Path(info['kubectl']).parent}:{bin_dir}:$PATH")
    click.echo(f"kubectl apply -f {EXAMPLES / 'stats-volume.yaml'}")
    click.echo("kubectl get pj -w")
    if stack.get("api"):
        click.echo(f"TOKEN=$(kubectl create token {DEV_USER}); "
                   f"curl -H \"Authorization: Bearer $TOKEN\" {stack['api']['url']}/jobs")
    click.echo("pravah dev down      # stops everything")


@dev.command()
@click.option("--timeout", default=240, show_default=True, help="Seconds to wait for each part.")
@click.option("--api-port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port of the REST API on 127.0.0.1 (0: any free port).")
def up(timeout: int, api_port: int) -> None:
    """Start the whole stack: platform, operator and REST API, with example data.

    Prints the kubeconfig and the URLs; then `kubectl apply -f examples/stats-volume.yaml`
    runs a PravahJob as on a cluster. State and logs go to $PRAVAH_STATE (default
    ~/.local/state/pravah/dev).
    """
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    existing = _stack(state)
    if existing and _pid_alive(existing["operator"]["pid"]):
        info = _info(state)
        if info:
            click.echo(f"already running; state in {state}", err=True)
            _print_stack(info, existing)
            return
    info = _platform_up(timeout)
    if not info.get("kubectl"):
        raise click.ClickException("the platform has no kubectl; run scripts/platform-prereqs")
    click.echo("installing the CRD, service accounts and RBAC (manifests/base) ...", err=True)
    _install(info)
    volumes = {claim: _bind_volume(info, claim) for claim in ("datasets", "results")}
    shutil.copytree(EXAMPLES / "data", volumes["datasets"] / "data", dirs_exist_ok=True)
    database_url = _database(info)
    bin_dir = Path(sys.executable).parent
    base_env = {key: value for key, value in os.environ.items()
                if not key.startswith("PRAVAH_") or key == "PRAVAH_STATE"}
    base_env["PRAVAH_STATE"] = str(state)
    base_env["PYTHONUNBUFFERED"] = "1"

    metrics_port = _free_port()
    operator_env = {
        **base_env, "KUBECONFIG": str(_token_kubeconfig(info, "pravah-operator", OPERATOR_NAMESPACE,
                                                         state / "operator.kubeconfig")),
        "PRAVAH_DATABASE_URL": database_url,
        "PRAVAH_RUNNER_COMMAND": json.dumps([str(bin_dir / "pravah"), "runner"]),
        "PRAVAH_RUNNER_SERVICE_ACCOUNT": "pravah-runner", "PRAVAH_LEASE_NAMESPACE": OPERATOR_NAMESPACE,
        "PRAVAH_IDENTITY": "pravah-dev", "PRAVAH_METRICS_PORT": str(metrics_port),
        "PRAVAH_HEALTH_PORT": str(_free_port()), "PRAVAH_STATUS_INTERVAL": "1",
    }
    click.echo("starting the operator ...", err=True)
    operator, operator_log = _spawn("operator", [str(bin_dir / "pravah-operator")], operator_env, state)
    stack: dict = {"database_url": database_url, "volumes": {k: str(v) for k, v in volumes.items()},
                   "operator": {"pid": operator.pid, "log": str(operator_log),
                                "metrics": f"http://127.0.0.1:{metrics_port}/metrics"}}
    (state / "stack.json").write_text(json.dumps(stack, indent=2))
    _wait(lambda: _http_ok(stack["operator"]["metrics"]), timeout, "the operator to lead and serve /metrics",
          operator, operator_log)

    if _api_available():
        port = api_port or _free_port()
        api_env = {**base_env, "PRAVAH_KUBECONFIG": str(_token_kubeconfig(info, "pravah-api", OPERATOR_NAMESPACE,
                                                                         state / "api.kubeconfig")),
                   "PRAVAH_DATABASE_URL": database_url, "PRAVAH_API_AUTH_MODE": "kubernetes",
                   "PRAVAH_API_DEFAULT_NAMESPACE": STACK_NAMESPACE}
        argv = [str(bin_dir / "pravah-api")] if (bin_dir / "pravah-api").exists() else \
            [sys.executable, "-m", "pravah_api.main"]
        click.echo("starting the REST API ...", err=True)
        api, api_log = _spawn("api", [*argv, "--host", "127.0.0.1", "--port", str(port)], api_env, state)
        url = f"http://127.0.0.1:{port}"
        stack["api"] = {"pid": api.pid, "url": url, "log": str(api_log)}
        (state / "stack.json").write_text(json.dumps(stack, indent=2))
        _wait(lambda: _http_ok(f"{url}/healthz"), timeout, f"the REST API at {url}", api, api_log)
    else:
        stack["api_missing"] = "the pravah_api package is not importable in this environment"
        (state / "stack.json").write_text(json.dumps(stack, indent=2))
    _print_stack(info, stack)


@dev.command()
@click.option("--timeout", default=30, show_default=True, help="Seconds to wait for each process to stop.")
def down(timeout: int) -> None:
    """Stop the REST API, the operator and the platform (and every pod process it runs)."""
    state = _state_dir()
    stack = _stack(state) or {}
    for name in ("api", "operator"):
        pid = (stack.get(name) or {}).get("pid")
        if pid is None:
            try:
                pid = int((state / f"{name}.pid").read_text())
            except (OSError, ValueError):
                continue
        if _pid_alive(pid) and _stop_pid(pid, timeout):
            click.echo(f"the {name} (pid {pid}) did not stop in {timeout}s; killed it", err=True)
        (state / f"{name}.pid").unlink(missing_ok=True)
    (state / "stack.json").unlink(missing_ok=True)
    _platform_down(60)


@dev.command()
def status() -> None:
    """Show whether the stack runs and how to reach it."""
    state = _state_dir()
    stack, info = _stack(state), _info(state)
    if not stack or not info:
        click.echo("not running")
        sys.exit(3)
    for name in ("operator", "api"):
        part = stack.get(name)
        if part:
            click.echo(f"{name}: {'running' if _pid_alive(part['pid']) else 'exited'} (pid {part['pid']})")
    _print_stack(info, stack)
