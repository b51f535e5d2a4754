"""`pravah run s3://bucket/prefix/`: the engine lists the objects and reads them in place by
ranged GETs, with nothing copied to local disk.

Expected values come from Python reading the same bytes (csv, gzip, json, hashlib,
pyarrow), never from the engine."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import threading
import uuid
from typing import Any

import aiohttp
import boto3
import pravah_engine
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from aiohttp import web
from click.testing import CliRunner
from pravah.cli import cli
from pravah.local import LocalJob, execute
from pravah.pipeline import Objects, engine_source
from pravah.spec import OperationSpec, PravahJobSpec
from pravah.storage import Source

ROWS = 3000
LISTED = 1100  # more than one ListObjectsV2 page (1,000 keys)
ODD_KEYS = ["odd/with space.csv", "odd/plus+sign.csv", "odd/per%cent.csv", "odd/ünï©ødé €.csv", "odd/a=b&c;d.csv"]


def client(s3):
    return boto3.client("s3", **s3.client_kwargs())


def objects(s3, bucket: str, prefix: str) -> Objects:
    return Objects(f"s3://{bucket}/{prefix}", endpoint=s3.endpoint, region=s3.region,
                   credentials={"access_key_id": s3.access_key, "secret_access_key": s3.secret_key})


def run(s3, bucket: str, prefix: str, operation: dict[str, Any], **job: Any) -> dict[str, Any]:
    spec = OperationSpec.model_validate(operation)
    return execute(LocalJob(root=objects(s3, bucket, prefix), operation=spec, threads=2, **job))


def csv_text(rows: int, seed: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["n", "s"])
    for i in range(rows):
        writer.writerow([(i * 7919 + seed) % 100_003 - 50_000, f"v{i % 97},\"q\""])
    return out.getvalue().encode()


def the_data() -> dict[str, bytes]:
    """One object per format; the gzip object is big enough to be read in several ranges."""
    table = pa.table({"n": pa.array(range(-5, ROWS - 5), pa.int64()), "s": [f"p{i % 13}" for i in range(ROWS)]})
    parquet = io.BytesIO()
    pq.write_table(table, parquet, row_group_size=700)
    ndjson = "".join(json.dumps({"n": i * 3 - 100, "s": f"j{i}"}) + "\n" for i in range(ROWS)).encode()
    return {"mixed/a.csv": csv_text(ROWS, 1), "mixed/b.csv.gz": gzip.compress(csv_text(40 * ROWS, 2), 1),
            "mixed/c.ndjson": ndjson, "mixed/d.parquet": parquet.getvalue()}


def put(s3, bucket: str, data: dict[str, bytes]) -> None:
    c = client(s3)
    for key, body in data.items():
        c.put_object(Bucket=bucket, Key=key, Body=body)


def content(key: str, stored: bytes) -> bytes:
    return gzip.decompress(stored) if key.endswith(".gz") else stored


def expected_column(key: str, stored: bytes) -> tuple[int, list[int]]:
    """Rows and the `n` values of one object, read by Python."""
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(stored))
        return table.num_rows, table.column("n").to_pylist()
    text = content(key, stored).decode()
    if key.endswith(".ndjson"):
        values = [json.loads(line)["n"] for line in text.splitlines()]
        return len(values), values
    rows = list(csv.DictReader(io.StringIO(text)))
    return len(rows), [int(row["n"]) for row in rows]


def test_count_checksum_and_stats_read_csv_gzip_ndjson_and_parquet_objects(s3, bucket):
    data = the_data()
    put(s3, bucket, data)
    url = lambda key: f"s3://{bucket}/{key}"  # noqa: E731

    counted = run(s3, bucket, "mixed/", {"type": "count"})
    assert counted["errors"] == []
    by_path = {f["path"]: f for f in counted["result"]["files"]}
    assert sorted(by_path) == sorted(url(key) for key in data)
    for key, stored in data.items():
        if key.endswith(".parquet"):
            assert by_path[url(key)]["rows"] == pq.read_metadata(io.BytesIO(stored)).num_rows
        else:
            assert by_path[url(key)]["lines"] == content(key, stored).count(b"\n"), key

    digests = run(s3, bucket, "mixed/", {"type": "checksum", "checksum": {"algorithm": "sha256"}})
    assert {f["path"]: f["digest"] for f in digests["result"]["files"]} == \
        {url(key): hashlib.sha256(stored).hexdigest() for key, stored in data.items()}

    for key, stored in data.items():
        stats = run(s3, bucket, key, {"type": "stats"})
        assert stats["errors"] == [], key
        rows, values = expected_column(key, stored)
        column = next(c for c in stats["result"]["columns"] if c["name"] == "n")
        assert (stats["result"]["rows"], column["count"], column["min"], column["max"]) == \
            (rows, len(values), min(values), max(values)), key


def test_a_listing_of_more_than_one_page_is_read_whole(s3, bucket):
    data = {f"many/{i:05d}.txt": b"x\n" * (i % 5 + 1) for i in range(LISTED)}
    data["other/0.txt"] = b"not under the prefix\n"
    put(s3, bucket, data)
    env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    out = CliRunner().invoke(cli, ["run", f"s3://{bucket}/many/", "--op", "count", "--endpoint", s3.endpoint,
                                   "--region", s3.region, "--include", "*.txt", "--json"], env=env)
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)["result"]
    assert len(result["files"]) == LISTED
    assert result["lines"] == sum(body.count(b"\n") for key, body in data.items() if key.startswith("many/"))


def test_keys_that_need_url_escaping_are_read_and_named_as_stored(s3, bucket, tmp_path):
    data = {key: csv_text(50 + i, i) for i, key in enumerate(ODD_KEYS)}
    put(s3, bucket, data)
    digests = run(s3, bucket, "odd", {"type": "checksum"})
    assert digests["errors"] == []
    assert {f["path"]: f["digest"] for f in digests["result"]["files"]} == \
        {f"s3://{bucket}/{key}": hashlib.sha256(body).hexdigest() for key, body in data.items()}

    converted = run(s3, bucket, "odd", {"type": "convert"}, output_dir=tmp_path / "out")
    assert converted["errors"] == []
    outputs = {o["source"]: o["path"] for o in converted["result"]["outputs"]}
    for key, body in data.items():
        written = pq.read_table(outputs[f"s3://{bucket}/{key}"])
        assert written.to_pylist() == pacsv.read_csv(io.BytesIO(body)).to_pylist(), key


def test_a_missing_bucket_is_a_clear_error(s3):
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    out = CliRunner().invoke(cli, ["run", f"s3://{missing}/x/", "--op", "count", "--endpoint", s3.endpoint], env=env)
    assert out.exit_code == 2, out.output
    assert f"cannot list s3://{missing}/x" in out.output
    assert "NoSuchBucket" in out.output or "not found" in out.output.lower(), out.output


def test_the_runner_source_reads_listed_objects_in_place_and_sees_changes(s3, bucket, tmp_path, monkeypatch):
    """What a runner does with an S3 source: list once, HEAD a batch's objects for changes,
    hand the engine their URIs; nothing is written to the scratch directory."""
    data = {f"in/{name}": csv_text(20 + i, i) for i, name in enumerate(["a.csv", "b c.csv", "gone.csv", "grown.csv"])}
    put(s3, bucket, data)
    monkeypatch.setenv("PRAVAH_SOURCE_AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("PRAVAH_SOURCE_AWS_SECRET_ACCESS_KEY", s3.secret_key)
    spec = PravahJobSpec.model_validate({"source": {"s3": {"bucket": bucket, "prefix": "in/", "endpoint": s3.endpoint,
                                                           "region": s3.region, "credentialsSecret": "creds"}},
                                         "operation": {"type": "checksum"}})
    source = Source(spec, tmp_path / "volume", tmp_path / "scratch")
    files, errors = asyncio.run(source.list())
    assert errors == [] and [size for _, size in files] == [len(data[key]) for key in sorted(data)]

    client(s3).delete_object(Bucket=bucket, Key="in/gone.csv")
    client(s3).put_object(Bucket=bucket, Key="in/grown.csv", Body=data["in/grown.csv"] + b"1,x\n")
    now = asyncio.run(source.sizes_now(files))
    assert [now[path] for path, _ in files] == [len(data["in/a.csv"]), len(data["in/b c.csv"]), None,
                                                len(data["in/grown.csv"]) + 4]

    kept = files[:2]
    run = pravah_engine.start("checksum", "{}", source.engine_files(kept), 2, **engine_source(source.engine_root()))
    document = json.loads(pravah_engine.finalize("checksum", run.wait()))
    assert {f["path"]: f["digest"] for f in document["result"]["files"]} == \
        {f"s3://{bucket}/{key}": hashlib.sha256(data[key]).hexdigest() for key in ("in/a.csv", "in/b c.csv")}
    assert not (tmp_path / "scratch").exists()


class FaultyS3:
    """A plain-HTTP proxy in front of the S3 server that answers the first try of every distinct
    request (method, path and query, byte range) with a 503 `SlowDown` or a 500, as a throttling
    or failing S3 endpoint does, and forwards every later try unchanged (its `Host` header too,
    so the request's signature stays valid)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.faulted: set[tuple[str, str, str]] = set()
        self.served: set[tuple[str, str, str]] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.serve(),), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the fault proxy did not start"

    async def serve(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.stopped = asyncio.Event()
        self.ready.set()
        await self.stopped.wait()
        await self.session.close()
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path_qs, request.headers.get("Range", ""))
        if key not in self.faulted:
            self.faulted.add(key)
            if len(self.faulted) % 2:
                return web.Response(status=503, content_type="application/xml",
                                    text="<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
            return web.Response(status=500, content_type="application/xml",
                                text="<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>")
        # Unencoded answers only: the body is passed on as read.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS | {"accept-encoding"}}
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=await request.read(), skip_auto_headers=("Accept-Encoding",)) as answer:
            body = await answer.read()
            self.served.add(key)
            # Content-Length as the server gave it: a HEAD's names the object's size.
            reply = web.Response(status=answer.status, body=body if request.method != "HEAD" else None,
                                 headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS})
            if "Content-Length" in answer.headers:
                reply.headers["Content-Length"] = answer.headers["Content-Length"]
            return reply

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)


HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def test_throttled_and_failed_requests_are_retried_and_nothing_is_lost(s3, bucket):
    data = the_data()
    put(s3, bucket, data)
    proxy = FaultyS3(s3.endpoint)
    try:
        source = Objects(f"s3://{bucket}/mixed/", endpoint=proxy.endpoint, region=s3.region,
                         credentials={"access_key_id": s3.access_key, "secret_access_key": s3.secret_key})
        spec = OperationSpec.model_validate({"type": "checksum", "checksum": {"algorithm": "sha256"}})
        digests = execute(LocalJob(root=source, operation=spec, threads=2))
    finally:
        proxy.close()
    assert digests["errors"] == []
    assert {f["path"]: f["digest"] for f in digests["result"]["files"]} == \
        {f"s3://{bucket}/{key}": hashlib.sha256(stored).hexdigest() for key, stored in data.items()}
    gets = {key for key in proxy.faulted if key[0] == "GET" and "list-type" not in key[1]}
    assert len(gets) >= len(data), proxy.faulted  # every object's read met a fault first
    assert proxy.faulted == proxy.served  # and every faulted request was tried again and answered
