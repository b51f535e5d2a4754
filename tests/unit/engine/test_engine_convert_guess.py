"""convert reads a plain CSV of several 8 MiB chunks once, with the schema of its first chunk,
and starts over with the whole file's schema when a later record disproves it. Whichever way,
the output is what the whole file says, checked against Python's csv module."""

import datetime
import json

import pravah_engine as pe
import pyarrow.parquet as pq
import pytest

from unit.engine.engine_helpers import csv_rows, files_of

CHUNK = 8 << 20
HEADER = ["id", "qty", "day", "note", "later"]
ROWS = 620_000


def rows_of(n):
    """Ints, ints, dates and text; `later` is empty everywhere, so its kind is unknown."""
    return [[str(i), str(i % 1000), f"20{i % 30:02d}-0{1 + i % 9}-{1 + i % 28:02d}", f"n{i * 7919 % 100_003}", ""]
            for i in range(n)]


def convert(tmp_path, data):
    """One thread: its window of two chunks is written before the third is read."""
    src = tmp_path / "many.csv"
    src.write_bytes(data)
    assert src.stat().st_size > 2 * CHUNK
    run = pe.start("convert", json.dumps({"output_dir": str(tmp_path / "out")}), files_of(src), 1)
    partial = run.wait(120)
    assert partial is not None, "run did not finish in time"
    return src, json.loads(pe.finalize("convert", partial)), run.progress()


def typed(kind, value):
    if value == "":
        return None
    return {"int64": int, "double": float, "date32[day]": datetime.date.fromisoformat, "string": str}[kind](value)


# A row in the last chunk changes one column; the kinds the whole file gives each column.
DISPROOFS = {
    "nothing": (None, None, ["int64", "int64", "date32[day]", "string", "string"]),
    "a float among ints": ("qty", "2.5", ["int64", "double", "date32[day]", "string", "string"]),
    "a value in a column empty so far": ("later", "7", ["int64", "int64", "date32[day]", "string", "int64"]),
    "text among dates": ("day", "soon", ["int64", "int64", "string", "string", "string"]),
}


@pytest.mark.parametrize("case", list(DISPROOFS))
def test_later_records_decide_the_schema(tmp_path, case):
    column, value, kinds = DISPROOFS[case]
    rows = rows_of(ROWS)
    if column:
        rows[ROWS - 10][HEADER.index(column)] = value
    text = ",".join(HEADER) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    src, doc, progress = convert(tmp_path, text.encode())
    assert doc["errors"] == [] and doc["result"]["rows"] == ROWS
    table = pq.read_table(doc["result"]["outputs"][0]["path"])
    assert [str(t) for t in table.schema.types] == kinds
    expected = csv_rows(text)[1:]
    for index, (name, kind) in enumerate(zip(HEADER, kinds)):
        assert table.column(name).to_pylist() == [typed(kind, r[index]) for r in expected], name
    # Bytes read by a write given up are not counted again.
    assert progress["bytes_done"] == src.stat().st_size


def test_a_row_of_another_width_late_is_reported_with_its_line(tmp_path):
    rows = rows_of(ROWS)
    rows[ROWS - 10].append("extra")
    text = ",".join(HEADER) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    src, doc, _ = convert(tmp_path, text.encode())
    records = csv_rows(text)
    wide = [line for line, r in enumerate(records, start=1) if len(r) != len(HEADER)]
    assert doc["errors"] == [] and doc["result"]["rows"] == ROWS - len(wide)
    assert [(r["path"], r["line"]) for r in doc["result"]["badRows"]["rows"]] == [(str(src), line) for line in wide]
    table = pq.read_table(doc["result"]["outputs"][0]["path"])
    assert table.column("id").to_pylist() == [int(r[0]) for r in records[1:] if len(r) == len(HEADER)]


def test_invalid_utf8_late_fails_the_file_with_its_line_and_writes_nothing(tmp_path):
    lines = [(",".join(HEADER) + "\n").encode()] + [(",".join(r) + "\n").encode() for r in rows_of(ROWS)]
    lines[ROWS - 10] = lines[ROWS - 10].replace(b",n", b",\xff", 1)
    src, doc, _ = convert(tmp_path, b"".join(lines))
    assert [(e["path"], e["line"]) for e in doc["errors"]] == [(str(src), ROWS - 9)]
    assert doc["result"]["outputs"] == [] and not list((tmp_path / "out").rglob("*.parquet*"))
