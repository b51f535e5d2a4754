"""The runners' one way to record their work: an HTTP endpoint served by the operator.

Runner pods hold no database credentials: a Secret in a tenant namespace can be read by
whoever may read Secrets there, and a runner can be made to read its own environment. A
runner sends the job's file list, its shard's progress, batches, result summary and log here instead, with a projected
service-account token of its own audience and a short life. The operator checks the token
with a TokenReview, ties it to the pod it was issued for, that pod's Job and the PravahJob
owning the Job, and writes only that shard's records of that job: the job and the shard come
from the token, never from the request. A deleted pod's token stops being accepted at once.

Every replica serves this endpoint (writes are keyed in PostgreSQL, so which replica takes a
request does not matter), so a runner keeps reporting while a standby takes over the lead.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pravah.store import Store
from pravah_operator.crd import GROUP, PLURAL, VERSION
from pravah_operator.planning import COMPLETION_INDEX, JOB_LABEL, RESULT_RECORDED_ANNOTATION
from pravah_operator.settings import OperatorSettings
from pravah_operator.status import now_rfc3339

log = logging.getLogger("pravah.operator.reports")
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
IDENTITY_CACHE = 1024
LIVE_PHASES = ("Pending", "Running")
LISTING_PAGE_MAX = 50_000
MERGE_PAGE_MAX = 256
INLINE_RESULT_MAX = 1 << 20
ANNOTATE_TIMEOUT = 10  # seconds; the runner waits for the reply
INT4_MAX = (1 << 31) - 1  # positions and batch numbers are PostgreSQL integers


class Refused(Exception):
    """The token does not name a live runner pod of a PravahJob."""


@dataclass(frozen=True)
class Runner:
    """Who is calling: one shard of one PravahJob, as its token proves."""

    namespace: str
    pod: str
    job_name: str  # the PravahJob's
    job_uid: str
    shard: int


IDENTITY = "pravah.runner"  # request key of the verified caller
VERIFIER = web.AppKey("verifier", "Verifier")
STORE = web.AppKey("store", Store)
CUSTOM = web.AppKey("custom", client.CustomObjectsApi)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShardStart(Message):
    files_total: int = Field(ge=0)
    bytes_total: int = Field(ge=0)
    threads: int = Field(ge=1)


class ShardProgress(Message):
    files_done: int = Field(ge=0)
    bytes_done: int = Field(ge=0)
    errors: int = Field(ge=0)


class Batch(Message):
    files: list[tuple[str, int]]
    partial: str
    errors: list[dict[str, Any]]
    file_partials: list[tuple[str, int, str | None, str, bool]] = Field(
        default_factory=list, description="An incremental job's (path, bytes, version, partial, failed) per file.")


class ListingPage(Message):
    files: list[tuple[int, int, str, int, str | None]] = Field(
        description="(shard, position, path, bytes, version) rows.")


class ReusedPage(Message):
    paths: list[str] = Field(description="Files found unchanged since the baseline, as users see them.")


class ListingCommit(Message):
    files: int = Field(ge=0)
    bytes: int = Field(ge=0)
    digest: str = Field(pattern="^[0-9a-f]{64}$")
    scan_errors: list[dict[str, str]]
    reuse: dict[str, int] | None = Field(default=None, description="Files reused, new, changed... by the listing.")


class Summary(Message):
    files: int = Field(ge=0)
    bytes: int = Field(ge=0)
    errors: int = Field(ge=0)
    summary: dict[str, Any]
    error_samples: list[dict[str, Any]] = Field(max_length=10)


class ResultSummary(Message):
    summary: Summary
    uri: str = Field(max_length=2048)
    document: str | None = Field(default=None, max_length=INLINE_RESULT_MAX,
                                 description="The result document itself, when it is small.")


class RunnerLog(Message):
    log: str


class Verifier:
    """Token -> Runner, by TokenReview and the pod's owners; answers are kept briefly."""

    def __init__(self, api: client.ApiClient, audience: str, cache_seconds: float = 10.0):
        self.audience = audience
        self.authn = client.AuthenticationV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.cache_seconds = cache_seconds
        self.cache: dict[str, tuple[float, Runner]] = {}

    async def runner(self, token: str, now: float) -> Runner:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self.cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.verify(token)
        if len(self.cache) >= IDENTITY_CACHE:
            self.cache = {k: v for k, v in self.cache.items() if v[0] > now}
        self.cache[key] = (now + self.cache_seconds, found)
        return found

    async def verify(self, token: str) -> Runner:
        review = await self.authn.create_token_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
             "spec": {"token": token, "audiences": [self.audience]}})
        status = review.status
        if not status or not status.authenticated or self.audience not in (status.audiences or []):
            raise Refused(f"the token is not valid for audience {self.audience}")
        username, extra = status.user.username or "", status.user.extra or {}
        if not username.startswith(SERVICE_ACCOUNT_PREFIX) or not extra.get(POD_NAME_EXTRA):
            raise Refused("the token is not a runner pod's service-account token")
        namespace = username.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":")[0]
        pod_name, pod_uid = extra[POD_NAME_EXTRA][0], (extra.get(POD_UID_EXTRA) or [""])[0]
        try:
            pod = await self.core.read_namespaced_pod(pod_name, namespace)
        except ApiException as exc:
            if exc.status != 404:  # the API server is busy or failing: the runner asks again
                raise
            raise Refused(f"pod {namespace}/{pod_name} does not exist") from None
        if pod.metadata.uid != pod_uid:
            raise Refused(f"pod {namespace}/{pod_name} is not the pod the token was issued for")
        if pod.status is None or pod.status.phase not in LIVE_PHASES:
            raise Refused(f"pod {namespace}/{pod_name} has ended: its token reports nothing more")
        index = (pod.metadata.annotations or {}).get(COMPLETION_INDEX, "")
        job_owner = controller(pod.metadata.owner_references, "Job")
        if job_owner is None or not index.isdigit() or JOB_LABEL not in (pod.metadata.labels or {}):
            raise Refused(f"pod {namespace}/{pod_name} is not a runner of a PravahJob")
        try:
            job = await self.batch.read_namespaced_job(job_owner.name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            raise Refused(f"Job {namespace}/{job_owner.name} does not exist") from None
        owner = controller(job.metadata.owner_references, "PravahJob")
        if job.metadata.uid != job_owner.uid or owner is None:
            raise Refused(f"Job {namespace}/{job_owner.name} does not belong to a PravahJob")
        return Runner(namespace=namespace, pod=pod_name, job_name=owner.name, job_uid=owner.uid, shard=int(index))

    async def pod_live(self, namespace: str, name: str) -> bool:
        """Whether a pod still exists and has not ended (a retried runner is a new pod)."""
        try:
            pod = await self.core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return pod.status is not None and pod.status.phase in LIVE_PHASES


def controller(references: list[Any] | None, kind: str) -> Any | None:
    return next((ref for ref in references or [] if ref.kind == kind and ref.controller), None)


def bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(text='{"error": "a bearer token is required"}', content_type="application/json")
    return token.strip()


def refusal(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=web.json_response({"error": message}).text, content_type="application/json")


@web.middleware
async def authenticate(request: web.Request, handler) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    verifier: Verifier = request.app[VERIFIER]
    try:
        runner = await verifier.runner(bearer(request), asyncio.get_running_loop().time())
    except Refused as exc:
        log.warning("refused a runner report: %s", exc)
        raise refusal(web.HTTPForbidden, str(exc)) from None
    except ApiException as exc:
        raise refusal(web.HTTPServiceUnavailable, f"cannot check the token ({exc.status})") from None
    request[IDENTITY] = runner
    return await handler(request)


async def body(request: web.Request, model: type[Message]) -> Any:
    try:
        return model.model_validate(await request.json())
    except (ValueError, ValidationError) as exc:
        raise refusal(web.HTTPBadRequest, f"invalid {model.__name__}: {exc}") from None


def caller(request: web.Request) -> Runner:
    return request[IDENTITY]


async def start(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, ShardStart)
    await request.app[STORE].start_shard(runner.job_uid, runner.shard, message.files_total, message.bytes_total,
                                         message.threads)
    return web.json_response({"job": runner.job_uid, "shard": runner.shard})


async def progress(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, ShardProgress)
    try:
        await request.app[STORE].report_progress(runner.job_uid, runner.shard, message.files_done,
                                                 message.bytes_done, message.errors)
    except Exception as exc:  # noqa: BLE001 - a heartbeat is best effort; the runner goes on
        raise refusal(web.HTTPServiceUnavailable, f"progress not recorded: {exc.__class__.__name__}") from None
    return web.json_response({})


async def finished_batches(request: web.Request) -> web.Response:
    runner = caller(request)
    batches = await request.app[STORE].finished_batches(runner.job_uid, runner.shard)
    return web.json_response({str(index): list(counts) for index, counts in batches.items()})


async def save_batch(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, Batch)
    index = int(request.match_info["batch"])
    try:
        await request.app[STORE].save_batch(runner.job_uid, runner.shard, index, message.files, message.partial,
                                            message.errors, message.file_partials)
    except asyncpg.UniqueViolationError as exc:
        raise refusal(web.HTTPConflict, f"batch {index} of shard {runner.shard} has a file that another batch "
                                        f"already recorded: {exc.detail or exc}") from None
    return web.json_response({})


async def listing(request: web.Request) -> web.Response:
    runner = caller(request)
    return web.json_response(await request.app[STORE].listing(runner.job_uid, runner.shard) or {"listing": None})


async def claim_listing(request: web.Request) -> web.Response:
    """One runner lists the source; the others wait for its listing.

    The claim passes to the caller only when no live pod holds it: its holder ended (killed,
    evicted, failed) before committing a listing.
    """
    runner, store = caller(request), request.app[STORE]
    holder = await store.listing_claim(runner.job_uid)
    try:
        if holder not in (None, runner.pod) and await request.app[VERIFIER].pod_live(runner.namespace, holder):
            return web.json_response({"claimed": False, "holder": holder})
    except ApiException as exc:
        raise refusal(web.HTTPServiceUnavailable, f"cannot check pod {holder} ({exc.status})") from None
    claimed = await store.claim_listing(runner.job_uid, runner.pod, holder)
    if claimed and holder not in (None, runner.pod):
        log.info("pod %s/%s lists job %s: pod %s ended before its listing was stored",
                 runner.namespace, runner.pod, runner.job_uid, holder)
    holder = runner.pod if claimed else await store.listing_claim(runner.job_uid)
    return web.json_response({"claimed": claimed, "holder": holder})


def listing_id(request: web.Request) -> str:
    return str(uuid.UUID(request.match_info["listing"]))


async def stage_listing(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, ListingPage)
    await request.app[STORE].stage_listing(runner.job_uid, listing_id(request), message.files)
    return web.json_response({})


async def commit_listing(request: web.Request) -> web.Response:
    """First writer wins: the answer is the job's listing, this one or the one stored before."""
    runner, message = caller(request), await body(request, ListingCommit)
    store: Store = request.app[STORE]
    try:
        won = await store.commit_listing(runner.job_uid, listing_id(request), message.files, message.bytes,
                                         message.digest, message.scan_errors, message.reuse)
    except ValueError as exc:
        raise refusal(web.HTTPConflict, str(exc)) from None
    except LookupError as exc:
        raise refusal(web.HTTPNotFound, str(exc)) from None
    return web.json_response({**await store.listing(runner.job_uid, runner.shard), "won": won})


async def stage_reused(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, ReusedPage)
    await request.app[STORE].stage_reused(runner.job_uid, listing_id(request), message.paths)
    return web.json_response({})


async def reuse(request: web.Request) -> web.Response:
    """The job this one builds on (a re-run's or incremental run's), or {"mode": null}."""
    target = await request.app[STORE].reuse_target(caller(request).job_uid)
    return web.json_response(target or {"mode": None})


async def baseline_files(request: web.Request) -> web.Response:
    runner = caller(request)
    limit = query_int(request, "limit", 10_000, 1, LISTING_PAGE_MAX)
    rows = await request.app[STORE].baseline_files(runner.job_uid, request.query.get("after", ""), limit)
    return web.json_response({"files": rows})


async def rerun_paths(request: web.Request) -> web.Response:
    runner = caller(request)
    limit = query_int(request, "limit", 10_000, 1, LISTING_PAGE_MAX)
    paths = await request.app[STORE].rerun_paths(runner.job_uid, request.query.get("after", ""), limit)
    return web.json_response({"paths": paths})


async def listed_files(request: web.Request) -> web.Response:
    runner = caller(request)
    after = query_int(request, "after", -1, -1, INT4_MAX)
    limit = query_int(request, "limit", 10_000, 1, LISTING_PAGE_MAX)
    rows = await request.app[STORE].listed_files(runner.job_uid, runner.shard, after, limit)
    return web.json_response({"files": rows})


async def finish(request: web.Request) -> web.Response:
    runner = caller(request)
    merge = await request.app[STORE].finish_shard(runner.job_uid, runner.shard)
    return web.json_response({"merge": merge})


async def all_shards_done(request: web.Request, runner: Runner) -> None:
    """The merge inputs and the result belong to the job once every shard has finished."""
    store: Store = request.app[STORE]
    record, progress = await store.job(runner.job_uid), await store.progress(runner.job_uid)
    if record is None or progress["shards_done"] < record["shards"]:
        raise refusal(web.HTTPConflict, "not every shard of the job has finished")


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise refusal(web.HTTPBadRequest, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise refusal(web.HTTPBadRequest, f"{name} must be between {low} and {high}")
    return value


async def by_batch(request: web.Request, fetch) -> web.Response:
    """A page of merge input after (shard, batch), once every shard has finished: `fetch(uid, after, limit)`."""
    runner = caller(request)
    await all_shards_done(request, runner)
    after = (query_int(request, "shard", -1, -1, INT4_MAX), query_int(request, "batch", -1, -1, INT4_MAX))
    limit = query_int(request, "limit", 16, 1, MERGE_PAGE_MAX)
    return web.json_response({"partials": await fetch(runner.job_uid, after, limit)})


async def by_path(request: web.Request, fetch, key: str, default_limit: int, max_limit: int) -> web.Response:
    """A page of merge input after a path, once every shard has finished: `fetch(uid, after, limit)`."""
    runner = caller(request)
    await all_shards_done(request, runner)
    limit = query_int(request, "limit", default_limit, 1, max_limit)
    return web.json_response({key: await fetch(runner.job_uid, request.query.get("after", ""), limit)})


async def merge_input(request: web.Request) -> web.Response:
    """A page of the job's partials."""
    return await by_batch(request, request.app[STORE].partials)


async def merge_rerun(request: web.Request) -> web.Response:
    """A page of the re-run job's partials, each with its failed files' count and bytes."""
    return await by_batch(request, request.app[STORE].rerun_partials)


async def merge_reused(request: web.Request) -> web.Response:
    """A page of the per-file partials an incremental job reuses."""
    return await by_path(request, request.app[STORE].reused_partials, "partials", 16, MERGE_PAGE_MAX)


async def merge_errors(request: web.Request) -> web.Response:
    """A page of the error records of files the engine never read."""
    return await by_path(request, request.app[STORE].skipped_errors, "errors", 1000, LISTING_PAGE_MAX)


async def save_result(request: web.Request) -> web.Response:
    runner = caller(request)
    await all_shards_done(request, runner)
    message = await body(request, ResultSummary)
    await request.app[STORE].save_result(runner.job_uid, message.summary.model_dump(), message.uri,
                                         message.document)
    await mark_result_recorded(request, runner)
    return web.json_response({})


async def mark_result_recorded(request: web.Request, runner: Runner) -> None:
    """Annotate the PravahJob so that its roll-up runs now, not at the next status tick.
    Best effort: the record is what counts, and the tick finds it anyway."""
    annotation = {"metadata": {"annotations": {RESULT_RECORDED_ANNOTATION: now_rfc3339()}}}
    try:
        await request.app[CUSTOM].patch_namespaced_custom_object(
            GROUP, VERSION, runner.namespace, PLURAL, runner.job_name, annotation,
            _content_type="application/merge-patch+json", _request_timeout=ANNOTATE_TIMEOUT)
    except (ApiException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning("job %s/%s: result recorded but not annotated (%s); the next status tick finishes it",
                    runner.namespace, runner.job_name, exc)


async def save_log(request: web.Request) -> web.Response:
    runner, message = caller(request), await body(request, RunnerLog)
    await request.app[STORE].save_log(runner.job_uid, runner.shard, runner.pod, message.log)
    return web.json_response({})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


PREFIX = "/v1/shard"


def create_app(settings: OperatorSettings, api: client.ApiClient, store: Store) -> web.Application:
    app = web.Application(client_max_size=settings.report_max_body_bytes, middlewares=[authenticate])
    app[VERIFIER] = Verifier(api, settings.report_audience)
    app[STORE] = store
    app[CUSTOM] = client.CustomObjectsApi(api)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(f"{PREFIX}/start", start)
    app.router.add_post(f"{PREFIX}/progress", progress)
    app.router.add_get(f"{PREFIX}/batches", finished_batches)
    app.router.add_put(f"{PREFIX}/batches/{{batch:[0-9]+}}", save_batch)
    app.router.add_get(f"{PREFIX}/listing", listing)
    app.router.add_post(f"{PREFIX}/listing/claim", claim_listing)
    app.router.add_put(f"{PREFIX}/listing/{{listing:[0-9a-f-]{{36}}}}/pages/{{page:[0-9]+}}", stage_listing)
    app.router.add_post(f"{PREFIX}/listing/{{listing:[0-9a-f-]{{36}}}}/commit", commit_listing)
    app.router.add_put(f"{PREFIX}/listing/{{listing:[0-9a-f-]{{36}}}}/reused/{{page:[0-9]+}}", stage_reused)
    app.router.add_get(f"{PREFIX}/reuse", reuse)
    app.router.add_get(f"{PREFIX}/reuse/baseline", baseline_files)
    app.router.add_get(f"{PREFIX}/reuse/rerun", rerun_paths)
    app.router.add_get(f"{PREFIX}/files", listed_files)
    app.router.add_post(f"{PREFIX}/finish", finish)
    app.router.add_get(f"{PREFIX}/merge-input", merge_input)
    app.router.add_get(f"{PREFIX}/merge-errors", merge_errors)
    app.router.add_get(f"{PREFIX}/merge-reused", merge_reused)
    app.router.add_get(f"{PREFIX}/merge-rerun", merge_rerun)
    app.router.add_put(f"{PREFIX}/result", save_result)
    app.router.add_put(f"{PREFIX}/log", save_log)
    return app


async def serve(settings: OperatorSettings, api: client.ApiClient, store: Store) -> web.AppRunner | None:
    if not settings.report_port:
        return None
    runner = web.AppRunner(create_app(settings, api, store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", settings.report_port).start()
    log.info("runner reports on port %d (audience %s)", settings.report_port, settings.report_audience)
    return runner
