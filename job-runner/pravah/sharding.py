"""Split a file list into N shards balanced by bytes.

The first runner of a job plans the shards once and stores the plan with the list; every
shard and every retry reads its share from that stored list. The plan depends on the list's
content only, not on its order, so `pravah run --shard` gives the same shares.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator, Sequence

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
    if count == 1:
        return sorted(files)  # the plan's order, without balancing what one shard holds whole
    return plan_shards(files, count)[index]


def assign(files: Iterable[FileEntry], count: int) -> Iterator[tuple[int, int, str, int]]:
    """The stored form of a job's list: (shard, position in the shard, path, bytes) rows."""
    for shard, entries in enumerate(plan_shards(files, count)):
        for position, (path, size) in enumerate(entries):
            yield shard, position, path, size


def list_digest(files: Iterable[FileEntry]) -> str:
    """sha256 of the list as `path NUL bytes LF` lines in path order: the same files, the same digest."""
    digest = hashlib.sha256()
    for path, size in sorted(files):
        digest.update(f"{path}\0{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
