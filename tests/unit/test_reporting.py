"""The runner's report client against real HTTP servers: what it sends, and how it takes
refusals, an operator that is away, a connection broken off and an answer that never comes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from pravah.localcluster.procs import free_port
from pravah.reporting import OperatorReports, ReportRefused, ReportUnavailable


@asynccontextmanager
async def operator(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """An aiohttp server answering every path with `handler`; yields its URL."""
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def token(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    return path


async def test_sends_json_with_the_current_token_and_reads_big_answers(token: Path) -> None:
    seen: list[dict] = []
    big_partial = "x" * (3 << 20)  # larger than one read, both ways

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"method": request.method, "path": request.path, "query": dict(request.query),
                     "auth": request.headers.get("Authorization"), "body": body})
        if request.path.endswith("/merge-input"):
            return web.json_response({"partials": [[0, 1, big_partial]]})
        return web.json_response({"merge": True})

    async with operator(handler) as url:
        reports = OperatorReports(url + "/", token)
        await reports.start_shard(12, 3456, 2)
        token.write_text("renewed-token\n")  # the kubelet renews it; the next call must carry the new one
        assert await reports.finish_shard() is True
        rows = await reports.merge_input((0, 0), 16)
        await reports.save_batch(1, [["a.csv", 3]], big_partial, [], [])

    assert [(s["method"], s["path"]) for s in seen] == [
        ("POST", "/v1/shard/start"), ("POST", "/v1/shard/finish"), ("GET", "/v1/shard/merge-input"),
        ("PUT", "/v1/shard/batches/1")]
    assert json.loads(seen[0]["body"]) == {"files_total": 12, "bytes_total": 3456, "threads": 2}
    assert [s["auth"] for s in seen] == ["Bearer first-token"] + ["Bearer renewed-token"] * 3
    assert seen[2]["query"] == {"shard": "0", "batch": "0", "limit": "16"}
    assert rows == [(0, 1, big_partial)]
    sent = json.loads(seen[3]["body"])["partial"]
    assert hashlib.sha256(sent.encode()).digest() == hashlib.sha256(big_partial.encode()).digest()


async def test_retries_while_the_operator_answers_unavailable(token: Path) -> None:
    answers = [web.json_response({"error": "database unavailable"}, status=503)] * 2 + [
        web.json_response({"merge": False})]
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return answers[calls - 1]

    async with operator(handler) as url:
        assert await OperatorReports(url, token, retry_seconds=30).finish_shard() is False
    assert calls == 3


async def test_a_refusal_is_final_and_names_the_reason(token: Path) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"error": "the token is not this pod's"}, status=403)

    async with operator(handler) as url:
        with pytest.raises(ReportRefused, match="POST /finish: 403: the token is not this pod's"):
            await OperatorReports(url, token, retry_seconds=30).finish_shard()
    assert calls == 1


async def test_a_connection_broken_off_is_retried(token: Path) -> None:
    """The first connection is reset and the second closed before any answer (an operator
    restarting); the call goes on and gets the third connection's answer."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections == 1:  # a reset (RST), not an orderly close
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if connections > 2:
            body = b'{"merge": true}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        assert await OperatorReports(f"http://127.0.0.1:{port}", token, retry_seconds=30).finish_shard() is True
    assert connections == 3


async def test_an_unreachable_operator_is_reported_as_unavailable(token: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ReportUnavailable, match=f"cannot reach the operator at 127.0.0.1:{port}"):
        await OperatorReports(f"http://127.0.0.1:{port}", token, retry_seconds=0.5).finish_shard()


async def test_an_answer_that_never_comes_times_out(token: Path) -> None:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"merge": True})

    async with operator(handler) as url:
        with pytest.raises(TimeoutError):
            await OperatorReports(url, token, retry_seconds=0.5, timeout=0.2).finish_shard()
        release.set()
