"""A PravahJob reads and writes only inside its own volumes and scratch directory.

The attacker writes jobs and data: a volume path that climbs out of its volume (to the
runner's own environment, or to the node's /etc), a symbolic link in the source volume
that points at a file of another volume or at /proc, and S3 object keys that would name
files outside the job's scratch directory. Each attempt is refused with the field or file
named, and nothing of what lies outside is read, written or leaked.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import boto3
import pravah_engine
import pytest
import yaml
from botocore.exceptions import ClientError

from e2e.harness import manifest_for
from pravah.pipeline import engine_source
from pravah.spec import PravahJobSpec
from pravah.storage import Source, UnsafeKey, object_path

OUTSIDE_ROOT = "symbolic link leads outside the source root"


def job(name: str, source_path: str, output_path: str = "out") -> dict:
    manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": source_path}},
                            output={"volume": {"claimName": "results", "path": output_path}})
    manifest["metadata"]["name"] = name
    return manifest


@pytest.mark.parametrize(("field", "source_path", "output_path"), [
    ("spec.source.volume.path", "../../../../proc/self/environ", "out"),
    ("spec.source.volume.path", "/etc", "out"),
    ("spec.output.volume.path", "data", "out/../../../elsewhere"),
])
def test_volume_paths_out_of_the_volume_are_refused_at_apply(control_plane, crd, namespace, field, source_path,
                                                            output_path):
    refused = control_plane.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                                    input=yaml.safe_dump(job("escape", source_path, output_path)))
    assert refused.returncode != 0
    assert f"{field} must be a relative path inside the volume, without '..' segments" in refused.stderr
    missing = control_plane.kubectl("get", "pravahjob", "escape", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    assert json.loads(control_plane.kubectl("get", "jobs", "-n", namespace, "-o", "json").stdout)["items"] == []


def test_followed_links_out_of_the_volume_are_error_records(cluster):
    marker = f"LEAK-{uuid.uuid4().hex}"
    # A file of another volume the runner mounts (the results volume, at /data/output).
    private = cluster.results / "private"
    private.mkdir()
    (private / "secret.txt").write_text(f"{marker}\n")
    source = cluster.datasets / "linked"
    source.mkdir()
    (source / "plain.txt").write_text("a LEAK-free line\n")
    os.symlink("/data/output/private/secret.txt", source / "to-other-volume")
    os.symlink("/proc/self/environ", source / "to-environ")
    manifest = job("follow-out", "linked")
    manifest["spec"]["operation"] = {"type": "grep", "grep": {"pattern": "LEAK"}}
    manifest["spec"]["followSymlinks"] = True
    cluster.apply(manifest)

    status = cluster.wait_phase("follow-out")["status"]
    result = (cluster.results / "out" / "result.json").read_text()
    document = json.loads(result)
    assert document["errors"] == [{"path": "to-environ", "reason": OUTSIDE_ROOT},
                                  {"path": "to-other-volume", "reason": OUTSIDE_ROOT}]
    assert document["files"] == 1 and document["result"]["matches"] == 1
    assert status["errors"]["count"] == 2
    logs = cluster.kubectl("logs", "-l", "pravah.io/job=follow-out", "--tail=-1").stdout
    assert "shard 0/" in logs  # the runner's log was read
    for text in (result, logs):
        assert marker not in text and "PRAVAH_SPEC" not in text


UNSAFE_KEYS = [
    ("../../x", "object key has '..' path segment"),
    ("/x", "object key is absolute (starts with '/')"),
    ("a/./b", "object key has '.' path segment"),
    ("a//b", "object key has an empty path segment"),
    ("a\0b", "object key contains a NUL character"),
]


def s3_source(s3, bucket: str, tmp_path: Path) -> Source:
    spec = PravahJobSpec.model_validate({"source": {"s3": {"bucket": bucket, "endpoint": s3.endpoint}},
                                         "operation": {"type": "count"}})
    return Source(spec, tmp_path / "volume", tmp_path / "scratch")


def written(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.is_dir())


def count_objects(source: Source, files: list[tuple[str, int]]) -> dict:
    """The engine's count of listed files, read in place from the source's bucket."""
    run = pravah_engine.start("count", "{}", source.engine_files(files), 1, **engine_source(source.engine_root()))
    return json.loads(pravah_engine.finalize("count", run.wait()))


def test_keys_that_climb_never_reach_the_runner_from_minio(s3, bucket, tmp_path, monkeypatch):
    """MinIO refuses `../../x` and stores `/x` as `x`: its listing hands the runner neither,
    and what it does hand is read in place, nothing written to the scratch directory."""
    client = boto3.client("s3", **s3.client_kwargs())
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key="../../x", Body=b"planted")
    assert refused.value.response["Error"]["Code"] == "XMinioInvalidResourceName"
    client.put_object(Bucket=bucket, Key="/x", Body=b"planted")
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["x"]

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    source = s3_source(s3, bucket, tmp_path)
    files, errors = asyncio.run(source.list())
    assert (files, errors) == ([(str(source.local_root / "x"), len(b"planted"))], [])
    counted = count_objects(source, files)
    assert counted["errors"] == []
    assert [(f["path"], f["bytes"]) for f in counted["result"]["files"]] == [(f"s3://{bucket}/x", len(b"planted"))]
    assert written(tmp_path) == []

@pytest.mark.parametrize(("key", "reason"), UNSAFE_KEYS)
def test_unsafe_object_keys_never_become_paths(tmp_path, key, reason):
    root = tmp_path / "scratch" / "source" / "bucket"
    with pytest.raises(UnsafeKey) as refused:
        object_path(root, key)
    assert str(refused.value) == reason
    assert object_path(root, "a/b.csv") == root / "a" / "b.csv"


def test_unsafe_paths_never_reach_the_engine_and_it_refuses_unsafe_keys(s3, bucket, tmp_path, monkeypatch):
    """Entries naming a path off the scratch root are refused before any request; keys that
    do not name one object as they are written are error records of the engine, never read."""
    source = s3_source(s3, bucket, tmp_path)
    root = str(source.local_root)
    for path in (f"{root}/../../x", "/x", f"{root}/a//b"):
        with pytest.raises(UnsafeKey):
            source.engine_files([(path, 7)])
    boto3.client("s3", **s3.client_kwargs()).put_object(Bucket=bucket, Key="x", Body=b"planted")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    unsafe = [f"s3://{bucket}/{key}" for key in ("../x", "/x", "a//x", "./x")]
    run = pravah_engine.start("count", "{}", [(path, 7) for path in unsafe], 1, **engine_source(source.engine_root()))
    counted = json.loads(pravah_engine.finalize("count", run.wait()))
    assert sorted(error["path"] for error in counted["errors"]) == sorted(unsafe)
    assert all(error["reason"].startswith("not a readable object key") for error in counted["errors"])
    assert counted["result"]["bytes"] == 0
    assert list(tmp_path.rglob("*")) == []
