"""Runner directories and S3 object keys stay inside their volume or scratch directory."""

from pathlib import Path

import pytest

from pravah.pipeline import engine_source
from pravah.spec import PravahJobSpec
from pravah.storage import Source, UnsafeKey, inside_mounts, object_path


def test_runner_directories_inside_their_mounts_are_kept():
    assert inside_mounts(Path("/data/source/in"), Path("/data/output")) == (Path("/data/source/in"),
                                                                           Path("/data/output"))


@pytest.mark.parametrize(("source", "output", "refused"), [
    ("/data/source/../../etc", "/data/output", "PRAVAH_SOURCE_DIR=/data/source/../../etc resolves to /etc, "
                                               "outside the volume mounted at /data/source"),
    ("/data/source", "/data/output/../source", "PRAVAH_OUTPUT_DIR=/data/output/../source resolves to "
                                               "/data/source, outside the volume mounted at /data/output"),
])
def test_runner_directories_out_of_their_mounts_are_refused(source, output, refused):
    with pytest.raises(ValueError) as caught:
        inside_mounts(Path(source), Path(output))
    assert str(caught.value) == refused


def test_a_runner_directory_linked_out_of_its_mount_is_refused(tmp_path):
    """What a symbolic link does on the volume; the mounts exist only in the pod, so this
    checks the same resolution on a link made here."""
    link = tmp_path / "link"
    link.symlink_to("/etc")
    with pytest.raises(ValueError, match="resolves to /etc, outside the volume mounted at /data/source"):
        inside_mounts(link, Path("/data/output"))


@pytest.mark.parametrize("key", ["a.csv", "raw/2024/a.csv", ".hidden/a", "a..b/c", "...", "a b/c"])
def test_plain_keys_map_below_the_root(tmp_path, key):
    assert object_path(tmp_path, key) == tmp_path.joinpath(*key.split("/"))


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../x", "./a", "a/.", "a//b", "a/", "", "a\0b"])
def test_keys_that_are_not_plain_paths_are_refused(tmp_path, key):
    with pytest.raises(UnsafeKey):
        object_path(tmp_path, key)


def s3_source(tmp_path: Path, **location: str) -> Source:
    spec = PravahJobSpec.model_validate({"source": {"s3": {"bucket": "raw", **location}},
                                         "operation": {"type": "count"}})
    return Source(spec, tmp_path / "volume", tmp_path / "scratch")


def test_the_engine_reads_listed_objects_by_their_uri(tmp_path):
    source = s3_source(tmp_path)
    root = source.local_root
    listed = [(str(root / "a b.csv"), 3), (str(root / "in" / "ü+%.csv"), 4)]
    assert source.engine_files(listed) == [("s3://raw/a b.csv", 3), ("s3://raw/in/ü+%.csv", 4)]


@pytest.mark.parametrize("path", ["{root}/../../x", "/x", "{root}/a//b", "{root}/./a", "{root}-other/a"])
def test_paths_no_safe_key_gives_never_reach_the_engine(tmp_path, path):
    source = s3_source(tmp_path)
    with pytest.raises(UnsafeKey):
        source.engine_files([(path.format(root=source.local_root), 1)])


def test_the_engine_gets_the_source_location_and_its_own_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("PRAVAH_SOURCE_AWS_ACCESS_KEY_ID", "source-key")
    monkeypatch.setenv("PRAVAH_SOURCE_AWS_SECRET_ACCESS_KEY", "source-secret")
    monkeypatch.setenv("PRAVAH_OUTPUT_AWS_ACCESS_KEY_ID", "output-key")
    source = s3_source(tmp_path, endpoint="http://minio:9000", region="eu-west-1")
    assert engine_source(source.engine_root()) == {"root": "s3://raw/", "s3": {
        "endpoint": "http://minio:9000", "region": "eu-west-1",
        "access_key_id": "source-key", "secret_access_key": "source-secret"}}
    volume = Source(PravahJobSpec.model_validate({"source": {"volume": {"claimName": "d"}},
                                                  "operation": {"type": "count"}}), tmp_path, tmp_path)
    assert engine_source(volume.engine_root()) == {"root": str(tmp_path)}
