"""/ui/: the web dashboard, static files built from `ui/` (React, Vite) into `ui_dist`.

The files hold no data and are public; every call they make to the API is authenticated
like any other client's. Paths under /ui/ that are not files answer the app's index.html,
so that links into the dashboard's own pages work."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from pravah_api.errors import ApiError

log = logging.getLogger("pravah.api")
BUILT = Path(__file__).parent / "ui_dist"
# Scripts and styles only from this origin (charts set inline styles); nothing may frame it.
# 'unsafe-eval': the form's JSON Schema validator compiles its checks as functions.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def routes(app: web.Application, directory: Path = BUILT) -> None:
    """Serve the built dashboard, or say plainly at start and at /ui/ that it is not built."""
    index = directory / "index.html"
    if index.is_file():
        log.info("dashboard served at /ui/ from %s", directory)
    else:
        log.warning("dashboard not built (%s is missing): /ui/ answers 503; `make setup` builds it", index)
    root = directory.resolve()

    async def page(request: web.Request) -> web.StreamResponse:
        if not index.is_file():
            raise ApiError(503, "the dashboard is not built into this API: build ui/ (make setup) and reinstall",
                           code="ui_not_built")
        wanted = (root / request.match_info.get("path", "")).resolve()
        target = wanted if wanted.is_relative_to(root) and wanted.is_file() else index
        response = web.FileResponse(target)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Hashed asset names never change; index.html must be fetched anew after an upgrade.
        hashed = target.parent == root / "assets"
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return response

    async def to_index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect("/ui/")

    app.router.add_get("/ui", to_index)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/{path:.+}", page)
