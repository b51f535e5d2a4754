"""Fixtures of the REST API tests: the installed API Deployment (kubernetes auth mode), and
the API served in-process for settings the installation does not use (standalone auth)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from api.helpers import ApiServer, DeployedApi, settings_for
from e2e.conftest import cluster, crd, sample_data  # noqa: F401 - fixtures shared with the e2e tests


@pytest.fixture
def standalone_api(control_plane, database, crd) -> Iterator[ApiServer]:  # noqa: F811
    server = ApiServer(settings_for(control_plane, database, "standalone")).start()
    yield server
    server.stop()


@pytest.fixture
def kubernetes_api(control_plane, pravah, crd) -> DeployedApi:  # noqa: F811
    """The API as installed: a Deployment from its image, acting as its callers."""
    return DeployedApi(control_plane)


@pytest.fixture
def other_namespace(control_plane) -> Iterator[str]:
    name = f"api-other-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)
