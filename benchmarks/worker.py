#!/usr/bin/env python3
"""One timed run of a library-based tool (Pravah, DuckDB or Polars), in its own process.

run.py starts this script once per measurement so that
- thread settings that are only read at import time (POLARS_MAX_THREADS) apply,
- the peak RSS the parent reads with wait4() belongs to that one run alone,
- the timer covers the work only: interpreter start-up and imports are excluded,
  as the command-line tools have no such cost to speak of.

Usage: worker.py '<json spec>'; prints one JSON line {"seconds": s, "summary": {...}}.
The spec keys: tool, task, root, pattern (glob relative to root), format (csv, ndjson or
parquet), threads, options, fraction, query (DuckDB's stats query), doc, out_dir.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema import COLUMNS, polars_schema

# --- Pravah -------------------------------------------------------------------------------------

def take_fraction(files: list, fraction: float) -> list:
    """The first ``fraction`` of the files in path order (used for the memory goal)."""
    files = sorted(files, key=lambda f: f[0])
    return files[: max(1, math.ceil(len(files) * fraction))] if fraction < 1 else files


def pravah(spec: dict) -> tuple[float, dict]:
    """Scan, run and write the result document through the engine's Python API.

    The time includes listing the files (the rivals get their list on the
    command line for free), so it errs against Pravah; the scan time is also
    reported on its own.
    """
    import pravah_engine as pe

    options = dict(spec["options"])
    if spec["task"] == "convert":
        options["output_dir"] = spec["out_dir"]
    started = time.perf_counter()
    files, _scan_errors = pe.scan(spec["root"], [spec["pattern"]], [], False)
    scan_seconds = time.perf_counter() - started
    files = take_fraction(files, spec.get("fraction", 1.0))
    # The clock stops once the result document is written, as it stops for a command-line
    # tool once its output file is: reading either back for the cross-checks is not timed.
    pe.start(spec["task"], json.dumps(options), files, spec["threads"]).result(spec["doc"])
    seconds = time.perf_counter() - started
    doc = json.loads(Path(spec["doc"]).read_text())
    return seconds, {"files": doc["files"], "bytes": doc["bytes"], "errors": len(doc["errors"]),
                     "scan_seconds": scan_seconds, "doc": spec["doc"]}


# --- DuckDB -------------------------------------------------------------------------------------

def duckdb_stats_sql(source: str) -> str:
    """Per-column aggregates comparable to Pravah's stats (see README: what each side computes)."""
    numeric = ("min({c})", "max({c})", "avg({c})", "stddev({c})", "approx_count_distinct({c})",
               "approx_quantile({c}, [0.5, 0.99])")
    ordered = ("min({c})", "max({c})", "approx_count_distinct({c})")
    per_kind = {
        "int": numeric,
        "float": numeric,
        "bool": ("count_if({c})", "approx_count_distinct({c})", "approx_top_k({c}, 5)"),
        "date": ordered,
        "timestamp": ordered,
        "key": ordered,
        "category": ("min({c})", "max({c})", "approx_count_distinct({c})", "approx_top_k({c}, 5)"),
        "text": ("min(length({c}))", "max(length({c}))", "avg(length({c}))",
                 "approx_count_distinct({c})"),
    }
    exprs = ["count(*)"]
    for column, kind in COLUMNS.items():
        q = f'"{column}"'
        exprs += [f"count({q})", f"count(*) - count({q})"]
        exprs += [e.format(c=q) for e in per_kind[kind]]
    return f"SELECT {', '.join(exprs)} FROM {source}"


def duckdb_summarize_rows(con, source: str) -> int:
    """SUMMARIZE: DuckDB's own profile of every column; its ``count`` column is the row count."""
    cursor = con.execute(f"SUMMARIZE SELECT * FROM {source}")
    names = [d[0] for d in cursor.description]
    return cursor.fetchone()[names.index("count")]


DUCKDB_STATS = {
    "aggregates": lambda con, source: con.execute(duckdb_stats_sql(source)).fetchone()[0],
    "summarize": duckdb_summarize_rows,
}

# Every generated CSV has the same header, so matching columns by position is exact;
# union_by_name would keep all 20,000 small files open at once and run out of descriptors.
# read_csv decompresses .gz files itself, recognising them by name.
DUCKDB_READERS = {
    "csv": "read_csv('{glob}')",
    "ndjson": "read_json('{glob}', format = 'newline_delimited')",
    "parquet": "read_parquet('{glob}')",
}


def duckdb(spec: dict) -> tuple[float, dict]:
    import duckdb as ddb

    con = ddb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    source = DUCKDB_READERS[spec["format"]].format(glob=Path(spec["root"]) / spec["pattern"])
    started = time.perf_counter()
    if spec["task"] == "stats":
        rows = DUCKDB_STATS[spec["query"]](con, source)
    else:  # convert
        target = Path(spec["out_dir"]) / "all.parquet"
        rows = con.execute(
            f"COPY (SELECT * FROM {source}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()[0]
    return time.perf_counter() - started, {"rows": int(rows)}


# --- Polars -------------------------------------------------------------------------------------

def polars_stats_exprs(pl) -> list:
    """The Polars counterpart of duckdb_stats_sql (exact quantiles: Polars has no approximate ones)."""
    exprs = [pl.len().alias("rows")]
    for column, kind in COLUMNS.items():
        c = pl.col(column)
        base = [c.count(), c.null_count()]
        if kind in ("int", "float"):
            more = [c.min(), c.max(), c.mean(), c.std(), c.approx_n_unique(),
                    c.quantile(0.5), c.quantile(0.99)]
        elif kind == "bool":
            more = [c.sum(), c.approx_n_unique(), c.value_counts(sort=True).head(5).implode()]
        elif kind in ("date", "timestamp", "key"):
            more = [c.min(), c.max(), c.approx_n_unique()]
        elif kind == "category":
            more = [c.min(), c.max(), c.approx_n_unique(), c.value_counts(sort=True).head(5).implode()]
        else:  # text
            n = c.str.len_bytes()
            more = [n.min(), n.max(), n.mean(), c.approx_n_unique()]
        exprs += [e.alias(f"{column}_{i}") for i, e in enumerate(base + more)]
    return exprs


def polars(spec: dict) -> tuple[float, dict]:
    import polars as pl

    started = time.perf_counter()
    scan = {"csv": pl.scan_csv, "ndjson": pl.scan_ndjson}[spec["format"]]
    frame = scan(str(Path(spec["root"]) / spec["pattern"]), schema=polars_schema(pl))
    if spec["task"] == "stats":
        rows = frame.select(polars_stats_exprs(pl)).collect()["rows"][0]
        summary = {"rows": int(rows)}
    else:  # convert
        target = Path(spec["out_dir"]) / "all.parquet"
        frame.sink_parquet(target, compression="zstd")
        seconds = time.perf_counter() - started
        # Counted after the clock stops: only for the cross-check of row counts.
        return seconds, {"rows": int(pl.scan_parquet(target).select(pl.len()).collect().item())}
    return time.perf_counter() - started, summary


RUNNERS = {"pravah": pravah, "duckdb": duckdb, "polars": polars}


def main() -> int:
    spec = json.loads(sys.argv[1])
    seconds, summary = RUNNERS[spec["tool"]](spec)
    print(json.dumps({"seconds": seconds, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
