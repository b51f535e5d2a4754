"""PravahJobs end to end: kubectl apply -> operator -> Indexed Job -> runner pods -> result."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
import yaml

from e2e.harness import BIN, ROOT, freeze, runner_pids, thaw, wait_for

EXAMPLES = ROOT / "examples"
OPERATIONS = ("stats", "count", "checksum", "grep", "convert")


def local_result(manifest: Path, tmp_path: Path) -> dict[str, Any]:
    """What `pravah run -f` gives on this machine for the same manifest."""
    out = subprocess.run([str(BIN / "pravah"), "run", "-f", str(manifest), "--json", "--output", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def comparable(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The parts of a result that must agree between runs: paths made relative, floats rounded."""

    def walk(value: Any, key: str = "") -> Any:
        if key == "top" and value:
            # Values tied with the last one kept are interchangeable: which of them make the
            # cut depends on merge order. Everything above the cut must agree.
            cutoff = value[-1]["count"]
            return [walk(item) for item in value if item["count"] > cutoff] + [cutoff, len(value)]
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items() if k not in ("manifest", "outputs")}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str) and key in ("path", "source"):
            return value.removeprefix(prefix)
        if isinstance(value, float):
            return float(f"{value:.9g}")
        return value

    return {key: walk(document[key]) for key in ("operation", "files", "bytes", "errors", "result")}


def manifest_for(op: str, **spec_changes: Any) -> dict[str, Any]:
    manifest = yaml.safe_load((EXAMPLES / f"{op}-volume.yaml").read_text())
    manifest["spec"].update(spec_changes)
    return manifest


def db_fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def fetch():
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(query, *args)
        finally:
            await connection.close()

    return asyncio.run(fetch())


@pytest.mark.parametrize("op", OPERATIONS)
def test_example_on_volume_matches_local_run(cluster, sample_data, op, tmp_path):
    manifest = EXAMPLES / f"{op}-volume.yaml"
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]
    cluster.apply(manifest)
    job = cluster.wait_phase(name)
    status = job["status"]
    result_file = cluster.results / yaml.safe_load(manifest.read_text())["spec"]["output"]["volume"]["path"] / "result.json"
    remote = json.loads(result_file.read_text())
    local = local_result(manifest, tmp_path)
    source = yaml.safe_load(manifest.read_text())["spec"]["source"]["volume"]["path"]
    assert comparable(remote, "") == comparable(local, str(EXAMPLES / source) + "/")
    assert status["result"]["summary"]["files"] == local["files"]
    assert status["progress"]["percent"] == 100
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Complete"] == "True"
    rows = db_fetch(cluster.database, "SELECT phase, result IS NOT NULL AS has_result FROM jobs WHERE uid = $1",
                    job["metadata"]["uid"])
    assert [tuple(row) for row in rows] == [("Succeeded", True)]
    if op == "convert":
        import pyarrow.parquet as pq

        written = sorted((result_file.parent / "parquet").rglob("*.parquet"))
        assert len(written) == local["files"]
        assert sum(pq.read_table(path).num_rows for path in written) == local["result"]["rows"]


def test_s3_source_and_output(cluster, s3, bucket, tmp_path):
    client = boto3.client("s3", **s3.client_kwargs())
    for path in sorted((EXAMPLES / "data" / "sales").glob("*.csv")):
        client.upload_file(str(path), bucket, f"raw/sales/{path.name}")
    client.put_object(Bucket=bucket, Key="raw/sales/notes.txt", Body=b"not a csv")
    cluster.kubectl("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                    f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    location = {"bucket": bucket, "endpoint": s3.endpoint, "credentialsSecret": "s3-creds"}
    manifest = manifest_for("stats", source={"s3": {**location, "prefix": "raw/sales/"}},
                            output={"s3": {**location, "prefix": "results/sales/"}}, parallelism=2)
    manifest["metadata"]["name"] = "sales-s3"
    cluster.apply(manifest)
    status = cluster.wait_phase("sales-s3")["status"]
    assert status["result"]["uri"] == f"s3://{bucket}/results/sales/result.json"
    remote = json.loads(client.get_object(Bucket=bucket, Key="results/sales/result.json")["Body"].read())
    local = local_result(EXAMPLES / "stats-volume.yaml", tmp_path)
    assert comparable(remote, f"s3://{bucket}/raw/sales/") == comparable(local, str(EXAMPLES / "data/sales") + "/")


def test_missing_credentials_secret_fails_with_the_field(cluster, bucket):
    manifest = manifest_for("count", source={"s3": {"bucket": bucket, "credentialsSecret": "nope"}})
    manifest["metadata"]["name"] = "no-secret"
    cluster.apply(manifest)
    status = cluster.wait_phase("no-secret", ("Failed",))["status"]
    assert status["reason"] == "MissingSecret" and "spec.source.s3.credentialsSecret" in status["message"]


def write_csv_files(root: Path, count: int, rows: int = 50) -> int:
    """`count` small CSV files; returns the total number of lines."""
    root.mkdir(parents=True, exist_ok=True)
    lines = 0
    for index in range(count):
        body = "id,value,label\n" + "".join(f"{index * rows + row},{row * 0.5},l{row % 7}\n" for row in range(rows))
        (root / f"part-{index:04d}.csv").write_text(body)
        lines += rows + 1
    return lines


def test_four_shards_equal_one_shard(cluster):
    write_csv_files(cluster.datasets / "many", 40)
    documents = {}
    for shards in (1, 4):
        manifest = manifest_for("stats", source={"volume": {"claimName": "datasets", "path": "many"}},
                                output={"volume": {"claimName": "results", "path": f"out-{shards}"}},
                                parallelism=shards)
        manifest["metadata"]["name"] = f"shards-{shards}"
        cluster.apply(manifest)
        status = cluster.wait_phase(f"shards-{shards}")["status"]
        assert status["shards"]["total"] == shards and status["shards"]["succeeded"] == shards
        documents[shards] = json.loads((cluster.results / f"out-{shards}" / "result.json").read_text())
    assert comparable(documents[4], "") == comparable(documents[1], "")
    assert documents[4]["result"]["rows"] == 40 * 50


@pytest.mark.parametrize(("cpu", "expected"), [("auto", 2), (4, 4)])
def test_runners_request_whole_node_cpus_and_use_that_many_threads(cluster, sample_data, cpu, expected):
    manifest = manifest_for("count", resources={"cpu": cpu, "memory": "1Gi"}, parallelism=1)
    manifest["metadata"]["name"] = f"cpu-{cpu}"
    cluster.apply(manifest)
    job = cluster.wait_phase(f"cpu-{cpu}")
    assert job["status"]["cpuPerRunner"] == expected and job["status"]["threads"] == expected
    [batch_job] = cluster.jobs()
    resources = batch_job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == str(expected) == resources["limits"]["cpu"]
    result = json.loads((cluster.results / "pravah-out/data-count/result.json").read_text())
    assert result["threads"] == expected
    if expected == 4:
        nodes = {pod["spec"]["nodeName"] for pod in cluster.pods()}
        assert nodes == {"node-b"}, "only node-b has 4 CPUs"


def test_more_cpu_than_any_node_is_refused(cluster, sample_data):
    manifest = manifest_for("count", resources={"cpu": 16, "memory": "1Gi"})
    manifest["metadata"]["name"] = "too-big"
    cluster.apply(manifest)
    status = cluster.wait_phase("too-big", ("Failed",))["status"]
    assert status["reason"] == "Unschedulable" and "resources.cpu=16" in status["message"]


def stored_batches(cluster, uid: str) -> int:
    return db_fetch(cluster.database, "SELECT count(*) FROM batches WHERE job_uid = $1", uid)[0][0]


def freeze_mid_run(cluster, name: str, batches_total: int) -> tuple[str, list[int]]:
    """Catch the runner as it starts and let it go on, a little at a time, until some but
    not all of its batches are stored; return the job uid and the frozen pids."""
    uid = cluster.get(name)["metadata"]["uid"]
    pids = wait_for(lambda: freeze(uid), 60, f"the runner of {name} to start", interval=0.01)
    while stored_batches(cluster, uid) == 0:
        thaw(pids)
        time.sleep(0.02)
        pids = freeze(uid)
        assert pids, "the runner finished before it could be stopped mid-run"
    assert stored_batches(cluster, uid) < batches_total
    return uid, pids


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_runner_killed_mid_run_is_retried_and_counts_stay_exact(cluster):
    lines = write_csv_files(cluster.datasets / "many", 200)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=40)
    for pid in pids:
        subprocess.run(["kill", "-KILL", str(pid)], check=False)
    status = cluster.wait_phase("data-count")["status"]
    result = json.loads((cluster.results / "pravah-out/data-count/result.json").read_text())
    assert result["files"] == 200 and result["result"]["lines"] == lines
    assert status["result"]["summary"]["lines"] == lines
    [shard] = db_fetch(cluster.database, "SELECT attempts FROM shards WHERE job_uid = $1", uid)
    assert shard["attempts"] == 2, "the shard ran twice: once killed, once resumed"
    files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records WHERE job_uid = $1", uid)
    assert tuple(files[0]) == (200, 200)


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_operator_killed_mid_job_and_restarted(cluster):
    lines = write_csv_files(cluster.datasets / "many", 100)
    cluster.apply(manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1))
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    [job_before] = cluster.jobs()
    cluster.operators[0].kill()
    thaw(pids)
    cluster.start_operator("operator-1")
    status = cluster.wait_phase("data-count")["status"]
    assert status["result"]["summary"]["lines"] == lines
    [job_after] = cluster.jobs()
    assert job_after["metadata"]["uid"] == job_before["metadata"]["uid"], "exactly one Job was ever created"
    rows = db_fetch(cluster.database, "SELECT count(*) FROM jobs WHERE uid = $1", uid)
    assert rows[0][0] == 1
    files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records WHERE job_uid = $1", uid)
    assert tuple(files[0]) == (100, 100)


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_postgres_down_for_ten_seconds(cluster, postgres):
    lines = write_csv_files(cluster.datasets / "many", 100)
    cluster.apply(manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1))
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    postgres.stop()
    try:
        thaw(pids)
        time.sleep(10)
    finally:
        postgres.start()
    status = cluster.wait_phase("data-count", timeout=180)["status"]
    assert status["result"]["summary"]["lines"] == lines
    assert status["progress"]["filesDone"] == status["progress"]["filesTotal"] == 100


def test_corrupt_files_are_reported_and_the_job_goes_on(cluster):
    root = cluster.datasets / "mixed"
    write_csv_files(root, 3)
    (root / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n")
    (root / "binary.csv").write_bytes(b"a,b\n\xff\xfe,1\n")
    spec = {"source": {"volume": {"claimName": "datasets", "path": "mixed"}}}
    cluster.apply(manifest_for("stats", **spec))
    status = cluster.wait_phase("sales-profile")["status"]
    assert status["errors"]["count"] == 2
    assert {sample["path"] for sample in status["errors"]["samples"]} == {"binary.csv", "ragged.csv"}
    assert all(sample["reason"] for sample in status["errors"]["samples"])
    assert status["result"]["summary"]["rows"] == 3 * 50
    rows = db_fetch(cluster.database, "SELECT path FROM file_records WHERE error IS NOT NULL ORDER BY path")
    assert [row["path"].rsplit("/", 1)[-1] for row in rows] == ["binary.csv", "ragged.csv"]
    strict = manifest_for("stats", **spec, maxErrors=1)
    strict["metadata"]["name"] = "strict"
    strict["spec"]["output"]["volume"]["path"] = "strict"
    cluster.apply(strict)
    status = cluster.wait_phase("strict", ("Failed",))["status"]
    assert status["reason"] == "TooManyErrors"


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_suspend_cancels_a_running_job(cluster):
    write_csv_files(cluster.datasets / "many", 100)
    cluster.apply(manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1))
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    cluster.kubectl("patch", "pravahjob", "data-count", "--type=merge", "-p", '{"spec": {"suspend": true}}')
    started = time.monotonic()
    status = cluster.wait_phase("data-count", ("Cancelled",), timeout=30)["status"]
    thaw(pids)
    wait_for(lambda: not cluster.pods() and not runner_pids(uid), 30, "the runner pods to be gone")
    assert time.monotonic() - started < 30
    assert status["conditions"]


def test_spec_edit_after_start_is_refused_but_suspend_is_not(cluster, sample_data):
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    edited = manifest_for("count", parallelism=3)
    refused = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(edited), check=False)
    assert refused.returncode != 0 and "immutable" in refused.stderr
    again = cluster.apply(EXAMPLES / "count-volume.yaml")
    assert again.returncode == 0
    time.sleep(2)
    assert len(cluster.jobs()) == 1 and cluster.get("data-count")["status"]["phase"] == "Succeeded", \
        "re-applying the same manifest never re-runs a finished job"


def test_kubectl_get_columns_and_wait_for_complete(cluster, sample_data):
    cluster.apply(EXAMPLES / "count-volume.yaml")
    waited = cluster.kubectl("wait", "--for=condition=Complete", "--timeout=120s", "pj/data-count")
    assert "condition met" in waited.stdout
    table = cluster.kubectl("get", "pj").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "FILES", "THROUGHPUT", "SHARDS", "AGE"]
    row = table[1].split()
    assert row[:2] == ["data-count", "Succeeded"] and row[2] == "100"
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=data-count").stdout
    assert "Running" in events and "Succeeded" in events


def test_two_replicas_one_leads_and_the_other_takes_over(cluster, sample_data):
    wait_for(lambda: "leading as operator-1" in cluster.operators[0].log(), 30, "operator-1 to lead")
    standby = cluster.start_operator("operator-2")
    holder = lambda: json.loads(cluster.kubectl("get", "lease", "pravah-operator", "-o", "json", check=False).stdout
                                or "{}").get("spec", {}).get("holderIdentity")
    assert wait_for(holder, 30, "a leader") == "operator-1"
    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    assert "leading as operator-2" not in standby.log()
    cluster.operators[0].kill()
    wait_for(lambda: holder() == "operator-2", 60, "operator-2 to take the Lease")
    manifest = manifest_for("checksum")
    cluster.apply(manifest)
    cluster.wait_phase("data-checksums")
    assert "leading as operator-2" in standby.log()


def test_metrics_are_served(cluster, sample_data):
    import urllib.request

    cluster.apply(EXAMPLES / "count-volume.yaml")
    cluster.wait_phase("data-count")
    text = urllib.request.urlopen(f"http://127.0.0.1:{cluster.operators[0].metrics_port}/metrics").read().decode()
    assert 'pravah_jobs{phase="Succeeded"} 1.0' in text
    assert 'pravah_files_processed_total{operation="count"}' in text


def test_ttl_removes_the_children_and_keeps_the_pravahjob(cluster, sample_data):
    cluster.apply(manifest_for("count", ttlSecondsAfterFinished=1))
    cluster.wait_phase("data-count")
    wait_for(lambda: not cluster.jobs() and not cluster.pods(), 60, "the TTL controller to remove the Job and pods")
    assert cluster.get("data-count")["status"]["phase"] == "Succeeded"


@pytest.mark.parametrize("cluster", [{"max_running_per_namespace": "1", "runner_batch_files": "5"}], indirect=True)
def test_concurrency_cap_queues_jobs_in_a_namespace(cluster, sample_data):
    write_csv_files(cluster.datasets / "many", 100)
    first = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(first)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=20)
    second = manifest_for("checksum")
    cluster.apply(second)
    status = cluster.wait_phase("data-checksums", ("Queued",), timeout=30)["status"]
    assert status["reason"] == "ConcurrencyLimit"
    assert [job["metadata"]["name"] for job in cluster.jobs()] == ["pravah-data-count"]
    thaw(pids)
    cluster.wait_phase("data-count")
    cluster.wait_phase("data-checksums")
