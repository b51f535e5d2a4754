"""An S3-compatible server as its own process on a free loopback port.

MinIO (built from its Go module by scripts/minio-bin) when its binary is available, else
moto's standalone server. `PRAVAH_S3_SERVER=minio|moto` forces one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .bins import REPO_ROOT
from .procs import PlatformError, Proc, free_ports, wait_until

MINIO_SCRIPT = REPO_ROOT / "scripts" / "minio-bin"


def minio_binary() -> Path | None:
    if not MINIO_SCRIPT.exists():
        return None
    r = subprocess.run([str(MINIO_SCRIPT), "--print"], capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0:
        return None
    p = Path(r.stdout.strip().splitlines()[-1])
    return p if os.access(p, os.X_OK) else None


class S3Server:
    """endpoint, access_key, secret_key, region; `kind` is "minio" or "moto"."""

    region = "us-east-1"

    def __init__(self, workdir: Path | str, kind: str | None = None, address: str = "127.0.0.1") -> None:
        """`address`: where it listens; the host address on the pod network lets pods reach it."""
        self.dir = Path(workdir)
        self.address = address
        self.port, self.console_port = free_ports(2)
        self.endpoint = f"http://{address}:{self.port}"
        self.log_path = self.dir / "s3.log"
        kind = kind or os.environ.get("PRAVAH_S3_SERVER")
        self.minio = None
        if kind in (None, "", "minio"):
            self.minio = minio_binary()
            if self.minio is None and kind == "minio":
                raise PlatformError("PRAVAH_S3_SERVER=minio but MinIO is not built; run scripts/minio-bin")
        elif kind != "moto":
            raise PlatformError(f"PRAVAH_S3_SERVER must be minio or moto, not {kind!r}")
        self.kind = "minio" if self.minio else "moto"
        if self.kind == "minio":
            self.access_key, self.secret_key = "pravah-admin", "pravah-secret-key"
        else:
            self.access_key, self.secret_key = "testing", "testing"
        self.proc: Proc | None = None

    def start(self, timeout: float = 30) -> S3Server:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "minio":
            env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key,
                       MINIO_BROWSER="off", MINIO_UPDATE="off", MINIO_CI_CD="1")
            argv = [str(self.minio), "server", "--quiet", "--address", f"{self.address}:{self.port}",
                    "--console-address", f"127.0.0.1:{self.console_port}", str(self.dir / "data")]
            health = f"{self.endpoint}/minio/health/live"
        else:
            env = dict(os.environ)
            argv = [sys.executable, "-m", "moto.server", "-H", self.address, "-p", str(self.port)]
            health = f"{self.endpoint}/moto-api/"
        self.proc = Proc(f"s3 ({self.kind})", argv, self.log_path, env=env, cwd=str(self.dir)).start()

        def up() -> bool:
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    return r.status < 500
            except urllib.error.HTTPError as e:
                return e.code < 500

        wait_until(up, timeout, f"the S3 server ({self.kind}) at {self.endpoint}", procs=[self.proc])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=5)

    def client_kwargs(self) -> dict:
        """Keyword arguments for boto3/aioboto3 `client("s3", **kwargs)`."""
        return {"endpoint_url": self.endpoint, "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key, "region_name": self.region}

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def log_tail(self, lines: int = 40) -> str:
        return self.proc.log_tail(lines) if self.proc else ""
