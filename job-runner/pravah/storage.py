"""Where a runner reads its files from and writes its outputs to: a mounted volume or S3.

A volume is already a local directory. S3 objects are listed with the same include and
exclude globs as the engine's scan and read in place by the engine (ranged GETs, nothing
downloaded to the pod's disk), which names them `s3://bucket/key`. The stored list names an
object by the path it would have in a scratch directory mirroring the keys, so that a key
that could name a path outside that directory (`../x`, `a//b`) is an error record and never
read. A volume directory must resolve inside its mount.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wcmatch import glob

from pravah import reuse
from pravah.pipeline import Objects, list_source
from pravah.sharding import FileEntry
from pravah.spec import Location, PravahJobSpec
from pravah_operator.planning import OUTPUT_MOUNT, S3_CREDENTIAL_KEYS, SOURCE_MOUNT, credential_variable

HEAD_CONCURRENCY = 32  # HEAD requests in flight when a batch's objects are checked


def s3_client(location: Any, role: str):
    """An aioboto3 S3 client for the job's `role` ("source" or "output") location, with the
    keys of that location's own credentialsSecret (planning.runner_env); without them (a
    local run, an instance role) the SDK's default credential chain. The SDK is imported here,
    not with the module: it takes a fifth of a second, which a runner of a volume job (and
    every job's start-up) would otherwise pay for nothing."""
    import aioboto3

    session = aioboto3.Session(**{key.lower(): os.environ.get(credential_variable(role, key))
                                  for key in S3_CREDENTIAL_KEYS})
    return session.client("s3", endpoint_url=location.endpoint, region_name=location.region or "us-east-1")


class UnsafeKey(ValueError):
    """An object key that does not name a plain path below the scratch directory."""


def object_path(root: Path, key: str) -> Path:
    """The local path of an object key below `root`; UnsafeKey (with the reason) otherwise.

    S3 keys are free-form strings: `/x`, `../x`, `a/./b` or `a//b` are all valid keys, and
    joined to a directory they would name files elsewhere (or two keys the same file).
    """
    if "\0" in key:
        raise UnsafeKey("object key contains a NUL character")
    if key.startswith("/"):
        raise UnsafeKey("object key is absolute (starts with '/')")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafeKey(f"object key has {'an empty' if not segment else repr(segment)} path segment")
    path = root / key
    if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(root)):
        raise UnsafeKey("object key leads outside the scratch directory")
    return path


def inside_mounts(source_dir: Path, output_dir: Path) -> tuple[Path, Path]:
    """The volume directories of a runner, resolved; ValueError if one leaves its mount.

    The spec's paths are refused at admission when they contain `..`; this also catches a
    directory that is a symbolic link out of the volume.
    """
    resolved = []
    for variable, directory, mount in (("PRAVAH_SOURCE_DIR", source_dir, SOURCE_MOUNT),
                                       ("PRAVAH_OUTPUT_DIR", output_dir, OUTPUT_MOUNT)):
        real, real_mount = directory.resolve(), Path(mount).resolve()
        if not real.is_relative_to(real_mount):
            raise ValueError(f"{variable}={directory} resolves to {real}, outside the volume mounted at {mount}")
        resolved.append(real)
    return resolved[0], resolved[1]


def glob_selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    flags = glob.GLOBSTAR | glob.DOTGLOB
    if include and not glob.globmatch(relative, list(include), flags=flags):
        return False
    return not (exclude and glob.globmatch(relative, list(exclude), flags=flags))


class Source:
    """The job's input files: listed once per job (paged for S3), fetched batch by batch."""

    def __init__(self, spec: PravahJobSpec, volume_dir: Path, scratch_dir: Path):
        self.spec = spec
        self.location = spec.source
        self.volume_dir = volume_dir
        self.scratch_dir = scratch_dir
        self.etags: dict[str, str] = {}

    @property
    def local_root(self) -> Path:
        """The directory whose paths the engine sees (and result paths are made relative to)."""
        if self.location.volume is not None:
            return self.volume_dir
        return self.scratch_dir / "source" / self.location.s3.bucket

    def display_prefix(self) -> str:
        """What replaces `local_root` in reported paths."""
        if self.location.volume is not None:
            return ""
        return f"s3://{self.location.s3.bucket}/"

    async def list(self) -> tuple[list[FileEntry], list[dict[str, str]]]:
        if self.location.volume is not None:
            if not self.volume_dir.exists():
                raise FileNotFoundError(f"source directory {self.volume_dir} does not exist")
            return list_source(self.volume_dir, self.spec.include, self.spec.exclude, self.spec.followSymlinks)
        s3 = self.location.s3
        files, errors = [], []
        async with s3_client(s3, "source") as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=s3.bucket, Prefix=s3.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/") or not glob_selected(key[len(s3.prefix):].lstrip("/"),
                                                               self.spec.include, self.spec.exclude):
                        continue
                    try:
                        path = str(object_path(self.local_root, key))
                    except UnsafeKey as exc:
                        errors.append({"path": f"s3://{s3.bucket}/{key}", "reason": str(exc)})
                        continue
                    files.append((path, item["Size"]))
                    self.etags[path] = item.get("ETag")
        files.sort()
        return files, errors

    def version(self, path: str) -> str | None:
        """What tells a listed file apart from an earlier one of the same size: its
        modification time on a volume, its ETag on S3."""
        if self.location.s3 is not None:
            return self.etags.get(path)
        return reuse.local_version(path, self.spec.followSymlinks)

    def objects(self) -> Objects:
        """The S3 source as the engine reads it, with the keys of its own credentialsSecret."""
        s3 = self.location.s3
        credentials = {key.lower().removeprefix("aws_"): os.environ.get(credential_variable("source", key))
                       for key in S3_CREDENTIAL_KEYS}
        return Objects(f"s3://{s3.bucket}/", endpoint=s3.endpoint, region=s3.region,
                       credentials={key: value for key, value in credentials.items() if value})

    def engine_root(self) -> Path | Objects:
        """What the engine reads below: the volume directory, or the bucket in place."""
        return self.local_root if self.location.volume is not None else self.objects()

    def engine_files(self, files: list[FileEntry]) -> list[FileEntry]:
        """A batch as the engine opens it: S3 objects by their `s3://bucket/key` URI."""
        if self.location.volume is not None:
            return files
        root = str(self.local_root) + "/"
        return [(self.display_prefix() + self.key_of(path, root), size) for path, size in files]

    def key_of(self, path: str, root: str) -> str:
        """The object key of a listed path; UnsafeKey for a path that no safe key gives."""
        key = path.removeprefix(root)
        if key == path:
            raise UnsafeKey(f"{path} is not below the source's scratch directory")
        object_path(self.local_root, key)
        return key

    async def sizes_now(self, files: list[FileEntry]) -> dict[str, int | None]:
        """Each file's size now, None when it is gone: from the file system on a volume, from
        a HEAD request on S3."""
        if self.location.volume is not None:
            stat = os.stat if self.spec.followSymlinks else os.lstat
            sizes: dict[str, int | None] = {}
            for path, _ in files:
                try:
                    sizes[path] = stat(path).st_size
                except FileNotFoundError:
                    sizes[path] = None
            return sizes
        s3 = self.location.s3
        limit = asyncio.Semaphore(HEAD_CONCURRENCY)
        root = str(self.local_root) + "/"
        async with s3_client(s3, "source") as client:
            async def size(path: str) -> int | None:
                async with limit:
                    try:
                        head = await client.head_object(Bucket=s3.bucket, Key=path.removeprefix(root))
                    except client.exceptions.ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                            return None
                        raise
                    return head["ContentLength"]

            found = await asyncio.gather(*(size(path) for path, _ in files))
        return {path: now for (path, _), now in zip(files, found)}


class Output:
    """Where result.json, manifests and converted files go."""

    def __init__(self, location: Location, volume_dir: Path, scratch_dir: Path):
        self.location = location
        self.volume_dir = volume_dir
        self.scratch_dir = scratch_dir

    @property
    def local_dir(self) -> Path:
        """A local directory the engine may write into (uploaded afterwards for S3)."""
        return self.volume_dir if self.location.volume is not None else self.scratch_dir / "output"

    def uri(self, name: str) -> str:
        if self.location.volume is not None:
            volume = self.location.volume
            return f"pvc://{volume.claimName or 'local'}/{'/'.join(filter(None, [volume.path.strip('/'), name]))}"
        return f"s3://{self.location.s3.bucket}/{self.location.s3.prefix}{name}"

    def display_path(self, local_path: str) -> str:
        """Report an output file by its URI, not by where this pod happened to write it."""
        relative = os.path.relpath(local_path, self.local_dir)
        return self.uri(relative)

    async def store_outputs(self, paths: Sequence[str]) -> None:
        """Upload files the engine wrote under `local_dir` and drop the local copies (no-op for
        a volume). An object's key is the file's path below `local_dir`, so a retried batch
        overwrites the objects of its earlier attempt instead of adding others."""
        if self.location.volume is not None or not paths:
            return
        names = [os.path.relpath(path, self.local_dir) for path in paths]
        await self.publish(names)
        for path in paths:
            Path(path).unlink(missing_ok=True)

    async def publish(self, names: Sequence[str]) -> None:
        """Upload files written under `local_dir` (no-op for a volume, already in place)."""
        if self.location.volume is not None:
            return
        s3 = self.location.s3
        async with s3_client(s3, "output") as client:
            for name in names:
                await client.upload_file(str(self.local_dir / name), s3.bucket, f"{s3.prefix}{name}")
