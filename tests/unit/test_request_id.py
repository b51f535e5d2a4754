"""Request ids: the API's application (from its factory) answers every request with one, the
caller's when it is a sane token, and its log records carry it."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from pravah.logs import log_fields, setup_logging
from pravah_api.app import create_app, resources
from pravah_api.settings import ApiSettings

HEADER = "X-Request-Id"
LOGGED = "/test-logged"
SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")  # the documented rule for a caller's id, restated


async def logged(request: web.Request) -> web.Response:
    """A route of the test's own: writes one record while the request is handled."""
    logging.getLogger("pravah.api").info("handling %s", request.path)
    return web.json_response({})


@pytest_asyncio.fixture(loop_scope="function")
async def api() -> AsyncIterator[TestClient]:
    """The real application without its cluster and database resources: routes that need
    neither (/healthz, unknown paths) answer as in production."""
    app = create_app(ApiSettings(database_url="postgresql://unused", kubeconfig="unused",
                                 api_auth_mode="kubernetes"))
    app.cleanup_ctx.remove(resources)
    app.router.add_get(LOGGED, logged)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """JSON lines of every record, in a buffer; the root logger is as it was afterwards."""
    root, stream = logging.getLogger(), io.StringIO()
    level = root.level
    handlers = setup_logging("json", streams=[stream])
    yield stream
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def new_uuid4(value: str) -> bool:
    return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value


@pytest.mark.parametrize("sent", ["build-42.retry_1", str(uuid.uuid4()), "a" * 128])
async def test_a_sane_caller_id_is_echoed(api, sent):
    assert SANE.fullmatch(sent)
    answer = await api.get("/healthz", headers={HEADER: sent})
    assert answer.status == 200
    assert answer.headers[HEADER] == sent


@pytest.mark.parametrize("sent", ["has spaces", "semi;colon", "a" * 129, "", "{json}", "ümlaut"])
async def test_an_unsafe_caller_id_is_replaced_by_a_new_one(api, sent):
    assert not SANE.fullmatch(sent)
    answer = await api.get("/healthz", headers={HEADER: sent})
    assert answer.status == 200
    assert answer.headers[HEADER] != sent and new_uuid4(answer.headers[HEADER])


async def test_a_request_without_an_id_gets_a_fresh_one_each_time(api):
    first, second = (await api.get("/healthz"), await api.get("/healthz"))
    assert new_uuid4(first.headers[HEADER]) and new_uuid4(second.headers[HEADER])
    assert first.headers[HEADER] != second.headers[HEADER]


async def test_error_answers_carry_the_id_too(api):
    answer = await api.get("/no-such-route", headers={HEADER: "trace-404"})
    assert answer.status == 404
    assert (await answer.json())["error"]["code"] == "not_found"
    assert answer.headers[HEADER] == "trace-404"


async def test_records_written_while_handling_carry_the_id(api, json_log):
    answer = await api.get(LOGGED, headers={HEADER: "trace-logged"})
    fresh = await api.get(LOGGED)
    logging.getLogger("pravah.api").info("between requests")
    ids = [(record["message"], record.get("request_id")) for record in map(json.loads, json_log.getvalue().splitlines())
           if record["logger"] == "pravah.api"]
    assert answer.headers[HEADER] == "trace-logged"
    assert ids == [(f"handling {LOGGED}", "trace-logged"), (f"handling {LOGGED}", fresh.headers[HEADER]),
                   ("between requests", None)]


def test_log_fields_nest_and_are_gone_after_the_block(json_log):
    log = logging.getLogger("pravah.operator")
    with log_fields(job="sales-profile", namespace="analytics", request_id=None):
        with log_fields(request_id="trace-1"):
            log.info("inner")
        log.info("outer", extra={"job": "explicit"})
    log.info("after")
    inner, outer, after = (json.loads(line) for line in json_log.getvalue().splitlines())
    assert (inner["job"], inner["namespace"], inner["request_id"]) == ("sales-profile", "analytics", "trace-1")
    assert (outer["job"], outer["namespace"]) == ("explicit", "analytics") and "request_id" not in outer
    assert not {"job", "namespace", "request_id"} & set(after)
