"""The operator's decisions under real conditions: sizing from free CPU, a re-created
PravahJob, jobs admitted together, a status that is written only when it changes, and a
sizing that stays the one first recorded."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid

import pytest
from e2e import reference
from e2e.harness import (
    freeze_mid_run,
    get_json,
    manifest_for,
    thaw,
    wait_for,
    write_csv_files,
)
from pravah.store import JobRecord, Store

from pravah_operator.planning import JOB_LABEL, parse_cpu



def live_runner_pods(control_plane) -> list[str]:
    pods = get_json(control_plane, "pods", "-A", "-l", JOB_LABEL, "--field-selector",
                    "status.phase!=Succeeded,status.phase!=Failed")["items"]
    return [f"{pod['metadata']['namespace']}/{pod['metadata']['name']}" for pod in pods]


def free_whole_cores(control_plane) -> dict[str, int]:
    """Whole cores each node has free, from the pods' requests as the API server lists them
    (the scheduler's view, computed here independently of the operator's code). Counted once
    earlier tests' runner pods have ended: a job is Succeeded as soon as its result is
    recorded, while its pods may still be exiting, and the operator would count later."""
    wait_for(lambda: not live_runner_pods(control_plane), 120, "earlier jobs' runner pods to end")
    nodes = get_json(control_plane, "nodes")["items"]
    pods = get_json(control_plane, "pods", "-A", "--field-selector",
                    "status.phase!=Succeeded,status.phase!=Failed")["items"]
    free = {node["metadata"]["name"]: parse_cpu(node["status"]["allocatable"]["cpu"]) for node in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node in free:
            free[node] -= sum(parse_cpu(c.get("resources", {}).get("requests", {}).get("cpu", "0"))
                              for c in pod["spec"]["containers"])
    return {name: math.floor(value + 1e-9) for name, value in free.items()}


def sleeper(name: str, image: str, node: str, cpu: str) -> dict:
    """A pod that holds `cpu` on `node` (placed there directly) and passes Pod Security `restricted`."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "automountServiceAccountToken": False, "restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "hold", "image": image, "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}},
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


def line_count(root, pattern: str = "*") -> int:
    """Newlines, as `zcat | wc -l` counts them, in the files the count examples select."""
    return sum(reference.content(path.read_bytes()).count(b"\n") for path in root.rglob(pattern) if path.is_file())


def test_auto_cpu_is_sized_from_the_cores_left_free(cluster, sample_data):
    """`cpu: auto` asks for what a node has free, not its allocatable: node-b holds the
    operator's and the API's requests, so a whole-core runner there would wait forever."""
    free = free_whole_cores(cluster.control_plane)
    fitting = [cores for cores in free.values() if cores >= 1]
    expected_cpu = min(fitting)
    expected_shards = sum(cores // expected_cpu for cores in free.values())
    manifest = manifest_for("count", resources={"cpu": "auto", "memory": "1Gi"})
    cluster.apply(manifest)
    status = cluster.wait_phase("data-count")["status"]
    assert (status["cpuPerRunner"], status["shards"]["total"]) == (expected_cpu, expected_shards), free
    [job] = cluster.jobs()
    assert job["spec"]["completions"] == expected_shards
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == str(expected_cpu)


def test_a_job_waits_queued_saying_why_while_no_core_is_free(cluster, sample_data):
    """Pods hold all but a fraction of a core on every node: the job is queued with the
    nodes' free CPU in its message and no Job; it starts when the cores come back."""
    image = cluster.platform.images.ensure()["runner"].name
    for node, cores in free_whole_cores(cluster.control_plane).items():
        if cores >= 1:
            cluster.apply(sleeper(f"hold-{node}", image, node, f"{cores * 1000 - 500}m"))
    wait_for(lambda: all(c < 1 for c in free_whole_cores(cluster.control_plane).values()), 60,
             "the holding pods to take the free cores")
    cluster.apply(manifest_for("count"))
    status = cluster.wait_phase("data-count", ("Queued",), timeout=60)["status"]
    assert status["reason"] == "WaitingForCPU"
    assert "no node has a whole CPU free" in status["message"] and "node-a" in status["message"]
    assert cluster.jobs() == []
    cluster.kubectl("delete", "pod", "--all", "--wait=false")
    status = cluster.wait_phase("data-count")["status"]
    assert status["result"]["summary"]["lines"] == line_count(sample_data)


def test_a_recreated_pravahjob_never_adopts_the_old_job(cluster, sample_data):
    """The first PravahJob is deleted leaving its Job behind (orphaned, runner frozen): the
    new one of the same name must not take that Job as its own, but replace it."""
    write_csv_files(cluster.datasets / "many", 60)
    cluster.operator.configure({"runner_batch_files": "5"})
    first = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}}, parallelism=1)
    cluster.apply(first)
    old_uid, pids = freeze_mid_run(cluster, "data-count", batches_total=12)
    try:
        cluster.kubectl("delete", "pravahjob", "data-count", "--cascade=orphan")
        [orphan] = cluster.jobs()
        assert not orphan["metadata"].get("ownerReferences")
        second = manifest_for("count", parallelism=1)  # the sample data, not the 60 files
        cluster.apply(second)
        new_uid = cluster.get("data-count")["metadata"]["uid"]
        assert new_uid != old_uid
        status = cluster.wait_phase("data-count")["status"]
    finally:
        thaw(pids)
    assert status["result"]["summary"]["lines"] == line_count(sample_data)
    owners = [ref["uid"] for job in cluster.jobs() for ref in job["metadata"].get("ownerReferences") or []]
    assert owners == [new_uid]
    events = get_json(cluster.control_plane, "events", "-n", cluster.namespace,
                      "--field-selector", f"involvedObject.uid={new_uid}")["items"]
    assert any("earlier PravahJob" in event["message"] for event in events), [e["message"] for e in events]


@pytest.mark.parametrize("cluster", [{"max_running_per_namespace": "1"}], indirect=True)
def test_jobs_applied_together_respect_the_namespace_cap(cluster, sample_data):
    """Three jobs in one `kubectl apply`: admitted in the same moment, at most one runs."""
    names = [f"together-{index}" for index in range(3)]
    manifests = []
    for name in names:
        manifest = manifest_for("count", parallelism=1, output={
            "volume": {"claimName": "results", "path": f"out-{name}"}})
        manifest["metadata"]["name"] = name
        manifests.append(manifest)
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(m) for m in manifests))
    most = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = cluster.jobs()
        unfinished = [job for job in jobs if not any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in (job.get("status") or {}).get("conditions") or [])]
        most = max(most, len(unfinished))
        phases = [(cluster.get(name).get("status") or {}).get("phase") for name in names]
        if all(phase == "Succeeded" for phase in phases):
            break
        assert not any(phase in ("Failed", "Cancelled") for phase in phases), phases
        time.sleep(0.2)
    assert most == 1, f"{most} jobs ran at once in a namespace capped at 1"
    assert [cluster.get(name)["status"]["phase"] for name in names] == ["Succeeded"] * 3


@pytest.mark.parametrize("cluster", [{"runner_batch_files": "5"}], indirect=True)
def test_status_is_written_only_when_it_changes(cluster):
    """While the runner is frozen nothing changes: the status is not rewritten every tick,
    and the rate it shows is the current one (zero), not a lifetime average."""
    write_csv_files(cluster.datasets / "many", 60)
    cluster.apply(manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}},
                               parallelism=1))
    uid, pids = freeze_mid_run(cluster, "data-count", batches_total=12)
    try:
        time.sleep(4)  # the roll-ups that see the last heartbeat and then no progress
        versions = set()
        for _ in range(24):  # 12 s: a dozen status intervals of the test overlay
            versions.add(cluster.get("data-count")["metadata"]["resourceVersion"])
            time.sleep(0.5)
        progress = cluster.get("data-count")["status"]["progress"]
    finally:
        thaw(pids)
    assert len(versions) == 1, f"the status was rewritten {len(versions) - 1} times while nothing changed"
    assert progress["bytesPerSecond"] == 0 and progress["throughput"] == "0 B/s"
    assert cluster.wait_phase("data-count")["status"]["phase"] == "Succeeded"


def test_the_first_recorded_sizing_is_the_one_kept(postgres, database):
    """Two admission attempts that sized differently (nodes changed in between) get the
    first attempt's shards and threads back: the Job and the records agree."""

    async def admit_twice() -> tuple[tuple[int, int], tuple[int, int], list]:
        async with Store(database) as store:
            await store.migrate()
            uid = str(uuid.uuid4())
            record = JobRecord(uid=uid, namespace="ns", name="j", operation="count", spec={}, shards=4, threads=1)
            first = await store.record_job(record)
            second = await store.record_job(JobRecord(**{**record.__dict__, "shards": 2, "threads": 2}))
            rows = await store.retrying(lambda c: c.fetch("SELECT shards, threads FROM jobs WHERE uid = $1", uid))
            return first, second, [tuple(row) for row in rows]

    first, second, rows = asyncio.run(admit_twice())
    assert first == second == (4, 1)
    assert rows == [(4, 1)]
