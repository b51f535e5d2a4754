"""PostgreSQL and the S3 server are real servers reachable with the project's clients."""

from __future__ import annotations

import aioboto3
import asyncpg
import pytest

pytestmark = pytest.mark.platform


async def test_asyncpg_round_trip(database):
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("CREATE TABLE files (path text PRIMARY KEY, bytes bigint NOT NULL)")
        await conn.executemany("INSERT INTO files VALUES ($1, $2)", [("a.csv", 10), ("b.csv", 32)])
        rows = await conn.fetch("SELECT path, bytes FROM files ORDER BY path")
        assert [(r["path"], r["bytes"]) for r in rows] == [("a.csv", 10), ("b.csv", 32)]
        assert await conn.fetchval("SELECT sum(bytes) FROM files") == 42
    finally:
        await conn.close()


async def test_postgres_can_stop_and_restart(postgres, database):
    conn = await asyncpg.connect(database)
    await conn.execute("CREATE TABLE t (v int)")
    await conn.execute("INSERT INTO t VALUES (7)")
    await conn.close()
    postgres.stop()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(database, timeout=2)
    postgres.start()
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT v FROM t") == 7
    finally:
        await conn.close()


async def test_s3_put_get_list(s3, bucket):
    session = aioboto3.Session()
    async with session.client("s3", **s3.client_kwargs()) as client:
        await client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"x,y\n1,2\n")
        await client.put_object(Bucket=bucket, Key="in/b.csv", Body=b"x,y\n3,4\n")
        await client.put_object(Bucket=bucket, Key="other/c.txt", Body=b"c")
        obj = await client.get_object(Bucket=bucket, Key="in/a.csv")
        async with obj["Body"] as body:
            assert await body.read() == b"x,y\n1,2\n"
        listing = await client.list_objects_v2(Bucket=bucket, Prefix="in/")
        assert sorted(o["Key"] for o in listing["Contents"]) == ["in/a.csv", "in/b.csv"]
        assert listing["KeyCount"] == 2
