"""Shared helpers for the engine extension tests."""

import csv
import io
import json


import pravah_engine as pe


def run_op(op, options, files, threads=2):
    """Runs an op to completion and returns the finalized result document."""
    run = pe.start(op, json.dumps(options), files, threads)
    partial = run.wait(60)
    assert partial is not None, "run did not finish in time"
    return json.loads(pe.finalize(op, partial))


def files_of(*paths):
    return [(str(p), p.stat().st_size) for p in sorted(paths, key=lambda p: str(p).encode())]


def csv_rows(text, **dialect):
    """The non-blank records of `text` as Python's csv module reads them in `dialect`."""
    return [fields for fields in csv.reader(io.StringIO(text, newline=""), **dialect) if fields]


def assert_profile_of(doc, header, rows):
    """The stats result profiles exactly these rows, named by `header`: row count, each column's
    name, non-null count and nulls, and min and max of the integer columns."""
    result = doc["result"]
    assert doc["errors"] == []
    assert result["rows"] == len(rows)
    assert [c["name"] for c in result["columns"]] == header
    for index, column in enumerate(result["columns"]):
        values = [row[index] for row in rows]
        present = [v for v in values if v != ""]
        assert (column["count"], column["nulls"]) == (len(present), len(values) - len(present)), column["name"]
        if present and all(v.lstrip("-").isdigit() for v in present):
            assert (column["min"], column["max"]) == (min(map(int, present)), max(map(int, present)))
