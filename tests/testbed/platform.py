"""The whole test platform: control plane, node agent, PostgreSQL and S3, started together.

Used by the pytest fixtures (tests/conftest.py) and by `pravah dev cluster up`, which runs
``python -m testbed.platform serve --state DIR`` as a background daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .bins import build_info
from .controlplane import ControlPlane
from .nodeagent import NodeSpec, pod_log
from .postgres import Postgres
from .procs import PlatformError, Proc, wait_until
from .s3 import S3Server

TESTS_DIR = Path(__file__).resolve().parents[1]
DEFAULT_NODES = (
    NodeSpec("node-a", cpu="2", memory="8Gi"),
    NodeSpec("node-b", cpu="4", memory="16Gi"),
)


class NodeAgentProcess:
    """Runs testbed.nodeagent as its own process against a control plane."""

    def __init__(self, control_plane: ControlPlane, state_dir: Path,
                 nodes: tuple[NodeSpec, ...] = DEFAULT_NODES, pvc_root: Path | None = None) -> None:
        self.cp = control_plane
        self.state = Path(state_dir)
        self.nodes = tuple(nodes)
        self.pvc_root = Path(pvc_root) if pvc_root else self.state / "pvc"
        self.proc: Proc | None = None

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def start(self, timeout: float = 30) -> NodeAgentProcess:
        self.state.mkdir(parents=True, exist_ok=True)
        ready = self.state / "agent.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-c", "import sys; from testbed.nodeagent import main; main(sys.argv[1:])",
                "--kubeconfig", str(self.cp.kubeconfig),
                "--state", str(self.state), "--pvc-root", str(self.pvc_root),
                "--ready-file", str(ready)]
        for n in self.nodes:
            argv += ["--node", n.to_arg()]
        version = build_info(self.cp.bin_dir).get("kubernetes") if self.cp.bin_dir else None
        if version:
            argv += ["--kubelet-version", version]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = Proc("node-agent", argv, self.state / "node-agent.log", env=env).start()
        wait_until(ready.exists, timeout, "the node agent to register its nodes", procs=[self.proc])
        wait_until(self.nodes_ready, timeout, f"nodes {', '.join(self.node_names)} to be Ready",
                   interval=0.3, procs=[self.proc])
        return self

    def nodes_ready(self) -> bool:
        r = self.cp.kubectl("get", "nodes", "-o", "json", check=False, timeout=10)
        if r.returncode != 0:
            return False
        items = {i["metadata"]["name"]: i for i in json.loads(r.stdout)["items"]}
        for name in self.node_names:
            node = items.get(name)
            if node is None:
                return False
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True":
                return False
        return True

    def pod_log(self, namespace: str, name: str) -> str:
        """What the pod's process wrote (stdout and stderr)."""
        return pod_log(self.state, namespace, name)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=20)


class Platform:
    """Everything the integration tests need, in one directory."""

    def __init__(self, workdir: Path | str, nodes: tuple[NodeSpec, ...] = DEFAULT_NODES,
                 s3_kind: str | None = None) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control_plane = ControlPlane(self.dir / "control-plane")
        self.node_agent = NodeAgentProcess(self.control_plane, self.dir / "node-agent", nodes)
        self.postgres = Postgres(self.dir / "postgres")
        self.s3 = S3Server(self.dir / "s3", kind=s3_kind)
        self.timings: dict[str, float] = {}

    def start(self) -> Platform:
        t0 = time.monotonic()

        def timed(name, fn):
            t = time.monotonic()
            fn()
            self.timings[name] = time.monotonic() - t

        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {
                "postgres": pool.submit(timed, "postgres", self.postgres.start),
                "s3": pool.submit(timed, "s3", self.s3.start),
                "control plane": pool.submit(timed, "control plane", self.control_plane.start),
            }
            errors = []
            for name, f in futures.items():
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - all failures reported together
                    errors.append(f"{name}: {e}")
        if errors:
            self.stop()
            raise PlatformError("the test platform did not start:\n" + "\n".join(errors))
        try:
            timed("node agent", self.node_agent.start)
        except Exception:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        for stop in (self.node_agent.stop, self.control_plane.stop, self.s3.stop, self.postgres.destroy):
            with contextlib.suppress(Exception):
                stop()

    def info(self) -> dict[str, Any]:
        return {
            "kubeconfig": str(self.control_plane.kubeconfig),
            "server": self.control_plane.server,
            "kubectl": str(self.control_plane.bin_dir / "kubectl") if self.control_plane.bin_dir else None,
            "postgres_dsn": self.postgres.dsn(),
            "postgres_dir": str(self.postgres.dir),
            "s3": {"kind": self.s3.kind, "endpoint": self.s3.endpoint, "access_key": self.s3.access_key,
                   "secret_key": self.s3.secret_key, "region": self.s3.region},
            "nodes": [n.to_arg() for n in self.node_agent.nodes],
            "node_agent_state": str(self.node_agent.state),
            "logs": self.log_files(),
            "timings": self.timings,
        }

    def log_files(self) -> dict[str, str]:
        files = {k: str(v) for k, v in self.control_plane.log_files().items()}
        files["node-agent"] = str(self.node_agent.state / "node-agent.log")
        files["postgres"] = str(self.postgres.log_path)
        files["s3"] = str(self.s3.log_path)
        return files

    def health(self) -> dict[str, str]:
        """Part -> "ok" or what is wrong."""
        out: dict[str, str] = {}
        for name, p in self.control_plane.procs.items():
            out[name] = "ok" if p.alive() else f"exited ({p.returncode()})"
        status, body = self.control_plane.readyz(timeout=3)
        out["readyz"] = "ok" if status == 200 else f"{status}: " + " ".join(
            ln for ln in body.splitlines() if ln.startswith("[-]"))
        out["node-agent"] = "ok" if self.node_agent.proc and self.node_agent.proc.alive() else "not running"
        out["postgres"] = "ok" if self.postgres.is_ready() else "not ready"
        out["s3"] = "ok" if self.s3.proc and self.s3.proc.alive() else "not running"
        return out


# -- daemon mode (pravah dev cluster up) -------------------------------------------------

def serve(state: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    info_path = state / "platform.json"
    info_path.unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    import shutil

    shutil.rmtree(state / "run", ignore_errors=True)
    platform = Platform(state / "run")
    try:
        platform.start()
    except Exception as e:  # noqa: BLE001
        (state / "platform.error").write_text(str(e))
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    (state / "platform.error").unlink(missing_ok=True)
    info = platform.info()
    info["pid"] = os.getpid()
    info["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tmp = info_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.rename(info_path)
    print(f"platform up in {platform.timings['total']:.1f}s", flush=True)
    warned: set[str] = set()
    try:
        while not stop.wait(5):
            procs = dict(platform.control_plane.procs)
            procs["node-agent"] = platform.node_agent.proc
            procs["postgres"] = platform.postgres.proc
            procs["s3"] = platform.s3.proc
            for name, p in procs.items():
                if p is not None and not p.alive() and name not in warned:
                    warned.add(name)
                    print(f"warning: {name} exited ({p.returncode()}); see {p.log_path}",
                          file=sys.stderr, flush=True)
    finally:
        print("stopping", flush=True)
        info_path.unlink(missing_ok=True)
        platform.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed.platform")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="start the platform and keep it running until SIGTERM")
    s.add_argument("--state", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.state)
    return 2


if __name__ == "__main__":
    sys.exit(main())
