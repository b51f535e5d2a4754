"""What each operation must give, computed from the input files alone.

The expected values come from the data with independent tools (Python `csv` and
`statistics`, `hashlib`/`blake3`/`xxhash`, `re`, pyarrow), never from the engine, so a
result is only accepted when it is right. Inputs are `Files`: the path a result reports for
each file (relative to a volume source's root, `s3://bucket/key` for S3) and its bytes.
Outputs the result points at (checksum manifests, Parquet files) are read through `read`,
which takes the URI the result gives.

Where the engine documents an approximation, the check uses its bound: distinct counts
are exact up to 2,048 values (HyperLogLog with 2^14 registers beyond, 0.8 % standard
error); quantiles have a relative error of at most 1 % (DDSketch) on the nearest-rank value
at `q * (n - 1)`; top values are exact while a column has at most `4 * max(64 * top, 256)`
distinct values.
"""

from __future__ import annotations

import bz2
import csv
import datetime
import gzip
import hashlib
import io
import lzma
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import pyarrow.parquet as pq
import xxhash
import zstandard

Files = dict[str, bytes]
Reader = Callable[[str], bytes]

DISTINCT_EXACT_UP_TO = 2048
DISTINCT_RELATIVE_BOUND = 0.04  # five standard errors of a 2^14-register HyperLogLog
QUANTILE_RELATIVE_ERROR = 0.01
FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
INT = re.compile(r"[+-]?[0-9]{1,18}")
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
PARQUET_TYPES = {"int": "int64", "float": "double", "bool": "bool", "date": "date32[day]", "string": "string"}
RESULT_TYPES = {"int": "int64", "float": "float64", "bool": "bool", "date": "date32", "string": "utf8"}
CODECS = {"zstd": "ZSTD", "snappy": "SNAPPY", "none": "UNCOMPRESSED"}


def source_files(root: Path, include: list[str] | None = None, prefix: str = "") -> Files:
    """The files below `root` that a job with these `include` globs reads (`**/PATTERN`
    matches names at any depth), keyed by `prefix` + their path relative to `root`."""
    patterns = [glob.removeprefix("**/") for glob in include or ["*"]]
    return {prefix + path.relative_to(root).as_posix(): path.read_bytes()
            for pattern in patterns for path in sorted(root.rglob(pattern)) if path.is_file()}


def by_path(paths: Iterable[str]) -> list[str]:
    """Paths in the engine's order: by their UTF-8 bytes."""
    return sorted(paths, key=lambda path: path.encode())


def check(document: dict[str, Any], operation: dict[str, Any], files: Files, read: Reader | None = None) -> None:
    """Assert that `document` is what `operation` (a spec's `operation` block) must give for `files`."""
    kind = operation["type"]
    options = operation.get(kind) or {}
    if kind == "stats":
        stats(document, files, options.get("delimiter", ","), options.get("header", True),
              options.get("quantiles", [0.5, 0.9, 0.99]), options.get("top", 5), options.get("badRows", "skip"))
    elif kind == "count":
        count(document, files)
    elif kind == "checksum":
        checksum(document, files, options.get("algorithm", "sha256"), read)
    elif kind == "grep":
        grep(document, files, options["pattern"], options.get("ignoreCase", False),
             options.get("maxMatchesPerFile", 100))
    elif kind == "convert":
        convert(document, files, options.get("compression", "zstd"), options.get("delimiter", ","),
                options.get("header", True), read, options.get("badRows", "skip"))
    else:
        raise ValueError(f"operation.type: no reference for {kind!r}")


def envelope(document: dict[str, Any], operation: str, files: Files, failed: Iterable[str] = ()) -> None:
    """The counters every result carries: every file is counted, failed ones listed as errors."""
    assert document["operation"] == operation
    assert document["files"] == len(files), (document["files"], sorted(files))
    assert document["bytes"] == sum(len(data) for data in files.values())
    assert [error["path"] for error in document["errors"]] == by_path(failed), document["errors"]
    assert all(error["reason"] for error in document["errors"]), document["errors"]


# -- count: `wc -l -w -c` ------------------------------------------------------------------

def content(data: bytes) -> bytes:
    """What count, grep and stats read: a compressed file's content, decompressed by Python's codecs
    (recognised by magic bytes, as the engine documents), or the stored bytes."""
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(data).read()
    if data.startswith(b"BZh"):
        return bz2.decompress(data)
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.decompress(data)
    return data


def count(document: dict[str, Any], files: Files) -> None:
    envelope(document, "count", files)
    per_file = [{"path": path, "lines": text.count(b"\n"), "words": len(text.split()), "bytes": len(text)}
                for path in by_path(files) for text in [content(files[path])]]
    assert document["result"] == {
        "lines": sum(entry["lines"] for entry in per_file), "words": sum(entry["words"] for entry in per_file),
        "bytes": sum(entry["bytes"] for entry in per_file), "files": per_file,
    }


# -- checksum: `sha256sum` / `b3sum` -----------------------------------------------------------

def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "blake3":
        return blake3.blake3(data).hexdigest()
    if algorithm == "xxh3":
        return xxhash.xxh3_64_hexdigest(data)
    raise ValueError(f"checksum.algorithm: no reference for {algorithm!r}")


def checksum(document: dict[str, Any], files: Files, algorithm: str, read: Reader | None) -> None:
    """Digests of every file, and the manifest the result names, line by line as `sha256sum` writes it."""
    envelope(document, "checksum", files)
    result = dict(document["result"])
    manifest = result.pop("manifest", None)
    expected = [{"path": path, "bytes": len(files[path]), "digest": digest(algorithm, files[path])}
                for path in by_path(files)]
    assert result == {"algorithm": algorithm, "files": expected}
    if read is not None:
        assert manifest, "the result names no checksum manifest"
        lines = read(manifest).decode().splitlines()
        assert lines == [f"{entry['digest']}  {entry['path']}" for entry in expected]


# -- grep: Python `re`, for patterns in the syntax both dialects share ------------------------

def lines_of(data: bytes) -> list[bytes]:
    """Lines as `grep` numbers them: a final newline ends the last line, it does not start one."""
    return data.removesuffix(b"\n").split(b"\n") if data else []


def grep(document: dict[str, Any], files: Files, pattern: str, ignore_case: bool, max_matches: int) -> None:
    envelope(document, "grep", files)
    regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    expected = []
    for path in by_path(files):
        hits = [(number, text) for number, line in enumerate(lines_of(content(files[path])), 1)
                if regex.search(text := line.decode("utf-8", "replace"))]
        if hits:
            expected.append({"path": path, "matches": len(hits),
                             "lines": [{"line": number, "text": text} for number, text in hits[:max_matches]]})
    assert expected, f"{pattern!r} matches nothing in the data: the check would prove nothing"
    assert document["result"] == {
        "pattern": pattern, "matches": sum(entry["matches"] for entry in expected),
        "files_with_matches": len(expected), "files": expected,
    }


# -- CSV, as the engine reads it: RFC 4180, blank lines skipped, BOM dropped ------------------

@dataclass
class Table:
    names: list[str]
    rows: list[list[str]]


def fit_rows(rows: list[list[str]], width: int, bad_rows: str) -> list[list[str]] | None:
    """The rows a bad-row policy keeps, of `width` fields each (missing ones empty, extra ones
    cut); None under `fail` when any row has another width."""
    fitted = []
    for row in rows:
        if len(row) != width:
            if bad_rows == "fail":
                return None
            if bad_rows == "skip" or (bad_rows == "truncate" and len(row) < width):
                continue
            row = (row + [""] * width)[:width]
        fitted.append(row)
    return fitted


def read_csv(data: bytes, delimiter: str, header: bool, bad_rows: str) -> Table | None:
    """The table in a CSV file, rows whose width differs from the first's handled by the
    `bad_rows` policy; None when the engine must report the file as an error (not UTF-8, an
    unterminated quote, a row of another width under `fail`)."""
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True) if row]
    except (UnicodeDecodeError, csv.Error):
        return None
    rows = fit_rows(rows, len(rows[0]) if rows else 0, bad_rows)
    if rows is None:
        return None
    if not header:
        width = len(rows[0]) if rows else 0
        return Table([f"column_{index}" for index in range(1, width + 1)], rows)
    return Table(unique_names(rows[0]) if rows else [], rows[1:])


def unique_names(names: list[str]) -> list[str]:
    """A repeated header name gets a `_2`, `_3`, ... suffix."""
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def read_tables(files: Files, delimiter: str, header: bool, bad_rows: str = "skip") -> tuple[dict[str, Table], list[str]]:
    """The parsed files in path order, and the paths of those that cannot be parsed."""
    tables, failed = {}, []
    for path in by_path(files):
        table = read_csv(files[path], delimiter, header, bad_rows)
        if table is None:
            failed.append(path)
        else:
            tables[path] = table
    return tables, failed


def classify(value: str) -> tuple[str, Any]:
    """What a non-empty field is: int (up to 18 digits), float, bool, date (YYYY-MM-DD) or str."""
    if INT.fullmatch(value):
        return "int", int(value)
    if date := DATE.fullmatch(value):
        try:
            return "date", datetime.date(*map(int, date.groups()))
        except ValueError:
            pass
    if FLOAT.fullmatch(value) and math.isfinite(number := float(value)):
        return "float", number
    if value.lower() in ("true", "false"):
        return "bool", value.lower() == "true"
    return "str", value


def column_type(kinds: set[str]) -> str:
    """int and float are one kind (numbers); more than one kind, or any text, is a string."""
    if "str" in kinds or len({"number" if kind in ("int", "float") else kind for kind in kinds}) != 1:
        return "string"
    return "float" if "float" in kinds else next(iter(kinds))


@dataclass
class Column:
    name: str
    values: list[str] = field(default_factory=list)  # non-empty fields
    nulls: int = 0

    def add(self, value: str) -> None:
        if value:
            self.values.append(value)
        else:
            self.nulls += 1

    @property
    def type(self) -> str:
        return column_type({classify(value)[0] for value in self.values})

    def numbers(self) -> list[float]:
        return [classify(value)[1] for value in self.values] if self.type in ("int", "float") else []


def columns_of(tables: dict[str, Table]) -> list[Column]:
    """Columns merged by name, in order of first appearance by file path."""
    columns: dict[str, Column] = {}
    for table in tables.values():
        for index, name in enumerate(table.names):
            column = columns.setdefault(name, Column(name))
            for row in table.rows:
                column.add(row[index])
    return list(columns.values())


# -- stats ---------------------------------------------------------------------------------------

def stats(document: dict[str, Any], files: Files, delimiter: str, header: bool, quantiles: list[float],
          top: int, bad_rows: str) -> None:
    tables, failed = read_tables(files, delimiter, header, bad_rows)
    envelope(document, "stats", files, failed)
    result = document["result"]
    assert result["rows"] == sum(len(table.rows) for table in tables.values())
    expected = columns_of(tables)
    assert [column["name"] for column in result["columns"]] == [column.name for column in expected]
    for got, column in zip(result["columns"], expected):
        stats_column(got, column, quantiles, top)


def stats_column(got: dict[str, Any], column: Column, quantiles: list[float], top: int) -> None:
    where = f"column {column.name!r}"
    numbers = column.numbers()
    exact = {"name": column.name, "type": column.type, "count": len(column.values), "nulls": column.nulls,
             "min": min(numbers or column.values, default=None), "max": max(numbers or column.values, default=None)}
    assert {key: got[key] for key in exact} == exact, where
    if numbers:
        assert math.isclose(got["mean"], statistics.fmean(numbers), rel_tol=1e-9, abs_tol=1e-9), where
        if len(numbers) > 1:
            assert math.isclose(got["stddev"], statistics.stdev(numbers), rel_tol=1e-9, abs_tol=1e-9), where
        else:
            assert got["stddev"] is None, where
        assert_quantiles(got["quantiles"], sorted(numbers), quantiles, where)
    else:
        assert (got["mean"], got["stddev"], got["quantiles"]) == (None, None, None), where
    assert_distinct(got["distinct"], len(set(column.values)), where)
    assert_top(got["top"], Counter(column.values), top, where)


def assert_quantiles(got: dict[str, float], numbers: list[float], quantiles: list[float], where: str) -> None:
    """Each quantile within the sketch's relative error of the nearest-rank value."""
    assert sorted(got) == sorted(str(float(q)) for q in quantiles), where
    for q in quantiles:
        truth = numbers[math.floor(q * (len(numbers) - 1) + 0.5)]
        estimate = got[str(float(q))]
        assert abs(estimate - truth) <= QUANTILE_RELATIVE_ERROR * abs(truth) + 1e-12, (where, q, estimate, truth)


def assert_distinct(got: int, truth: int, where: str) -> None:
    if truth <= DISTINCT_EXACT_UP_TO:
        assert got == truth, (where, got, truth)
    else:
        assert abs(got - truth) <= DISTINCT_RELATIVE_BOUND * truth, (where, got, truth)


def assert_top(got: list[dict[str, Any]], counts: Counter[str], top: int, where: str) -> None:
    """The most frequent values, ties by value; exact while the frequent-value table never
    had to drop a value, otherwise no count above the true one."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0].encode()))
    if len(counts) <= 4 * max(64 * top, 256):
        assert got == [{"value": value, "count": n} for value, n in ranked[:top]], where
    else:
        assert len(got) == min(top, len(counts)), where
        assert all(entry["count"] <= counts[entry["value"]] for entry in got), where


# -- convert: pyarrow reads every Parquet file back ----------------------------------------------

def convert(document: dict[str, Any], files: Files, compression: str, delimiter: str, header: bool,
            read: Reader | None, bad_rows: str) -> None:
    """One Parquet file per good CSV file, holding its rows with the inferred column types."""
    tables, failed = read_tables(files, delimiter, header, bad_rows)
    envelope(document, "convert", files, failed)
    result = document["result"]
    assert (result["format"], result["compression"]) == ("parquet", compression)
    assert result["rows"] == sum(len(table.rows) for table in tables.values())
    assert [output["source"] for output in result["outputs"]] == list(tables)
    assert [output["rows"] for output in result["outputs"]] == [len(table.rows) for table in tables.values()]
    assert result["schema"] == merged_schema(tables)
    if read is not None:
        for output in result["outputs"]:
            parquet_file(read(output["path"]), tables[output["source"]], CODECS[compression], output["path"])


def table_columns(table: Table) -> list[Column]:
    return columns_of({"": table})


def merged_schema(tables: dict[str, Table]) -> list[dict[str, str]]:
    """Each column's type, widened across files: int64 and float64 make float64, any other
    difference utf8."""
    schema: dict[str, str] = {}
    for table in tables.values():
        for column in table_columns(table):
            kind = RESULT_TYPES[column.type]
            before = schema.setdefault(column.name, kind)
            if before != kind:
                schema[column.name] = "float64" if {before, kind} == {"int64", "float64"} else "utf8"
    return [{"name": name, "type": kind} for name, kind in schema.items()]


def parquet_file(data: bytes, table: Table, codec: str, where: str) -> None:
    parquet = pq.ParquetFile(io.BytesIO(data))
    read_back = parquet.read()
    columns = table_columns(table)
    assert read_back.column_names == [column.name for column in columns], where
    assert [str(kind) for kind in read_back.schema.types] == [PARQUET_TYPES[column.type] for column in columns], where
    for index, column in enumerate(columns):
        expected = [typed(row[index], column.type) for row in table.rows]
        assert read_back.column(index).to_pylist() == expected, (where, column.name)
    metadata = parquet.metadata
    codecs = {metadata.row_group(group).column(index).compression
              for group in range(metadata.num_row_groups) for index in range(metadata.num_columns)}
    assert codecs == ({codec} if table.rows else set()), (where, codecs)


def typed(value: str, kind: str) -> Any:
    """A CSV field as its Parquet column holds it: an empty field is null."""
    if not value:
        return None
    if kind == "string":
        return value
    parsed = classify(value)[1]
    return float(parsed) if kind == "float" else parsed
