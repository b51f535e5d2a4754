"""Helpers of the deployment tests: kustomize rendering, RBAC rules, service-account kubeconfigs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"


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
