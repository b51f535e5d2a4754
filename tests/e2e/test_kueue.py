"""PravahJobs queued by real Kueue: a ClusterQueue with room for one runner at a time.

The first job's runner is frozen while it holds the quota, so the second must wait for
Kueue; while it waits it stays Queued and quiet (no status, Event or database churn).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.harness import db_fetch, freeze, get_json, manifest_for, thaw, wait_for, write_csv_files

QUEUE = "pravah"
WATCH_SECONDS = 20
# A quiet Queued job may still settle once (a last status or record write) in the window.
MAX_CHANGES_WHILE_QUEUED = 2


@pytest.fixture
def local_queue(cluster, kueue) -> Iterator[str]:
    """A ResourceFlavor and a ClusterQueue of 1 CPU (one runner), and the LocalQueue
    `pravah` in the test namespace pointing at it. Cluster-scoped parts are named after
    the namespace and deleted afterwards."""
    name = cluster.namespace
    objects = [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": name}, "spec": {}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": name},
         "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}},
                  "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [
                      {"name": name, "resources": [{"name": "cpu", "nominalQuota": "1"},
                                                   {"name": "memory", "nominalQuota": "8Gi"}]}]}]}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
         "metadata": {"name": QUEUE, "namespace": name}, "spec": {"clusterQueue": name}},
    ]
    cluster.control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    wait_for(lambda: condition(get_json(cluster.control_plane, "clusterqueue", name), "Active"), 60,
             f"ClusterQueue {name} to be Active")
    try:
        yield QUEUE
    finally:
        cluster.control_plane.kubectl("delete", "clusterqueue,resourceflavor", name, "--wait=false", check=False)


def condition(obj: dict[str, Any], kind: str) -> bool:
    """Whether the object's condition `kind` is True."""
    return any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def owned_by(items: list[dict[str, Any]], owner_uid: str) -> dict[str, Any] | None:
    return next((item for item in items
                 if any(ref["uid"] == owner_uid for ref in item["metadata"].get("ownerReferences") or [])), None)


def batch_job(cluster, pravahjob_uid: str) -> dict[str, Any] | None:
    """The Kubernetes Job the operator made for a PravahJob."""
    return owned_by(cluster.jobs(), pravahjob_uid)


def workload(cluster, pravahjob_uid: str) -> dict[str, Any] | None:
    """Kueue's Workload for the PravahJob's Job."""
    job = batch_job(cluster, pravahjob_uid)
    if job is None:
        return None
    return owned_by(get_json(cluster.control_plane, "workloads", "-n", cluster.namespace)["items"],
                    job["metadata"]["uid"])


def wc(root: Path) -> dict[str, int]:
    """Files, lines, words and bytes under `root`, read from the files themselves."""
    data = [path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()]
    return {"files": len(data), "lines": sum(d.count(b"\n") for d in data),
            "words": sum(len(d.split()) for d in data), "bytes": sum(len(d) for d in data)}


def event_counts(cluster, uid: str) -> dict[str, int]:
    """How many times each Event reason was reported for the object (repeats included)."""
    events = get_json(cluster.control_plane, "events", "-n", cluster.namespace,
                      f"--field-selector=involvedObject.uid={uid}")["items"]
    counts: dict[str, int] = {}
    for event in events:
        counts[event["reason"]] = counts.get(event["reason"], 0) + (event.get("count") or 1)
    return counts


def row_version(cluster, uid: str) -> str | None:
    """The jobs row's xmin: it changes with every UPDATE of the row, even to the same values."""
    rows = db_fetch(cluster.database, "SELECT xmin::text AS version FROM jobs WHERE uid = $1", uid)
    return rows[0]["version"] if rows else None


def watch(cluster, name: str, uid: str, seconds: float) -> dict[str, list]:
    """Sample the PravahJob and its record for `seconds`: phases, status resourceVersions,
    row versions, and whether Kueue reserved quota for it."""
    seen: dict[str, list] = {"phases": [], "resource_versions": [], "rows": [], "reserved": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = cluster.get(name)
        seen["phases"].append((job.get("status") or {}).get("phase"))
        seen["resource_versions"].append(job["metadata"]["resourceVersion"])
        seen["rows"].append(row_version(cluster, uid))
        seen["reserved"].append(condition(workload(cluster, uid) or {}, "QuotaReserved"))
        time.sleep(0.5)
    return seen


def changes(values: list) -> int:
    return sum(1 for before, after in zip(values, values[1:]) if before != after)


def count_job(name: str, path: str, queue: str) -> dict[str, Any]:
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": path}},
                            output={"volume": {"claimName": "results", "path": f"out/{name}"}},
                            parallelism=1, resources={"cpu": 1, "memory": "1Gi"}, queueName=queue)
    manifest["metadata"]["name"] = name
    return manifest


def test_second_job_waits_queued_without_flapping_until_kueue_admits_it(cluster, kueue, local_queue, chaos):
    write_csv_files(cluster.datasets / "first", 200)
    write_csv_files(cluster.datasets / "second", 30, rows=80)
    cluster.apply(count_job("first", "first", local_queue))
    first_uid = cluster.get("first")["metadata"]["uid"]
    pids = wait_for(lambda: freeze(first_uid), 180, "the first job's runner to start", interval=0.01)
    try:
        assert condition(workload(cluster, first_uid) or {}, "Admitted"), "the first job ran without Kueue"
        cluster.apply(count_job("second", "second", local_queue))
        second_uid = cluster.get("second")["metadata"]["uid"]
        cluster.wait_phase("second", ("Queued",), timeout=120)
        wait_for(lambda: workload(cluster, second_uid), 60, "Kueue's Workload for the second job")
        events_before = event_counts(cluster, second_uid)
        seen = watch(cluster, "second", second_uid, WATCH_SECONDS)
        events_after = event_counts(cluster, second_uid)
    finally:
        thaw(pids)
    assert set(seen["phases"]) == {"Queued"}, f"phases seen while waiting for Kueue: {seen['phases']}"
    assert not any(seen["reserved"]), "Kueue reserved quota for the second job while the first held it"
    # Flapping adds Running and further Queued Events while the job waits. Without faults there
    # is one Queued Event; in chaos mode it can come late, or twice when the status write after
    # it was refused or the operator pod deleted before it (Events are posted at least once).
    events = f"Events while queued: {events_before} -> {events_after}"
    assert events_after.get("Running", 0) == 0, events
    assert chaos is not None or events_after == events_before and events_after.get("Queued", 0) <= 1, events
    assert changes(seen["resource_versions"]) <= MAX_CHANGES_WHILE_QUEUED, seen["resource_versions"]
    assert changes(seen["rows"]) <= MAX_CHANGES_WHILE_QUEUED, seen["rows"]

    first = cluster.wait_phase("first", timeout=300)
    try:
        wait_for(lambda: condition(workload(cluster, second_uid) or {}, "Admitted"), 120,
                 "Kueue to admit the second job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; Kueue log:\n{kueue.log_tail()}") from None
    second = cluster.wait_phase("second", timeout=300)
    first_job, second_job = batch_job(cluster, first_uid), batch_job(cluster, second_uid)
    assert second_job["status"]["startTime"] >= first_job["status"]["completionTime"]

    for job, data in ((first, "first"), (second, "second")):
        name = job["metadata"]["name"]
        document = json.loads((cluster.results / "out" / name / "result.json").read_text())
        expected = wc(cluster.datasets / data)
        got = document["result"]
        assert (len(got["files"]), got["lines"], got["words"], got["bytes"]) == (
            expected["files"], expected["lines"], expected["words"], expected["bytes"])
        assert job["status"]["shards"]["succeeded"] == 1
