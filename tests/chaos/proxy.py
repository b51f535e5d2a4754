"""A fault-injecting HTTPS proxy in front of the kube-apiserver.

The operator is pointed at it (KUBERNETES_SERVICE_HOST/PORT), so every call it makes passes
here: a fraction is answered at once with a 409, 429 or 500 `metav1.Status` as a loaded or
contended API server would answer, some watch streams are ended early as a restarting API
server ends them, and the rest is forwarded unchanged (the operator's own bearer token
authenticates it upstream). Faults are only ever injected before a request is forwarded, so
what the API server did is exactly what the operator was told. Every batch/v1 Job the API
server created through the proxy is recorded: the suite checks there is one per PravahJob.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

# Headers that describe one hop, not the message; aiohttp sets its own.
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
               "accept-encoding", "content-encoding"}
JOB_PATH = re.compile(r"^/apis/batch/v1/namespaces/(?P<namespace>[^/]+)/jobs(?:/[^/]+)?$")
RETRY_AFTER_SECONDS = 1
SHUTDOWN_SECONDS = 5.0  # how long stopping the proxy lets requests in flight finish


@dataclass(frozen=True)
class FaultPlan:
    """How often to fail: `rate` of requests get a fault, `watch_cut_rate` of the watch
    streams that were let through are ended after `watch_cut_after` (min, max) seconds."""

    rate: float
    watch_cut_rate: float
    seed: int
    watch_cut_after: tuple[float, float] = (5.0, 30.0)

    def __post_init__(self) -> None:
        for field in ("rate", "watch_cut_rate"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class CreatedJob:
    """A batch/v1 Job the API server created for the operator."""

    namespace: str
    name: str
    uid: str
    owners: tuple[str, ...]  # uids of its ownerReferences (the PravahJob)


def is_watch(request: web.Request) -> bool:
    return request.query.get("watch", "").lower() in ("1", "true") or "/watch/" in request.path


def status_body(code: int, request: web.Request) -> dict:
    """The metav1.Status the API server sends with this code."""
    reason, message = {
        409: ("Conflict", f"Operation cannot be fulfilled on {request.path}: the object has been modified; "
                          "please apply your changes to the latest version and try again"),
        429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
        500: ("InternalError", "Internal error occurred: injected by the chaos proxy"),
    }[code]
    details = {"retryAfterSeconds": RETRY_AFTER_SECONDS} if code == 429 else {}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details, "code": code}


def fault_codes(request: web.Request) -> tuple[int, ...]:
    """Codes a real API server can give this request: a conflict only for a write of an
    existing object (PUT/PATCH); overload and internal errors for anything."""
    return (409, 429, 500) if request.method in ("PUT", "PATCH") else (429, 500)


class FaultProxy:
    """The proxy, serving on its own thread and event loop; `start()` returns its port."""

    def __init__(self, upstream: str, upstream_ca: Path, cert: Path, key: Path, host: str, plan: FaultPlan) -> None:
        self.upstream = upstream.rstrip("/")
        self.upstream_ca = upstream_ca
        self.cert, self.key = cert, key
        self.host = host
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.faults: Counter[str] = Counter()
        self.forwarded = 0
        self.created_jobs: list[CreatedJob] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-proxy", daemon=True)
        self.runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)

    async def _serve(self) -> int:
        upstream_tls = ssl.create_default_context(cafile=str(self.upstream_ca))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=upstream_tls),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # At the end a watch of the operator pod that is going away may still stream through
        # the proxy: stopping cancels it after a moment instead of waiting out aiohttp's minute.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                    shutdown_timeout=SHUTDOWN_SECONDS)
        await self.runner.setup()
        serving_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving_tls.load_cert_chain(str(self.cert), str(self.key))
        await web.TCPSite(self.runner, self.host, 0, ssl_context=serving_tls).start()
        return self.runner.addresses[0][1]

    async def _close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()

    # -- requests -----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        watch = is_watch(request)
        with self.lock:
            fault = self.rng.choice(fault_codes(request)) if self.rng.random() < self.plan.rate else None
            cut = watch and self.rng.random() < self.plan.watch_cut_rate
            cut_after = self.rng.uniform(*self.plan.watch_cut_after) if cut else None
            if fault:
                self.faults[f"{'watch ' if watch else ''}{fault}"] += 1
            else:
                self.forwarded += 1
        if fault:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if fault == 429 else {}
            return web.json_response(status_body(fault, request), status=fault, headers=headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Accept-Encoding"] = "identity"  # bodies are relayed and read as they are
        body = await request.read()
        async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                        data=body or None, allow_redirects=False) as upstream:
            reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
            if watch:
                return await self._stream(request, upstream, reply_headers, cut_after)
            payload = await upstream.read()
            self._audit(request, upstream.status, payload)
            return web.Response(status=upstream.status, headers=reply_headers, body=payload)

    async def _stream(self, request: web.Request, upstream: aiohttp.ClientResponse, headers: dict[str, str],
                      cut_after: float | None) -> web.StreamResponse:
        """Relay a watch as it comes; with `cut_after`, end it then, as an API server that
        restarts or times the watch out does (the client sees the stream end and watches again)."""
        reply = web.StreamResponse(status=upstream.status, headers=headers)
        await reply.prepare(request)
        try:
            async with asyncio.timeout(cut_after):
                async for chunk in upstream.content.iter_any():
                    await reply.write(chunk)
        except TimeoutError:
            with self.lock:
                self.faults["watch cut"] += 1
        except ConnectionResetError:  # the operator went away (its pod was deleted)
            return reply
        await reply.write_eof()
        return reply

    def _audit(self, request: web.Request, status: int, payload: bytes) -> None:
        match = JOB_PATH.match(request.path)
        if status != 201 or request.method not in ("POST", "PATCH", "PUT") or not match:
            return
        metadata = json.loads(payload)["metadata"]
        job = CreatedJob(match["namespace"], metadata["name"], metadata["uid"],
                         tuple(owner["uid"] for owner in metadata.get("ownerReferences", [])))
        with self.lock:
            self.created_jobs.append(job)

    # -- what happened ------------------------------------------------------------------------
    def snapshot(self) -> tuple[Counter[str], int, list[CreatedJob]]:
        with self.lock:
            return Counter(self.faults), self.forwarded, list(self.created_jobs)
