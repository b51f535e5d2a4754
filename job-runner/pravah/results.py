"""Result documents: written as a stream into the output storage, summarized for PostgreSQL
and the CR's status.

A job's result can list millions of files. The merge keeps only the small aggregate part
of the partials in memory (the engine's `Aggregate.add_split`); the per-file lists and the
errors are spooled to disk per shard, already in order, and merged into the written document
as streams.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pravah import checks

SUMMARY_KEYS = {
    "stats": ("rows",), "count": ("lines", "words", "bytes"), "checksum": ("algorithm",),
    "grep": ("pattern", "matches", "files_with_matches"), "convert": ("format", "compression", "rows"),
}
# The per-file list in each operation's result (and in its partial's body): what is streamed.
FILE_LISTS = {"count": "files", "checksum": "files", "grep": "files", "convert": "outputs"}
ERROR_SAMPLES = 10


def summarize(document: dict[str, Any], errors: int | None = None) -> dict[str, Any]:
    """The few numbers that go into the CR's status (the full document can be large).
    `errors` is the error count when the document's error list was streamed elsewhere."""
    result = document["result"]
    summary = {"operation": document["operation"], "files": document["files"], "bytes": document["bytes"],
               "errors": len(document["errors"]) if errors is None else errors}
    summary.update({key: result[key] for key in SUMMARY_KEYS[document["operation"]] if key in result})
    if document["operation"] == "stats":
        summary["columns"] = [column["name"] for column in result["columns"]][:20]
    if "checks" in document:
        summary["checks"] = checks.summarize(document["checks"])
    if "reuse" in document:
        summary["reuse"] = document["reuse"]
    return summary


def manifest_line(entry: dict[str, Any]) -> str:
    return f"{entry['digest']}  {entry['path']}\n"


def manifest_name(document: dict[str, Any]) -> str:
    return f"{document['result']['algorithm']}sums.txt"


def write_checksum_manifest(document: dict[str, Any], directory: Path) -> str:
    """Write a `sha256sum -c` / `b3sum -c` compatible manifest into `directory`; return its name."""
    name = manifest_name(document)
    (directory / name).write_text("".join(manifest_line(entry) for entry in document["result"]["files"]))
    return name


def sort_key(item: dict[str, Any]) -> str:
    """The order the engine sorts errors and per-file entries in (by source, else path)."""
    return item.get("source", item.get("path", ""))


class Spool:
    """One shard's errors and per-file entries, appended batch by batch (already in order),
    on disk: a runner's result can list more files than fit in memory."""

    def __init__(self, directory: Path, name: str):
        self.paths = {kind: directory / f"{name}.{kind}.jsonl" for kind in ("errors", "files")}
        self.handles = {kind: path.open("w") for kind, path in self.paths.items()}

    def add(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        handle = self.handles[kind]
        for item in items:
            handle.write(json.dumps(item) + "\n")

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def read(self, kind: str) -> Iterator[dict[str, Any]]:
        with self.paths[kind].open() as handle:
            for line in handle:
                yield json.loads(line)


class MemorySpool:
    """A Spool kept in lists, for `pravah run`: it holds the whole document at the end anyway
    (to judge its checks and print it), and writing and parsing every entry once more on
    disk took longer than the search of 20,000 small files."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {"errors": [], "files": []}

    def add(self, kind: str, items: Iterable[dict[str, Any]]) -> None:
        self.items[kind].extend(items)

    def close(self) -> None:
        """Nothing to close: kept for the Spool interface."""

    def read(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter(self.items[kind])


def merged(spools: Iterable[Spool | MemorySpool], kind: str) -> Iterator[dict[str, Any]]:
    """The spools' entries of one kind in one ordered stream."""
    return heapq.merge(*(spool.read(kind) for spool in spools), key=sort_key)


def write_streamed(out: IO[str], document: dict[str, Any], streams: dict[tuple[str, ...], Iterable[Any]],
                   on_item: dict[tuple[str, ...], Callable[[Any], None]] | None = None) -> None:
    """Write `document` as JSON with each list at a key path in `streams` written item by
    item from its iterable (the document holds a placeholder there); `on_item` callbacks see
    each item as it is written."""
    markers = {}
    for index, keys in enumerate(streams):
        marker = f"\0stream-{index}"
        parent = document
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = marker
        markers[json.dumps(marker)] = keys
    text = json.dumps(document)
    while markers:
        position, placeholder = min((text.find(marker), marker) for marker in markers)
        keys = markers.pop(placeholder)
        out.write(text[:position] + "[")
        for count, item in enumerate(streams[keys]):
            out.write(("\n" if count == 0 else ",\n") + json.dumps(item))
            if on_item and keys in on_item:
                on_item[keys](item)
        out.write("\n]")
        text = text[position + len(placeholder):]
    out.write(text + "\n")


def write_document(out: IO[str], document: dict[str, Any]) -> None:
    """Write a whole document in a runner's `result.json` layout (one error and one per-file
    entry per line): Python's JSON encoder is only fast without `indent`, and a grep over
    20,000 files took five times as long to indent as to search."""
    result = dict(document["result"])
    streams: dict[tuple[str, ...], Iterable[Any]] = {("errors",): document["errors"]}
    if (key := FILE_LISTS.get(document["operation"])) in result:
        streams[("result", key)] = result[key]
    write_streamed(out, {**document, "result": result}, streams)
