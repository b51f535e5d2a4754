"""/jobs: create, list, read, cancel or purge PravahJobs, and follow them (results, events, logs).

A job's id is its PravahJob's metadata.uid: stable for the job's whole life, unique across
re-creations under the same name, and safe in a URL. An id is resolved to its namespace and
name through (in order) a small in-process map, PostgreSQL (jobs created through this API,
and every job the operator has admitted) and finally a cluster-wide listing of pravahjobs;
the CR itself is always read afterwards and is the source of truth.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah_api import models
from pravah_api.auth import principal_of
from pravah_api.errors import ApiError, bad_request, conflict, not_found
from pravah_api.k8s import CREATED_BY_LABEL
from pravah_api.keys import AUTH, KUBE, LOCATIONS, SETTINGS, STORE
from pravah_api.routing import ID_PARAM, Operation, Param, read_model, respond
from pravah_operator.status import PHASES, TERMINAL_PHASES, PravahJobStatus

MAX_LOCATIONS = 50_000
log = logging.getLogger("pravah.api")
STREAM_CHUNK = 1 << 20


# -- id -> (namespace, name) --------------------------------------------------------------

class Locations:
    """uid -> (namespace, name), most recently used kept."""

    def __init__(self) -> None:
        self.map: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def put(self, uid: str, namespace: str, name: str) -> None:
        self.map[uid] = (namespace, name)
        self.map.move_to_end(uid)
        while len(self.map) > MAX_LOCATIONS:
            self.map.popitem(last=False)

    def get(self, uid: str) -> tuple[str, str] | None:
        return self.map.get(uid)

    def forget(self, uid: str) -> None:
        self.map.pop(uid, None)


def parse_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found(f"no job with id {value!r} (ids are UUIDs)", "id") from None


async def find_job(request: web.Request, uid: str) -> dict[str, Any]:
    """The PravahJob whose uid is `uid` (read with the service's credential), or 404.

    A purged job is gone as soon as its deletion is accepted, although the object lives on
    until the operator has removed its finalizer."""
    app = request.app
    locations: Locations = app[LOCATIONS]
    place = locations.get(uid) or await app[STORE].locate_job(uid)
    if place is not None:
        obj = await app[KUBE].get_job(*place)
        if obj is not None and obj["metadata"]["uid"] == uid:
            locations.put(uid, *place)
            if obj["metadata"].get("deletionTimestamp"):
                raise not_found(f"job {uid} is being deleted", "id")
            return obj
    for obj in await app[KUBE].list_jobs(None):
        meta = obj["metadata"]
        locations.put(meta["uid"], meta["namespace"], meta["name"])
        if meta["uid"] == uid and not meta.get("deletionTimestamp"):
            return obj
    locations.forget(uid)
    raise not_found(f"no job with id {uid}", "id")


async def authorized_job(request: web.Request, verb: str) -> dict[str, Any]:
    """Authenticate, find the job, and check that the caller may `verb` it."""
    principal = await principal_of(request)
    uid = parse_id(request.match_info["id"])
    obj = await find_job(request, uid)
    await request.app[AUTH].authorize(principal, verb, obj["metadata"]["namespace"])
    return obj


# -- representations ----------------------------------------------------------------------

def links(uid: str) -> dict[str, str]:
    base = f"/jobs/{uid}"
    return {"self": base, "results": f"{base}/results", "events": f"{base}/events", "logs": f"{base}/logs"}


def summary(obj: dict[str, Any]) -> dict[str, Any]:
    meta, status = obj["metadata"], obj.get("status") or {}
    return {"id": meta["uid"], "name": meta["name"], "namespace": meta["namespace"],
            "phase": status.get("phase") if status.get("phase") in PHASES else None,
            "percent": (status.get("progress") or {}).get("percent"),
            "createdAt": meta.get("creationTimestamp"), "links": links(meta["uid"])}


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def detail(obj: dict[str, Any]) -> models.Job:
    raw_status = obj.get("status") or {}
    status = None
    if raw_status:
        known = {key: value for key, value in raw_status.items() if key in PravahJobStatus.model_fields}
        try:
            status = PravahJobStatus.model_validate(known)
        except ValidationError:
            status = None
    started, completed = raw_status.get("startTime"), raw_status.get("completionTime")
    start = parse_time(started)
    end = parse_time(completed) or (time.time() if start is not None else None)
    timings = models.Timings(createdAt=obj["metadata"].get("creationTimestamp"), startedAt=started,
                             completedAt=completed,
                             durationSeconds=round(max(end - start, 0.0), 3) if start is not None else None)
    return models.Job(
        **summary(obj), spec=obj["spec"], status=status,
        progress=status.progress if status else None, shards=status.shards if status else None,
        errors=status.errors if status else None, timings=timings,
        resultUri=status.result.uri if status and status.result else None)


def dump_job(job: models.Job) -> dict[str, Any]:
    """The job as JSON, with spec and status as stored (fields nobody set are left out)."""
    data = job.model_dump(mode="json", exclude={"spec", "status", "progress", "shards", "errors"})
    for key in ("spec", "status", "progress", "shards", "errors"):
        value = getattr(job, key)
        data[key] = value.model_dump(mode="json", exclude_unset=True) if value is not None else None
    return data


# -- handlers -----------------------------------------------------------------------------

def request_hash(namespace: str, name: str | None, spec: dict[str, Any]) -> str:
    canonical = json.dumps({"namespace": namespace, "name": name, "spec": spec}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_job(request: web.Request) -> web.Response:
    app = request.app
    principal = await principal_of(request)
    job, body = await read_model(request, models.JobCreate)
    namespace = job.namespace or app[SETTINGS].api_default_namespace
    await app[AUTH].authorize(principal, "create", namespace)
    spec = {key: value for key, value in body.items() if key not in ("name", "namespace")}
    key = request.headers.get("Idempotency-Key")
    if key is None:
        obj = await create_resource(request, namespace, job.name, spec, principal.name)
        try:  # a shortcut for id look-ups only: the job exists whatever happens here
            await app[STORE].remember_job(obj["metadata"]["uid"], namespace, obj["metadata"]["name"])
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record where job %s lives: %r", obj["metadata"]["uid"], exc)
        return created(obj)
    if not 1 <= len(key) <= 255:
        raise bad_request("Idempotency-Key must have 1 to 255 characters", "Idempotency-Key")
    fingerprint = request_hash(namespace, job.name, spec)
    store = app[STORE]
    async with store.idempotency(principal.name, key) as connection:
        earlier = await store.idempotent_answer(connection, principal.name, key,
                                                app[SETTINGS].api_idempotency_hours)
        if earlier is not None:
            if earlier["request_hash"] != fingerprint:
                raise conflict("this Idempotency-Key was used for a different request", "Idempotency-Key",
                               "idempotency_key_reused")
            obj = await app[KUBE].get_job(earlier["namespace"], earlier["name"])
            if obj is None or obj["metadata"]["uid"] != earlier["uid"]:
                obj = {"metadata": {"uid": earlier["uid"], "name": earlier["name"],
                                    "namespace": earlier["namespace"]}}
            return created(obj, replayed=True)
        obj = await create_resource(request, namespace, job.name, spec, principal.name)
        meta = obj["metadata"]
        await store.save_idempotent_answer(connection, principal.name, key, fingerprint, meta["uid"],
                                           namespace, meta["name"])
    return created(obj)


async def create_resource(request: web.Request, namespace: str, name: str | None, spec: dict[str, Any],
                          creator: str) -> dict[str, Any]:
    label = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in creator)
    label = label[:63].strip("-_.") or "unknown"
    try:
        obj = await request.app[KUBE].create_job(namespace, name, spec, {CREATED_BY_LABEL: label})
    except ApiException as exc:
        if exc.status == 404:
            raise not_found(f"namespace {namespace!r} does not exist", "namespace") from None
        raise
    meta = obj["metadata"]
    request.app[LOCATIONS].put(meta["uid"], meta["namespace"], meta["name"])
    return obj


def created(obj: dict[str, Any], replayed: bool = False) -> web.Response:
    body = summary(obj)
    headers = {"Location": body["links"]["self"]}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return respond(models.JobSummary.model_validate(body), 201, headers)


def encode_cursor(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    raw = json.dumps([meta.get("creationTimestamp") or "", meta["uid"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, uid = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(uid, str):
            raise ValueError
        return created_at, uid
    except (ValueError, TypeError, UnicodeDecodeError):
        raise bad_request("invalid continue token", "continue") from None


def sort_key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("creationTimestamp") or "", meta["uid"]


async def list_jobs(request: web.Request) -> web.Response:
    app, query = request.app, request.query
    principal = await principal_of(request)
    settings = app[SETTINGS]
    namespace = query.get("namespace") or None
    phase = query.get("phase") or None
    if phase is not None and phase not in PHASES:
        raise ApiError(422, f"phase must be one of {', '.join(PHASES)}", "phase")
    try:
        limit = int(query.get("limit", settings.api_page_size))
    except ValueError:
        raise ApiError(422, "limit must be an integer", "limit") from None
    if not 1 <= limit <= settings.api_max_page_size:
        raise ApiError(422, f"limit must be between 1 and {settings.api_max_page_size}", "limit")
    cursor = decode_cursor(query["continue"]) if query.get("continue") else None
    if namespace is not None:
        await app[AUTH].authorize(principal, "list", namespace)
        items = await app[KUBE].list_jobs(namespace)
    else:
        allowed = await app[AUTH].namespaces_for(principal, "list")
        if allowed == []:
            items = []
        else:
            items = await app[KUBE].list_jobs(None)
            if allowed is not None:
                allowed_set = set(allowed)
                items = [obj for obj in items if obj["metadata"]["namespace"] in allowed_set]
    if phase is not None:
        items = [obj for obj in items
                 if ((obj.get("status") or {}).get("phase") or "Pending") == phase]
    # Newest first; the cursor is the last item of the previous page.
    items.sort(key=sort_key, reverse=True)
    if cursor is not None:
        items = [obj for obj in items if sort_key(obj) < cursor]
    page = items[:limit]
    next_token = encode_cursor(page[-1]) if len(items) > limit else None
    for obj in page:
        meta = obj["metadata"]
        app[LOCATIONS].put(meta["uid"], meta["namespace"], meta["name"])
    return respond(models.JobList(items=[models.JobSummary.model_validate(summary(obj)) for obj in page],
                                  next=next_token))


async def get_job(request: web.Request) -> web.Response:
    obj = await authorized_job(request, "get")
    return respond(dump_job(detail(obj)))


def boolean_query(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ApiError(422, f"{name} must be true or false", name)


async def delete_job(request: web.Request) -> web.StreamResponse:
    purge = boolean_query(request, "purge")
    obj = await authorized_job(request, "delete" if purge else "patch")
    meta = obj["metadata"]
    kube = request.app[KUBE]
    if purge:
        await kube.delete_job(meta["namespace"], meta["name"], meta["uid"])
        request.app[LOCATIONS].forget(meta["uid"])
        return web.Response(status=204)
    phase = (obj.get("status") or {}).get("phase")
    if phase in TERMINAL_PHASES:
        raise conflict(f"the job has already finished (phase {phase}); use ?purge=true to delete it")
    obj = await kube.suspend_job(meta["namespace"], meta["name"])
    return respond(models.JobSummary.model_validate(summary(obj)), 202)


async def job_results(request: web.Request) -> web.StreamResponse:
    obj = await authorized_job(request, "get")
    app = request.app
    uid = obj["metadata"]["uid"]
    status = obj.get("status") or {}
    uri = (status.get("result") or {}).get("uri")
    history = await app[STORE].job_history(uid)
    has_result = bool(history and history["has_result"])
    small = has_result and (history["result_bytes"] or 0) <= app[SETTINGS].api_inline_result_bytes
    if small or (has_result and not (uri or "").startswith("s3://")):
        text = await app[STORE].result_text(uid)
        return await send_text(request, text)
    if (uri or "").startswith("s3://") and (obj["spec"].get("output") or {}).get("s3"):
        return await stream_s3(request, obj, uri)
    phase = status.get("phase") or "Pending"
    raise conflict(f"the job has no result yet (phase {phase})")


async def send_text(request: web.Request, text: str) -> web.StreamResponse:
    if len(text) <= STREAM_CHUNK:
        return web.Response(text=text, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for start in range(0, len(text), STREAM_CHUNK):
        await response.write(text[start:start + STREAM_CHUNK].encode())
    await response.write_eof()
    return response


async def stream_s3(request: web.Request, obj: dict[str, Any], uri: str) -> web.StreamResponse:
    """Stream result.json from the job's output bucket, with the job's own S3 credentials."""
    import aioboto3

    location = obj["spec"]["output"]["s3"]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    credentials: dict[str, str] = {}
    if location.get("credentialsSecret"):
        secret = await request.app[KUBE].secret(obj["metadata"]["namespace"], location["credentialsSecret"])
        credentials = {"aws_access_key_id": secret.get("AWS_ACCESS_KEY_ID"),
                       "aws_secret_access_key": secret.get("AWS_SECRET_ACCESS_KEY")}
    session = aioboto3.Session(**credentials)
    async with session.client("s3", endpoint_url=location.get("endpoint"),
                              region_name=location.get("region") or "us-east-1") as s3:
        try:
            answer = await s3.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's errors are generated classes
            raise ApiError(502, f"cannot read {uri}: {exc.__class__.__name__}") from None
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if answer.get("ContentLength") is not None:
            response.content_length = answer["ContentLength"]
        await response.prepare(request)
        body = answer["Body"]
        while chunk := await body.read(STREAM_CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response


def snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    data = {"id": obj["metadata"]["uid"], "phase": status.get("phase"), "reason": status.get("reason"),
            "message": status.get("message"), "progress": status.get("progress"), "shards": status.get("shards"),
            "errors": {"count": (status.get("errors") or {}).get("count", 0)}}
    if status.get("result"):
        data["result"] = status["result"]
    return data


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `status` on every change, `end` at a terminal phase, `deleted` if it goes."""
    obj = await authorized_job(request, "watch")
    settings = request.app[SETTINGS]
    kube = request.app[KUBE]
    meta = obj["metadata"]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(f"retry: {int(settings.api_events_interval * 1000)}\n\n".encode())
    last: dict[str, Any] | None = None
    last_write = time.monotonic()
    sequence = 0
    try:
        while True:
            if obj is None or obj["metadata"]["uid"] != meta["uid"]:
                await response.write(sse("deleted", {"id": meta["uid"]}, sequence + 1))
                break
            current = snapshot(obj)
            if current != last:
                sequence += 1
                await response.write(sse("status", current, sequence))
                last, last_write = current, time.monotonic()
            if current["phase"] in TERMINAL_PHASES:
                await response.write(sse("end", current, sequence + 1))
                break
            if time.monotonic() - last_write >= settings.api_events_heartbeat:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            await asyncio.sleep(settings.api_events_interval)
            obj = await kube.get_job(meta["namespace"], meta["name"])
        await response.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    except (ApiException, OSError, asyncio.TimeoutError):  # headers are sent: end the stream with a reason
        with contextlib.suppress(ConnectionResetError):
            await response.write(sse("error", {"message": "lost the Kubernetes API server; reconnect"}, sequence))
            await response.write_eof()
    return response


def sse(event: str, data: dict[str, Any], sequence: int) -> bytes:
    return f"id: {sequence}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def job_logs(request: web.Request) -> web.Response:
    """Logs of the running pods, or (once the pods are gone or unreadable) the archive in PostgreSQL."""
    obj = await authorized_job(request, "get")
    meta = obj["metadata"]
    entries = await request.app[KUBE].pod_logs(meta["namespace"], meta["name"])
    source = "pods"
    if entries is None:
        archived = await request.app[STORE].runner_logs(meta["uid"])
        entries = [{"shard": row["shard"], "pod": row["pod"], "log": row["log"],
                    "createdAt": row["created_at"].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}
                   for row in archived]
        source = "archive" if entries else "none"
    return respond(models.JobLogs(source=source, entries=[models.LogEntry.model_validate(e) for e in entries]))


# -- the routing table --------------------------------------------------------------------

TAG = "jobs"
PHASE_PARAM = Param("phase", "query", {"type": "string", "enum": list(PHASES)}, "Only jobs in this phase.")
ROUTES = [
    Operation("POST", "/jobs", create_job, "Create a job (a PravahJob)", TAG,
              {201: models.JobSummary}, body=models.JobCreate,
              params=(Param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 255},
                            "Retries with the same key return the same job instead of creating another."),),
              description="The body is the PravahJob spec, validated with the same model as the CRD, plus an "
                          "optional name and namespace."),
    Operation("GET", "/jobs", list_jobs, "List jobs, newest first", TAG, {200: models.JobList},
              params=(Param("namespace", "query", {"type": "string", "maxLength": 63}, "Only this namespace."),
                      PHASE_PARAM,
                      Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size."),
                      Param("continue", "query", {"type": "string", "maxLength": 256},
                            "The `next` token of the previous page."))),
    Operation("GET", "/jobs/{id}", get_job, "A job: spec, status, progress, timings, errors", TAG,
              {200: models.Job}, params=(ID_PARAM,)),
    Operation("DELETE", "/jobs/{id}", delete_job, "Cancel a job (or delete it with ?purge=true)", TAG,
              {202: models.JobSummary, 204: None},
              params=(ID_PARAM, Param("purge", "query", {"type": "boolean"},
                                      "Delete the PravahJob instead of cancelling it (history is kept).")),
              description="Cancelling sets spec.suspend; the operator stops the runner pods (phase Cancelled)."),
    Operation("GET", "/jobs/{id}/results", job_results, "The merged result of a finished job", TAG,
              {200: models.JobResult}, params=(ID_PARAM,),
              description="Small results come from PostgreSQL; large ones are streamed from the output storage."),
    Operation("GET", "/jobs/{id}/events", job_events, "Live progress as Server-Sent Events", TAG,
              {200: {"text/event-stream": {"schema": {"type": "string"}}}}, params=(ID_PARAM,),
              description="Events: `status` (JSON snapshot, on every change), `end` (terminal phase reached), "
                          "`deleted` (the job was deleted)."),
    Operation("GET", "/jobs/{id}/logs", job_logs, "Runner logs of a job", TAG, {200: models.JobLogs},
              params=(ID_PARAM,),
              description="From the pods while they can be read; from the archive in PostgreSQL afterwards."),
]
