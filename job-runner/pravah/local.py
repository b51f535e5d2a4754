"""`pravah run`: one job on this machine with the Rust engine.

The steps are pipeline.py's, the ones a runner pod takes too; this adds what a local run
has of its own: an incremental run against an earlier run's result.json, the output
directory, the progress bar's callback.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pravah_engine

from pravah import checks, reuse
from pravah.pipeline import BATCH_BYTES, BATCH_FILES, Engine, Merge, Objects, Progress, list_source, plan_batches
from pravah.results import FILE_LISTS, merged, write_checksum_manifest, write_document
from pravah.sharding import FileEntry, shard_files
from pravah.spec import OperationSpec

ProgressCallback = Callable[[dict[str, int]], None]
FILE_PARTIALS = "file-partials.jsonl"  # an incremental run's per-file partials, beside result.json


class JobFailed(Exception):
    """The job ran but its outcome is a failure (e.g. more bad files than allowed)."""

    def __init__(self, message: str, document: dict[str, Any]):
        super().__init__(message)
        self.document = document


@dataclass
class LocalJob:
    root: Path | Objects
    operation: OperationSpec
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    follow_symlinks: bool = False
    threads: int = field(default_factory=pravah_engine.threads_available)
    output_dir: Path | None = None
    max_errors: int | None = None
    shard: tuple[int, int] = (0, 1)  # (index, count): only this share of the files, as a runner pod takes
    checks: Sequence[checks.Rule] = ()
    incremental: bool = False  # keep one partial per file, so that a later run can reuse them
    since: Path | None = None  # an earlier incremental run's result.json: reuse its unchanged files

    def list_files(self) -> tuple[list[FileEntry], list[dict[str, str]]]:
        """This shard's files, and the entries the scan could not read."""
        files, scan_errors = list_source(self.root, list(self.include), list(self.exclude), self.follow_symlinks)
        index, count = self.shard
        return shard_files(files, index, count), scan_errors

    def engine_options(self) -> dict[str, Any]:
        options = self.operation.engine_options()
        if self.operation.type == "convert":
            if self.output_dir is None:
                raise ValueError("convert needs an output directory (--output)")
            options["output_dir"] = str(self.output_dir)
        if (self.incremental or self.since) and isinstance(self.root, Objects):
            raise ValueError("an incremental run reads a local directory, not an s3:// prefix")
        if (self.incremental or self.since) and self.output_dir is None:
            raise ValueError("an incremental run needs an output directory (--output): its per-file partials "
                             "are kept there")
        return options


def execute(job: LocalJob, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the job and return the result document; raise JobFailed past `max_errors` or
    when a check of severity error fails."""
    return asyncio.run(run(job, on_progress))


async def run(job: LocalJob, on_progress: ProgressCallback | None) -> dict[str, Any]:
    engine = Engine(job.operation.type, job.engine_options(), job.threads, job.root, job.follow_symlinks)
    files, scan_errors = job.list_files()
    if job.output_dir is not None:
        job.output_dir.mkdir(parents=True, exist_ok=True)
    earlier = read_file_partials(job.since, str(job.root.resolve())) if job.since else {}
    plan = incremental_plan(job, files, earlier) if job.incremental or job.since else None
    to_read = files if plan is None else [(entry.local, entry.bytes) for entry in plan.read]
    progress = Progress(len(to_read), sum(size for _, size in to_read))

    async def report(batch: dict[str, int]) -> None:
        if on_progress:
            on_progress(progress.now(batch))

    merge = Merge(engine.op)
    merge.spool("scan").add("errors", scan_errors)
    singles: list[dict[str, Any]] = []
    for batch in plan_batches(to_read, BATCH_FILES, BATCH_BYTES):
        partial, batch_singles = await engine.read_batch(batch, report, per_file=plan is not None)
        errors = len(merge.add("read", partial)["errors"])
        singles += batch_singles
        progress.finished(batch, errors)
    if plan is not None:
        for partial in keep_file_partials(job, plan, earlier, singles):
            merge.add("reused", partial)
    document = await merge.document(engine)
    document["errors"] = list(merged(merge.spools.values(), "errors"))
    if engine.op in FILE_LISTS:
        document["result"][FILE_LISTS[engine.op]] = list(merged(merge.spools.values(), "files"))
    if plan is not None:
        document["reuse"] = {"mode": "incremental", "of": str(job.since) if job.since else None, **plan.counts,
                             "root": str(job.root.resolve()), "file_partials": FILE_PARTIALS}
    return finish(job, document)


def finish(job: LocalJob, document: dict[str, Any]) -> dict[str, Any]:
    """Judge the checks, write the outputs, and fail the job by the rules the operator uses."""
    if job.checks:
        document["checks"] = checks.judge(list(job.checks), document["result"])
    if job.operation.type == "checksum":
        manifest = write_checksum_manifest(document, job.output_dir) if job.output_dir else None
        document["result"]["manifest"] = str(job.output_dir / manifest) if manifest else None
    if job.output_dir is not None:
        with (job.output_dir / "result.json").open("w") as out:
            write_document(out, document)
    failed = checks.failure(len(document["errors"]), job.max_errors,
                            checks.summarize(document["checks"]) if job.checks else None)
    if failed:
        raise JobFailed(failed[1], document)
    return document


def incremental_plan(job: LocalJob, files: list[FileEntry], earlier: dict[str, dict[str, Any]]) -> reuse.Plan:
    """Which files to read: those new or changed since the earlier run (all of them without one)."""
    current = [reuse.Listed(os.path.relpath(path, job.root), path, size, reuse.local_version(path, job.follow_symlinks))
               for path, size in files]
    return reuse.incremental_plan(current, {path: reuse.Before(record["bytes"], record["version"], record["failed"])
                                            for path, record in earlier.items()})
def keep_file_partials(job: LocalJob, plan: reuse.Plan, earlier: dict[str, dict[str, Any]],
                       singles: list[dict[str, Any]]) -> list[str]:
    """Write every file's partial to FILE_PARTIALS, for the next run; return the reused ones."""
    records = {path: earlier[path] for path in plan.reused}
    records.update((entry.path, {"path": entry.path, "bytes": entry.bytes, "version": entry.version,
                                 "failed": reuse.has_failed(single), "partial": json.dumps(single)})
                   for entry, single in zip(plan.read, singles))
    with (job.output_dir / FILE_PARTIALS).open("w") as out:
        for path in sorted(records):
            out.write(json.dumps(records[path]) + "\n")
    return [earlier[path]["partial"] for path in sorted(plan.reused)]


def read_file_partials(since: Path, root: str) -> dict[str, dict[str, Any]]:
    """The per-file partials an earlier incremental run of the same source kept, by path."""
    try:
        earlier = json.loads(since.read_text()).get("reuse") or {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"--since {since}: cannot read it as a result document: {exc}") from None
    if "file_partials" not in earlier:
        raise ValueError(f"--since {since}: not the result of an incremental run (run with --incremental first)")
    if earlier["root"] != root:
        raise ValueError(f"--since {since}: that run read {earlier['root']}, not {root}")
    with (since.parent / earlier["file_partials"]).open() as lines:
        return {record["path"]: record for record in map(json.loads, lines)}
