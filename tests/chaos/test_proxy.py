"""The chaos proxy against a real HTTPS upstream (no cluster): it forwards unchanged, fails
with the API server's own Status bodies, ends watches early, and records created Jobs."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from chaos.plugin import ChaosSettings, jobs_per_owner
from chaos.proxy import CreatedJob, FaultPlan, FaultProxy
from pravah.localcluster.pki import PKI

JOB_UID = "0b7f5c1e-3d1f-4c55-9a51-6b7c2f0f1a10"
OWNER_UID = "5d2e8a44-1c0b-4f3e-8d5a-2a9e6c7b8d90"
# The upstream fixture serves on the session's loop: the tests must run on it too.
ON_FIXTURE_LOOP = pytest.mark.asyncio(loop_scope="session")


class Upstream:
    """A stand-in API server over real TLS: echoes requests, creates Jobs, streams a watch."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, str | None]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.method, request.path_qs, request.headers.get("Authorization")))
        if request.query.get("watch") == "true":
            reply = web.StreamResponse()
            await reply.prepare(request)
            for number in range(10_000):
                await reply.write(json.dumps({"type": "ADDED", "object": {"n": number}}).encode() + b"\n")
                await asyncio.sleep(0.05)
            return reply
        if request.method == "POST" and request.path.endswith("/jobs"):
            body = await request.json()
            body["metadata"]["uid"] = JOB_UID
            return web.json_response(body, status=201)
        return web.json_response({"path": request.path_qs, "body": (await request.read()).decode()})


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[tuple[Upstream, PKI, str]]:
    pki = PKI(tmp_path / "pki")
    serving = pki.issue("upstream", "upstream", server=True, ips=("127.0.0.1",))
    server = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(serving.cert), str(serving.key))
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
    yield server, pki, f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def start_proxy(pki: PKI, upstream_url: str, plan: FaultPlan) -> tuple[FaultProxy, str]:
    serving = pki.issue("proxy", "proxy", server=True, ips=("127.0.0.1",))
    proxy = FaultProxy(upstream_url, pki.ca_path, serving.cert, serving.key, "127.0.0.1", plan)
    return proxy, f"https://127.0.0.1:{proxy.start()}"


def client(pki: PKI) -> aiohttp.ClientSession:
    """A client that trusts the CA only, as a pod trusts its service account's ca.crt."""
    tls = ssl.create_default_context(cafile=str(pki.ca_path))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls), headers={"Authorization": "Bearer t0ken"})


@ON_FIXTURE_LOOP
async def test_forwards_unchanged_and_records_created_jobs(upstream):
    server, pki, url = upstream
    proxy, proxy_url = start_proxy(pki, url, FaultPlan(rate=0.0, watch_cut_rate=0.0, seed=1))
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "sales", "ownerReferences": [{"kind": "PravahJob", "uid": OWNER_UID}]}}
    try:
        async with client(pki) as session:
            async with session.patch(f"{proxy_url}/api/v1/namespaces/a/pods/p?x=1", data=b"patch body") as reply:
                echoed = (reply.status, await reply.json())
            async with session.post(f"{proxy_url}/apis/batch/v1/namespaces/a/jobs", json=job) as reply:
                created_status = reply.status
    finally:
        proxy.stop()
    assert echoed == (200, {"path": "/api/v1/namespaces/a/pods/p?x=1", "body": "patch body"})
    assert created_status == 201
    assert [auth for _, _, auth in server.hits] == ["Bearer t0ken", "Bearer t0ken"]
    faults, forwarded, created = proxy.snapshot()
    assert (sum(faults.values()), forwarded) == (0, 2)
    assert created == [CreatedJob("a", "sales", JOB_UID, (OWNER_UID,))]


@ON_FIXTURE_LOOP
async def test_every_request_fails_with_a_status_body_and_none_reaches_the_server(upstream):
    server, pki, url = upstream
    proxy, proxy_url = start_proxy(pki, url, FaultPlan(rate=1.0, watch_cut_rate=0.0, seed=2))
    answers = []
    try:
        async with client(pki) as session:
            for method in ("GET", "PUT", "PATCH", "POST", "DELETE") * 8:
                async with session.request(method, f"{proxy_url}/api/v1/namespaces/a/configmaps/c") as reply:
                    answers.append((method, reply.status, await reply.json()))
    finally:
        proxy.stop()
    assert server.hits == []
    for method, status, body in answers:
        assert body["kind"] == "Status" and body["code"] == status
        assert status in ((409, 429, 500) if method in ("PUT", "PATCH") else (429, 500)), (method, status)
    assert {status for method, status, _ in answers if method in ("PUT", "PATCH")} == {409, 429, 500}
    faults, forwarded, _ = proxy.snapshot()
    assert forwarded == 0
    assert faults == {str(code): sum(1 for _, status, _ in answers if status == code) for code in (409, 429, 500)}


@ON_FIXTURE_LOOP
async def test_a_watch_is_relayed_then_cut(upstream):
    server, pki, url = upstream
    plan = FaultPlan(rate=0.0, watch_cut_rate=1.0, seed=3, watch_cut_after=(0.5, 0.5))
    proxy, proxy_url = start_proxy(pki, url, plan)
    try:
        async with client(pki) as session:
            async with session.get(f"{proxy_url}/api/v1/pods?watch=true") as reply:
                lines = [json.loads(line) async for line in reply.content if line.strip()]
    finally:
        proxy.stop()
    assert lines, "events flowed before the cut"
    assert [event["object"]["n"] for event in lines] == list(range(len(lines)))
    assert len(lines) < 10_000, "the stream ended before the server did"
    assert proxy.snapshot()[0] == {"watch cut": 1}


def test_two_jobs_for_one_pravahjob_are_a_violation():
    once = CreatedJob("a", "x", "1", (OWNER_UID,))
    assert jobs_per_owner([once, CreatedJob("b", "y", "2", ("other",))]) == []
    [line] = jobs_per_owner([once, CreatedJob("a", "x", "3", (OWNER_UID,))])
    assert line.startswith(f"2 Jobs created for the PravahJob with uid {OWNER_UID}")


@pytest.mark.parametrize(("name", "value"), [("PRAVAH_CHAOS_FAULT_RATE", "1.5"),
                                             ("PRAVAH_CHAOS_WATCH_CUT_RATE", "often"),
                                             ("PRAVAH_CHAOS_KILL_EVERY", "60-20"),
                                             ("PRAVAH_CHAOS_SEED", "x")])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        ChaosSettings.from_env({name: value})
