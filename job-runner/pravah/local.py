"""Run one job (or one shard of it) on this machine with the Rust engine.

This is the code path shared by `pravah run` and the runner pods: list the files, take
this shard's share, hand them to the engine, follow its progress, and turn its partial
into the result document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pravah_engine

from pravah import checks
from pravah.results import write_checksum_manifest
from pravah.sharding import FileEntry, shard_files
from pravah.spec import OperationSpec

ProgressCallback = Callable[[dict[str, int]], None]
POLL_SECONDS = 0.1


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
        return options


def run_partial(
    op: str, options: dict[str, Any], files: list[FileEntry], threads: int,
    on_progress: ProgressCallback | None = None, root: Path | None = None, follow_symlinks: bool = False,
) -> str:
    """Run the engine to completion and return its partial (JSON).

    The engine opens the files only below `root`, following links only if asked.
    Ctrl-C cancels the engine before re-raising, so no worker thread outlives the call.
    """
    run = pravah_engine.start(op, json.dumps(options), files, threads,
                              root=None if root is None else str(root), follow_symlinks=follow_symlinks)
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
    partial = run_partial(job.operation.type, options, files, job.threads, on_progress,
                          root=job.root, follow_symlinks=job.follow_symlinks)
    document = json.loads(pravah_engine.finalize(job.operation.type, partial))
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
