"""Fixtures of the REST API tests: the API served in-process against the real control plane
and PostgreSQL, in either auth mode (see helpers.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from api.helpers import ApiServer, settings_for
from e2e.conftest import cluster, crd, sample_data  # noqa: F401 - fixtures shared with the e2e tests


@pytest.fixture
def standalone_api(control_plane, database, crd) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(settings_for(control_plane, database, "standalone")).start()
    yield server
    server.stop()


@pytest.fixture
def kubernetes_api(control_plane, database, crd) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(settings_for(control_plane, database, "kubernetes")).start()
    yield server
    server.stop()


@pytest.fixture
def other_namespace(control_plane) -> Iterator[str]:
    name = f"api-other-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
