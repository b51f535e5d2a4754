"""Least privilege: the RBAC of manifests/base against what the code calls.

The "used" permissions are derived from the code: every Kubernetes client call of the
operator (operator/pravah_operator/*.py) and the API (api/pravah_api/k8s.py) is found by
reading the source and mapped to the permission it needs, plus what kopf needs. A test
fails when a call has no mapping (a new call: decide its permission), when a used
permission is not granted, and when a granted permission is not used. Against the real API
server, `kubectl auth can-i` confirms the bindings, and the REST API serves a job end to end
with its own service account's token (the operator's own token is used by every e2e test).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.helpers import ROOT, Permission, granted, kubectl_binary
from e2e.harness import wait_for

OPERATOR_SOURCES = sorted((ROOT / "operator" / "pravah_operator").glob("*.py"))
API_SOURCES = sorted((ROOT / "api" / "pravah_api").glob("*.py"))
CLIENT_CALL = re.compile(r"\b(?:ctx|self)\.(?:core|batch|custom|networking|leases|authn|authz|version)\.(\w+)")

# kubernetes_asyncio method -> the permission it needs. None: no RBAC rule needed (e.g.
# /version is readable by every authenticated user through system:public-info-viewer).
CALLS: dict[str, tuple[Permission, ...] | None] = {
    "read_namespaced_lease": (("coordination.k8s.io", "leases", "get"),),
    "create_namespaced_lease": (("coordination.k8s.io", "leases", "create"),),
    "replace_namespaced_lease": (("coordination.k8s.io", "leases", "update"),),
    "list_node": (("", "nodes", "list"),),
    "read_namespaced_secret": (("", "secrets", "get"),),
    "create_namespaced_job": (("batch", "jobs", "create"),),
    "create_namespaced_network_policy": (("networking.k8s.io", "networkpolicies", "create"),),
    "read_namespaced_job": (("batch", "jobs", "get"),),
    "list_namespaced_job": (("batch", "jobs", "list"),),
    "delete_namespaced_job": (("batch", "jobs", "delete"),),
    "list_namespaced_custom_object": (("pravah.io", "pravahjobs", "list"),),
    "list_cluster_custom_object": (("pravah.io", "pravahjobs", "list"),),
    "get_namespaced_custom_object": (("pravah.io", "pravahjobs", "get"),),
    "create_namespaced_custom_object": (("pravah.io", "pravahjobs", "create"),),
    "patch_namespaced_custom_object": (("pravah.io", "pravahjobs", "patch"),),
    "delete_namespaced_custom_object": (("pravah.io", "pravahjobs", "delete"),),
    "list_namespace": (("", "namespaces", "list"),),
    "list_namespaced_pod": (("", "pods", "list"),),
    "list_pod_for_all_namespaces": (("", "pods", "list"),),
    "read_namespaced_pod": (("", "pods", "get"),),
    "read_namespaced_pod_log": (("", "pods/log", "get"),),
    "list_namespaced_event": (("", "events", "list"),),
    "create_token_review": (("authentication.k8s.io", "tokenreviews", "create"),),
    "create_subject_access_review": (("authorization.k8s.io", "subjectaccessreviews", "create"),),
    "get_code": None,
}

# What kopf itself does with the handlers' resources, PravahJobs and PravahCronJobs (see
# kopf's "RBAC" documentation): list + watch them, patch finalizers/annotations and the
# status subresource, post Events, observe CRDs (installed or upgraded at run time) and, with PRAVAH_NAMESPACES, namespaces.
KOPF: set[Permission] = {
    (group, resource, verb) for group, resource, verbs in (
        ("pravah.io", "pravahjobs", ("list", "watch", "patch")), ("pravah.io", "pravahjobs/status", ("patch",)),
        ("pravah.io", "pravahcronjobs", ("list", "watch", "patch")), ("pravah.io", "pravahcronjobs/status", ("patch",)),
    ) for verb in verbs} | {
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"), ("", "namespaces", "watch"),
}
LEASES = {("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}
# Called by the API, and on purpose not granted to it: a job's credentialsSecret is read with
# the caller's own token in `kubernetes` mode (jobs.py `acting`), so a Secret reaches only a
# caller who may read it; in `standalone` mode, where callers are not Kubernetes users, only
# where a namespace binds `get` on its Secrets to pravah-api itself.
API_AS_CALLER: set[Permission] = {("", "secrets", "get")}


def calls_in(paths: list[Path]) -> set[str]:
    return {match for path in paths for match in CLIENT_CALL.findall(path.read_text())}


def used_by(paths: list[Path]) -> set[Permission]:
    calls = calls_in(paths)
    unknown = calls - set(CALLS)
    assert not unknown, f"new Kubernetes calls {sorted(unknown)}: add them (and their permission) to CALLS"
    return {perm for call in calls for perm in (CALLS[call] or ())}


def test_operator_rules_are_exactly_what_it_uses(base):
    used = used_by(OPERATOR_SOURCES) | KOPF
    assert calls_in(OPERATOR_SOURCES) >= {"list_node", "create_namespaced_job", "read_namespaced_lease"}
    rules = granted(base, "pravah-operator")
    assert set(rules) == {("pravah-operator", None), ("pravah-operator-leader-election", "pravah-system")}
    # The Lease permissions only in the operator's own namespace, everything else cluster-wide.
    assert rules[("pravah-operator-leader-election", "pravah-system")] == LEASES
    assert used - LEASES == rules[("pravah-operator", None)], (
        f"missing: {sorted((used - LEASES) - rules[('pravah-operator', None)])}; "
        f"not used: {sorted(rules[('pravah-operator', None)] - used)}")
    assert used >= LEASES


def test_api_rules_are_exactly_what_it_uses(base):
    assert API_AS_CALLER <= used_by(API_SOURCES)
    used = used_by(API_SOURCES) - API_AS_CALLER
    rules = granted(base, "pravah-api")
    assert set(rules) == {("pravah-api", None)}
    assert used == rules[("pravah-api", None)], (
        f"missing: {sorted(used - rules[('pravah-api', None)])}; not used: {sorted(rules[('pravah-api', None)] - used)}")


def test_runners_get_nothing(base, dev):
    for docs in (base, dev):
        assert granted(docs, "pravah-runner") == {}
        assert granted(docs, "pravah-runner", "default") == {}


# -- against the real API server ----------------------------------------------------------

def can_i(control_plane, account: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` as the service account; `resource` may name a subresource (pods/log)."""
    resource, _, subresource = resource.partition("/")
    argv = [kubectl_binary(), f"--kubeconfig={control_plane.kubeconfig}", "auth", "can-i", verb, resource,
            f"--as=system:serviceaccount:pravah-system:{account}"]
    argv += [f"--subresource={subresource}"] if subresource else []
    argv += ["-n", namespace] if namespace else ["--all-namespaces"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return result.stdout.strip() == "yes"


def resource_name(group: str, resource: str) -> str:
    base, _, sub = resource.partition("/")
    name = f"{base}.{group}" if group else base
    return f"{name}/{sub}" if sub else name


@pytest.mark.parametrize("account", ["pravah-operator", "pravah-api"])
def test_bindings_grant_what_is_used_and_not_more(control_plane, crd, namespace, account):
    used = ((used_by(OPERATOR_SOURCES) | KOPF) - LEASES if account == "pravah-operator"
            else used_by(API_SOURCES) - API_AS_CALLER)
    for group, resource, verb in sorted(used):
        assert can_i(control_plane, account, verb, resource_name(group, resource), namespace), \
            f"{account} cannot {verb} {resource_name(group, resource)} in {namespace}"
    never = [("create", "pods"), ("delete", "pods"), ("list", "secrets"), ("create", "secrets"),
             ("update", "pravahjobs.pravah.io"), ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
             ("create", "serviceaccounts/token"), ("create", "pods/exec"), ("update", "leases.coordination.k8s.io")]
    if account == "pravah-api":
        never += [("create", "jobs.batch"), ("patch", "pravahjobs.pravah.io/status"), ("list", "nodes"),
                  ("get", "secrets")]
    else:
        # PravahJobs it creates and deletes for PravahCronJobs; those it only follows.
        never += [("create", "pravahcronjobs.pravah.io"), ("update", "pravahcronjobs.pravah.io"),
                  ("get", "secrets"), ("get", "pods/log")]
    for verb, resource in never:
        assert not can_i(control_plane, account, verb, resource, namespace), f"{account} may {verb} {resource}"
    if account == "pravah-operator":
        # Leases: only in the operator's namespace (a RoleBinding), not in the jobs' ones.
        assert can_i(control_plane, account, "update", "leases.coordination.k8s.io", "pravah-system")
        assert not can_i(control_plane, account, "update", "leases.coordination.k8s.io", namespace)
    assert not can_i(control_plane, "pravah-runner", "get", "pods", namespace)


def test_api_serves_a_job_with_its_own_service_account(cluster, sample_data):
    """The installed REST API runs with the `pravah-api` token (not admin): a caller's job is
    created, listed, read, runs to Succeeded, its result and logs are served, and it is cancelled."""
    from api.helpers import CLAIMS, DeployedApi, service_account

    caller = service_account(cluster.control_plane, cluster.namespace, "pipeline",
                             ["get", "list", "watch", "create", "patch", "delete"], CLAIMS)
    api = DeployedApi(cluster.control_plane)
    assert api.request("GET", "/readyz").status_code == 200
    spec = yaml.safe_load((ROOT / "examples" / "count-volume.yaml").read_text())["spec"]
    made = api.request("POST", "/jobs", caller, json={**spec, "name": "rest-count", "namespace": cluster.namespace})
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    listed = api.request("GET", f"/jobs?namespace={cluster.namespace}", caller)
    assert listed.status_code == 200 and job_id in {job["id"] for job in listed.json()["items"]}, listed.text
    assert api.request("GET", "/jobs", caller).status_code == 200  # all namespaces the caller may see

    def finished():
        answer = api.request("GET", f"/jobs/{job_id}", caller)
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.json().get("phase") in ("Succeeded", "Failed", "Cancelled") else None

    job = wait_for(finished, 180, "the REST job to finish", interval=0.5)
    assert job["phase"] == "Succeeded", job
    results = api.request("GET", f"/jobs/{job_id}/results", caller)
    assert results.status_code == 200 and results.json()["operation"] == "count", results.text[:500]
    assert api.request("GET", f"/jobs/{job_id}/logs", caller).status_code == 200
    second = api.request("POST", "/jobs", caller, json={**spec, "name": "rest-cancel", "namespace": cluster.namespace})
    assert second.status_code == 201, second.text
    assert api.request("DELETE", f"/jobs/{second.json()['id']}", caller).status_code == 202
    purge = api.request("DELETE", f"/jobs/{second.json()['id']}?purge=true", caller)
    assert purge.status_code in (200, 202, 204), purge.text


def test_a_missing_permission_is_caught(cluster, sample_data):
    """The installed operator with its ClusterRole less one rule (nodes list) cannot size a
    job, and the refusal shows in its log — what the e2e fixtures turn into a failed test."""
    import json
    import time

    original = json.loads(cluster.control_plane.kubectl("get", "clusterrole", "pravah-operator", "-o", "json").stdout)
    reduced = {key: original[key] for key in ("apiVersion", "kind", "metadata", "rules")}
    reduced["rules"] = [rule for rule in original["rules"] if rule.get("resources") != ["nodes"]]
    assert len(reduced["rules"]) == len(original["rules"]) - 1
    cluster.control_plane.kubectl("replace", "-f", "-", input=json.dumps(reduced))
    try:
        cluster.apply(ROOT / "examples" / "count-volume.yaml")
        refused = wait_for(cluster.operator.forbidden, 90, "the operator to be refused `list nodes`", interval=1)
        assert any("nodes" in line for line in refused), refused
    finally:
        restored = {**reduced, "rules": original["rules"]}
        restored["metadata"] = {k: v for k, v in original["metadata"].items() if k != "resourceVersion"}
        cluster.control_plane.kubectl("replace", "-f", "-", input=json.dumps(restored))
    # With the permission back, the operator's retry goes through and the job runs.
    cluster.wait_phase("data-count", timeout=240)
    # What the operator logged up to here was this test's doing.
    cluster.operator.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
