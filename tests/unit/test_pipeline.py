"""The pipeline `pravah run` shares with the runner pods: batches cover the files in order,
and a local run across several batches gives the result the files' content says, with the
errors of every batch and of the scan in one ordered list and maxErrors judged as the
operator judges it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pravah import checks, pipeline
from pravah.local import JobFailed, LocalJob, execute
from pravah.spec import OperationSpec

SIZES = st.lists(st.integers(0, 50), max_size=60)


@given(SIZES, st.integers(1, 7), st.integers(1, 120))
def test_batches_are_consecutive_and_within_their_limits(sizes, max_files, max_bytes):
    files = [(f"f{index:03d}", size) for index, size in enumerate(sizes)]
    batches = pipeline.plan_batches(files, max_files, max_bytes)
    assert [entry for batch in batches for entry in batch] == files
    for batch in batches:
        assert 1 <= len(batch) <= max_files
        assert len(batch) == 1 or sum(size for _, size in batch) <= max_bytes


def lines_of(path: Path) -> int:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.count(b"\n")


@pytest.fixture
def many_files(tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    """More files than one batch holds, in nested directories, with a broken gzip in each batch."""
    root = tmp_path / "data"
    good, broken = [], []
    for index in range(pipeline.BATCH_FILES + 300):
        path = root / f"d{index % 7}" / f"f{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("line\n" * (index % 5) + "tail" * (index % 2))
        good.append(path)
    for name in ("d0/a-broken.gz", "d6/z-broken.gz"):  # sorted into the first and the last batch
        path = root / name
        path.write_bytes(gzip.compress(b"x\n" * 1000)[:-12])
        broken.append(path)
    return root, good, broken


def count_job(root: Path, **options) -> LocalJob:
    return LocalJob(root=root, operation=OperationSpec.model_validate({"type": "count"}), threads=2, **options)


def test_a_run_over_several_batches_lists_every_file_and_every_error_in_order(many_files):
    root, good, broken = many_files
    assert len(pipeline.plan_batches(count_job(root).list_files()[0], pipeline.BATCH_FILES, pipeline.BATCH_BYTES)) > 1
    document = execute(count_job(root))
    files = document["result"]["files"]
    assert [entry["path"] for entry in files] == sorted(str(path) for path in good)
    assert {entry["path"]: entry["lines"] for entry in files} == {str(path): lines_of(path) for path in good}
    assert document["result"]["lines"] == sum(lines_of(path) for path in good)
    assert [error["path"] for error in document["errors"]] == sorted(str(path) for path in broken)
    assert all("gzip stream is corrupt or truncated" in error["reason"] for error in document["errors"])
    assert document["files"] == len(good) + len(broken)


def test_max_errors_fails_a_local_run_by_the_operators_rule(many_files):
    root, _, broken = many_files
    with pytest.raises(JobFailed) as failed:
        execute(count_job(root, max_errors=len(broken) - 1))
    assert str(failed.value) == checks.failure(len(broken), len(broken) - 1, None)[1]
    assert len(failed.value.document["errors"]) == len(broken)
    assert execute(count_job(root, max_errors=len(broken)))["errors"]


def test_progress_counts_the_whole_job_across_batches(many_files):
    root, good, broken = many_files
    seen: list[dict[str, int]] = []
    execute(count_job(root), seen.append)
    total_bytes = sum(path.stat().st_size for path in good + broken)
    assert {(snapshot["files_total"], snapshot["bytes_total"]) for snapshot in seen} == {(len(good) + 2, total_bytes)}
    assert [snapshot["files_done"] for snapshot in seen] == sorted(snapshot["files_done"] for snapshot in seen)
    assert (seen[-1]["files_done"], seen[-1]["bytes_done"], seen[-1]["errors"]) == (len(good) + 2, total_bytes, 2)
