"""PravahCronJob: the spec model, the schedule maths, the operator's decisions and the CRD.

Expected schedule times are worked out here with datetime arithmetic (and UTC offsets
written down by hand), never by asking the schedule code a second time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import json
from types import SimpleNamespace

import jsonschema
import kopf
import pytest
import yaml
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah import cronspec
from pravah.cronspec import MAX_MISSED, SCHEDULE_PATTERN, PravahCronJobSpec, due
from pravah.spec import describe_errors
from pravah_operator import crd
from pravah_operator.pravahcronjob import (CRON_LABEL, SCHEDULED_ANNOTATION, Decision, Refused, create_job, decide,
                                           expired, job_manifest, job_name)
from pravah_operator.status import PravahCronJobStatus
from unit.test_crd import strict, structural_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cronjob-volume.yaml"
TEMPLATE = {"spec": {"source": {"volume": {"claimName": "datasets", "path": "data"}},
                     "operation": {"type": "count"},
                     "output": {"volume": {"claimName": "results", "path": "out/nightly"}}}}
UTC = timezone.utc


def cron(schedule: str = "*/15 * * * *", **fields: Any) -> PravahCronJobSpec:
    return PravahCronJobSpec.model_validate({"schedule": schedule, "jobTemplate": TEMPLATE, **fields})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def refusal(fields: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        PravahCronJobSpec.model_validate({"schedule": "* * * * *", "jobTemplate": TEMPLATE, **fields})
    return "\n".join(describe_errors(caught.value, "spec"))


# -- the model ----------------------------------------------------------------------------

def test_defaults_are_those_of_a_kubernetes_cronjob():
    spec = cron()
    assert (spec.concurrencyPolicy, spec.successfulJobsHistoryLimit, spec.failedJobsHistoryLimit) == ("Allow", 3, 1)
    assert (spec.suspend, spec.startingDeadlineSeconds, spec.incremental, spec.timeZone) == (False, None, False, None)


@pytest.mark.parametrize(("fields", "says"), [
    ({"schedule": "61 * * * *"}, "spec.schedule: Value error, Bad minute in '61 * * * *'"),
    ({"schedule": "every minute"}, "spec.schedule: Value error, must be five cron fields"),
    ({"schedule": "* * * * * *"}, "spec.schedule: Value error, must be five cron fields"),
    ({"schedule": "@fortnightly"}, "spec.schedule: Value error, must be five cron fields"),
    ({"timeZone": "Mars/Olympus_Mons"}, "spec.timeZone: Value error, 'Mars/Olympus_Mons' is not an IANA time zone"),
    ({"timeZone": "../../etc/passwd"}, "spec.timeZone: Value error"),
    ({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy: Input should be 'Allow', 'Forbid' or 'Replace'"),
    ({"jobTemplate": {"spec": {**TEMPLATE["spec"], "operation": {"type": "grep", "grep": {"pattern": "("}}}}},
     "spec.jobTemplate.spec.operation.grep.pattern"),
    ({"jobTemplate": {"spec": {**TEMPLATE["spec"], "colour": "blue"}}}, "spec.jobTemplate.spec.colour"),
    ({"incremental": True, "jobTemplate": {"spec": {**TEMPLATE["spec"], "rerunOf": "earlier"}}},
     cronspec.INCREMENTAL_CONFLICT),
    ({"incremental": True, "successfulJobsHistoryLimit": 0}, cronspec.INCREMENTAL_NEEDS_HISTORY),
])
def test_a_bad_spec_is_refused_naming_the_field(fields, says):
    assert says in refusal(fields)


@pytest.mark.parametrize("schedule", ["* * * * *", "30 2 * * *", "*/5 9-17 * * MON-FRI", "0 0 1,15 * *",
                                      "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"])
def test_valid_schedules_pass_the_model_and_the_schema_pattern(schedule):
    assert cron(schedule).schedule == schedule
    assert re.match(SCHEDULE_PATTERN, schedule)


@pytest.mark.parametrize("schedule", ["every minute", "* * * *", "* * * * * *", "@fortnightly", ""])
def test_the_schema_pattern_refuses_what_is_not_five_fields(schedule):
    assert not re.match(SCHEDULE_PATTERN, schedule)


# -- the schedule -------------------------------------------------------------------------

def test_missed_runs_collapse_into_the_most_recent():
    """Last run 10:00, now 10:40, every 15 minutes: 10:15 and 10:30 were missed; 10:30 runs."""
    last, now = at("2026-05-04T10:00:00"), at("2026-05-04T10:40:07")
    quarter = now.replace(minute=now.minute - now.minute % 15, second=0)
    assert due(cron(), last, now) == cronspec.Due(time=quarter, missed=(quarter - last) // timedelta(minutes=15))
    assert quarter == at("2026-05-04T10:30:00")


def test_a_schedule_time_equal_to_now_is_due():
    assert due(cron(), at("2026-05-04T10:00:00"), at("2026-05-04T10:15:00")).time == at("2026-05-04T10:15:00")


def test_nothing_is_due_before_the_next_time():
    assert due(cron(), at("2026-05-04T10:30:00"), at("2026-05-04T10:44:59")) == cronspec.Due(time=None, missed=0)


def test_too_many_missed_times_are_counted_up_to_the_cap():
    last, now = at("2026-05-04T07:00:00"), at("2026-05-04T10:00:30")
    result = due(cron("* * * * *"), last, now)
    assert result.time == now.replace(second=0) and result.missed == MAX_MISSED + 1
    assert (now.replace(second=0) - last) // timedelta(minutes=1) > MAX_MISSED


def test_a_run_past_the_deadline_is_skipped():
    """Hourly, last at 08:00, now 10:20: the 10:00 run is 20 minutes late."""
    last, now = at("2026-05-04T08:00:00"), at("2026-05-04T10:20:00")
    assert due(cron("0 * * * *", startingDeadlineSeconds=600), last, now) == \
        cronspec.Due(time=None, missed=0, too_late=at("2026-05-04T10:00:00"))


def test_within_the_deadline_only_the_window_counts_as_missed():
    """With a 30-minute deadline, 09:50..10:20 holds one time (10:00): 09:00 is not counted."""
    last, now = at("2026-05-04T08:00:00"), at("2026-05-04T10:20:00")
    assert due(cron("0 * * * *", startingDeadlineSeconds=1800), last, now) == \
        cronspec.Due(time=at("2026-05-04T10:00:00"), missed=1)
    assert due(cron("0 * * * *"), last, now).missed == 2  # 09:00 and 10:00 without a deadline


@pytest.mark.parametrize(("zone", "day", "offset_hours"), [
    ("Europe/Berlin", "2026-01-15", 1), ("Europe/Berlin", "2026-07-15", 2),
    ("America/New_York", "2026-01-15", -5), ("America/New_York", "2026-07-15", -4),
    ("Asia/Kolkata", "2026-07-15", 5.5),
])
def test_the_schedule_is_read_in_its_time_zone(zone, day, offset_hours):
    """02:30 local time is 02:30 minus the zone's UTC offset that day."""
    expected = at(f"{day}T02:30:00") - timedelta(hours=offset_hours)
    last, now = expected - timedelta(hours=12), expected + timedelta(minutes=5)
    assert due(cron("30 2 * * *", timeZone=zone), last, now).time == expected


def test_a_local_time_skipped_by_daylight_saving_runs_at_the_next_existing_one():
    """Berlin skips 02:00-03:00 on 2026-03-29: a 02:30 schedule runs at 03:00 CEST (01:00 UTC)."""
    last, now = at("2026-03-28T12:00:00"), at("2026-03-29T06:00:00")
    assert due(cron("30 2 * * *", timeZone="Europe/Berlin"), last, now).time == at("2026-03-29T01:00:00")


def test_macros_mean_what_kubernetes_says():
    now = at("2026-05-04T10:40:00")
    assert due(cron("@hourly"), now - timedelta(hours=1), now).time == at("2026-05-04T10:00:00")
    assert due(cron("@daily"), now - timedelta(days=1), now).time == at("2026-05-04T00:00:00")
    assert due(cron("@monthly"), now - timedelta(days=40), now).time == at("2026-05-01T00:00:00")


# -- the operator's decisions -------------------------------------------------------------

LAST, NOW = at("2026-05-04T10:00:00"), at("2026-05-04T10:15:20")


def test_forbid_holds_a_run_back_while_one_is_active():
    decision = decide(cron(concurrencyPolicy="Forbid"), LAST, ["nightly-1"], NOW)
    assert decision.run_at is None and decision.reason == "JobAlreadyActive"
    assert "nightly-1" in decision.message and "2026-05-04T10:15:00Z" in decision.message
    assert decide(cron(concurrencyPolicy="Forbid"), LAST, [], NOW).run_at == at("2026-05-04T10:15:00")


def test_replace_deletes_the_active_jobs_then_runs():
    decision = decide(cron(concurrencyPolicy="Replace"), LAST, ["nightly-1", "nightly-2"], NOW)
    assert decision.run_at == at("2026-05-04T10:15:00") and decision.replace == ("nightly-1", "nightly-2")


def test_allow_runs_beside_the_active_jobs():
    decision = decide(cron(), LAST, ["nightly-1"], NOW)
    assert (decision.run_at, decision.replace, decision.reason) == (at("2026-05-04T10:15:00"), (), "Scheduled")


def test_suspend_creates_nothing():
    assert decide(cron(suspend=True), LAST, [], NOW).reason == "Suspended"
    assert decide(cron(suspend=True), LAST, [], NOW).run_at is None


def test_a_missed_deadline_and_waiting_are_told():
    missed = decide(cron("0 * * * *", startingDeadlineSeconds=60), LAST - timedelta(hours=1), [], NOW)
    assert (missed.run_at, missed.reason) == (None, "MissedSchedule")
    assert "2026-05-04T10:00:00Z" in missed.message and "startingDeadlineSeconds=60" in missed.message
    waiting = decide(cron(), at("2026-05-04T10:15:00"), [], NOW)
    assert (waiting.run_at, waiting.message) == (None, "next run at 2026-05-04T10:30:00Z")


def job(name: str, phase: str | None, finished: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": "2026-05-04T00:00:00Z"},
            "status": {"phase": phase, **({"completionTime": finished} if finished else {})}}


def test_history_limits_delete_the_oldest_finished_jobs():
    jobs = [job("s3", "Succeeded", "2026-05-04T03:00:00Z"), job("s1", "Succeeded", "2026-05-04T01:00:00Z"),
            job("s2", "Succeeded", "2026-05-04T02:00:00Z"), job("f1", "Failed", "2026-05-04T01:30:00Z"),
            job("c1", "Cancelled", "2026-05-04T02:30:00Z"), job("r1", "Running"), job("q1", "Queued")]
    assert expired(jobs, cron(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)) == ["s1", "s2", "f1"]
    assert expired(jobs, cron(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0)) == \
        ["s1", "s2", "s3", "f1", "c1"]
    assert expired(jobs, cron()) == ["f1"]  # three succeeded kept, one failed or cancelled


# -- the jobs it creates ------------------------------------------------------------------

def cron_body(**spec: Any) -> kopf.Body:
    return kopf.Body({"apiVersion": "pravah.io/v1alpha1", "kind": "PravahCronJob",
                      "metadata": {"name": "nightly", "namespace": "team-a", "uid": "u-1"},
                      "spec": {"schedule": "* * * * *", "jobTemplate": {
                          **TEMPLATE, "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}}}, **spec}})


def test_job_names_are_the_schedule_time_in_minutes():
    scheduled = at("2026-05-04T10:15:00")
    minutes = (scheduled - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)
    assert job_name("nightly", scheduled) == f"nightly-{minutes}" == "nightly-29631495"


def test_a_created_job_is_owned_labelled_and_writes_its_own_output():
    manifest = job_manifest(cron_body(), at("2026-05-04T10:15:00"), baseline="nightly-29631480")
    metadata = manifest["metadata"]
    assert (manifest["kind"], metadata["name"], metadata["namespace"]) == ("PravahJob", "nightly-29631495", "team-a")
    assert metadata["labels"] == {"team": "a", CRON_LABEL: "nightly"}
    assert metadata["annotations"] == {"note": "x", SCHEDULED_ANNOTATION: "2026-05-04T10:15:00Z"}
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("PravahCronJob", "nightly", "u-1", True)
    assert manifest["spec"]["output"]["volume"]["path"] == "out/nightly/nightly-29631495"
    assert "incremental" not in manifest["spec"]  # the PravahCronJob is not incremental
    assert cron_body()["spec"]["jobTemplate"]["spec"]["output"]["volume"]["path"] == "out/nightly"


def test_an_incremental_run_builds_on_the_last_successful_one():
    body = cron_body(incremental=True)
    assert job_manifest(body, at("2026-05-04T10:15:00"), "nightly-29631480")["spec"]["incremental"] == \
        {"baseline": "nightly-29631480"}
    # The first run: a full run unless another incremental job computes the same, and a baseline itself.
    assert job_manifest(body, at("2026-05-04T10:00:00"), None)["spec"]["incremental"] == {"baseline": "latest"}


def test_an_s3_output_gets_the_run_as_a_folder():
    body = cron_body()
    body["spec"]["jobTemplate"]["spec"]["output"] = {"s3": {"bucket": "results", "prefix": "nightly/"}}
    assert job_manifest(body, at("2026-05-04T10:15:00"), None)["spec"]["output"]["s3"]["prefix"] == \
        "nightly/nightly-29631495/"


async def test_a_refused_job_is_told_in_the_api_servers_words():
    """The admission policy's refusal names the field; it becomes the PravahCronJob's message."""
    words = "spec.source.s3.endpoint: endpoint http://x is not allowed"

    async def create(*_: Any) -> None:
        raise ApiException(http_resp=SimpleNamespace(status=403, reason="Forbidden", data=json.dumps(
            {"kind": "Status", "message": words}).encode(), getheaders=dict))

    ctx = SimpleNamespace(custom=SimpleNamespace(create_namespaced_custom_object=create))
    decision = Decision("Scheduled", "", run_at=at("2026-05-04T10:15:00"))
    with pytest.raises(Refused, match=f"PravahJob nightly-29631495 was refused: {words}"):
        await create_job(cron_body(), decision, None, ctx)


# -- the CRD ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return yaml.safe_load(crd.render(crd.cron_crd, crd.CRON_HEADER))


@pytest.fixture(scope="module")
def root(generated) -> dict[str, Any]:
    (version,) = generated["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_checked_in_cron_crd_matches_the_models():
    assert crd.CRON_CRD_FILE.read_text() == crd.render(crd.cron_crd, crd.CRON_HEADER), (
        "crds/pravahcronjobs.pravah.io.yaml is out of date: run `python -m pravah_operator.crd --write`")
    assert crd.main(["--check"]) == 0


def test_cron_schema_is_structural(root):
    assert structural_problems(root) == []


def test_cron_crd_names_and_columns(generated):
    spec = generated["spec"]
    assert generated["metadata"]["name"] == "pravahcronjobs.pravah.io"
    assert spec["names"] == {"kind": "PravahCronJob", "listKind": "PravahCronJobList", "plural": "pravahcronjobs",
                             "singular": "pravahcronjob", "shortNames": ["pjc"], "categories": ["pravah"]}
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [("Schedule", ".spec.schedule"), ("Suspend", ".spec.suspend"), ("Active", ".status.activeCount"),
                       ("Last Schedule", ".status.lastScheduleTime"), ("Last Job", ".status.lastJob"),
                       ("Age", ".metadata.creationTimestamp")]


def test_the_job_template_carries_the_pravahjob_rules_but_not_immutability(root):
    template = root["properties"]["spec"]["properties"]["jobTemplate"]["properties"]["spec"]
    job = yaml.safe_load(crd.render())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    mutable = [rule for rule in job["x-kubernetes-validations"] if "oldSelf" not in rule["rule"]]
    assert [rule["rule"] for rule in template["x-kubernetes-validations"]] == [rule["rule"] for rule in mutable]
    assert any(rule["message"].startswith("spec.jobTemplate.spec.source.volume.path")
               for rule in template["x-kubernetes-validations"])
    assert template["properties"]["operation"]["x-kubernetes-validations"] == \
        job["properties"]["operation"]["x-kubernetes-validations"]
    assert not any("oldSelf" in rule["rule"] for _, node in walk_rules(root) for rule in node)


def walk_rules(node: dict[str, Any], path: str = ""):
    yield path, node.get("x-kubernetes-validations", [])
    for name, sub in node.get("properties", {}).items():
        yield from walk_rules(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk_rules(node["items"], f"{path}[]")


def test_the_schedule_rule_and_the_name_cap(root):
    (rule,) = root["properties"]["spec"]["properties"]["schedule"]["x-kubernetes-validations"]
    assert rule["rule"] == f"self.matches(r'{SCHEDULE_PATTERN}')" and "five cron fields" in rule["message"]
    assert root["x-kubernetes-validations"][0]["rule"] == f"size(self.metadata.name) <= {cronspec.MAX_NAME}"
    # The longest name leaves room for `-` and the minutes, within a 63-character label value.
    assert len(job_name("x" * cronspec.MAX_NAME, at("2159-12-31T23:59:00"))) <= 63


def test_the_example_validates_against_the_schema_and_the_model(root):
    manifest = yaml.safe_load(EXAMPLE.read_text())
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft4Validator(strict(root)).iter_errors(manifest)]
    assert errors == []
    assert PravahCronJobSpec.model_validate(manifest["spec"]).incremental


def test_status_model_output_validates(root):
    status = PravahCronJobStatus(lastScheduleTime="2026-05-04T10:15:00Z", lastJob="nightly-29631495",
                                 active=["nightly-29631495"], message="created the run of 2026-05-04T10:15:00Z")
    assert status.patch()["activeCount"] == 1
    jsonschema.Draft4Validator(strict(root["properties"]["status"])).validate(status.patch())
