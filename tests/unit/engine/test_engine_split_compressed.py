"""Big multi-frame zstd and BGZF files, split across threads: count, grep, checksum and stats against
Python's codecs, csv and json."""

import csv
import hashlib
import io
import json
import random
import re
import struct
import zlib

import pyarrow.parquet as pq
import pytest
import zstandard

from unit.engine.engine_helpers import files_of, run_op
from unit.engine.test_engine_bad_rows import assert_profile
from unit.engine.test_engine_ndjson import column, events

GROUP = 8 << 20  # stored bytes per group the engine decompresses on one thread


def bgzf_block(data):
    """A BGZF block (SAM spec 4.1): a gzip member whose BC extra subfield holds its size less one."""
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    extra = b"BC" + struct.pack("<HH", 2, 18 + len(body) + 8 - 1)
    header = bytes([0x1F, 0x8B, 8, 4, 0, 0, 0, 0, 0, 0xFF]) + struct.pack("<H", len(extra)) + extra
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def zstd_frames(data):
    """Frames of an odd size, so that lines cross frame boundaries, with a skippable frame among them."""
    frames = [zstandard.ZstdCompressor(level=1, write_checksum=i % 2 == 0).compress(p) for i, p in enumerate(pieces(data, 1_000_003))]
    return frames[:3] + [struct.pack("<II", 0x184D2A50, 5) + b"hello"] + frames[3:]


def bgzf_blocks(data):
    return [bgzf_block(p) for p in pieces(data, 65_280)] + [bgzf_block(b"")]


UNITS = {"zst": zstd_frames, "gz": bgzf_blocks}


@pytest.fixture(scope="module")
def content():
    """~60 MB of hard-to-compress lines of varied length (stored in more than 3 groups)."""
    rng = random.Random(11)
    hexed = rng.randbytes(30_000_000).hex()
    lines, pos, i = [], 0, 0
    while pos < len(hexed):
        n = rng.randrange(10, 160)
        lines.append(f"{i} {hexed[pos:pos + n]}")
        pos, i = pos + n, i + 1
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module", params=sorted(UNITS))
def stored(request, content, tmp_path_factory):
    suffix = request.param
    path = tmp_path_factory.mktemp("split") / f"big.txt.{suffix}"
    path.write_bytes(b"".join(UNITS[suffix](content)))
    assert path.stat().st_size > 3 * GROUP
    return path


def test_count_sees_every_line_once(stored, content):
    for threads in (1, 2, 4):
        doc = run_op("count", {}, files_of(stored), threads=threads)
        assert doc["errors"] == []
        (f,) = doc["result"]["files"]
        assert (f["lines"], f["words"], f["bytes"]) == (content.count(b"\n"), len(content.split()), len(content))


def test_grep_finds_every_line_with_its_number(stored, content):
    pattern = r"dead|^\d+7 [0-9a-f]{0,3}$"
    want = [(n, line) for n, line in enumerate(content.decode().split("\n")[:-1], 1) if re.search(pattern, line)]
    assert len(want) > 100
    doc = run_op("grep", {"pattern": pattern, "max_matches_per_file": 100_000}, files_of(stored), threads=4)
    (found,) = doc["result"]["files"]
    assert found["matches"] == len(want)
    assert [(m["line"], m["text"]) for m in found["lines"]] == want
    (first,) = run_op("grep", {"pattern": pattern, "max_matches_per_file": 3}, files_of(stored), threads=4)["result"]["files"]
    assert (first["matches"], [(m["line"], m["text"]) for m in first["lines"]]) == (len(want), want[:3])


def test_checksum_of_the_content(stored, content):
    (f,) = run_op("checksum", {"decompressed": True}, files_of(stored), threads=4)["result"]["files"]
    assert (f["digest"], f["bytes"]) == (hashlib.sha256(content).hexdigest(), len(content))


@pytest.mark.parametrize("suffix", sorted(UNITS))
def test_a_corrupt_unit_in_the_middle_is_an_error_record(tmp_path, content, suffix):
    units = UNITS[suffix](content)
    middle = bytearray(units[len(units) // 2])
    middle[100:164] = bytes(64)  # inside the compressed data, past the headers
    broken = tmp_path / f"broken.txt.{suffix}"
    broken.write_bytes(b"".join(units[:len(units) // 2] + [bytes(middle)] + units[len(units) // 2 + 1:]))
    good = tmp_path / "good.txt"
    good.write_bytes(b"a b\nc\n")
    codec = {"gz": "gzip", "zst": "zstd"}[suffix]
    for op, options in [("count", {}), ("grep", {"pattern": "dead"}), ("checksum", {"decompressed": True}), ("stats", {})]:
        doc = run_op(op, options, files_of(broken, good), threads=4)
        (error,) = doc["errors"]
        assert error["path"] == str(broken), op
        # The split path names the group of frames it was reading.
        assert re.fullmatch(rf"{codec} stream is corrupt or truncated after \d+ bytes of the content of the frames "
                            rf"stored from byte \d+: .+", error["reason"]), error
    assert run_op("count", {}, files_of(broken, good))["result"]["files"] == [
        {"path": str(good), "lines": 2, "words": 3, "bytes": 6}]


def unit_content_length(unit):
    """Content bytes of one stored unit, from its own header or trailer."""
    if unit[:3] == b"\x1f\x8b\x08":
        return struct.unpack("<I", unit[-4:])[0]  # BGZF: ISIZE
    magic = struct.unpack("<I", unit[:4])[0]
    return 0 if magic & 0xFFFFFFF0 == 0x184D2A50 else zstandard.frame_content_size(unit)


def group_starts(units):
    """Content offsets where the engine's groups after the first start: consecutive units joined
    until a group holds at least GROUP stored bytes."""
    starts, stored, content = [], 0, 0
    for unit in units:
        if stored >= GROUP:
            starts.append(content)
            stored = 0
        stored += len(unit)
        content += unit_content_length(unit)
    return starts


def quoted_csv(rows, seed):
    """A CSV most of whose newlines lie inside quoted fields (with commas and doubled quotes),
    empty cells, and in its second half some rows of another width."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "note", "n"])
    for i in range(rows):
        note = "\n".join(rnd.randbytes(rnd.randrange(4, 30)).hex() for _ in range(rnd.randrange(1, 6)))
        if i % 5 == 0:
            note += ', said "hi"'
        fields = [str(i), note, "" if i % 13 == 0 else str(rnd.randint(-1000, 1000))]
        if i > rows // 2 and i % 997 == 0:
            fields.append("extra")
        writer.writerow(fields)
    return out.getvalue()


@pytest.fixture(scope="module")
def quoted_text():
    return quoted_csv(330_000, seed=5)


@pytest.mark.parametrize("suffix", sorted(UNITS))
def test_stats_of_csv_whose_groups_start_inside_quotes(tmp_path, quoted_text, suffix):
    content = quoted_text.encode()
    units = UNITS[suffix](content)
    starts = group_starts(units)
    assert len(starts) >= 2
    # Groups that start inside a quoted field: a split at their first newline would cut a record.
    assert any(content[:at].count(b'"') % 2 for at in starts)
    path = tmp_path / f"quoted.csv.{suffix}"
    path.write_bytes(b"".join(units))
    for threads in (1, 4):
        doc = run_op("stats", {"max_bad_rows": 1000}, files_of(path), threads=threads)
        listed, bad = assert_profile(doc, quoted_text, "skip")
        assert bad and listed == [(str(path), line, reason) for line, reason in bad]
        ids = doc["result"]["columns"][0]
        assert (ids["min"], ids["max"]) == (0, 329_999)
    failed = run_op("stats", {"bad_rows": "fail"}, files_of(path), threads=4)
    assert [(e["path"], e["line"]) for e in failed["errors"]] == [(str(path), bad[0][0])]


@pytest.mark.parametrize("suffix", sorted(UNITS))
def test_convert_of_csv_split_in_groups_writes_every_row_in_order(tmp_path, quoted_text, suffix):
    path = tmp_path / f"quoted.csv.{suffix}"
    path.write_bytes(b"".join(UNITS[suffix](quoted_text.encode())))
    doc = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(path), threads=4)
    assert doc["errors"] == []
    (output,) = doc["result"]["outputs"]
    header, *data = csv.reader(io.StringIO(quoted_text, newline=""))
    kept = [r for r in data if len(r) == len(header)]  # the default policy skips rows of another width
    table = pq.read_table(output["path"])
    assert table.column_names == header and table.num_rows == len(kept) == output["rows"]
    assert table.column("id").to_pylist() == [int(r[0]) for r in kept]
    assert table.column("note").to_pylist() == [r[1] for r in kept]
    assert table.column("n").to_pylist() == [int(r[2]) if r[2] else None for r in kept]
    assert pq.ParquetFile(output["path"]).metadata.num_row_groups > 3


@pytest.mark.parametrize("suffix", sorted(UNITS))
def test_stats_of_ndjson_split_in_groups(tmp_path, suffix):
    rnd = random.Random(9)
    rows = [dict(e, trace=rnd.randbytes(40).hex()) for e in events(420_000, seed=4)]
    lines = [json.dumps(r) for r in rows]
    broken_at = [200_000, 380_000]  # 0-based rows made malformed, in later groups
    for i in broken_at:
        lines[i] = lines[i][:-5]
    content = ("\n".join(lines) + "\n").encode()
    units = UNITS[suffix](content)
    assert len(group_starts(units)) >= 2
    path = tmp_path / f"events.ndjson.{suffix}"
    path.write_bytes(b"".join(units))
    doc = run_op("stats", {"top": 0, "quantiles": []}, files_of(path), threads=4)
    kept = [r for i, r in enumerate(rows) if i not in broken_at]
    assert doc["errors"] == []
    assert doc["result"]["rows"] == len(kept)
    assert [(r["line"], r["reason"].startswith("malformed JSON")) for r in doc["result"]["badRows"]["rows"]] == [
        (i + 1, True) for i in broken_at]
    ids = column(doc, "id")
    assert (ids["count"], ids["min"], ids["max"]) == (len(kept), 0, len(rows) - 1)
    ages = [r["user"]["age"] for r in kept]
    age = column(doc, "user.age")
    present = [a for a in ages if a is not None]
    assert (age["count"], age["nulls"], age["min"], age["max"]) == (len(present), ages.count(None), min(present), max(present))
    amounts = [r["amount"] for r in kept if "amount" in r]
    amount = column(doc, "amount")
    assert (amount["count"], amount["nulls"]) == (len(amounts), len(kept) - len(amounts))
    converted = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(path), threads=4)
    (output,) = converted["result"]["outputs"]
    table = pq.read_table(output["path"])
    assert table.num_rows == len(kept) == output["rows"]
    assert table.column("id").to_pylist() == [r["id"] for r in kept]
    assert table.column("user.age").to_pylist() == ages
    assert table.column("amount").to_pylist() == [r.get("amount") for r in kept]
