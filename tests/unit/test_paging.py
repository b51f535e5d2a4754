"""The runner reads the operator's lists a page at a time: every row once, in order, and no
request only to learn that a list has ended."""

import asyncio
from operator import itemgetter

import pytest

from pravah.runner import paged


class PagedList:
    """A list served like the operator's: rows after a cursor, at most `limit` of them."""

    def __init__(self, rows, key):
        self.rows, self.key, self.calls = rows, key, []

    async def fetch(self, after, limit):
        self.calls.append(after)
        return [row for row in self.rows if self.key(row) > after][:limit]


def read_all(served: PagedList, start, limit, cursor):
    async def collect():
        return [row async for row in paged(served.fetch, start, limit, cursor)]

    return asyncio.run(collect())


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 6, 7, 9, 10])
def test_every_row_once_in_order_and_one_request_per_page(count):
    rows = [(position, f"dir/file-{position:03}.csv", position * 10) for position in range(count)]
    served = PagedList(rows, itemgetter(0))
    assert read_all(served, -1, 3, itemgetter(0)) == rows
    # a short page ends the list; only a list that fills its last page needs one more request
    assert len(served.calls) == count // 3 + 1
    assert served.calls == [-1] + [rows[end - 1][0] for end in range(3, count + 1, 3)]


def test_a_list_that_fits_one_page_is_one_request():
    rows = [{"path": f"p/{name}", "reason": "gone"} for name in "abcde"]
    served = PagedList(rows, itemgetter("path"))
    assert read_all(served, "", 1_600, itemgetter("path")) == rows
    assert served.calls == [""]


def test_pages_after_a_composite_cursor():
    rows = [(shard, batch, f"partial-{shard}-{batch}") for shard in range(3) for batch in range(4)]
    served = PagedList(rows, itemgetter(0, 1))
    assert read_all(served, (-1, -1), 5, itemgetter(0, 1)) == rows
    assert served.calls == [(-1, -1), (1, 0), (2, 1)]
