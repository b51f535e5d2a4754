"""`pravah dev`: developer commands that need a source checkout.

`pravah dev cluster up` starts the same platform the integration tests use — a Kubernetes
control plane built from source, the test node agent, PostgreSQL and an S3 server — in the
background and leaves it running; `down` stops it, `status` shows it.
"""

from __future__ import annotations

import json
import os
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


@cluster.command()
@click.option("--timeout", default=180, show_default=True, help="Seconds to wait for the platform.")
def up(timeout: int) -> None:
    """Start the platform in the background and print how to reach it."""
    testbed = _testbed()
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    pid = _daemon_pid(state)
    if pid is not None:
        info = _info(state)
        if info:
            click.echo(f"already running (pid {pid}); state in {state}")
            _print_info(info)
            return
        raise click.ClickException(f"a platform daemon (pid {pid}) is starting or stuck; "
                                   "run `pravah dev cluster down` first")
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
    click.echo(f"up in {time.monotonic() - t0:.1f}s; state in {state}", err=True)
    _print_info(info)


@cluster.command()
@click.option("--timeout", default=60, show_default=True, help="Seconds to wait before killing it.")
def down(timeout: int) -> None:
    """Stop the platform and everything it started."""
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


@cluster.command()
def status() -> None:
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
                           capture_output=True, text=True, timeout=15)
        ok = r.returncode == 0
        healthy &= ok
        click.echo(f"  kube-apiserver /readyz: {'ok' if ok else (r.stderr.strip() or r.stdout.strip())}")
        r = subprocess.run([kubectl, f"--kubeconfig={info['kubeconfig']}", "get", "nodes", "--no-headers"],
                           capture_output=True, text=True, timeout=15)
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
