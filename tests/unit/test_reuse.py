"""Reuse of partials: the merge of reused and new per-file partials equals a full run, and the
incremental plan sorts files into reused, new, changed, retried and removed as the listings say."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pravah_engine
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pravah import reuse
from pravah.local import LocalJob, execute
from pravah.spec import OperationSpec

OPERATIONS = {"stats": {"type": "stats"}, "count": {"type": "count"}, "checksum": {"type": "checksum"},
              "grep": {"type": "grep", "grep": {"pattern": "[02468],"}}}
CELL = st.one_of(st.integers(-1000, 1000).map(str), st.sampled_from(["", "x", "y z", "2026-12-04", "1.5"]))
TABLE = st.lists(st.tuples(CELL, CELL), min_size=0, max_size=12)


def write(root: Path, tables: list[list[tuple[str, str]]]) -> list[tuple[str, int]]:
    files = []
    for index, rows in enumerate(tables):
        path = root / f"f{index:03d}.csv"
        path.write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in rows) + ("1,2,3\n" if index % 5 == 4 else ""))
        files.append((str(path), path.stat().st_size))
    return files


def run(op: str, files: list[tuple[str, int]], per_file: bool = False) -> str:
    options = json.dumps(OperationSpec.model_validate(OPERATIONS[op]).engine_options())
    started = pravah_engine.start(op, options, files, 2, per_file=per_file)
    while (partial := started.wait(0.05)) is None:
        pass
    return partial


def close(a, b) -> bool:
    """Equal, floats to rounding: a merge in another order adds in another order."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("op", sorted(OPERATIONS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=st.lists(TABLE, min_size=1, max_size=10), reused=st.sets(st.integers(0, 9)))
def test_reused_and_new_partials_merge_to_the_full_run(op, tables, reused, tmp_path_factory):
    files = write(tmp_path_factory.mktemp(op), tables)
    singles = [json.dumps(partial) for partial in json.loads(run(op, files, per_file=True))]
    old = [single for index, single in enumerate(singles) if index in reused]
    new = [single for index, single in enumerate(singles) if index not in reused]
    parts = [part for part in (reuse.merge_all(op, old), reuse.merge_all(op, new)) if part is not None]
    merged = reuse.merge_all(op, parts)
    full = json.loads(pravah_engine.finalize(op, run(op, files)))
    assert close(json.loads(pravah_engine.finalize(op, merged)), full)


def test_a_failed_files_counters_leave_a_partial_it_is_read_again_for(tmp_path):
    files = write(tmp_path, [[("1", "x")], [("2", "y")], [("3", "z")], [("4", "w")], [("5", "v")]])
    batch = run("stats", files)
    failed = [(path, size) for path, size in files if path.endswith("f004.csv")]
    kept = json.loads(reuse.without_failed(batch, 1, failed[0][1]))
    assert (kept["files"], kept["bytes"], kept["errors"]) == (4, sum(size for _, size in files[:4]), [])
    again = reuse.merge_all("stats", [json.dumps(kept), run("stats", failed)])
    assert json.loads(pravah_engine.finalize("stats", again))["files"] == 5


def listed(path: str, size: int, version: str | None = "v1") -> reuse.Listed:
    return reuse.Listed(path, "/local/" + path, size, version)


def test_the_incremental_plan_reads_only_what_is_new_changed_or_failed():
    baseline = {"same": reuse.Before(10, "v1", False), "grown": reuse.Before(10, "v1", False),
                "touched": reuse.Before(10, "v1", False), "failed": reuse.Before(10, "v1", True),
                "gone": reuse.Before(10, "v1", False), "unversioned": reuse.Before(10, None, False)}
    current = [listed("same", 10), listed("grown", 11), listed("touched", 10, "v2"), listed("failed", 10),
               listed("added", 3), listed("unversioned", 10, None)]
    plan = reuse.incremental_plan(current, baseline)
    assert plan.reused == ["same"]
    assert sorted(entry.path for entry in plan.read) == ["added", "failed", "grown", "touched", "unversioned"]
    assert plan.counts == {"reused": 1, "new": 1, "changed": 3, "retried": 1, "removed": 1,
                           "bytes_read": 11 + 10 + 10 + 3 + 10}


def test_a_rerun_plan_keeps_the_files_to_redo_that_are_still_there():
    plan = reuse.rerun_plan([listed("a", 1), listed("b", 2), listed("c", 4)], {"b", "c", "vanished"}, 7)
    assert [entry.path for entry in plan.read] == ["b", "c"]
    assert plan.counts == {"reused": 7, "rerun": 2, "gone": 1, "bytes_read": 6}


def test_pravah_run_since_reads_only_changes_and_equals_a_full_run(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    for index in range(30):
        (source / f"f{index:02d}.csv").write_text(f"a,b\n{index},x\n{index * 3},y\n")
    operation = OperationSpec.model_validate({"type": "stats"})
    first = execute(LocalJob(root=source, operation=operation, output_dir=tmp_path / "one", incremental=True))
    assert first["reuse"]["new"] == 30
    (source / "f03.csv").write_text("a,b\n99,changed\n")
    os.utime(source / "f04.csv", ns=(1, 1))  # same bytes, another modification time: read again
    (source / "f05.csv").unlink()
    (source / "g.csv").write_text("a,b\n5,new\n")
    second = execute(LocalJob(root=source, operation=operation, output_dir=tmp_path / "two",
                              since=tmp_path / "one" / "result.json"))
    read = [source / name for name in ("f03.csv", "f04.csv", "g.csv")]
    assert {key: second["reuse"][key] for key in ("reused", "new", "changed", "removed", "bytes_read")} == \
        {"reused": 27, "new": 1, "changed": 2, "removed": 1, "bytes_read": sum(p.stat().st_size for p in read)}
    full = execute(LocalJob(root=source, operation=operation))
    assert close(second["result"], full["result"]) and second["files"] == full["files"] == 30
    (tmp_path / "plain.json").write_text(json.dumps(full))
    with pytest.raises(ValueError, match="not the result of an incremental run"):
        execute(LocalJob(root=source, operation=operation, output_dir=tmp_path / "three",
                         since=tmp_path / "plain.json"))
