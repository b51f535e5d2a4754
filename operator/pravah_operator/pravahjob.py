"""kopf handlers for PravahJob: admit, run as an Indexed Job, roll up status, cancel, clean up.

Every handler funnels into `reconcile`, which looks at the world as it is (the CR's status,
the Job, PostgreSQL) and moves the job one step on. That makes each call idempotent and a
restarted operator simply carries on: the Job's name is derived from the PravahJob, so it is
created at most once, and every database write is keyed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any

import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah import checks
from pravah.logs import REQUEST_ID_ANNOTATION, log_fields
from pravah.spec import PravahJobSpec, describe_errors
from pravah.store import JobRecord, Store

from pravah_operator import egress, lineage, metrics, planning
from pravah_operator.crd import GROUP, PLURAL, VERSION
from pravah_operator.settings import OperatorSettings
from pravah_operator.status import (
    MAX_REASON_CHARS,
    MAX_SHARD_FAILURES,
    TERMINAL_PHASES,
    PravahJobStatus,
    condition,
    error_sample,
    fraction,
    now_rfc3339,
    set_condition,
)

RESOURCE = (GROUP, VERSION, PLURAL)
TERMINAL = TERMINAL_PHASES
ACTIVE = ("Running",)
# How the kubelet says that a Secret a container takes variables from is missing (the
# container waits in CreateContainerConfigError): the Secret itself, or one of its keys.
SECRET_NOT_FOUND = re.compile(r'secret "(?P<secret>[^"]+)" not found')
SECRET_KEY_NOT_FOUND = re.compile(r"couldn't find key (?P<key>\S+) in Secret [^/\s]+/(?P<secret>\S+)")
UNSCHEDULABLE = "shard pods wait for a node:"
ENDED_MEMORY = 300.0  # seconds a job's final status is kept to answer bodies read before it
log = logging.getLogger("pravah.operator")


class Context:
    """What the handlers share: settings, clients, one lock per job and per namespace."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient, store: Store):
        self.settings = settings
        self.api = api
        self.store = store
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        self.locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self.namespace_locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        # Jobs admitted whose Running status may not be visible in a listing yet: they take
        # their place under the per-namespace cap until it is.
        self.admitted: dict[str, set[str]] = collections.defaultdict(set)
        # uid -> (monotonic time, bytes done) at the last roll-up: the current rate.
        self.last_progress: dict[str, tuple[float, int]] = {}
        # uid -> (monotonic time, the final status written), for a few minutes: a handler
        # holding a body read before that write (the timer, racing the result's wake-up)
        # writes it again instead of finishing the job twice.
        self.ended: dict[str, tuple[float, dict[str, Any]]] = {}

    def end(self, uid: str, status: dict[str, Any]) -> None:
        now = time.monotonic()
        self.ended = {key: value for key, value in self.ended.items() if now - value[0] < ENDED_MEMORY}
        self.ended[uid] = (now, status)

    def plain(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)

    def forget(self, namespace: str, uid: str) -> None:
        self.admitted[namespace].discard(uid)
        self.last_progress.pop(uid, None)
        self.locks.pop(uid, None)
        self.ended.pop(uid, None)


def context_of(memo: Any) -> Context:
    return memo["context"]


@kopf.on.create(*RESOURCE)
async def created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


@kopf.on.field(*RESOURCE, field="spec.suspend")
async def suspend_changed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", planning.RESULT_RECORDED_ANNOTATION))
async def result_recorded(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """The report server marks the job when its merged result is recorded: finish it now."""
    await reconcile(body, patch, context_of(memo))


async def follow(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


def register(settings: OperatorSettings) -> None:
    """The roll-up timer runs at the configured status interval (PRAVAH_STATUS_INTERVAL)."""
    kopf.timer(*RESOURCE, interval=settings.status_interval, initial_delay=1.0,
               when=lambda status, **_: status.get("phase") not in TERMINAL)(follow)


@kopf.on.delete(*RESOURCE)
async def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the history: the record stays in PostgreSQL; the Job goes with its owner."""
    ctx = context_of(memo)
    if (body.get("status") or {}).get("phase") not in TERMINAL:
        await ctx.store.set_phase(body.metadata.uid, "Cancelled", "Deleted", "the PravahJob was deleted")
    ctx.forget(body.metadata.namespace, body.metadata.uid)
    metrics.forget(body.metadata.uid)


async def reconcile(body: kopf.Body, patch: kopf.Patch, ctx: Context) -> None:
    """One step on; the status is written at the end, through its model, if anything changed."""
    async with ctx.locks[body.metadata.uid]:
        current = {key: value for key, value in (body.get("status") or {}).items()
                   if key in PravahJobStatus.model_fields}
        if current.get("phase") in TERMINAL:
            ctx.forget(body.metadata.namespace, body.metadata.uid)
            return
        if body.metadata.uid in ctx.ended:
            return write_status(patch, current, ctx.ended[body.metadata.uid][1])
        status = dict(current)
        with log_fields(job=body.metadata.name, namespace=body.metadata.namespace, request_id=request_id(body)):
            await step(body, status, ctx)
        if status.get("phase") in TERMINAL:
            ctx.end(body.metadata.uid, status)
        write_status(patch, current, status)


def request_id(body: kopf.Body) -> str | None:
    """The id of the API request that created the job, if it came through the API."""
    return body.metadata.annotations.get(REQUEST_ID_ANNOTATION)


def post_event(body: kopf.Body, event_type: str, reason: str, message: str) -> None:
    """An Event about the job; it names the creating API request, so `kubectl describe` and
    the API's and operator's logs can be matched up."""
    traced = request_id(body)
    kopf.event(body, type=event_type, reason=reason, message=f"{message} (request {traced})" if traced else message)


def write_status(patch: kopf.Patch, current: dict[str, Any], status: dict[str, Any]) -> None:
    """Patch only the fields whose validated value changed: a job that makes no progress
    costs no write (and no watch event for every client following it)."""
    validated = PravahJobStatus.model_validate(status).patch()
    changed = {key: value for key, value in validated.items() if current.get(key) != value}
    if changed:
        patch.status.update(changed)


async def step(body: kopf.Body, status: dict[str, Any], ctx: Context) -> None:
    try:
        spec = PravahJobSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        return transition(body, status, "Failed", "InvalidSpec", "; ".join(describe_errors(exc, "spec")))
    if spec.suspend:
        return await cancel(body, status, ctx)
    name = status.get("jobName") or planning.job_name(body.metadata.name, body.metadata.uid)
    job = await read_job(ctx, name, body.metadata.namespace)
    if job is not None and not owned_by(job, body.metadata.uid):
        return await replace_foreign_job(body, status, job, ctx)
    if job is None and status.get("phase") in (None, "Pending", "Queued"):
        return await admit(body, status, spec, ctx)
    return await roll_up(body, status, spec, job, ctx)


def owned_by(job: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller")
               for ref in job["metadata"].get("ownerReferences") or [])


async def replace_foreign_job(body: kopf.Body, status: dict[str, Any], job: dict[str, Any], ctx: Context) -> None:
    """A Job of this name that this PravahJob did not create: an earlier PravahJob of the
    same name left it (deleted, or orphaned). Its runners would report to that job, so it
    is removed first; a Job Pravah did not make is never touched."""
    name, namespace = job["metadata"]["name"], body.metadata.namespace
    labels = job["metadata"].get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != "pravah" or labels.get(planning.JOB_LABEL) != body.metadata.name:
        return transition(body, status, "Failed", "JobNameTaken",
                          f"Job {namespace}/{name} exists and was not created by Pravah for this PravahJob")
    if not job["metadata"].get("deletionTimestamp"):
        await delete_job(ctx, name, namespace)
    if status.get("reason") != "ReplacingOldJob":
        transition(body, status, "Pending", "ReplacingOldJob",
                   f"Job {name} belongs to an earlier PravahJob named {body.metadata.name}; "
                   f"it is being deleted before this job's Job is created")


def transition(body: kopf.Body, status: dict[str, Any], phase: str, reason: str, message: str) -> None:
    """Set the phase with its conditions, and tell the story as an Event."""
    generation = body.metadata.get("generation")
    previous = status.get("conditions") or []
    message = truncate(message)
    conditions = previous
    for kind, is_true in (("Running", phase == "Running"), ("Complete", phase == "Succeeded"),
                          ("Failed", phase == "Failed"), ("Cancelled", phase == "Cancelled"),
                          ("Queued", phase == "Queued"), ("Ready", phase == "Succeeded"),
                          ("Stalled", phase == "Failed"), ("Reconciling", phase not in TERMINAL)):
        # Ready/Stalled/Reconciling follow kstatus, so Flux's `wait` and health checks work.
        if is_true or kind == "Ready" or any(c.get("type") == kind for c in previous):
            conditions = set_condition(conditions, condition(kind, is_true, reason, message, generation, previous))
    if status.get("phase") != phase or status.get("reason") != reason:
        post_event(body, "Warning" if phase == "Failed" else "Normal", phase, message)
        log.info("%s/%s: %s (%s) %s", body.metadata.namespace, body.metadata.name, phase, reason, message)
        if phase in TERMINAL:
            metrics.job_ended(phase, reason)
    status.update(phase=phase, reason=reason, message=message, observedGeneration=generation, conditions=conditions)
    if phase in TERMINAL:
        status["completionTime"] = status.get("completionTime") or now_rfc3339()
    metrics.phase_changed(body.metadata.uid, phase)


def truncate(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


async def admit(body: kopf.Body, status: dict[str, Any], spec: PravahJobSpec, ctx: Context) -> None:
    """Check what the schema cannot, size the runners, then create the Job (or queue).

    Admission in one namespace is serialized and counts the jobs admitted a moment ago, so
    jobs created together cannot all see room under the cap."""
    name, namespace, uid = body.metadata.name, body.metadata.namespace, body.metadata.uid
    if spec.output is None:
        return transition(body, status, "Failed", "InvalidSpec",
                          "spec.output is required: the result needs somewhere to go")
    # The admission policy `pravah-tenancy` refuses these first; this holds where it is not installed.
    for field, location in (("spec.source.s3", spec.source.s3), ("spec.output.s3", spec.output.s3)):
        if location is not None and not ctx.settings.tenancy.endpoint_allowed(location.endpoint):
            return transition(body, status, "Failed", "EndpointNotAllowed",
                              f"{field}.endpoint: {location.endpoint!r} is not an allowed S3 endpoint "
                              f"(PRAVAH_ALLOWED_S3_ENDPOINTS)")
    try:
        builds_on = await lineage.resolve(spec, namespace, uid, ctx)
    except lineage.Refused as exc:
        return transition(body, status, "Failed", exc.reason, str(exc))
    async with ctx.namespace_locks[namespace]:
        running = await running_in_namespace(ctx, namespace, uid)
        if running >= ctx.settings.max_running_per_namespace:
            return queue(body, status, "ConcurrencyLimit",
                         f"{running} jobs running in {namespace}; at most "
                         f"{ctx.settings.max_running_per_namespace} run at once")
        nodes = ctx.plain(await ctx.core.list_node())["items"]
        pods = ctx.plain(await ctx.core.list_pod_for_all_namespaces(
            field_selector="status.phase!=Succeeded,status.phase!=Failed"))["items"]
        try:
            sizing = planning.size_runners(spec, nodes, pods)
        except planning.WaitForCPU as exc:
            return queue(body, status, "WaitingForCPU", f"{exc}; the job starts when cores are free")
        except planning.PlanningError as exc:
            return transition(body, status, "Failed", "Unschedulable", str(exc))
        shards, threads = await ctx.store.record_job(JobRecord(
            uid=uid, namespace=namespace, name=name, operation=spec.operation.type,
            spec=spec.model_dump(mode="json"), shards=sizing.shards, threads=sizing.cpu_per_runner,
            reuse_of=builds_on and builds_on.uid, reuse_mode=builds_on and builds_on.mode))
        sizing = planning.Sizing(cpu_per_runner=threads, shards=shards)  # an earlier attempt's, if any
        policy = egress.egress_policy(spec, name, namespace, uid, ctx.settings)
        kopf.adopt(policy, owner=body)
        await create_if_absent(ctx.networking.create_namespaced_network_policy, namespace, policy)
        manifest = planning.job_manifest(spec, name, namespace, uid, sizing, ctx.settings)
        kopf.adopt(manifest, owner=body)
        await create_if_absent(ctx.batch.create_namespaced_job, namespace, manifest)
        job = await read_job(ctx, manifest["metadata"]["name"], namespace)
        if job is None or not owned_by(job, uid):
            raise kopf.TemporaryError(f"Job {manifest['metadata']['name']} is not this job's own yet", delay=1)
        if not spec.queueName:
            ctx.admitted[namespace].add(uid)
    status.update({
        "jobName": manifest["metadata"]["name"], "cpuPerRunner": sizing.cpu_per_runner,
        "threads": sizing.cpu_per_runner,
        "shards": {"total": sizing.shards, "active": 0, "succeeded": 0, "failed": 0}})
    if spec.queueName:
        await ctx.store.set_phase(uid, "Queued", "WaitingForAdmission")
        return transition(body, status, "Queued", "WaitingForAdmission",
                          f"Job {manifest['metadata']['name']} waits for Kueue to admit it (queue {spec.queueName})")
    status["startTime"] = status.get("startTime") or now_rfc3339()
    await ctx.store.set_phase(uid, "Running")
    transition(body, status, "Running", "JobCreated",
               f"{sizing.shards} shards × {sizing.cpu_per_runner} CPU on Job {manifest['metadata']['name']}")


def queue(body: kopf.Body, status: dict[str, Any], reason: str, message: str) -> None:
    """Wait in phase Queued; the Event is told once per reason, the message kept current."""
    if status.get("phase") == "Queued" and status.get("reason") == reason:
        status["message"] = truncate(message)
        return
    transition(body, status, "Queued", reason, message)


async def create_if_absent(create, namespace: str, manifest: dict[str, Any]) -> None:
    """Create a child object; one left by an earlier, interrupted call is fine (409): the
    next step checks that a Job found by name is this PravahJob's own, by uid."""
    try:
        await create(namespace, manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise


async def running_in_namespace(ctx: Context, namespace: str, uid: str) -> int:
    """Jobs of the namespace holding a place under the cap: Running ones, ones admitted here
    whose status does not say so yet, and jobs whose Job runs (not suspended for Kueue, not
    finished) whatever their status says: the status write after a Job's creation can be lost
    with the operator pod that made it, and a job is Succeeded once its result is recorded,
    while its pods may still be exiting."""
    listing = await ctx.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    phases = {item["metadata"]["uid"]: (item.get("status") or {}) for item in listing["items"]}
    unfinished = {other for other, status in phases.items() if status.get("phase") not in TERMINAL}
    admitted = ctx.admitted[namespace]
    admitted &= {other for other in unfinished if phases[other].get("phase") != "Running"}
    active = {other for other, status in phases.items() if status.get("phase") in ACTIVE}
    jobs = ctx.plain(await ctx.batch.list_namespaced_job(namespace, label_selector=planning.JOB_LABEL))["items"]
    running_jobs = {ref["uid"] for job in jobs if runs(job)
                    for ref in job["metadata"].get("ownerReferences") or [] if ref.get("controller")}
    return len((active | admitted | running_jobs) - {uid})


def runs(job: dict[str, Any]) -> bool:
    """The Job holds a place: not suspended and not finished."""
    finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                   for c in (job.get("status") or {}).get("conditions") or [])
    return not job["spec"].get("suspend") and not finished


async def read_job(ctx: Context, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return ctx.plain(await ctx.batch.read_namespaced_job(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def roll_up(body: kopf.Body, status: dict[str, Any], spec: PravahJobSpec, job: dict[str, Any] | None,
                  ctx: Context) -> None:
    """Fold the Job's and the runners' state into the status; finish the job when they are done."""
    uid, namespace = body.metadata.uid, body.metadata.namespace
    # Once the merged result is recorded the job is done, though its pods may still be exiting
    # (and their Job completing), which takes the kubelet and the Job controller seconds more.
    recorded = await ctx.store.job_summary(uid) is not None
    if job is None:
        if recorded:
            return await succeed(body, status, spec, ctx)  # finished, then removed by its TTL
        job_name = status.get("jobName") or planning.job_name(body.metadata.name, uid)
        await ctx.store.set_phase(uid, "Failed", "JobDeleted", f"Job {job_name} was deleted before it finished")
        return transition(body, status, "Failed", "JobDeleted", f"Job {job_name} was deleted before it finished")
    status["jobName"] = job["metadata"]["name"]
    job_status = job.get("status") or {}
    total = job["spec"].get("completions") or 1
    status["shards"] = {"total": total, "active": job_status.get("active", 0),
                        "succeeded": job_status.get("succeeded", 0), "failed": job_status.get("failed", 0)}
    await roll_up_progress(status, uid, ctx)
    job_conditions = {c["type"]: c for c in job_status.get("conditions") or [] if c.get("status") == "True"}
    ending = recorded or "Complete" in job_conditions or "Failed" in job_conditions
    failures = await roll_up_shard_failures(body, status, job, ctx, ending)
    if recorded:
        return await succeed(body, status, spec, ctx)
    pods = await waiting_pods(namespace, job, ctx)
    missing = missing_secret(pods, spec, namespace)
    if missing is not None:
        await delete_job(ctx, job["metadata"]["name"], namespace)
        await ctx.store.set_phase(uid, "Failed", "MissingSecret", missing)
        return transition(body, status, "Failed", "MissingSecret", missing)
    if "Complete" in job_conditions:
        return await succeed(body, status, spec, ctx)
    if "Failed" in job_conditions:
        failed = job_conditions["Failed"]
        reason, message = failed.get("reason") or "JobFailed", failed.get("message") or "the Job failed"
        oom = next((f for f in failures if f["reason"] == "OOMKilled"), None)
        if oom is not None:
            reason, message = "OOMKilled", f"{oom['message']}; {message}"
        await ctx.store.set_phase(uid, "Failed", reason, message)
        return transition(body, status, "Failed", reason, message)
    if job["spec"].get("suspend"):
        if status.get("phase") != "Queued":
            transition(body, status, "Queued", "WaitingForAdmission", "the Job waits for Kueue to admit it")
        return
    if status.get("phase") != "Running":
        status["startTime"] = status.get("startTime") or now_rfc3339()
        await ctx.store.set_phase(uid, "Running")
        transition(body, status, "Running", "Admitted", "the Job's pods are starting")
    unschedulable = unschedulable_message(pods)
    if unschedulable is not None:
        status["message"] = truncate(f"{UNSCHEDULABLE} {unschedulable}")
    elif (status.get("message") or "").startswith(UNSCHEDULABLE):
        status["message"] = "every shard pod has a node"


async def roll_up_shard_failures(body: kopf.Body, status: dict[str, Any], job: dict[str, Any],
                                 ctx: Context, ending: bool) -> list[dict[str, Any]]:
    """Record each runner pod that failed (why, which shard) in the status with a Warning
    Event, so an OOMKilled or crashed shard is visible even when its retry succeeds.

    While the job runs, the pods are read only when the Job counts more failures than are
    known. As it ends they are read once whatever the Job counts: a failure its
    podFailurePolicy ignores (a pod with a DisruptionTarget condition) is never counted,
    and a retry can finish before the count reaches a roll-up."""
    known = list(status.get("shardFailures") or [])
    counted = (job.get("status") or {}).get("failed", 0)
    if (counted <= len(known) and not ending) or len(known) >= MAX_SHARD_FAILURES:
        return known
    pods = await ctx.core.list_namespaced_pod(body.metadata.namespace,
                                              label_selector=f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    seen = {failure["pod"] for failure in known}
    limit = (job["spec"]["template"]["spec"]["containers"][0].get("resources") or {}).get("limits", {}).get("memory")
    for pod in sorted(ctx.plain(pods)["items"], key=lambda p: p["metadata"]["creationTimestamp"]):
        failure = shard_failure(pod, limit)
        if failure is None or failure["pod"] in seen or len(known) >= MAX_SHARD_FAILURES:
            continue
        known.append(failure)
        post_event(body, "Warning", "ShardFailed", failure["message"])
        log.warning("%s/%s: %s", body.metadata.namespace, body.metadata.name, failure["message"],
                    extra={"shard": failure["shard"]})
    if known:
        status["shardFailures"] = known
    return known


async def waiting_pods(namespace: str, job: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    """The Job's pods, read only while some active pod is not ready (starting, or stuck)."""
    job_status = job.get("status") or {}
    if job_status.get("active", 0) <= (job_status.get("ready") or 0):
        return []
    pods = await ctx.core.list_namespaced_pod(namespace,
                                              label_selector=f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    return ctx.plain(pods)["items"]


def unschedulable_message(pods: list[dict[str, Any]]) -> str | None:
    """The scheduler's word on a shard pod no node can take now (e.g. insufficient cpu)."""
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                    and cond.get("reason") == "Unschedulable":
                return cond.get("message") or "no node can take it"
    return None


def missing_secret(pods: list[dict[str, Any]], spec: PravahJobSpec, namespace: str) -> str | None:
    """Which credentialsSecret (or key of it) the runner pods cannot start without, naming
    the field; None if none is missing. The operator may not read Secrets: the kubelet, which
    resolves them for the pods, says so in the containers' waiting state."""
    fields: dict[str, list[str]] = collections.defaultdict(list)
    for role, location in (("source", spec.source), ("output", spec.output)):
        if location is not None and location.s3 is not None and location.s3.credentialsSecret:
            fields[location.s3.credentialsSecret].append(f"spec.{role}.s3.credentialsSecret")
    if not fields:
        return None
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") != "CreateContainerConfigError":
                continue
            message = waiting.get("message") or ""
            found = SECRET_NOT_FOUND.search(message) or SECRET_KEY_NOT_FOUND.search(message)
            if found is None or found["secret"] not in fields:
                continue
            secret, named = found["secret"], " and ".join(fields[found["secret"]])
            if "key" in found.groupdict():
                return f"{named}: secret {secret!r} in namespace {namespace} has no key {found['key']}"
            return f"{named}: secret {secret!r} not found in namespace {namespace}"
    return None


def shard_failure(pod: dict[str, Any], memory_limit: str | None) -> dict[str, Any] | None:
    """The failure of a runner pod, from its container's terminated state; None if it did not fail."""
    if (pod.get("status") or {}).get("phase") != "Failed":
        return None
    shard = int(pod["metadata"].get("annotations", {}).get(planning.COMPLETION_INDEX, 0))
    name = pod["metadata"]["name"]
    terminated = next((c["state"]["terminated"] for c in pod["status"].get("containerStatuses") or []
                       if (c.get("state") or {}).get("terminated")), {})
    reason = terminated.get("reason") or pod["status"].get("reason") or "Failed"
    exit_code = terminated.get("exitCode")
    if reason == "OOMKilled":
        message = f"shard {shard} (pod {name}) was OOMKilled: the runner needed more than its memory limit " \
                  f"{memory_limit}; raise spec.resources.memory"
    else:
        message = f"shard {shard} (pod {name}) failed: {reason}, exit code {exit_code}"
    return {"shard": shard, "pod": name, "reason": reason, "exitCode": exit_code, "message": truncate(message)}


async def roll_up_progress(status: dict[str, Any], uid: str, ctx: Context) -> None:
    """Progress from the runners' heartbeats, with the rate since the last roll-up; skipped
    (not fatal) while PostgreSQL is away."""
    try:
        progress = await asyncio.wait_for(ctx.store.progress(uid), timeout=5)
        samples = await asyncio.wait_for(ctx.store.error_samples(uid), timeout=5)
    except Exception as exc:
        log.warning("progress of %s not available: %s", uid, exc.__class__.__name__)
        return
    now, done = time.monotonic(), progress["bytes_done"]
    previous = ctx.last_progress.get(uid)
    ctx.last_progress[uid] = (now, done)
    rate = (max(done - previous[1], 0) / (now - previous[0])) if previous and now > previous[0] else 0.0
    status["progress"] = {
        "filesTotal": progress["files_total"], "filesDone": progress["files_done"],
        "bytesTotal": progress["bytes_total"], "bytesDone": done, "bytesPerSecond": int(rate)}
    status["errors"] = {"count": progress["errors"], "samples": [
        error_sample(sample["path"], sample["reason"], sample.get("line")) for sample in samples]}
    if progress["threads"]:
        status["threads"] = progress["threads"]


def started_at(status: dict[str, Any]) -> float:
    start = status.get("startTime")
    if not start:
        return time.time()
    return datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


async def succeed(body: kopf.Body, status: dict[str, Any], spec: PravahJobSpec, ctx: Context) -> None:
    """Finish from the job's small stored summary; the full result stays in the output storage."""
    uid = body.metadata.uid
    record = await ctx.store.job_summary(uid)
    if record is None:
        await ctx.store.set_phase(uid, "Failed", "ResultMissing", "every shard finished but no result was recorded")
        return transition(body, status, "Failed", "ResultMissing",
                          "every shard finished but no merged result was recorded")
    errors = record["errors"]
    status["result"] = {"uri": record["result_uri"], "summary": record["summary"],
                        "reuse": record["summary"].get("reuse")}
    total = (status.get("shards") or {}).get("total") or record["summary"].get("shards") or 1
    failed_pods = (status.get("shards") or {}).get("failed", 0)
    status["shards"] = {"total": total, "active": 0, "succeeded": total, "failed": failed_pods}
    status["errors"] = {"count": errors, "samples": [
        error_sample(error["path"], error["reason"], error.get("line")) for error in record["error_samples"]]}
    listed = (status.get("progress") or {}).get("filesTotal") or record["files"]
    # Every listed file was handled: processed, or reported (e.g. changed during the job).
    status["progress"] = {**(status.get("progress") or {}), "percent": 100, "bytesPerSecond": 0,
                          "filesDone": listed, "filesTotal": listed, "files": fraction(listed, listed),
                          "throughput": None}
    metrics.job_finished(spec.operation.type, record["files"], record["bytes"], errors,
                         time.time() - started_at(status))
    judged = record["summary"].get("checks")
    if failed := checks.failure(errors, spec.maxErrors, judged):
        reason, message = failed
        await ctx.store.set_phase(uid, "Failed", reason, message)
        return transition(body, status, "Failed", reason, message)
    message = f"{record['files']} files, {record['bytes']} bytes, {errors} errors; result at {record['result_uri']}"
    if judged and judged["warned"]:
        post_event(body, "Warning", "ChecksWarned", checks.verdict(judged))
        message = f"{message}; {checks.verdict(judged)}"
    await ctx.store.set_phase(uid, "Succeeded", "Completed", message)
    transition(body, status, "Succeeded", "Completed", message)


async def cancel(body: kopf.Body, status: dict[str, Any], ctx: Context) -> None:
    """`spec.suspend: true` stops the job for good: the Job and its pods are deleted."""
    name = status.get("jobName") or planning.job_name(body.metadata.name, body.metadata.uid)
    await delete_job(ctx, name, body.metadata.namespace)
    await ctx.store.set_phase(body.metadata.uid, "Cancelled", "Suspended", "spec.suspend was set")
    transition(body, status, "Cancelled", "Suspended", "spec.suspend was set; the runner pods were stopped")


async def delete_job(ctx: Context, name: str, namespace: str) -> None:
    """Delete the Job and, in the background, its pods; already gone is fine."""
    try:
        await ctx.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
