"""Re-runs and incremental runs: which files to read again, and which partials to reuse.

A job's result is the merge of partials, so a job can build on another one's work. A re-run
(`rerunOf`) reads only the files that failed or never finished in an earlier job and merges
that job's other partials; an incremental run (`incremental`) keeps one partial per file and
reads only the files that are new or changed since a baseline. The plan is made from two
listings alone, so `pravah run --since` and the runner pods share it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pravah_engine

# An incremental job sends one partial per file with each batch: fewer files per batch keep
# those reports (a stats partial can be tens of kB per file) within the report size limit.
PER_FILE_BATCH_FILES = 256


@dataclass(frozen=True)
class Listed:
    """A file of this run's listing."""

    path: str  # as users see it (relative to the source, or an s3:// URI): the key across jobs
    local: str  # where this run reads it
    bytes: int
    version: str | None = None  # modification time (ns) on a volume, ETag on S3


@dataclass(frozen=True)
class Before:
    """A file as the baseline saw it."""

    bytes: int
    version: str | None
    failed: bool


@dataclass
class Plan:
    read: list[Listed]
    reused: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def incremental_plan(current: Iterable[Listed], baseline: Mapping[str, Before]) -> Plan:
    """Read what is new, changed (size or version), or failed in the baseline; reuse the rest.

    A file without a version is never taken as unchanged: the size alone proves nothing.
    """
    plan = Plan(read=[], counts=dict.fromkeys(("reused", "new", "changed", "retried", "removed"), 0))
    seen = 0
    for entry in current:
        before = baseline.get(entry.path)
        if before is None:
            kind = "new"
        else:
            seen += 1
            if before.failed:
                kind = "retried"
            elif entry.version is not None and (before.bytes, before.version) == (entry.bytes, entry.version):
                kind = "reused"
            else:
                kind = "changed"
        plan.counts[kind] += 1
        if kind == "reused":
            plan.reused.append(entry.path)
        else:
            plan.read.append(entry)
    plan.counts["removed"] = len(baseline) - seen
    plan.counts["bytes_read"] = sum(entry.bytes for entry in plan.read)
    return plan


def rerun_plan(current: Iterable[Listed], redo: set[str], good_files: int) -> Plan:
    """Read again the files of `redo` still in the source; `good_files` of the earlier job are kept."""
    read = [entry for entry in current if entry.path in redo]
    return Plan(read=read, counts={"reused": good_files, "rerun": len(read), "gone": len(redo) - len(read),
                                   "bytes_read": sum(entry.bytes for entry in read)})


def local_version(path: str, follow_symlinks: bool) -> str:
    """What tells a file on a volume apart from an earlier one of the same size."""
    return str((os.stat if follow_symlinks else os.lstat)(path).st_mtime_ns)


def without_failed(partial: str, failed: int, failed_bytes: int) -> str:
    """An earlier job's partial without its failed files, which the re-run reads again.

    A failed file adds nothing to a partial's body, only its error record and its place in
    the file and byte counters; those go, so the re-run's partial of the file is not doubled.
    """
    value = json.loads(partial)
    value["errors"] = []
    value["files"] -= failed
    value["bytes"] -= failed_bytes
    return json.dumps(value)


def merge_all(op: str, partials: Iterable[str]) -> str | None:
    """The merge of the partials (None when there are none)."""
    aggregate = pravah_engine.Aggregate(op)
    for partial in partials:
        aggregate.add(partial)
    return aggregate.partial()


def has_failed(partial: dict) -> bool:
    return bool(partial.get("errors"))
