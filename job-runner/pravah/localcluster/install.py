"""Install Pravah on the local cluster as users install it: `kubectl apply -k` of a
kustomize overlay (manifests/overlays/test) with the locally built images.

The overlay is wrapped in a generated kustomization that only sets the image names and tags
(kustomize `images:`), the runner image in the operator's ConfigMap and the S3 server's
endpoint in the `pravah-tenancy` allowlist: everything else — Deployments, probes,
resources, security contexts, service accounts, RBAC, admission — is what the manifests say.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from .bins import REPO_ROOT
from .images import BuiltImages
from .procs import PlatformError

OVERLAY = REPO_ROOT / "manifests" / "overlays" / "test"
SYSTEM_NAMESPACE = "pravah-system"
DATABASE_SECRET = "pravah-database"
RUNNER_ACCOUNT = "pravah-runner"
PUBLISHED = {"operator": "ghcr.io/pravah-io/pravah-operator", "api": "ghcr.io/pravah-io/pravah-api"}
DEPLOYMENTS = ("pravah-operator", "pravah-api")
RESTRICTED = ("pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")


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


def database_secret(namespace: str, url: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": DATABASE_SECRET, "namespace": namespace},
            "stringData": {"url": url}}


def install(control_plane, images: BuiltImages, database_url: str, s3_endpoint: str, workdir: Path,
            timeout: float = 240) -> float:
    """Apply the overlay and wait for the operator and the API to be Available; seconds taken."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization(images, workdir, s3_endpoint)))
    control_plane.kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(database_secret(SYSTEM_NAMESPACE, database_url)))
    applied = control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(workdir), check=False)
    if applied.returncode != 0:
        raise PlatformError(f"kubectl apply -k {workdir} failed: {applied.stderr.strip()}")
    wait_available(control_plane, timeout)
    return time.monotonic() - t0


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
