"""/jobs: create, list, read, cancel or purge PravahJobs, and follow them (results, events, logs).

Who acts. In kubernetes auth mode callers are Kubernetes users, and every PravahJob call
(create, get, list, patch, delete) and the read of a job's credentialsSecret is made with
the caller's own bearer token: the API server itself authorizes, admits (the tenancy
admission policy checks the real user's rights on the Secrets and volumes a job names) and
audits the caller, never the API's service account. Reads go with the caller's token too,
so that one rule covers every PravahJob call, the audit log shows who read what, and an
event stream whose caller has lost access is refused by the API server at its next poll.
SubjectAccessReviews stay in front of each call: they decide before any work is done (an
id is looked up only where the caller may get jobs), which namespaces a listing covers, and
they guard what is still read with the service's credential: the job's pods and their logs
(callers are granted pravahjobs, not pods). In standalone mode callers are not Kubernetes
users: the same checks pass, then the service's credential acts.

Ids. A job's id is its PravahJob's metadata.uid: stable for the job's whole life, unique
across re-creations under the same name, and safe in a URL. An id is resolved to its
namespace and name through a small in-process map and PostgreSQL (jobs created through this
API, and every job the operator has admitted). Only a caller who may list pravahjobs in all
namespaces gets a fallback: a cluster-wide listing, made with that caller's rights. An id
the caller may not `get` answers exactly like an unknown one (404), so ids do not tell which
jobs exist; the CR itself is always read afterwards and is the source of truth.

Listing. GET /jobs pages with the API server's own `limit`/`continue`, so no request holds
more than one page: items come in the API server's order, by namespace, then by name. A
caller who may not list in all namespaces gets its namespaces one after another, in name
order, never a cluster-wide listing. The `phase` filter applies to each page as fetched, so
a filtered page may hold fewer than `limit` items, and any page may be empty while `next` is
set.
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
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from pravah.logs import REQUEST_ID_ANNOTATION
from pravah.spec import PravahJobSpec

from pravah_api import models
from pravah_api.auth import Principal, bearer_token, principal_of
from pravah_api.errors import ApiError, bad_request, conflict, from_kubernetes, not_found, unauthenticated
from pravah_api.k8s import CREATED_BY_LABEL, Kube
from pravah_api.keys import AUTH, KUBE, LOCATIONS, REQUEST_ID, SETTINGS, STORE, STREAMS
from pravah_api.request_id import HEADER, SANE
from pravah_api.routing import ID_PARAM, Operation, Param, read_model, respond
from pravah_operator import lineage
from pravah_operator.status import PHASES, TERMINAL_PHASES, PravahJobStatus, Shards

MAX_LOCATIONS = 50_000
log = logging.getLogger("pravah.api")
STREAM_CHUNK = 1 << 20
SEARCH_PAGE = 500  # jobs per page of the cluster-wide search for an id
MAX_FOLLOWED = 100  # jobs one event stream may follow (a page of the dashboard's list)


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


def unknown(uid: str) -> ApiError:
    """The one answer for an id that does not exist and for one the caller may not see."""
    return not_found(f"no job with id {uid} that you may see", "id")


@contextlib.asynccontextmanager
async def acting(request: web.Request) -> AsyncIterator[Kube]:
    """The client PravahJobs are touched with: the caller's own token where callers are
    Kubernetes users (closed when done), else the service's."""
    app = request.app
    if not app[AUTH].acts_as_caller:
        yield app[KUBE]
        return
    kube = app[KUBE].as_caller(bearer_token(request))
    try:
        yield kube
    except ApiException as exc:
        if exc.status == 401:  # the token expired since the TokenReview answer was cached
            raise unauthenticated("the Kubernetes API server no longer accepts the bearer token") from None
        raise
    finally:
        await kube.close()


async def visible_job(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The PravahJob, or None when it does not exist or the acting credential may not read it."""
    try:
        return await kube.get_job(namespace, name)
    except ApiException as exc:
        if exc.status == 403:
            return None
        raise


async def find_job(request: web.Request, principal: Principal, uid: str, kube: Kube) -> dict[str, Any]:
    """The PravahJob whose uid is `uid`, looked up only where `principal` may get jobs.

    A purged job is gone as soon as its deletion is accepted, although the object lives on
    until the operator has removed its finalizer."""
    app = request.app
    auth = app[AUTH]
    place = app[LOCATIONS].get(uid) or await app[STORE].locate_job(uid)
    if place is not None:
        if not await auth.allowed(principal, "get", place[0]):
            raise unknown(uid)
        obj = await visible_job(kube, *place)
        if obj is not None and obj["metadata"]["uid"] == uid:
            return current(request, obj)
    # Jobs nobody recorded yet (e.g. applied with kubectl and never admitted): searched only
    # where the caller may list them, cluster-wide only for who may list cluster-wide.
    namespaces = await auth.namespaces_for(principal, "list")
    for namespace in [None] if namespaces is None else namespaces:
        resume = None
        while True:
            page, resume = await kube.list_jobs(namespace, SEARCH_PAGE, resume)
            for obj in page:
                if obj["metadata"]["uid"] == uid:
                    return current(request, obj)
            if resume is None:
                break
    request.app[LOCATIONS].forget(uid)
    raise unknown(uid)


def current(request: web.Request, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    request.app[LOCATIONS].put(meta["uid"], meta["namespace"], meta["name"])
    if meta.get("deletionTimestamp"):
        raise not_found(f"job {meta['uid']} is being deleted", "id")
    return obj


async def authorized_job(request: web.Request, verb: str, kube: Kube, uid: str | None = None) -> dict[str, Any]:
    """Authenticate, find the job where the caller may see it, and check that they may `verb` it."""
    principal = await principal_of(request)
    uid = uid or parse_id(request.match_info["id"])
    obj = await find_job(request, principal, uid, kube)
    if verb != "get":
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
            "percent": (status.get("progress") or {}).get("percent"), "shards": shards_of(status),
            "errorCount": (status.get("errors") or {}).get("count", 0),
            "createdAt": meta.get("creationTimestamp"), "links": links(meta["uid"])}


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def shards_of(status: dict[str, Any]) -> Shards | None:
    """The status's shard counts, or None where they are not what the operator writes."""
    try:
        return Shards.model_validate(status["shards"]) if status.get("shards") else None
    except ValidationError:
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
        **{**summary(obj), "shards": status.shards if status else None}, spec=obj["spec"], status=status,
        progress=status.progress if status else None,
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
    if key is not None and not 1 <= len(key) <= 255:
        raise bad_request("Idempotency-Key must have 1 to 255 characters", "Idempotency-Key")
    async with acting(request) as kube:
        await refuse_unfit_lineage(kube, namespace, job)
        if key is None:
            obj = await create_resource(request, kube, namespace, job.name, spec, principal.name)
            try:  # a shortcut for id look-ups only: the job exists whatever happens here
                await app[STORE].remember_job(obj["metadata"]["uid"], namespace, obj["metadata"]["name"])
            except Exception as exc:  # noqa: BLE001
                log.warning("could not record where job %s lives: %r", obj["metadata"]["uid"], exc)
            return created(obj)
        fingerprint = request_hash(namespace, job.name, spec)
        store = app[STORE]
        async with store.idempotency(principal.name, key) as connection:
            earlier = await store.idempotent_answer(connection, principal.name, key,
                                                    app[SETTINGS].api_idempotency_hours)
            if earlier is not None:
                if earlier["request_hash"] != fingerprint:
                    raise conflict("this Idempotency-Key was used for a different request", "Idempotency-Key",
                                   "idempotency_key_reused")
                obj = await visible_job(kube, earlier["namespace"], earlier["name"])
                if obj is None or obj["metadata"]["uid"] != earlier["uid"]:
                    obj = {"metadata": {"uid": earlier["uid"], "name": earlier["name"],
                                        "namespace": earlier["namespace"]}}
                return created(obj, replayed=True)
            obj = await create_resource(request, kube, namespace, job.name, spec, principal.name)
            meta = obj["metadata"]
            await store.save_idempotent_answer(connection, principal.name, key, fingerprint, meta["uid"],
                                               namespace, meta["name"])
    return created(obj)


async def refuse_unfit_lineage(kube: Kube, namespace: str, spec: PravahJobSpec) -> None:
    """A job that names an earlier one (rerunOf, a named incremental baseline) must compute what
    that one computed: refused here with 422 naming the field, where the operator would fail it."""
    named = lineage.named_earlier(spec)
    if named is None:
        return
    name, _, field = named
    earlier = await kube.get_job(namespace, name)
    if earlier is None:
        raise ApiError(422, f"there is no PravahJob {name} in namespace {namespace}", field.removeprefix("spec."))
    try:
        lineage.check(spec, earlier)
    except lineage.Refused as exc:
        raise ApiError(422, str(exc).removeprefix("spec."), exc.field.removeprefix("spec.")) from None


async def create_resource(request: web.Request, kube: Kube, namespace: str, name: str | None,
                          spec: dict[str, Any], creator: str) -> dict[str, Any]:
    """Create the PravahJob, annotated with the request's id; the API server's refusals
    (RBAC 403, admission or schema 422) are answered with its own message, which names the
    policy or the field."""
    label = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "_" for ch in creator)
    label = label[:63].strip("-_.") or "unknown"
    try:
        obj = await kube.create_job(namespace, name, spec, {CREATED_BY_LABEL: label},
                                    {REQUEST_ID_ANNOTATION: request[REQUEST_ID]})
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


def encode_cursor(namespace: str | None, resume: str | None) -> str:
    """`next`: the namespace to go on in (None: all of them) and the API server's continue token."""
    raw = json.dumps([namespace, resume]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str | None, str | None]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        namespace, resume = json.loads(raw)
        if not all(value is None or isinstance(value, str) for value in (namespace, resume)):
            raise ValueError
        return namespace, resume
    except (ValueError, TypeError, UnicodeDecodeError):
        raise bad_request("invalid continue token", "continue") from None


def phase_of(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("phase") or "Pending"


async def list_page(kube: Kube, namespace: str | None, limit: int,
                    resume: str | None) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return await kube.list_jobs(namespace, limit, resume)
    except ApiException as exc:
        if resume and exc.status == 410:
            raise ApiError(410, "the continue token has expired; list again from the first page", "continue",
                           "expired") from None
        if resume and exc.status == 400:
            raise bad_request("invalid continue token", "continue") from None
        raise


async def list_jobs(request: web.Request) -> web.Response:
    app, query = request.app, request.query
    principal = await principal_of(request)
    settings = app[SETTINGS]
    namespace = query.get("namespace") or None
    phase = query.get("phase") or None
    if phase is not None and phase not in PHASES:
        raise ApiError(422, f"phase must be one of {', '.join(PHASES)}", "phase")
    name_part = query.get("name") or ""
    if len(name_part) > 253:
        raise ApiError(422, "name must be at most 253 characters", "name")
    limit = int_param(query, "limit", settings.api_page_size, 1, settings.api_max_page_size)
    cursor = decode_cursor(query["continue"]) if query.get("continue") else None
    if namespace is not None:
        await app[AUTH].authorize(principal, "list", namespace)
        scopes: list[str | None] = [namespace]
    else:
        allowed = await app[AUTH].namespaces_for(principal, "list")
        scopes = [None] if allowed is None else sorted(allowed)
    if cursor is not None and cursor[0] not in scopes:
        raise bad_request("invalid continue token", "continue")
    items: list[dict[str, Any]] = []
    next_token = None
    if scopes:
        start, resume = cursor or (scopes[0], None)
        budget = limit  # objects fetched, filtered or not: one page's worth per request
        async with acting(request) as kube:
            for index in range(scopes.index(start), len(scopes)):
                page, resume = await list_page(kube, scopes[index], budget, resume)
                budget -= len(page)
                items += [obj for obj in page if (phase is None or phase_of(obj) == phase)
                          and name_part in obj["metadata"]["name"]]
                if resume is not None:
                    next_token = encode_cursor(scopes[index], resume)
                    break
                if budget <= 0:
                    if index + 1 < len(scopes):
                        next_token = encode_cursor(scopes[index + 1], None)
                    break
    for obj in items:
        meta = obj["metadata"]
        app[LOCATIONS].put(meta["uid"], meta["namespace"], meta["name"])
    return respond(models.JobList(items=[models.JobSummary.model_validate(summary(obj)) for obj in items],
                                  next=next_token))


def int_param(query: Any, name: str, default: int, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within bounds, or 422 naming it."""
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise ApiError(422, f"{name} must be an integer", name) from None
    if not minimum <= value <= maximum:
        raise ApiError(422, f"{name} must be between {minimum} and {maximum}", name)
    return value


def page_of(request: web.Request) -> tuple[int, int]:
    """`limit` and `offset` of a paged sub-resource (errors, logs)."""
    settings = request.app[SETTINGS]
    return (int_param(request.query, "limit", settings.api_page_size, 1, settings.api_max_page_size),
            int_param(request.query, "offset", 0, 0, 2**31 - 1))


async def get_job(request: web.Request) -> web.Response:
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
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
    async with acting(request) as kube:
        obj = await authorized_job(request, "delete" if purge else "patch", kube)
        meta = obj["metadata"]
        if purge:
            await kube.delete_job(meta["namespace"], meta["name"], meta["uid"])
            request.app[LOCATIONS].forget(meta["uid"])
            return web.Response(status=204)
        phase = (obj.get("status") or {}).get("phase")
        if phase in TERMINAL_PHASES:
            raise conflict(f"the job has already finished (phase {phase}); use ?purge=true to delete it")
        obj = await kube.suspend_job(meta["namespace"], meta["name"])
    return respond(models.JobSummary.model_validate(summary(obj)), 202)


async def rerun_job(request: web.Request) -> web.Response:
    """A new job over the files that failed or never finished in a finished one (spec.rerunOf)."""
    principal = await principal_of(request)
    options, _ = await read_model(request, models.JobRerun) if request.body_exists else (models.JobRerun(), {})
    async with acting(request) as kube:
        obj = await authorized_job(request, "create", kube)
        meta = obj["metadata"]
        phase = (obj.get("status") or {}).get("phase")
        if phase not in TERMINAL_PHASES:
            raise conflict(f"the job is {phase or 'Pending'}; only a finished job can be re-run", "id")
        spec = {key: value for key, value in obj["spec"].items() if key not in ("suspend", "incremental")}
        spec["rerunOf"] = meta["name"]
        await refuse_unfit_lineage(kube, meta["namespace"], PravahJobSpec.model_validate(spec))
        name = options.name or f"{meta['name'][:240]}-rerun-{uuid.uuid4().hex[:5]}"
        new = await create_resource(request, kube, meta["namespace"], name, spec, principal.name)
    return created(new)


async def job_results(request: web.Request) -> web.StreamResponse:
    app = request.app
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
        uid = obj["metadata"]["uid"]
        status = obj.get("status") or {}
        uri = (status.get("result") or {}).get("uri")
        history = await app[STORE].job_history(uid)
        has_result = bool(history and history["has_result"])
        kept = history["result_bytes"] if has_result else None  # a small result's copy in PostgreSQL
        if kept is not None and kept <= app[SETTINGS].api_inline_result_bytes:
            return await send_text(request, await app[STORE].result_text(uid))
        if (uri or "").startswith("s3://") and (obj["spec"].get("output") or {}).get("s3"):
            return await stream_s3(request, kube, obj, uri)
        if has_result:
            raise conflict(f"the result is too large to serve from the job's volume; it is at {uri}",
                           "status.result.uri")
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


async def stream_s3(request: web.Request, kube: Kube, obj: dict[str, Any], uri: str) -> web.StreamResponse:
    """Stream result.json from the job's output bucket, only on an allowed endpoint, with the
    job's own S3 credentials read as the caller (unsigned without them: the API lends no
    identity of its own)."""
    import aioboto3
    from botocore import UNSIGNED
    from botocore.config import Config

    location = obj["spec"]["output"]["s3"]
    endpoint = location.get("endpoint")
    if not request.app[SETTINGS].tenancy.endpoint_allowed(endpoint):
        raise ApiError(403, f"the job's output endpoint {str(endpoint)[:200]!r} is not an allowed S3 endpoint "
                            "(PRAVAH_ALLOWED_S3_ENDPOINTS): the API does not fetch from it",
                       "spec.output.s3.endpoint", "endpoint_not_allowed")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if bucket != location.get("bucket"):
        raise conflict(f"the result {uri!r} is not in the job's output bucket", "status.result.uri")
    credentials: dict[str, Any] = {}
    config = Config(signature_version=UNSIGNED)
    if location.get("credentialsSecret"):
        try:
            secret = await kube.secret(obj["metadata"]["namespace"], location["credentialsSecret"])
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            error = from_kubernetes(exc)
            raise ApiError(error.status, error.message, "spec.output.s3.credentialsSecret") from None
        credentials = {"aws_access_key_id": secret.get("AWS_ACCESS_KEY_ID"),
                       "aws_secret_access_key": secret.get("AWS_SECRET_ACCESS_KEY")}
        if not all(credentials.values()):  # else boto would fall back to the API's own environment
            raise conflict(f"secret {location['credentialsSecret']!r} lacks AWS_ACCESS_KEY_ID or "
                           "AWS_SECRET_ACCESS_KEY", "spec.output.s3.credentialsSecret")
        config = Config()
    session = aioboto3.Session(**credentials)
    async with session.client("s3", endpoint_url=endpoint, region_name=location.get("region") or "us-east-1",
                              config=config) as s3:
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


class Streams:
    """Event streams open per caller: a cap, so that no caller holds all the connections."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, caller: str, cap: int) -> Iterator[None]:
        if self.open[caller] >= cap:
            raise ApiError(429, f"{caller} already has {cap} event streams open, the most one caller may hold",
                           headers={"Retry-After": "5"})
        self.open[caller] += 1
        try:
            yield
        finally:
            self.open[caller] -= 1
            if self.open[caller] <= 0:
                del self.open[caller]


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: `status` on every change, `end` at a terminal phase, `deleted` if it
    goes; `forbidden` or `error` when the caller's access or token is gone (re-checked every
    api_events_recheck_seconds, and by the API server at every poll in kubernetes mode), and
    `reconnect` when the stream has lived api_events_max_seconds."""
    app = request.app
    principal = await principal_of(request)
    with app[STREAMS].hold(principal.name, app[SETTINGS].api_events_max_streams):
        async with acting(request) as kube:
            obj = await authorized_job(request, "watch", kube)
            return await stream_events(request, kube, [obj])


async def jobs_events(request: web.Request) -> web.StreamResponse:
    """The events of several jobs on one stream (a page of a job list), each carrying its
    `id`: one stream slot instead of one per job."""
    app = request.app
    ids = [part for part in request.query.get("ids", "").split(",") if part]
    if not 1 <= len(ids) <= MAX_FOLLOWED:
        raise ApiError(422, f"ids must name 1 to {MAX_FOLLOWED} jobs, comma-separated", "ids")
    uids = list(dict.fromkeys(parse_id(part) for part in ids))
    principal = await principal_of(request)
    with app[STREAMS].hold(principal.name, app[SETTINGS].api_events_max_streams):
        async with acting(request) as kube:
            objs = [await authorized_job(request, "watch", kube, uid) for uid in uids]
            return await stream_events(request, kube, objs)


async def access_gone(request: web.Request, namespaces: set[str]) -> tuple[str, str] | None:
    """The event that ends a stream whose caller's token or access is gone; None while both hold."""
    auth = request.app[AUTH]
    try:
        principal = await auth.authenticate(request)
    except ApiError as exc:
        return "error", exc.message
    for namespace in sorted(namespaces):
        for verb in ("get", "watch"):
            if not await auth.allowed(principal, verb, namespace):
                return "forbidden", f"{principal.name} may no longer {verb} jobs in namespace {namespace!r}"
    return None


async def stream_events(request: web.Request, kube: Kube, objs: list[dict[str, Any]]) -> web.StreamResponse:
    """Follow `objs` until each has finished or gone; `end` (with the last snapshot) once every
    job followed has finished, and the stream closes after the last `deleted` otherwise."""
    settings = request.app[SETTINGS]
    metas = {obj["metadata"]["uid"]: obj["metadata"] for obj in objs}
    followed: dict[str, dict[str, Any] | None] = {obj["metadata"]["uid"]: obj for obj in objs}
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(f"retry: {int(settings.api_events_interval * 1000)}\n\n".encode())
    last: dict[str, dict[str, Any]] = {}
    started = checked = last_write = time.monotonic()
    sequence = 0
    try:
        while True:
            finished: dict[str, Any] | None = None
            for uid, obj in list(followed.items()):
                if obj is None or obj["metadata"]["uid"] != uid:
                    sequence += 1
                    await response.write(sse("deleted", {"id": uid}, sequence))
                    del followed[uid]
                    continue
                current = snapshot(obj)
                if current != last.get(uid):
                    sequence += 1
                    await response.write(sse("status", current, sequence))
                    last[uid], last_write = current, time.monotonic()
                if current["phase"] in TERMINAL_PHASES:
                    finished = current
                    del followed[uid]
            if not followed:
                if finished is not None:
                    await response.write(sse("end", finished, sequence + 1))
                break
            if time.monotonic() - started >= settings.api_events_max_seconds:
                await response.write(sse("reconnect", {"ids": sorted(followed)}, sequence))
                break
            if time.monotonic() - last_write >= settings.api_events_heartbeat:
                await response.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            await asyncio.sleep(settings.api_events_interval)
            if request.transport is None or request.transport.is_closing():
                return response  # the client went away: free its slot now
            if time.monotonic() - checked >= settings.api_events_recheck_seconds:
                gone = await access_gone(request, {metas[uid]["namespace"] for uid in followed})
                if gone is not None:
                    await response.write(sse(gone[0], {"ids": sorted(followed), "message": gone[1]}, sequence))
                    break
                checked = time.monotonic()
            try:
                for uid in followed:
                    followed[uid] = await kube.get_job(metas[uid]["namespace"], metas[uid]["name"])
            except ApiException as exc:
                if exc.status not in (401, 403):
                    raise
                event, message = (("forbidden", from_kubernetes(exc).message) if exc.status == 403
                                  else ("error", "the Kubernetes API server no longer accepts the bearer token"))
                await response.write(sse(event, {"ids": sorted(followed), "message": message}, sequence))
                break
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
    """Logs of the running pods, or (once the pods are gone or unreadable) the archive in
    PostgreSQL; each at most api_logs_max_bytes, cut and marked `truncated` beyond."""
    app = request.app
    limit, offset = page_of(request)
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
    meta = obj["metadata"]
    max_bytes = app[SETTINGS].api_logs_max_bytes
    entries = await app[KUBE].pod_logs(meta["namespace"], meta["name"], max_bytes)
    source = "pods"
    if entries is None:
        archived = await app[STORE].runner_logs_head(meta["uid"], max_bytes)
        entries = [{"shard": row["shard"], "pod": row["pod"], "log": row["log"], "truncated": row["truncated"],
                    "createdAt": row["created_at"].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")}
                   for row in archived]
        source = "archive" if entries else "none"
    entries.sort(key=lambda entry: (entry["shard"] is None, entry["shard"] or 0, entry["pod"]))
    return respond(models.JobLogs(source=source, maxBytes=max_bytes, total=len(entries),
                                  entries=[models.LogEntry.model_validate(e) for e in entries[offset:offset + limit]]))


async def job_errors(request: web.Request) -> web.Response:
    """Every file that failed, from the job's records (the status keeps only the first few)."""
    limit, offset = page_of(request)
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
    total, rows = await request.app[STORE].file_errors(obj["metadata"]["uid"], limit, offset)
    return respond(models.JobErrors(total=total, items=[models.FileError.model_validate(row) for row in rows]))


async def job_shards(request: web.Request) -> web.Response:
    """Each shard's share of the job's files and how far it has come, from the job's records."""
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
    rows = await request.app[STORE].shard_progress(obj["metadata"]["uid"])
    return respond(models.JobShards(items=[models.ShardProgress(
        shard=row["shard"], filesTotal=row["files_total"], filesDone=row["files_done"], bytesTotal=row["bytes_total"],
        bytesDone=row["bytes_done"], errors=row["errors"]) for row in rows]))


async def job_history(request: web.Request) -> web.Response:
    """The job's story for a timeline: its conditions and the Events about it, oldest first."""
    async with acting(request) as kube:
        obj = await authorized_job(request, "get", kube)
    meta = obj["metadata"]
    entries = [{"time": c.get("lastTransitionTime"), "kind": "condition", "type": c["type"],
                "status": c.get("status"), "reason": c.get("reason") or "", "message": c.get("message") or ""}
               for c in (obj.get("status") or {}).get("conditions") or []]
    for event in await request.app[KUBE].events_about(meta["namespace"], meta["uid"]):
        entries.append({"time": event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
                        or event["metadata"].get("creationTimestamp"),
                        "kind": "event", "type": event.get("type") or "Normal", "reason": event.get("reason") or "",
                        "message": event.get("message") or "", "count": event.get("count") or 1})
    entries.sort(key=lambda entry: entry["time"] or "")
    return respond(models.JobHistory(items=[models.HistoryEntry.model_validate(e) for e in entries]))


# -- the routing table --------------------------------------------------------------------

TAG = "jobs"
PHASE_PARAM = Param("phase", "query", {"type": "string", "enum": list(PHASES)}, "Only jobs in this phase.")
LIMIT_PARAM = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, "Page size.")
OFFSET_PARAM = Param("offset", "query", {"type": "integer", "minimum": 0}, "Items to skip (the page's start).")
ROUTES = [
    Operation("POST", "/jobs", create_job, "Create a job (a PravahJob)", TAG,
              {201: models.JobSummary}, body=models.JobCreate,
              params=(Param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 255},
                            "Retries with the same key return the same job instead of creating another."),
                      Param(HEADER, "header", {"type": "string", "pattern": f"^{SANE.pattern}$"},
                            "Names the request in the API's and the operator's logs, in the job's "
                            f"{REQUEST_ID_ANNOTATION} annotation and its Events; another value is replaced "
                            "by a new UUID. Answered in the response header of the same name.")),
              description="The body is the PravahJob spec, validated with the same model as the CRD, plus an "
                          "optional name and namespace."),
    Operation("GET", "/jobs", list_jobs, "List jobs, by namespace and name", TAG, {200: models.JobList},
              params=(Param("namespace", "query", {"type": "string", "maxLength": 63}, "Only this namespace."),
                      PHASE_PARAM,
                      Param("name", "query", {"type": "string", "maxLength": 253}, "Only jobs whose name contains this."),
                      LIMIT_PARAM,
                      Param("continue", "query", {"type": "string", "maxLength": 4096},
                            "The `next` token of the previous page.")),
              description="Pages follow the Kubernetes API server's own limit/continue, in its order (namespace, "
                          "then name). With `phase`, a page may hold fewer than `limit` jobs while `next` is set. "
                          "An expired `continue` token answers 410: list again from the first page."),
    Operation("GET", "/jobs/events", jobs_events, "Live progress of several jobs as Server-Sent Events", TAG,
              {200: {"text/event-stream": {"schema": {"type": "string"}}}, 429: models.ErrorResponse},
              params=(Param("ids", "query", {"type": "string", "maxLength": 40 * MAX_FOLLOWED},
                            f"Comma-separated job ids (1 to {MAX_FOLLOWED}).", required=True),),
              description="The events of GET /jobs/{id}/events for each job named, each with its `id`, on one "
                          "stream (one slot of the caller's cap): `end` once all have finished."),
    Operation("GET", "/jobs/{id}", get_job, "A job: spec, status, progress, timings, errors", TAG,
              {200: models.Job}, params=(ID_PARAM,)),
    Operation("DELETE", "/jobs/{id}", delete_job, "Cancel a job (or delete it with ?purge=true)", TAG,
              {202: models.JobSummary, 204: None},
              params=(ID_PARAM, Param("purge", "query", {"type": "boolean"},
                                      "Delete the PravahJob instead of cancelling it (history is kept).")),
              description="Cancelling sets spec.suspend; the operator stops the runner pods (phase Cancelled)."),
    Operation("POST", "/jobs/{id}/rerun", rerun_job, "Re-run the files that failed or never finished", TAG,
              {201: models.JobSummary}, params=(ID_PARAM,), body=models.JobRerun,
              description="Creates a PravahJob with the finished job's spec and spec.rerunOf set to its name: it "
                          "reads only those files and merges them with the job's good partials. 409 while the job "
                          "has not finished, 422 when it is itself a re-run. The body is optional."),
    Operation("GET", "/jobs/{id}/results", job_results, "The merged result of a finished job", TAG,
              {200: models.JobResult}, params=(ID_PARAM,),
              description="Small results come from PostgreSQL; large ones are streamed from the output storage, "
                          "only from an allowed S3 endpoint (else 403 naming spec.output.s3.endpoint), with the "
                          "job's credentialsSecret read as the caller."),
    Operation("GET", "/jobs/{id}/events", job_events, "Live progress as Server-Sent Events", TAG,
              {200: {"text/event-stream": {"schema": {"type": "string"}}}, 429: models.ErrorResponse},
              params=(ID_PARAM,),
              description="Events: `status` (JSON snapshot, on every change), `end` (terminal phase reached), "
                          "`deleted` (the job was deleted), `forbidden` / `error` (the caller's access or token is "
                          "gone: the stream ends), `reconnect` (the stream reached its longest life: connect "
                          "again). A caller holding the most streams allowed gets 429."),
    Operation("GET", "/jobs/{id}/logs", job_logs, "Runner logs of a job", TAG, {200: models.JobLogs},
              params=(ID_PARAM, LIMIT_PARAM, OFFSET_PARAM),
              description="From the pods while they can be read; from the archive in PostgreSQL afterwards. Each "
                          "entry holds at most `maxBytes` of log; a longer one is cut and marked `truncated`."),
    Operation("GET", "/jobs/{id}/errors", job_errors, "Every file of a job that failed, paged", TAG,
              {200: models.JobErrors}, params=(ID_PARAM, LIMIT_PARAM, OFFSET_PARAM),
              description="From the job's records in PostgreSQL, by path; the status holds only the first few."),
    Operation("GET", "/jobs/{id}/shards", job_shards, "Progress of each shard of a job", TAG,
              {200: models.JobShards}, params=(ID_PARAM,),
              description="Files and bytes of each shard's share of the stored file list, and how many are "
                          "recorded done (and failed), from PostgreSQL."),
    Operation("GET", "/jobs/{id}/history", job_history, "The job's conditions and Events, oldest first", TAG,
              {200: models.JobHistory}, params=(ID_PARAM,),
              description="For a timeline: each condition at its last transition and each Kubernetes Event "
                          "posted about the PravahJob (by the operator, with its reason and message)."),
]
