"""Fixtures of the deployment tests: the rendered manifests, and the e2e fixtures (Pravah
installed with `kubectl apply -k`, running as its own service accounts)."""

from __future__ import annotations

import pytest

from deploy.helpers import render
from e2e.conftest import cluster, crd, sample_data  # noqa: F401 - fixtures shared with the e2e tests


@pytest.fixture(scope="session")
def base() -> list[dict]:
    return render("base")


@pytest.fixture(scope="session")
def dev() -> list[dict]:
    return render("overlays/dev")


@pytest.fixture(scope="session")
def production() -> list[dict]:
    return render("overlays/production")
