"""Run handle: progress, cancel, GIL release, thread count, validation."""

import json
import os
import re
import threading
import time

import pytest

from e2e.harness import wait_for
from unit.engine.engine_helpers import files_of, pe


def big_csv(path, mb):
    row = b"123456,3.25,alpha beta,true,2024-05-06,\"q, x\"\n"
    body = row * ((1 << 20) // len(row))
    with open(path, "wb") as f:
        f.write(b"id,x,name,flag,day,txt\n")
        for _ in range(mb):
            f.write(body)
    return [(str(path), path.stat().st_size)]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return big_csv(tmp_path_factory.mktemp("big") / "big.csv", 96)


def test_threads_available():
    n = pe.threads_available()
    assert isinstance(n, int) and 1 <= n <= os.cpu_count()
    assert n <= len(os.sched_getaffinity(0))


def test_version_and_exception_class():
    assert isinstance(pe.__version__, str) and pe.__version__
    assert issubclass(pe.Cancelled, Exception)


def test_bad_requests_raise_usage_error(tmp_path):
    assert issubclass(pe.UsageError, ValueError)
    with pytest.raises(pe.UsageError, match="threads must be >= 1"):
        pe.start("count", "{}", [], 0)
    with pytest.raises(pe.UsageError, match="grep.pattern: regex parse error"):
        pe.start("grep", json.dumps({"pattern": "("}), [], 1)
    with pytest.raises(pe.UsageError, match=r"checksum.algorithm: unknown 'md5' \(expected sha256, blake3, xxh3\)"):
        pe.start("checksum", json.dumps({"algorithm": "md5"}), [], 1)
    with pytest.raises(pe.UsageError, match="stats.bogus"):
        pe.start("stats", json.dumps({"bogus": 1}), [], 1)
    with pytest.raises(pe.UsageError, match="stats.delimiter"):
        pe.start("stats", json.dumps({"delimiter": ";;"}), [], 1)
    with pytest.raises(pe.UsageError, match="stats.quantiles"):
        pe.start("stats", json.dumps({"quantiles": [1.5]}), [], 1)
    with pytest.raises(pe.UsageError, match="stats.top"):
        pe.start("stats", json.dumps({"top": 101}), [], 1)
    with pytest.raises(pe.UsageError, match="convert.output_dir"):
        pe.start("convert", json.dumps({"to": "parquet"}), [], 1)
    with pytest.raises(pe.UsageError, match="convert.compression"):
        pe.start("convert", json.dumps({"output_dir": str(tmp_path), "compression": "lzma"}), [], 1)
    with pytest.raises(pe.UsageError, match="op"):
        pe.start("sort", "{}", [], 1)


@pytest.mark.parametrize("call", [lambda bad: pe.Aggregate("count").add(bad), lambda bad: pe.finalize("count", bad),
                                  lambda bad: pe.Aggregate("count").add_split(bad)], ids=["add", "finalize", "add_split"])
def test_a_corrupt_partial_is_not_a_usage_error(call):
    """Bad data read back from storage is not the user's request: it must not be refused as one."""
    with pytest.raises(ValueError, match="invalid count partial") as caught:
        call("not json")
    assert not isinstance(caught.value, pe.UsageError)


def test_an_aggregate_refuses_a_partial_of_another_operation_and_keeps_what_it_holds(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    aggregate = pe.Aggregate("grep")
    assert (aggregate.partial(), aggregate.finalize()) == (None, None)
    grep = pe.start("grep", json.dumps({"pattern": "x"}), [(str(tmp_path / "a.txt"), 2)], 1).wait(30)
    aggregate.add(grep)
    count = pe.start("count", "{}", [(str(tmp_path / "a.txt"), 2)], 1).wait(30)
    for add in (aggregate.add, aggregate.add_split):
        with pytest.raises(ValueError, match="invalid grep partial"):
            add(count)
    assert json.loads(aggregate.finalize()) == json.loads(pe.finalize("grep", grep))
    with pytest.raises(pe.UsageError, match="op: unknown 'sort'"):
        pe.Aggregate("sort")


def test_an_aggregate_that_failed_to_merge_refuses_every_later_call(tmp_path):
    """Its counters may be half updated: a later partial or result must not pass it off as whole."""
    (tmp_path / "a.txt").write_text("x\n")
    files = [(str(tmp_path / "a.txt"), 2)]
    sha256, blake3 = (pe.start("checksum", json.dumps({"algorithm": name}), files, 1).wait(30)
                      for name in ("sha256", "blake3"))
    aggregate = pe.Aggregate("checksum")
    aggregate.add(sha256)
    for call in (lambda: aggregate.add(blake3), lambda: aggregate.add(sha256), lambda: aggregate.add_split(sha256),
                 aggregate.partial, aggregate.finalize):
        with pytest.raises(ValueError, match="checksum.algorithm: cannot merge sha256 with blake3"):
            call()


# Valid in Python's `re`, refused by the engine's regex crate (with its own words).
UNSUPPORTED = [("foo(?=bar)", "look-around"), ("(?<!x)y", "look-around"),
               (r"(a)\1", "backreferences are not supported")]


@pytest.mark.parametrize(("pattern", "says"), UNSUPPORTED)
def test_check_options_refuses_what_start_refuses(pattern, says):
    options = json.dumps({"pattern": pattern})
    with pytest.raises(pe.UsageError, match="^grep.pattern: ") as checked:
        pe.check_options("grep", options)
    with pytest.raises(pe.UsageError) as started:
        pe.start("grep", options, [], 1)
    assert says in str(checked.value) and str(checked.value) == str(started.value)


def test_check_options_runs_nothing(tmp_path):
    """A convert check would create the output directory if it ran the op."""
    out = tmp_path / "out"
    assert pe.check_options("grep", json.dumps({"pattern": r"\p{Greek}+", "ignore_case": True})) is None
    assert pe.check_options("convert", json.dumps({"output_dir": str(out)})) is None
    assert not out.exists()


def test_max_matches_per_file_bound():
    bound = pe.MAX_MATCHES_PER_FILE
    pe.check_options("grep", json.dumps({"pattern": "x", "max_matches_per_file": bound}))
    with pytest.raises(pe.UsageError, match=f"grep.max_matches_per_file: .*0..={bound}"):
        pe.check_options("grep", json.dumps({"pattern": "x", "max_matches_per_file": bound + 1}))


def test_progress_visible_while_running(big):
    run = pe.start("stats", "{}", big, 1)
    seen = []

    def poll():
        while not run.done:
            seen.append(run.progress())
            time.sleep(0.002)

    t = threading.Thread(target=poll)
    t.start()
    partial = run.wait(60)
    t.join()
    assert partial is not None
    total = big[0][1]
    middle = [p for p in seen if 0 < p["bytes_done"] < total]
    assert middle, "no intermediate progress observed"
    assert all(p["bytes_total"] == total and p["files_total"] == 1 for p in seen)
    final = run.progress()
    assert final["bytes_done"] == total and final["files_done"] == 1 and final["errors"] == 0


def test_cancel_stops_the_run_before_it_has_read_the_file(big):
    """Cancel is observed mid-file: the run raises Cancelled with part of the file unread."""
    run = pe.start("stats", "{}", big, 1)
    wait_for(lambda: run.progress()["bytes_done"] > 0, 60, "the run to start reading")
    assert not run.done, "input too small: run finished before cancel"
    run.cancel()
    with pytest.raises(pe.Cancelled):
        run.wait(60)
    # wait() raises within a short grace; the workers then finish the buffer they hold.
    wait_for(lambda: run.done, 60, "the run to wind down after the cancel")
    assert run.progress()["bytes_done"] < big[0][1], "the whole file was read after the cancel"


def test_wait_timeout_returns_none_then_result(big):
    run = pe.start("stats", "{}", big, 1)
    assert run.wait(0.01) is None
    assert run.wait(60) is not None
    assert run.done


def test_wait_releases_the_gil(big):
    """Another Python thread runs while the main thread is blocked in `wait`: it counts only
    from the moment the main thread calls `wait` until the run is done."""
    run = pe.start("stats", "{}", big, 1)
    counter = [0]
    waiting = threading.Event()

    def spin():
        waiting.wait()
        while not run.done:
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    assert not run.done, "input too small: run finished before wait"
    waiting.set()
    run.wait(60)
    t.join()
    assert counter[0] > 1000, counter[0]


def worker_threads():
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sum(1 for n in names if n.startswith("pravah-worker"))


@pytest.mark.parametrize("threads", [1, 3])
def test_pool_has_exactly_n_threads(big, threads):
    deadline = time.monotonic() + 2
    while worker_threads() and time.monotonic() < deadline:
        time.sleep(0.01)  # pools of earlier runs wind down asynchronously
    before = worker_threads()
    run = pe.start("stats", "{}", big, threads)
    time.sleep(0.05)
    during = worker_threads() - before
    run.wait(60)
    assert during == threads


def test_files_and_bytes_envelope(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("x\n")
    missing = (str(tmp_path / "gone.txt"), 7)
    run = pe.start("count", "{}", [(str(a), 2), missing], 2)
    doc = json.loads(pe.finalize("count", run.wait(10)))
    assert doc["operation"] == "count"
    assert doc["files"] == 2 and doc["bytes"] == 9
    assert [e["path"] for e in doc["errors"]] == [missing[0]]
    assert doc["result"]["lines"] == 1


@pytest.mark.parametrize(("op", "options", "file_list"), [
    ("count", {}, "files"), ("checksum", {"algorithm": "sha256"}, "files"),
    ("grep", {"pattern": "b[0-9]"}, "files"), ("convert", {"compression": "zstd"}, "outputs"), ("stats", {}, None)])
def test_a_split_add_gives_the_document_and_keeps_no_list(tmp_path, op, options, file_list):
    """What a merge of many batches keeps in memory holds no errors and no per-file list, and
    still adds up to the batches' totals."""
    texts = {f"{name}.csv": "a,b\n" + "".join(f"{i},b{i}\n" for i in range(rows)) for name, rows in (("p", 3), ("q", 5))}
    files = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        files.append((str(tmp_path / name), len(text)))
    missing = (str(tmp_path / "gone.csv"), 4)
    if op == "convert":
        options = {**options, "output_dir": str(tmp_path / "out")}
    partials = [pe.start(op, json.dumps(options), [entry], 1).wait(30) for entry in (*files, missing)]
    aggregate = pe.Aggregate(op)
    for partial in partials:
        assert json.loads(aggregate.add_split(partial)) == json.loads(pe.finalize(op, partial))
    stripped = json.loads(aggregate.partial())
    assert stripped["errors"] == []
    if file_list:
        assert stripped["body"][file_list] == []
    total = json.loads(aggregate.finalize())
    assert (total["files"], total["bytes"], total["errors"]) == (3, sum(size for _, size in (*files, missing)), [])
    rows = sum(text.count("\n") - 1 for text in texts.values())
    expected = {"count": ("lines", rows + 2), "grep": ("matches", rows), "convert": ("rows", rows),
                "stats": ("rows", rows), "checksum": ("algorithm", "sha256")}[op]
    assert total["result"][expected[0]] == expected[1]
    if file_list:
        assert total["result"][file_list] == []


def test_a_runs_result_document_comes_from_the_data_in_memory_or_in_its_file(tmp_path):
    """`Run.result` writes the document from the engine's own values (no partial text first):
    every kept line and count must still be what the data holds, and the file the same text."""
    texts = {"a.log": "ok\nerror: disk\nfine\nerror: net 2024-01-31\n", "b.log": "quiet\n",
             "c.log": "timeout\nerror\n" * 3}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    files = files_of(*(tmp_path / name for name in texts)) + [(str(tmp_path / "gone.log"), 5)]
    pattern = r"error|\d{4}-\d{2}-3[01]"
    run = pe.start("grep", json.dumps({"pattern": pattern}), files, 2)
    document = json.loads(run.result())
    expected = {str(tmp_path / name): [{"line": number, "text": line}
                                       for number, line in enumerate(text.splitlines(), 1) if re.search(pattern, line)]
                for name, text in texts.items()}
    assert {f["path"]: f["lines"] for f in document["result"]["files"]} == {p: l for p, l in expected.items() if l}
    assert document["result"]["matches"] == sum(map(len, expected.values()))
    assert (document["files"], [e["path"] for e in document["errors"]]) == (4, [str(tmp_path / "gone.log")])
    out = tmp_path / "result.json"
    assert run.result(out) is None
    assert out.read_text() == json.dumps(document, separators=(",", ":"), sort_keys=True)
    assert json.loads(pe.finalize("grep", run.wait())) == document


def test_a_result_that_cannot_be_written_leaves_no_file_of_its_own_and_names_the_path(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    files = files_of(tmp_path / "a.txt")
    missing = tmp_path / "no-such-dir" / "result.json"
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(missing))}: No such file"):
        pe.start("count", "{}", files, 1).result(missing)
    per_file = tmp_path / "per-file.json"
    with pytest.raises(pe.UsageError, match="one partial per file"):
        pe.start("count", "{}", files, 1, per_file=True).result(per_file)
    assert not per_file.exists() and not missing.parent.exists()
    kept = tmp_path / "kept.json"  # a link to where nothing can be made: its target's directory is missing
    kept.symlink_to(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(kept))):
        pe.start("count", "{}", files, 1).result(kept)
    assert kept.is_symlink(), "what the run could not open is left as it was"
