"""The test platform's S3 server is MinIO or nothing: without a MinIO build the platform
does not start, and the error says what is missing and how to build it."""

from pathlib import Path

import pytest

from pravah.localcluster import s3
from pravah.localcluster.procs import PlatformError


def build_script(tmp_path: Path, body: str) -> Path:
    """A build script in the place of scripts/minio-bin whose `--print` runs `body`."""
    path = tmp_path / "minio-bin"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("body", "says"), [
    ("echo 'error: MinIO not built yet' >&2; exit 1", "the server binary is not built"),
    ("echo /nonexistent/minio", "/nonexistent/minio is not an executable file"),
])
def test_a_missing_minio_is_an_error_naming_it_and_its_build(tmp_path, monkeypatch, body, says):
    monkeypatch.setattr(s3, "MINIO_SCRIPT", build_script(tmp_path, body))
    server = s3.S3Server(tmp_path / "s3")
    with pytest.raises(PlatformError, match="MinIO is missing") as error:
        server.start()
    assert says in str(error.value) and "scripts/minio-bin" in str(error.value)
    assert server.proc is None, "nothing was started in its place"
