"""Pravah installed, upgraded and uninstalled with Helm, as platform engineers do, on a local
cluster of its own (`pravah.localcluster` with `helm install` of charts/pravah in place of
the kustomize overlay, with the values that say what that overlay says).

A job is held mid-run (its runner frozen after some batches are stored) while `helm
upgrade` changes a setting, which rolls the operator and the API; the job then completes
with results computed from its files. `helm uninstall` removes the release and keeps the
CRD and the PravahJob. Real nodes are the machine's: this test runs in a pytest session of
its own (marker `own_cluster`, see the Makefile).
"""

from __future__ import annotations

import json
import shutil

import pytest

from deploy.helpers import CHART, helm_binary
from e2e import reference
from e2e.harness import (Cluster, InstalledOperator, bind_volume, db_fetch, freeze_mid_run, get_json, manifest_for,
                         thaw, wait_for, write_csv_files)
from pravah.localcluster import install
from pravah.localcluster.platform import Platform

pytestmark = [pytest.mark.platform, pytest.mark.own_cluster]

FILES = 200
BATCH_FILES = 5
JOBS_NAMESPACE = "helm-jobs"
# Small batches, so that a frozen runner holds the job between two of them.
INSTALL_VALUES = {"operator": {"extraConfig": {"PRAVAH_RUNNER_BATCH_FILES": str(BATCH_FILES)}}}
# The upgrade's one change: another status interval than the install's (the test overlay's 1 s).
UPGRADE_SET = "operator.statusInterval=2"


def pod_uids(platform: Platform, component: str) -> set[str]:
    """Uids of the live pods of a Deployment (`pravah-operator`, `pravah-api`)."""
    pods = get_json(platform.control_plane, "pods", "-n", install.SYSTEM_NAMESPACE, "-l",
                    f"app.kubernetes.io/name={component}")["items"]
    return {pod["metadata"]["uid"] for pod in pods if not pod["metadata"].get("deletionTimestamp")}


def replaced(platform: Platform, component: str, before: set[str]) -> bool:
    """All the pods of a Deployment are new ones (the old ones are gone or terminating)."""
    now = pod_uids(platform, component)
    return bool(now) and not now & before


def helm(platform: Platform, helm_bin: str, *args: str) -> str:
    return install.run_helm(platform.control_plane, helm_bin, *args).stdout


def jobs_namespace(platform: Platform, tmp_path) -> Cluster:
    """A namespace prepared as the README tells users to, with its `datasets` and `results` volumes."""
    control_plane = platform.control_plane
    control_plane.kubectl("create", "namespace", JOBS_NAMESPACE)
    install.prepare_namespace(control_plane, JOBS_NAMESPACE)
    for claim in ("datasets", "results"):
        bind_volume(control_plane, platform, JOBS_NAMESPACE, claim)
    return Cluster(control_plane, platform, JOBS_NAMESPACE, tmp_path, InstalledOperator(control_plane))


def test_helm_install_upgrade_mid_job_and_uninstall(tmp_path):
    helm_bin = helm_binary()
    platform = Platform(tmp_path / "platform")
    try:
        platform.start(helm=helm_bin, values=INSTALL_VALUES)
        [release] = json.loads(helm(platform, helm_bin, "list", "--output", "json"))
        assert (release["name"], release["status"], str(release["revision"])) == (install.RELEASE, "deployed", "1")

        cluster = jobs_namespace(platform, tmp_path)
        lines = write_csv_files(cluster.datasets / "many", FILES)
        manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}},
                                parallelism=1)
        cluster.apply(manifest)
        uid, pids = freeze_mid_run(cluster, "data-count", batches_total=FILES // BATCH_FILES)
        try:
            before = {component: pod_uids(platform, component) for component in install.DEPLOYMENTS}
            helm(platform, helm_bin, "upgrade", install.RELEASE, str(CHART), "--reuse-values", "--set", UPGRADE_SET,
                 "--wait", "--timeout=240s")
            wait_for(lambda: all(replaced(platform, component, before[component])
                                 for component in install.DEPLOYMENTS),
                     120, f"helm upgrade to replace the pods of {', '.join(install.DEPLOYMENTS)}")
            phase = cluster.get("data-count")["status"]["phase"]
            assert phase == "Running", f"the job was {phase} right after the upgrade, not Running"
        finally:
            thaw(pids)
        config = get_json(platform.control_plane, "configmap", "pravah-operator-config", "-n",
                          install.SYSTEM_NAMESPACE)["data"]
        assert config["PRAVAH_STATUS_INTERVAL"] == "2"

        job = cluster.wait_phase("data-count", timeout=300)
        assert job["status"]["result"]["summary"]["lines"] == lines
        reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
        files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records "
                         "WHERE job_uid = $1", uid)
        assert tuple(files[0]) == (FILES, FILES)
        assert not cluster.operator.forbidden(), "the chart's RBAC refused the operator a call"

        released = helm(platform, helm_bin, "get", "manifest", install.RELEASE)
        assert released.count("kind: Deployment") == len(install.DEPLOYMENTS), released
        helm(platform, helm_bin, "uninstall", install.RELEASE, "--wait", "--timeout=120s")
        assert json.loads(helm(platform, helm_bin, "list", "--all", "--output", "json")) == []
        left = platform.control_plane.kubectl("get", "-f", "-", "--ignore-not-found", "--output=name",
                                              input=released).stdout.split()
        assert not left, f"left behind by helm uninstall: {left}"
        wait_for(lambda: not pod_uids(platform, "pravah-operator") and not pod_uids(platform, "pravah-api"), 120,
                 "the operator and API pods to be gone after helm uninstall")
        platform.control_plane.kubectl("get", "crd", "pravahjobs.pravah.io")
        kept = cluster.get("data-count")
        assert (kept["metadata"]["uid"], kept["status"]["phase"]) == (uid, "Succeeded")
    finally:
        platform.stop()
    # Reached only when the test passed: after a failure the platform's logs stay for reading.
    shutil.rmtree(platform.dir, ignore_errors=True)
