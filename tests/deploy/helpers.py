"""Helpers of the deployment tests: kustomize and Helm rendering, RBAC rules, server-side dry runs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "charts" / "pravah"


def kubectl_binary() -> str:
    from pravah.localcluster import bins

    return str(bins.k8s_bin_dir() / "kubectl")


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/<overlay>`, as documents."""
    out = subprocess.run([kubectl_binary(), "kustomize", str(MANIFESTS / overlay)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kubectl kustomize manifests/{overlay} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


Permission = tuple[str, str, str]  # (apiGroup, resource, verb)


def granted(docs: list[dict[str, Any]], account: str, namespace: str = "pravah-system"
            ) -> dict[tuple[str, str | None], set[Permission]]:
    """Every (apiGroup, resource, verb) bound to a service account, keyed by (role, scope):
    scope None = cluster-wide (ClusterRoleBinding), else the RoleBinding's namespace."""
    roles = {(doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace")): doc
             for doc in docs if doc["kind"] in ("ClusterRole", "Role")}
    out: dict[tuple[str, str | None], set[Permission]] = {}
    for binding in docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s["name"] == account and s.get("namespace") == namespace
                   for s in binding.get("subjects") or []):
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], ref["name"], role_ns)]
        perms = out.setdefault((ref["name"], scope), set())
        for rule in role.get("rules") or []:
            assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), \
                f"wildcard in {ref['name']}: {rule}"
            assert not rule.get("resourceNames"), "resourceNames are not modelled here"
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule["verbs"]:
                        perms.add((group, resource, verb))
    return out


def helm_binary() -> str:
    """The helm client that scripts/helm-bin builds: a test that needs it fails without it."""
    out = subprocess.run([str(ROOT / "scripts" / "helm-bin"), "--print"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        pytest.fail(f"helm is missing: run scripts/helm-bin (or scripts/platform-prereqs). {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)


def helm_template(*args: str, namespace: str = "pravah-system") -> list[dict[str, Any]]:
    """`helm template pravah charts/pravah --include-crds` in a namespace, as documents."""
    out = helm("template", "pravah", str(CHART), "--include-crds", "--namespace", namespace, *args)
    assert out.returncode == 0, f"helm template charts/pravah {' '.join(args)} failed:\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


# -- against the real API server ----------------------------------------------------------

def run_kubectl(control_plane, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([kubectl_binary(), f"--kubeconfig={control_plane.kubeconfig}", *args],
                          input=input, capture_output=True, text=True, timeout=180)


def prerequisites(control_plane, docs: list[dict]) -> None:
    """Namespaces and CRDs for real, so that the objects that need them can be dry-run."""
    needed = [doc for doc in docs if doc["kind"] in ("Namespace", "CustomResourceDefinition")]
    result = run_kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-f", "-",
                         input=yaml.safe_dump_all(needed))
    assert result.returncode == 0, result.stderr
    crds = [f"crd/{doc['metadata']['name']}" for doc in needed if doc["kind"] == "CustomResourceDefinition"]
    result = run_kubectl(control_plane, "wait", "--for=condition=Established", "--timeout=60s", *crds)
    assert result.returncode == 0, result.stderr


def server_dry_run(control_plane, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """`kubectl apply --server-side --dry-run=server ARGS`. Server-side apply: the cluster may
    hold an installed Pravah, whose fields these objects' own (e.g. a PodDisruptionBudget's)
    replace rather than merge with."""
    # The CRD's storage may answer 429/503 for a moment right after it is established.
    for _ in range(5):
        result = run_kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "--dry-run=server",
                             *args, input=input)
        if result.returncode == 0 or "the server is currently unable" not in result.stderr:
            break
        time.sleep(2)
    return result
