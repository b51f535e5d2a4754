"""Attacks on the standalone login: a flood of parallel password guesses (refused with 429,
in bounded memory), a token kept after its password changed, a token of a disabled user, and
an anonymous look at /readyz for server versions."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import requests
from argon2 import PasswordHasher

from api.helpers import ADMIN, STATS_SPEC, ApiClient, assert_error
from api.helpers import start_api

HASH_SLOTS, USER_FAILURES, ADDRESS_FAILURES, WINDOW, ATTACKERS = 2, 5, 12, 600, 40
# What one argon2 hash or verification allocates, and touches (64 MiB with argon2-cffi's defaults).
ARGON2_BYTES = PasswordHasher().memory_cost * 1024
MARGIN = 32 * 2**20  # request buffers, thread stacks, allocator slack


class SpawnedApi(ApiClient):
    def __init__(self, url: str):
        self.url = url


def memory_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def login(api: ApiClient, username: str, password: str) -> requests.Response:
    return api.request("POST", "/auth/token", json={"username": username, "password": password})


def assert_limited(answer: requests.Response, field: str | None) -> None:
    error = assert_error(answer, 429, field)
    assert error["code"] == "too_many_requests", error
    assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW, answer.headers
    assert "access_token" not in answer.text


def test_parallel_password_guesses_are_limited_in_bounded_memory(control_plane, database, crd,  # noqa: F811
                                                                 monkeypatch, tmp_path):
    """The API runs as its own process, so its peak memory is its own."""
    for name, value in (("HASH_CONCURRENCY", HASH_SLOTS), ("LOGIN_USER_FAILURES", USER_FAILURES),
                        ("LOGIN_ADDRESS_FAILURES", ADDRESS_FAILURES), ("LOGIN_WINDOW_SECONDS", WINDOW)):
        monkeypatch.setenv(f"PRAVAH_API_{name}", str(value))
    process, url, _ = start_api(control_plane, database, "standalone", tmp_path)
    try:
        api = SpawnedApi(url)
        carol = api.add_user("carol", "viewer", [], password="carol-password-1")
        before = memory_bytes(process.pid, "VmRSS")
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS: the attack's peak from here

        with ThreadPoolExecutor(ATTACKERS) as pool:
            answers = list(pool.map(lambda i: login(api, ADMIN[0], f"guess-{i}"), range(ATTACKERS)))
        grown = memory_bytes(process.pid, "VmHWM") - before

        failed = [answer for answer in answers if answer.status_code == 401]
        limited = [answer for answer in answers if answer.status_code == 429]
        assert len(failed) + len(limited) == ATTACKERS, [answer.status_code for answer in answers]
        # Failures are checked and counted inside a hash slot: at most HASH_SLOTS - 1 past the limit.
        assert USER_FAILURES <= len(failed) <= USER_FAILURES + HASH_SLOTS - 1, len(failed)
        for answer in failed:
            assert_error(answer, 401)
            assert "access_token" not in answer.text
        for answer in limited:
            assert_limited(answer, "username")
        # Hashes ran (the measurement sees them), never more than HASH_SLOTS at once: far below
        # the 40 (or one per worker thread) an unbounded server would run together.
        assert ARGON2_BYTES * 0.9 <= grown <= HASH_SLOTS * ARGON2_BYTES + MARGIN, grown / 2**20

        # While limited, the right password is refused too (or the limit would not stop guessing).
        assert_limited(login(api, *ADMIN), "username")

        # Per address: guesses spread over other user names stop at the address's limit, and
        # then even another user's right password is refused; tokens already issued still work.
        for index in range(ADDRESS_FAILURES - len(failed)):
            assert_error(login(api, f"nobody-{index}", "guess"), 401)
        assert_limited(login(api, "nobody-else", "guess"), None)
        assert_limited(login(api, "carol", "carol-password-1"), None)
        assert api.request("GET", "/auth/whoami", carol).json()["name"] == "carol"
    finally:
        process.terminate()
        process.wait(30)


def test_a_token_is_revoked_when_its_password_changes(standalone_api, namespace):  # noqa: F811
    api = standalone_api
    admin = api.admin_token()
    stolen = api.add_user("dave", "submitter", [namespace], password="dave-password-1")
    assert api.request("GET", "/auth/whoami", stolen).status_code == 200  # the user's row is now cached

    changed = api.request("PATCH", "/users/dave", admin, json={"password": "dave-password-2"})
    assert changed.status_code == 200, changed.text
    error = assert_error(api.request("GET", f"/jobs?namespace={namespace}", stolen), 401)
    assert "revoked" in error["message"] and "password changed" in error["message"], error
    assert_error(api.request("POST", "/jobs", stolen, json={**STATS_SPEC, "namespace": namespace}), 401)
    assert api.request("GET", f"/jobs?namespace={namespace}", admin).json()["items"] == []  # nothing created
    assert_error(login(api, "dave", "dave-password-1"), 401)
    fresh = api.token("dave", "dave-password-2")
    assert api.request("GET", "/auth/whoami", fresh).json()["name"] == "dave"


def test_a_disabled_user_can_neither_use_its_token_nor_log_in(standalone_api, namespace):  # noqa: F811
    api = standalone_api
    admin = api.admin_token()
    token = api.add_user("eve", "submitter", [namespace], password="eve-password-1")
    assert api.request("GET", "/auth/whoami", token).status_code == 200  # the user's row is now cached

    disabled = api.request("PATCH", "/users/eve", admin, json={"disabled": True})
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True, disabled.text
    error = assert_error(api.request("GET", f"/jobs?namespace={namespace}", token), 401)
    assert "disabled" in error["message"], error
    assert_error(api.request("POST", "/jobs", token, json={**STATS_SPEC, "namespace": namespace}), 401)
    assert api.request("GET", f"/jobs?namespace={namespace}", admin).json()["items"] == []  # nothing created
    refused = login(api, "eve", "eve-password-1")
    assert "disabled" in assert_error(refused, 401)["message"] and "access_token" not in refused.text
    # An admin cannot lock itself out.
    assert_error(api.request("PATCH", "/users/admin", admin, json={"disabled": True}), 409, "disabled")
    assert api.request("GET", "/auth/whoami", admin).status_code == 200

    # Enabled again, the user logs in anew; the token from before stays revoked.
    enabled = api.request("PATCH", "/users/eve", admin, json={"disabled": False})
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False, enabled.text
    assert "revoked" in assert_error(api.request("GET", "/auth/whoami", token), 401)["message"]
    assert api.request("GET", "/auth/whoami", api.token("eve", "eve-password-1")).json()["name"] == "eve"


def test_readiness_tells_anonymous_callers_no_versions(standalone_api, control_plane, database):  # noqa: F811
    answer = requests.get(standalone_api.url + "/readyz", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "checks": {"kubernetes": {"ok": True}, "postgresql": {"ok": True}}}

    async def postgres_version() -> str:
        connection = await asyncpg.connect(database)
        try:
            return await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()

    kubernetes = json.loads(control_plane.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    for leaked in (kubernetes, kubernetes.lstrip("v"), asyncio.run(postgres_version()), "PostgreSQL"):
        assert leaked not in answer.text, leaked
    assert answer.headers["Server"] == "pravah-api", "no aiohttp or Python version in the headers"
