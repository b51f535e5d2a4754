"""The Helm chart (charts/pravah): it lints clean, renders the same objects as the kustomize
base and production overlay for the same settings, refuses bad values naming them, and what
it renders is accepted by the real API server (server-side dry-run)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
import yaml

from deploy.helpers import (CHART, ROOT, find, helm, helm_template, one, prerequisites, render, run_kubectl,
                             server_dry_run)
from pravah.localcluster import install
from pravah.spec import VOLUME_PATH
from pravah_operator import smoke

# The labels a Helm chart conventionally adds to what it renders; kustomize has no release.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version"}
# The pod annotation that rolls pods when their ConfigMaps change (`helm upgrade`).
HELM_ANNOTATION_PREFIX = "checksum/"
# Kinds the API server keeps cluster-wide: kustomize's `namespace:` also stamps the admission
# policy and its binding (it does not know them as cluster-scoped); the server ignores that.
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding"}
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
RELEASE = "pravah"
# `helm test`'s smoke job, on: it runs in the release namespace unless told otherwise.
SMOKE = ("--set", "tests.smoke.enabled=true", "--set", "tests.smoke.claimName=datasets",
         "--set", "tests.smoke.path=samples", "--set", "tests.smoke.outputClaimName=results")
SMOKE_OBJECTS = {("ServiceAccount", "pravah-smoke"), ("Role", "pravah-smoke"), ("RoleBinding", "pravah-smoke"),
                 ("Pod", "pravah-smoke")}


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


def _strip(metadata: dict[str, Any] | None) -> None:
    """Drop the labels and annotations only Helm adds from one metadata block."""
    if not metadata:
        return
    for field, dropped in (("labels", lambda key: key in HELM_LABELS),
                           ("annotations", lambda key: key.startswith(HELM_ANNOTATION_PREFIX))):
        kept = {key: value for key, value in (metadata.get(field) or {}).items() if not dropped(key)}
        if kept:
            metadata[field] = kept
        else:
            metadata.pop(field, None)


def normalized(docs: list[dict[str, Any]]) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    """Objects keyed by (kind, namespace, name), less what only Helm adds to them."""
    out = {}
    for doc in copy.deepcopy(docs):
        _strip(doc["metadata"])
        _strip(doc.get("spec", {}).get("template", {}).get("metadata"))
        if doc["kind"] in CLUSTER_SCOPED:
            doc["metadata"].pop("namespace", None)
        key = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        assert key not in out, f"rendered twice: {key}"
        out[key] = doc
    return out


def assert_same_objects(kustomized: list[dict[str, Any]], charted: list[dict[str, Any]]) -> None:
    """Everything kustomize renders but its Namespace (Helm installs into the release's), equal."""
    expected = normalized([doc for doc in kustomized if doc["kind"] != "Namespace"])
    # Hooks (the `helm test` smoke job) are no part of the release's objects: Helm creates them
    # only when `helm test` runs. `helm template` still prints them (unless --skip-tests), and
    # kustomize has nothing like them.
    got = normalized([doc for doc in charted if not is_hook(doc)])
    assert sorted(got) == sorted(expected), {"only in the chart": sorted(set(got) - set(expected)),
                                             "only in kustomize": sorted(set(expected) - set(got))}
    for key, doc in expected.items():
        assert got[key] == doc, key


@pytest.fixture(scope="session")
def chart() -> list[dict[str, Any]]:
    return helm_template()


def test_chart_lints_clean():
    for args in ((), ("--values", str(PRODUCTION_VALUES)), SMOKE):
        result = helm("lint", "--strict", str(CHART), *args)
        assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout + result.stderr
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_default_values_render_the_kustomize_base(base, chart):
    assert_same_objects(base, chart)


def test_production_values_render_the_production_overlay(production):
    assert_same_objects(production, helm_template("--values", str(PRODUCTION_VALUES)))


def test_local_cluster_values_render_the_test_overlay(tmp_path):
    """The Helm install of the local cluster (pravah.localcluster.install) says what its kustomize one does."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(install.TEST_OVERLAY_VALUES))
    assert_same_objects(render("overlays/test"), helm_template("--values", str(values)))


@pytest.mark.parametrize("name", ("pravahjobs.pravah.io.yaml", "pravahcronjobs.pravah.io.yaml"))
def test_crd_is_the_generated_file(chart, name):
    generated = yaml.safe_load((ROOT / "crds" / name).read_text())
    assert one(chart, "CustomResourceDefinition", generated["metadata"]["name"]) == generated


def test_every_object_names_its_release(chart):
    """What the normalization drops is really there: Helm's labels, on the objects and on the pods."""
    metadata = [doc["metadata"] for doc in chart if doc["kind"] != "CustomResourceDefinition"]
    metadata += [doc["spec"]["template"]["metadata"] for doc in find(chart, "Deployment")]
    for meta in metadata:
        labels = meta["labels"]
        assert (labels["app.kubernetes.io/instance"], labels["app.kubernetes.io/managed-by"]) == (RELEASE, "Helm"), meta


def test_release_namespace_is_used_everywhere():
    namespace = "data-platform"
    docs = helm_template(namespace=namespace)
    assert "pravah-system" not in yaml.safe_dump_all(docs)
    namespaced = [doc for doc in docs if doc["kind"] not in CLUSTER_SCOPED]
    assert {doc["metadata"]["namespace"] for doc in namespaced} == {namespace}
    service = one(docs, "Service", "pravah-operator")
    config = one(docs, "ConfigMap", "pravah-operator-config")["data"]
    port = service["spec"]["ports"][0]["port"]
    assert config["PRAVAH_REPORT_URL"] == f"http://pravah-operator.{namespace}.svc:{port}"
    binding = one(docs, "ValidatingAdmissionPolicyBinding", "pravah-tenancy")
    assert binding["spec"]["paramRef"]["namespace"] == namespace
    for doc in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding"):
        assert {subject["namespace"] for subject in doc["subjects"]} == {namespace}, doc["metadata"]["name"]


def test_values_reach_the_objects():
    digest = "sha256:" + hashlib.sha256(b"pravah-api").hexdigest()
    endpoints = ["https://s3.example.internal", "http://minio.storage.svc:9000"]
    docs = helm_template("--set", f"api.image.digest={digest}", "--set", "operator.image.tag=0.2.0",
                         "--set", "runner.image.tag=0.2.0", "--set", "database.secretName=pg",
                         "--set", f"tenancy.allowedS3Endpoints={{{','.join(endpoints)}}}",
                         "--set", "api.authMode=standalone", "--set", "api.jwtSecret.name=pravah-jwt",
                         "--set", "api.dashboard.enabled=false",
                         "--set", "operator.extraConfig.PRAVAH_NAMESPACES=[\"analytics\"]")
    containers = {name: one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
                  for name in ("pravah-operator", "pravah-api")}
    assert containers["pravah-api"]["image"] == f"ghcr.io/pravah-io/pravah-api@{digest}"
    assert containers["pravah-operator"]["image"] == "ghcr.io/pravah-io/pravah-operator:0.2.0"
    operator_config = one(docs, "ConfigMap", "pravah-operator-config")["data"]
    assert operator_config["PRAVAH_RUNNER_IMAGE"] == "ghcr.io/pravah-io/pravah-runner:0.2.0"
    assert operator_config["PRAVAH_NAMESPACES"] == '["analytics"]'
    assert one(docs, "ConfigMap", "pravah-tenancy")["data"]["PRAVAH_ALLOWED_S3_ENDPOINTS"] == ",".join(endpoints)
    assert one(docs, "ConfigMap", "pravah-api-config")["data"]["PRAVAH_API_AUTH_MODE"] == "standalone"
    assert one(docs, "ConfigMap", "pravah-api-config")["data"]["PRAVAH_API_UI"] == "false"
    env = {item["name"]: item["valueFrom"] for item in containers["pravah-api"]["env"]}
    assert env["PRAVAH_DATABASE_URL"]["secretKeyRef"] == {"name": "pg", "key": "url"}
    assert env["PRAVAH_API_JWT_SECRET"]["secretKeyRef"] == {"name": "pravah-jwt", "key": "jwt-secret"}


def test_a_settings_change_rolls_the_pods(chart):
    changed = helm_template("--set", "tenancy.allowedS3Endpoints={https://s3.example.internal}")
    for name in ("pravah-operator", "pravah-api"):
        before, after = (one(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
                         for docs in (chart, changed))
        assert before["checksum/config"] != after["checksum/config"], name


def test_optional_parts_follow_their_switches(chart):
    assert not find(chart, "ServiceMonitor"), "the ServiceMonitor is off by default"
    monitored = helm_template("--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=prom")
    monitor = one(monitored, "ServiceMonitor", "pravah")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    ports = {(service["metadata"]["name"], port["name"]) for service in find(monitored, "Service")
             if service["metadata"]["labels"]["app.kubernetes.io/name"] in selected
             for port in service["spec"]["ports"]}
    # Each endpoint scrapes a port that a selected Service has; together: the operator's and the API's.
    scraped = {service for service, port in ports if port in {e["port"] for e in monitor["spec"]["endpoints"]}}
    assert scraped == {"pravah-operator-metrics", "pravah-api"}
    bare = helm_template("--set", "networkPolicy.enabled=false", "--set", "podDisruptionBudget.enabled=false")
    assert find(chart, "NetworkPolicy") and not find(bare, "NetworkPolicy")
    assert find(chart, "PodDisruptionBudget") and not find(bare, "PodDisruptionBudget")


@pytest.mark.parametrize(("args", "named"), [
    (("--set", "operator.replicas=-1"), "/operator/replicas"),
    (("--set", "api.authMode=ldap"), "/api/authMode"),
    (("--set", "operator.maxRunningPerNamespace=ten"), "/operator/maxRunningPerNamespace"),
    (("--set", "api.replicas=true"), "/api/replicas"),
    (("--set", "operator.replica=2"), "'replica'"),
    (("--set", "tenancy.allowedS3Endpoints={s3.example.internal}"), "/tenancy/allowedS3Endpoints/0"),
    (("--set", "api.authMode=standalone"), "/api/jwtSecret/name"),
    (("--set", "operator.extraConfig.PRAVAH_DATABASE_URL=postgresql://x"),
     "/operator/extraConfig/PRAVAH_DATABASE_URL"),
    (("--set", "operator.reportService.clusterIP=pravah-operator"), "/operator/reportService/clusterIP"),
    (("--set", "tests.smoke.enabled=true"), "/tests/smoke/claimName"),
    ((*SMOKE, "--set", "tests.smoke.path=../elsewhere"), "/tests/smoke/path"),
    ((*SMOKE, "--set", "tests.smoke.namespace=Analytics"), "/tests/smoke/namespace"),
    (("--set", "api.dashboard.enabled=maybe"), "/api/dashboard/enabled"),
], ids=["negative-replicas", "unknown-auth-mode", "wrong-type", "bool-replicas", "unknown-key",
        "endpoint-without-scheme", "standalone-without-jwt-secret", "database-url-in-configmap",
        "report-cluster-ip-not-an-address", "smoke-without-claim", "smoke-path-outside-the-volume",
        "smoke-namespace-not-a-name", "dashboard-switch-not-a-bool"])
def test_a_bad_value_is_refused_naming_it(args, named):
    result = helm("template", RELEASE, str(CHART), *args)
    assert result.returncode != 0, f"helm template {' '.join(args)} was accepted"
    assert "schema" in result.stderr and named in result.stderr, result.stderr


# -- `helm test` ----------------------------------------------------------------------------

def test_smoke_test_is_test_hooks_only(base, chart):
    """Off by default; on, it adds `helm test` hooks and changes nothing that is installed."""
    assert not any(is_hook(doc) for doc in chart)
    docs = helm_template(*SMOKE)
    hooks = [doc for doc in docs if is_hook(doc)]
    assert {(doc["kind"], doc["metadata"]["name"]) for doc in hooks} == SMOKE_OBJECTS
    for doc in hooks:
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "test", doc["metadata"]
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded", doc["metadata"]
    # The account and its rights exist before the pod that uses them.
    weights = {doc["kind"]: int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) for doc in hooks}
    assert max(weight for kind, weight in weights.items() if kind != "Pod") < weights["Pod"], weights
    assert_same_objects(base, docs)


def test_smoke_pod_runs_the_smoke_module_like_the_other_pods():
    """Pod Security `restricted` like the operator's pods, the operator's image, and arguments
    that the smoke module itself parses to the chart's values."""
    docs = helm_template(*SMOKE, "--set", "tests.smoke.namespace=analytics", "--set", "operator.image.tag=0.2.0")
    pod = one(docs, "Pod", "pravah-smoke")["spec"]
    operator = one(docs, "Deployment", "pravah-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"] == operator["securityContext"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["securityContext"] == operator["containers"][0]["securityContext"]
    assert container["image"] == operator["containers"][0]["image"] == "ghcr.io/pravah-io/pravah-operator:0.2.0"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["command"] == ["python", "-m", smoke.__name__]
    args = smoke.parse_args(container["args"])
    assert (args.namespace, args.claim, args.path, args.output_claim, args.output_path, args.timeout) == (
        "analytics", "datasets", "samples", "results", "pravah-smoke", 240)
    assert pod["serviceAccountName"] == "pravah-smoke"


def test_smoke_account_may_only_run_its_jobs():
    """Its PravahJobs, and a look at the two claims they name, which the tenant policy
    (pravah-tenancy) requires of whoever creates a job; in the smoke namespace only."""
    for namespace in ("", "analytics"):
        docs = helm_template(*SMOKE, "--set", f"tests.smoke.namespace={namespace}")
        scope = namespace or "pravah-system"
        role, binding = one(docs, "Role", "pravah-smoke"), one(docs, "RoleBinding", "pravah-smoke")
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == scope
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pravah-smoke"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pravah-smoke", "namespace": "pravah-system"}]
        assert role["rules"] == [
            {"apiGroups": ["pravah.io"], "resources": ["pravahjobs"], "verbs": ["create", "get", "delete"]},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": ["datasets", "results"],
             "verbs": ["get"]}]
        assert not [doc for doc in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding")
                    if doc is not binding and "pravah-smoke" in str(doc["subjects"])]


def test_smoke_paths_are_checked_as_the_crd_checks_them():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["definitions"]["volumePath"]["pattern"] == VOLUME_PATH


# -- against the real API server ----------------------------------------------------------

VALUES = {"default": (), "production": ("--values", str(PRODUCTION_VALUES)), "smoke": SMOKE}


@pytest.mark.parametrize("values", VALUES)
def test_chart_passes_server_side_dry_run(control_plane, base, values):
    """With the smoke test on, its pod is admitted by Pod Security `restricted`, which the
    base's Namespace enforces."""
    docs = helm_template(*VALUES[values])
    # `helm install --create-namespace` makes the namespace; here the base's does.
    prerequisites(control_plane, find(base, "Namespace") + docs)
    accounts = yaml.safe_dump_all(find(docs, "ServiceAccount", "pravah-smoke"))
    try:
        # A pod's admission looks its service account up, and a dry run creates none.
        if accounts:
            assert run_kubectl(control_plane, "apply", "-f", "-", input=accounts).returncode == 0
        result = server_dry_run(control_plane, "-f", "-", input=yaml.safe_dump_all(docs))
    finally:
        if accounts:
            run_kubectl(control_plane, "delete", "--ignore-not-found", "-f", "-", input=accounts)
    assert result.returncode == 0, f"helm template | kubectl apply --dry-run=server:\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs) and all("(server dry run)" in line for line in lines), result.stdout
