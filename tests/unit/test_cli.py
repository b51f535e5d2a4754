"""`pravah run` as a user meets it: usage errors, exit codes, the result document."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e import reference
from pravah.cli import job_from_manifest
from pravah.local import Objects

ROOT = Path(__file__).resolve().parents[2]
PRAVAH = str(Path(sys.executable).parent / "pravah")
SALES = ROOT / "examples" / "data" / "sales"


def pravah(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PRAVAH, *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(("args", "named"), [
    (["run", str(SALES), "--op", "md5"], "'--op'"),
    (["run", str(SALES), "--op", "count", "--threads", "0"], "'--threads'"),
    (["run", str(SALES), "--op", "grep"], "'--pattern'"),
    (["run", str(SALES), "--op", "grep", "--pattern", "("], "pattern"),
    (["run", str(SALES), "--op", "stats", "--quantiles", "2"], "quantiles"),
    (["run", str(SALES), "--op", "count", "--shard", "4/4"], "'--shard'"),
    (["run", str(SALES / "missing"), "--op", "count"], "PATH"),
    (["run", str(SALES)], "'--op'"),
    (["run", str(SALES), "--op", "convert"], "--output"),
    (["run", str(SALES), "--op", "count", "--endpoint", "http://127.0.0.1:9000"], "--endpoint"),
    (["run", "s3://bucket/prefix/", "--op", "count", "--incremental", "--output", "out"], "s3://"),
])
def test_usage_errors_exit_2_and_name_the_option(args, named):
    result = pravah(*args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_bad_manifest_names_the_field(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: pravah.io/v1alpha1\nkind: PravahJob\nmetadata: {name: x}\n"
                        "spec:\n  source: {volume: {path: .}}\n  operation: {type: sort}\n  parallelism: -2\n")
    result = pravah("run", "-f", str(manifest))
    assert result.returncode == 2
    assert "spec.operation.type" in result.stderr and "spec.parallelism" in result.stderr


def test_a_manifest_with_an_s3_source_reads_the_prefix_in_place(tmp_path):
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: pravah.io/v1alpha1\nkind: PravahJob\nmetadata: {name: x}\nspec:\n"
                        "  source: {s3: {bucket: raw, prefix: in/2026/, endpoint: 'http://127.0.0.1:9000', "
                        "region: eu-west-1, credentialsSecret: creds}}\n  operation: {type: count}\n")
    job = job_from_manifest(manifest, {"output": None, "max_errors": None})
    assert job.root == Objects("s3://raw/in/2026/", endpoint="http://127.0.0.1:9000", region="eu-west-1")


def test_json_prints_the_result_document_alone(tmp_path):
    result = pravah("run", str(SALES), "--op", "count", "--json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {"operation", "files", "bytes", "errors", "result"}
    assert document["files"] == 3 and document["threads"] == 2
    expected = sum(path.read_bytes().count(b"\n") for path in SALES.glob("*.csv"))
    assert document["result"]["lines"] == expected


def test_more_errors_than_allowed_exit_1_with_the_document(tmp_path):
    shutil.copytree(SALES, tmp_path / "data")
    (tmp_path / "data" / "ragged.csv").write_text("a,b\n1,2\n3\n")
    strict = ("--op", "stats", "--bad-rows", "fail")
    result = pravah("run", str(tmp_path / "data"), *strict, "--max-errors", "0", "--json")
    assert result.returncode == 1
    assert "maxErrors=0" in result.stderr
    assert json.loads(result.stdout)["errors"][0]["path"].endswith("ragged.csv")
    assert pravah("run", str(tmp_path / "data"), *strict, "--max-errors", "1").returncode == 0


def test_skipped_bad_rows_are_listed_not_counted_as_errors(tmp_path):
    shutil.copytree(SALES, tmp_path / "data")
    ragged = tmp_path / "data" / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    result = pravah("run", str(tmp_path / "data"), "--op", "stats", "--max-errors", "0", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == []
    assert document["result"]["badRows"] == {
        "total": 1, "rows": [{"path": str(ragged), "line": 3, "reason": "expected 2 fields, found 1"}]}


def test_dialect_flags_reach_the_engine(tmp_path):
    body = "id;note\n1;'a;b'\n# a comment\n2;'c'\n"
    report = tmp_path / "data" / "report.csv"
    report.parent.mkdir()
    report.write_text("exported by hand\n" + body + "total;2\n")
    result = pravah("run", str(report.parent), "--op", "stats", "--delimiter", "auto", "--quote", "'",
                    "--comment", "#", "--skip-rows", "1", "--footer-rows", "1", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    kept = "".join(line for line in body.splitlines(keepends=True) if not line.startswith("#"))
    header, *rows = csv.reader(io.StringIO(kept), delimiter=";", quotechar="'")
    assert document["result"]["rows"] == len(rows)
    assert [c["name"] for c in document["result"]["columns"]] == header
    assert document["result"]["dialects"] == [{"path": str(report), "delimiter": ";", "quote": "'", "headerRows": 1}]


@pytest.mark.parametrize(("algorithm", "checker"), [("sha256", "sha256sum")])
def test_checksum_manifest_is_accepted_by_the_classic_tool(tmp_path, algorithm, checker):
    out = tmp_path / "out"
    result = pravah("run", "examples/data", "--op", "checksum", "--algorithm", algorithm, "--output", str(out),
                    cwd=ROOT)
    assert result.returncode == 0, result.stderr
    manifest = out / f"{algorithm}sums.txt"
    check = subprocess.run([checker, "-c", str(manifest)], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == sum(1 for path in (ROOT / "examples" / "data").rglob("*") if path.is_file())
    assert json.loads((out / "result.json").read_text())["result"]["manifest"] == str(manifest)


def test_a_shard_takes_its_share_and_the_shards_cover_everything():
    seen = []
    for index in range(3):
        result = pravah("run", "examples/data", "--op", "count", "--shard", f"{index}/3", "--json", cwd=ROOT)
        assert result.returncode == 0, result.stderr
        seen += [entry["path"] for entry in json.loads(result.stdout)["result"]["files"]]
    assert sorted(seen) == sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples/data").rglob("*") if p.is_file())


@pytest.mark.parametrize("op", ["stats", "count", "checksum", "grep", "convert"])
def test_example_runs_locally_relative_to_its_folder_and_gives_what_the_data_gives(op, tmp_path):
    """Run from another directory: the manifest's source path is taken from its own folder."""
    manifest = ROOT / "examples" / f"{op}-volume.yaml"
    spec = yaml.safe_load(manifest.read_text())["spec"]
    result = pravah("run", "-f", str(manifest), "--json", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    root = manifest.parent / spec["source"]["volume"]["path"]
    files = reference.source_files(root, spec.get("include"), prefix=f"{root}/")
    reference.check(document, spec["operation"], files, lambda path: Path(path).read_bytes())
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == document


def test_help_teaches():
    result = pravah("run", "--help")
    assert result.returncode == 0
    for word in ("--op", "--include", "--threads", "--pattern", "--algorithm", "--json", "Exit codes"):
        assert word in result.stdout


def test_the_runner_command_explains_itself_and_refuses_an_incomplete_environment():
    """`pravah-runner`, the runner image's entry point: --help says where its job comes from;
    started without one it exits 3 (bad input, not retried), naming what is missing."""
    runner = str(Path(sys.executable).parent / "pravah-runner")
    for command in ([runner], [PRAVAH, "runner"]):
        helped = subprocess.run([*command, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0
        for word in ("PRAVAH_SPEC", "JOB_COMPLETION_INDEX", "Exit code 3"):
            assert word in helped.stdout
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("PRAVAH_") and name != "JOB_COMPLETION_INDEX"}
    bare = subprocess.run([runner], capture_output=True, text=True, env=env)
    assert bare.returncode == 3
    assert "runner environment is incomplete" in bare.stderr and "job_uid" in bare.stderr


def test_an_incremental_example_run_since_an_earlier_one_reads_nothing_unchanged(tmp_path):
    manifest = ROOT / "examples" / "stats-incremental-volume.yaml"
    first = pravah("run", "-f", str(manifest), "--json", "--output", str(tmp_path / "one"))
    assert first.returncode == 0, first.stderr
    since = str(tmp_path / "one" / "result.json")
    second = pravah("run", "-f", str(manifest), "--json", "--output", str(tmp_path / "two"), "--since", since)
    assert second.returncode == 0, second.stderr
    before, after = json.loads(first.stdout), json.loads(second.stdout)
    assert after["reuse"]["reused"] == before["reuse"]["new"] == before["files"] > 0
    assert (after["reuse"]["new"], after["reuse"]["changed"], after["reuse"]["bytes_read"]) == (0, 0, 0)
    assert after["result"]["rows"] == before["result"]["rows"]
    assert (tmp_path / "two" / "file-partials.jsonl").read_text() == (tmp_path / "one" / "file-partials.jsonl").read_text()


def test_compressed_ndjson_and_its_bad_lines_as_a_user_sees_them(tmp_path):
    import gzip
    lines = [json.dumps({"id": i, "user": {"age": 20 + i}}) for i in range(30)]
    lines[7] = "{truncated"
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    shown = pravah("run", str(tmp_path), "--op", "stats")
    assert shown.returncode == 0, shown.stderr
    assert "1 rows left out or mended (badRows)" in shown.stdout and "user.age" in shown.stdout
    document = json.loads(pravah("run", str(tmp_path), "--op", "stats", "--json").stdout)
    assert document["result"]["rows"] == 29
    assert [(r["line"], r["path"].endswith("events.jsonl.gz")) for r in document["result"]["badRows"]["rows"]] == [
        (8, True)]
    forced = pravah("run", str(tmp_path), "--op", "stats", "--format", "csv", "--json")
    assert "user.age" not in {c["name"] for c in json.loads(forced.stdout)["result"]["columns"]}


def test_the_events_example_profiles_compressed_json_lines():
    import gzip

    import zstandard
    events_dir = ROOT / "examples" / "data" / "events"
    lines = gzip.decompress((events_dir / "2026-11-01.ndjson.gz").read_bytes()).splitlines()
    lines += zstandard.ZstdDecompressor().stream_reader((events_dir / "2026-11-02.jsonl.zst").read_bytes()).read() \
        .splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    shown = pravah("run", "-f", str(ROOT / "examples" / "stats-events-volume.yaml"))
    assert shown.returncode == 0, shown.stderr
    statuses = [e["status"] for e in events if "status" in e]
    assert "mixed JSON types: status" in shown.stdout
    document = json.loads(pravah("run", "-f", str(ROOT / "examples" / "stats-events-volume.yaml"), "--json").stdout)
    columns = {c["name"]: c for c in document["result"]["columns"]}
    assert document["result"]["rows"] == len(events) and document["errors"] == []
    assert columns["status"]["jsonTypes"] == {"number": sum(isinstance(s, int) for s in statuses),
                                              "string": sum(isinstance(s, str) for s in statuses)}
    sizes = [e["bytes"] for e in events if e["bytes"] is not None]
    assert (columns["bytes"]["count"], columns["bytes"]["max"]) == (len(sizes), max(sizes))
    assert columns["user.plan"]["distinct"] == len({e["user"]["plan"] for e in events})
    assert columns["tags"]["max"] == max(len(e["tags"]) for e in events)
