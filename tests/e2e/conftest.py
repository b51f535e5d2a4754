"""End-to-end fixtures: the CRD installed, volumes bound, and the operator as a real process
running with the `pravah-operator` service account's token and the manifests' RBAC."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import CRD, ROOT, Cluster, bind_volume, operator_kubeconfig


@pytest.fixture(scope="session")
def crd(control_plane) -> Path:
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/pravahjobs.pravah.io")
    return CRD


@pytest.fixture
def cluster(control_plane, node_agent, namespace, database, crd, tmp_path, request) -> Iterator[Cluster]:
    """The namespace ready for PravahJobs, with one operator started."""
    for claim in ("datasets", "results"):
        bind_volume(control_plane, node_agent, namespace, claim)
    settings = getattr(request, "param", {}) or {}
    cluster = Cluster(control_plane, node_agent, namespace, database, tmp_path, [], settings,
                      operator_kubeconfig=operator_kubeconfig(control_plane, namespace, tmp_path))
    cluster.start_operator()
    yield cluster
    for operator in cluster.operators:
        operator.stop()
    if request.session.testsfailed:
        for operator in cluster.operators:
            sys.stderr.write(f"\n----- {operator.log_path.name} -----\n{operator.log()[-4000:]}\n")
    refused = [line for operator in cluster.operators for line in operator.forbidden()]
    if refused:
        pytest.fail("the operator was refused calls by the API server; manifests/base lacks a permission:\n"
                    + "\n".join(refused[:10]), pytrace=False)


@pytest.fixture
def sample_data(cluster) -> Path:
    """The bundled examples/data copied into the `datasets` volume as data/."""
    target = cluster.datasets / "data"
    shutil.copytree(ROOT / "examples" / "data", target, dirs_exist_ok=True)
    return target
