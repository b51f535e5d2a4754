"""stats: checked against the csv/statistics modules and DuckDB."""

import csv
import io
import math
import random
import statistics

import pytest

from unit.engine.engine_helpers import files_of, pe, run_op


def col(doc, name):
    return next(c for c in doc["result"]["columns"] if c["name"] == name)


def mixed_csv(path, rows=3000, seed=7):
    rnd = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "amount", "city", "ok", "day", "note"])
    for i in range(rows):
        amount = "" if rnd.random() < 0.05 else f"{rnd.uniform(-500, 5000):.4f}"
        city = rnd.choice(["Pune", "Delhi", "Chennai", "Kolkata", ""])
        ok = rnd.choice(["true", "false", "TRUE"])
        day = f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        note = rnd.choice(["plain", "with, comma", 'say "hi"', "multi\nline", ""])
        w.writerow([i * 3 - 100, amount, city, ok, day, note])
    path.write_text(out.getvalue())
    return path


def reference(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, data = rows[0], rows[1:]
    return header, data


def test_stats_against_python_reference(tmp_path):
    path = mixed_csv(tmp_path / "mixed.csv")
    doc = run_op("stats", {"quantiles": [0.5, 0.9], "top": 3}, files_of(path))
    header, data = reference(path)
    assert doc["errors"] == []
    assert doc["result"]["rows"] == len(data)
    assert [c["name"] for c in doc["result"]["columns"]] == header
    types = {c["name"]: c["type"] for c in doc["result"]["columns"]}
    assert types == {"id": "int", "amount": "float", "city": "string", "ok": "bool", "day": "date", "note": "string"}
    for j, name in enumerate(header):
        values = [r[j] for r in data if r[j] != ""]
        c = col(doc, name)
        assert c["count"] == len(values)
        assert c["nulls"] == len(data) - len(values)
        exact = len(set(values))
        # Exact up to 2048 distinct values, HyperLogLog (~1% error) above.
        assert c["distinct"] == exact if exact <= 2048 else abs(c["distinct"] - exact) <= 0.02 * exact
        if types[name] in ("int", "float"):
            nums = [float(v) for v in values]
            assert c["min"] == pytest.approx(min(nums)) and c["max"] == pytest.approx(max(nums))
            assert c["mean"] == pytest.approx(statistics.fmean(nums), rel=1e-9)
            assert c["stddev"] == pytest.approx(statistics.stdev(nums), rel=1e-9)
            qs = statistics.quantiles(nums, n=100, method="inclusive")
            assert c["quantiles"]["0.5"] == pytest.approx(qs[49], rel=0.03)
            assert c["quantiles"]["0.9"] == pytest.approx(qs[89], rel=0.03)
        else:
            assert c["min"] == min(values) and c["max"] == max(values)
            assert c["mean"] is None and c["stddev"] is None and c["quantiles"] is None
    top_city = col(doc, "city")["top"]
    counts = {}
    for r in data:
        if r[2]:
            counts[r[2]] = counts.get(r[2], 0) + 1
    want = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(t["value"], t["count"]) for t in top_city] == want
    assert isinstance(col(doc, "id")["min"], int)


def test_stats_against_duckdb(tmp_path):
    import duckdb
    path = mixed_csv(tmp_path / "mixed.csv", rows=5000, seed=11)
    doc = run_op("stats", {}, files_of(path), threads=2)
    con = duckdb.connect()
    rel = f"read_csv('{path}', header=true, quote='\"', escape='\"', all_varchar=false)"
    for name, sql_t in [("id", "BIGINT"), ("amount", "DOUBLE")]:
        n, mn, mx, mean, sd, nd = con.execute(
            f"select count({name}), min({name}), max({name}), avg({name}), stddev_samp({name}), count(distinct {name}) from {rel}"
        ).fetchone()
        c = col(doc, name)
        assert c["count"] == n
        assert c["min"] == pytest.approx(mn) and c["max"] == pytest.approx(mx)
        assert c["mean"] == pytest.approx(mean, rel=1e-9)
        assert c["stddev"] == pytest.approx(sd, rel=1e-9)
        assert abs(c["distinct"] - nd) <= max(2, 0.02 * nd)
    total = con.execute(f"select count(*) from {rel}").fetchone()[0]
    assert doc["result"]["rows"] == total
    kinds = dict(con.execute(f"select column_name, column_type from (describe select * from {rel})").fetchall())
    mapping = {"BIGINT": "int", "DOUBLE": "float", "BOOLEAN": "bool", "DATE": "date", "VARCHAR": "string"}
    for c in doc["result"]["columns"]:
        assert mapping[kinds[c["name"]]] == c["type"], c["name"]


def test_ugly_inputs_and_errors(tmp_path):
    good = tmp_path / "a_good.csv"
    good.write_bytes(b'\xef\xbb\xbfk,v\r\n"multi\r\nline",1\r\n"say ""hi""",2\r\n,3\r\n')
    ragged = tmp_path / "b_ragged.csv"
    ragged.write_text("k,v\nx,1\ny\nz,3\n")
    badutf = tmp_path / "c_utf8.csv"
    badutf.write_bytes(b"k,v\nx,1\n\xff\xfe,2\n")
    unterminated = tmp_path / "d_quote.csv"
    unterminated.write_text('k,v\nx,1\n"never closed,2\ny,3\n')
    empty = tmp_path / "e_empty.csv"
    empty.write_text("")
    doc = run_op("stats", {"bad_rows": "fail"}, files_of(good, ragged, badutf, unterminated, empty))
    errs = {e["path"].rsplit("/", 1)[1]: e for e in doc["errors"]}
    assert set(errs) == {"b_ragged.csv", "c_utf8.csv", "d_quote.csv"}
    assert errs["b_ragged.csv"]["line"] == 3 and "ragged" in errs["b_ragged.csv"]["reason"]
    assert errs["c_utf8.csv"]["line"] == 3 and "UTF-8" in errs["c_utf8.csv"]["reason"]
    assert errs["d_quote.csv"]["line"] == 3 and "unterminated" in errs["d_quote.csv"]["reason"]
    assert [e["path"] for e in doc["errors"]] == sorted(e["path"] for e in doc["errors"])
    assert doc["files"] == 5
    assert doc["result"]["rows"] == 3
    k = col(doc, "k")
    assert k["count"] == 2 and k["nulls"] == 1
    assert k["min"] == "multi\r\nline" and k["max"] == 'say "hi"'
    assert col(doc, "v")["max"] == 3


def test_no_header_and_tsv(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("1\ta b\t2.5\n2\tc\t\n")
    doc = run_op("stats", {"delimiter": "\t", "header": False}, files_of(tsv))
    assert [c["name"] for c in doc["result"]["columns"]] == ["column_1", "column_2", "column_3"]
    assert doc["result"]["rows"] == 2
    assert col(doc, "column_1")["type"] == "int"
    assert col(doc, "column_2")["max"] == "c"
    assert col(doc, "column_3")["nulls"] == 1


def test_columns_merge_by_name_in_path_order(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x,y\n1,2\n")
    b = tmp_path / "b.csv"
    b.write_text("z,x\n5,10\n")
    doc = run_op("stats", {}, files_of(b, a))
    assert [c["name"] for c in doc["result"]["columns"]] == ["x", "y", "z"]
    assert col(doc, "x")["count"] == 2 and col(doc, "x")["max"] == 10


def test_split_big_file_matches_small_files(tmp_path):
    """A file big enough to be split across threads gives the same numbers as pieces of it."""
    row = '7,1.5,"a\nb",x\n'
    header = "i,f,s,t\n"
    big = tmp_path / "big.csv"
    n = (20 << 20) // len(row)
    big.write_text(header + row * n)
    doc = run_op("stats", {}, files_of(big), threads=2)
    assert doc["errors"] == []
    assert doc["result"]["rows"] == n
    s = col(doc, "s")
    assert s["count"] == n and s["distinct"] == 1 and s["min"] == "a\nb"
    assert col(doc, "f")["stddev"] == 0.0


def test_merge_and_finalize_roundtrip(tmp_path):
    a = mixed_csv(tmp_path / "a.csv", rows=500, seed=1)
    b = mixed_csv(tmp_path / "b.csv", rows=700, seed=2)
    pa = pe.start("stats", "{}", files_of(a), 1).wait(30)
    pb = pe.start("stats", "{}", files_of(b), 1).wait(30)
    import json

    def merged(*partials):
        aggregate = pe.Aggregate("stats")
        for partial in partials:
            aggregate.add(partial)
        return json.loads(aggregate.finalize())

    ab, ba = merged(pa, pb), merged(pb, pa)
    both = run_op("stats", {}, files_of(a, b))
    assert ab["result"]["rows"] == 1200 == both["result"]["rows"]
    for x, y, z in zip(ab["result"]["columns"], ba["result"]["columns"], both["result"]["columns"]):
        for key in ("name", "type", "count", "nulls", "min", "max", "distinct", "top", "quantiles"):
            assert x[key] == y[key] == z[key], key
        if x["mean"] is not None:
            assert math.isclose(x["mean"], z["mean"], rel_tol=1e-9)
            assert math.isclose(x["stddev"], y["stddev"], rel_tol=1e-9)
