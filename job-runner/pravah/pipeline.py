"""The steps of a job, the same on a laptop (`pravah run`) and in a runner pod.

Both list a volume with the engine's scan, cut the files into the same batches, drive the
engine batch by batch, and fold the batches' partials into one aggregate while their errors
and per-file lists are spooled to disk in order (so a result listing millions of files does
not have to fit in memory). What a pod adds — its shard of the stored listing, storing each
batch, reporting — lives in runner.py; what a person sees, in cli.py and render.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pravah_engine

from pravah import reuse
from pravah.results import FILE_LISTS, MemorySpool, Spool
from pravah.sharding import FileEntry

BATCH_FILES = 4096  # files per batch: a runner's unit of resumption
BATCH_BYTES = 256 << 20  # bytes per batch
EngineProgress = dict[str, int]


@dataclass(frozen=True)
class Objects:
    """An S3 prefix (`s3://bucket/prefix`) whose objects the engine lists and reads in place,
    by ranged GETs: nothing is copied to local disk. Settings left unset here come from the
    standard AWS_* environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)."""

    url: str
    endpoint: str | None = None  # an S3-compatible server, e.g. http://127.0.0.1:9000
    region: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)  # access_key_id, secret_access_key, session_token

    def engine_settings(self) -> dict[str, str]:
        """The engine's `s3` argument."""
        settings = {"endpoint": self.endpoint, "region": self.region, **self.credentials}
        return {key: value for key, value in settings.items() if value}


def engine_source(root: Path | Objects | None) -> dict[str, Any]:
    """The engine's `root` and `s3` arguments for a local directory or an S3 prefix."""
    if isinstance(root, Objects):
        return {"root": root.url, "s3": root.engine_settings()}
    return {"root": None if root is None else str(root)}


def list_source(root: Path | Objects, include: list[str], exclude: list[str],
                follow_symlinks: bool) -> tuple[list[FileEntry], list[dict[str, str]]]:
    """The files below `root` (a directory, or an S3 prefix) the globs select, sorted, and the
    entries the scan could not read."""
    source = engine_source(root)
    files, scan_errors = pravah_engine.scan(source.pop("root"), list(include), list(exclude), follow_symlinks,
                                            **source)
    return files, [{"path": path, "reason": reason} for path, reason in scan_errors]


def plan_batches(files: list[FileEntry], max_files: int, max_bytes: int) -> list[list[FileEntry]]:
    """Consecutive groups of the files, the same on every attempt."""
    batches: list[list[FileEntry]] = []
    current: list[FileEntry] = []
    size = 0
    for entry in files:
        if current and (size + entry[1] > max_bytes or len(current) >= max_files):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry[1]
    if current:
        batches.append(current)
    return batches


@dataclass
class Engine:
    """How the engine runs each batch of one job."""

    op: str
    options: dict[str, Any]
    threads: int
    root: Path | Objects | None = None  # the engine opens files only below it (or objects of this prefix)
    follow_symlinks: bool = False
    poll_seconds: float = 0.1

    async def run(self, files: list[FileEntry], on_poll: Callable[[EngineProgress], Awaitable[None]] | None = None,
                  per_file: bool = False) -> str:
        """The batch's partial (with `per_file`, a JSON array of one partial per file).

        `on_poll` sees the engine's progress while it runs; cancelling the call cancels the
        engine, so no worker thread outlives it (Ctrl-C, a pod's SIGTERM)."""
        run = pravah_engine.start(self.op, json.dumps(self.options), files, self.threads,
                                  follow_symlinks=self.follow_symlinks, per_file=per_file, **engine_source(self.root))
        while True:
            try:
                partial = await asyncio.to_thread(run.wait, self.poll_seconds)
            except asyncio.CancelledError:
                run.cancel()
                raise
            if on_poll is not None:
                await on_poll(run.progress())
            if partial is not None:
                return partial

    async def read_batch(self, files: list[FileEntry], on_poll=None,
                         per_file: bool = False) -> tuple[str, list[dict[str, Any]]]:
        """The batch's partial, and with `per_file` (an incremental job) each file's own partial."""
        if not per_file or not files:
            return await self.run(files, on_poll), []
        singles = json.loads(await self.run(files, on_poll, per_file=True))
        return reuse.merge_all(self.op, map(json.dumps, singles)), singles


@dataclass
class Progress:
    """A whole job's progress from the engine's progress within its current batch."""

    files_total: int
    bytes_total: int
    done: list[int] = field(default_factory=lambda: [0, 0, 0])  # files, bytes, errors of finished batches

    def now(self, batch: EngineProgress) -> EngineProgress:
        return {"files_total": self.files_total, "bytes_total": self.bytes_total,
                "files_done": self.done[0] + batch["files_done"], "bytes_done": self.done[1] + batch["bytes_done"],
                "errors": self.done[2] + batch["errors"]}

    def finished(self, batch: list[FileEntry], errors: int) -> None:
        self.done = [self.done[0] + len(batch), self.done[1] + sum(size for _, size in batch), self.done[2] + errors]


def same(value: dict[str, Any]) -> dict[str, Any]:
    return value


class Merge:
    """Partials folded into one aggregate, with their errors and per-file lists spooled in
    order, one spool per run of consecutive partials (a shard, the reused files): to disk
    under `work`, or without it in memory."""

    def __init__(self, op: str, work: Path | None = None):
        self.op = op
        self.work = work
        self.spools: dict[str, Spool | MemorySpool] = {}
        self.aggregate = pravah_engine.Aggregate(op)

    def spool(self, name: str) -> Spool | MemorySpool:
        if name not in self.spools:
            self.spools[name] = MemorySpool() if self.work is None else Spool(self.work, name)
        return self.spools[name]

    def add(self, spool_name: str, partial: str,
            relocate: Callable[[dict[str, Any]], dict[str, Any]] = same) -> dict[str, Any]:
        """Fold in one partial; its own result document, paths as they were (so no caller
        parses or finalizes the partial again)."""
        finished = json.loads(self.aggregate.add_split(partial))
        spool = self.spool(spool_name)
        spool.add("errors", map(relocate, finished["errors"]))
        spool.add("files", map(relocate, finished["result"].get(FILE_LISTS.get(self.op, ""), [])))
        return finished

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()

    async def document(self, engine: Engine) -> dict[str, Any]:
        """The merged result document, without its streamed lists (see results.merged)."""
        if (text := self.aggregate.finalize()) is None:  # no file at all
            text = pravah_engine.finalize(self.op, await engine.run([]))
        document = json.loads(text)
        document["threads"] = engine.threads
        return document
