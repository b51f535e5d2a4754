"""Typed keys of what the application and each request carry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from pravah_api.auth import Authenticator, Principal
    from pravah_api.health import Metrics
    from pravah_api.jobs import Locations, Streams
    from pravah_api.k8s import Kube
    from pravah_api.settings import ApiSettings
    from pravah_api.store import ApiStore

SETTINGS: web.AppKey[ApiSettings] = web.AppKey("settings")
STORE: web.AppKey[ApiStore] = web.AppKey("store")
KUBE: web.AppKey[Kube] = web.AppKey("kube")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
LOCATIONS: web.AppKey[Locations] = web.AppKey("locations")
STREAMS: web.AppKey[Streams] = web.AppKey("streams")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
DOCS_HTML: web.AppKey[str] = web.AppKey("docs_html")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
