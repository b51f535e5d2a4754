"""What `pravah run` shows a person: a live progress bar and a summary table."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                           TextColumn, TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table

from pravah import checks
from pravah.local import ProgressCallback

console = Console(stderr=True)


@contextlib.contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield a callback that draws engine progress; silent when stderr is not a terminal."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("files"), MofNCompleteColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=not (enabled and console.is_terminal), transient=True,
    )
    with progress:
        task = progress.add_task("processing", total=None)
        files_task = progress.add_task("files", total=None, visible=False)

        def update(snapshot: dict[str, int]) -> None:
            progress.update(task, total=snapshot["bytes_total"] or None, completed=snapshot["bytes_done"],
                            description=f"{snapshot['files_done']}/{snapshot['files_total']} files")
            progress.update(files_task, total=snapshot["files_total"], completed=snapshot["files_done"])

        yield update


def summary(document: dict[str, Any]) -> None:
    """Print a readable summary of a result document to stdout."""
    out = Console(width=None if sys.stdout.isatty() else 160)
    result = document["result"]
    op = document["operation"]
    out.print(f"[bold]{op}[/bold]: {document['files']} files, {human_bytes(document['bytes'])}, "
              f"{document.get('threads', '?')} threads, {len(document['errors'])} errors")
    tables = {"stats": stats_table, "count": count_table, "checksum": checksum_table,
              "grep": grep_table, "convert": convert_table}
    if "reuse" in document:
        out.print(reuse_line(document["reuse"]))
    out.print(tables[op](result))
    if "checks" in document:
        out.print(checks_table(document["checks"]))
    bad_rows = result.get("badRows") or {"total": 0, "rows": []}
    if bad_rows["total"]:
        print_records(out, bad_rows["rows"], f"{bad_rows['total']} rows left out or mended (badRows)",
                      bad_rows["total"])
    if document["errors"]:
        print_records(out, document["errors"], "files that could not be processed", len(document["errors"]))


def print_records(out: Console, records: list[dict[str, Any]], title: str, total: int, shown: int = 20) -> None:
    """The first records of a list of (path, line, reason), and how many more there are."""
    table = Table("path", "line", "reason", title=title, title_justify="left")
    for record in records[:shown]:
        table.add_row(record["path"], str(record.get("line") or ""), record["reason"])
    out.print(table)
    if total > shown:
        out.print(f"... and {total - shown} more (see --json)")


REUSE_COUNTS = ("reused", "new", "changed", "retried", "removed", "rerun", "gone")


def reuse_line(reuse: dict[str, Any]) -> str:
    """What an incremental run or a re-run read again and what it took over."""
    counts = ", ".join(f"{reuse[key]} {key}" for key in REUSE_COUNTS if key in reuse)
    read = human_bytes(reuse.get("bytes_read", 0))
    return f"{reuse['mode']}{' over ' + reuse['of'] if reuse.get('of') else ''}: {counts}; {read} read"


def stats_table(result: dict[str, Any]) -> Table:
    table = Table("column", "type", "count", "nulls", "min", "max", "mean", "stddev", "distinct",
                  "quantiles", "top value", title=f"{result['rows']} rows", title_justify="left",
                  caption=mixed_kinds(result["columns"]), caption_justify="left")
    table.columns[0].no_wrap = True
    for column in result["columns"]:
        quantiles = "\n".join(f"p{float(q) * 100:g} {fmt(v)}" for q, v in (column["quantiles"] or {}).items())
        top = column["top"][0] if column["top"] else None
        table.add_row(column["name"], column["type"], str(column["count"]), str(column["nulls"]),
                      fmt(column["min"]), fmt(column["max"]), fmt(column["mean"]), fmt(column["stddev"]),
                      str(column["distinct"]), quantiles, f"{top['value']} ({top['count']})" if top else "")
    return table


def mixed_kinds(columns: list[dict[str, Any]]) -> str | None:
    """The NDJSON fields that held values of several JSON kinds, with the count of each."""
    mixed = [f"{column['name']} ({', '.join(f'{kind} {n}' for kind, n in column['jsonTypes'].items())})"
             for column in columns if len(column.get("jsonTypes") or {}) > 1]
    return "mixed JSON types: " + "; ".join(mixed) if mixed else None


def checks_table(report: dict[str, Any]) -> Table:
    table = Table("#", "column", "rule", "observed", "result",
                  title=f"checks: {report['failed']} failed, {report['warned']} warned", title_justify="left")
    for index, entry in enumerate(report["results"]):
        outcome = "pass" if entry["passed"] else ("[red]FAIL" if entry["severity"] == "error" else "[yellow]warn")
        observed = checks.compact(entry["observed"]) + (f" ({entry['reason']})" if entry.get("reason") else "")
        table.add_row(str(index), escape(entry.get("column", "")), entry["rule"], escape(observed), outcome)
    return table


def count_table(result: dict[str, Any]) -> Table:
    table = Table("path", "lines", "words", "bytes")
    for entry in result["files"][:20]:
        table.add_row(entry["path"], str(entry["lines"]), str(entry["words"]), str(entry["bytes"]))
    table.add_row("[bold]total", str(result["lines"]), str(result["words"]), str(result["bytes"]))
    return table


def checksum_table(result: dict[str, Any]) -> Table:
    table = Table("digest", "bytes", "path", title=f"{result['algorithm']}", title_justify="left")
    for entry in result["files"][:20]:
        table.add_row(entry["digest"], str(entry["bytes"]), entry["path"])
    if result.get("manifest"):
        table.caption = f"manifest: {result['manifest']}"
    return table


def grep_table(result: dict[str, Any]) -> Table:
    table = Table("path", "line", "text", title=f"{result['matches']} matching lines in "
                  f"{result['files_with_matches']} files", title_justify="left")
    for entry in result["files"][:20]:
        for line in entry["lines"][:5]:
            table.add_row(entry["path"], str(line["line"]), line["text"][:120])
    return table


def convert_table(result: dict[str, Any]) -> Table:
    table = Table("source", "parquet", "rows", title=f"{result['rows']} rows, {result['compression']}",
                  title_justify="left")
    for entry in result["outputs"][:20]:
        table.add_row(entry["source"], entry["path"], str(entry["rows"]))
    return table


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
