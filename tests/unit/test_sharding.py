import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pravah.sharding import assign, list_digest, plan_shards, shard_files

file_lists = st.lists(
    st.tuples(st.text(alphabet="abcdefgh/._", min_size=1, max_size=12), st.integers(0, 10**9)),
    unique_by=lambda entry: entry[0], max_size=200,
)


@given(files=file_lists, count=st.integers(1, 16))
def test_every_file_lands_in_exactly_one_shard(files, count):
    shards = [shard_files(files, index, count) for index in range(count)]
    taken = [entry for shard in shards for entry in shard]
    assert sorted(taken) == sorted(files)


@given(files=file_lists, count=st.integers(1, 8), seed=st.integers(0, 2**32))
@settings(max_examples=50)
def test_plan_does_not_depend_on_listing_order(files, count, seed):
    shuffled = list(files)
    random.Random(seed).shuffle(shuffled)
    assert plan_shards(files, count) == plan_shards(shuffled, count)


@given(files=file_lists, count=st.integers(1, 8))
def test_heaviest_shard_is_within_one_file_of_the_ideal(files, count):
    loads = [sum(size for _, size in shard) for shard in plan_shards(files, count)]
    total = sum(size for _, size in files)
    largest = max((size for _, size in files), default=0)
    assert max(loads) <= total / count + largest


def test_balances_bytes_not_file_counts():
    files = [("big", 1000)] + [(f"small{i}", 10) for i in range(100)]
    loads = [sum(size for _, size in shard) for shard in plan_shards(files, 2)]
    assert sorted(loads) == [1000, 1000]


def test_rejects_index_outside_the_shard_count():
    with pytest.raises(ValueError, match="outside 0..3"):
        shard_files([("a", 1)], 4, 4)


@given(files=file_lists, count=st.integers(1, 16))
def test_the_stored_plan_is_the_shards_in_order(files, count):
    rows = list(assign(files, count))
    for index in range(count):
        mine = [(position, path, size) for shard, position, path, size in rows if shard == index]
        assert [position for position, _, _ in mine] == list(range(len(mine)))
        assert [(path, size) for _, path, size in mine] == shard_files(files, index, count)


def test_list_digest_is_sha256_of_the_sorted_lines():
    files = [("b/x.csv", 10), ("a.csv", 3)]
    expected = hashlib.sha256(b"a.csv\x003\nb/x.csv\x0010\n").hexdigest()
    assert list_digest(files) == list_digest(list(reversed(files))) == expected
    assert list_digest([("a.csv", 4), ("b/x.csv", 10)]) != expected, "a size change changes the digest"
