"""The benchmark data (benchmarks/gen.py): a tiny big set read by Python's csv module and by
Pravah's stats must agree on rows and on the empty cells of every column."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from unit.engine.engine_helpers import files_of, run_op

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gen  # noqa: E402
from schema import COLUMNS  # noqa: E402

STATS = {"delimiter": ",", "header": True, "quantiles": [0.5], "top": 3}


@pytest.fixture(scope="module")
def big_set(tmp_path_factory) -> list[Path]:
    data_dir = tmp_path_factory.mktemp("bench-data")
    root = gen.ensure(data_dir, gen.Params.for_scale(0.001), ["big"], log=lambda _: None)
    return gen.files_of(root, "big")


def read_csv(paths: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of every file, as Python's csv module parses them."""
    header, rows = None, []
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += list(reader)
    return header, rows


def test_stats_rows_and_nulls_match_the_csv_module(big_set):
    header, rows = read_csv(big_set)
    doc = run_op("stats", STATS, files_of(*big_set))
    assert doc["errors"] == []
    assert doc["result"]["rows"] == len(rows)
    nulls = {c["name"]: c["nulls"] for c in doc["result"]["columns"]}
    assert nulls == {name: sum(r[j] == "" for r in rows) for j, name in enumerate(header)}


def test_the_set_has_the_shapes_the_benchmark_needs(big_set):
    header, rows = read_csv(big_set)
    assert header == list(COLUMNS)
    column = {name: [r[j] for r in rows] for j, name in enumerate(header)}
    for name in ("user_id", "created", "discount", "city", "rating"):
        empty = sum(v == "" for v in column[name]) / len(rows)
        assert 0.01 < empty < 0.03, name
    assert len(set(column["user_id"])) > 0.9 * len(rows)
    assert all(len(v) == 19 and v[10] == " " for v in column["created"] if v)
    assert sum("," in v for v in column["city"]) > len(rows) / 2
    raw = big_set[0].read_text()
    assert '"Springfield, IL"' in raw
    sizes = sorted(p.stat().st_size for p in big_set)
    assert sizes[-1] > 5 * sizes[0]
