"""The whole local cluster: control plane, real nodes, PostgreSQL and S3, started together,
and Pravah installed on it from its own images.

Used by the pytest fixtures (tests/conftest.py) and by `pravah dev up`, which runs
``python -m pravah.localcluster serve --state DIR`` as a background daemon.
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

from . import install
from .controlplane import ControlPlane
from .images import Images
from .network import CLUSTER_CIDR, HOST_IP, setup_host_interface
from .nodes import DEFAULT_NODES, Nodes, NodeSpec
from .postgres import Postgres
from .procs import PlatformError
from .s3 import S3Server

PRAVAH_DATABASE = "pravah"

class Platform:
    """Everything the integration tests need, in one directory."""

    def __init__(self, workdir: Path | str, nodes: tuple[NodeSpec, ...] = DEFAULT_NODES) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.control_plane = ControlPlane(self.dir / "control-plane")
        self.images = Images(self.dir / "images.log")
        self.nodes = Nodes(self.control_plane, self.dir / "nodes", self.images, nodes)
        self.postgres = Postgres(self.dir / "postgres", pod_address=HOST_IP, pod_network=CLUSTER_CIDR)
        self.s3 = S3Server(self.dir / "s3", address=HOST_IP)
        self.timings: dict[str, float] = {}

    def start_services(self) -> None:
        """PostgreSQL (with Pravah's database), the S3 server and the control plane, at once."""
        setup_host_interface()

        def timed(name, fn):
            t = time.monotonic()
            fn()
            self.timings[name] = time.monotonic() - t

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {
                "postgres": pool.submit(timed, "postgres", self.start_postgres),
                "s3": pool.submit(timed, "s3", self.s3.start),
                "control plane": pool.submit(timed, "control plane", self.control_plane.start),
                "images": pool.submit(timed, "images", self.images.ensure),
            }
            errors = []
            for name, f in futures.items():
                try:
                    f.result()
                except Exception as e:  # noqa: BLE001 - all failures reported together
                    errors.append(f"{name}: {e}")
        if errors:
            self.stop()
            raise PlatformError("the local cluster did not start:\n" + "\n".join(errors))

    def start_postgres(self) -> None:
        self.postgres.start()
        self.postgres.create_database(PRAVAH_DATABASE)

    def start_nodes(self) -> None:
        t = time.monotonic()
        self.nodes.start()
        self.timings["nodes"] = time.monotonic() - t

    def install_pravah(self, helm: str | None = None, values: dict | None = None) -> None:
        """`kubectl apply -k` of the test overlay or, given the path of a helm client, `helm
        install` of the chart with the same settings and `values` over them."""
        where = (self.control_plane, self.images.ensure(), self.database_pod_url, self.s3.endpoint,
                 self.dir / "install")
        self.timings["install"] = (install.helm_install(*where, helm=helm, extra_values=values) if helm
                                   else install.install(*where))

    @property
    def database_pod_url(self) -> str:
        """Pravah's database as pods reach it."""
        return self.postgres.pod_dsn(PRAVAH_DATABASE)

    @property
    def database_url(self) -> str:
        """Pravah's database as this host reaches it."""
        return self.postgres.dsn(PRAVAH_DATABASE)

    def start(self, helm: str | None = None, values: dict | None = None) -> Platform:
        """Everything, with Pravah installed by kustomize, or by the helm client `helm` (see
        `install_pravah`)."""
        t0 = time.monotonic()
        self.start_services()
        try:
            self.start_nodes()
            self.install_pravah(helm, values)
        except Exception:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        for stop in (self.nodes.stop, self.control_plane.stop, self.s3.stop, self.postgres.destroy):
            with contextlib.suppress(Exception):
                stop()

    def info(self) -> dict[str, Any]:
        built = self.images.ensure()
        return {
            "kubeconfig": str(self.control_plane.kubeconfig),
            "server": self.control_plane.server,
            "kubectl": str(self.control_plane.bin_dir / "kubectl") if self.control_plane.bin_dir else None,
            "postgres_dsn": self.database_url,
            "postgres_dir": str(self.postgres.dir),
            "s3": {"kind": self.s3.kind, "endpoint": self.s3.endpoint, "access_key": self.s3.access_key,
                   "secret_key": self.s3.secret_key, "region": self.s3.region},
            "nodes": self.nodes.node_names,
            "images": {key: {"image": image.name, "size": image.size} for key, image in built.images.items()},
            "logs": {k: str(v) for k, v in self.log_files().items()},
            "timings": self.timings,
        }

    def log_files(self) -> dict[str, Path]:
        files = dict(self.control_plane.log_files())
        files.update(self.nodes.log_files())
        files["images"] = self.images.log_path
        files["postgres"] = self.postgres.log_path
        files["s3"] = self.s3.log_path
        return files

    def procs(self) -> dict[str, Any]:
        procs = dict(self.control_plane.procs)
        procs.update({p.name: p for p in self.nodes.procs()})
        procs["postgres"] = self.postgres.proc
        procs["s3"] = self.s3.proc
        return procs

    def health(self) -> dict[str, str]:
        """Part -> "ok" or what is wrong."""
        out = {name: "ok" if p is not None and p.alive() else "not running" for name, p in self.procs().items()}
        status, body = self.control_plane.readyz(timeout=3)
        out["readyz"] = "ok" if status == 200 else f"{status}: " + " ".join(
            ln for ln in body.splitlines() if ln.startswith("[-]"))
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
            for name, p in platform.procs().items():
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
    ap = argparse.ArgumentParser(prog="python -m pravah.localcluster")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="start the platform and keep it running until SIGTERM")
    s.add_argument("--state", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        return serve(args.state)
    return 2
