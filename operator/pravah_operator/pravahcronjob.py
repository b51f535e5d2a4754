"""kopf handlers for PravahCronJob: create a PravahJob from the template at each schedule time.

A timer per PravahCronJob looks at the world as it is (the spec, the status, its PravahJobs
found by label and checked by owner uid) and takes one step, the way the Kubernetes CronJob
controller does: a due run creates a job whose name is the PravahCronJob's and the schedule
time's, so a retried step or a second operator creates it once (409: already there); runs
missed while the operator was away collapse into the most recent one; the concurrency
policy decides about a run due while another is unfinished; finished jobs beyond the
history limits are deleted. Decisions are pure functions (`decide`, `expired`), tested
without a cluster.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah import cronspec
from pravah.cronspec import PravahCronJobSpec
from pravah.spec import LATEST, describe_errors

from pravah_operator.pravahjob import GROUP, PLURAL, TERMINAL, VERSION, Context, context_of, truncate
from pravah_operator.settings import OperatorSettings
from pravah_operator.status import PravahCronJobStatus, condition, set_condition
from pravah_operator.status import now_rfc3339 as rfc3339

CRON_PLURAL = "pravahcronjobs"
RESOURCE = (GROUP, VERSION, CRON_PLURAL)
CRON_LABEL = "pravah.io/cronjob"
SCHEDULED_ANNOTATION = "pravah.io/scheduled-time"
# Decisions worth an Event of their own (a created job has its own; waiting is not news).
NOTABLE = {"InvalidSpec": "Warning", "JobRefused": "Warning", "MissedSchedule": "Warning",
           "JobAlreadyActive": "Normal", "Suspended": "Normal"}
log = logging.getLogger("pravah.operator")


@dataclass(frozen=True)
class Decision:
    """What one step does: create the run of `run_at` (deleting `replace` first), or nothing;
    `reason` and `message` go into the Ready condition."""

    reason: str
    message: str
    run_at: datetime | None = None
    replace: tuple[str, ...] = ()
    missed: int = 0


def decide(spec: PravahCronJobSpec, last: datetime, active: list[str], now: datetime) -> Decision:
    """The step due at `now`, given the last schedule time run (or the creation time) and
    the unfinished jobs. A run Forbid holds back stays due: it starts when the active job
    has finished, unless startingDeadlineSeconds has passed by then (as in Kubernetes)."""
    if spec.suspend:
        return Decision("Suspended", "spec.suspend is true: no new jobs are created")
    due = cronspec.due(spec, last, now)
    if due.time is None and due.too_late is not None:
        return Decision("MissedSchedule", f"missed the run of {rfc3339(due.too_late)}: not started within "
                                          f"startingDeadlineSeconds={spec.startingDeadlineSeconds}")
    if due.time is None:
        return Decision("Waiting", f"next run at {rfc3339(cronspec.next_after(spec, now))}")
    if active and spec.concurrencyPolicy == "Forbid":
        return Decision("JobAlreadyActive", f"the run of {rfc3339(due.time)} waits: {', '.join(active)} has not "
                                            f"finished and concurrencyPolicy is Forbid")
    replace = tuple(active) if spec.concurrencyPolicy == "Replace" else ()
    return Decision("Scheduled", f"created the run of {rfc3339(due.time)}", run_at=due.time, replace=replace,
                    missed=due.missed)


def expired(jobs: list[dict[str, Any]], spec: PravahCronJobSpec) -> list[str]:
    """Finished jobs beyond the history limits, oldest first: Succeeded ones beyond
    successfulJobsHistoryLimit, Failed and Cancelled ones beyond failedJobsHistoryLimit."""
    names = []
    for phases, limit in ((("Succeeded",), spec.successfulJobsHistoryLimit),
                          (("Failed", "Cancelled"), spec.failedJobsHistoryLimit)):
        finished = sorted((job for job in jobs if phase(job) in phases), key=finished_at)
        names += [job["metadata"]["name"] for job in finished[:max(len(finished) - limit, 0)]]
    return names


def job_name(cron: str, scheduled: datetime) -> str:
    """Deterministic, as a Kubernetes CronJob names its Jobs: the schedule time in minutes."""
    return f"{cron}-{int(scheduled.timestamp()) // 60}"


def job_manifest(body: kopf.Body, scheduled: datetime, baseline: str | None) -> dict[str, Any]:
    """The PravahJob of one run: the template, labelled and owned by the PravahCronJob, with
    an output of its own. An incremental PravahCronJob points it at its last successful run;
    the first run takes `latest` (the newest incremental job of the namespace computing the
    same, or none: it reads everything), which keeps its per-file partials, so that it can
    be the next run's baseline (a job without spec.incremental cannot be one)."""
    template = body["spec"]["jobTemplate"]
    metadata = template.get("metadata") or {}
    name = job_name(body.metadata.name, scheduled)
    spec = copy.deepcopy(dict(template["spec"]))
    own_output(spec, name)
    if body["spec"].get("incremental"):
        spec["incremental"] = {"baseline": baseline or LATEST}
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PravahJob",
        "metadata": {"name": name,
                     "labels": {**(metadata.get("labels") or {}), CRON_LABEL: body.metadata.name},
                     "annotations": {**(metadata.get("annotations") or {}), SCHEDULED_ANNOTATION: rfc3339(scheduled)}},
        "spec": spec,
    }
    kopf.adopt(manifest, owner=body)
    return manifest


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def own_output(spec: dict[str, Any], name: str) -> None:
    """Each run writes below the template's output, in a folder named after the run, so that
    a run does not overwrite the result an earlier run's status points at."""
    output = spec.get("output") or {}
    if output.get("volume") is not None:
        output["volume"]["path"] = "/".join(filter(None, [output["volume"].get("path", "").rstrip("/"), name]))
    if output.get("s3") is not None:
        output["s3"]["prefix"] = f"{output['s3'].get('prefix', '')}{name}/"


def phase(job: dict[str, Any]) -> str | None:
    return (job.get("status") or {}).get("phase")


def finished_at(job: dict[str, Any]) -> str:
    """When a job finished (its creation, if its status does not say)."""
    return (job.get("status") or {}).get("completionTime") or job["metadata"]["creationTimestamp"]


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """One step of one PravahCronJob; the status is written through its model if it changed."""
    current = {key: value for key, value in (body.get("status") or {}).items()
               if key in PravahCronJobStatus.model_fields}
    status = dict(current)
    try:
        spec = PravahCronJobSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        report(body, status, False, "InvalidSpec", "; ".join(describe_errors(exc, "spec")))
    else:
        await step(body, spec, status, context_of(memo))
    validated = PravahCronJobStatus.model_validate(status).patch()
    patch.status.update({key: value for key, value in validated.items() if current.get(key) != value})


class Refused(Exception):
    """The API server refused a run's PravahJob (the admission policy, the schema): the
    PravahCronJob says why and tries again at the next step."""


async def step(body: kopf.Body, spec: PravahCronJobSpec, status: dict[str, Any], ctx: Context) -> None:
    """Look at its jobs, decide, act: delete what Replace replaces, create the run, trim the history."""
    jobs = await owned_jobs(body, ctx)
    baseline = remember_success(jobs, status)
    active = [job["metadata"]["name"] for job in jobs if phase(job) not in TERMINAL]
    last = parse_time(status.get("lastScheduleTime") or body.metadata["creationTimestamp"])
    decision = decide(spec, last, active, datetime.now(timezone.utc))
    if decision.run_at is not None:
        for name in decision.replace:
            await delete_job(body, name, "concurrencyPolicy is Replace", ctx)
        active = [name for name in active if name not in decision.replace]
        try:
            created = await create_job(body, decision, baseline, ctx)
        except Refused as exc:
            status["active"] = active
            return report(body, status, False, "JobRefused", str(exc))
        active += [created] if created not in active else []
        status.update(lastScheduleTime=rfc3339(decision.run_at), lastJob=created)
    for name in expired(jobs, spec):
        await delete_job(body, name, "beyond the history limit", ctx)
    status["active"] = active
    report(body, status, True, decision.reason, decision.message)


async def owned_jobs(body: kopf.Body, ctx: Context) -> list[dict[str, Any]]:
    """The PravahJobs this PravahCronJob created: its label, and itself as their controller
    (a PravahCronJob deleted and created again under the same name does not adopt them)."""
    listing = await ctx.custom.list_namespaced_custom_object(
        GROUP, VERSION, body.metadata.namespace, PLURAL, label_selector=f"{CRON_LABEL}={body.metadata.name}")
    return [job for job in listing["items"] if not job["metadata"].get("deletionTimestamp") and any(
        ref.get("uid") == body.metadata.uid and ref.get("controller")
        for ref in job["metadata"].get("ownerReferences") or [])]


def remember_success(jobs: list[dict[str, Any]], status: dict[str, Any]) -> str | None:
    """The newest succeeded job that still exists (the status keeps its name after it is
    gone, but only an existing job can be a baseline)."""
    succeeded = sorted((job for job in jobs if phase(job) == "Succeeded"), key=finished_at)
    if not succeeded:
        return None
    status.update(lastSuccessfulJob=succeeded[-1]["metadata"]["name"], lastSuccessfulTime=finished_at(succeeded[-1]))
    return succeeded[-1]["metadata"]["name"]


async def create_job(body: kopf.Body, decision: Decision, baseline: str | None, ctx: Context) -> str:
    """Create the run's PravahJob; one created by an earlier, interrupted step is fine (409)."""
    manifest = job_manifest(body, decision.run_at, baseline)
    name = manifest["metadata"]["name"]
    try:
        await ctx.custom.create_namespaced_custom_object(GROUP, VERSION, body.metadata.namespace, PLURAL, manifest)
    except ApiException as exc:
        if exc.status in (403, 422):
            raise Refused(f"PravahJob {name} was refused: {refusal(exc)}") from None
        if exc.status != 409:
            raise
        return name
    if decision.missed > cronspec.MAX_MISSED:
        kopf.event(body, type="Warning", reason="TooManyMissedTimes",
                   message=f"more than {cronspec.MAX_MISSED} schedule times were missed; only the last runs. "
                           f"Set or lower spec.startingDeadlineSeconds, or check the clocks")
    builds_on = f", incremental since {baseline}" if baseline and "incremental" in manifest["spec"] else ""
    kopf.event(body, type="Normal", reason="SuccessfulCreate",
               message=f"created PravahJob {name} for the run of {rfc3339(decision.run_at)}{builds_on}")
    log.info("%s/%s: created PravahJob %s", body.metadata.namespace, body.metadata.name, name)
    return name


def refusal(exc: ApiException) -> str:
    """The API server's own words (they name the field), not the whole HTTP response."""
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)


async def delete_job(body: kopf.Body, name: str, why: str, ctx: Context) -> None:
    """Delete one of its PravahJobs (their Jobs and pods go with them); already gone is fine."""
    try:
        await ctx.custom.delete_namespaced_custom_object(GROUP, VERSION, body.metadata.namespace, PLURAL, name,
                                                         propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
        return
    kopf.event(body, type="Normal", reason="SuccessfulDelete", message=f"deleted PravahJob {name}: {why}")


def report(body: kopf.Body, status: dict[str, Any], ready: bool, reason: str, message: str) -> None:
    """Set the Ready condition and the message; an Event tells each new reason or message
    once (a step every few seconds must not repeat it), a refused spec as a Warning."""
    message = truncate(message)
    previous = status.get("conditions") or []
    old = next((c for c in previous if c.get("type") == "Ready"), {})
    generation = body.metadata.get("generation")
    if (old.get("reason"), old.get("message")) != (reason, message) and reason in NOTABLE:
        kopf.event(body, type=NOTABLE[reason], reason=reason, message=message)
    status.update(message=message, observedGeneration=generation, conditions=set_condition(
        previous, condition("Ready", ready, reason, message, generation, previous)))


def register(settings: OperatorSettings) -> None:
    """The timer runs every PRAVAH_CRON_INTERVAL seconds: a run starts at most that late."""
    kopf.timer(*RESOURCE, interval=settings.cron_interval, initial_delay=1.0)(tick)
