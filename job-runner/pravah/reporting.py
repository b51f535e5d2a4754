"""How a runner pod records its work: through the operator, never in the database itself.

The runner holds no database credentials. It sends the job's file list, its shard's progress, batches,
result and log to the operator's report endpoint with a projected service-account token that the
kubelet writes (and renews) in a file; the operator works out from that token which job and
which shard the caller is, so a runner can neither read nor write another job's records.
Calls are retried while the operator is away (restarting, or a standby taking over) and
while it answers that PostgreSQL is, so a stored batch is never lost and never doubled.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import h11
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

# A runner's exit code for what a retry cannot fix (a bad spec, a missing source): the Job's
# pod failure policy fails the shard at once instead of retrying it.
EXIT_BAD_INPUT = 3
RETRIED_STATUSES = (502, 503, 504)
PROGRESS_TIMEOUT = 5.0


class ReportRefused(Exception):
    """The operator refused a report for good (e.g. the pod is gone or the token is not its)."""


class ReportUnavailable(Exception):
    """The operator could not take the report now; asking again may work."""


def transient(exc: BaseException) -> bool:
    return isinstance(exc, (ReportUnavailable, TimeoutError))


class OperatorReports:
    """The runner's side of the report endpoint: one method per kind of record."""

    def __init__(self, url: str, token_file: Path, retry_seconds: float = 600.0, timeout: float = 180.0):
        parts = urlsplit(url)
        self.host, self.netloc, self.tls = parts.hostname or "", parts.netloc, parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.base_path = parts.path.rstrip("/") + "/v1/shard"
        self.token_file = token_file
        self.retry_seconds = retry_seconds
        self.timeout = timeout

    async def _once(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        # Read on every call: the kubelet replaces the token before it expires.
        token = self.token_file.read_text().strip()
        payload = b"" if body is None else json.dumps(body).encode()
        headers = [("Host", self.netloc), ("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"),
                   ("Content-Length", str(len(payload))), ("Connection", "close")]
        async with asyncio.timeout(timeout or self.timeout):
            status, text = await self._exchange(h11.Request(method=method, target=self.base_path + path,
                                                            headers=headers), payload)
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = {"error": text[:200]}
        if status in RETRIED_STATUSES:
            raise ReportUnavailable(f"{status}: {(answer or {}).get('error')}")
        if status >= 400:
            raise ReportRefused(f"{method} {path}: {status}: {(answer or {}).get('error')}")
        return answer

    async def _exchange(self, request: h11.Request, payload: bytes) -> tuple[int, str]:
        """One request on its own connection: (status, body text).

        HTTP/1.1 framing by h11 over asyncio streams rather than an aiohttp session:
        importing aiohttp took 0.15 s of a runner pod's start, ahead of its first batch."""
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls or None)
        except OSError as exc:
            raise ReportUnavailable(f"cannot reach the operator at {self.netloc}: {exc}") from exc
        try:
            connection = h11.Connection(h11.CLIENT)
            writer.write(connection.send(request) + connection.send(h11.Data(data=payload))
                         + connection.send(h11.EndOfMessage()))
            await writer.drain()
            status, chunks = 0, []
            while not isinstance(event := connection.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(1 << 16))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(event.data)
            return status, b"".join(chunks).decode(errors="replace")
        except (OSError, h11.ProtocolError) as exc:
            raise ReportUnavailable(f"the operator at {self.netloc} broke off: {exc}") from exc
        finally:
            writer.close()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async for attempt in AsyncRetrying(retry=retry_if_exception(transient), stop=stop_after_delay(self.retry_seconds),
                                           wait=wait_exponential(multiplier=0.2, max=5), reraise=True):
            with attempt:
                return await self._once(method, path, body)
        raise AssertionError("unreachable")

    async def start_shard(self, files_total: int, bytes_total: int, threads: int) -> None:
        await self.call("POST", "/start", {"files_total": files_total, "bytes_total": bytes_total, "threads": threads})

    async def report_progress(self, files_done: int, bytes_done: int, errors: int) -> None:
        """One heartbeat, tried once (callers treat it as best effort)."""
        await self._once("POST", "/progress", {"files_done": files_done, "bytes_done": bytes_done, "errors": errors},
                         timeout=PROGRESS_TIMEOUT)

    async def finished_batches(self) -> dict[int, tuple[int, int, int]]:
        answer = await self.call("GET", "/batches")
        return {int(index): tuple(counts) for index, counts in answer.items()}

    async def save_batch(self, batch: int, files: list[tuple[str, int]], partial: str,
                         errors: list[dict[str, Any]], file_partials: list[tuple[str, int, str | None, str, bool]]) -> None:
        await self.call("PUT", f"/batches/{batch}", {"files": files, "partial": partial, "errors": errors,
                                                     "file_partials": file_partials})

    async def listing(self) -> dict[str, Any] | None:
        """The job's stored file list (totals, digest, this shard's share); None before it is stored."""
        answer = await self.call("GET", "/listing")
        return answer if answer.get("listing") else None

    async def claim_listing(self) -> dict[str, Any]:
        """{"claimed": whether this runner is the one to list the source, "holder": the pod that is}."""
        return await self.call("POST", "/listing/claim")

    async def stage_listing(self, listing: str, page: int, rows: list[tuple[int, int, str, int, str | None]]) -> None:
        await self.call("PUT", f"/listing/{listing}/pages/{page}", {"files": rows})

    async def stage_reused(self, listing: str, page: int, paths: list[str]) -> None:
        await self.call("PUT", f"/listing/{listing}/reused/{page}", {"paths": paths})

    async def commit_listing(self, listing: str, files: int, size: int, digest: str,
                             scan_errors: list[dict[str, str]], reuse: dict[str, int] | None) -> dict[str, Any]:
        """The job's listing after this commit: this one, or the one another runner stored first."""
        return await self.call("POST", f"/listing/{listing}/commit",
                               {"files": files, "bytes": size, "digest": digest, "scan_errors": scan_errors,
                                "reuse": reuse})

    async def listed_files(self, after: int, limit: int) -> list[tuple[int, str, int, str | None]]:
        """A page of this shard's files in the stored list: (position, path, bytes, version) rows."""
        answer = await self.call("GET", f"/files?after={after}&limit={limit}")
        return [tuple(row) for row in answer["files"]]

    async def reuse(self) -> dict[str, Any] | None:
        """The job this one builds on ({mode, uid, name, counts}), or None."""
        answer = await self.call("GET", "/reuse")
        return answer if answer.get("mode") else None

    async def baseline_files(self, after: str, limit: int) -> list[tuple[str, int, str | None, bool]]:
        """A page of the baseline's per-file records: (path, bytes, version, failed) rows."""
        answer = await self.call("GET", "/reuse/baseline?" + urlencode({"after": after, "limit": limit}))
        return [tuple(row) for row in answer["files"]]

    async def rerun_paths(self, after: str, limit: int) -> list[str]:
        """A page of the re-run job's paths to read again (as that job's runners saw them)."""
        answer = await self.call("GET", "/reuse/rerun?" + urlencode({"after": after, "limit": limit}))
        return answer["paths"]

    async def merge_reused(self, after: str, limit: int) -> list[tuple[str, str]]:
        """A page of the (path, partial) pairs an incremental job reuses."""
        answer = await self.call("GET", "/merge-reused?" + urlencode({"after": after, "limit": limit}))
        return [tuple(row) for row in answer["partials"]]

    async def merge_rerun(self, after: tuple[int, int], limit: int) -> list[tuple[int, int, str, int, int]]:
        """A page of the re-run job's partials: (shard, batch, partial, failed files, their bytes)."""
        answer = await self.call("GET", f"/merge-rerun?shard={after[0]}&batch={after[1]}&limit={limit}")
        return [tuple(row) for row in answer["partials"]]

    async def finish_shard(self) -> bool:
        """True when this shard is the one to merge the job's result."""
        return (await self.call("POST", "/finish"))["merge"]

    async def merge_input(self, after: tuple[int, int], limit: int) -> list[tuple[int, int, str]]:
        """A page of the job's stored partials after (shard, batch): (shard, batch, partial) rows."""
        answer = await self.call("GET", f"/merge-input?shard={after[0]}&batch={after[1]}&limit={limit}")
        return [(shard, batch, partial) for shard, batch, partial in answer["partials"]]

    async def skipped_errors(self, after: str, limit: int) -> list[dict[str, str]]:
        """A page of the error records of files the engine never read, by path after `after`."""
        answer = await self.call("GET", "/merge-errors?" + urlencode({"after": after, "limit": limit}))
        return answer["errors"]

    async def save_result(self, summary: dict[str, Any], uri: str, document: str | None) -> None:
        """The result's summary; the document itself is at `uri`, in the output storage (and
        sent along when it is small, for the REST API)."""
        await self.call("PUT", "/result", {"summary": summary, "uri": uri, "document": document})

    async def save_log(self, log: str) -> None:
        await self.call("PUT", "/log", {"log": log})
