"""Pravah installed, upgraded and uninstalled with Helm, as platform engineers do, on a local
cluster of its own (`pravah.localcluster` with `helm install` of charts/pravah in place of
the kustomize overlay, with the values that say what that overlay says).

A job is held mid-run (its runner frozen after some batches are stored) while `helm
upgrade` moves the operator and the API to a new image tag (the same images, tagged anew on
every node as a registry would serve a new release), which rolls them; the job then
completes with results computed from its files. `helm test` then runs the chart's smoke job
through the upgraded operator. `helm uninstall` removes the release and keeps the CRD and
the PravahJob. Real nodes are the machine's: this test runs in a pytest session of its own
(marker `own_cluster`, see the Makefile).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from deploy.helpers import CHART, helm_binary
from e2e import reference
from e2e.harness import (Cluster, InstalledOperator, bind_volume, db_fetch, freeze_mid_run, get_json, manifest_for,
                         thaw, wait_for, write_csv_files)
from pravah.localcluster import images, install
from pravah.localcluster.platform import Platform
from pravah.localcluster.procs import PlatformError

pytestmark = [pytest.mark.platform, pytest.mark.own_cluster]

FILES = 200
BATCH_FILES = 5
JOBS_NAMESPACE = "helm-jobs"
SMOKE_FILES = 3
SMOKE_OUTPUT = "pravah-smoke"
# Small batches, so that a frozen runner holds the job between two of them; `helm test`'s
# smoke job counts the files of datasets/smoke in the jobs' namespace.
INSTALL_VALUES = {
    "operator": {"extraConfig": {"PRAVAH_RUNNER_BATCH_FILES": str(BATCH_FILES)}},
    "tests": {"smoke": {"enabled": True, "namespace": JOBS_NAMESPACE, "claimName": "datasets", "path": "smoke",
                        "outputClaimName": "results", "outputPath": SMOKE_OUTPUT}},
}
# The release the upgrade moves the operator and the API to.
UPGRADE_TAG = "next"
UPGRADED = ("operator", "api")


def live_pods(platform: Platform, component: str) -> list[dict[str, Any]]:
    """The pods of a Deployment (`pravah-operator`, `pravah-api`) that are not going away."""
    pods = get_json(platform.control_plane, "pods", "-n", install.SYSTEM_NAMESPACE, "-l",
                    f"app.kubernetes.io/name={component}")["items"]
    return [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]


def pod_uids(platform: Platform, component: str) -> set[str]:
    return {pod["metadata"]["uid"] for pod in live_pods(platform, component)}


def replaced(platform: Platform, component: str, before: set[str]) -> bool:
    """All the pods of a Deployment are new ones (the old ones are gone or terminating)."""
    now = pod_uids(platform, component)
    return bool(now) and not now & before


def helm(platform: Platform, helm_bin: str, *args: str) -> str:
    return install.run_helm(platform.control_plane, helm_bin, *args).stdout


def helm_test(platform: Platform, helm_bin: str) -> dict[str, Any]:
    """`helm test`, then the release's test hooks by kind; a failure shows the smoke pod's
    log (a failed test's pod is kept for that)."""
    try:
        # Within the smoke pod's own wait for its job (tests.smoke.timeoutSeconds) and its start.
        helm(platform, helm_bin, "test", install.RELEASE, "--timeout=280s")
    except PlatformError as failed:
        log = platform.control_plane.kubectl("-n", install.SYSTEM_NAMESPACE, "logs", "pravah-smoke", check=False)
        raise AssertionError(f"{failed}\nsmoke pod log:\n{log.stdout}{log.stderr}") from None
    status = json.loads(helm(platform, helm_bin, "status", install.RELEASE, "--output", "json"))
    return {hook["kind"]: hook for hook in status["hooks"] if "test" in hook["events"]}


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
        built = platform.images.ensure()
        upgraded = {f"pravah-{key}": images.tag_on_nodes(platform.nodes, built[key], UPGRADE_TAG)
                    for key in UPGRADED}

        cluster = jobs_namespace(platform, tmp_path)
        lines = write_csv_files(cluster.datasets / "many", FILES)
        manifest = manifest_for("count", source={"volume": {"claimName": "datasets", "path": "many"}},
                                parallelism=1)
        cluster.apply(manifest)
        uid, pids = freeze_mid_run(cluster, "data-count", batches_total=FILES // BATCH_FILES)
        try:
            before = {component: pod_uids(platform, component) for component in upgraded}
            helm(platform, helm_bin, "upgrade", install.RELEASE, str(CHART), "--reuse-values",
                 *(arg for key in UPGRADED for arg in ("--set", f"{key}.image.tag={UPGRADE_TAG}")),
                 "--wait", "--timeout=240s")
            wait_for(lambda: all(replaced(platform, component, before[component]) for component in upgraded),
                     120, f"helm upgrade to replace the pods of {', '.join(upgraded)}")
            phase = cluster.get("data-count")["status"]["phase"]
            assert phase == "Running", f"the job was {phase} right after the upgrade, not Running"
        finally:
            thaw(pids)
        for component, new_image in upgraded.items():
            running = {container["image"] for pod in live_pods(platform, component)
                       for container in pod["spec"]["containers"]}
            assert running == {new_image}, f"{component} runs {running} after the upgrade"

        job = cluster.wait_phase("data-count", timeout=300)
        assert job["status"]["result"]["summary"]["lines"] == lines
        reference.count(cluster.result(job), cluster.source_files(manifest["spec"]))
        files = db_fetch(cluster.database, "SELECT count(*), count(DISTINCT path) FROM file_records "
                         "WHERE job_uid = $1", uid)
        assert tuple(files[0]) == (FILES, FILES)
        assert not cluster.operator.forbidden(), "the chart's RBAC refused the operator a call"

        # `helm test`, with the smoke values given at install (kept by --reuse-values).
        write_csv_files(cluster.datasets / "smoke", SMOKE_FILES)
        hooks = helm_test(platform, helm_bin)
        assert hooks["Pod"]["last_run"]["phase"] == "Succeeded", hooks["Pod"]
        reference.count(json.loads((cluster.results / SMOKE_OUTPUT / "result.json").read_text()),
                        reference.source_files(cluster.datasets / "smoke"))
        wait_for(lambda: not platform.control_plane.kubectl(
            "-n", install.SYSTEM_NAMESPACE, "get", "pod", "pravah-smoke", "--ignore-not-found", "--output=name").stdout,
            60, "the smoke pod to be deleted once its test passed")
        wait_for(lambda: not cluster.kubectl("get", "pravahjobs", "-l", "app.kubernetes.io/name=pravah-smoke",
                                             "--output=name").stdout, 60, "the smoke job to be deleted")

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
