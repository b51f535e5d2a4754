"""A throwaway PostgreSQL cluster (Debian's `postgresql` package) on a free loopback port."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .procs import PlatformError, Proc, free_port, wait_until

SUPERUSER = "pravah"
POD_PASSWORD = "pravah-local-cluster"  # a throwaway cluster on a private pod network


def pg_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<N>/bin (or $PRAVAH_PG_BIN)."""
    override = os.environ.get("PRAVAH_PG_BIN")
    if override:
        return Path(override)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PlatformError(
        "PostgreSQL server binaries (initdb, postgres) are not installed; run "
        "`scripts/platform-prereqs` (it installs Debian's `postgresql` package)"
    )


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: pick the `postgres` system user then."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pravah-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pravah-pg"],
                   check=True)
    return "pravah-pg"


class Postgres:
    """initdb + postgres in a temporary directory; stop()/start() keep data and port.

    Authentication is `trust` for the superuser `pravah` on loopback; the unix socket
    lives in the cluster's own directory. With `pod_address`, TCP also listens there and
    clients from the pod network log in with `POD_PASSWORD` (see :meth:`pod_dsn`).
    """

    def __init__(self, workdir: Path | str | None = None, port: int | None = None,
                 pod_address: str | None = None, pod_network: str | None = None) -> None:
        self.pod_address = pod_address
        self.pod_network = pod_network
        self.user = _run_as()
        if workdir is None or self.user is not None:
            # When running as root the data must be reachable by the postgres user, so it
            # gets its own directory under the system temp dir instead of a 0700 parent.
            workdir = tempfile.mkdtemp(prefix="pravah-pg-")
        self.dir = Path(workdir)
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log_path = self.dir / "postgres.log"
        self.port = port or free_port()
        self.bin = pg_bin_dir()
        self.proc: Proc | None = None
        self._owned_tmp = True

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def pod_dsn(self, database: str = "postgres") -> str:
        """The DSN a pod uses: the host address on the pod network, with a password."""
        if self.pod_address is None:
            raise PlatformError("this PostgreSQL does not listen on the pod network")
        return f"postgresql://{SUPERUSER}:{POD_PASSWORD}@{self.pod_address}:{self.port}/{database}"

    def _chown(self) -> None:
        if self.user is None:
            return
        pw = pwd.getpwnam(self.user)
        for root, dirs, files in os.walk(self.dir):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        self._chown()
        r = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, user=self.user, cwd=str(self.dir), check=False)
        if r.returncode != 0:
            raise PlatformError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if self.pod_network:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.pod_network} scram-sha-256\n")

    def start(self, timeout: float = 30) -> Postgres:
        if not (self.data / "PG_VERSION").exists():
            self.init()
        self.proc = Proc(
            "postgres",
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.sock), "-c", f"listen_addresses={','.join(filter(None, ['127.0.0.1', self.pod_address]))}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            self.log_path, user=self.user, cwd=str(self.dir),
        )
        if self.user is not None and not self.log_path.exists():
            self.log_path.touch()
        self.proc.start()
        wait_until(self.is_ready, timeout, f"PostgreSQL on port {self.port}", interval=0.1, procs=[self.proc])
        if self.pod_network:
            self.psql(f"ALTER ROLE {SUPERUSER} PASSWORD '{POD_PASSWORD}'")
        return self

    def is_ready(self) -> bool:
        r = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                           capture_output=True, timeout=10, check=False)
        return r.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, data is kept."""
        if self.proc is not None and self.proc.alive():
            self.proc.signal_group(signal.SIGINT)
            try:
                self.proc.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            self.proc.stop(grace=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, database: str = "postgres") -> str:
        r = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=30, check=False)
        if r.returncode != 0:
            raise PlatformError(f"psql failed: {r.stderr.strip()}")
        return r.stdout

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return self.proc.log_tail(lines) if self.proc else ""
