"""A load benchmark (figures printed, nothing timed is asserted): 50 concurrent POST /jobs and
200 concurrent GET /jobs/{id} against the API run as its own process (`pravah-api`), in
both auth modes, all answers checked."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp
import pytest
import requests

from api.helpers import ADMIN, CLAIMS, STATS_SPEC, service_account, start_api

POSTS, GETS = 50, 200


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def burst(session: aiohttp.ClientSession, count: int, request) -> tuple[list[float], list, float]:
    async def one(index: int):
        start = time.perf_counter()
        async with request(session, index) as answer:
            body = await answer.json()
            return time.perf_counter() - start, answer.status, body

    began = time.perf_counter()
    results = await asyncio.gather(*(one(index) for index in range(count)))
    return [r[0] for r in results], [(r[1], r[2]) for r in results], time.perf_counter() - began


def report(label: str, latencies: list[float], wall: float) -> str:
    return (f"{label}: {len(latencies)} requests in {wall:.2f}s = {len(latencies) / wall:.0f} req/s, "
            f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms")


@pytest.mark.parametrize("mode", ["standalone", "kubernetes"])
def test_concurrent_posts_and_gets(control_plane, database, crd, namespace, tmp_path, mode):
    process, url, log = start_api(control_plane, database, mode, tmp_path)
    try:
        if mode == "standalone":
            token = requests.post(url + "/auth/token", json=dict(zip(("username", "password"), ADMIN)),
                                  timeout=10).json()["access_token"]
        else:
            token = service_account(control_plane, namespace, "bench",
                                    ["get", "list", "watch", "create", "patch", "delete"], CLAIMS)
        headers = {"Authorization": f"Bearer {token}"}

        async def run() -> list[str]:
            connector = aiohttp.TCPConnector(limit=GETS)
            async with aiohttp.ClientSession(url, headers=headers, connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=120)) as session:
                post_latencies, posted, post_wall = await burst(
                    session, POSTS, lambda s, i: s.post("/jobs", json={**STATS_SPEC, "namespace": namespace,
                                                                       "name": f"bench-{i}"}))
                assert all(status == 201 for status, _ in posted), [p for p in posted if p[0] != 201][:3]
                ids = [body["id"] for _, body in posted]
                get_latencies, got, get_wall = await burst(
                    session, GETS, lambda s, i: s.get(f"/jobs/{ids[i % len(ids)]}"))
                assert all(status == 200 for status, _ in got), [g for g in got if g[0] != 200][:3]
                assert {body["id"] for _, body in got} == set(ids)
                lines = [report(f"[{mode}] POST /jobs x{POSTS} concurrent", post_latencies, post_wall),
                         report(f"[{mode}] GET /jobs/{{id}} x{GETS} concurrent", get_latencies, get_wall)]
                return lines

        lines = asyncio.run(run())
        print("\n" + "\n".join(lines))
        metrics = requests.get(url + "/metrics", timeout=10).text
        assert 'route="/jobs/{id}",status="200"' in metrics
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
