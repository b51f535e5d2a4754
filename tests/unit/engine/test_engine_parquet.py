"""Parquet inputs: stats per column (nested by path) and count of rows, against pyarrow and DuckDB."""

import datetime
import gzip
import random
import statistics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unit.engine.engine_helpers import files_of, run_op


def table(n, seed):
    rnd = random.Random(seed)
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "amount": pa.array([None if rnd.random() < 0.1 else round(rnd.uniform(-10, 90), 2) for _ in range(n)]),
        "city": pa.array([rnd.choice(["Pune", "Delhi", None, "Goa"]) for _ in range(n)]),
        "day": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=rnd.randint(0, 365)) for _ in range(n)]),
        "user": pa.array([None if i % 17 == 0 else {"name": rnd.choice(["a", "b"]), "age": rnd.choice([None, 30, 41])}
                          for i in range(n)], pa.struct([("name", pa.string()), ("age", pa.int32())])),
        "tags": pa.array([None if i % 11 == 0 else ["t"] * rnd.randint(0, 3) for i in range(n)], pa.list_(pa.string())),
    })


def column(doc, name):
    return next(c for c in doc["result"]["columns"] if c["name"] == name)


@pytest.fixture
def parquet_file(tmp_path):
    data = table(20_000, seed=4)
    path = tmp_path / "data.parquet"
    pq.write_table(data, path, row_group_size=3000)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    return path, data.to_pylist()


def test_stats_per_column_with_nested_paths(parquet_file):
    path, rows = parquet_file
    doc = run_op("stats", {"quantiles": [0.5], "top": 2}, files_of(path))
    assert doc["errors"] == [] and doc["result"]["rows"] == len(rows)
    assert [c["name"] for c in doc["result"]["columns"]] == ["id", "amount", "city", "day", "user.name", "user.age",
                                                           "tags"]

    def values(get):
        return [v for v in map(get, rows) if v is not None]

    getters = {
        "id": lambda r: r["id"], "amount": lambda r: r["amount"], "city": lambda r: r["city"],
        "day": lambda r: r["day"], "user.name": lambda r: r["user"] and r["user"]["name"],
        "user.age": lambda r: r["user"] and r["user"]["age"],
        "tags": lambda r: None if r["tags"] is None else len(r["tags"]),
    }
    for name, get in getters.items():
        present = values(get)
        c = column(doc, name)
        assert (c["count"], c["nulls"]) == (len(present), len(rows) - len(present)), name
    amounts = values(getters["amount"])
    amount = column(doc, "amount")
    assert amount["type"] == "float" and (amount["min"], amount["max"]) == (min(amounts), max(amounts))
    assert amount["mean"] == pytest.approx(statistics.fmean(amounts), rel=1e-9)
    day = column(doc, "day")
    days = values(getters["day"])
    assert (day["type"], day["min"], day["max"]) == ("date", min(days).isoformat(), max(days).isoformat())
    assert column(doc, "id")["type"] == "int" and column(doc, "user.age")["type"] == "int"
    tags = values(getters["tags"])
    assert (column(doc, "tags")["min"], column(doc, "tags")["max"]) == (min(tags), max(tags))


def test_duckdb_summarize_agrees(parquet_file):
    import duckdb
    path, _ = parquet_file
    doc = run_op("stats", {}, files_of(path))
    summary = {row[0]: row for row in duckdb.connect().execute(f"summarize select * from '{path}'").fetchall()}
    for name in ("id", "amount"):
        _, _, lo, hi, _, avg, std, *_rest = summary[name]
        c = column(doc, name)
        assert (c["min"], c["max"]) == (pytest.approx(float(lo)), pytest.approx(float(hi)))
        assert c["mean"] == pytest.approx(float(avg), rel=1e-9) and c["stddev"] == pytest.approx(float(std), rel=1e-6)


def test_count_gives_rows_from_the_footer(tmp_path, parquet_file):
    path, rows = parquet_file
    renamed = tmp_path / "no-suffix"
    renamed.write_bytes(path.read_bytes())
    files = run_op("count", {}, files_of(path, renamed))["result"]["files"]
    assert [(f["rows"], f["bytes"]) for f in files] == [(len(rows), path.stat().st_size)] * 2


def test_parquet_and_csv_mix_by_column_name(tmp_path, parquet_file):
    path, rows = parquet_file
    more = tmp_path / "more.csv"
    more.write_text("id,extra\n100000,x\n")
    doc = run_op("stats", {}, files_of(path, more))
    assert doc["result"]["rows"] == len(rows) + 1
    assert column(doc, "id")["formats"] == ["csv", "parquet"] and column(doc, "id")["max"] == 100000
    assert column(doc, "amount")["formats"] == ["parquet"]


def test_a_broken_or_gzipped_parquet_file_is_an_error_record(tmp_path, parquet_file):
    path, rows = parquet_file
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(path.read_bytes()[:5000])
    zipped = tmp_path / "zipped.parquet.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    doc = run_op("stats", {}, files_of(path, cut, zipped))
    assert [e["path"] for e in doc["errors"]] == [str(cut), str(zipped)]
    assert doc["errors"][0]["reason"].startswith("parquet: ")
    assert "Parquet compresses its own pages" in doc["errors"][1]["reason"]
    assert doc["result"]["rows"] == len(rows)
