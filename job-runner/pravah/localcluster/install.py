"""Install Pravah on the local cluster as users install it: `kubectl apply -k` of a
kustomize overlay (manifests/overlays/test) with the locally built images, or `helm install`
of charts/pravah with the values that say the same.

The overlay is wrapped in a generated kustomization that only sets the image names and tags
(kustomize `images:`), the runner image in the operator's ConfigMap and the S3 server's
endpoint in the `pravah-tenancy` allowlist: everything else — Deployments, probes,
resources, security contexts, service accounts, RBAC, admission — is what the manifests say.
The chart gets the same three settings as values, on top of `TEST_OVERLAY_VALUES`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from .bins import REPO_ROOT
from .images import BuiltImages
from .procs import PlatformError

OVERLAY = REPO_ROOT / "manifests" / "overlays" / "test"
CHART = REPO_ROOT / "charts" / "pravah"
RELEASE = "pravah"
SYSTEM_NAMESPACE = "pravah-system"
# What the base's Namespace carries; a Helm release namespace is the installer's to label.
SYSTEM_LABELS = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest")
DATABASE_SECRET = "pravah-database"
RUNNER_ACCOUNT = "pravah-runner"
PUBLISHED = {"operator": "ghcr.io/pravah-io/pravah-operator", "api": "ghcr.io/pravah-io/pravah-api"}
DEPLOYMENTS = ("pravah-operator", "pravah-api")
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")
# What manifests/overlays/test patches into the base, as the chart's values
# (tests/deploy/test_helm.py checks that both render the same objects).
TEST_OVERLAY_VALUES = {
    "operator": {"replicas": 1, "nodeSelector": {"pravah.io/pool": "system"}, "statusInterval": 1,
                 "leaseSeconds": 6, "reportService": {"clusterIP": "10.0.0.10"}},
    "api": {"replicas": 1, "nodeSelector": {"pravah.io/pool": "system"}},
}


def kustomization(images: BuiltImages, workdir: Path, s3_endpoint: str) -> dict:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(OVERLAY, workdir)],
        "images": [{"name": PUBLISHED[key], "newName": images[key].repository, "newTag": images[key].tag}
                   for key in PUBLISHED],
        "patches": [{"target": {"kind": "ConfigMap", "name": "pravah-operator-config"},
                     "patch": yaml.safe_dump([{"op": "replace", "path": "/data/PRAVAH_RUNNER_IMAGE",
                                               "value": images["runner"].name}])},
                    # Jobs may name the S3 server of this cluster, whose port is chosen at start.
                    {"target": {"kind": "ConfigMap", "name": "pravah-tenancy"},
                     "patch": yaml.safe_dump([{"op": "replace", "path": "/data/PRAVAH_ALLOWED_S3_ENDPOINTS",
                                               "value": s3_endpoint}])}],
    }


def helm_values(images: BuiltImages, s3_endpoint: str, extra: dict | None = None) -> dict:
    """The chart's values for this cluster: the test overlay's settings, the locally built
    images and the S3 server in the allowlist (what `kustomization` sets for kustomize),
    with `extra` values over them."""
    values = copy.deepcopy(TEST_OVERLAY_VALUES)
    values["runner"] = {}
    for key in ("operator", "api", "runner"):
        values[key]["image"] = {"repository": images[key].repository, "tag": images[key].tag}
    values["tenancy"] = {"allowedS3Endpoints": [s3_endpoint]}
    return merged(values, extra or {})


def merged(base: dict, extra: dict) -> dict:
    """`extra` over `base`, mapping by mapping, as Helm merges values files."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def database_secret(namespace: str, url: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": DATABASE_SECRET, "namespace": namespace},
            "stringData": {"url": url}}


def prepare_system_namespace(control_plane, database_url: str) -> None:
    """What both installs expect before they run: the namespace with the base's Pod Security
    labels, and the database Secret that neither the manifests nor the chart ship."""
    control_plane.kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
    control_plane.kubectl("label", "--overwrite", "namespace", SYSTEM_NAMESPACE, *SYSTEM_LABELS)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(database_secret(SYSTEM_NAMESPACE, database_url)))


def install(control_plane, images: BuiltImages, database_url: str, s3_endpoint: str, workdir: Path,
            timeout: float = 240) -> float:
    """Apply the overlay and wait for the operator and the API to be Available; seconds taken."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization(images, workdir, s3_endpoint)))
    prepare_system_namespace(control_plane, database_url)
    applied = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(workdir), check=False)
    if applied.returncode != 0:
        raise PlatformError(f"kubectl apply -k {workdir} failed: {applied.stderr.strip()}")
    wait_available(control_plane, timeout)
    return time.monotonic() - t0


def helm_install(control_plane, images: BuiltImages, database_url: str, s3_endpoint: str, workdir: Path,
                 helm: str, extra_values: dict | None = None, timeout: float = 240) -> float:
    """`helm install --wait` of the chart with `helm_values` (in workdir/values.yaml), then
    wait for the operator and the API to be Available; seconds taken."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    values = workdir / "values.yaml"
    values.write_text(yaml.safe_dump(helm_values(images, s3_endpoint, extra_values)))
    prepare_system_namespace(control_plane, database_url)
    run_helm(control_plane, helm, "install", RELEASE, str(CHART), "--values", str(values), "--wait",
             f"--timeout={int(timeout)}s", timeout=timeout + 30)
    wait_available(control_plane, timeout)
    return time.monotonic() - t0


def run_helm(control_plane, helm: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`helm ARGS` in the system namespace against this control plane; a failure raises, with
    what helm said."""
    argv = [helm, f"--kubeconfig={control_plane.kubeconfig}", "--namespace", SYSTEM_NAMESPACE, *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        raise PlatformError(f"helm {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def wait_available(control_plane, timeout: float = 240) -> None:
    r = control_plane.kubectl("-n", SYSTEM_NAMESPACE, "wait", "--for=condition=Available", f"--timeout={int(timeout)}s",
                              *(f"deployment/{d}" for d in DEPLOYMENTS), check=False, timeout=timeout + 30)
    if r.returncode != 0:
        pods = control_plane.kubectl("-n", SYSTEM_NAMESPACE, "get", "pods", "-o", "wide", check=False).stdout
        events = control_plane.kubectl("-n", SYSTEM_NAMESPACE, "get", "events", "--sort-by=.lastTimestamp",
                                       check=False).stdout[-3000:]
        raise PlatformError(f"Pravah's Deployments did not become Available: {r.stderr.strip()}\n{pods}\n{events}")


def prepare_namespace(control_plane, namespace: str) -> None:
    """What a namespace that runs PravahJobs needs (README: 'in each namespace that runs jobs'):
    the runners' service account, and Pod Security `restricted` enforced."""
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": RUNNER_ACCOUNT, "namespace": namespace},
         "automountServiceAccountToken": False},
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    control_plane.kubectl("label", "--overwrite", "namespace", namespace, *RESTRICTED)
