#!/usr/bin/env python3
"""Deterministic benchmark data: a few big CSVs, many small ones, and the big ones in other forms.

Both sets share one mixed-type schema (see ``COLUMNS``) so that every tool is
asked the same questions of the same bytes.  Values come from a counter-based
hash (splitmix64) evaluated with vectorised Polars expressions: the output
depends only on the seed and the row index, never on thread scheduling or on
the random-number generator of a library version, and 1.5 GB takes well under
a minute instead of the tens of minutes a pure-Python loop would need.

Layout under ``--data-dir`` (default ``benchmarks/data``)::

    scale-<S>/manifest.json      parameters + seed + resulting sizes
    scale-<S>/big/part-NNN.csv   12 files, 32 to 224 MB (1.5 GB) at scale 1
    scale-<S>/small/dNNN/fNNNNN.csv   20,000 files x ~4 KB, 200 per directory
    scale-<S>/big-gz/part-NNN.csv.gz, big-zst/part-NNN.csv.zst,
              ndjson/part-NNN.ndjson, parquet/part-NNN.parquet   each big CSV converted

A set is generated only when a workload needs it, and reused while the
manifest records the same parameters and the files on disk still match it, so
repeated benchmark runs do not pay for generation again.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema import COLUMNS, polars_schema

GENERATOR_VERSION = 2
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"

CATEGORIES = [
    "books", "garden", "toys", "grocery", "electronics", "clothing", "sports",
    "health", "automotive", "music", "office", "pets", "beauty", "tools",
    "kitchen", "travel",
]

# Places for the city column: most hold a comma, so the CSV writer quotes them.
CITIES = [
    "Springfield, IL", "Portland, OR", "Austin, TX", "Columbus, OH", "Madison, WI",
    "Salem, MA", "Boulder, CO", "Raleigh, NC", "Fresno, CA", "Tampa, FL", "Reno, NV",
    "Provo, UT", "London", "Pune", "Lyon", "Osaka",
]
USERS = 2_000_000  # distinct user ids the rows draw from
USER_ID_DIGITS = 10  # hex digits after "u-"
FIRST_TIMESTAMP_SECONDS = 1_577_836_800  # 2020-01-01 00:00:00 UTC
DAYS = 1827  # 2020-01-01 .. 2024-12-31

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
NULL_PERCENT = 3  # empty amounts
SPARSE_NULL_PERCENT = 2  # empty cells in user_id, created, discount, city and rating
# Big files range from SMALLEST_FILE to 2 - SMALLEST_FILE times the nominal size (mean 1).
SMALLEST_FILE = 0.25
CSV_OPTIONS = {"float_precision": 2, "datetime_format": "%Y-%m-%d %H:%M:%S"}

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


def _hex(h: pl.Expr, digits: int) -> pl.Expr:
    """The low ``digits`` hex digits of a UInt64 hash, as a string."""
    alphabet = pl.lit(pl.Series(list("0123456789abcdef")))
    nibbles = [alphabet.gather((h // (1 << (4 * i)) % 16).cast(pl.Int64)) for i in reversed(range(digits))]
    return pl.concat_str(nibbles)


def _sparse(h: pl.Expr, value: pl.Expr) -> pl.Expr:
    """``value``, or null in about SPARSE_NULL_PERCENT % of the rows (decided by hash ``h``)."""
    return pl.when(h % 100 < SPARSE_NULL_PERCENT).then(None).otherwise(value)


def _skewed(h: pl.Expr, values: list[str]) -> pl.Expr:
    """One of ``values``, the first ones most often."""
    return pl.lit(pl.Series(values)).gather(((_unit(h) ** 2) * len(values)).cast(pl.Int64))


def frame(first_row: int, rows: int, seed: int) -> pl.DataFrame:
    """Rows ``first_row .. first_row+rows`` of the data set, as a DataFrame."""
    words = _weighted_table(WORDS)
    n_words = len(words)
    row = pl.int_range(first_row, first_row + rows, dtype=_U64)
    base = pl.select(row=row)
    h = {k: _stream(pl.col("row"), seed, k) for k in range(24)}
    user = _mix(h[15] % USERS + _lit(seed))
    created = pl.from_epoch(
        (h[16] % (DAYS * 86_400) + FIRST_TIMESTAMP_SECONDS).cast(pl.Int64), time_unit="s"
    ).cast(pl.Datetime("us"))

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
            user_id=_sparse(h[17], "u-" + _hex(user, USER_ID_DIGITS)),
            created=_sparse(h[18], created),
            amount=pl.when(h[0] % 100 < NULL_PERCENT).then(None).otherwise(amount),
            quantity=((_unit(h[2]) ** 2) * 500).cast(pl.Int64) + 1,
            discount=_sparse(h[19], (_unit(h[20]) * 0.5).round(2)),
            flag=(h[3] % 4 == 0),
            day=pl.date(2020, 1, 1) + pl.duration(days=(h[4] % DAYS).cast(pl.Int64)),
            category=_skewed(h[13], CATEGORIES),
            city=_sparse(h[21], _skewed(h[22], CITIES)),
            rating=_sparse(h[23], (h[12] % 5 + 1).cast(pl.Int64)),
            note=note,
        )
    )


def _write(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.write_csv(tmp, **CSV_OPTIONS)
    tmp.rename(path)


def _bytes_per_row(seed: int) -> float:
    sample = frame(0, 20_000, seed)
    return len(sample.write_csv(include_header=False, **CSV_OPTIONS).encode()) / sample.height


def big_file_rows(nominal_rows: int, files: int, seed: int) -> list[int]:
    """Rows per big file: sizes spread evenly from SMALLEST_FILE to 2 - SMALLEST_FILE times nominal.

    The factors average 1, so the set keeps its nominal total (to a row per file);
    their order over the files is a seeded shuffle, so neither the first nor the
    last files are all big.
    """
    span = 2 * (1 - SMALLEST_FILE)
    factors = [SMALLEST_FILE + span * i / max(1, files - 1) for i in range(files)]
    random.Random(seed).shuffle(factors)
    return [max(10, round(nominal_rows * f)) for f in factors]


def generate_big(root: Path, p: Params, log) -> None:
    nominal = int(p.big_file_bytes / _bytes_per_row(p.seed))
    first = 0
    for i, rows in enumerate(big_file_rows(nominal, p.big_files, p.seed)):
        path = root / "big" / f"part-{i:03d}.csv"
        _write(frame(first, rows, p.seed), path)
        first += rows
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


def _gzip(src: Path, dst: Path) -> None:
    """Level 6, the default of `gzip`; no name or time in the header, so the bytes are reproducible."""
    with open(src, "rb") as fin, open(dst, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0) as out:
        shutil.copyfileobj(fin, out, 1 << 20)


def _zstd(src: Path, dst: Path) -> None:
    """Level 3 with content size and checksum in the frame, as the `zstd` command writes it."""
    with open(src, "rb") as fin, open(dst, "wb") as out:
        zstandard.ZstdCompressor(level=3, write_checksum=True).copy_stream(fin, out, size=src.stat().st_size)


def _typed(src: Path) -> pl.DataFrame:
    """A big CSV read back with the schema's types, so dates and booleans stay typed in the other formats."""
    return pl.read_csv(src, schema=polars_schema(pl))


def _ndjson(src: Path, dst: Path) -> None:
    _typed(src).write_ndjson(dst)


def _parquet(src: Path, dst: Path) -> None:
    pq.write_table(_typed(src).to_arrow(), dst, compression="zstd")


@dataclass(frozen=True)
class DataSet:
    """One directory of the data: which files are its own, how to read them, how they are made.

    ``pattern`` (relative to the set's directory) is the one selection every tool uses:
    Pravah's include glob, DuckDB's and Polars' glob, and the file list given to the
    Unix tools.  A derived set holds one file per big CSV, written by ``derive``.
    """

    pattern: str
    format: str  # csv | ndjson | parquet: the reader DuckDB and Polars use
    derive: Callable[[Path, Path], None] | None = None


SOURCE = "big"  # the set the derived ones are made from
SETS: dict[str, DataSet] = {
    "big": DataSet("*.csv", "csv"),
    "small": DataSet("**/*.csv", "csv"),
    "big-gz": DataSet("*.csv.gz", "csv", _gzip),
    "big-zst": DataSet("*.csv.zst", "csv", _zstd),
    "ndjson": DataSet("*.ndjson", "ndjson", _ndjson),
    "parquet": DataSet("*.parquet", "parquet", _parquet),
}
GENERATORS = {"big": generate_big, "small": generate_small}


def generate_derived(root: Path, name: str, log) -> None:
    """One file per big CSV, named after it with the set's suffix (part-000.csv -> part-000.csv.gz)."""
    ds = SETS[name]
    sources = files_of(root, SOURCE)
    suffix = "".join(Path(ds.pattern).suffixes)
    (root / name).mkdir(parents=True)
    for i, src in enumerate(sources):
        dst = root / name / (src.stem + suffix)
        ds.derive(src, dst)
        log(f"  {name} {i + 1}/{len(sources)}: {dst.name} {dst.stat().st_size / 1e6:.1f} MB")


def set_dir(data_dir: Path, scale: float) -> Path:
    return data_dir / f"scale-{scale:g}"


def files_of(root: Path, name: str) -> list[Path]:
    """The files of set ``name`` under a scale directory, sorted by path as Pravah's scan sorts them."""
    return sorted((root / name).glob(SETS[name].pattern), key=str)


def _inventory(root: Path, name: str) -> dict:
    sizes = [f.stat().st_size for f in files_of(root, name)]
    return {"files": len(sizes), "bytes": sum(sizes)}


def _read_manifest(root: Path) -> dict:
    try:
        return json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def ensure(data_dir: Path, p: Params, names=None, log=print, force: bool = False) -> Path:
    """Generate the sets ``names`` (default: all) for ``p`` unless identical ones are present.

    Other parameters than the manifest's discard every set.  A set whose files no longer
    match its inventory is made again, and then the sets derived from it are stale too.
    """
    root = set_dir(data_dir, p.scale)
    wanted = set(names or SETS)
    if any(SETS[n].derive for n in wanted):
        wanted.add(SOURCE)
    manifest = _read_manifest(root)
    if force or manifest.get("params") != asdict(p):
        shutil.rmtree(root, ignore_errors=True)
        manifest = {"params": asdict(p), "columns": COLUMNS, "inventory": {}}
    root.mkdir(parents=True, exist_ok=True)
    inventory = manifest["inventory"]
    for name in (n for n in SETS if n in wanted):
        if inventory.get(name) == _inventory(root, name):
            log(f"data: reusing {root.name}/{name} (manifest matches)")
            continue
        log(f"data: generating {root.name}/{name} (seed {p.seed})")
        started = time.monotonic()
        shutil.rmtree(root / name, ignore_errors=True)
        if SETS[name].derive:
            generate_derived(root, name, log)
        else:
            GENERATORS[name](root, p, log)
        inventory[name] = _inventory(root, name)
        if name == SOURCE:
            for derived in (n for n, ds in SETS.items() if ds.derive):
                inventory.pop(derived, None)
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"data: {name} done in {time.monotonic() - started:.0f} s")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="size factor (1 = ~1.5 GB + 20,000 small files)")
    ap.add_argument("--smoke", action="store_true", help="tiny set: same as --scale 0.01")
    ap.add_argument("--seed", type=int, default=Params.seed)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--force", action="store_true", help="regenerate even if the manifest matches")
    ap.add_argument("--sets", nargs="+", choices=list(SETS), help="only these sets (default: all)")
    args = ap.parse_args(argv)
    scale = 0.01 if args.smoke else args.scale
    root = ensure(args.data_dir, Params.for_scale(scale, args.seed), args.sets, force=args.force)
    print(json.dumps(json.loads((root / "manifest.json").read_text())["inventory"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
