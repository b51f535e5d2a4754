"""One id per request: the caller's `X-Request-Id` when it is a sane token, else a new UUID.

It is answered in the `X-Request-Id` response header, carried by every log record written
while the request is handled, and written on the PravahJob the request creates (see
`REQUEST_ID_ANNOTATION`), so the operator's records and Events about the job name it too:
one id follows a job from the caller's request to `kubectl describe`.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from pravah.logs import log_fields

from pravah_api.keys import REQUEST_ID

HEADER = "X-Request-Id"
MAX_CHARS = 128
# A caller's id goes into logs, headers and an annotation: letters, digits, `.`, `_`, `-` only.
SANE = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_CHARS}}}")


def request_id_of(header: str | None) -> str:
    """The caller's id if it is a sane token, else a fresh one (a bad id is replaced, not refused:
    tracing must never fail a request)."""
    if header is not None and SANE.fullmatch(header):
        return header
    return str(uuid.uuid4())


@web.middleware
async def request_ids(request: web.Request, handler):
    request[REQUEST_ID] = request_id_of(request.headers.get(HEADER))
    with log_fields(request_id=request[REQUEST_ID]):
        return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request, errors and event streams included."""
    if REQUEST_ID in request:
        response.headers[HEADER] = request[REQUEST_ID]
