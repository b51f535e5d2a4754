"""The control plane, scheduler, controllers and node agent behave like a real cluster."""

from __future__ import annotations

import json
import ssl
import sys
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.platform


def _wait_for(fn, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _get_json(cp, *args):
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def test_indexed_job_runs_to_complete(control_plane, node_agent, namespace, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    script = (
        "import os, pathlib; "
        "i = os.environ['INDEX']; "
        "assert i == os.environ['JOB_COMPLETION_INDEX'], 'index env differ'; "
        "pathlib.Path('/shared', i).write_text(os.environ['POD_NAME'] + ' ' + os.environ['POD_NAMESPACE']); "
        "print('shard', i, 'done')"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "indexed", "namespace": namespace},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "main",
                        "image": "python:3.11-slim",
                        "command": [sys.executable, "-c", script],
                        "env": [
                            {"name": "INDEX", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        ],
                        "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
                        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                    }],
                    "volumes": [{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}],
                }
            },
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(job))
    r = control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/indexed",
                              "--timeout=90s", check=False, timeout=100)
    if r.returncode != 0:
        pods = control_plane.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        status = control_plane.kubectl("get", "job", "indexed", "-n", namespace, "-o", "yaml", check=False).stdout
        pytest.fail(f"Job did not complete: {r.stderr}\n{pods}\n{status}")
    assert sorted(p.name for p in shared.iterdir()) == ["0", "1", "2"]
    for f in shared.iterdir():
        assert f.read_text().endswith(" " + namespace)
    job_status = _get_json(control_plane, "job", "indexed", "-n", namespace)["status"]
    assert job_status["succeeded"] == 3
    assert job_status.get("completedIndexes") == "0-2"
    pods = _get_json(control_plane, "pods", "-n", namespace, "-l", "job-name=indexed")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["nodeName"] in node_agent.node_names
        assert pod["status"]["phase"] == "Succeeded"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert f"shard {index} done" in node_agent.pod_log(namespace, pod["metadata"]["name"])


def test_pod_failure_policy_sees_exit_codes(control_plane, node_agent, namespace):
    """backoffLimitPerIndex + podFailurePolicy onExitCodes: exit code 42 fails the Job at once."""
    script = "import os, sys; sys.exit(42 if os.environ['JOB_COMPLETION_INDEX'] == '1' else 0)"
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "policy", "namespace": namespace},
        "spec": {
            "completions": 2, "parallelism": 2, "completionMode": "Indexed",
            "backoffLimitPerIndex": 3, "maxFailedIndexes": 1,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
            "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": "none", "command": [sys.executable, "-c", script]}]}},
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(job))

    def failed():
        j = _get_json(control_plane, "job", "policy", "-n", namespace)
        for c in j.get("status", {}).get("conditions", []):
            if c["type"] == "Failed" and c["status"] == "True":
                return c
        return None

    cond = _wait_for(failed, 60, "Job policy to fail")
    assert cond["reason"] == "PodFailurePolicy"
    assert "42" in cond["message"]


def test_pod_exit_code_is_reported(control_plane, node_agent, namespace):
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "exit3", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "none",
            "command": [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"]}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def failed():
        p = _get_json(control_plane, "pod", "exit3", "-n", namespace)
        return p if p.get("status", {}).get("phase") == "Failed" else None

    p = _wait_for(failed, 60, "pod exit3 to fail")
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "bye" in node_agent.pod_log(namespace, "exit3")


def test_deleting_a_pod_stops_its_process(control_plane, node_agent, namespace, tmp_path):
    marker = tmp_path / "started"
    script = f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(600)"
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [{
            "name": "main", "image": "none", "command": [sys.executable, "-c", script]}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))
    _wait_for(marker.exists, 60, "the pod's process to start")
    t0 = time.monotonic()
    control_plane.kubectl("delete", "pod", "sleeper", "-n", namespace, "--wait=true", "--timeout=30s",
                          timeout=40)
    assert time.monotonic() - t0 < 15
    assert "exit code 143" in node_agent.pod_log(namespace, "sleeper")


def test_pod_gets_a_service_account_token(control_plane, node_agent, namespace):
    script = (
        "import os, pathlib, ssl, urllib.request, urllib.error\n"
        "d = pathlib.Path(os.environ['PRAVAH_SERVICEACCOUNT_DIR'])\n"
        # The agent rewrites the mount path in the command line to the same local directory.
        "assert d == pathlib.Path('/var/run/secrets/kubernetes.io/serviceaccount'), d\n"
        "ns = (d / 'namespace').read_text()\n"
        "ctx = ssl.create_default_context(cafile=str(d / 'ca.crt'))\n"
        "url = f\"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
        "/api/v1/namespaces/{ns}/pods\"\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + (d / 'token').read_text()})\n"
        "try:\n"
        "    code = urllib.request.urlopen(req, context=ctx).status\n"
        "except urllib.error.HTTPError as e:\n"
        "    code = e.code\n"
        "print('status', code)\n"
    )
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "in-cluster", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "none", "command": [sys.executable, "-c", script]}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def done():
        p = _get_json(control_plane, "pod", "in-cluster", "-n", namespace)
        return p if p.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    p = _wait_for(done, 60, "pod in-cluster to finish")
    out = node_agent.pod_log(namespace, "in-cluster")
    assert p["status"]["phase"] == "Succeeded", out
    # Authenticated as system:serviceaccount:<ns>:default, which may not list pods.
    assert "status 403" in out


def test_volumes_env_and_mount_rewriting(control_plane, node_agent, namespace, tmp_path):
    """PVC, emptyDir, configMap volumes; secretKeyRef, configMapKeyRef, envFrom; PRAVAH_MOUNTS."""
    claim_dir = node_agent.pvc_root / namespace / "datasets"
    claim_dir.mkdir(parents=True, exist_ok=True)
    (claim_dir / "input.txt").write_text("hello")
    manifests = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-datasets"[:63]},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(claim_dir)},
                  "claimRef": {"namespace": namespace, "name": "datasets"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "datasets", "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "volumeName": f"{namespace}-datasets"[:63], "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
         "data": {"mode": "fast", "settings.ini": "[x]\ny=1\n"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": namespace},
         "stringData": {"password": "s3cret"}},
    ]
    for m in manifests:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(m))
    _wait_for(lambda: _get_json(control_plane, "pvc", "datasets", "-n", namespace)
              .get("status", {}).get("phase") == "Bound", 30, "the claim to be Bound")
    script = (
        "import json, os, pathlib; "
        "assert pathlib.Path('/data/input.txt').read_text() == 'hello'; "
        "assert pathlib.Path('/etc/settings/settings.ini').read_text().startswith('[x]'); "
        "pathlib.Path('/scratch/tmp.txt').write_text('t'); "
        "pathlib.Path(os.environ['OUT'], 'result.txt').write_text("
        "os.environ['PASSWORD'] + ' ' + os.environ['MODE'] + ' ' + os.environ['CFG_mode']); "
        "print('mounts', json.dumps(json.loads(os.environ['PRAVAH_MOUNTS']), sort_keys=True))"
    )
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "volumes", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "none", "command": [sys.executable, "-c", script],
                "workingDir": "/data",
                "env": [
                    {"name": "OUT", "value": "/data/out"},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                ],
                "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/data/out", "subPath": "results"},
                    {"name": "settings", "mountPath": "/etc/settings"},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
            }],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
                {"name": "settings", "configMap": {"name": "settings"}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def done():
        p = _get_json(control_plane, "pod", "volumes", "-n", namespace)
        return p if p.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    p = _wait_for(done, 60, "pod volumes to finish")
    out = node_agent.pod_log(namespace, "volumes")
    assert p["status"]["phase"] == "Succeeded", out
    assert (claim_dir / "results" / "result.txt").read_text() == "s3cret fast fast"
    assert f'"/data": "{claim_dir}"' in out


def test_pod_bigger_than_any_node_stays_pending(control_plane, node_agent, namespace):
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "too-big", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "none", "command": [sys.executable, "-c", "pass"],
            "resources": {"requests": {"cpu": "16"}}}]},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def unschedulable():
        p = _get_json(control_plane, "pod", "too-big", "-n", namespace)
        for c in p.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        return None

    cond = _wait_for(unschedulable, 30, "PodScheduled=False on pod too-big")
    assert cond["reason"] == "Unschedulable"
    assert "Insufficient cpu" in cond["message"]
    p = _get_json(control_plane, "pod", "too-big", "-n", namespace)
    assert p["status"]["phase"] == "Pending"
    assert not p["spec"].get("nodeName")
    events = _wait_for(
        lambda: [e for e in _get_json(control_plane, "events", "-n", namespace)["items"]
                 if e["reason"] == "FailedScheduling"],
        15, "a FailedScheduling event")
    assert events


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
        _wait_for(lambda: control_plane.kubectl("apply", "-f", "-", input=widget("good", 3, 1),
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
    _wait_for(lambda: _list_pods_status(control_plane, namespace, token) == 200, 15,
              "the RoleBinding to grant listing pods")
    # Other namespaces stay forbidden.
    assert _list_pods_status(control_plane, "default", token) == 403
