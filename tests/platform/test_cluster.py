"""The control plane: CRDs with CEL rules, RBAC for service-account tokens."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest

from e2e.harness import wait_for

pytestmark = pytest.mark.platform


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.testbed.pravah.io"},
    "spec": {
        "group": "testbed.pravah.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object",
                    "properties": {"replicas": {"type": "integer"}, "minReplicas": {"type": "integer"}},
                    "x-kubernetes-validations": [{
                        "rule": "self.minReplicas <= self.replicas",
                        "message": "minReplicas must not exceed replicas",
                    }],
                }},
            }},
        }],
    },
}


def test_crd_cel_validation_refuses_bad_object(control_plane, namespace):
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(CRD))
    try:
        control_plane.kubectl("wait", "--for=condition=Established", "crd/widgets.testbed.pravah.io",
                              "--timeout=30s")

        def widget(name, replicas, min_replicas):
            return json.dumps({
                "apiVersion": "testbed.pravah.io/v1", "kind": "Widget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas, "minReplicas": min_replicas},
            })

        # Discovery of a fresh CRD can lag a moment behind Established.
        wait_for(lambda: control_plane.kubectl("apply", "-f", "-", input=widget("good", 3, 1),
                                                check=False).returncode == 0,
                  20, "a valid Widget to be accepted")
        bad = control_plane.kubectl("apply", "-f", "-", input=widget("bad", 1, 5), check=False)
        assert bad.returncode != 0
        assert "minReplicas must not exceed replicas" in bad.stderr
        assert "spec" in bad.stderr
    finally:
        control_plane.kubectl("delete", "crd", "widgets.testbed.pravah.io", "--wait=false", check=False)


def _request_token(control_plane, namespace: str, sa: str) -> str:
    from kubernetes import client

    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        tr = core.create_namespaced_service_account_token(
            sa, namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
                audiences=[], expiration_seconds=600)),
        )
        return tr.status.token


def _list_pods_status(control_plane, namespace: str, token: str) -> int:
    ctx = ssl.create_default_context(cafile=str(control_plane.ca))
    req = urllib.request.Request(f"{control_plane.server}/api/v1/namespaces/{namespace}/pods",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_rbac_is_enforced_for_service_account_tokens(control_plane, namespace):
    from kubernetes import client

    with control_plane.api_client() as api:
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
        token = _request_token(control_plane, namespace, "reader")
        assert _list_pods_status(control_plane, namespace, token) == 403

        rbac.create_namespaced_role(namespace, {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        })
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": "reader-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        })
    wait_for(lambda: _list_pods_status(control_plane, namespace, token) == 200, 15,
              "the RoleBinding to grant listing pods")
    # Other namespaces stay forbidden.
    assert _list_pods_status(control_plane, "default", token) == 403
