"""CSV dialect options and sniffing, checked against Python's csv module reading the same bytes
with the same settings; files over 8 MiB cross the engine's parallel chunk boundaries, and gzip
files its stream blocks."""

import csv
import gzip
import random

import pyarrow.parquet as pq
import pytest

from unit.engine.engine_helpers import assert_profile_of, csv_rows, files_of, run_op

CHUNK = 8 << 20


def big(make_row, header, size=CHUNK + (1 << 20)):
    """`header` then rows made by make_row(i, rnd) until the text passes `size` bytes."""
    rnd = random.Random(7)
    parts, length, i = [header], len(header), 0
    while length < size:
        row = make_row(i, rnd)
        parts.append(row)
        length += len(row)
        i += 1
    return "".join(parts)


def plain_and_gzip(tmp_path, name, text):
    plain, packed = tmp_path / name, tmp_path / (name + ".gz")
    plain.write_bytes(text.encode())
    packed.write_bytes(gzip.compress(text.encode(), compresslevel=1))
    return plain, packed


def assert_both_read(tmp_path, name, text, options, header, rows):
    for path in plain_and_gzip(tmp_path, name, text):
        doc = run_op("stats", {**options, "top": 0, "quantiles": []}, files_of(path))
        assert_profile_of(doc, header, rows)


def single_quoted_row(i, rnd):
    note = rnd.choice(["plain", "'semi;colon'", "'two\nlines'", "'it''s'", ""])
    return f"{i};{rnd.randint(-99, 99)};{note}\n"


def test_another_quote_character_across_chunks(tmp_path):
    text = big(single_quoted_row, "id;n;note\n")
    header, *rows = csv_rows(text, delimiter=";", quotechar="'")
    assert len(rows) > 400_000 and any("\n" in r[2] for r in rows)
    assert_both_read(tmp_path, "q.csv", text, {"delimiter": ";", "quote": "'"}, header, rows)


UNQUOTED = ['5" screen', '"open', 'x"y"', "x"]


def test_no_quoting_keeps_quotes_as_text(tmp_path):
    text = big(lambda i, rnd: f"{i},{rnd.choice(UNQUOTED)},{i % 3}\n", "id,what,k\n")
    header, *rows = csv_rows(text, quoting=csv.QUOTE_NONE)
    assert_both_read(tmp_path, "n.csv", text, {"quote": ""}, header, rows)


def escaped_row(i, rnd):
    note = rnd.choice(['"say \\"hi\\""', '"back\\\\slash"', '"comma, \\"and\\"\nnewline"', "bare", ""])
    return f"{i},{note},{rnd.randint(0, 9)}\n"


def test_escape_character_across_chunks(tmp_path):
    text = big(escaped_row, "id,note,k\n")
    header, *rows = csv_rows(text, escapechar="\\", doublequote=False)
    assert any('"' in r[1] for r in rows) and any("\\" in r[1] for r in rows)
    assert_both_read(tmp_path, "e.csv", text, {"escape": "\\"}, header, rows)


def commented_row(i, rnd):
    comment = rnd.choice(["", "", "# a note with a \"quote\n", "#\n"])
    value = rnd.choice(["a", "b,c", "d\ne"])
    return comment + f'{i},"{value}",{rnd.randint(-5, 5)}\n'


def test_comment_lines_are_skipped_across_chunks(tmp_path):
    text = "# generated\n" + big(commented_row, "id,v,k\n")
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    header, *rows = csv_rows(kept)
    assert_both_read(tmp_path, "c.csv", text, {"comment": "#"}, header, rows)


def test_preamble_and_footer_lines_are_dropped_across_chunks(tmp_path):
    values = ["x", "y\nz"]
    body = big(lambda i, rnd: f'{i},"{rnd.choice(values)}"\n', "id,v\n")
    text = 'Report "draft\nexported today\n\n' + body + "Total,123\n\"unbalanced footer\n"
    lines = text.splitlines(keepends=True)
    header, *rows = csv_rows("".join(lines[3:-2]))
    assert_both_read(tmp_path, "p.csv", text, {"skip_rows": 3, "footer_rows": 2}, header, rows)


def test_every_option_at_once_in_convert(tmp_path):
    values = ["a", "b|c", "it^'s", "up^^"]
    body = big(lambda i, rnd: f"{i}|'{rnd.choice(values)}'|{rnd.randint(0, 9)}\n" + ("% note\n" if i % 5 == 0 else ""),
               "id|v|k\n", size=2 * CHUNK)
    text = "preamble\n" + body + "footer\n"
    kept = [line for line in text.splitlines(keepends=True)[1:-1] if not line.startswith("%")]
    header, *rows = csv_rows("".join(kept), delimiter="|", quotechar="'", escapechar="^", doublequote=False)
    options = {"delimiter": "|", "quote": "'", "escape": "^", "comment": "%", "skip_rows": 1, "footer_rows": 1}
    for path in plain_and_gzip(tmp_path, "all.csv", text):
        out = tmp_path / ("out-" + path.name)
        doc = run_op("convert", {**options, "output_dir": str(out)}, files_of(path))
        assert doc["errors"] == [] and doc["result"]["rows"] == len(rows)
        table = pq.read_table(doc["result"]["outputs"][0]["path"])
        assert table.column_names == header
        assert table.column("v").to_pylist() == [r[1] for r in rows]
        assert table.column("id").to_pylist() == [int(r[0]) for r in rows]


@pytest.mark.parametrize("header_rows", [0, 1, 3])
def test_header_rows(tmp_path, header_rows):
    heads = ["region,,sales,", "north,south,q1,q2", "a,b,c,d"][:header_rows]
    text = "\n".join(heads) + ("\n" if heads else "") + "".join(f"{i},{i},{i},{i}\n" for i in range(50))
    path = tmp_path / "h.csv"
    path.write_text(text)
    parsed = csv_rows(text)
    joined = [".".join(part for part in parts if part) for parts in zip(*parsed[:header_rows])] or [""] * 4
    names = [name or f"column_{i + 1}" for i, name in enumerate(joined)]
    assert_profile_of(run_op("stats", {"header_rows": header_rows}, files_of(path)), names, parsed[header_rows:])


SNIFFED = [
    ("semicolon.csv", ";", "'", True),
    ("tabs.csv", "\t", '"', True),
    ("pipes.csv", "|", '"', False),
    ("colons.csv", ":", '"', True),
]


def sniffable(delimiter, quote, header):
    rnd = random.Random(len(delimiter + quote))
    rows = [["id", "name", "score"]] if header else []
    rows += [[str(i), rnd.choice(["ann", "bo b", f"x{delimiter}y"]), f"{rnd.random():.3f}"] for i in range(400)]
    return rows


@pytest.mark.parametrize("name,delimiter,quote,header", SNIFFED)
def test_sniffing_finds_the_dialect(tmp_path, name, delimiter, quote, header):
    rows = sniffable(delimiter, quote, header)
    path = tmp_path / name
    with path.open("w", newline="") as f:
        csv.writer(f, delimiter=delimiter, quotechar=quote, lineterminator="\n").writerows(rows)
    text = path.read_text()
    parsed = csv_rows(text, delimiter=delimiter, quotechar=quote)
    assert parsed == rows
    names = rows[0] if header else [f"column_{i + 1}" for i in range(3)]
    options = {"delimiter": "auto", "quote": "auto", "header_rows": "auto"}
    doc = run_op("stats", options, files_of(path))
    assert_profile_of(doc, names, parsed[1:] if header else parsed)
    assert doc["result"]["dialects"] == [
        {"path": str(path), "delimiter": delimiter, "quote": quote, "headerRows": int(header)}]


def test_sniffing_big_gzip_file(tmp_path):
    text = big(lambda i, rnd: f"{i};'{rnd.choice(['a;b', 'c'])}';{rnd.randint(0, 9)}\n", "id;v;k\n")
    header, *rows = csv_rows(text, delimiter=";", quotechar="'")
    _, packed = plain_and_gzip(tmp_path, "s.csv", text)
    doc = run_op("stats", {"delimiter": "auto", "quote": "auto"}, files_of(packed))
    assert_profile_of(doc, header, rows)
    assert doc["result"]["dialects"][0]["delimiter"] == ";"


@pytest.mark.parametrize("options,message", [
    ({"quote": ";", "delimiter": ";"}, "stats.quote: must differ from the delimiter"),
    ({"comment": "\r"}, "stats.comment: must not be a line end"),
    ({"header": False, "header_rows": 2}, "stats.header_rows: give header_rows or header, not both"),
    ({"escape": "\\\\"}, "stats.escape: expected a single one-byte character"),
    ({"skip_rows": -1}, "stats.skip_rows: expected an integer"),
    ({"header_rows": "some"}, "stats.header_rows: expected an integer"),
])
def test_bad_dialect_options_are_refused(options, message):
    import json

    import pravah_engine as pe
    with pytest.raises(pe.UsageError, match=message.replace(".", r"\.")):
        pe.check_options("stats", json.dumps(options))


def test_bad_rows_name_lines_of_the_file_past_a_preamble(tmp_path):
    body = "".join(f"{i},x\n" if i % 1000 else f"{i}\n" for i in range(1, 300_000))
    text = "report\nof today\n" + "id,v\n" + body + "total\n"
    lines = text.splitlines(keepends=True)
    short = [n for n, line in enumerate(lines, 1) if 3 < n < len(lines) and line.count(",") == 0]
    for path in plain_and_gzip(tmp_path, "b.csv", text):
        doc = run_op("stats", {"skip_rows": 2, "footer_rows": 1, "max_bad_rows": 1000}, files_of(path))
        assert doc["result"]["badRows"]["total"] == len(short) > 200
        assert [row["line"] for row in doc["result"]["badRows"]["rows"]] == short


def test_convert_reports_the_sniffed_dialect_and_writes_its_rows(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id|name\n1|'a|b'\n2|'c'\n")
    header, *rows = csv_rows(path.read_text(), delimiter="|", quotechar="'")
    doc = run_op("convert", {"delimiter": "auto", "quote": "auto", "output_dir": str(tmp_path / "out")},
                 files_of(path))
    assert doc["result"]["dialects"] == [{"path": str(path), "delimiter": "|", "quote": "'", "headerRows": 1}]
    table = pq.read_table(doc["result"]["outputs"][0]["path"])
    assert table.column_names == header and table.column("name").to_pylist() == [r[1] for r in rows]


def test_convert_drops_preamble_and_footer_across_chunks(tmp_path):
    values = ["x", "y\nz", 'q""r']
    body = big(lambda i, rnd: f'{i},"{rnd.choice(values)}"\n', "id,v\n", size=2 * CHUNK)
    text = 'Report "draft\n' + body + '"unbalanced footer\nlast line'
    header, *rows = csv_rows("".join(text.splitlines(keepends=True)[1:-2]))
    for path in plain_and_gzip(tmp_path, "pf.csv", text):
        doc = run_op("convert", {"skip_rows": 1, "footer_rows": 2, "output_dir": str(tmp_path / "out")}, files_of(path))
        assert doc["errors"] == [] and doc["result"]["rows"] == len(rows)
        table = pq.read_table(doc["result"]["outputs"][0]["path"])
        assert table.column_names == header
        assert table.column("v").to_pylist() == [r[1] for r in rows]
