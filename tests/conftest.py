"""Shared fixtures: the real test platform (see tests/platform/README.md).

Session-scoped, started on first use and stopped at the end of the session:

* ``control_plane`` -> pravah.localcluster.ControlPlane: ``.kubeconfig`` (Path), ``.server``,
  ``.api_client()`` / ``await .async_api_client()`` (admin clients), ``.kubectl(*args)``.
* ``nodes`` -> pravah.localcluster.Nodes: real kubelets on containerd, ``.node_names``,
  ``.node(name).ctr(...)``. node-a gets the whole machine, node-b one CPU and 12Gi less.
* ``pravah`` -> the Platform, with Pravah installed by ``kubectl apply -k`` from its own
  images: ``.database_url`` (host), ``.database_pod_url``, ``.images``.
* ``postgres`` -> pravah.localcluster.Postgres: ``.dsn(database="postgres")``, ``.stop()``, ``.start()``.
* ``s3`` -> pravah.localcluster.S3Server: ``.endpoint``, ``.access_key``, ``.secret_key``,
  ``.region``, ``.client_kwargs()``, ``.kind``.

Per test: ``namespace`` (a fresh namespace name, deleted afterwards), ``database`` (DSN of
a fresh database, dropped afterwards), ``bucket`` (a fresh bucket name, emptied and deleted
afterwards).

A test that needs a part which cannot start fails with the reason; it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest
from pravah.localcluster import bins
from pravah.localcluster.network import setup_host_interface
from pravah.localcluster.nodes import Nodes
from pravah.localcluster.platform import Platform
from pravah.localcluster.procs import PlatformError

PLATFORM_FIXTURES = {"control_plane", "nodes", "pravah", "postgres", "s3", "namespace", "database", "bucket"}
_SUITE_START = time.monotonic()


class _Launcher:
    """Starts the parts of one Platform concurrently on first use; each fixture waits for
    its own part only, so a missing part fails only the tests that need it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.platform: Platform | None = None
        self.futures: dict[str, Future] = {}
        self.t0: float | None = None
        self.ready_at: dict[str, float] = {}

    def _run(self, name: str, fn) -> Future:
        fut: Future = Future()

        def target():
            try:
                fn()
                self.ready_at[name] = time.monotonic() - self.t0
                fut.set_result(None)
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        threading.Thread(target=target, name=f"start-{name}", daemon=True).start()
        return fut

    def ensure_started(self) -> Platform:
        with self.lock:
            if self.platform is None:
                root = Path(tempfile.mkdtemp(prefix="pravah-platform-"))
                self.platform = Platform(root)
                self.t0 = time.monotonic()
                p = self.platform
                setup_host_interface()
                cp = self._run("control_plane", p.control_plane.start)
                images = self._run("images", p.images.ensure)
                postgres = self._run("postgres", p.start_postgres)

                def nodes():
                    cp.result()
                    images.result()
                    p.start_nodes()

                def pravah():  # jobs may name the S3 server: its endpoint is in Pravah's allowlist
                    self.futures["nodes"].result()
                    postgres.result()
                    self.futures["s3"].result()
                    p.install_pravah()

                self.futures = {"control_plane": cp, "images": images, "postgres": postgres,
                                "s3": self._run("s3", p.s3.start)}
                self.futures["nodes"] = self._run("nodes", nodes)
                self.futures["pravah"] = self._run("pravah", pravah)
            return self.platform

    def wait(self, part: str, timeout: float = 900):
        """The platform, once `part` is up; fails the test naming the part that could not start."""
        p = self.ensure_started()
        try:
            self.futures[part].result(timeout=timeout)
        except PlatformError as e:
            pytest.fail(f"test platform part `{part}` could not start: {e}", pytrace=False)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"test platform part `{part}` could not start: {type(e).__name__}: {e}", pytrace=False)
        return p

    def warm_start_seconds(self) -> float | None:
        if not self.ready_at or len(self.ready_at) < len(self.futures):
            return None
        return max(self.ready_at.values())

    def stop(self) -> None:
        if self.platform is not None:
            for f in self.futures.values():
                with contextlib.suppress(Exception):
                    f.result(timeout=900)
            self.platform.stop()


_launcher = _Launcher()


@pytest.fixture(scope="session")
def _platform_session(request):
    yield _launcher
    _launcher.stop()
    keep = os.environ.get("PRAVAH_KEEP_PLATFORM") == "1" or request.session.testsfailed
    if _launcher.platform is not None and not keep:
        import shutil

        shutil.rmtree(_launcher.platform.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def control_plane(_platform_session):
    p = _platform_session.wait("control_plane")
    return p.control_plane


@pytest.fixture(scope="session")
def nodes(_platform_session) -> Nodes:
    return _platform_session.wait("nodes").nodes


@pytest.fixture(scope="session")
def pravah(_platform_session) -> Platform:
    return _platform_session.wait("pravah")


@pytest.fixture(scope="session")
def postgres(_platform_session):
    return _platform_session.wait("postgres").postgres


@pytest.fixture(scope="session")
def s3(_platform_session):
    return _platform_session.wait("s3").s3


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "t"


@pytest.fixture
def namespace(request, control_plane) -> str:
    """A fresh namespace (with its `default` service account ready); deleted afterwards."""
    name = f"{_slug(request.node.name, 40)}-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30
    while control_plane.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"the `default` service account never appeared in namespace {name}", pytrace=False)
        time.sleep(0.2)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def database(request, postgres) -> str:
    """DSN of a fresh, empty database; dropped afterwards."""
    name = f"t_{_slug(request.node.name, 30).replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    try:
        dsn = postgres.create_database(name)
    except PlatformError as e:
        pytest.fail(f"cannot create a database: {e}", pytrace=False)
    yield dsn
    try:
        postgres.drop_database(name)
    except PlatformError:
        pass


@pytest.fixture
def bucket(request, s3) -> str:
    """A fresh, empty bucket; deleted with its objects afterwards."""
    import boto3

    client = boto3.client("s3", **s3.client_kwargs())
    name = f"{_slug(request.node.name, 40)}-{uuid.uuid4().hex[:6]}"
    client.create_bucket(Bucket=name)
    yield name

    def force(request, **_):  # MinIO removes a bucket and all its objects in one call
        request.headers["x-minio-force-delete"] = "true"

    client.meta.events.register("before-sign.s3.DeleteBucket", force)
    try:
        client.delete_bucket(Bucket=name)
    except Exception as e:  # noqa: BLE001 - clean-up must not fail the test
        print(f"could not delete bucket {name}: {e}")


# -- markers, failure logs, timings ------------------------------------------------------

REPORT = pytest.StashKey[list]()


@pytest.fixture
def report(request):
    """`report(line)`: a figure for the end of the run (timings, sizes), not an assertion."""
    lines = request.config.stash.setdefault(REPORT, [])
    return lines.append


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if "platform" in path.parts or PLATFORM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.platform)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _launcher.platform is not None and \
            PLATFORM_FIXTURES & set(getattr(item, "fixturenames", ())):
        from pravah.localcluster.procs import tail

        lines = []
        for name, path in _launcher.platform.log_files().items():
            text = tail(path, 25)
            if text:
                lines.append(f"----- {name} ({path}) -----\n{text}")
        report.sections.append(("test platform logs (last lines)", "\n".join(lines)))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _launcher.platform is None:
        return
    tr = terminalreporter
    tr.section("test platform timings")
    try:
        info = bins.build_info(bins.k8s_bin_dir())
        if info.get("build_seconds"):
            tr.write_line(f"cold build of Kubernetes {info.get('kubernetes')} + etcd {info.get('etcd')} "
                          f"(scripts/k8s-bins, once per machine): {int(info['build_seconds'])}s")
    except PlatformError:
        pass
    s3 = _launcher.platform.s3
    if s3.minio is not None:  # None when MinIO was missing: the platform did not start
        minio_info = bins.build_info(Path(s3.minio).parent)
        tr.write_line(f"cold build of MinIO (scripts/minio-bin, once per machine): "
                      f"{minio_info.get('build_seconds', '?')}s")
    tr.write_line(f"S3 server: {s3.kind} at {s3.endpoint}")
    if _launcher.futures.get("images") and _launcher.futures["images"].done() \
            and not _launcher.futures["images"].exception():
        for key, image in _launcher.platform.images.ensure().images.items():
            tr.write_line(f"image {key}: {image.name}, {image.size / 1e6:.1f} MB (OCI archive)")
    if "install" in _launcher.platform.timings:
        tr.write_line(f"kubectl apply -k to Deployments Available: {_launcher.platform.timings['install']:.1f}s")
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(_launcher.ready_at.items(), key=lambda kv: kv[1]))
    warm = _launcher.warm_start_seconds()
    if warm is not None:
        tr.write_line(f"warm start of the whole platform: {warm:.1f}s ({parts})")
    elif parts:
        tr.write_line(f"platform parts ready after: {parts}")
    for line in config.stash.get(REPORT, []):
        tr.write_line(line)
    tr.write_line(f"suite: {time.monotonic() - _SUITE_START:.1f}s")
    if _launcher.platform.dir.exists():
        tr.write_line(f"platform files and logs kept in {_launcher.platform.dir}")
