"""The runner's data path end to end: one file list per job, shared by every shard and every
retry, and converted files stored per batch in the output storage.

Expected values come from the input data itself (its lines, hashlib, pyarrow), never from
the code under test."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from e2e.harness import db_fetch, freeze_mid_run, manifest_for, put_objects, tiny_objects, write_csv_files
from pravah.store import JobRecord, Store
from pravah_operator.planning import SOURCE_MOUNT

FILES = 40
BATCH_FILES = "5"
S3_LIST_PAGE = 1000  # keys per ListObjectsV2 answer: the S3 default (MaxKeys)
# The suite lists a few pages; the million-object run sets PRAVAH_S3_LIST_OBJECTS=1000000
# (with PRAVAH_S3_DATA_DIR on a tmpfs, so that storing the objects is quick).
LISTED_OBJECTS = int(os.environ.get("PRAVAH_S3_LIST_OBJECTS") or 2500)


def csv_lines(path: Path) -> int:
    with path.open(newline="") as handle:
        return sum(1 for _ in handle)


def digest_of(entries: list[tuple[str, int]]) -> str:
    """sha256 of a list as `path NUL bytes LF` lines in path order (the documented digest)."""
    lines = "".join(f"{path}\0{size}\n" for path, size in sorted(entries))
    return hashlib.sha256(lines.encode()).hexdigest()


def kill(pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def s3_location(cluster, s3, bucket: str) -> dict[str, str]:
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    return {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}


@pytest.mark.parametrize("cluster", [{"runner_batch_files": BATCH_FILES}], indirect=True)
def test_file_added_and_resized_during_a_job_are_neither_doubled_nor_missed(cluster):
    """The runner is frozen after the list is stored and some batches are done; a file is
    added and another (not recorded yet) grows; the runner is killed. The retry works
    from the stored list: the added file is not in the job, the grown one is an error
    record saying it changed, every other file is counted once."""
    root = cluster.datasets / "many"
    write_csv_files(root, FILES)
    listed = {path.name: path.stat().st_size for path in root.iterdir()}
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=FILES // int(BATCH_FILES))
    # Batches run in parallel, so the last file by name may be done already: grow one that
    # has no record yet (its batch is redone by the retry, after the kill).
    recorded = {row["path"].rsplit("/", 1)[-1] for row in db_fetch(
        cluster.database, "SELECT path FROM file_records WHERE job_uid = $1", uid)}
    grown = sorted(set(listed) - recorded)[-1]
    with (root / grown).open("a") as handle:
        handle.write("999999,1.5,grown\n")
    (root / "zz-added.csv").write_text("id,value,label\n1,0.5,late\n")
    kill(pids)
    status = cluster.wait_phase("data-count", timeout=240)["status"]

    result = json.loads((cluster.results / "pravah-out/data-count/result.json").read_text())
    counted = [name for name in listed if name != grown]
    assert result["files"] == len(counted)
    assert result["result"]["lines"] == sum(csv_lines(root / name) for name in counted)
    assert [(e["path"], e["reason"].split(":")[0]) for e in result["errors"]] == \
        [(grown, "changed during the job")]
    assert status["result"]["summary"]["files"] == len(counted)
    stored = {row["path"].rsplit("/", 1)[-1]: row for row in db_fetch(
        cluster.database, "SELECT path, error FROM file_records WHERE job_uid = $1", uid)}
    assert sorted(stored) == sorted(listed), "each listed file recorded once, the added one not at all"
    assert stored[grown]["error"].startswith("changed during the job")
    [job] = db_fetch(cluster.database, "SELECT files_total, bytes_total, list_digest FROM jobs WHERE uid = $1", uid)
    assert (job["files_total"], job["bytes_total"]) == (FILES, sum(listed.values()))
    prefix = f"{SOURCE_MOUNT}/many/"
    assert job["list_digest"] == digest_of([(prefix + name, size) for name, size in listed.items()])


def upload_csv_files(client, bucket: str, root: Path, prefix: str) -> dict[str, Path]:
    """Upload every CSV under `root`; return key -> local file."""
    keys = {}
    for path in sorted(root.glob("*.csv")):
        key = f"{prefix}{path.name}"
        client.upload_file(str(path), bucket, key)
        keys[key] = path
    return keys


def apply_s3_job(cluster, s3, bucket: str, directory: Path, op: str, name: str, prefix: str,
                 out: str) -> tuple[Any, dict[str, Path]]:
    """FILES CSV files uploaded under `prefix` and a 4-shard `op` job from there to `out`;
    returns the S3 client and key -> local file."""
    client = boto3.client("s3", **s3.client_kwargs())
    write_csv_files(directory, FILES)
    keys = upload_csv_files(client, bucket, directory, prefix)
    location = s3_location(cluster, s3, bucket)
    manifest = manifest_for(op, source={"s3": {**location, "prefix": prefix}},
                            output={"s3": {**location, "prefix": out}}, parallelism=4)
    manifest["metadata"]["name"] = name
    cluster.apply(manifest)
    return client, keys


@pytest.mark.parametrize("cluster", [{"runner_batch_files": BATCH_FILES}], indirect=True)
def test_convert_to_s3_with_four_shards_and_a_killed_runner_stores_every_file(cluster, s3, bucket, tmp_path):
    client, keys = apply_s3_job(cluster, s3, bucket, tmp_path / "csv", "convert", "convert-s3", "raw/", "out/")
    uid, pids = freeze_mid_run(cluster, "convert-s3", batches_total=FILES // int(BATCH_FILES))
    kill(pids)
    status = cluster.wait_phase("convert-s3", timeout=300)["status"]

    assert status["result"]["uri"] == f"s3://{bucket}/out/result.json"
    result = json.loads(client.get_object(Bucket=bucket, Key="out/result.json")["Body"].read())
    outputs = {output["source"]: output["path"] for output in result["result"]["outputs"]}
    assert sorted(outputs) == sorted(f"s3://{bucket}/{key}" for key in keys)
    for source, uri in outputs.items():
        out_bucket, _, out_key = uri.removeprefix("s3://").partition("/")
        assert out_bucket == bucket and out_key.startswith("out/"), uri
        body = client.get_object(Bucket=bucket, Key=out_key)["Body"].read()
        expected = pacsv.read_csv(keys[source.removeprefix(f"s3://{bucket}/")])
        assert pq.read_table(io.BytesIO(body)).to_pylist() == expected.to_pylist(), uri
    rows = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records WHERE job_uid = $1",
                    uid)
    assert tuple(rows[0]) == (FILES, FILES)


@pytest.mark.timeout(900 + LISTED_OBJECTS // 500)
def test_s3_prefix_of_many_pages_is_listed_once_not_once_per_shard(cluster, s3, bucket):
    """A prefix of LISTED_OBJECTS objects (several list pages) and a 4-shard job selecting the
    first 1,000: the S3 server answers one paged listing of the prefix, not one per shard;
    the stored list is exactly the selected objects and the result counts their lines."""
    client = boto3.client("s3", **s3.client_kwargs())
    objects = tiny_objects(LISTED_OBJECTS, "many/")
    put_objects(client, bucket, objects)
    selected = {key: body for key, body in objects.items() if key.startswith("many/0000/")}
    location = s3_location(cluster, s3, bucket)
    manifest = manifest_for("count", source={"s3": {**location, "prefix": "many/"}}, include=["0000/*"],
                            output={"s3": {**location, "prefix": "counted/"}}, parallelism=4)
    manifest["metadata"]["name"] = "listed-once"
    lists_before = s3.requests(bucket, "ListObjectsV2")
    cluster.apply(manifest)
    cluster.wait_phase("listed-once", timeout=300 + LISTED_OBJECTS // 1000)

    lists = s3.requests(bucket, "ListObjectsV2") - lists_before
    pages = -(-LISTED_OBJECTS // S3_LIST_PAGE)
    print(f"\n{LISTED_OBJECTS} objects ({pages} list pages), 4 shards: {lists} ListObjectsV2 requests")
    assert pages <= lists <= pages + 1, f"{lists} list requests for a listing of {pages} pages"
    uid = cluster.get("listed-once")["metadata"]["uid"]
    rows = db_fetch(cluster.database, "SELECT listing, shard, path, bytes FROM job_files WHERE job_uid = $1", uid)
    [job] = db_fetch(cluster.database, "SELECT listing, files_total, list_digest FROM jobs WHERE uid = $1", uid)
    assert {row["listing"] for row in rows} == {job["listing"]}, "one stored list"
    sizes = {row["path"].rsplit(f"/{bucket}/", 1)[-1]: row["bytes"] for row in rows}
    assert sizes == {key: len(body) for key, body in selected.items()} and job["files_total"] == len(selected)
    assert {row["shard"] for row in rows} == {0, 1, 2, 3}
    assert job["list_digest"] == digest_of([(row["path"], row["bytes"]) for row in rows])
    result = json.loads(client.get_object(Bucket=bucket, Key="counted/result.json")["Body"].read())
    assert result["files"] == len(selected)
    assert result["result"]["lines"] == sum(body.count(b"\n") for body in selected.values())


# -- the records behind it, on a real PostgreSQL ------------------------------------------

def run(coroutine):
    return asyncio.run(coroutine)


async def fresh_store(dsn: str, shards: int = 2) -> tuple[Store, str]:
    store = Store(dsn, retry_seconds=5)
    await store.migrate()
    uid = str(uuid.uuid4())
    await store.record_job(JobRecord(uid=uid, namespace="ns", name="job", operation="count", spec={},
                                     shards=shards, threads=1))
    return store, uid


def rows_of(files: list[tuple[str, int]], shards: int) -> list[tuple[int, int, str, int, None]]:
    """(shard, position, path, bytes, version) rows, written out by hand: shard = index % shards."""
    return [(index % shards, index // shards, path, size, None) for index, (path, size) in enumerate(files)]


def test_the_first_complete_listing_wins_and_a_repeated_commit_keeps_it(database):
    first = [(f"/data/source/f{index}", index) for index in range(5)]
    second = first + [("/data/source/late", 7)]

    async def scenario():
        store, uid = await fresh_store(database)
        try:
            a, b = str(uuid.uuid4()), str(uuid.uuid4())
            await store.stage_listing(uid, a, rows_of(first, 2))
            await store.stage_listing(uid, a, rows_of(first, 2)[:2])  # a page sent twice
            await store.stage_listing(uid, b, rows_of(second, 2))
            with pytest.raises(ValueError, match="not the 6 files"):
                await store.commit_listing(uid, a, 6, 10, "0" * 64, [])
            won = [await store.commit_listing(uid, a, 5, 10, digest_of(first), [{"path": "/x", "reason": "denied"}]),
                   await store.commit_listing(uid, b, 6, 17, digest_of(second), []),
                   await store.commit_listing(uid, a, 5, 10, digest_of(first), [])]
            listing = await store.listing(uid, 1)
            mine = await store.listed_files(uid, 1, -1, 1) + await store.listed_files(uid, 1, 0, 10)
            progress = await store.progress(uid)
            skipped = await store.skipped_errors(uid, "", 10)
            leftover = await store.retrying(lambda c: c.fetchval(
                "SELECT count(*) FROM job_files WHERE job_uid = $1 AND listing = $2", uid, b))
            return won, listing, mine, progress, skipped, leftover
        finally:
            await store.close()

    won, listing, mine, progress, skipped, leftover = run(scenario())
    assert won == [True, False, True]
    assert (listing["files"], listing["bytes"], listing["digest"]) == (5, 10, digest_of(first))
    assert (listing["shard_files"], listing["shard_bytes"]) == (2, 1 + 3)
    assert [(path, size) for _, path, size, _ in mine] == [first[1], first[3]]
    assert (progress["files_total"], progress["bytes_total"]) == (5, 10)
    assert skipped == [{"path": "/x", "reason": "denied"}]
    assert leftover == 0, "the losing listing's staged rows are dropped"


def test_one_runner_holds_the_listing_claim_until_it_is_replaced_or_the_list_is_stored(database):
    files = [("/data/source/a", 1)]

    async def scenario():
        store, uid = await fresh_store(database)
        try:
            claims = [await store.claim_listing(uid, "pod-a", None),
                      await store.claim_listing(uid, "pod-b", None),  # pod-a holds it
                      await store.claim_listing(uid, "pod-a", "pod-a"),  # a retried claim
                      await store.claim_listing(uid, "pod-b", "pod-a")]  # pod-a ended
            holder = await store.listing_claim(uid)
            listing = str(uuid.uuid4())
            await store.stage_listing(uid, listing, rows_of(files, 2))
            await store.commit_listing(uid, listing, 1, 1, digest_of(files), [])
            after = [await store.claim_listing(uid, "pod-c", "pod-b"), await store.listing_claim(uid)]
            return claims, holder, after
        finally:
            await store.close()

    claims, holder, after = run(scenario())
    assert claims == [True, False, True, True] and holder == "pod-b"
    assert after == [False, None], "once the list is stored nobody lists again"


def test_a_file_recorded_by_two_batches_is_refused_not_hidden(database):
    async def scenario():
        store, uid = await fresh_store(database, shards=1)
        try:
            await store.save_batch(uid, 0, 0, [("/a", 1), ("/b", 2)], "{}", [])
            await store.save_batch(uid, 0, 0, [("/a", 1), ("/b", 2)], "{}", [])  # the same batch, retried
            with pytest.raises(asyncpg.UniqueViolationError):
                await store.save_batch(uid, 0, 1, [("/b", 2), ("/c", 3)], "{}", [])
            return await store.retrying(lambda c: c.fetchrow(
                "SELECT (SELECT count(*) FROM batches WHERE job_uid = $1) AS batches, "
                "(SELECT count(*) FROM file_records WHERE job_uid = $1) AS files", uid))
        finally:
            await store.close()

    assert tuple(run(scenario())) == (1, 2), "the refused batch left nothing behind"


def test_job_summary_is_the_small_record_of_a_merged_job(database):
    samples = [{"path": f"/e{index}", "reason": "bad"} for index in range(10)]
    summary = {"files": 3, "bytes": 30, "errors": 12, "summary": {"operation": "count", "lines": 9},
               "error_samples": samples}

    async def scenario():
        store, uid = await fresh_store(database)
        try:
            before = await store.job_summary(uid)
            await store.save_result(uid, summary, "s3://b/out/result.json", '{"files": 3}')
            return before, await store.job_summary(uid)
        finally:
            await store.close()

    before, after = run(scenario())
    assert before is None
    assert after == {"result_uri": "s3://b/out/result.json", "summary": {"operation": "count", "lines": 9},
                     "files": 3, "bytes": 30, "errors": 12, "error_samples": samples}
