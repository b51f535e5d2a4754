"""Text encodings: UTF-16 by its byte-order mark, Latin-1 / Windows-1252 when named; against Python's codecs + csv."""

import csv
import gzip
import io

import pytest

from unit.engine.engine_helpers import files_of, run_op

ROWS = [["name", "city", "amount"], ["Zoë", "São Paulo", "12.5"], ["Jürgen", "Köln", "7"], ["Ana", "", "3.25"],
        ["Œuvre “quoted”", "Paris, FR", "1"]]


def csv_text(rows):
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def expected(data: bytes, encoding: str):
    header, *rows = list(csv.reader(io.StringIO(data.decode(encoding), newline="")))
    return header, rows


def check(doc, header, rows):
    assert doc["errors"] == []
    assert [c["name"] for c in doc["result"]["columns"]] == header
    assert doc["result"]["rows"] == len(rows)
    for j, column in enumerate(doc["result"]["columns"]):
        values = [r[j] for r in rows if r[j]]
        assert (column["count"], column["min"] if column["type"] == "string" else None) == (
            len(values), min(values) if column["type"] == "string" else None)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
@pytest.mark.parametrize("compressed", [False, True])
def test_utf16_with_a_byte_order_mark_is_read_as_text(tmp_path, encoding, compressed):
    data = csv_text(ROWS).encode(encoding) if encoding == "utf-16" else b"\xfe\xff" + csv_text(ROWS).encode(encoding)
    path = tmp_path / ("people.csv.gz" if compressed else "people.csv")
    path.write_bytes(gzip.compress(data) if compressed else data)
    check(run_op("stats", {}, files_of(path)), *expected(data, "utf-16"))


@pytest.mark.parametrize("label", ["latin-1", "windows-1252"])
def test_a_named_single_byte_encoding_is_decoded_not_refused(tmp_path, label):
    rows = ROWS[:4] if label == "latin-1" else ROWS  # curly quotes and Œ exist in windows-1252 only
    data = csv_text(rows).encode("cp1252")
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    refused = run_op("stats", {}, files_of(path))
    assert [e["reason"] for e in refused["errors"]] == ["invalid UTF-8"]
    check(run_op("stats", {"encoding": label}, files_of(path)), *expected(data, "cp1252"))


def test_convert_writes_decoded_text(tmp_path):
    import pyarrow.parquet as pq
    data = csv_text(ROWS).encode("cp1252")
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    doc = run_op("convert", {"output_dir": str(tmp_path / "out"), "encoding": "windows-1252"}, files_of(path))
    header, rows = expected(data, "cp1252")
    assert pq.read_table(doc["result"]["outputs"][0]["path"]).column("city").to_pylist() == [r[1] or None for r in rows]


def test_an_unknown_encoding_is_refused_naming_the_option():
    import pravah_engine as pe
    with pytest.raises(pe.UsageError, match=r"stats.encoding: unknown 'ebcdic'"):
        pe.check_options("stats", '{"encoding": "ebcdic"}')
