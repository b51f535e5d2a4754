"""Result documents written as streams: the text must parse to the document with its lists."""

import io
import json
import random

from pravah.results import Spool, merged, write_streamed


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


def test_spools_merge_into_one_ordered_stream(tmp_path):
    paths = sorted(f"dir/{random.Random(7).randrange(10**6)}-{index}.csv" for index in range(300))
    shards = [paths[index::3] for index in range(3)]  # each shard's entries come in path order
    spools = []
    for number, mine in enumerate(shards):
        spool = Spool(tmp_path, f"shard-{number}")
        for start in range(0, len(mine), 7):  # batch by batch
            spool.add("files", ({"path": path} for path in mine[start:start + 7]))
        spool.close()
        spools.append(spool)
    assert [entry["path"] for entry in merged(spools, "files")] == paths
    assert list(merged(spools, "errors")) == []
