"""count, checksum, grep and convert against independent references."""

import hashlib
import json
import re

import pravah_engine as pe
import pytest

from unit.engine.engine_helpers import files_of, run_op


def sample_files(tmp_path):
    a = tmp_path / "a.txt"
    a.write_bytes(b"hello world\nfoo bar  baz\n\n  tabs\tand\x0bvt\nno newline at end")
    b = tmp_path / "b.txt"
    b.write_bytes(b"")
    c = tmp_path / "sub" / "c.txt"
    c.parent.mkdir()
    c.write_bytes(b"FOO\nfoo\nFoO fOo\nbar\n" * 50 + bytes(range(256)))
    return [a, b, c]


def test_count_matches_python(tmp_path):
    paths = sample_files(tmp_path)
    doc = run_op("count", {}, files_of(*paths))
    total_lines = total_words = 0
    for p, f in zip(sorted(paths, key=lambda p: str(p)), doc["result"]["files"]):
        data = p.read_bytes()
        lines, words = data.count(b"\n"), len(data.split())
        assert f == {"path": str(p), "lines": lines, "words": words, "bytes": len(data)}
        total_lines += lines
        total_words += words
    assert doc["result"]["lines"] == total_lines and doc["result"]["words"] == total_words


def test_count_big_file_split_across_threads(tmp_path):
    p = tmp_path / "big.txt"
    chunk = b"alpha beta\tgamma\n  delta" * 4001 + b"x" * 7
    p.write_bytes(chunk * 300)
    doc = run_op("count", {}, files_of(p), threads=2)
    data = p.read_bytes()
    assert doc["result"]["lines"] == data.count(b"\n")
    assert doc["result"]["words"] == len(data.split())
    assert doc["result"]["bytes"] == len(data)


@pytest.mark.parametrize("algorithm", ["sha256", "blake3", "xxh3"])
def test_checksum_matches_reference(tmp_path, algorithm):
    paths = sample_files(tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (6 * 4096 + 3))
    paths.append(big)
    if algorithm == "sha256":
        ref = lambda d: hashlib.sha256(d).hexdigest()
    elif algorithm == "blake3":
        import blake3
        ref = lambda d: blake3.blake3(d).hexdigest()
    else:
        import xxhash
        ref = lambda d: xxhash.xxh3_64_hexdigest(d)
    doc = run_op("checksum", {"algorithm": algorithm}, files_of(*paths))
    assert doc["result"]["algorithm"] == algorithm
    got = {f["path"]: (f["bytes"], f["digest"]) for f in doc["result"]["files"]}
    assert got == {str(p): (p.stat().st_size, ref(p.read_bytes())) for p in paths}
    assert [f["path"] for f in doc["result"]["files"]] == sorted(got)


def grep_reference(paths, pattern, flags, max_lines):
    rx = re.compile(pattern, flags)
    files, total = [], 0
    for p in sorted(paths, key=lambda p: str(p).encode()):
        text = p.read_bytes().decode("utf-8", "replace")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        hits = [(i + 1, line) for i, line in enumerate(lines) if rx.search(line)]
        if hits:
            total += len(hits)
            files.append({"path": str(p), "matches": len(hits),
                          "lines": [{"line": n, "text": t} for n, t in hits[:max_lines]]})
    return files, total


@pytest.mark.parametrize("pattern,ignore_case,max_lines", [("foo", False, 100), ("foo", True, 3), (r"^b\w+", False, 100), (r"o\s+b", False, 10)])
def test_grep_matches_python_re(tmp_path, pattern, ignore_case, max_lines):
    paths = sample_files(tmp_path)
    paths = [p for p in paths if p.name != "c.txt"] + [tmp_path / "sub" / "c.txt"]
    (tmp_path / "sub" / "c.txt").write_bytes(b"FOO\nfoo\nFoO fOo\nbar\n" * 50)
    opts = {"pattern": pattern, "ignore_case": ignore_case, "max_matches_per_file": max_lines}
    doc = run_op("grep", opts, files_of(*paths))
    files, total = grep_reference(paths, pattern, re.I if ignore_case else 0, max_lines)
    assert doc["result"]["files"] == files
    assert doc["result"]["matches"] == total
    assert doc["result"]["files_with_matches"] == len(files)
    assert doc["result"]["pattern"] == pattern


def test_grep_lines_that_need_escaping_survive_merge_and_finalize(tmp_path):
    """Kept lines travel through partials as JSON text: quotes, backslashes, control bytes,
    invalid UTF-8 and non-ASCII text come out as Python decodes them, whichever partials
    are merged in whichever order."""
    bodies = {
        "quotes.txt": b'say "hit" here\nno\n\\hit\\path\\ and \\"\n',
        "control.txt": b"tab\thit\x01\x1f end\r\nhit at start\n",
        "bytes.txt": b"caf\xc3\xa9 hit \xe2\x82\xac\nbad \xff\xfe hit\n" + "\u4e2d hit \U0001f600".encode(),
    }
    paths = []
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
        paths.append(tmp_path / name)
    options = json.dumps({"pattern": "hit", "ignore_case": False, "max_matches_per_file": 100})
    partials = [pe.start("grep", options, files_of(p), 1).wait(30) for p in paths]
    aggregate = pe.Aggregate("grep")
    for partial in reversed(partials):
        aggregate.add(partial)
    merged = aggregate.partial()
    files, total = grep_reference(paths, "hit", 0, 100)
    for document in (pe.finalize("grep", merged), aggregate.finalize(), pe.Aggregate("grep").add_split(merged)):
        result = json.loads(document)["result"]
        assert result["files"] == files
        assert result["matches"] == total


def test_grep_big_file_line_numbers(tmp_path):
    p = tmp_path / "big.log"
    lines = [f"line {i} {'ERROR disk' if i % 9973 == 0 else 'ok'}" for i in range(600_000)]
    p.write_text("\n".join(lines) + "\n")
    doc = run_op("grep", {"pattern": "ERROR", "max_matches_per_file": 1000}, files_of(p), threads=2)
    want = [i + 1 for i in range(600_000) if i % 9973 == 0]
    assert [l["line"] for l in doc["result"]["files"][0]["lines"]] == want
    assert doc["result"]["matches"] == len(want)


def class_pattern_lines(n):
    """Log lines where `-3` (the literal every match of DATE_END holds) often
    appears without a match, and matches sit at every distance from the
    8 MiB chunk boundaries."""
    shapes = [
        "id={i} day=2024-05-{d:02d} ok",   # a match when d is 30 or 31
        "id={i} range 12-3{d} only",       # the literal without the date
        "id={i} -3-3-3 2024-1-31",         # the literal, a date too short
        "id={i} 2024-12-3",                # the literal at the end of the line
        "id={i} plain text",
    ]
    return [shapes[(i * 7 + i // 13) % len(shapes)].format(i=i, d=1 + i % 31) for i in range(n)]


DATE_END = r"[0-9]{4}-[0-9]{2}-3[01]"


def test_grep_inner_literal_prefilter_matches_python_re_across_chunks(tmp_path):
    p = tmp_path / "big.log"
    p.write_text("\n".join(class_pattern_lines(700_000)) + "\n")
    assert p.stat().st_size > 2 * 8 << 20
    opts = {"pattern": DATE_END, "max_matches_per_file": 100_000}
    doc = run_op("grep", opts, files_of(p), threads=2)
    files, total = grep_reference([p], DATE_END, 0, 100_000)
    assert 0 < total <= 100_000
    assert doc["result"]["files"] == files
    assert doc["result"]["matches"] == total


def test_grep_line_numbers_when_the_first_chunk_keeps_fewer_lines_than_the_cap(tmp_path):
    # Two matches in the first 8 MiB chunk, many in the later ones: the later
    # chunks' line numbers are shifted by the newlines of the first.
    p = tmp_path / "sparse-then-dense.log"
    lines = class_pattern_lines(700_000)
    lines = [line if i > 400_000 or i in (5, 250_000) else f"id={i} plain text" for i, line in enumerate(lines)]
    lines[5], lines[250_000] = "2024-05-30 first", "2024-05-31 second"
    p.write_text("\n".join(lines) + "\n")
    for cap in (1, 2, 50):
        doc = run_op("grep", {"pattern": DATE_END, "max_matches_per_file": cap}, files_of(p), threads=2)
        files, total = grep_reference([p], DATE_END, 0, cap)
        assert doc["result"]["files"] == files
        assert doc["result"]["matches"] == total


def test_convert_roundtrip_with_pyarrow(tmp_path):
    import pyarrow.parquet as pq
    import datetime

    src = tmp_path / "in" / "data.csv"
    src.parent.mkdir()
    src.write_text(
        "id,price,flag,day,name\n"
        "1,2.5,true,2024-01-31,alpha\n"
        "2,,FALSE,,\"b, \"\"q\"\"\"\n"
        ",3,true,1999-12-31,\n"
    )
    bad = tmp_path / "in" / "bad.csv"
    bad.write_text("a,b\n1\n")
    out = tmp_path / "out"
    for compression in ["zstd", "snappy", "none"]:
        options = {"output_dir": str(out / compression), "compression": compression, "bad_rows": "fail"}
        doc = run_op("convert", options, files_of(src, bad))
        assert [e["path"] for e in doc["errors"]] == [str(bad)]
        r = doc["result"]
        assert r["format"] == "parquet" and r["compression"] == compression and r["rows"] == 3
        assert r["schema"] == [{"name": "id", "type": "int64"}, {"name": "price", "type": "float64"},
                               {"name": "flag", "type": "bool"}, {"name": "day", "type": "date32"},
                               {"name": "name", "type": "utf8"}]
        assert [o["source"] for o in r["outputs"]] == [str(src)]
        table = pq.read_table(r["outputs"][0]["path"])
        assert [str(t) for t in table.schema.types] == ["int64", "double", "bool", "date32[day]", "string"]
        assert table.to_pydict() == {
            "id": [1, 2, None],
            "price": [2.5, None, 3.0],
            "flag": [True, False, True],
            "day": [datetime.date(2024, 1, 31), None, datetime.date(1999, 12, 31)],
            "name": ["alpha", 'b, "q"', None],
        }


def test_convert_big_file_many_row_groups(tmp_path):
    import pyarrow.parquet as pq
    src = tmp_path / "big.csv"
    n = 400_000
    with open(src, "w") as f:
        f.write("i,x,s\n")
        for i in range(n):
            f.write(f"{i},{i / 4},s{i % 97}\n")
    doc = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(src), threads=2)
    assert doc["errors"] == [] and doc["result"]["rows"] == n
    t = pq.read_table(doc["result"]["outputs"][0]["path"])
    assert t.num_rows == n
    assert t.column("i").to_pylist()[::50_000] == list(range(0, n, 50_000))
    assert sum(t.column("x").to_pylist()) == sum(i / 4 for i in range(n))


def test_convert_dictionary_only_for_repetitive_columns(tmp_path):
    import pyarrow.parquet as pq
    src = tmp_path / "mixed.csv"
    n = 50_000
    rows = [(i, f"{i * 0.37:.2f}", i % 12, f"2024-01-{1 + i % 28:02d}", ["red", "green", "blue"][i % 3], f"note {i * 7919 % n}")
            for i in range(n)]
    src.write_text("id,amount,qty,day,colour,note\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    doc = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(src), threads=2)
    assert doc["errors"] == [] and doc["result"]["rows"] == n
    path = doc["result"]["outputs"][0]["path"]
    meta = pq.ParquetFile(path).metadata
    dictionary = {meta.row_group(0).column(c).path_in_schema: meta.row_group(0).column(c).has_dictionary_page
                  for c in range(meta.num_columns)}
    assert dictionary == {"id": False, "amount": False, "qty": True, "day": True, "colour": True, "note": False}
    t = pq.read_table(path)
    assert t.column("id").to_pylist() == [r[0] for r in rows]
    assert t.column("amount").to_pylist() == [float(r[1]) for r in rows]
    assert t.column("qty").to_pylist() == [r[2] for r in rows]
    assert [d.isoformat() for d in t.column("day").to_pylist()] == [r[3] for r in rows]
    assert t.column("colour").to_pylist() == [r[4] for r in rows]
    assert t.column("note").to_pylist() == [r[5] for r in rows]
