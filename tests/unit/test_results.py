"""Result documents written as streams: the text must parse to the document with its lists."""

import io
import json
import random

import pytest

from pravah.results import MemorySpool, Spool, merged, write_document, write_streamed


def test_streamed_lists_land_at_their_keys_in_order():
    document = {"operation": "checksum", "files": 3, "errors": None, "result": {"algorithm": "sha256", "files": None}}
    entries = [{"path": f"f{index}", "digest": f"{index:064x}"} for index in range(3)]
    seen = []
    out = io.StringIO()
    write_streamed(out, document, {("errors",): iter([]), ("result", "files"): iter(entries)},
                   {("result", "files"): seen.append})
    assert json.loads(out.getvalue()) == {"operation": "checksum", "files": 3, "errors": [],
                                          "result": {"algorithm": "sha256", "files": entries}}
    assert seen == entries


@pytest.mark.parametrize("on_disk", [True, False], ids=["disk", "memory"])
def test_spools_merge_into_one_ordered_stream(tmp_path, on_disk):
    paths = sorted(f"dir/{random.Random(7).randrange(10**6)}-{index}.csv" for index in range(300))
    shards = [paths[index::3] for index in range(3)]  # each shard's entries come in path order
    spools = []
    for number, mine in enumerate(shards):
        spool = Spool(tmp_path, f"shard-{number}") if on_disk else MemorySpool()
        for start in range(0, len(mine), 7):  # batch by batch
            spool.add("files", ({"path": path} for path in mine[start:start + 7]))
        spool.close()
        spools.append(spool)
    assert [entry["path"] for entry in merged(spools, "files")] == paths
    assert list(merged(spools, "errors")) == []


@pytest.mark.parametrize("operation, file_list", [("grep", "files"), ("convert", "outputs"), ("stats", None)])
def test_a_whole_document_is_written_with_one_entry_per_line(operation, file_list):
    errors = [{"path": f"bad-{index}.csv", "reason": "line 3: ragged, \"quoted\"\nreason"} for index in range(2)]
    result = {"total": 5, "nested": {"k": [1, 2]}}
    if file_list:
        result[file_list] = [{"path": f"f{index}", "lines": [{"line": 1, "text": "a,\"b\""}]} for index in range(4)]
    document = {"operation": operation, "files": 6, "bytes": 10, "errors": errors, "result": result}
    before = json.dumps(document)
    out = io.StringIO()
    write_document(out, document)
    text = out.getvalue()
    assert json.loads(text) == document
    assert json.dumps(document) == before  # the caller's document is left as it was
    lines = text.splitlines()
    for entry in errors + (result[file_list] if file_list else []):
        assert json.dumps(entry) in lines or json.dumps(entry) + "," in lines
