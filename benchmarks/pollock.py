"""Pollock: loading 2,290 polluted CSV files, by pravah and by DuckDB.

Pollock (github.com/HPI-Information-Systems/Pollock, `polluted_files/`) pollutes one CSV file
in 2,290 ways (a stray quote, a missing field, another delimiter, a preamble, several header
rows, ...) and keeps, for each, its clean version (`clean/`) and the dialect it was written in
(`parameters/`). A load is exact here when it gives the clean version's number of rows and of
columns. Each file is loaded four ways:

* pravah `stats` with the file's dialect (delimiter, quote, escape, header rows, preamble and
  footer lines; rows of another width padded or cut, `badRows: pad`);
* pravah `stats` sniffing delimiter, quote and header (`auto`), told nothing else;
* DuckDB `read_csv` with the same dialect (`null_padding`, `ignore_errors`, not strict, as
  Pollock's own DuckDB runner);
* DuckDB `read_csv` detecting everything, with the same error options.

    python benchmarks/pollock.py POLLOCK/polluted_files [--limit N]

Needs the engine (`pravah_engine`) and the `duckdb` package.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Callable

import duckdb
import pravah_engine

Load = Callable[[Path, dict], tuple[int, int] | None]


def clean_shape(path: Path, header: bool) -> tuple[int, int]:
    """Rows and columns of a clean version (read by Python's csv): a header row when the polluted
    file has one, then the rows."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        records = [r for r in csv.reader(f) if r]
    return max(len(records) - header, 0), len(records[0]) if records else 0


def dialect_options(p: dict) -> dict | None:
    """pravah's options for a Pollock dialect; None when pravah cannot express it."""
    delimiter = p["delimiter"] or ","  # none given: a file without content
    if len(delimiter) != 1 or len(p["quotechar"]) > 1 or len(p["escapechar"]) > 1:
        return None
    escape = p["escapechar"] if p["escapechar"] not in ("", p["quotechar"]) else None
    return {"delimiter": delimiter, "quote": p["quotechar"], "escape": escape,
            "header_rows": p["header_lines"], "skip_rows": p["preamble_lines"], "footer_rows": p["footnote_lines"]}


def pravah_load(path: Path, options: dict) -> tuple[int, int] | None:
    run = pravah_engine.start("stats", json.dumps({**options, "bad_rows": "pad", "top": 0, "quantiles": []}),
                              [(str(path), path.stat().st_size)], 1)
    result = json.loads(pravah_engine.finalize("stats", run.wait(60)))
    if result["errors"]:
        return None
    return result["result"]["rows"], len(result["result"]["columns"])


def pravah_given(path: Path, p: dict) -> tuple[int, int] | None:
    options = dialect_options(p)
    return None if options is None else pravah_load(path, options)


def pravah_sniffed(path: Path, p: dict) -> tuple[int, int] | None:
    return pravah_load(path, {"delimiter": "auto", "quote": "auto", "header_rows": "auto"})


DUCKDB_ERRORS = {"strict_mode": False, "ignore_errors": True, "null_padding": True}


def duckdb_load(path: Path, options: dict) -> tuple[int, int] | None:
    try:
        rel = duckdb.connect().read_csv(str(path), **DUCKDB_ERRORS, **options)
        return rel.aggregate("count(*)").fetchall()[0][0], len(rel.columns)
    except duckdb.Error:
        return None


def duckdb_given(path: Path, p: dict) -> tuple[int, int] | None:
    headers = p["header_lines"]
    return duckdb_load(path, {
        "delimiter": p["delimiter"], "quotechar": p["quotechar"], "escapechar": p["escapechar"],
        "header": headers > 0, "skiprows": p["preamble_lines"] + max(headers - 1, 0)})


def duckdb_auto(path: Path, p: dict) -> tuple[int, int] | None:
    return duckdb_load(path, {})


LOADS: dict[str, Load] = {
    "pravah (given dialect)": pravah_given,
    "pravah (sniffed)": pravah_sniffed,
    "DuckDB (given dialect)": duckdb_given,
    "DuckDB (auto-detect)": duckdb_auto,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, help="Pollock's polluted_files folder (csv/, clean/, parameters/)")
    parser.add_argument("--limit", type=int, help="only the first N files (by name)")
    args = parser.parse_args()
    paths = sorted((args.files / "csv").glob("*.csv"))[: args.limit]
    exact = dict.fromkeys(LOADS, 0)
    for path in paths:
        params = json.loads((args.files / "parameters" / f"{path.name}_parameters.json").read_text())
        want = clean_shape(args.files / "clean" / path.name, params["header_lines"] > 0)
        for name, load in LOADS.items():
            exact[name] += load(path, params) == want
    print(f"{len(paths)} files; loaded exactly (clean version's rows and columns):")
    for name, n in exact.items():
        print(f"  {name:<24} {n:>5}  {n / max(len(paths), 1):7.2%}")


if __name__ == "__main__":
    main()
