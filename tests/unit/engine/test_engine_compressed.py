"""Compressed inputs (gzip, zstd, bzip2, xz): every op against Python's codecs and csv/re/hashlib."""

import bz2
import csv
import gzip
import hashlib
import io
import lzma
import re
import statistics
import tarfile

import pyarrow.parquet as pq
import pytest
import zstandard

from unit.engine.engine_helpers import files_of, run_op
from unit.engine.test_engine_stats import mixed_csv

CODECS = {
    "gz": lambda data: gzip.compress(data, compresslevel=1),
    "zst": lambda data: zstandard.ZstdCompressor(level=1).compress(data),
    "bz2": lambda data: bz2.compress(data, compresslevel=1),
    "xz": lambda data: lzma.compress(data, preset=0),
}


def compressed(tmp_path, plain, suffix):
    path = tmp_path / f"{plain.name}.{suffix}"
    path.write_bytes(CODECS[suffix](plain.read_bytes()))
    return path


def words(data):
    return len(data.split())


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    """Over 8 MB of content (several blocks), with quoted newlines and commas."""
    return mixed_csv(tmp_path_factory.mktemp("big") / "big.csv", rows=200_000, seed=3)


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_stats_sees_the_content(tmp_path, suffix):
    plain = mixed_csv(tmp_path / "mixed.csv", rows=4000, seed=5)
    doc = run_op("stats", {"quantiles": [0.5]}, files_of(compressed(tmp_path, plain, suffix)))
    with open(plain, newline="") as f:
        header, *data = list(csv.reader(f))
    assert doc["errors"] == []
    assert doc["result"]["rows"] == len(data)
    assert [c["name"] for c in doc["result"]["columns"]] == header
    for j, column in enumerate(doc["result"]["columns"]):
        values = [r[j] for r in data if r[j] != ""]
        assert (column["count"], column["nulls"]) == (len(values), len(data) - len(values)), column["name"]
    amount = [float(r[1]) for r in data if r[1]]
    assert doc["result"]["columns"][1]["mean"] == pytest.approx(statistics.fmean(amount), rel=1e-9)


@pytest.mark.parametrize("suffix", ["gz", "zst"])
def test_a_big_file_streams_block_after_block(tmp_path, big_csv, suffix):
    path = compressed(tmp_path, big_csv, suffix)
    assert path.stat().st_size > 1 << 20 and big_csv.stat().st_size > 8 << 20
    doc = run_op("stats", {"top": 0, "quantiles": []}, files_of(path))
    with open(big_csv, newline="") as f:
        header, *data = list(csv.reader(f))
    assert doc["errors"] == [] and doc["result"]["rows"] == len(data)
    ids = [int(r[0]) for r in data]
    assert (doc["result"]["columns"][0]["min"], doc["result"]["columns"][0]["max"]) == (min(ids), max(ids))
    content = big_csv.read_bytes()
    count = run_op("count", {}, files_of(path))["result"]
    assert (count["lines"], count["words"], count["bytes"]) == (content.count(b"\n"), words(content), len(content))


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_count_and_grep_see_the_content(tmp_path, suffix):
    plain = tmp_path / "log.txt"
    lines = [f"{i} GET /item/{i % 97} status={200 if i % 13 else 500}" for i in range(20_000)]
    plain.write_text("\n".join(lines) + "\n")
    path = compressed(tmp_path, plain, suffix)
    content = plain.read_bytes()
    count = run_op("count", {}, files_of(path))["result"]
    assert (count["lines"], count["words"], count["bytes"]) == (content.count(b"\n"), words(content), len(content))
    doc = run_op("grep", {"pattern": r"status=5\d\d", "max_matches_per_file": 5}, files_of(path))
    want = [(n, line) for n, line in enumerate(lines, 1) if re.search(r"status=5\d\d", line)]
    (found,) = doc["result"]["files"]
    assert found["matches"] == len(want)
    assert [(m["line"], m["text"]) for m in found["lines"]] == want[:5]


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_checksum_hashes_the_stored_bytes_unless_asked_for_the_content(tmp_path, suffix):
    plain = tmp_path / "data.txt"
    plain.write_bytes(b"some bytes\n" * 5000)
    path = compressed(tmp_path, plain, suffix)
    (stored,) = run_op("checksum", {}, files_of(path))["result"]["files"]
    assert (stored["digest"], stored["bytes"]) == (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    (content,) = run_op("checksum", {"decompressed": True}, files_of(path))["result"]["files"]
    assert (content["digest"], content["bytes"]) == (hashlib.sha256(plain.read_bytes()).hexdigest(), plain.stat().st_size)


@pytest.mark.parametrize("suffix", ["gz", "xz"])
def test_convert_writes_the_content(tmp_path, big_csv, suffix):
    path = compressed(tmp_path, big_csv, suffix)
    doc = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(path))
    assert doc["errors"] == []
    (output,) = doc["result"]["outputs"]
    table = pq.read_table(output["path"])
    with open(big_csv, newline="") as f:
        header, *data = list(csv.reader(f))
    assert table.column_names == header and table.num_rows == len(data) == output["rows"]
    assert table.column("id").to_pylist() == [int(r[0]) for r in data]
    assert table.column("note").to_pylist() == [r[5] or None for r in data]
    assert pq.ParquetFile(output["path"]).metadata.num_row_groups > 1


@pytest.mark.parametrize("suffix", sorted(CODECS))
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_broken_stream_is_an_error_record_and_the_job_goes_on(tmp_path, suffix, damage):
    plain = tmp_path / "a.csv"
    plain.write_text("k,v\n" + "".join(f"key{i},{i}\n" for i in range(50_000)))
    stored = bytearray(CODECS[suffix](plain.read_bytes()))
    if damage == "truncated":
        stored = stored[: len(stored) * 2 // 3]
    else:
        middle = len(stored) // 2
        stored[middle:middle + 64] = bytes(64)
    broken = tmp_path / f"a.csv.{suffix}"
    broken.write_bytes(bytes(stored))
    good = tmp_path / "b.csv"
    good.write_text("k,v\nx,1\ny,2\n")
    for op, options in [("stats", {}), ("count", {}), ("grep", {"pattern": "key1"})]:
        doc = run_op(op, options, files_of(broken, good))
        (error,) = doc["errors"]
        assert error["path"] == str(broken), op
        codec = {"gz": "gzip", "zst": "zstd", "bz2": "bzip2", "xz": "xz"}[suffix]
        assert re.fullmatch(rf"{codec} stream is corrupt or truncated after \d+ bytes of content: .+", error["reason"]), error
    assert run_op("stats", {}, files_of(broken, good))["result"]["rows"] == 2
    assert run_op("count", {}, files_of(broken, good))["result"]["files"] == [
        {"path": str(good), "lines": 3, "words": 3, "bytes": good.stat().st_size}]


def test_the_content_decides_not_the_name(tmp_path):
    not_gzip = tmp_path / "plain.csv.gz"
    not_gzip.write_text("k,v\na,1\nb,2\n")
    unnamed = tmp_path / "export.bin"
    unnamed.write_bytes(gzip.compress(b"k,v\nc,3\n"))
    doc = run_op("stats", {}, files_of(not_gzip, unnamed))
    assert doc["errors"] == [] and doc["result"]["rows"] == 3


def test_multi_member_gzip_is_read_to_the_end(tmp_path):
    path = tmp_path / "members.csv.gz"
    path.write_bytes(gzip.compress(b"k,v\na,1\n") + gzip.compress(b"b,2\nc,3\n") + gzip.compress(b"d,4\n"))
    doc = run_op("stats", {}, files_of(path))
    assert doc["errors"] == [] and doc["result"]["rows"] == 4
    assert doc["result"]["columns"][1]["max"] == 4


def test_an_error_in_compressed_csv_names_its_line(tmp_path):
    path = tmp_path / "ragged.csv.zst"
    rows = "k,v\n" + "".join(f"r{i},{i}\n" for i in range(1000)) + "only-one-field\n" + "z,1\n"
    path.write_bytes(CODECS["zst"](rows.encode()))
    (error,) = run_op("stats", {"bad_rows": "fail"}, files_of(path))["errors"]
    assert (error["line"], error["reason"]) == (1002, "ragged row: expected 2 fields, found 1")


def test_a_gzip_inside_a_tar_is_not_unpacked(tmp_path):
    member = gzip.compress(b"inner\n" * 100)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("inner.txt.gz")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(buf.getvalue())
    tar_gz = tmp_path / "bundle.tar.gz"
    tar_gz.write_bytes(gzip.compress(buf.getvalue()))
    files = run_op("count", {}, files_of(archive, tar_gz))["result"]["files"]
    # Both are counted as the tar file's bytes: the archive as stored, the .tar.gz as one stream.
    assert [(f["path"], f["bytes"]) for f in files] == [(str(archive), len(buf.getvalue())),
                                                         (str(tar_gz), len(buf.getvalue()))]
