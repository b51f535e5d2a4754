"""End-to-end fixtures: Pravah installed by `kubectl apply -k` (operator and API as
Deployments from their images, on real kubelets), a namespace prepared as the README tells
users to, and its `datasets` and `results` volumes."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos.plugin import chaos, chaos_invariants, pytest_terminal_summary  # noqa: F401  PRAVAH_CHAOS=1
from e2e.harness import CRD, ROOT, Cluster, InstalledOperator, bind_volume
from pravah.localcluster import install
from pravah.localcluster.kueue import Kueue


@pytest.fixture(scope="session")
def crd(pravah) -> Path:
    """The CRD, installed with the rest of Pravah by the kustomize overlay."""
    pravah.control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/pravahjobs.pravah.io")
    return CRD


@pytest.fixture(scope="session")
def kueue(control_plane) -> Iterator[Kueue]:
    """Kueue's controller manager (batch/job integration) with its CRDs, on the test control plane."""
    manager = Kueue(control_plane, control_plane.dir / "kueue").start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture
def cluster(control_plane, pravah, namespace, crd, tmp_path, request) -> Iterator[Cluster]:
    """The namespace ready for PravahJobs; `indirect` parameters are operator settings
    (PRAVAH_* names, lower case) in force on the Deployment for this test."""
    install.prepare_namespace(control_plane, namespace)
    for claim in ("datasets", "results"):
        bind_volume(control_plane, pravah, namespace, claim)
    settings = getattr(request, "param", {}) or {}
    operator = InstalledOperator(control_plane)
    operator.configure(settings)
    cluster = Cluster(control_plane, pravah, namespace, tmp_path, operator)
    try:
        yield cluster
    finally:
        if request.session.testsfailed:
            sys.stderr.write(f"\n----- operator log -----\n{operator.log()[-4000:]}\n")
        refused = operator.forbidden()
        if operator.replicas() != 1:
            operator.scale(1)
    if refused:
        pytest.fail("the operator was refused calls by the API server; manifests/base lacks a permission:\n"
                    + "\n".join(refused[:10]), pytrace=False)


@pytest.fixture
def sample_data(cluster) -> Path:
    """The bundled examples/data copied into the `datasets` volume as data/."""
    target = cluster.datasets / "data"
    shutil.copytree(ROOT / "examples" / "data", target, dirs_exist_ok=True)
    return target
