"""An S3 server as its own process on a free port: MinIO, built from its Go module by
scripts/minio-bin. There is no stand-in: without MinIO the platform does not start, so a
test never passes against something users do not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .bins import REPO_ROOT
from .procs import PlatformError, Proc, free_ports, wait_until

MINIO_SCRIPT = REPO_ROOT / "scripts" / "minio-bin"


def minio_binary() -> Path:
    """The MinIO binary that scripts/minio-bin built; PlatformError naming what is missing."""
    hint = "build it with scripts/minio-bin"
    if not MINIO_SCRIPT.exists():
        raise PlatformError(f"MinIO is missing: {MINIO_SCRIPT} does not exist")
    r = subprocess.run([str(MINIO_SCRIPT), "--print"], capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        raise PlatformError(f"MinIO is missing: the server binary is not built; {hint} "
                            f"({(r.stderr or r.stdout).strip()[-300:]})")
    path = Path(r.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        raise PlatformError(f"MinIO is missing: {path} is not an executable file; {hint}")
    return path


class S3Server:
    """endpoint, access_key, secret_key, region of a MinIO server."""

    region = "us-east-1"
    kind = "minio"
    access_key, secret_key = "pravah-admin", "pravah-secret-key"

    def __init__(self, workdir: Path | str, address: str = "127.0.0.1") -> None:
        """`address`: where it listens; the host address on the pod network lets pods reach it."""
        self.dir = Path(workdir)
        self.address = address
        self.port, self.console_port = free_ports(2)
        self.endpoint = f"http://{address}:{self.port}"
        self.log_path = self.dir / "s3.log"
        # PRAVAH_S3_DATA_DIR: where objects live; a tmpfs makes a million-object run fast.
        self.data_dir = Path(os.environ.get("PRAVAH_S3_DATA_DIR") or self.dir / "data")
        self.minio: Path | None = None  # resolved on start: the build may still be running
        self.proc: Proc | None = None

    def start(self, timeout: float = 30) -> S3Server:
        self.minio = minio_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MINIO_ROOT_USER=self.access_key, MINIO_ROOT_PASSWORD=self.secret_key,
                   MINIO_BROWSER="off", MINIO_UPDATE="off", MINIO_CI_CD="1",
                   MINIO_PROMETHEUS_AUTH_TYPE="public")  # tests count requests in its metrics
        argv = [str(self.minio), "server", "--quiet", "--address", f"{self.address}:{self.port}",
                "--console-address", f"127.0.0.1:{self.console_port}", str(self.data_dir)]
        health = f"{self.endpoint}/minio/health/live"
        self.proc = Proc("s3 (minio)", argv, self.log_path, env=env, cwd=str(self.dir)).start()

        def up() -> bool:
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    return r.status < 500
            except urllib.error.HTTPError as e:
                return e.code < 500

        wait_until(up, timeout, f"MinIO at {self.endpoint}", procs=[self.proc])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=5)

    def requests(self, bucket: str, api: str) -> int:
        """How many `api` requests (e.g. ListObjectsV2) the server has answered for `bucket`."""
        with urllib.request.urlopen(f"{self.endpoint}/minio/metrics/v3/bucket/api/{bucket}", timeout=10) as r:
            metrics = r.read().decode()
        pattern = rf'^minio_bucket_api_total{{[^}}]*bucket="{re.escape(bucket)}"[^}}]*name="{re.escape(api)}"[^}}]*}} (\S+)$'
        return sum(int(float(value)) for value in re.findall(pattern, metrics, re.MULTILINE))

    def client_kwargs(self) -> dict:
        """Keyword arguments for boto3/aioboto3 `client("s3", **kwargs)`."""
        return {"endpoint_url": self.endpoint, "aws_access_key_id": self.access_key,
                "aws_secret_access_key": self.secret_key, "region_name": self.region}

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def log_tail(self, lines: int = 40) -> str:
        return self.proc.log_tail(lines) if self.proc else ""
