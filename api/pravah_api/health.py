"""/healthz (the process is alive), /readyz (the API server and PostgreSQL answer), /metrics.

/readyz is public (probes carry no token), so it says only whether each dependency answers:
server versions and error messages would tell an anonymous caller what to attack. Why a
check failed goes to the log.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from pravah_api import models
from pravah_api.keys import KUBE, METRICS, STORE
from pravah_api.routing import Operation, respond

log = logging.getLogger("pravah.api")


class Metrics:
    """Prometheus metrics of one application (its own registry, so several apps can coexist)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("pravah_api_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("pravah_api_request_seconds", "Time to answer an HTTP request.",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    def middleware(self):
        @web.middleware
        async def measure(request: web.Request, handler):
            loop = asyncio.get_running_loop()
            start = loop.time()
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.requests.labels(request.method, name, str(status)).inc()
                self.latency.labels(request.method, name).observe(loop.time() - start)

        return measure


async def healthz(request: web.Request) -> web.Response:
    return respond(models.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    app = request.app

    async def check(name: str, probe) -> tuple[str, models.Check]:
        try:
            await asyncio.wait_for(probe(), timeout=3)
            return name, models.Check(ok=True)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            log.warning("readiness check %s failed: %r", name, exc)
            return name, models.Check(ok=False)

    checks = dict(await asyncio.gather(check("kubernetes", app[KUBE].ready),
                                       check("postgresql", app[STORE].ping)))
    ready = all(item.ok for item in checks.values())
    return respond(models.Readiness(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [
    Operation("GET", "/healthz", healthz, "Liveness", "health", {200: models.Health}, public=True),
    Operation("GET", "/readyz", readyz, "Readiness: the Kubernetes API server and PostgreSQL answer", "health",
              {200: models.Readiness, 503: models.Readiness}, public=True),
    Operation("GET", "/metrics", metrics, "Prometheus metrics", "health",
              {200: {"text/plain": {"schema": {"type": "string"}}}}, public=True),
]
