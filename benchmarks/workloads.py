"""What the benchmark measures: tools, workloads and goals, as data.

A *tool* turns (context, workload) into a job: either command lines run
concurrently by run.py (the classic Unix tools) or a spec for worker.py (the
libraries).  A *workload* names an operation, a data set, the rivals that run
it beside Pravah, the goals (ratios) to report, and a cross-check of results.
Adding a variant is adding a row here, not code in run.py.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

# --- context and jobs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSet:
    """One data set: its root, its files (relative paths, sorted) with sizes, and how to read them.

    ``pattern`` is the glob (relative to the root) that selected the files, given as is to
    Pravah, DuckDB and Polars; ``format`` names the reader DuckDB and Polars use.
    """

    name: str
    root: Path
    files: tuple[tuple[str, int], ...]
    pattern: str
    format: str

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)

    def fraction(self, fraction: float) -> FileSet:
        """The first part of the files in path order, as worker.take_fraction selects them."""
        if fraction >= 1:
            return self
        keep = max(1, math.ceil(len(self.files) * fraction))
        return replace(self, files=self.files[:keep])

    def shards(self, n: int) -> list[list[str]]:
        """Split the file list into ``n`` contiguous parts of about equal bytes.

        This is how a person runs a single-threaded tool on n cores: halve the
        list and start one process per half.
        """
        total, parts, current, done = self.bytes, [], [], 0
        for path, size in self.files:
            boundary = total * (len(parts) + 1) / n
            # Close the part here if that lands nearer its share than taking one more file.
            if current and len(parts) < n - 1 and abs(done - boundary) <= abs(done + size - boundary):
                parts.append(current)
                current = []
            current.append(path)
            done += size
        parts.append(current)
        return [p for p in parts if p]


@dataclass(frozen=True)
class Ctx:
    sets: dict[str, FileSet]
    threads: int
    out_dir: Path


@dataclass(frozen=True)
class CmdJob:
    """Processes started together; time runs from the first start to the last exit."""

    argvs: list[list[str]]
    cwd: Path
    ok_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class WorkerJob:
    """One worker.py process; the time is the one it reports (work only)."""

    spec: dict


Job = CmdJob | WorkerJob
Parser = Callable[[list[str]], dict]


@dataclass(frozen=True)
class Tool:
    key: str
    label: Callable[[int], str]  # threads -> label shown in the table
    build: Callable[[Ctx, Workload], Job]
    parse: Parser | None = None  # captured stdout of each process -> summary for the checks
    needs: str | None = None  # executable that must be on PATH


@dataclass(frozen=True)
class Goal:
    """Pravah against the best of ``against``.

    metric "speed": Pravah MB/s / baseline MB/s must be >= target.
    metric "memory": Pravah peak RSS / baseline peak RSS must be <= target.
    """

    against: tuple[str, ...]
    target: float
    metric: str = "speed"

    def describe(self, labels: dict[str, str]) -> str:
        names = " / ".join(labels.get(a, a) for a in self.against)
        if self.metric == "memory":
            return f"peak RSS <= {self.target:g}x {names}"
        best = "best of " if len(self.against) > 1 else ""
        return f">= {self.target:g}x {best}{names}"


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str  # a set of gen.SETS
    op: str  # Pravah operation
    options: dict
    rivals: tuple[str, ...]
    goals: tuple[Goal, ...] = ()
    check: Check | None = None

    @property
    def key(self) -> str:
        return f"{self.name} ({self.dataset})"


# --- output parsers (for the cross-checks) ------------------------------------------------------


def parse_wc(outputs: list[str]) -> dict:
    """`wc [-l]` lines: counts then path (none when reading a pipe); 'total' lines skipped, the rest summed."""
    sums: list[int] = []
    for out in outputs:
        for line in out.splitlines():
            fields = line.split()
            if not fields or fields[-1] == "total":
                continue
            nums = [int(x) for x in itertools.takewhile(str.isdigit, fields)]
            sums = [a + b for a, b in zip(sums, nums)] if sums else nums
    keys = ("lines", "words", "bytes")[: len(sums)]
    return dict(zip(keys, sums))


_OPENSSL_LINE = re.compile(r"^\S+\((?P<path>.*)\)= (?P<digest>[0-9a-f]+)$")
_SUM_LINE = re.compile(r"^(?P<digest>[0-9a-f]{32,}) [ *](?P<path>.*)$")


def parse_digest_lines(outputs: list[str]) -> dict:
    """`b3sum` / `sha256sum` ("hex  path") and `openssl dgst` ("ALG(path)= hex") output."""
    digests = {}
    for out in outputs:
        for line in out.splitlines():
            m = _OPENSSL_LINE.match(line) or _SUM_LINE.match(line)
            if m:
                digests[m["path"]] = m["digest"]
    return {"digests": digests}


def parse_counts(outputs: list[str]) -> dict:
    """`grep -c -H` / `rg -c -H` output: "path:count" per file."""
    total = 0
    for out in outputs:
        for line in out.splitlines():
            _, _, count = line.rpartition(":")
            if count.isdigit():
                total += int(count)
    return {"matches": total}


def parse_matching_lines(outputs: list[str]) -> dict:
    """`grep -n -H` / `rg -n -H` output: one "path:line:text" per matching line.

    ``kept`` is how many of those lines Pravah keeps with its cap of GREP_KEEP per file.
    """
    per_file: dict[str, int] = {}
    for out in outputs:
        for line in out.splitlines():
            path, _, _ = line.partition(":")
            per_file[path] = per_file.get(path, 0) + 1
    return {"matches": sum(per_file.values()), "kept": sum(min(n, GREP_KEEP) for n in per_file.values())}


# --- cross-checks -------------------------------------------------------------------------------
# Each check gets the workload, the data set and {tool key: summary}; it returns
# (status, message) pairs, status "ok", "WARN" or "info".  A speed figure is only worth
# something if the fast tool computed the same answer.

Check = Callable[["Workload", FileSet, dict], list[tuple[str, str]]]


def _pravah_result(summaries: dict) -> dict | None:
    doc = summaries.get("pravah", {}).get("doc")
    return json.loads(Path(doc).read_text())["result"] if doc else None


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(p)
    return str(p)


def _compare(what: str, mine, summaries: dict, rivals: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for tool in rivals:
        theirs = summaries.get(tool, {}).get(what)
        if theirs is not None:
            ok = theirs == mine
            out.append(("ok" if ok else "WARN", f"{what}: pravah {mine} {'=' if ok else '!='} {tool} {theirs}"))
    return out


def check_rows(wl: Workload, fs: FileSet, summaries: dict) -> list[tuple[str, str]]:
    result = _pravah_result(summaries)
    return _compare("rows", result["rows"], summaries, wl.rivals) if result else []


def check_count(wl: Workload, fs: FileSet, summaries: dict) -> list[tuple[str, str]]:
    result = _pravah_result(summaries)
    if result is None:
        return []
    return [c for key in ("lines", "words", "bytes") for c in _compare(key, result[key], summaries, wl.rivals)]


def check_digests(wl: Workload, fs: FileSet, summaries: dict) -> list[tuple[str, str]]:
    result = _pravah_result(summaries)
    if result is None:
        return []
    mine = {_relative(e["path"], fs.root): e["digest"].lower() for e in result["files"]}
    out = []
    for tool, summary in summaries.items():
        theirs = summary.get("digests")
        if not theirs:
            continue
        agree = sum(1 for path, digest in theirs.items() if mine.get(path) == digest)
        status = "ok" if agree == len(theirs) == len(mine) else "WARN"
        message = f"digests: {agree} of {len(theirs)} files agree with {tool} (pravah listed {len(mine)})"
        out.append((status, message))
    return out


def check_convert(wl: Workload, fs: FileSet, summaries: dict) -> list[tuple[str, str]]:
    """Row counts, plus the output sizes: same codec, so a large gap means different encodings."""
    mine = summaries.get("pravah", {}).get("output_bytes")
    sizes = ", ".join(f"{tool} {s['output_bytes'] / 1e6:,.1f} MB" for tool, s in summaries.items()
                      if "output_bytes" in s)
    info = [("info", f"parquet size: {sizes}")] if mine else []
    return check_rows(wl, fs, summaries) + info


def check_grep(wl: Workload, fs: FileSet, summaries: dict) -> list[tuple[str, str]]:
    """The match totals; when the rivals print the lines, also the lines Pravah kept."""
    result = _pravah_result(summaries)
    if result is None:
        return []
    out = _compare("matches", result["matches"], summaries, wl.rivals)
    if wl.options["max_matches_per_file"]:
        kept = sum(len(f["lines"]) for f in result["files"])
        out += _compare("kept", kept, summaries, wl.rivals)
    return out


# --- tools --------------------------------------------------------------------------------------


def _per_shard(*argv: str, ok: tuple[int, ...] = (0,)) -> Callable[[Ctx, Workload], CmdJob]:
    """One process per shard: ``argv`` followed by that shard's files."""

    def build(ctx: Ctx, wl: Workload) -> CmdJob:
        fs = ctx.sets[wl.dataset]
        args = [a.format(**wl.options) for a in argv]
        return CmdJob([args + shard for shard in fs.shards(ctx.threads)], fs.root, ok)

    return build


def _single(*argv: str, ok: tuple[int, ...] = (0,)) -> Callable[[Ctx, Workload], CmdJob]:
    """One process over all files (for tools that use several threads themselves)."""

    def build(ctx: Ctx, wl: Workload) -> CmdJob:
        fs = ctx.sets[wl.dataset]
        args = [a.format(threads=ctx.threads, **wl.options) for a in argv]
        return CmdJob([args + [p for p, _ in fs.files]], fs.root, ok)

    return build


def _worker(tool: str, threads: int | None = None, fraction: float = 1.0, query: str = "aggregates"):
    """A worker.py run; ``query`` picks DuckDB's stats query (worker.DUCKDB_STATS)."""

    def build(ctx: Ctx, wl: Workload) -> WorkerJob:
        fs = ctx.sets[wl.dataset]
        return WorkerJob({
            "tool": tool, "task": wl.op, "root": str(fs.root), "pattern": fs.pattern, "format": fs.format,
            "threads": threads or ctx.threads, "options": wl.options, "fraction": fraction, "query": query,
        })

    return build


def _count_decompressed(cat: str) -> Tool:
    """`cat FILES | wc -l`, one pipeline per shard: how compressed files' lines are counted by hand.

    The shard's files follow ``sh -c SCRIPT sh``, so the script sees them as "$@".
    """
    return Tool(f"{cat}-wc", lambda n: f"{cat} | wc -l, {n} pipelines",
                _per_shard("sh", "-c", f'{cat} -- "$@" | wc -l', "sh"), parse_wc, cat)


GREP_OK = (0, 1)  # 1 = no line matched

# Pravah variants that read only part of the data set (for the memory goal).
FRACTIONS = {"pravah-quarter": 0.25}

TOOLS: dict[str, Tool] = {t.key: t for t in [
    Tool("pravah", lambda n: f"pravah, {n} threads", _worker("pravah")),
    Tool("pravah-1t", lambda n: "pravah, 1 thread", _worker("pravah", threads=1)),
    Tool("pravah-quarter", lambda n: f"pravah, {n} threads, 1/4 of the files",
         _worker("pravah", fraction=FRACTIONS["pravah-quarter"])),
    Tool("duckdb", lambda n: f"duckdb, {n} threads", _worker("duckdb")),
    Tool("duckdb-summarize", lambda n: f"duckdb SUMMARIZE, {n} threads", _worker("duckdb", query="summarize")),
    Tool("polars", lambda n: f"polars, {n} threads", _worker("polars")),
    Tool("wc-l", lambda n: f"wc -l, {n} processes", _per_shard("wc", "-l"), parse_wc, "wc"),
    Tool("wc", lambda n: f"wc (lines words bytes), {n} processes", _per_shard("wc"), parse_wc, "wc"),
    _count_decompressed("zcat"),
    _count_decompressed("zstdcat"),
    Tool("b3sum", lambda n: f"b3sum, 1 process, {n} threads", _single("b3sum"), parse_digest_lines, "b3sum"),
    Tool("b3sum-xn", lambda n: f"b3sum, {n} processes", _per_shard("b3sum", "--num-threads", "1"),
         parse_digest_lines, "b3sum"),
    Tool("openssl", lambda n: f"openssl dgst -sha256, {n} processes", _per_shard("openssl", "dgst", "-sha256"),
         parse_digest_lines, "openssl"),
    Tool("sha256sum", lambda n: f"sha256sum, {n} processes", _per_shard("sha256sum"),
         parse_digest_lines, "sha256sum"),
    Tool("rg", lambda n: f"ripgrep -j{n} -c, 1 process",
         _single("rg", "--no-config", "--no-ignore", "-j", "{threads}", "-c", "-H", "-e", "{pattern}", "--",
                 ok=GREP_OK), parse_counts, "rg"),
    Tool("grep", lambda n: f"grep -E -c, {n} processes",
         _per_shard("grep", "-E", "-c", "-H", "-e", "{pattern}", "--", ok=GREP_OK), parse_counts, "grep"),
    Tool("rg-lines", lambda n: f"ripgrep -j{n} -n, 1 process",
         _single("rg", "--no-config", "--no-ignore", "-j", "{threads}", "-n", "-H", "-e", "{pattern}", "--",
                 ok=GREP_OK), parse_matching_lines, "rg"),
    Tool("grep-lines", lambda n: f"grep -E -n, {n} processes",
         _per_shard("grep", "-E", "-n", "-H", "-e", "{pattern}", "--", ok=GREP_OK), parse_matching_lines, "grep"),
]}


# --- workloads ----------------------------------------------------------------------------------

STATS = {"delimiter": ",", "header": True, "quantiles": [0.5, 0.99], "top": 5}
CONVERT = {"to": "parquet", "compression": "zstd", "delimiter": ",", "header": True}
# Two ways to grep, each compared like with like.  Counting: Pravah keeps no
# line (max_matches_per_file 0) and the rivals print counts (-c).  Lines (the
# small files, where no file has more than GREP_KEEP matches, so both sides
# write every matching line): Pravah keeps up to GREP_KEEP lines per file (its
# default) and the rivals print each matching line with its number (-n).
GREP_KEEP = 100
PATTERNS = {
    "literal": "timeout",
    "alternation": "error|timeout|refused",
    "class": "[0-9]{4}-[0-9]{2}-3[01]",
}


def _workloads() -> list[Workload]:
    out = [
        Workload("stats", "big", "stats", STATS, ("pravah-1t", "pravah-quarter", "duckdb", "polars"),
                 (Goal(("duckdb",), 2), Goal(("polars",), 2), Goal(("pravah-1t",), 1.8),
                  Goal(("pravah-quarter",), 1.25, "memory")), check_rows),
        Workload("stats", "small", "stats", STATS, ("duckdb", "polars"),
                 (Goal(("duckdb",), 10),), check_rows),
    ]
    for ds in ("big", "small"):
        out += [
            Workload("count lines", ds, "count", {}, ("wc-l",), (Goal(("wc-l",), 0.9),), check_count),
            Workload("count lines+words+bytes", ds, "count", {}, ("wc",), (Goal(("wc",), 3),), check_count),
            Workload("checksum blake3", ds, "checksum", {"algorithm": "blake3"}, ("b3sum", "b3sum-xn"),
                     (Goal(("b3sum", "b3sum-xn"), 0.9),), check_digests),
            Workload("checksum sha256", ds, "checksum", {"algorithm": "sha256"}, ("openssl", "sha256sum"),
                     (Goal(("openssl",), 0.9),), check_digests),
        ]
        for kind, pattern in PATTERNS.items():
            options = {"pattern": pattern, "ignore_case": False, "max_matches_per_file": 0}
            out.append(Workload(f"grep {kind}", ds, "grep", options, ("rg", "grep"),
                                (Goal(("rg", "grep"), 0.9),), check_grep))
            if ds == "small":
                options = {**options, "max_matches_per_file": GREP_KEEP}
                out.append(Workload(f"grep {kind}, lines", ds, "grep", options, ("rg-lines", "grep-lines"),
                                    (Goal(("rg-lines", "grep-lines"), 0.9),), check_grep))
    out.append(Workload("convert to parquet (zstd)", "big", "convert", CONVERT, ("duckdb", "polars"),
                        (Goal(("duckdb",), 1.5),), check_convert))
    # The big set again, compressed or in another format: each tool reads the files the set's pattern selects.
    out += [
        Workload("stats", "big-gz", "stats", STATS, ("duckdb",), (Goal(("duckdb",), 2),), check_rows),
        Workload("count lines", "big-gz", "count", {}, ("zcat-wc",), (Goal(("zcat-wc",), 1),), check_count),
        Workload("count lines", "big-zst", "count", {}, ("zstdcat-wc",), (Goal(("zstdcat-wc",), 1),),
                 check_count),
        Workload("stats", "ndjson", "stats", STATS, ("duckdb", "polars"),
                 (Goal(("duckdb",), 2), Goal(("polars",), 2)), check_rows),
        Workload("stats", "parquet", "stats", STATS, ("duckdb-summarize",), (Goal(("duckdb-summarize",), 1),),
                 check_rows),
    ]
    return out


WORKLOADS: list[Workload] = _workloads()
