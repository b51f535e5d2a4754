"""PravahCronJobs on the cluster: jobs created on an every-minute schedule, each incremental
run built on the last successful one, the history limit deleting older runs, Forbid holding
a run back while one is unfinished, and a bad schedule or template refused by the operator
with an Event naming the field. The data does not change between runs, so the second reads
no file and reuses every partial of the first.

Two PravahCronJobs share the schedule's minutes, so the suite waits for the clock once:
one runs real count jobs, the other's job waits for a Kueue queue that does not exist
(phase Queued, so unfinished for as long as the test needs)."""

from __future__ import annotations

import json
from typing import Any

from e2e import reference
from e2e.harness import get_json, wait_for
from e2e.test_checks import events

TEMPLATE = {"source": {"volume": {"claimName": "datasets", "path": "data"}}, "operation": {"type": "count"}}
CRON_LABEL = "pravah.io/cronjob"


def cronjob(cluster, name: str, **spec: Any) -> None:
    template = {**TEMPLATE, "output": {"volume": {"claimName": "results", "path": f"out/{name}"}}}
    cluster.apply({"apiVersion": "pravah.io/v1alpha1", "kind": "PravahCronJob", "metadata": {"name": name},
                   "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": template}, **spec}})


def runs(cluster, name: str) -> list[dict[str, Any]]:
    """The PravahCronJob's PravahJobs, oldest first (their names end in the schedule minute)."""
    listing = get_json(cluster.control_plane, "pravahjobs", "-n", cluster.namespace, "-l", f"{CRON_LABEL}={name}")
    return sorted(listing["items"], key=lambda job: job["metadata"]["name"])


def cron_status(cluster, name: str) -> dict[str, Any]:
    return get_json(cluster.control_plane, "pravahcronjob", name, "-n", cluster.namespace).get("status") or {}


def ready(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


def test_cronjobs_run_on_schedule_build_on_success_keep_history_and_honour_forbid(cluster, sample_data):
    cluster.control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                                  "crd/pravahcronjobs.pravah.io")
    # Forbid on the incremental one too: a run waits for the one before, so it always has a baseline.
    cronjob(cluster, "counts", incremental=True, successfulJobsHistoryLimit=1, concurrencyPolicy="Forbid")
    cronjob(cluster, "held", concurrencyPolicy="Forbid",
            jobTemplate={"spec": {**TEMPLATE, "queueName": "no-such-queue",
                                  "output": {"volume": {"claimName": "results", "path": "out/held"}}}})

    seen: dict[str, dict[str, Any]] = {}

    def two_runs():
        seen.update({job["metadata"]["name"]: job for job in runs(cluster, "counts")})
        return len(seen) >= 2

    wait_for(two_runs, 150, "two runs of the every-minute PravahCronJob", interval=1)
    first, second = sorted(seen)[:2]
    assert int(second.rsplit("-", 1)[1]) > int(first.rsplit("-", 1)[1])
    done = cluster.wait_phase(second, timeout=120)
    assert seen[first]["spec"]["incremental"] == {"baseline": "latest"}  # the first run: nothing to build on
    assert done["spec"]["incremental"] == {"baseline": first}, done["spec"]
    assert done["spec"]["output"]["volume"]["path"] == f"out/counts/{second}"
    owner = done["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("PravahCronJob", "counts", True)
    # The second run read nothing: the data did not change, every file's partial came from the first.
    files = cluster.source_files(done["spec"])
    reuse = done["status"]["result"]["reuse"]
    assert (reuse["of"], reuse["reused"], reuse["new"], reuse["changed"], reuse["bytes_read"]) == \
        (first, len(files), 0, 0, 0), reuse
    reference.count(cluster.result(done), files)

    # successfulJobsHistoryLimit 1: the first run goes once the second has succeeded.
    wait_for(lambda: first not in {job["metadata"]["name"] for job in runs(cluster, "counts")}, 60,
             f"{first} to be deleted by the history limit", interval=1)
    status = wait_for(lambda: (s := cron_status(cluster, "counts")).get("lastSuccessfulJob") == second and s, 30,
                      "the status to name the last successful run")
    assert status["lastScheduleTime"] and ready(status)["status"] == "True", status
    created = {event["message"].split()[2] for event in events(cluster, "counts", "SuccessfulCreate")}
    assert {first, second} <= created
    assert any(first in event["message"] for event in events(cluster, "counts", "SuccessfulDelete"))

    # Forbid: the held job never finishes, so no second run was created in the minutes since.
    [held] = runs(cluster, "held")
    assert (held.get("status") or {}).get("phase") == "Queued", held.get("status")
    status = wait_for(lambda: (s := cron_status(cluster, "held")) and ready(s).get("reason") == "JobAlreadyActive"
                      and s, 30, "the held PravahCronJob to say a run waits")
    assert status["active"] == [held["metadata"]["name"]] and status["activeCount"] == 1, status
    [event] = events(cluster, "held", "JobAlreadyActive")[:1]
    assert held["metadata"]["name"] in event["message"] and "Forbid" in event["message"]
    table = cluster.kubectl("get", "pjc", "held").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE"]
    assert table[1].split()[:7] == ["held", "*", "*", "*", "*", "*", "false"] and table[1].split()[7] == "1"


def test_a_bad_schedule_or_template_is_refused_with_an_event_naming_the_field(cluster):
    """What the schema cannot judge: a minute out of range, a regular expression the engine refuses."""
    cronjob(cluster, "bad-minute", schedule="61 * * * *")
    cronjob(cluster, "bad-pattern", jobTemplate={"spec": {**TEMPLATE, "operation": {"type": "grep",
                                                                                  "grep": {"pattern": "("}}}})
    refusals = (("bad-minute", "spec.schedule"), ("bad-pattern", "spec.jobTemplate.spec.operation.grep.pattern"))
    for name, field in refusals:
        status = wait_for(lambda: (s := cron_status(cluster, name)) and ready(s).get("reason") == "InvalidSpec" and s,
                          60, f"{name} to be refused")
        assert ready(status)["status"] == "False" and field in status["message"], json.dumps(status)
        [event] = wait_for(lambda: events(cluster, name, "InvalidSpec"), 30, f"the InvalidSpec Event of {name}")
        assert event["type"] == "Warning" and field in event["message"]
    assert runs(cluster, "bad-minute") == [] and runs(cluster, "bad-pattern") == []
