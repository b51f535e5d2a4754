"""Big multi-frame zstd and BGZF files, split across threads: count, grep and checksum against Python's codecs."""

import hashlib
import random
import re
import struct
import zlib

import pytest
import zstandard

from unit.engine.engine_helpers import files_of, run_op

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
    for op, options in [("count", {}), ("grep", {"pattern": "dead"}), ("checksum", {"decompressed": True})]:
        doc = run_op(op, options, files_of(broken, good), threads=4)
        (error,) = doc["errors"]
        assert error["path"] == str(broken), op
        assert re.fullmatch(rf"{codec} stream is corrupt or truncated after \d+ bytes of .+", error["reason"]), error
    assert run_op("count", {}, files_of(broken, good))["result"]["files"] == [
        {"path": str(good), "lines": 2, "words": 3, "bytes": 6}]
