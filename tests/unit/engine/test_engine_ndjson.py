"""NDJSON stats and per-file formats, against Python's json/statistics and DuckDB."""

import gzip
import json
import random
import statistics
from collections import Counter

import pytest

from unit.engine.engine_helpers import files_of, run_op


def flatten(obj, prefix=""):
    """Field path -> value as the docs define it: nested objects joined with dots, arrays by length."""
    out = {}
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = len(value) if isinstance(value, list) else value
    return out


def events(n, seed):
    rnd = random.Random(seed)
    for i in range(n):
        event = {"id": i, "user": {"name": rnd.choice(["asha", "ravi", "meena"]), "age": rnd.randint(18, 80)},
                 "tags": ["x"] * rnd.randint(0, 4), "amount": round(rnd.uniform(-50, 500), 3)}
        if rnd.random() < 0.1:
            del event["amount"]
        if rnd.random() < 0.05:
            event["user"]["age"] = None
        if i % 7 == 0:
            event["code"] = rnd.choice([404, "E_TIMEOUT", True])
        yield event


def column(doc, name):
    return next(c for c in doc["result"]["columns"] if c["name"] == name)


def write_lines(path, objects):
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


def test_fields_are_flattened_and_profiled_like_csv_columns(tmp_path):
    rows = list(events(3000, seed=1))
    path = write_lines(tmp_path / "events.ndjson", rows)
    doc = run_op("stats", {"quantiles": [0.5], "top": 3}, files_of(path))
    flat = [flatten(r) for r in rows]
    names = []
    for f in flat:
        names += [k for k in f if k not in names]
    assert doc["errors"] == [] and doc["result"]["badRows"] == {"total": 0, "rows": []}
    assert doc["result"]["rows"] == len(rows)
    assert [c["name"] for c in doc["result"]["columns"]] == names
    for name in names:
        present = [f[name] for f in flat if f.get(name) is not None]
        c = column(doc, name)
        assert (c["count"], c["nulls"]) == (len(present), len(rows) - len(present)), name
    amounts = [f["amount"] for f in flat if "amount" in f]
    amount = column(doc, "amount")
    assert amount["type"] == "float"
    assert amount["mean"] == pytest.approx(statistics.fmean(amounts), rel=1e-9)
    assert (amount["min"], amount["max"]) == (min(amounts), max(amounts))
    tags = [f["tags"] for f in flat]
    assert (column(doc, "tags")["min"], column(doc, "tags")["max"]) == (min(tags), max(tags))
    assert column(doc, "tags")["jsonTypes"] == {"array": len(rows)}
    codes = [f["code"] for f in flat if "code" in f]
    kinds = {"boolean": sum(isinstance(c, bool) for c in codes), "string": sum(isinstance(c, str) for c in codes),
             "number": sum(isinstance(c, int) and not isinstance(c, bool) for c in codes)}
    code = column(doc, "code")
    assert code["type"] == "string" and code["jsonTypes"] == {k: v for k, v in kinds.items() if v}


def test_duckdb_agrees_on_nested_fields(tmp_path):
    import duckdb
    path = write_lines(tmp_path / "events.jsonl", events(5000, seed=2))
    doc = run_op("stats", {}, files_of(path))
    n, mean, sd, lo, hi = duckdb.connect().execute(
        f"select count(user.age), avg(user.age), stddev_samp(user.age), min(user.age), max(user.age) "
        f"from read_json('{path}', format='newline_delimited')").fetchone()
    age = column(doc, "user.age")
    assert (age["count"], age["min"], age["max"]) == (n, lo, hi)
    assert age["mean"] == pytest.approx(mean, rel=1e-9) and age["stddev"] == pytest.approx(sd, rel=1e-9)


def test_blank_lines_bom_bad_lines_and_a_10_mb_line(tmp_path):
    long_text = "y" * (10 << 20)
    lines = ['{"a": 1, "s": "one"}', "", '{"a": 2, "s": "%s"}' % long_text, "not json", "  ",
             "[1, 2]", '{"a": 3}', '{"a": 4, "s": "two"']
    path = tmp_path / "odd.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    doc = run_op("stats", {}, files_of(path))
    objects = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    bad_lines = [i for i, line in enumerate(lines, 1) if line.strip() and not isinstance(_loads(line), dict)]
    assert doc["errors"] == []
    assert doc["result"]["rows"] == len(objects)
    assert [(r["path"], r["line"]) for r in doc["result"]["badRows"]["rows"]] == [(str(path), n) for n in bad_lines]
    assert doc["result"]["badRows"]["total"] == len(bad_lines)
    reasons = [r["reason"] for r in doc["result"]["badRows"]["rows"]]
    assert reasons[1] == "not a JSON object" and reasons[0].startswith("malformed JSON")
    s = column(doc, "s")
    assert (s["count"], s["nulls"], s["max"]) == (2, len(objects) - 2, long_text)


def test_escapes_field_order_floats_and_trailing_text(tmp_path):
    rnd = random.Random(3)
    floats = [2.0, -0.5, 1e16, 1.5e-7, 123456.789, 3.0e5, -7.25e-3]
    texts = ['tab\tquote"', "caf\u00e9 \\ slash", "plain", "line\nbreak"]
    rows = []
    for i in range(400):
        fields = [("x", rnd.choice(floats)), ("s", rnd.choice(texts)), ("n", {"k": i})]
        rnd.shuffle(fields)
        rows.append(dict(fields))
    lines = [json.dumps(r) for r in rows] + ['{"x": 1.0, "s": "z"} {"s": "zz"}']
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    doc = run_op("stats", {}, files_of(path))
    assert doc["result"]["rows"] == len(rows)
    (bad,) = doc["result"]["badRows"]["rows"]
    assert bad["line"] == len(lines) and bad["reason"].startswith("malformed JSON")
    names = []
    for r in rows:
        names += [k if k != "n" else "n.k" for k in r if (k if k != "n" else "n.k") not in names]
    assert [c["name"] for c in doc["result"]["columns"]] == names
    xs, ss = [r["x"] for r in rows], [r["s"] for r in rows]
    x, s = column(doc, "x"), column(doc, "s")
    assert (x["count"], x["min"], x["max"]) == (len(xs), min(xs), max(xs))
    assert x["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-9)
    assert (s["count"], s["min"], s["max"]) == (len(ss), min(ss), max(ss))
    assert column(doc, "n.k")["max"] == len(rows) - 1


def test_raw_utf8_strings_a_line_of_invalid_utf8_and_crlf_endings(tmp_path):
    rnd = random.Random(5)
    texts = ["caf\u00e9", "na\u00efve", "\u6771\u4eac", "emoji \U0001f642", "plain", "\u00e9t\u00e9 \\ \"q\""]
    rows = [{"s": rnd.choice(texts), "i": i} for i in range(300)]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    lines.insert(120, b'{"s": "caf\xe9", "i": -1}')  # a Latin-1 byte: not UTF-8
    path = tmp_path / "utf8.ndjson"
    path.write_bytes(b"\r\n".join(lines[:200]) + b"\r\n" + b"\n".join(lines[200:]))  # no final newline
    doc = run_op("stats", {"top": 3}, files_of(path))
    good, bad_lines = [], []
    for n, line in enumerate(lines, 1):
        try:
            good.append(json.loads(line))
        except ValueError:
            bad_lines.append(n)
    assert bad_lines == [121]
    assert doc["result"]["rows"] == len(good) == len(rows)
    assert [(r["line"], r["reason"].startswith("malformed JSON")) for r in doc["result"]["badRows"]["rows"]] == [(121, True)]
    ss = [r["s"] for r in good]
    s = column(doc, "s")
    assert (s["count"], s["min"], s["max"]) == (len(ss), min(ss), max(ss))
    counts = sorted(Counter(ss).items(), key=lambda kv: (-kv[1], kv[0].encode()))[:3]
    assert [(t["value"], t["count"]) for t in s["top"]] == counts
    assert column(doc, "i")["max"] == len(rows) - 1


def _loads(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_a_file_with_too_many_bad_lines_is_an_error_record(tmp_path):
    bad = tmp_path / "a_bad.ndjson"
    bad.write_text('{"a": 1}\n' + "oops\n" * 101)
    good = write_lines(tmp_path / "b_good.ndjson", [{"a": 5}])
    doc = run_op("stats", {}, files_of(bad, good))
    (error,) = doc["errors"]
    assert (error["path"], error["line"]) == (str(bad), 102)
    assert error["reason"].startswith("more than 100 bad lines")
    assert doc["result"]["rows"] == 1 and column(doc, "a")["max"] == 5


@pytest.mark.parametrize("compressed", [False, True])
def test_a_big_file_in_chunks_or_blocks(tmp_path, compressed):
    rows = list(events(120_000, seed=3))
    text = "".join(json.dumps(r) + "\n" for r in rows)
    text = text.replace(json.dumps(rows[60_000]) + "\n", "{broken\n")
    if compressed:
        path = tmp_path / "big.ndjson.gz"
        path.write_bytes(gzip.compress(text.encode(), compresslevel=1))
    else:
        path = tmp_path / "big.ndjson"
        path.write_text(text)
    assert len(text) > 8 << 20
    doc = run_op("stats", {"top": 0, "quantiles": []}, files_of(path))
    kept = rows[:60_000] + rows[60_001:]
    assert doc["result"]["rows"] == len(kept)
    assert [r["line"] for r in doc["result"]["badRows"]["rows"]] == [60_001]
    ids = column(doc, "id")
    assert (ids["count"], ids["min"], ids["max"]) == (len(kept), 0, len(rows) - 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_bad_lines_numbered_across_many_chunks(tmp_path, threads):
    """Consecutive chunks share an accumulator: each bad line must still get
    its own line number, wherever the chunks between it and the start went."""
    rnd = random.Random(11)
    lines, bad_lines, values, size = [], [], [], 0
    while size < 5 * (8 << 20):
        if rnd.random() < 0.0002:
            lines.append("{not json\n")
            bad_lines.append(len(lines))
        else:
            values.append(rnd.randint(-1000, 1000))
            lines.append(json.dumps({"v": values[-1], "pad": "p" * rnd.randint(200, 1200)}) + "\n")
        size += len(lines[-1])
    path = tmp_path / "long.ndjson"
    path.write_text("".join(lines))
    doc = run_op("stats", {"top": 0, "quantiles": []}, files_of(path), threads=threads)
    assert len(bad_lines) > 5
    assert [r["line"] for r in doc["result"]["badRows"]["rows"]] == bad_lines
    v = column(doc, "v")
    assert (doc["result"]["rows"], v["count"], v["min"], v["max"]) == (len(values), len(values), min(values), max(values))
    assert v["mean"] == pytest.approx(statistics.fmean(values))


def test_formats_chosen_per_file_and_named_when_mixed(tmp_path):
    csv_file = tmp_path / "a.csv"
    csv_file.write_text("id,city\n1,Pune\n2,Delhi\n")
    tsv_file = tmp_path / "b.tsv"
    tsv_file.write_text("id\tcity\n3\tGoa\n")
    unnamed = tmp_path / "c.log"
    unnamed.write_text('{"id": 4, "extra": true}\n')
    doc = run_op("stats", {}, files_of(csv_file, tsv_file, unnamed))
    assert doc["errors"] == [] and doc["result"]["rows"] == 4
    assert column(doc, "id")["formats"] == ["csv", "tsv", "ndjson"]
    assert column(doc, "city")["formats"] == ["csv", "tsv"]
    assert column(doc, "extra")["formats"] == ["ndjson"]
    assert column(doc, "id")["max"] == 4
    # One format alone: no formats key.
    assert "formats" not in column(run_op("stats", {}, files_of(csv_file)), "id")


def test_a_forced_format_wins_over_name_and_content(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    forced = run_op("stats", {"format": "ndjson"}, files_of(path))
    assert forced["result"]["rows"] == 2 and column(forced, "a")["max"] == 2
    as_named = run_op("stats", {}, files_of(path))
    assert [c["name"] for c in as_named["result"]["columns"]] == ['{"a": 1}']


@pytest.mark.parametrize("compressed", [False, True])
def test_convert_writes_ndjson_as_flat_columns(tmp_path, compressed):
    import pyarrow.parquet as pq
    rows = list(events(50_000, seed=6))
    text = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path = tmp_path / ("events.jsonl.gz" if compressed else "events.jsonl")
    path.write_bytes(gzip.compress(text, compresslevel=1) if compressed else text)
    doc = run_op("convert", {"output_dir": str(tmp_path / "out")}, files_of(path))
    assert doc["errors"] == []
    (output,) = doc["result"]["outputs"]
    table = pq.read_table(output["path"])
    flat = [flatten(r) for r in rows]
    names = []
    for f in flat:
        names += [k for k in f if k not in names]
    assert table.column_names == names and table.num_rows == len(rows) == output["rows"]
    schema = {c["name"]: c["type"] for c in doc["result"]["schema"]}
    assert (schema["id"], schema["amount"], schema["user.name"], schema["tags"], schema["code"]) == (
        "int64", "float64", "utf8", "utf8", "utf8")
    assert table.column("amount").to_pylist() == [r.get("amount") for r in rows]
    assert table.column("user.age").to_pylist() == [r["user"]["age"] for r in rows]
    assert table.column("tags").to_pylist() == [json.dumps(r["tags"], separators=(",", ":")) for r in rows]
    assert table.column("code").to_pylist() == [None if "code" not in r else str(r["code"]).lower()
                                                if isinstance(r["code"], bool) else str(r["code"]) for r in rows]
