"""What goes from a result document into places that must stay small (the CR's status)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUMMARY_KEYS = {
    "stats": ("rows",), "count": ("lines", "words", "bytes"), "checksum": ("algorithm",),
    "grep": ("pattern", "matches", "files_with_matches"), "convert": ("format", "compression", "rows"),
}


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    """The few numbers that go into the CR's status (the full document can be large)."""
    result = document["result"]
    summary = {"operation": document["operation"], "files": document["files"], "bytes": document["bytes"],
               "errors": len(document["errors"])}
    summary.update({key: result[key] for key in SUMMARY_KEYS[document["operation"]] if key in result})
    if document["operation"] == "stats":
        summary["columns"] = [column["name"] for column in result["columns"]][:20]
    return summary


def write_checksum_manifest(document: dict[str, Any], directory: Path) -> str:
    """Write a `sha256sum -c` / `b3sum -c` compatible manifest into `directory`; return its name."""
    result = document["result"]
    name = f"{result['algorithm']}sums.txt"
    (directory / name).write_text("".join(f"{entry['digest']}  {entry['path']}\n" for entry in result["files"]))
    return name
