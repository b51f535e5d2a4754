"""The application factory: `create_app(settings) -> web.Application`.

Resources (the Kubernetes client, the PostgreSQL pool, the authenticator) are opened when
the application starts and closed when it stops; the database schema is migrated at start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from pravah_api import config, health, jobs, openapi, ui, users
from pravah_api.auth import StandaloneAuth, authenticator
from pravah_api.errors import error_middleware
from pravah_api.health import Metrics
from pravah_api.k8s import Kube, api_client
from pravah_api.keys import AUTH, DOCS_HTML, KUBE, LOCATIONS, METRICS, OPENAPI, SETTINGS, STORE, STREAMS
from pravah_api.request_id import echo_request_id, request_ids
from pravah_api.routing import Operation
from pravah_api.settings import ApiSettings
from pravah_api.store import ApiStore

log = logging.getLogger("pravah.api")
# Request line and header size limits of the HTTP parser (answers beyond them are plain 400s).
MAX_LINE_BYTES = 65536


def operations(settings: ApiSettings) -> list[Operation]:
    routes = [*jobs.ROUTES, *config.ROUTES, *users.COMMON_ROUTES]
    if settings.api_auth_mode == "standalone":
        routes += users.STANDALONE_ROUTES
    return [*routes, *health.ROUTES, *openapi.ROUTES]


def create_app(settings: ApiSettings | None = None) -> web.Application:
    settings = settings or ApiSettings()
    metrics = Metrics()
    app = web.Application(client_max_size=settings.api_max_body_bytes,
                          middlewares=[request_ids, metrics.middleware(), error_middleware],
                          handler_args={"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES})
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[LOCATIONS] = jobs.Locations()
    app[STREAMS] = jobs.Streams()
    routes = operations(settings)
    for op in routes:
        app.router.add_route(op.method, op.path, op.handler, name=op.operation_id or op.handler.__name__)
    if settings.api_ui:
        ui.routes(app, settings.api_ui_dir or ui.BUILT)
    app[OPENAPI] = openapi.build(routes, settings.api_docs_title, settings.api_auth_mode)
    app[DOCS_HTML] = openapi.docs_html(app[OPENAPI])
    app.on_response_prepare.extend([hide_server_version, echo_request_id])
    app.cleanup_ctx.append(resources)
    return app


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """Anonymous callers learn nothing of the versions behind the API (aiohttp names itself)."""
    response.headers["Server"] = "pravah-api"


async def resources(app: web.Application) -> AsyncIterator[None]:
    settings: ApiSettings = app[SETTINGS]
    store = ApiStore(settings.database_url, pool_size=settings.api_database_pool_size)
    applied = await store.migrate()
    log.info("database schema ready (applied now: %s)", ", ".join(applied) or "none")
    kube = Kube(await api_client(settings), settings.api_kube_timeout)
    auth = authenticator(settings, kube, store)
    app[STORE], app[KUBE], app[AUTH] = store, kube, auth
    if isinstance(auth, StandaloneAuth) and settings.api_bootstrap_admin:
        await bootstrap_admin(store, auth, settings.api_bootstrap_admin)
    try:
        yield
    finally:
        await kube.close()
        await store.close()


async def bootstrap_admin(store: ApiStore, auth: StandaloneAuth, credentials: str) -> None:
    """Create the first admin from USER:PASSWORD when there is no admin yet."""
    username, _, password = credentials.partition(":")
    if not username or len(password) < 8:
        raise ValueError("PRAVAH_API_BOOTSTRAP_ADMIN must be USER:PASSWORD with a password of 8+ characters")
    if await store.has_admin():
        return
    if await store.create_user(username, await auth.hash_password(password), "admin", []) is not None:
        log.info("created the first admin user %r", username)
