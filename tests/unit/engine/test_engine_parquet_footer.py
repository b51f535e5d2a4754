"""Parquet `stats` from row-group statistics: columns the footer settles (all null, or one value
throughout) are not read; expected values come from the data through pyarrow and Python."""

import datetime
import json
import os
import statistics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pravah_engine as pe


def stats_and_bytes_read(path):
    """The stats result of one file and the bytes the run counted as read."""
    run = pe.start("stats", json.dumps({"quantiles": [0.5], "top": 3}), [(str(path), os.path.getsize(path))], 2)
    partial = run.wait(60)
    assert partial is not None
    doc = json.loads(pe.finalize("stats", partial))
    assert doc["errors"] == []
    return doc["result"], run.progress()["bytes_done"]


def leaf_values(table, name):
    """A leaf column's values, `a.b` inside struct `a`; a field of a null struct is null."""
    head, *rest = name.split(".")
    values = table.column(head).to_pylist()
    for part in rest:
        values = [None if v is None else v[part] for v in values]
    return values


def text(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value).lower() if isinstance(value, bool) else str(value)


def assert_profile(result, table):
    """Every column's count, nulls, min, max, distinct, top and (numeric) mean against the data."""
    assert result["rows"] == table.num_rows
    for c in result["columns"]:
        values = leaf_values(table, c["name"])
        present = [v for v in values if v is not None and v != ""]
        assert (c["count"], c["nulls"]) == (len(present), len(values) - len(present)), c["name"]
        assert c["distinct"] == pytest.approx(len(set(present)), rel=0.02), c["name"]
        if not present:
            assert (c["min"], c["max"], c["top"]) == (None, None, []), c["name"]
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            assert (c["min"], c["max"]) == (min(present), max(present)), c["name"]
            assert c["mean"] == pytest.approx(statistics.fmean(present)), c["name"]
        else:
            assert (c["min"], c["max"]) == (min(map(text, present)), max(map(text, present))), c["name"]
        counts = sorted(((present.count(v), text(v)) for v in set(present)), key=lambda x: (-x[0], x[1]))
        assert [(t["count"], t["value"]) for t in c["top"]] == counts[:3] or len(set(present)) > 3, c["name"]


def footer_settled(result):
    return [c["name"] for c in result["columns"] if c.get("fromFooter")]


def chunk_bytes(path, names):
    """Compressed bytes of the column chunks of `names` in every row group, from pyarrow's metadata."""
    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(g).column(i).total_compressed_size
               for g in range(meta.num_row_groups) for i in range(meta.num_columns)
               if meta.row_group(g).column(i).path_in_schema in names)


N = 9000


def settled_table():
    """Columns the footer settles: constants with and without nulls, all-null ones, nested ones."""
    return pa.table({
        "const_int": pa.array([None if i % 7 == 0 else 42 for i in range(N)], pa.int64()),
        "const_text": pa.array(["Pune"] * N),
        "const_day": pa.array([datetime.date(2024, 2, 29)] * N),
        "flag": pa.array([True] * N),
        "empty": pa.array([None] * N, pa.string()),
        "user": pa.array([None if i % 5 == 0 else {"name": "a", "age": None} for i in range(N)],
                         pa.struct([("name", pa.string()), ("age", pa.int32())])),
    })


def test_a_file_of_settled_columns_reads_no_data(tmp_path):
    table = settled_table()
    path = tmp_path / "settled.parquet"
    pq.write_table(table, path, row_group_size=2000)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    result, bytes_read = stats_and_bytes_read(path)
    names = ["const_int", "const_text", "const_day", "flag", "empty", "user.name", "user.age"]
    assert [c["name"] for c in result["columns"]] == names
    assert footer_settled(result) == names and bytes_read == 0
    assert_profile(result, table)
    const_int = next(c for c in result["columns"] if c["name"] == "const_int")
    assert (const_int["quantiles"], const_int["stddev"]) == ({"0.5": 42.0}, 0.0)


def test_only_the_columns_needing_data_are_read(tmp_path):
    table = settled_table().append_column("id", pa.array(range(N), pa.int64())).append_column(
        "amount", pa.array([i * 0.5 for i in range(N)])).append_column(
        "same_float", pa.array([1.5] * N))
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path, row_group_size=2000)
    result, bytes_read = stats_and_bytes_read(path)
    # Float bounds leave NaN out, so even a constant float column is read.
    read = ["id", "amount", "same_float"]
    assert footer_settled(result) == [c["name"] for c in result["columns"] if c["name"] not in read]
    assert bytes_read == chunk_bytes(path, read) and 0 < bytes_read < chunk_bytes(path, table.column_names)
    assert_profile(result, table)


def test_without_statistics_every_column_is_read(tmp_path):
    table = settled_table()
    path = tmp_path / "bare.parquet"
    pq.write_table(table, path, row_group_size=2000, write_statistics=False)
    result, bytes_read = stats_and_bytes_read(path)
    assert footer_settled(result) == []
    assert bytes_read == chunk_bytes(path, ["const_int", "const_text", "const_day", "flag", "empty", "user.name",
                                            "user.age"])
    assert_profile(result, table)


def test_a_value_changing_between_row_groups_is_read(tmp_path):
    table = pa.table({"city": ["Pune"] * 3000 + ["Goa"] * 3000, "n": [5] * 2999 + [6] + [5] * 3000})
    path = tmp_path / "groups.parquet"
    pq.write_table(table, path, row_group_size=3000)
    result, bytes_read = stats_and_bytes_read(path)
    assert footer_settled(result) == [] and bytes_read == chunk_bytes(path, ["city", "n"])
    assert_profile(result, table)


def test_long_strings_are_settled_only_where_their_bounds_are_exact(tmp_path):
    long = "x" * 5000
    table = pa.table({"long": [long] * N, "varied": [long + str(i % 3) for i in range(N)]})
    path = tmp_path / "long.parquet"
    pq.write_table(table, path, row_group_size=2000)
    result, _ = stats_and_bytes_read(path)
    assert "varied" not in footer_settled(result)
    assert_profile(result, table)
