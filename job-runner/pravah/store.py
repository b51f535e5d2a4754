"""PostgreSQL records shared by the operator and the runners.

The CR is the source of truth for what a job *is*; PostgreSQL keeps what outlives pods and
does not fit in etcd: the job's file list, per-shard progress, per-batch partial results,
per-file records, runner logs and a small summary of the merged result (the result itself
is an object in the job's output storage). Every write is keyed so that a retry is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

T = TypeVar("T")
MIGRATION_LOCK = 0x70726176  # advisory lock id: one migrator at a time
# A baseline's per-file partials: those it read itself, and those it reused under the listing
# that became its own (not those of a listing that lost the race to be stored).
BASELINE_ROWS = "JOIN jobs base ON base.uid = b.job_uid AND (b.reused_by IS NULL OR b.reused_by = base.listing)"
TRANSIENT = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


@dataclass(frozen=True)
class JobRecord:
    uid: str
    namespace: str
    name: str
    operation: str
    spec: dict[str, Any]
    shards: int
    threads: int
    reuse_of: str | None = None
    reuse_mode: str | None = None


class Store:
    """A small pool of connections, with writes retried across a database restart."""

    def __init__(self, dsn: str, retry_seconds: float = 120.0):
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=4, command_timeout=30)
        return self._pool

    async def retrying(self, action: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `action` on a connection, retrying while the database is unreachable."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT), stop=stop_after_delay(self.retry_seconds),
            wait=wait_exponential(multiplier=0.2, max=3), reraise=True,
        ):
            with attempt:
                pool = await self._connected()
                async with pool.acquire() as connection:
                    return await action(connection)
        raise AssertionError("unreachable")

    # -- schema --------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply the versioned migrations not applied yet; return the ones applied now."""

        async def apply(connection: asyncpg.Connection) -> list[str]:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                done = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
                applied = []
                for version, sql in migrations():
                    if version not in done:
                        await connection.execute(sql)
                        await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                        applied.append(version)
                return applied

        return await self.retrying(apply)

    # -- jobs (operator) -----------------------------------------------------------------

    async def record_job(self, job: JobRecord) -> tuple[int, int]:
        """Record the job once; return the (shards, threads) stored for it, which an earlier
        admission attempt may have fixed: the Job must be sized as the record says."""
        row = await self.retrying(lambda c: c.fetchrow(
            "INSERT INTO jobs (uid, namespace, name, operation, spec, shards, threads, reuse_of, reuse_mode) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (uid) DO UPDATE SET uid = jobs.uid "
            "RETURNING shards, threads",
            job.uid, job.namespace, job.name, job.operation, json.dumps(job.spec), job.shards, job.threads,
            job.reuse_of, job.reuse_mode))
        return row["shards"], row["threads"]

    async def set_phase(self, uid: str, phase: str, reason: str | None = None, message: str | None = None) -> None:
        await self.retrying(lambda c: c.execute(
            "UPDATE jobs SET phase = $2, reason = $3, message = $4, "
            "started_at = CASE WHEN $2 = 'Running' THEN coalesce(started_at, now()) ELSE started_at END, "
            "finished_at = CASE WHEN $2 IN ('Succeeded', 'Failed', 'Cancelled') "
            "THEN coalesce(finished_at, now()) ELSE finished_at END WHERE uid = $1",
            uid, phase, reason, message))

    async def job(self, uid: str) -> dict[str, Any] | None:
        """The job's record without its spec and result (see job_summary for the latter)."""
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT uid, namespace, name, operation, shards, threads, phase, reason, message, created_at, "
            "started_at, finished_at, result_uri, result IS NOT NULL AS merged, files_total, bytes_total, "
            "list_digest FROM jobs WHERE uid = $1", uid))
        return dict(row) if row else None

    async def progress(self, uid: str) -> dict[str, int]:
        """Progress summed over shards: what the operator rolls up into the status."""
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT coalesce(sum(files_total), 0) AS files_total, coalesce(sum(files_done), 0) AS files_done, "
            "coalesce(sum(bytes_total), 0) AS bytes_total, coalesce(sum(bytes_done), 0) AS bytes_done, "
            "coalesce(sum(errors), 0) AS errors, count(*) FILTER (WHERE state = 'done') AS shards_done, "
            "max(threads) AS threads FROM shards WHERE job_uid = $1", uid))
        listed = await self.retrying(lambda c: c.fetchrow(
            "SELECT files_total, bytes_total FROM jobs WHERE uid = $1 AND listing IS NOT NULL", uid))
        if listed is not None:  # the stored list is the job's total, whichever shards have started
            row = {**dict(row), "files_total": listed["files_total"], "bytes_total": listed["bytes_total"]}
        return {key: int(value or 0) for key, value in row.items()}

    async def error_samples(self, uid: str, limit: int = 10) -> list[dict[str, Any]]:
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT path, error AS reason, line FROM file_records WHERE job_uid = $1 AND error IS NOT NULL "
            "ORDER BY path LIMIT $2", uid, limit))
        return [{key: value for key, value in dict(row).items() if value is not None} for row in rows]

    async def runner_logs(self, uid: str) -> list[dict[str, Any]]:
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT shard, pod, log, created_at FROM runner_logs WHERE job_uid = $1 ORDER BY shard, created_at", uid))
        return [dict(row) for row in rows]

    # -- the job's file list (listed once, by the runner holding the claim) ---------------

    async def listing(self, uid: str, shard: int) -> dict[str, Any] | None:
        """The job's stored list (totals, digest) and this shard's share of it; None before it is stored."""
        job = await self.retrying(lambda c: c.fetchrow(
            "SELECT listing, files_total, bytes_total, list_digest FROM jobs WHERE uid = $1", uid))
        if job is None or job["listing"] is None:
            return None
        mine = await self.retrying(lambda c: c.fetchrow(
            "SELECT count(*) AS files, coalesce(sum(bytes), 0) AS bytes FROM job_files "
            "WHERE job_uid = $1 AND listing = $2 AND shard = $3", uid, job["listing"], shard))
        return {"listing": str(job["listing"]), "files": job["files_total"], "bytes": job["bytes_total"],
                "digest": job["list_digest"], "shard_files": mine["files"], "shard_bytes": int(mine["bytes"])}

    async def listing_claim(self, uid: str) -> str | None:
        """The pod that claimed the listing of a job not listed yet (None when listed or unclaimed)."""
        return await self.retrying(lambda c: c.fetchval(
            "SELECT listing_claim FROM jobs WHERE uid = $1 AND listing IS NULL", uid))

    async def claim_listing(self, uid: str, pod: str, replacing: str | None) -> bool:
        """Make `pod` the job's lister if the claim is still `replacing`: True when it is now.

        A compare-and-set on the job row, so of two runners claiming at once one wins.
        """
        claimed = await self.retrying(lambda c: c.fetchval(
            "UPDATE jobs SET listing_claim = $2 WHERE uid = $1 AND listing IS NULL "
            "AND listing_claim IS NOT DISTINCT FROM $3 RETURNING listing_claim", uid, pod, replacing))
        return claimed == pod

    async def stage_listing(self, uid: str, listing: str, rows: list[tuple[int, int, str, int, str | None]]) -> None:
        """One page of a listing not committed yet: (shard, position, path, bytes, version) rows.
        A page sent again (a retried request) has the same keys and changes nothing."""
        await self.retrying(lambda c: c.executemany(
            "INSERT INTO job_files (job_uid, listing, shard, position, path, bytes, version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [(uid, listing, *row) for row in rows]))

    async def stage_reused(self, uid: str, listing: str, paths: list[str]) -> None:
        """Copy the baseline's per-file partials of files a listing found unchanged; they count
        only once that listing is the job's (a retried page copies nothing twice)."""
        await self.retrying(lambda c: c.execute(
            "INSERT INTO file_partials (job_uid, path, bytes, version, partial, failed, reused_by) "
            "SELECT $1, b.path, b.bytes, b.version, b.partial, b.failed, $2 FROM file_partials b "
            f"JOIN jobs j ON j.uid = $1 AND b.job_uid = j.reuse_of {BASELINE_ROWS} WHERE b.path = ANY($3::text[]) "
            "ON CONFLICT (job_uid, path) DO UPDATE SET reused_by = $2, bytes = excluded.bytes, "
            "version = excluded.version, partial = excluded.partial, failed = excluded.failed",
            uid, listing, paths))

    async def reuse_target(self, uid: str) -> dict[str, Any] | None:
        """The job a re-run or incremental run builds on (mode, uid, name; no uid for an incremental
        run without a baseline yet), and what the job's listing found (counts of reused, new,
        changed... files); None for a job of its own."""
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT j.reuse_mode AS mode, j.reuse AS counts, b.uid, b.name, (SELECT count(*) FROM file_records r "
            "WHERE r.job_uid = b.uid AND r.error IS NULL) + (SELECT count(*) FROM file_partials p "
            "WHERE p.job_uid = b.uid AND p.reused_by = b.listing) AS good_files FROM jobs j "
            "LEFT JOIN jobs b ON b.uid = j.reuse_of WHERE j.uid = $1 AND j.reuse_mode IS NOT NULL", uid))
        if row is None:
            return None
        return {"mode": row["mode"], "uid": row["uid"] and str(row["uid"]), "name": row["name"],
                "good_files": row["good_files"], "counts": json.loads(row["counts"]) if row["counts"] else None}

    async def baseline_files(self, uid: str, after: str, limit: int) -> list[tuple[str, int, str | None, bool]]:
        """A page of the baseline's per-file records: (path, bytes, version, failed) after `after`."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT b.path, b.bytes, b.version, b.failed FROM file_partials b JOIN jobs j ON b.job_uid = j.reuse_of "
            f"{BASELINE_ROWS} WHERE j.uid = $1 AND {after_path('b.path')}", uid, after, limit))
        return [(row["path"], row["bytes"], row["version"], row["failed"]) for row in rows]

    async def rerun_paths(self, uid: str, after: str, limit: int) -> list[str]:
        """A page of the paths a re-run reads again: files of the earlier job's list that ended as
        errors or have no record (never finished), and files it could not read at all."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT path FROM (SELECT f.path FROM jobs j JOIN jobs b ON b.uid = j.reuse_of "
            "JOIN job_files f ON f.job_uid = b.uid AND f.listing = b.listing "
            "LEFT JOIN file_records r ON r.job_uid = b.uid AND r.path = f.path "
            "WHERE j.uid = $1 AND (r.path IS NULL OR r.error IS NOT NULL) "
            "UNION SELECT r.path FROM jobs j JOIN file_records r ON r.job_uid = j.reuse_of "
            f"WHERE j.uid = $1 AND r.skipped) redo WHERE {after_path('path')}", uid, after, limit))
        return [row["path"] for row in rows]

    async def commit_listing(self, uid: str, listing: str, files: int, size: int, digest: str,
                             scan_errors: list[dict[str, str]], reuse: dict[str, Any] | None = None) -> bool:
        """Make a staged listing the job's, unless one is already: True when this one won.

        The job row is locked, so of two runners committing at once one wins and the other
        drops its staged rows. ValueError when the staged rows are not the listing announced.
        """

        async def commit(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                current = await connection.fetchrow("SELECT listing FROM jobs WHERE uid = $1 FOR UPDATE", uid)
                if current is None:
                    raise LookupError(f"job {uid} is not recorded")
                if str(current["listing"]) == listing:  # a retried commit that already went through
                    return True
                if current["listing"] is not None:
                    await connection.execute("DELETE FROM job_files WHERE job_uid = $1 AND listing = $2", uid, listing)
                    return False
                staged = await connection.fetchrow(
                    "SELECT count(*) AS files, coalesce(sum(bytes), 0) AS bytes FROM job_files "
                    "WHERE job_uid = $1 AND listing = $2", uid, listing)
                if (staged["files"], staged["bytes"]) != (files, size):
                    raise ValueError(f"listing {listing} has {staged['files']} files, {staged['bytes']} bytes "
                                     f"staged, not the {files} files, {size} bytes announced")
                await connection.execute(
                    "UPDATE jobs SET listing = $2, files_total = $3, bytes_total = $4, list_digest = $5, reuse = $6 "
                    "WHERE uid = $1", uid, listing, files, size, digest, reuse and json.dumps(reuse))
                await connection.executemany(
                    "INSERT INTO file_records (job_uid, path, shard, batch, bytes, error, skipped) "
                    "VALUES ($1, $2, 0, -1, 0, $3, true)",
                    [(uid, error["path"], error["reason"]) for error in scan_errors])
                return True

        return await self.retrying(commit)

    async def listed_files(self, uid: str, shard: int, after: int,
                           limit: int) -> list[tuple[int, str, int, str | None]]:
        """A page of this shard's files in the stored list: (position, path, bytes, version) after `after`."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT f.position, f.path, f.bytes, f.version FROM job_files f JOIN jobs j ON j.uid = f.job_uid "
            "AND j.listing = f.listing WHERE f.job_uid = $1 AND f.shard = $2 AND f.position > $3 "
            "ORDER BY f.position LIMIT $4", uid, shard, after, limit))
        return [(row["position"], row["path"], row["bytes"], row["version"]) for row in rows]

    # -- shards (runner) -----------------------------------------------------------------

    async def start_shard(self, uid: str, shard: int, files_total: int, bytes_total: int, threads: int) -> None:
        await self.retrying(lambda c: c.execute(
            "INSERT INTO shards (job_uid, shard, attempts, files_total, bytes_total, threads) "
            "VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (job_uid, shard) DO UPDATE SET "
            "attempts = shards.attempts + 1, files_total = $3, bytes_total = $4, threads = $5, "
            "heartbeat_at = now()", uid, shard, files_total, bytes_total, threads))

    async def report_progress(self, uid: str, shard: int, files_done: int, bytes_done: int, errors: int) -> None:
        """One heartbeat; raises if the database is away (callers treat it as best effort)."""
        pool = await self._connected()
        await pool.execute(
            "UPDATE shards SET files_done = $3, bytes_done = $4, errors = $5, heartbeat_at = now() "
            "WHERE job_uid = $1 AND shard = $2", uid, shard, files_done, bytes_done, errors, timeout=2)

    async def finished_batches(self, uid: str, shard: int) -> dict[int, tuple[int, int, int]]:
        """Batches already stored for a shard: batch -> (files, bytes, errors)."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT b.batch, b.files, b.bytes, count(f.error) AS errors FROM batches b "
            "LEFT JOIN file_records f ON f.job_uid = b.job_uid AND f.shard = b.shard AND f.batch = b.batch "
            "AND f.error IS NOT NULL WHERE b.job_uid = $1 AND b.shard = $2 GROUP BY b.batch, b.files, b.bytes",
            uid, shard))
        return {row["batch"]: (row["files"], row["bytes"], row["errors"]) for row in rows}

    async def save_batch(self, uid: str, shard: int, batch: int, files: list[tuple[str, int]],
                         partial: str, errors: list[dict[str, Any]],
                         file_partials: list[tuple[str, int, str | None, str, bool]] = ()) -> None:
        """Store one batch's partial and its file records atomically (at most once).

        The same batch stored again is a retry and changes nothing; a file already recorded
        by another batch raises asyncpg.UniqueViolationError: it would be counted twice.
        """
        by_path = {error["path"]: error for error in errors}
        records = [(uid, path, shard, batch, size, by_path.get(path, {}).get("reason"),
                    by_path.get(path, {}).get("line"), bool(by_path.get(path, {}).get("skipped")))
                   for path, size in files]

        async def save(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                inserted = await connection.fetchval(
                    "INSERT INTO batches (job_uid, shard, batch, files, bytes, partial) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING batch",
                    uid, shard, batch, len(files), sum(size for _, size in files), partial)
                if inserted is not None:
                    await connection.executemany(
                        "INSERT INTO file_records (job_uid, path, shard, batch, bytes, error, line, skipped) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", records)
                    await connection.executemany(
                        "INSERT INTO file_partials (job_uid, path, bytes, version, partial, failed) "
                        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_uid, path) DO UPDATE SET "
                        "bytes = excluded.bytes, version = excluded.version, partial = excluded.partial, "
                        "failed = excluded.failed, reused_by = NULL", [(uid, *row) for row in file_partials])

        await self.retrying(save)

    async def finish_shard(self, uid: str, shard: int) -> bool:
        """Mark a shard done; True when every shard is done and nobody has merged yet.

        The job row is locked, so of shards finishing at the same moment exactly one sees
        the last count; a retried pod that finds the result missing merges again.
        """

        async def finish(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                job = await connection.fetchrow(
                    "SELECT shards, result IS NOT NULL AS merged FROM jobs WHERE uid = $1 FOR UPDATE", uid)
                await connection.execute(
                    "UPDATE shards SET state = 'done', finished_at = coalesce(finished_at, now()), "
                    "files_done = files_total, bytes_done = bytes_total WHERE job_uid = $1 AND shard = $2",
                    uid, shard)
                done = await connection.fetchval(
                    "SELECT count(*) FROM shards WHERE job_uid = $1 AND state = 'done'", uid)
                return done == job["shards"] and not job["merged"]

        return await self.retrying(finish)

    async def skipped_errors(self, uid: str, after: str, limit: int) -> list[dict[str, str]]:
        """A page of error records of files the engine never read (they are in no partial)."""
        rows = await self.retrying(lambda c: c.fetch(
            f"SELECT path, error FROM file_records WHERE job_uid = $1 AND skipped AND {after_path('path')}",
            uid, after, limit))
        return [{"path": row["path"], "reason": row["error"]} for row in rows]

    async def partials(self, uid: str, after: tuple[int, int], limit: int) -> list[tuple[int, int, str]]:
        """A page of stored partials after (shard, batch), in that order."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT shard, batch, partial FROM batches WHERE job_uid = $1 AND (shard, batch) > ($2, $3) "
            "ORDER BY shard, batch LIMIT $4", uid, after[0], after[1], limit))
        return [(row["shard"], row["batch"], row["partial"]) for row in rows]

    async def reused_partials(self, uid: str, after: str, limit: int) -> list[tuple[str, str]]:
        """A page of the (path, partial) pairs the job reuses, after a path: an incremental job's
        from its baseline; a re-run's those that the job it re-runs reused (if incremental)."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT p.path, p.partial FROM jobs j JOIN jobs owner ON owner.uid = "
            "CASE j.reuse_mode WHEN 'rerun' THEN j.reuse_of ELSE j.uid END "
            "JOIN file_partials p ON p.job_uid = owner.uid AND p.reused_by = owner.listing "
            f"WHERE j.uid = $1 AND {after_path('p.path')}", uid, after, limit))
        return [(row["path"], row["partial"]) for row in rows]

    async def rerun_partials(self, uid: str, after: tuple[int, int],
                             limit: int) -> list[tuple[int, int, str, int, int]]:
        """A page of the re-run job's partials after (shard, batch), each with the count and bytes of
        its failed files, which the re-run reads again: (shard, batch, partial, files, bytes)."""
        rows = await self.retrying(lambda c: c.fetch(
            "SELECT b.shard, b.batch, b.partial, count(r.path) AS failed, coalesce(sum(r.bytes), 0) AS bytes "
            "FROM jobs j JOIN batches b ON b.job_uid = j.reuse_of LEFT JOIN file_records r "
            "ON r.job_uid = b.job_uid AND r.shard = b.shard AND r.batch = b.batch AND r.error IS NOT NULL "
            "AND NOT r.skipped WHERE j.uid = $1 AND (b.shard, b.batch) > ($2, $3) "
            "GROUP BY b.shard, b.batch, b.partial ORDER BY b.shard, b.batch LIMIT $4",
            uid, after[0], after[1], limit))
        return [(row["shard"], row["batch"], row["partial"], row["failed"], int(row["bytes"])) for row in rows]

    async def save_result(self, uid: str, summary: dict[str, Any], uri: str, document: str | None = None) -> None:
        """The result's summary (see job_summary); the document itself is at `uri`, and a
        small one (`document`) is kept beside it for the REST API."""

        async def save(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await connection.execute("UPDATE jobs SET result = $2, result_uri = $3 WHERE uid = $1",
                                         uid, json.dumps(summary), uri)
                await connection.execute("DELETE FROM job_results WHERE job_uid = $1", uid)
                if document is not None:
                    await connection.execute("INSERT INTO job_results (job_uid, document) VALUES ($1, $2)",
                                             uid, document)

        await self.retrying(save)

    async def job_summary(self, uid: str) -> dict[str, Any] | None:
        """What the operator reports of a merged job: None before the merge.

        Keys: result_uri, summary (results.summarize), files, bytes, errors (a count) and
        error_samples (at most 10 of {path, reason, line?}).
        """
        row = await self.retrying(lambda c: c.fetchrow(
            "SELECT result, result_uri FROM jobs WHERE uid = $1 AND result IS NOT NULL", uid))
        if row is None:
            return None
        stored = json.loads(row["result"])
        return {"result_uri": row["result_uri"], "summary": stored["summary"], "files": stored["files"],
                "bytes": stored["bytes"], "errors": stored["errors"], "error_samples": stored["error_samples"]}

    async def save_log(self, uid: str, shard: int, pod: str, log: str) -> None:
        await self.retrying(lambda c: c.execute(
            "INSERT INTO runner_logs (job_uid, shard, pod, log) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (job_uid, shard, pod) DO UPDATE SET log = $4", uid, shard, pod, log))


def after_path(column: str) -> str:
    """A page of rows after a path (`$2`, the last one seen; `$3` rows), in the order the
    engine and the merge use: by UTF-8 bytes, whatever the database's collation."""
    return f'{column} COLLATE "C" > $2 ORDER BY {column} COLLATE "C" LIMIT $3'


def migrations() -> list[tuple[str, str]]:
    """(version, sql) pairs in order, read from the package's migrations folder."""
    folder = resources.files("pravah") / "migrations"
    files = sorted(entry for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(entry.name.removesuffix(".sql"), entry.read_text()) for entry in files]
