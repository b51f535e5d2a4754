"""Run one job (or one shard of it) on this machine with the Rust engine.

This is the code path shared by `pravah run` and the runner pods: list the files, take
this shard's share, hand them to the engine, follow its progress, and turn its partial
into the result document.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pravah_engine

from pravah import checks, reuse
from pravah.results import write_checksum_manifest
from pravah.sharding import FileEntry, shard_files
from pravah.spec import OperationSpec

ProgressCallback = Callable[[dict[str, int]], None]
POLL_SECONDS = 0.1
FILE_PARTIALS = "file-partials.jsonl"  # an incremental run's per-file partials, beside result.json


class JobFailed(Exception):
    """The job ran but its outcome is a failure (e.g. more bad files than allowed)."""

    def __init__(self, message: str, document: dict[str, Any]):
        super().__init__(message)
        self.document = document


@dataclass
class LocalJob:
    root: Path
    operation: OperationSpec
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    follow_symlinks: bool = False
    threads: int = field(default_factory=pravah_engine.threads_available)
    output_dir: Path | None = None
    max_errors: int | None = None
    shard: tuple[int, int] = (0, 1)
    checks: Sequence[checks.Rule] = ()
    incremental: bool = False  # keep one partial per file, so that a later run can reuse them
    since: Path | None = None  # an earlier incremental run's result.json: reuse its unchanged files

    def list_files(self) -> tuple[list[FileEntry], list[dict[str, str]]]:
        """This shard's files, and the entries the scan could not read."""
        files, scan_errors = pravah_engine.scan(
            str(self.root), list(self.include), list(self.exclude), self.follow_symlinks
        )
        index, count = self.shard
        mine = shard_files(files, index, count)
        return mine, [{"path": path, "reason": reason} for path, reason in scan_errors]

    def engine_options(self) -> dict[str, Any]:
        options = self.operation.engine_options()
        if self.operation.type == "convert":
            if self.output_dir is None:
                raise ValueError("convert needs an output directory (--output)")
            options["output_dir"] = str(self.output_dir)
        if (self.incremental or self.since) and self.output_dir is None:
            raise ValueError("an incremental run needs an output directory (--output): its per-file partials "
                             "are kept there")
        return options


def run_partial(
    op: str, options: dict[str, Any], files: list[FileEntry], threads: int,
    on_progress: ProgressCallback | None = None, root: Path | None = None, follow_symlinks: bool = False,
    per_file: bool = False,
) -> str:
    """Run the engine to completion and return its partial (JSON), or with `per_file` a JSON
    array of one partial per file.

    The engine opens the files only below `root`, following links only if asked.
    Ctrl-C cancels the engine before re-raising, so no worker thread outlives the call.
    """
    run = pravah_engine.start(op, json.dumps(options), files, threads,
                              root=None if root is None else str(root), follow_symlinks=follow_symlinks,
                              per_file=per_file)
    try:
        while (partial := run.wait(POLL_SECONDS)) is None:
            if on_progress:
                on_progress(run.progress())
    except KeyboardInterrupt:
        run.cancel()
        raise
    if on_progress:
        on_progress(run.progress())
    return partial


def execute(job: LocalJob, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run the job and return the result document; raise JobFailed past `max_errors` or
    when a check of severity error fails."""
    options = job.engine_options()
    files, scan_errors = job.list_files()
    if job.output_dir is not None:
        job.output_dir.mkdir(parents=True, exist_ok=True)
    if job.incremental or job.since:
        partial, reused = run_incremental(job, options, files, on_progress)
    else:
        partial = run_partial(job.operation.type, options, files, job.threads, on_progress,
                              root=job.root, follow_symlinks=job.follow_symlinks)
    document = json.loads(pravah_engine.finalize(job.operation.type, partial))
    if job.incremental or job.since:
        document["reuse"] = reused
    document["errors"] = sorted(document["errors"] + scan_errors, key=lambda e: e["path"])
    document["threads"] = job.threads
    if job.checks:
        document["checks"] = checks.judge(list(job.checks), document["result"])
    if job.operation.type == "checksum":
        manifest = write_checksum_manifest(document, job.output_dir) if job.output_dir else None
        document["result"]["manifest"] = str(job.output_dir / manifest) if manifest else None
    if job.output_dir is not None:
        (job.output_dir / "result.json").write_text(json.dumps(document, indent=2) + "\n")
    if job.max_errors is not None and len(document["errors"]) > job.max_errors:
        raise JobFailed(
            f"{len(document['errors'])} files failed, more than maxErrors={job.max_errors}", document
        )
    if job.checks and not document["checks"]["passed"]:
        raise JobFailed(checks.verdict(checks.summarize(document["checks"])), document)
    return document


def run_incremental(job: LocalJob, options: dict[str, Any], files: list[FileEntry],
                    on_progress: ProgressCallback | None) -> tuple[str, dict[str, Any]]:
    """Read only the files new or changed since `job.since`, reuse the earlier partials of the
    others, and keep every file's partial in FILE_PARTIALS for the next run.

    Returns the merged partial and what was reused (the result's `reuse` section)."""
    op, root = job.operation.type, str(job.root.resolve())
    current = [reuse.Listed(os.path.relpath(path, job.root), path, size, reuse.local_version(path, job.follow_symlinks))
               for path, size in files]
    earlier = read_file_partials(job.since, root) if job.since else {}
    plan = reuse.incremental_plan(current, {path: reuse.Before(record["bytes"], record["version"], record["failed"])
                                            for path, record in earlier.items()})
    singles = json.loads(run_partial(op, options, [(entry.local, entry.bytes) for entry in plan.read], job.threads,
                                     on_progress, root=job.root, follow_symlinks=job.follow_symlinks, per_file=True))
    records = {path: earlier[path] for path in plan.reused}
    records.update((entry.path, {"path": entry.path, "bytes": entry.bytes, "version": entry.version,
                                 "failed": reuse.has_failed(single), "partial": json.dumps(single)})
                   for entry, single in zip(plan.read, singles))
    with (job.output_dir / FILE_PARTIALS).open("w") as out:
        for path in sorted(records):
            out.write(json.dumps(records[path]) + "\n")
    merged = reuse.merge_all(op, (records[path]["partial"] for path in sorted(records)))
    if merged is None:
        merged = run_partial(op, options, [], job.threads, root=job.root)
    return merged, {"mode": "incremental", "of": str(job.since) if job.since else None, **plan.counts,
                    "root": root, "file_partials": FILE_PARTIALS}


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
