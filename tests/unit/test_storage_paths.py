"""Runner directories and S3 object keys stay inside their volume or scratch directory."""

from pathlib import Path

import pytest

from pravah.storage import UnsafeKey, inside_mounts, object_path


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
