"""Runner pods hold no database credentials, and a runner's identity reaches only its own
shard of its own job.

The attacks: read every Secret of a job namespace and a runner's environment looking for
the database; take a runner's token (what a compromised runner holds) and use it to read or
change another job's records; use tokens that are not a live runner's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from e2e import reference
from e2e.harness import db_fetch, freeze, freeze_mid_run, manifest_for, thaw, wait_for, write_csv_files
from pravah.localcluster.postgres import POD_PASSWORD
from pravah_operator.settings import OperatorSettings

import pytest

AUDIENCE = OperatorSettings.model_fields["report_audience"].default
REPORT_PORT = OperatorSettings.model_fields["report_port"].default
RECORDS = {
    "jobs": "SELECT result::text, result_uri, phase FROM jobs WHERE uid = $1",
    "shards": "SELECT shard, attempts, files_total, files_done, state FROM shards WHERE job_uid = $1 ORDER BY shard",
    "batches": "SELECT shard, batch, files, bytes, partial FROM batches WHERE job_uid = $1 ORDER BY shard, batch",
    "file_records": "SELECT path, shard, batch, error FROM file_records WHERE job_uid = $1 ORDER BY path",
    "runner_logs": "SELECT shard, pod, log FROM runner_logs WHERE job_uid = $1 ORDER BY shard, pod",
}


def records_digest(dsn: str, uid: str) -> dict[str, str]:
    """Every record of a job, hashed per table: equal digests mean nothing was changed."""
    return {table: hashlib.sha256(repr([tuple(row) for row in db_fetch(dsn, query, uid)]).encode()).hexdigest()
            for table, query in RECORDS.items()}


def report_url(control_plane) -> str:
    config = json.loads(control_plane.kubectl("-n", "pravah-system", "get", "configmap", "pravah-operator-config",
                                              "-o", "json").stdout)["data"]
    return config["PRAVAH_REPORT_URL"].rstrip("/") + "/v1/shard"


def call(url: str, token: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def token_for(cluster, pod: dict[str, Any] | None, audience: str | None = AUDIENCE) -> str:
    args = ["create", "token", "pravah-runner", "--duration", "10m"]
    if audience:
        args += ["--audience", audience]
    if pod is not None:
        args += ["--bound-object-kind", "Pod", "--bound-object-name", pod["metadata"]["name"],
                 "--bound-object-uid", pod["metadata"]["uid"]]
    return cluster.kubectl(*args).stdout.strip()


def impostor_pod(cluster) -> dict[str, Any]:
    """A pod of the runners' service account that no PravahJob owns."""
    job = cluster.jobs()[0]
    container = dict(job["spec"]["template"]["spec"]["containers"][0])
    # A small request: the runner may hold every free core of its node (cpu: auto).
    container.update(name="impostor", command=["python3", "-c", "import time; time.sleep(600)"], args=[], env=[],
                     volumeMounts=[], resources={"requests": {"cpu": "100m", "memory": "64Mi"},
                                                 "limits": {"memory": "256Mi"}})
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "impostor"},
                   "spec": {"serviceAccountName": "pravah-runner", "automountServiceAccountToken": False,
                            "securityContext": job["spec"]["template"]["spec"]["securityContext"],
                            "containers": [container]}})
    return wait_for(lambda: next((p for p in cluster.pods() if p["metadata"]["name"] == "impostor"
                                  and p["status"].get("phase") == "Running"), None), 120, "the impostor pod to run")


def test_no_secret_or_runner_environment_in_a_job_namespace_holds_the_database(cluster, sample_data):
    cluster.apply(manifest_for("count"))
    uid = cluster.get("data-count")["metadata"]["uid"]
    pids = wait_for(lambda: freeze(uid), 120, "the runner to start", interval=0.01)
    try:
        environs = [Path(f"/proc/{pid}/environ").read_bytes() for pid in pids]
    finally:
        thaw(pids)
    cluster.wait_phase("data-count")
    secrets = json.loads(cluster.kubectl("get", "secrets", "-o", "json").stdout)["items"]
    values = [base64.b64decode(value) for secret in secrets for value in (secret.get("data") or {}).values()]
    for text in environs + values:
        assert b"postgres" not in text.lower() and POD_PASSWORD.encode() not in text
    pod_specs = json.dumps([pod["spec"] for pod in cluster.pods()])
    assert "postgres" not in pod_specs.lower() and POD_PASSWORD not in pod_specs
    # The runner pods' egress: the operator's report port and DNS only (a job on volumes).
    [policy] = json.loads(cluster.kubectl("get", "networkpolicies", "-o", "json").stdout)["items"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert all(pod["metadata"]["labels"].items() >= selector.items() for pod in cluster.pods())
    ports = sorted(port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"])
    assert policy["spec"]["policyTypes"] == ["Egress"] and ports == sorted([53, 53, REPORT_PORT])


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_a_runner_token_reaches_only_its_own_shard_of_its_own_job(cluster, control_plane):
    url = report_url(control_plane)
    # Another job, finished: its records must come out of this test unchanged.
    write_csv_files(cluster.datasets / "other", 20)
    other = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "other"}}, parallelism=1)
    other["metadata"]["name"] = "other-count"
    other["spec"]["output"] = {"volume": {"claimName": "results", "path": "other-out"}}
    cluster.apply(other)
    cluster.wait_phase("other-count")
    other_uid = cluster.get("other-count")["metadata"]["uid"]
    before = records_digest(cluster.database, other_uid)

    write_csv_files(cluster.datasets / "many", 200)
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(manifest)
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=40)
    try:
        [pod] = [p for p in cluster.pods() if p["status"].get("phase") == "Running"
                 and p["metadata"]["labels"].get("pravah.io/job") == "data-count"]
        token = token_for(cluster, pod)
        status, batches = call(f"{url}/batches", token)
        assert status == 200
        stored = {row["batch"] for row in db_fetch(cluster.database,
                                                   "SELECT batch FROM batches WHERE job_uid = $1", uid)}
        assert {int(index) for index in batches} == stored, "a runner sees its own shard's batches, no others"
        status, answer = call(f"{url}/merge-input", token)
        assert status == 409 and "not every shard" in answer["error"]
        status, answer = call(f"{url}/merge-reused", token)
        assert status == 409 and "not every shard" in answer["error"]
        # A job that builds on no other reads no other job's records.
        assert call(f"{url}/reuse", token) == (200, {"mode": None})
        assert call(f"{url}/reuse/baseline", token) == (200, {"files": []})
        assert call(f"{url}/reuse/rerun", token) == (200, {"paths": []})
        status, answer = call(f"{url}/result", token, "PUT", {"document": {"forged": True}, "uri": "s3://x/y"})
        assert status == 409
        # The job and the shard come from the token: a request cannot name another.
        status, answer = call(f"{url}/start", token, "POST", {"files_total": 1, "bytes_total": 1, "threads": 1,
                                                              "job_uid": other_uid, "shard": 0})
        assert status == 400 and "job_uid" in answer["error"]
        # Tokens that are not a live runner's are refused.
        status, answer = call(f"{url}/batches", token_for(cluster, pod, audience=None))
        assert status == 403 and "audience" in answer["error"]
        status, answer = call(f"{url}/batches", token_for(cluster, None))
        assert status == 403 and "not a runner pod" in answer["error"]
        status, answer = call(f"{url}/batches", token_for(cluster, impostor_pod(cluster)))
        assert status == 403 and "not a runner of a PravahJob" in answer["error"]
        status, answer = call(f"{url}/batches", "not-a-token")
        assert status == 403
    finally:
        thaw(pids)
    job = cluster.wait_phase("data-count")
    # The forged calls changed nothing: the result is exactly what the files give.
    reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
    assert records_digest(cluster.database, other_uid) == before, "the other job's records are untouched"
    # Once its pod has ended, the runner's token reports nothing more.
    wait_for(lambda: call(f"{url}/batches", token)[0] == 403, 60, "the ended runner's token to be refused")
