"""CSV rows of the wrong width under each bad-row policy, checked against Python's csv module."""

import csv
import gzip
import io
import random

import pytest

from e2e.reference import fit_rows
from unit.engine.engine_helpers import files_of, run_op

SUFFIX = {"pad": {True: "; padded with nulls", False: "; truncated"}, "truncate": {False: "; truncated"}}
CHUNK = 8 << 20


def records(text):
    """(1-based line where it starts, fields) of each non-blank record, as Python's csv reads them."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out, line = [], 0
    for fields in reader:
        if fields:
            out.append((line + 1, fields))
        line = reader.line_num
    return out


def expected(text, policy):
    """Header, the rows the policy keeps, and the (line, reason) of every row of another width."""
    found = records(text)
    width = len(found[0][1])
    bad = []
    for line, fields in found[1:]:
        if len(fields) != width:
            reason = f"expected {width} fields, found {len(fields)}"
            bad.append((line, reason + SUFFIX.get(policy, {}).get(len(fields) < width, "")))
    return found[0][1], fit_rows([fields for _, fields in found[1:]], width, policy), bad


def ragged_csv(rows, seed, widths=(2, 4, 5)):
    """A 3-column CSV with quoted multi-line fields, CRLF and blank lines; every 7th row has another width."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "b", "c"])
    for i in range(rows):
        fields = [str(rnd.randint(-50, 50)), rnd.choice(["", "x", "multi\nline", "q, \"r\""]), str(i)]
        if i % 7 == 3:
            width = rnd.choice(widths)
            fields = (fields + [str(i)] * width)[:width]
        writer.writerow(fields)
        if i % 11 == 0:
            out.write("\n")
    return out.getvalue().replace("0\n", "0\r\n")


def assert_profile(doc, text, policy):
    header, rows, bad = expected(text, policy)
    result = doc["result"]
    assert doc["errors"] == []
    assert result["rows"] == len(rows)
    for index, column in enumerate(result["columns"]):
        values = [row[index] for row in rows]
        assert column["name"] == header[index]
        assert (column["count"], column["nulls"]) == (sum(v != "" for v in values), values.count(""))
    assert result["badRows"]["total"] == len(bad)
    return [(row["path"], row["line"], row["reason"]) for row in result["badRows"]["rows"]], bad


@pytest.mark.parametrize("policy", ["skip", "pad", "truncate"])
def test_each_policy_matches_pythons_csv(tmp_path, policy):
    path = tmp_path / "r.csv"
    text = ragged_csv(300, seed=1)
    path.write_bytes(text.encode())
    doc = run_op("stats", {"bad_rows": policy, "max_bad_rows": 1000}, files_of(path))
    listed, bad = assert_profile(doc, text, policy)
    assert listed == [(str(path), line, reason) for line, reason in bad]
    assert len(bad) > 30 and any(reason.startswith("expected 3 fields, found 2") for _, reason in bad)


def test_fail_keeps_the_file_as_one_error_record(tmp_path):
    path = tmp_path / "r.csv"
    text = ragged_csv(300, seed=2)
    path.write_bytes(text.encode())
    doc = run_op("stats", {"bad_rows": "fail"}, files_of(path))
    line, fields = next((line, f) for line, f in records(text)[1:] if len(f) != 3)
    assert doc["errors"] == [{"path": str(path), "line": line, "reason": f"ragged row: expected 3 fields, found {len(fields)}"}]
    assert doc["result"]["rows"] == 0 and doc["result"]["badRows"] == {"total": 0, "rows": []}


def test_unterminated_quotes_and_invalid_utf8_stay_file_errors(tmp_path):
    quote = tmp_path / "q.csv"
    quote.write_text('a,b\n1,2\n"open,3\n')
    utf = tmp_path / "u.csv"
    utf.write_bytes(b"a,b\n1\n\xff,2\n")
    doc = run_op("stats", {}, files_of(quote, utf))
    assert [(e["path"], e["line"]) for e in doc["errors"]] == [(str(quote), 3), (str(utf), 3)]
    assert doc["result"]["badRows"]["total"] == 0


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Over two chunks of fixed-width lines, rows of another width around each chunk boundary."""
    good, short, long = "{:07d},{:07d},{:07d}\n", "{:07d},{:015d}\n", "{:07d},{:07d},{:03d},{:03d}\n"
    n = (2 * CHUNK + CHUNK // 2) // len(good.format(0, 0, 0))
    boundaries = {CHUNK * k // len(good.format(0, 0, 0)) for k in (1, 2)}
    bad = {b + d for b in boundaries for d in (-2, -1, 0, 1)} | {5, n - 1}
    lines = ["a,b,c\n"]
    for i in range(n):
        lines.append((short.format(i, i) if i % 2 else long.format(i, i, i % 1000, 7)) if i in bad else good.format(i, i, i))
    text = "".join(lines)
    assert len(text) > 2 * CHUNK
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_bytes(text.encode())
    return path, text


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("policy", ["skip", "pad", "truncate"])
def test_bad_rows_near_chunk_boundaries_have_exact_lines(big, policy, threads):
    """One thread folds every chunk into one accumulator, two split them."""
    path, text = big
    doc = run_op("stats", {"bad_rows": policy}, files_of(path), threads=threads)
    listed, bad = assert_profile(doc, text, policy)
    assert listed == [(str(path), line, reason) for line, reason in bad]


def test_bad_rows_of_a_gzip_file_have_exact_lines(tmp_path, big):
    _, text = big
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(text.encode(), compresslevel=1))
    doc = run_op("stats", {"bad_rows": "pad"}, files_of(path))
    listed, bad = assert_profile(doc, text, "pad")
    assert listed == [(str(path), line, reason) for line, reason in bad]


@pytest.mark.parametrize("threads", [1, 2])
def test_fail_in_a_big_file_names_the_first_bad_line(big, threads):
    path, text = big
    doc = run_op("stats", {"bad_rows": "fail"}, files_of(path), threads=threads)
    _, _, bad = expected(text, "fail")
    assert [(e["path"], e["line"]) for e in doc["errors"]] == [(str(path), bad[0][0])]


def test_the_cap_limits_the_rows_listed_per_file_not_those_counted(tmp_path, big):
    small = tmp_path / "small.csv"
    text = ragged_csv(300, seed=3)
    small.write_bytes(text.encode())
    big_path, big_text = big
    doc = run_op("stats", {"max_bad_rows": 3}, files_of(small, big_path))
    _, _, small_bad = expected(text, "skip")
    _, _, big_bad = expected(big_text, "skip")
    assert doc["result"]["badRows"]["total"] == len(small_bad) + len(big_bad)
    listed = [(row["path"], row["line"]) for row in doc["result"]["badRows"]["rows"]]
    assert listed == sorted([(str(big_path), line) for line, _ in big_bad[:3]] + [(str(small), line) for line, _ in small_bad[:3]])
    none = run_op("stats", {"max_bad_rows": 0}, files_of(small))["result"]["badRows"]
    assert none == {"total": len(small_bad), "rows": []}


@pytest.mark.parametrize("policy", ["skip", "pad"])
def test_convert_writes_exactly_the_rows_kept(tmp_path, policy):
    import pyarrow.parquet as pq

    path = tmp_path / "r.csv"
    text = ragged_csv(300, seed=4)
    path.write_bytes(text.encode())
    doc = run_op("convert", {"output_dir": str(tmp_path / "out"), "bad_rows": policy}, files_of(path))
    header, rows, bad = expected(text, policy)
    assert doc["errors"] == [] and doc["result"]["rows"] == len(rows)
    assert doc["result"]["badRows"] == {
        "total": len(bad), "rows": [{"path": str(path), "line": line, "reason": reason} for line, reason in bad]}
    table = pq.read_table(doc["result"]["outputs"][0]["path"]).to_pydict()
    assert list(table) == header
    assert table["a"] == [int(row[0]) for row in rows]
    assert table["b"] == [row[1] or None for row in rows]
    assert table["c"] == [int(row[2]) if row[2] else None for row in rows]


def test_convert_under_fail_writes_nothing(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n3\n")
    doc = run_op("convert", {"output_dir": str(tmp_path / "out"), "bad_rows": "fail"}, files_of(path))
    assert [(e["path"], e["line"]) for e in doc["errors"]] == [(str(path), 3)]
    assert doc["result"]["outputs"] == [] and not list((tmp_path / "out").rglob("*.parquet"))
