"""The API's PostgreSQL access: the shared `pravah.store.Store` plus the API's own tables
(users, Idempotency-Key answers, job locations; see migrations/0002_api.sql)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from pravah.store import Store


class ApiStore(Store):
    """A `Store` with a pool sized for a web service and short retries (requests must not hang)."""

    def __init__(self, dsn: str, pool_size: int = 10, retry_seconds: float = 3.0):
        super().__init__(dsn, retry_seconds=retry_seconds)
        self.pool_size = pool_size

    async def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size,
                                                   command_timeout=15)
        return self._pool

    async def ping(self) -> str:
        pool = await self._connected()
        return await pool.fetchval("SELECT version()", timeout=3)

    # -- job locations: id (uid) -> namespace/name ---------------------------------------

    async def remember_job(self, uid: str, namespace: str, name: str) -> None:
        await self.retrying(lambda c: c.execute(
            "INSERT INTO api_job_locations (uid, namespace, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            uid, namespace, name))

    async def locate_job(self, uid: str) -> tuple[str, str] | None:
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT namespace, name FROM api_job_locations WHERE uid = $1 "
            "UNION ALL SELECT namespace, name FROM jobs WHERE uid = $1 LIMIT 1", uid))
        return (row["namespace"], row["name"]) if row else None

    # -- idempotency -------------------------------------------------------------------------

    @asynccontextmanager
    async def idempotency(self, principal: str, key: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding the key's lock: concurrent retries of one request queue here."""
        pool = await self._connected()
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                                     f"{principal}\n{key}")
            yield connection

    @staticmethod
    async def idempotent_answer(connection: asyncpg.Connection, principal: str, key: str,
                                keep_hours: float) -> dict[str, Any] | None:
        """The job an earlier request with this key created, unless the key has expired."""
        await connection.execute(
            "DELETE FROM api_idempotency_keys WHERE principal = $1 AND key = $2 "
            "AND created_at < now() - make_interval(secs => $3)", principal, key, keep_hours * 3600)
        row = await connection.fetchrow(
            "SELECT request_hash, job_uid::text AS uid, namespace, name FROM api_idempotency_keys "
            "WHERE principal = $1 AND key = $2", principal, key)
        return dict(row) if row else None

    @staticmethod
    async def save_idempotent_answer(connection: asyncpg.Connection, principal: str, key: str, request_hash: str,
                                     uid: str, namespace: str, name: str) -> None:
        await connection.execute(
            "INSERT INTO api_idempotency_keys (principal, key, request_hash, job_uid, namespace, name) "
            "VALUES ($1, $2, $3, $4, $5, $6)", principal, key, request_hash, uid, namespace, name)
        await connection.execute(
            "INSERT INTO api_job_locations (uid, namespace, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            uid, namespace, name)

    # -- history -----------------------------------------------------------------------------

    async def job_history(self, uid: str) -> dict[str, Any] | None:
        """The job's record; `result_bytes` is the size of its result's copy kept here, if any."""
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT phase, reason, message, created_at, started_at, finished_at, result_uri, "
            "result IS NOT NULL AS has_result, octet_length(r.document) AS result_bytes "
            "FROM jobs LEFT JOIN job_results r ON r.job_uid = jobs.uid WHERE uid = $1", uid))
        return dict(row) if row else None

    async def result_text(self, uid: str) -> str | None:
        """The kept copy of a small result document (jobs.result is only its summary)."""
        return await self.retrying(lambda c: c.fetchval("SELECT document FROM job_results WHERE job_uid = $1", uid))

    async def runner_logs_head(self, uid: str, max_bytes: int) -> list[dict[str, Any]]:
        """Archived runner logs, each at most `max_bytes` long (cut here, not after the whole
        log has crossed the wire) and marked `truncated` when longer."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT shard, pod, left(log, $2) AS log, octet_length(log) > $2 AS truncated, created_at "
            "FROM runner_logs WHERE job_uid = $1 ORDER BY shard, created_at", uid, max_bytes))
        return [{**dict(row), "log": row["log"].encode()[:max_bytes].decode(errors="ignore")} for row in rows]

    async def file_errors(self, uid: str, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """How many files of the job failed, and one page of them by path."""
        total = await self.retrying(lambda c: c.fetchval(
            "SELECT count(*) FROM file_records WHERE job_uid = $1 AND error IS NOT NULL", uid))
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT path, line, error AS reason, shard FROM file_records WHERE job_uid = $1 AND error IS NOT NULL "
            "ORDER BY path LIMIT $2 OFFSET $3", uid, limit, offset))
        return total, [dict(row) for row in rows]

    async def shard_progress(self, uid: str) -> list[dict[str, Any]]:
        """Per shard of the job's stored list: its files and bytes, and how many of them are
        recorded done (with how many failed); empty until the list is stored."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT f.shard, count(*) AS files_total, coalesce(sum(f.bytes), 0) AS bytes_total, "
            "count(r.path) AS files_done, coalesce(sum(r.bytes), 0) AS bytes_done, count(r.error) AS errors "
            "FROM jobs j JOIN job_files f ON f.job_uid = j.uid AND f.listing = j.listing "
            "LEFT JOIN file_records r ON r.job_uid = f.job_uid AND r.path = f.path "
            "WHERE j.uid = $1 GROUP BY f.shard ORDER BY f.shard", uid))
        return [{key: int(value) for key, value in dict(row).items()} for row in rows]

    # -- users (standalone mode) -------------------------------------------------------------

    async def user(self, username: str) -> dict[str, Any] | None:
        row = await self.retrying(lambda c: c.fetchrow("SELECT * FROM api_users WHERE username = $1", username))
        return dict(row) if row else None

    async def users(self) -> list[dict[str, Any]]:
        rows = await self.retrying(lambda c: c.fetch("SELECT * FROM api_users ORDER BY username"))
        return [dict(row) for row in rows]

    async def create_user(self, username: str, password_hash: str, role: str, namespaces: list[str]) -> dict | None:
        """The new user, or None when the name is taken."""
        row = await self.retrying(lambda c: c.fetchrow(
            "INSERT INTO api_users (username, password_hash, role, namespaces) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (username) DO NOTHING RETURNING *", username, password_hash, role, namespaces))
        return dict(row) if row else None

    async def update_user(self, username: str, changes: dict[str, Any],
                          revoke_tokens: bool = False) -> dict[str, Any] | None:
        """The changed user, or None when there is none; `revoke_tokens` increments the token
        generation, so every token issued before stops working."""
        columns = {key: changes[key] for key in ("password_hash", "role", "namespaces", "disabled") if key in changes}
        assignments = [f"{column} = ${index + 2}" for index, column in enumerate(columns)]
        if revoke_tokens:
            assignments.append("token_generation = token_generation + 1")
        sets = ", ".join([*assignments, "updated_at = now()"])
        row = await self.retrying(lambda c: c.fetchrow(
            f"UPDATE api_users SET {sets} WHERE username = $1 RETURNING *", username, *columns.values()))
        return dict(row) if row else None

    async def delete_user(self, username: str) -> bool:
        done = await self.retrying(lambda c: c.execute("DELETE FROM api_users WHERE username = $1", username))
        return done.endswith(" 1")

    async def has_admin(self) -> bool:
        return bool(await self.retrying(lambda c: c.fetchval(
            "SELECT EXISTS (SELECT 1 FROM api_users WHERE role = 'admin')")))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
