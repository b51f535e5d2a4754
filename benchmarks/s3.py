"""`stats` over an S3 prefix: Pravah reading the objects in place vs DuckDB's httpfs.

Starts a MinIO server of its own (the binary the test platform builds, in
~/.cache/pravah/minio-*/bin) on a free loopback port with a temporary data
directory, uploads the big CSV set of benchmarks/data (made by gen.py), and
times each tool once over the same objects with the same threads; Pravah over
the same files on local disk is the reference for what S3 costs. DuckDB reads
`s3://` only with its httpfs extension, downloaded on first use: without a
network, name an extension file of the same DuckDB version with --httpfs (the
`duckdb-ext-httpfs` package has one); when none loads, its row says why.

    .venv/bin/python benchmarks/s3.py --scale 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

import gen
from worker import duckdb_stats_sql
from workloads import STATS

USER, SECRET, REGION = "pravahbench", "pravahbench-secret", "us-east-1"
BUCKET = "bench"


def minio_binary() -> Path:
    found = sorted(Path.home().glob(".cache/pravah/minio-*/bin/minio"))
    if not found:
        raise SystemExit("no MinIO binary under ~/.cache/pravah (the test platform builds it: make setup)")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_minio(data: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MINIO_ROOT_USER": USER, "MINIO_ROOT_PASSWORD": SECRET}
    proc = subprocess.Popen([str(minio_binary()), "server", "--quiet", "--address", f"127.0.0.1:{port}",
                             "--console-address", f"127.0.0.1:{free_port()}", str(data)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=1):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("MinIO did not start")


def upload(endpoint: str, files: list[Path], root: Path) -> int:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=USER, aws_secret_access_key=SECRET,
                          region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    for path in files:
        client.upload_file(str(path), BUCKET, str(path.relative_to(root)))
    return sum(path.stat().st_size for path in files)


def pravah(root: str, threads: int, settings: dict[str, str] | None = None) -> tuple[float, int]:
    """Pravah's stats over the CSVs under `root`: a local directory, or with `settings` an S3 prefix."""
    import pravah_engine

    source = {} if settings is None else {"s3": settings}
    started = time.perf_counter()
    files, errors = pravah_engine.scan(root, ["*.csv"], [], **source)
    run = pravah_engine.start("stats", json.dumps(STATS), files, threads, root=root, **source)
    document = json.loads(pravah_engine.finalize("stats", run.wait()))
    seconds = time.perf_counter() - started
    assert not errors and not document["errors"], (errors, document["errors"])
    return seconds, document["result"]["rows"]


def duckdb(endpoint: str, threads: int, httpfs: str) -> tuple[float, int] | str:
    """DuckDB's time and rows, or why it cannot read s3://."""
    import duckdb as ddb

    con = ddb.connect()
    try:
        con.execute(f"LOAD '{httpfs}'")
    except Exception as exc:  # noqa: BLE001 - the reason is the row's text
        return f"httpfs extension unavailable: {str(exc).splitlines()[0]}"
    con.execute(f"SET threads = {threads}")
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID '{USER}', SECRET '{SECRET}', REGION '{REGION}', "
                f"ENDPOINT '{endpoint.removeprefix('http://')}', URL_STYLE 'path', USE_SSL false)")
    started = time.perf_counter()
    rows = con.execute(duckdb_stats_sql(f"read_csv('s3://{BUCKET}/big/*.csv')")).fetchone()[0]
    return time.perf_counter() - started, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.1, help="size of the big set (1 = 1.5 GB)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data-dir", type=Path, default=gen.DEFAULT_DATA_DIR)
    ap.add_argument("--httpfs", default="httpfs", help="DuckDB's httpfs extension: its name or a file")
    args = ap.parse_args()
    root = gen.ensure(args.data_dir, gen.Params.for_scale(args.scale), ["big"])
    files = gen.files_of(root, "big")
    with tempfile.TemporaryDirectory(prefix="pravah-bench-minio-") as data:
        proc, endpoint = start_minio(Path(data))
        try:
            size = upload(endpoint, files, root)
            print(f"{len(files)} objects, {size / 1e6:.0f} MB, MinIO at {endpoint}, {args.threads} threads")
            local, _ = pravah(str(root / "big"), args.threads)
            print(f"pravah stats local  {local:8.2f} s  {size / local / 1e6:7.0f} MB/s")
            settings = {"endpoint": endpoint, "region": REGION, "access_key_id": USER, "secret_access_key": SECRET}
            mine, rows = pravah(f"s3://{BUCKET}/big/", args.threads, settings)
            print(f"pravah stats s3://  {mine:8.2f} s  {size / mine / 1e6:7.0f} MB/s  {rows} rows")
            theirs = duckdb(endpoint, args.threads, args.httpfs)
            if isinstance(theirs, str):
                print(f"duckdb read_csv('s3://...'): {theirs}")
            else:
                print(f"duckdb httpfs       {theirs[0]:8.2f} s  {size / theirs[0] / 1e6:7.0f} MB/s  {theirs[1]} rows")
                print(f"ratio duckdb / pravah: {theirs[0] / mine:.2f}x")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
