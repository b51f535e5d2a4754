"""Routes as data: each operation names its handler and its models, so the routing table and
the OpenAPI document are built from the same list and cannot drift apart."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from pravah_api.errors import ApiError, bad_request, validation_error
from pravah_api.keys import SETTINGS

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # path | query | header
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    responses: dict[int, type[BaseModel] | dict[str, Any] | None]
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    public: bool = False
    description: str = ""
    operation_id: str = field(default="")


ID_PARAM = Param("id", "path", {"type": "string", "format": "uuid"}, "The job's id (its PravahJob's uid).", True)


async def read_json(request: web.Request) -> Any:
    """The body as JSON; 400 when it is not JSON, 413 when it is too large."""
    max_size = request.app[SETTINGS].api_max_body_bytes
    if request.content_length is not None and request.content_length > max_size:
        raise ApiError(413, f"request body too large (at most {max_size} bytes)")
    raw = await request.read()
    if not raw.strip():
        raise bad_request("a JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"malformed JSON: {exc}") from None


async def read_model(request: web.Request, model: type[M]) -> tuple[M, dict[str, Any]]:
    """The body validated with `model` (422 naming the field), and the raw object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, "the body must be a JSON object", "(root)")
    try:
        return model.model_validate(body), body
    except ValidationError as exc:
        raise validation_error(exc) from None


def respond(payload: BaseModel | dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(payload, BaseModel):
        text = payload.model_dump_json(exclude_unset=False)
    else:
        text = json.dumps(payload)
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)
