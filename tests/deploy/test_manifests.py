"""The kustomize base and overlays: what they contain, and that the real API server accepts
every object of both overlays (server-side dry-run)."""

from __future__ import annotations

import json

import pytest
import yaml

from deploy.helpers import CHART, MANIFESTS, ROOT, find, one, prerequisites, run_kubectl, server_dry_run

OVERLAYS = ("overlays/dev", "overlays/production")
OUR_DEPLOYMENTS = ("pravah-operator", "pravah-api")


@pytest.mark.parametrize("copy", (MANIFESTS / "base" / "crds", CHART / "crds"),
                         ids=("kustomize", "helm"))
@pytest.mark.parametrize("name", ("pravahjobs.pravah.io.yaml", "pravahcronjobs.pravah.io.yaml"))
def test_crd_copy_is_the_generated_one(copy, name):
    """Kustomize and Helm each install their own copy of each CRD under crds/."""
    generated = ROOT / "crds" / name
    where = copy.relative_to(ROOT)
    assert (copy / generated.name).read_text() == generated.read_text(), (
        f"{where}/ is stale: python -m pravah_operator.crd --write")


def test_base_has_every_part(base):
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in base}
    for expected in [("Namespace", "pravah-system"), ("CustomResourceDefinition", "pravahjobs.pravah.io"),
                     ("CustomResourceDefinition", "pravahcronjobs.pravah.io"),
                     ("ServiceAccount", "pravah-operator"), ("ServiceAccount", "pravah-api"),
                     ("ServiceAccount", "pravah-runner"), ("ClusterRole", "pravah-operator"),
                     ("ClusterRole", "pravah-api"), ("ClusterRole", "pravah-operator-leader-election"),
                     ("ClusterRoleBinding", "pravah-operator"), ("ClusterRoleBinding", "pravah-api"),
                     ("RoleBinding", "pravah-operator-leader-election"),
                     ("Deployment", "pravah-operator"), ("Deployment", "pravah-api"), ("Service", "pravah-api"),
                     ("Service", "pravah-operator-metrics"), ("ConfigMap", "pravah-operator-config"),
                     ("ConfigMap", "pravah-api-config"), ("PodDisruptionBudget", "pravah-operator"),
                     ("PodDisruptionBudget", "pravah-api"), ("NetworkPolicy", "default-deny-ingress"),
                     ("ConfigMap", "pravah-tenancy"), ("ValidatingAdmissionPolicy", "pravah-tenancy"),
                     ("ValidatingAdmissionPolicyBinding", "pravah-tenancy")]:
        assert expected in kinds, f"manifests/base lacks {expected}"
    for doc in base:
        if doc["kind"] not in ("Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                               "PersistentVolume", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
            assert doc["metadata"]["namespace"] == "pravah-system", doc["metadata"]


@pytest.mark.parametrize("overlay", ("base", "dev", "production"))
def test_workloads_are_hardened(overlay, request):
    docs = request.getfixturevalue(overlay)
    workloads = find(docs, "Deployment") + find(docs, "Job")
    assert workloads
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            if workload["kind"] == "Deployment":
                assert "livenessProbe" in container, f"{name} has no liveness probe"
        if name in OUR_DEPLOYMENTS:
            assert pod["serviceAccountName"] == name


def test_probes_and_settings_of_our_deployments(base):
    api = one(base, "Deployment", "pravah-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    operator = one(base, "Deployment", "pravah-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in operator["env"]}
    assert env["PRAVAH_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["PRAVAH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "pravah-database", "key": "url"}
    config = one(base, "ConfigMap", "pravah-operator-config")["data"]
    assert config["PRAVAH_RUNNER_SERVICE_ACCOUNT"] == "pravah-runner"
    assert not any("DATABASE" in key for key in config), "runners get no database setting"
    assert config["PRAVAH_REPORT_URL"] == "http://pravah-operator.pravah-system.svc:8082"
    assert config["PRAVAH_RUNNER_IMAGE"].startswith("ghcr.io/pravah-io/pravah-runner:")
    # Every key is a setting the operator knows (a typo would be silently ignored).
    from pravah_operator.settings import OperatorSettings

    known = {f"PRAVAH_{field.upper()}" for field in OperatorSettings.model_fields}
    assert set(config) <= known, set(config) - known
    from pravah_api.settings import ApiSettings

    known = {f"PRAVAH_{field.upper()}" for field in ApiSettings.model_fields}
    assert set(one(base, "ConfigMap", "pravah-api-config")["data"]) <= known


def test_one_allowlist_for_admission_operator_and_api(base):
    """The policy's parameter is the ConfigMap both Deployments take their environment from,
    and a missing ConfigMap refuses every job rather than admitting it unchecked."""
    from pravah.tenancy import ENDPOINTS_SETTING, TenancySettings

    config = one(base, "ConfigMap", "pravah-tenancy")
    assert set(config["data"]) == {ENDPOINTS_SETTING} == {
        f"PRAVAH_{field.upper()}" for field in TenancySettings.model_fields}
    for name in OUR_DEPLOYMENTS:
        container = one(base, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert {"configMapRef": {"name": "pravah-tenancy"}} in container["envFrom"], name
    policy = one(base, "ValidatingAdmissionPolicy", "pravah-tenancy")["spec"]
    assert policy["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"} and policy["failurePolicy"] == "Fail"
    assert ENDPOINTS_SETTING in json.dumps(policy["variables"])
    binding = one(base, "ValidatingAdmissionPolicyBinding", "pravah-tenancy")["spec"]
    assert binding["policyName"] == "pravah-tenancy" and binding["validationActions"] == ["Deny"]
    assert binding["paramRef"] == {"name": "pravah-tenancy", "namespace": config["metadata"]["namespace"],
                                   "parameterNotFoundAction": "Deny"}


def test_runner_account_has_no_token(base):
    assert one(base, "ServiceAccount", "pravah-runner")["automountServiceAccountToken"] is False


def test_overlays_differ_where_they_should(dev, production):
    replicas = {name: one(dev, "Deployment", name)["spec"]["replicas"] for name in OUR_DEPLOYMENTS}
    assert replicas == {"pravah-operator": 1, "pravah-api": 1}
    assert one(production, "Deployment", "pravah-operator")["spec"]["replicas"] == 2
    assert one(production, "Deployment", "pravah-api")["spec"]["replicas"] == 2
    assert one(production, "PodDisruptionBudget", "pravah-operator")["spec"] == {
        "minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "pravah-operator"}}}
    # dev brings its own PostgreSQL and MinIO and the volumes the examples use; production does not.
    for name in ("postgres", "minio"):
        assert find(dev, "Deployment", name) and not find(production, "Deployment", name)
    assert {pvc["metadata"]["name"] for pvc in find(dev, "PersistentVolumeClaim")} == {"datasets", "results"}
    # Jobs in dev may name the in-cluster MinIO by its Service; production lists no dev host.
    minio = one(dev, "Service", "minio")
    allowed = {name: set(one(docs, "ConfigMap", "pravah-tenancy")["data"]["PRAVAH_ALLOWED_S3_ENDPOINTS"].split(","))
               for name, docs in (("dev", dev), ("production", production))}
    assert f"http://minio.{minio['metadata']['namespace']}.svc:{minio['spec']['ports'][0]['port']}" in allowed["dev"]
    assert not allowed["production"] & allowed["dev"]
    assert not find(production, "Secret"), "production must not ship credentials"
    # What runners need in the namespace of their jobs (`default` in dev): their service
    # account, and nothing of the database, whose Secret lives in pravah-system alone.
    assert {doc["metadata"]["namespace"] for doc in find(dev, "ServiceAccount", "pravah-runner")} == \
        {"pravah-system", "default"}
    assert {doc["metadata"]["namespace"] for doc in find(dev, "Secret", "pravah-database")} == {"pravah-system"}
    images = {c["image"] for doc in find(production, "Deployment") for c in doc["spec"]["template"]["spec"]["containers"]}
    assert all(image.rsplit(":", 1)[-1] not in ("latest", "dev") for image in images), images


# -- against the real API server ----------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_server_side_dry_run(control_plane, overlay, request):
    docs = request.getfixturevalue(overlay.split("/")[-1])
    prerequisites(control_plane, docs)
    result = server_dry_run(control_plane, "-k", str(MANIFESTS / overlay))
    assert result.returncode == 0, f"kubectl apply --dry-run=server -k manifests/{overlay}:\n{result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs), result.stdout
    assert all("(server dry run)" in line for line in lines), result.stdout


def test_a_bad_manifest_is_refused_by_the_dry_run(control_plane, base):
    """The dry-run really validates: a Deployment with an invalid field is refused."""
    prerequisites(control_plane, base)
    broken = one(base, "Deployment", "pravah-api")
    broken = yaml.safe_load(yaml.safe_dump(broken))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    result = run_kubectl(control_plane, "apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(broken))
    assert result.returncode != 0 and "containerPort" in result.stderr, result.stderr
