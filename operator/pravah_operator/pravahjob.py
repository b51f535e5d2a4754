"""kopf handlers for PravahJob: admit, run as an Indexed Job, roll up status, cancel, clean up.

Every handler funnels into `reconcile`, which looks at the world as it is (the CR's status,
the Job, PostgreSQL) and moves the job one step on. That makes each call idempotent and a
restarted operator simply carries on: the Job's name is derived from the PravahJob, so it is
created at most once, and every database write is keyed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any

import kopf
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah.results import summarize
from pravah.spec import PravahJobSpec, describe_errors
from pravah.store import JobRecord, Store

from pravah_operator import egress, metrics, planning
from pravah_operator.settings import OperatorSettings
from pravah_operator.status import (
    MAX_SHARD_FAILURES,
    condition,
    fraction,
    human_rate,
    now_rfc3339,
    percent,
    set_condition,
)

GROUP, VERSION, PLURAL = "pravah.io", "v1alpha1", "pravahjobs"
RESOURCE = (GROUP, VERSION, PLURAL)
TERMINAL = ("Succeeded", "Failed", "Cancelled")
ACTIVE = ("Running",)
# How the kubelet says that a Secret a container takes variables from is missing (the
# container waits in CreateContainerConfigError): the Secret itself, or one of its keys.
SECRET_NOT_FOUND = re.compile(r'secret "(?P<secret>[^"]+)" not found')
SECRET_KEY_NOT_FOUND = re.compile(r"couldn't find key (?P<key>\S+) in Secret [^/\s]+/(?P<secret>\S+)")
log = logging.getLogger("pravah.operator")


class Context:
    """What the handlers share: settings, clients, and one lock per job."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient, store: Store):
        self.settings = settings
        self.api = api
        self.store = store
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        self.locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def plain(self, obj: Any) -> dict[str, Any]:
        return self.api.sanitize_for_serialization(obj)


def context_of(memo: Any) -> Context:
    return memo["context"]


@kopf.on.create(*RESOURCE)
async def created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


@kopf.on.field(*RESOURCE, field="spec.suspend")
async def suspend_changed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


@kopf.timer(*RESOURCE, interval=2.0, initial_delay=1.0,
            when=lambda status, **_: status.get("phase") not in TERMINAL)
async def follow(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(body, patch, context_of(memo))


@kopf.on.delete(*RESOURCE)
async def deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the history: the record stays in PostgreSQL; the Job goes with its owner."""
    if (body.get("status") or {}).get("phase") not in TERMINAL:
        await context_of(memo).store.set_phase(body.metadata.uid, "Cancelled", "Deleted", "the PravahJob was deleted")
    metrics.forget(body.metadata.uid)


async def reconcile(body: kopf.Body, patch: kopf.Patch, ctx: Context) -> None:
    async with ctx.locks[body.metadata.uid]:
        status = dict(body.get("status") or {})
        phase = status.get("phase")
        if phase in TERMINAL:
            return
        try:
            spec = PravahJobSpec.model_validate(dict(body["spec"]))
        except ValidationError as exc:
            return transition(body, patch, status, "Failed", "InvalidSpec", "; ".join(describe_errors(exc, "spec")))
        if spec.suspend:
            return await cancel(body, patch, status, ctx)
        if phase in (None, "Pending", "Queued"):
            return await admit(body, patch, status, spec, ctx)
        return await roll_up(body, patch, status, spec, ctx)


def transition(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], phase: str, reason: str,
               message: str) -> None:
    """Set the phase with its conditions, and tell the story as an Event."""
    generation = body.metadata.get("generation")
    previous = status.get("conditions") or []
    conditions = previous
    for kind, is_true in (("Running", phase == "Running"), ("Complete", phase == "Succeeded"),
                          ("Failed", phase == "Failed"), ("Cancelled", phase == "Cancelled"),
                          ("Queued", phase == "Queued"), ("Ready", phase == "Succeeded"),
                          ("Stalled", phase == "Failed"), ("Reconciling", phase not in TERMINAL)):
        # Ready/Stalled/Reconciling follow kstatus, so Flux's `wait` and health checks work.
        if is_true or kind == "Ready" or any(c.get("type") == kind for c in previous):
            conditions = set_condition(conditions, condition(kind, is_true, reason, message, generation, previous))
    patch.status.update({"phase": phase, "reason": reason, "message": message, "observedGeneration": generation,
                         "conditions": conditions})
    if phase in TERMINAL:
        patch.status["completionTime"] = now_rfc3339()
    if status.get("phase") != phase or status.get("reason") != reason:
        kopf.event(body, type="Warning" if phase == "Failed" else "Normal", reason=phase, message=message)
        log.info("%s/%s: %s (%s) %s", body.metadata.namespace, body.metadata.name, phase, reason, message)
    status.update(phase=phase, reason=reason)
    metrics.phase_changed(body.metadata.uid, phase)


async def admit(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], spec: PravahJobSpec,
                ctx: Context) -> None:
    """Check what the schema cannot, size the runners, then create the Job (or queue)."""
    name, namespace, uid = body.metadata.name, body.metadata.namespace, body.metadata.uid
    if spec.output is None:
        return transition(body, patch, status, "Failed", "InvalidSpec",
                          "spec.output is required: the result needs somewhere to go")
    # The admission policy `pravah-tenancy` refuses these first; this holds where it is not installed.
    for field, location in (("spec.source.s3", spec.source.s3), ("spec.output.s3", spec.output.s3)):
        if location is not None and not ctx.settings.tenancy.endpoint_allowed(location.endpoint):
            return transition(body, patch, status, "Failed", "EndpointNotAllowed",
                              f"{field}.endpoint: {location.endpoint!r} is not an allowed S3 endpoint "
                              f"(PRAVAH_ALLOWED_S3_ENDPOINTS)")
    running = await running_in_namespace(ctx, namespace, uid)
    if running >= ctx.settings.max_running_per_namespace:
        if status.get("phase") != "Queued":
            transition(body, patch, status, "Queued", "ConcurrencyLimit",
                       f"{running} jobs running in {namespace}; at most "
                       f"{ctx.settings.max_running_per_namespace} run at once")
        return
    nodes = ctx.plain(await ctx.core.list_node())["items"]
    try:
        sizing = planning.size_runners(spec, nodes)
    except planning.PlanningError as exc:
        return transition(body, patch, status, "Failed", "Unschedulable", str(exc))
    await ctx.store.record_job(JobRecord(uid=uid, namespace=namespace, name=name, operation=spec.operation.type,
                                         spec=spec.model_dump(mode="json"), shards=sizing.shards,
                                         threads=sizing.cpu_per_runner))
    policy = egress.egress_policy(spec, name, namespace, uid, ctx.settings)
    kopf.adopt(policy, owner=body)
    await create_if_absent(ctx.networking.create_namespaced_network_policy, namespace, policy)
    manifest = planning.job_manifest(spec, name, namespace, uid, sizing, ctx.settings)
    kopf.adopt(manifest, owner=body)
    await create_if_absent(ctx.batch.create_namespaced_job, namespace, manifest)
    patch.status.update({
        "startTime": status.get("startTime") or now_rfc3339(), "jobName": manifest["metadata"]["name"],
        "cpuPerRunner": sizing.cpu_per_runner, "threads": sizing.cpu_per_runner,
        "shards": {"total": sizing.shards, "active": 0, "succeeded": 0, "failed": 0,
                   "ready": fraction(0, sizing.shards)},
    })
    await ctx.store.set_phase(uid, "Running")
    transition(body, patch, status, "Running", "JobCreated",
               f"{sizing.shards} shards × {sizing.cpu_per_runner} CPU on Job {manifest['metadata']['name']}")


async def create_if_absent(create, namespace: str, manifest: dict[str, Any]) -> None:
    """Create a child object; one left by an earlier, interrupted call is fine (409)."""
    try:
        await create(namespace, manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise


async def running_in_namespace(ctx: Context, namespace: str, uid: str) -> int:
    listing = await ctx.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return sum(1 for item in listing["items"]
               if item["metadata"]["uid"] != uid and (item.get("status") or {}).get("phase") in ACTIVE)


async def read_job(ctx: Context, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return ctx.plain(await ctx.batch.read_namespaced_job(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def roll_up(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], spec: PravahJobSpec,
                  ctx: Context) -> None:
    """Fold the Job's and the runners' state into the status; finish the job when they are done."""
    uid, namespace = body.metadata.uid, body.metadata.namespace
    job_name = status.get("jobName") or planning.job_name(body.metadata.name, uid)
    job = await read_job(ctx, job_name, namespace)
    if job is None:
        record = await ctx.store.job(uid)
        if record is not None and record["result"] is not None:
            return await succeed(body, patch, status, spec, ctx)  # finished, then removed by its TTL
        return transition(body, patch, status, "Failed", "JobDeleted", f"Job {job_name} was deleted before it finished")
    job_status = job.get("status") or {}
    total = job["spec"].get("completions") or 1
    patch.status["shards"] = {
        "total": total, "active": job_status.get("active", 0), "succeeded": job_status.get("succeeded", 0),
        "failed": job_status.get("failed", 0), "ready": fraction(job_status.get("succeeded", 0), total)}
    await roll_up_progress(patch, status, uid, ctx)
    failures = await roll_up_shard_failures(body, patch, status, job, ctx)
    missing = await missing_secret(namespace, job, spec, ctx)
    if missing is not None:
        await delete_job(ctx, job_name, namespace)
        await ctx.store.set_phase(uid, "Failed", "MissingSecret", missing)
        return transition(body, patch, status, "Failed", "MissingSecret", missing)
    job_conditions = {c["type"]: c for c in job_status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in job_conditions:
        return await succeed(body, patch, status, spec, ctx)
    if "Failed" in job_conditions:
        failed = job_conditions["Failed"]
        reason, message = failed.get("reason") or "JobFailed", failed.get("message") or "the Job failed"
        oom = next((f for f in failures if f["reason"] == "OOMKilled"), None)
        if oom is not None:
            reason, message = "OOMKilled", f"{oom['message']}; {message}"
        await ctx.store.set_phase(uid, "Failed", reason, message)
        return transition(body, patch, status, "Failed", reason, message)
    if job["spec"].get("suspend"):
        if status.get("phase") != "Queued":
            transition(body, patch, status, "Queued", "WaitingForAdmission", "the Job waits for Kueue to admit it")
    elif status.get("phase") != "Running":
        transition(body, patch, status, "Running", "Admitted", "the Job's pods are starting")


async def roll_up_shard_failures(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], job: dict[str, Any],
                                 ctx: Context) -> list[dict[str, Any]]:
    """Record each runner pod that failed (why, which shard) in the status with a Warning
    Event, so an OOMKilled or crashed shard is visible even when its retry succeeds."""
    known = list(status.get("shardFailures") or [])
    if (job.get("status") or {}).get("failed", 0) <= len(known) or len(known) >= MAX_SHARD_FAILURES:
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
        kopf.event(body, type="Warning", reason="ShardFailed", message=failure["message"])
        log.warning("%s/%s: %s", body.metadata.namespace, body.metadata.name, failure["message"])
    patch.status["shardFailures"] = known
    return known


async def missing_secret(namespace: str, job: dict[str, Any], spec: PravahJobSpec, ctx: Context) -> str | None:
    """Which credentialsSecret (or key of it) the runner pods cannot start without, naming
    the field; None if none is missing. The operator may not read Secrets: the kubelet, which
    resolves them for the pods, says so in the containers' waiting state. Pods are looked at
    only while some of the Job's active pods are not ready."""
    job_status = job.get("status") or {}
    if job_status.get("active", 0) <= (job_status.get("ready") or 0):
        return None
    fields: dict[str, list[str]] = collections.defaultdict(list)
    for role, location in (("source", spec.source), ("output", spec.output)):
        if location is not None and location.s3 is not None and location.s3.credentialsSecret:
            fields[location.s3.credentialsSecret].append(f"spec.{role}.s3.credentialsSecret")
    if not fields:
        return None
    pods = await ctx.core.list_namespaced_pod(namespace,
                                              label_selector=f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    for pod in ctx.plain(pods)["items"]:
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
    return {"shard": shard, "pod": name, "reason": reason, "exitCode": exit_code, "message": message}


async def roll_up_progress(patch: kopf.Patch, status: dict[str, Any], uid: str, ctx: Context) -> None:
    """Progress from the runners' heartbeats; skipped (not fatal) while PostgreSQL is away."""
    try:
        progress = await asyncio.wait_for(ctx.store.progress(uid), timeout=5)
        samples = await asyncio.wait_for(ctx.store.error_samples(uid), timeout=5)
    except Exception as exc:
        log.warning("progress of %s not available: %s", uid, exc.__class__.__name__)
        return
    elapsed = max(time.time() - started_at(status), 1e-3)
    rate = progress["bytes_done"] / elapsed
    patch.status["progress"] = {
        "filesTotal": progress["files_total"], "filesDone": progress["files_done"],
        "bytesTotal": progress["bytes_total"], "bytesDone": progress["bytes_done"],
        "percent": percent(progress["bytes_done"], progress["bytes_total"]) if progress["bytes_total"]
        else percent(progress["files_done"], progress["files_total"]),
        "bytesPerSecond": int(rate), "files": fraction(progress["files_done"], progress["files_total"]),
        "throughput": human_rate(rate)}
    patch.status["errors"] = {"count": progress["errors"], "samples": samples}
    if progress["threads"]:
        patch.status["threads"] = progress["threads"]


def started_at(status: dict[str, Any]) -> float:
    start = status.get("startTime")
    if not start:
        return time.time()
    return datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


async def succeed(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], spec: PravahJobSpec,
                  ctx: Context) -> None:
    uid = body.metadata.uid
    record = await ctx.store.job(uid)
    if record is None or record["result"] is None:
        return transition(body, patch, status, "Failed", "ResultMissing",
                          "every shard finished but no merged result was recorded")
    document = json.loads(record["result"])
    summary = summarize(document)
    errors = len(document["errors"])
    patch.status["result"] = {"uri": record["result_uri"], "summary": summary}
    total = record["shards"]
    failed_pods = (patch.status.get("shards") or status.get("shards") or {}).get("failed", 0)
    patch.status["shards"] = {"total": total, "active": 0, "succeeded": total, "failed": failed_pods,
                              "ready": fraction(total, total)}
    patch.status["errors"] = {"count": errors, "samples": [
        {key: value for key, value in error.items() if key in ("path", "reason", "line")}
        for error in document["errors"][:10]]}
    patch.status["progress"] = {**patch.status.get("progress", {}), "percent": 100,
                                "files": fraction(document["files"], document["files"])}
    metrics.job_finished(document, time.time() - started_at(status))
    if spec.maxErrors is not None and errors > spec.maxErrors:
        message = f"{errors} files failed, more than maxErrors={spec.maxErrors}"
        await ctx.store.set_phase(uid, "Failed", "TooManyErrors", message)
        return transition(body, patch, status, "Failed", "TooManyErrors", message)
    message = f"{document['files']} files, {document['bytes']} bytes, {errors} errors; result at {record['result_uri']}"
    await ctx.store.set_phase(uid, "Succeeded", "Completed", message)
    transition(body, patch, status, "Succeeded", "Completed", message)


async def cancel(body: kopf.Body, patch: kopf.Patch, status: dict[str, Any], ctx: Context) -> None:
    """`spec.suspend: true` stops the job for good: the Job and its pods are deleted."""
    name = status.get("jobName") or planning.job_name(body.metadata.name, body.metadata.uid)
    await delete_job(ctx, name, body.metadata.namespace)
    await ctx.store.set_phase(body.metadata.uid, "Cancelled", "Suspended", "spec.suspend was set")
    transition(body, patch, status, "Cancelled", "Suspended", "spec.suspend was set; the runner pods were stopped")


async def delete_job(ctx: Context, name: str, namespace: str) -> None:
    """Delete the Job and, in the background, its pods; already gone is fine."""
    try:
        await ctx.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
