"""Compressed, NDJSON and Parquet inputs through runner pods, from a volume and from S3."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from e2e.harness import manifest_for


def sales_csv(rows: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "amount", "city"])
    for i in range(rows):
        writer.writerow([i, f"{rnd.uniform(1, 900):.2f}", rnd.choice(["Pune", "Delhi, North", ""])])
    return out.getvalue().encode()


def column(result: dict, name: str) -> dict:
    return next(c for c in result["columns"] if c["name"] == name)


def test_a_job_mixing_formats_and_codecs_profiles_every_file(cluster):
    root = cluster.datasets / "formats"
    root.mkdir(parents=True)
    plain = sales_csv(3000, seed=1)
    (root / "sales.csv.gz").write_bytes(gzip.compress(plain))
    events = [{"id": 10_000 + i, "user": {"age": 20 + i % 50}, "tags": ["a"] * (i % 3)} for i in range(2000)]
    (root / "events.ndjson.zst").write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(e) + "\n" for e in events).encode()))
    pq.write_table(pa.table({"id": list(range(20_000, 21_000)), "amount": [i / 4 for i in range(1000)]}),
                   root / "more.parquet", row_group_size=300)
    manifest = manifest_for("stats", source={"volume": {"claimName": "datasets", "path": "formats"}}, include=[],
                            output={"volume": {"claimName": "results", "path": "formats-out"}})
    cluster.apply(manifest)
    job = cluster.wait_phase(manifest["metadata"]["name"])
    result = cluster.result(job)["result"]
    assert job["status"]["errors"]["count"] == 0
    csv_rows = list(csv.DictReader(io.StringIO(plain.decode())))
    assert result["rows"] == len(csv_rows) + len(events) + 1000
    ids = column(result, "id")
    assert ids["formats"] == ["csv", "ndjson", "parquet"]
    assert (ids["count"], ids["min"], ids["max"]) == (len(csv_rows) + len(events) + 1000, 0, 20_999)
    amounts = [float(r["amount"]) for r in csv_rows] + [i / 4 for i in range(1000)]
    assert column(result, "amount")["max"] == max(amounts)
    assert column(result, "amount")["formats"] == ["csv", "parquet"]
    assert column(result, "user.age")["count"] == len(events)
    assert column(result, "tags")["jsonTypes"] == {"array": len(events)}
    assert column(result, "city")["nulls"] == sum(1 for r in csv_rows if not r["city"])


def test_compressed_objects_from_s3_are_read_decompressed(cluster, s3, bucket):
    client = boto3.client("s3", **s3.client_kwargs())
    contents = {f"logs/day-{i}.log.gz": ("".join(f"{i} request {n}\n" for n in range(500 + i))).encode()
                for i in range(4)}
    for key, content in contents.items():
        client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(content))
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    location = {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}
    manifest = manifest_for("count", source={"s3": {**location, "prefix": "logs/"}}, include=[],
                            output={"s3": {**location, "prefix": "results/logs/"}})
    manifest["metadata"]["name"] = "logs-gz"
    cluster.apply(manifest)
    job = cluster.wait_phase("logs-gz")
    result = cluster.result(job, s3)["result"]
    assert result["lines"] == sum(c.count(b"\n") for c in contents.values())
    assert result["bytes"] == sum(len(c) for c in contents.values())
    assert sorted(f["path"] for f in result["files"]) == sorted(f"s3://{bucket}/{key}" for key in contents)
