"""What goes from a result document into places that must stay small (the CR's status)."""

from __future__ import annotations

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
