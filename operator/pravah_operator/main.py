"""`pravah-operator`: lead (by Lease), migrate the database, then run the kopf handlers."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click
import kopf
from aiohttp import web
from kubernetes_asyncio import client, config
from pydantic import ValidationError

from pravah.logs import setup_logging
from pravah.spec import describe_errors
from pravah.store import Store

from pravah_operator import metrics, pravahcronjob, pravahjob, reports
from pravah_operator.leader import LeaderElector, LeaseLost
from pravah_operator.settings import OperatorSettings

log = logging.getLogger("pravah.operator")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping under our own names and let our Events tell the story.

    A handler that raised is retried after PRAVAH_RETRY_SECONDS, not kopf's default minute:
    one failed API call would otherwise hold a job's roll-up, or a queued job's admission
    once cores are free, for a whole minute."""
    settings.persistence.finalizer = "pravah.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="pravah.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="pravah.io", key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 30
    settings.execution.default_backoff = pravahjob.context_of(memo).settings.retry_seconds


async def load_kube_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


async def serve_health(port: int, role: dict[str, str]) -> web.AppRunner | None:
    """/healthz answers while the event loop runs, for leader and standby alike (liveness)."""
    if not port:
        return None

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **role})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def serve(settings: OperatorSettings) -> None:
    api = await load_kube_config()
    metrics.serve(settings.metrics_port)
    role = {"role": "standby"}
    health = await serve_health(settings.health_port, role)
    store = Store(settings.database_url)
    report_server = await reports.serve(settings, api, store)
    elector = LeaderElector(api, settings.lease_name, settings.lease_namespace, settings.identity,
                            settings.lease_seconds)
    await elector.acquire()
    role["role"] = "leader"
    applied = await store.migrate()
    log.info("database schema ready (applied now: %s)", ", ".join(applied) or "none")
    stop = asyncio.Event()
    pravahjob.register(settings)
    pravahcronjob.register(settings)
    operator = asyncio.create_task(kopf.operator(
        standalone=True, clusterwide=not settings.namespaces, namespaces=settings.namespaces,
        memo=kopf.Memo(context=pravahjob.Context(settings, api, store)), stop_flag=stop))
    holder = asyncio.create_task(elector.hold())
    done, _ = await asyncio.wait({operator, holder}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    holder.cancel()
    await asyncio.gather(operator, return_exceptions=True)
    if holder not in done:
        await elector.release()
    if report_server is not None:
        await report_server.cleanup()
    await store.close()
    await api.close()
    if health is not None:
        await health.cleanup()
    if holder in done and isinstance(holder.exception(), LeaseLost):
        raise holder.exception()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Log at debug level.")
def main(verbose: bool) -> None:
    """Run the Pravah operator: turns PravahJobs into Indexed Jobs and follows them.

    Settings come from PRAVAH_* environment variables (PRAVAH_DATABASE_URL is required);
    the cluster from the in-cluster service account or KUBECONFIG. Several replicas may
    run: one leads (a Lease), the others wait and take over when it stops renewing.
    """
    try:
        settings = OperatorSettings()
    except ValidationError as exc:
        raise click.UsageError("settings: " + "; ".join(describe_errors(exc, "PRAVAH"))) from None
    setup_logging(settings.log.log_format, logging.DEBUG if verbose else logging.INFO)
    try:
        asyncio.run(serve(settings))
    except LeaseLost as exc:
        log.error("%s; stopping so that a standby takes over", exc)
        sys.exit(1)
