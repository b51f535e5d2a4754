"""Split a file list into N shards balanced by bytes.

Runner pods call this with their completion index, so it must give every pod the same
answer from the same listing: the order of the input does not matter, only its content.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

FileEntry = tuple[str, int]


def plan_shards(files: Iterable[FileEntry], count: int) -> list[list[FileEntry]]:
    """Assign each file to exactly one of `count` shards, largest first to the lightest shard.

    Greedy longest-processing-time keeps the heaviest shard within one file of the ideal
    share; ties break on path and shard index so the plan is deterministic.
    """
    if count < 1:
        raise ValueError("shard count must be >= 1")
    ordered = sorted(files, key=lambda entry: (-entry[1], entry[0]))
    shards: list[list[FileEntry]] = [[] for _ in range(count)]
    lightest = [(0, index) for index in range(count)]
    for path, size in ordered:
        load, index = heapq.heappop(lightest)
        shards[index].append((path, size))
        heapq.heappush(lightest, (load + size, index))
    for shard in shards:
        shard.sort()
    return shards


def shard_files(files: Sequence[FileEntry], index: int, count: int) -> list[FileEntry]:
    """The files of shard `index` (0-based) out of `count`."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return plan_shards(files, count)[index]
