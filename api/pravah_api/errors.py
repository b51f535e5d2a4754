"""One error shape everywhere: {"error": {"code", "message", "field"}}.

Handlers raise `ApiError` (or let pydantic's ValidationError, aiohttp's HTTP exceptions and
Kubernetes API errors through); the middleware turns each into that shape with its status.
Anything else is logged with its traceback and answered as a plain 500: no stack trace
ever reaches a client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

log = logging.getLogger("pravah.api")

CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_failed", 429: "too_many_requests",
    500: "internal", 502: "bad_gateway", 503: "unavailable", 504: "timeout",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or CODES.get(status, "error")
        self.headers = headers or {}


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


def unauthenticated(message: str = "a bearer token is required") -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="pravah"'})


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, message, field)


def conflict(message: str, field: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(409, message, field, code)


def error_body(status: int, message: str, field: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code or CODES.get(status, "error"), "message": message, "field": field}}


def error_response(status: int, message: str, field: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(status, message, field, code), status=status, headers=headers)


def field_path(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [str(part) for part in loc if not str(part).startswith("function-")]
    return ".".join(filter(None, [prefix, *parts])) or "(root)"


def validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first failing field names the error; the message lists all of them."""
    errors = exc.errors(include_url=False)
    lines = [f"{field_path(item['loc'], prefix)}: {item['msg']}" for item in errors]
    first = field_path(errors[0]["loc"], prefix) if errors else None
    return ApiError(422, "; ".join(lines)[:4000], first)


def from_kubernetes(exc: ApiException) -> ApiError:
    """A Kubernetes API answer in our words (its message names the field for 422s)."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = str(body.get("message") or exc.reason or "Kubernetes API error")[:4000]
    status = exc.status or 502
    if status in (400, 401, 403, 404, 409, 422):
        field = None
        causes = (body.get("details") or {}).get("causes") or []
        if causes and causes[0].get("field"):
            field = causes[0]["field"]
        if status == 401:  # the service's own credential was refused: not the caller's fault
            return ApiError(502, "the Kubernetes API server refused the service's credential")
        return ApiError(status, message, field)
    if status == 429:
        return ApiError(503, "the Kubernetes API server is busy; retry later")
    return ApiError(502, f"the Kubernetes API server answered {status}")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.field, exc.code, exc.headers)
    except ValidationError as exc:
        error = validation_error(exc)
        return error_response(error.status, error.message, error.field)
    except ApiException as exc:
        log.info("%s %s: Kubernetes API answered %s: %s", request.method, request.path, exc.status,
                 (exc.body or exc.reason or "")[:500] if isinstance(exc.body or "", str) else exc.reason)
        error = from_kubernetes(exc)
        return error_response(error.status, error.message, error.field)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, f"request body too large (at most {exc.max_size} bytes)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {key: value for key, value in exc.headers.items() if key in ("Allow", "WWW-Authenticate")}
        message = exc.reason if exc.status != 404 else f"no such resource: {request.path}"
        return error_response(exc.status, message, headers=headers or None)
    except asyncpg.DataError:
        return error_response(422, "a value cannot be stored (e.g. it contains a NUL character)")
    except (TimeoutError, ConnectionError, OSError, asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError) as exc:
        log.warning("%s %s: upstream unavailable: %r", request.method, request.path, exc)
        return error_response(503, "a backing service (Kubernetes API or PostgreSQL) is unavailable")
    except Exception:  # noqa: BLE001 - the one place that turns bugs into a clean 500
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal error")
