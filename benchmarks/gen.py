#!/usr/bin/env python3
"""Deterministic benchmark data: a few big CSVs and many small ones.

Both sets share one mixed-type schema (see ``COLUMNS``) so that every tool is
asked the same questions of the same bytes.  Values come from a counter-based
hash (splitmix64) evaluated with vectorised Polars expressions: the output
depends only on the seed and the row index, never on thread scheduling or on
the random-number generator of a library version, and 1.5 GB takes well under
a minute instead of the tens of minutes a pure-Python loop would need.

Layout under ``--data-dir`` (default ``benchmarks/data``)::

    scale-<S>/manifest.json      parameters + seed + resulting sizes
    scale-<S>/big/part-NNN.csv   12 files x 128 MB at scale 1
    scale-<S>/small/dNNN/fNNNNN.csv   20,000 files x ~4 KB, 200 per directory

A set is reused when its manifest matches the requested parameters, so
repeated benchmark runs do not pay for generation again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema import COLUMNS

GENERATOR_VERSION = 1
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"

CATEGORIES = [
    "books", "garden", "toys", "grocery", "electronics", "clothing", "sports",
    "health", "automotive", "music", "office", "pets", "beauty", "tools",
    "kitchen", "travel",
]

# Words for the free-text column, with weights out of 1000.  The grep
# workloads look for "timeout", "error|timeout|refused" and day-30/31 dates,
# so those words must occur, but rarely, as in real logs.
WORDS = {
    "timeout": 6, "error": 10, "refused": 4, "retry": 15, "delayed,": 20,
    "shipped": 60, "order": 80, "customer": 60, "payment": 50, "received": 50,
    "pending": 40, "the": 120, "and": 90, "of": 70, "for": 50, "package": 40,
    "invoice": 30, "refund": 20, "warehouse": 30, "priority": 20, "express": 20,
    "standard": 30, "returned": 15, "damaged,": 10, "confirmed": 40,
    "gift": 15, "note": 15, "\"fragile\"": 5, "call": 20, "back": 20,
    "address": 20, "updated": 15,
}
NEWLINE_EVERY = 5000  # about one row in this many has an embedded newline
NULL_PERCENT = 3

_U64 = pl.UInt64
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class Params:
    """Everything that determines the bytes on disk; stored in the manifest."""

    seed: int = 20240601
    scale: float = 1.0
    big_files: int = 12
    big_file_bytes: int = 128 * 1000 * 1000
    small_files: int = 20_000
    small_files_per_dir: int = 200
    small_file_bytes: int = 4096
    generator_version: int = GENERATOR_VERSION

    @classmethod
    def for_scale(cls, scale: float, seed: int = 20240601) -> Params:
        """Shrink the per-file size of the big set and the count of small files.

        The number of big files stays fixed so that splitting them between
        processes balances the same way at every scale.
        """
        base = cls()
        return cls(
            seed=seed,
            scale=scale,
            big_file_bytes=max(64 * 1024, int(base.big_file_bytes * scale)),
            small_files=max(20, round(base.small_files * scale)),
        )


def _lit(value: int) -> pl.Expr:
    return pl.lit(value & 0xFFFFFFFFFFFFFFFF, dtype=_U64)


def _mix(x: pl.Expr) -> pl.Expr:
    """splitmix64 finaliser on a UInt64 expression (wrapping arithmetic)."""
    x = x + _lit(_GOLDEN)
    x = (x ^ (x // (1 << 30))) * _lit(0xBF58476D1CE4E5B9)
    x = (x ^ (x // (1 << 27))) * _lit(0x94D049BB133111EB)
    return x ^ (x // (1 << 31))


def _stream(row: pl.Expr, seed: int, k: int) -> pl.Expr:
    """Independent pseudo-random UInt64 stream number ``k`` for each row."""
    return _mix(row * _lit(0x2545F4914F6CDD1D) + _lit((seed * 1_000_003 + k) * _GOLDEN))


def _unit(h: pl.Expr) -> pl.Expr:
    """Uniform float in [0, 1) from a UInt64 hash."""
    return (h // (1 << 11)).cast(pl.Float64) / float(1 << 53)


def _weighted_table(weights: dict[str, int]) -> pl.Series:
    return pl.Series([w for w, n in weights.items() for _ in range(n)], dtype=pl.String)


def frame(first_row: int, rows: int, seed: int) -> pl.DataFrame:
    """Rows ``first_row .. first_row+rows`` of the data set, as a DataFrame."""
    words = _weighted_table(WORDS)
    n_words = len(words)
    row = pl.int_range(first_row, first_row + rows, dtype=_U64)
    base = pl.select(row=row)
    h = {k: _stream(pl.col("row"), seed, k) for k in range(16)}

    word_cols = [
        pl.lit(words).gather((h[6 + i] % n_words).cast(pl.Int64)).alias(f"w{i}")
        for i in range(8)
    ]
    n_used = (h[5] % 6 + 3).cast(pl.Int64)  # 3..8 words
    note_parts = [
        pl.when(n_used > i).then(pl.col(f"w{i}")).otherwise(pl.lit("")) for i in range(8)
    ]
    note = pl.concat_str(note_parts, separator=" ").str.strip_chars_end(" ")
    note = pl.when(h[14] % NEWLINE_EVERY == 0).then(note + "\nsee attached").otherwise(note)

    amount = (_unit(h[1]) ** 3 * 10_000).round(2)
    return (
        base.with_columns(word_cols)
        .select(
            id=(pl.col("row") + 1).cast(pl.Int64),
            amount=pl.when(h[0] % 100 < NULL_PERCENT).then(None).otherwise(amount),
            quantity=((_unit(h[2]) ** 2) * 500).cast(pl.Int64) + 1,
            flag=(h[3] % 4 == 0),
            day=pl.date(2020, 1, 1) + pl.duration(days=(h[4] % 1827).cast(pl.Int64)),
            category=pl.lit(pl.Series(CATEGORIES)).gather(
                ((_unit(h[13]) ** 2) * len(CATEGORIES)).cast(pl.Int64)
            ),
            note=note,
        )
    )


def _write(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.write_csv(tmp, float_precision=2)
    tmp.rename(path)


def _bytes_per_row(seed: int) -> float:
    sample = frame(0, 20_000, seed)
    return len(sample.write_csv(float_precision=2, include_header=False).encode()) / sample.height


def generate_big(root: Path, p: Params, log) -> None:
    rows = max(10, int(p.big_file_bytes / _bytes_per_row(p.seed)))
    for i in range(p.big_files):
        path = root / "big" / f"part-{i:03d}.csv"
        _write(frame(i * rows, rows, p.seed), path)
        log(f"  big {i + 1}/{p.big_files}: {path.name} {path.stat().st_size / 1e6:.1f} MB")


def generate_small(root: Path, p: Params, log) -> None:
    header = len(",".join(COLUMNS)) + 1
    rows = max(1, int((p.small_file_bytes - header) / _bytes_per_row(p.seed)))
    first = 1 << 40  # ids distinct from the big set's
    batch = 1000  # files per generated frame: keeps memory flat
    for start in range(0, p.small_files, batch):
        count = min(batch, p.small_files - start)
        df = frame(first + start * rows, count * rows, p.seed)
        df = df.with_columns(_file=(pl.int_range(pl.len()) // rows) + start)
        for (index,), part in df.partition_by("_file", as_dict=True, maintain_order=True).items():
            d = index // p.small_files_per_dir
            _write(part.drop("_file"), root / "small" / f"d{d:03d}" / f"f{index:05d}.csv")
        log(f"  small {start + count}/{p.small_files}")


def set_dir(data_dir: Path, scale: float) -> Path:
    return data_dir / f"scale-{scale:g}"


def _inventory(root: Path) -> dict:
    out = {}
    for name in ("big", "small"):
        sizes = [f.stat().st_size for f in (root / name).rglob("*.csv")]
        out[name] = {"files": len(sizes), "bytes": sum(sizes)}
    return out


def _manifest_ok(root: Path, p: Params) -> bool:
    try:
        m = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if m.get("params") != asdict(p):
        return False
    return m.get("inventory") == _inventory(root)


def ensure(data_dir: Path, p: Params, log=print, force: bool = False) -> Path:
    """Generate the data set for ``p`` unless an identical one is present."""
    root = set_dir(data_dir, p.scale)
    if not force and _manifest_ok(root, p):
        log(f"data: reusing {root.name} (manifest matches)")
        return root
    log(f"data: generating {root.name} (seed {p.seed})")
    started = time.monotonic()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    generate_big(root, p, log)
    generate_small(root, p, log)
    manifest = {"params": asdict(p), "columns": COLUMNS, "inventory": _inventory(root)}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"data: done in {time.monotonic() - started:.0f} s")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="size factor (1 = ~1.5 GB + 20,000 small files)")
    ap.add_argument("--smoke", action="store_true", help="tiny set: same as --scale 0.01")
    ap.add_argument("--seed", type=int, default=Params.seed)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--force", action="store_true", help="regenerate even if the manifest matches")
    args = ap.parse_args(argv)
    scale = 0.01 if args.smoke else args.scale
    root = ensure(args.data_dir, Params.for_scale(scale, args.seed), force=args.force)
    print(json.dumps(json.loads((root / "manifest.json").read_text())["inventory"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
