"""Real nodes: kubelets on containerd and runc, pods in real containers with the kernel
enforcing their users, read-only roots, cgroup limits, volumes and the pod network."""

from __future__ import annotations

import json

import pytest

from e2e.harness import get_json, wait_for
from pravah.localcluster import bins

pytestmark = pytest.mark.platform


@pytest.fixture(scope="session")
def runner_image(nodes) -> str:
    """The runner image (Debian + Python): the programs these tests run in containers."""
    return nodes.images.ensure()["runner"].name


def python_pod(name: str, namespace: str, image: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": image, "command": ["python3", "-c", script]}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container],
                     **spec}}


def run_pod(cp, pod: dict, timeout: float = 120) -> tuple[dict, str]:
    """Apply a pod, wait until it ends; its final object and its log (from the kubelet)."""
    cp.kubectl("apply", "-f", "-", input=json.dumps(pod))
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]

    def done():
        p = get_json(cp, "pod", name, "-n", namespace)
        return p if p.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    p = wait_for(done, timeout, f"pod {name} to finish")
    return p, cp.kubectl("logs", name, "-n", namespace, check=False).stdout


def test_nodes_are_kubelets_on_containerd(control_plane, nodes):
    table = control_plane.kubectl("get", "nodes", "-o", "wide").stdout
    print(table)
    items = {n["metadata"]["name"]: n for n in get_json(control_plane, "nodes")["items"]}
    assert sorted(items) == sorted(nodes.node_names)
    for node in items.values():
        info = node["status"]["nodeInfo"]
        assert info["containerRuntimeVersion"].startswith("containerd://")
        assert info["kubeletVersion"] == bins.build_info(control_plane.bin_dir)["kubernetes"]
        assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    assert items["node-a"]["status"]["allocatable"]["cpu"] == "2"
    assert items["node-b"]["status"]["allocatable"]["cpu"] == "1", "node-b reserves one CPU"
    assert "containerd://" in table


def test_pravah_images_are_in_every_node(nodes):
    built = nodes.images.ensure()
    for node in nodes.nodes:
        listed = node.ctr("images", "ls", "-q").stdout.split()
        for key in ("runner", "operator", "api", "pause"):
            assert built[key].name in listed, f"{built[key].name} is not in {node.name}'s containerd"
    for key, image in built.images.items():
        print(f"{key}: {image.name} {image.size / 1e6:.1f} MB")


def test_indexed_job_runs_to_complete(control_plane, nodes, runner_image, namespace, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    script = (
        "import os, pathlib; "
        "i = os.environ['INDEX']; "
        "assert i == os.environ['JOB_COMPLETION_INDEX'], 'index env differ'; "
        "pathlib.Path('/shared', i).write_text(os.environ['POD_NAME'] + ' ' + os.environ['POD_NAMESPACE']); "
        "print('shard', i, 'done')"
    )
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "indexed", "namespace": namespace},
        "spec": {
            "completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never", "automountServiceAccountToken": False,
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                "containers": [{
                    "name": "main", "image": runner_image, "command": ["python3", "-c", script],
                    "env": [
                        {"name": "INDEX", "valueFrom": {"fieldRef": {
                            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    ],
                    "resources": {"requests": {"cpu": "200m", "memory": "64Mi"}},
                    "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                }],
                "volumes": [{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}],
            }},
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(job))
    r = control_plane.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/indexed",
                              "--timeout=120s", check=False, timeout=130)
    if r.returncode != 0:
        pods = control_plane.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        pytest.fail(f"Job did not complete: {r.stderr}\n{pods}")
    assert sorted(p.name for p in shared.iterdir()) == ["0", "1", "2"]
    for f in shared.iterdir():
        assert f.read_text().endswith(" " + namespace)
        assert f.stat().st_uid == 10001, "written by the container's user"
    job_status = get_json(control_plane, "job", "indexed", "-n", namespace)["status"]
    assert job_status["succeeded"] == 3 and job_status.get("completedIndexes") == "0-2"
    for pod in get_json(control_plane, "pods", "-n", namespace, "-l", "job-name=indexed")["items"]:
        assert pod["spec"]["nodeName"] in nodes.node_names
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        log = control_plane.kubectl("logs", pod["metadata"]["name"], "-n", namespace).stdout
        assert f"shard {index} done" in log


def test_pod_failure_policy_sees_exit_codes(control_plane, runner_image, namespace):
    """backoffLimitPerIndex + podFailurePolicy onExitCodes: exit code 42 fails the Job at once."""
    script = "import os, sys; sys.exit(42 if os.environ['JOB_COMPLETION_INDEX'] == '1' else 0)"
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "policy", "namespace": namespace},
        "spec": {
            "completions": 2, "parallelism": 2, "completionMode": "Indexed",
            "backoffLimitPerIndex": 3, "maxFailedIndexes": 1,
            "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
            "template": {"spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [{
                "name": "main", "image": runner_image, "command": ["python3", "-c", script]}]}},
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(job))

    def failed():
        j = get_json(control_plane, "job", "policy", "-n", namespace)
        return next((c for c in j.get("status", {}).get("conditions", [])
                     if c["type"] == "Failed" and c["status"] == "True"), None)

    cond = wait_for(failed, 120, "Job policy to fail")
    assert cond["reason"] == "PodFailurePolicy" and "42" in cond["message"]


def test_container_user_read_only_root_and_cgroup_limits(control_plane, runner_image, namespace):
    """The kernel enforces what the pod asks for: uid, a read-only root, CPU quota, memory limit."""
    script = (
        "import os, pathlib\n"
        "print('uid', os.getuid())\n"
        "try:\n"
        "    pathlib.Path('/written').write_text('x')\n"
        "    print('root writable')\n"
        "except OSError as e:\n"
        "    print('root refused', e.errno)\n"
        "pathlib.Path('/tmp/scratch').write_text('ok')\n"
        "cg = pathlib.Path('/sys/fs/cgroup')\n"
        "if (cg / 'cpu.max').exists():\n"
        "    q, p = (cg / 'cpu.max').read_text().split(); m = (cg / 'memory.max').read_text().strip()\n"
        "else:\n"
        "    q, p = ((cg / 'cpu' / f).read_text().strip() for f in ('cpu.cfs_quota_us', 'cpu.cfs_period_us'))\n"
        "    m = (cg / 'memory' / 'memory.limit_in_bytes').read_text().strip()\n"
        "print('cpu', int(q) / int(p), 'memory', m)\n"
        "import pravah_engine; print('threads', pravah_engine.threads_available())\n"
    )
    pod = python_pod("limits", namespace, runner_image, script,
                     securityContext={"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
                     volumes=[{"name": "tmp", "emptyDir": {}}],
                     container={"securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"]}},
                                "resources": {"limits": {"cpu": "1", "memory": "256Mi"}},
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]})
    p, log = run_pod(control_plane, pod)
    assert p["status"]["phase"] == "Succeeded", log
    assert "uid 10001" in log
    assert "root refused 30" in log, "EROFS: the root filesystem is read-only"
    assert f"cpu 1.0 memory {256 * 1024 * 1024}" in log
    assert "threads 1" in log, "the engine honours the cgroup CPU quota"


def test_memory_limit_is_enforced_by_the_kernel(control_plane, runner_image, namespace):
    script = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n"
    pod = python_pod("hog", namespace, runner_image, script,
                     container={"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}})
    p, _ = run_pod(control_plane, pod)
    terminated = p["status"]["containerStatuses"][0]["state"]["terminated"]
    assert p["status"]["phase"] == "Failed"
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137


def test_deleting_a_pod_stops_its_container(control_plane, runner_image, namespace):
    pod = python_pod("sleeper", namespace, runner_image, "import time; print('up', flush=True); time.sleep(600)",
                     terminationGracePeriodSeconds=5)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))
    wait_for(lambda: "up" in control_plane.kubectl("logs", "sleeper", "-n", namespace, check=False).stdout,
              120, "the container to start")
    control_plane.kubectl("delete", "pod", "sleeper", "-n", namespace, "--wait=true", "--timeout=60s", timeout=70)
    assert control_plane.kubectl("get", "pod", "sleeper", "-n", namespace, check=False).returncode != 0


def test_pod_reaches_the_api_server_through_the_kubernetes_service(control_plane, runner_image, namespace):
    """kube-proxy routes the `kubernetes` Service; the projected token authenticates the pod."""
    script = (
        "import os, pathlib, ssl, urllib.request, urllib.error\n"
        "d = pathlib.Path('/var/run/secrets/kubernetes.io/serviceaccount')\n"
        "ns = (d / 'namespace').read_text()\n"
        "ctx = ssl.create_default_context(cafile=str(d / 'ca.crt'))\n"
        "url = f\"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
        "/api/v1/namespaces/{ns}/pods\"\n"
        "req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + (d / 'token').read_text()})\n"
        "try:\n"
        "    code = urllib.request.urlopen(req, context=ctx, timeout=20).status\n"
        "except urllib.error.HTTPError as e:\n"
        "    code = e.code\n"
        "print('host', os.environ['KUBERNETES_SERVICE_HOST'], 'status', code)\n"
    )
    pod = python_pod("in-cluster", namespace, runner_image, script)
    pod["spec"]["automountServiceAccountToken"] = True
    p, log = run_pod(control_plane, pod)
    assert p["status"]["phase"] == "Succeeded", log
    # Authenticated as system:serviceaccount:<ns>:default, which may not list pods.
    assert "host 10.0.0.1 status 403" in log


def test_pods_on_two_nodes_talk_through_a_service(control_plane, runner_image, namespace):
    server = python_pod("server", namespace, runner_image,
                        "import http.server as h; h.ThreadingHTTPServer(('', 8080), h.SimpleHTTPRequestHandler)"
                        ".serve_forever()",
                        nodeName="node-a", container={"workingDir": "/etc"})
    server["metadata"]["labels"] = {"app": "server"}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server", "namespace": namespace},
               "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(server))
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(service))
    control_plane.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/server", "--timeout=120s", timeout=130)
    cluster_ip = get_json(control_plane, "service", "server", "-n", namespace)["spec"]["clusterIP"]
    script = (
        "import urllib.request, time\n"
        "for attempt in range(30):\n"
        "    try:\n"
        f"        print(urllib.request.urlopen('http://{cluster_ip}/hostname', timeout=5).read().decode()); break\n"
        "    except OSError as e:\n"
        "        print('retry', e); time.sleep(1)\n"
    )
    client = python_pod("client", namespace, runner_image, script, nodeName="node-b")
    p, log = run_pod(control_plane, client)
    assert p["status"]["phase"] == "Succeeded", log
    assert log.strip().splitlines()[-1] == "server", "the server pod's /etc/hostname, through the Service"


def test_volumes_and_env(control_plane, runner_image, namespace, tmp_path):
    """PVC (hostPath PV), subPath, emptyDir, configMap volumes; secretKeyRef, configMapKeyRef, envFrom."""
    claim_dir = tmp_path / "datasets"
    claim_dir.mkdir()
    claim_dir.chmod(0o777)
    (claim_dir / "input.txt").write_text("hello")
    pv = f"{namespace}-datasets"[:63]
    manifests = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(claim_dir)},
                  "claimRef": {"namespace": namespace, "name": "datasets"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "datasets", "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
         "data": {"mode": "fast", "settings.ini": "[x]\ny=1\n"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": namespace},
         "stringData": {"password": "s3cret"}},
    ]
    for m in manifests:
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(m))
    script = (
        "import os, pathlib; "
        "assert pathlib.Path('/data/input.txt').read_text() == 'hello'; "
        "assert pathlib.Path('/etc/settings/settings.ini').read_text().startswith('[x]'); "
        "pathlib.Path('/scratch/tmp.txt').write_text('t'); "
        "pathlib.Path('/data/out', 'result.txt').write_text("
        "os.environ['PASSWORD'] + ' ' + os.environ['MODE'] + ' ' + os.environ['CFG_mode']); print('ok')"
    )
    (claim_dir / "results").mkdir(mode=0o777)
    (claim_dir / "results").chmod(0o777)
    pod = python_pod(
        "volumes", namespace, runner_image, script,
        securityContext={"runAsUser": 10001},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
                 {"name": "settings", "configMap": {"name": "settings"}},
                 {"name": "scratch", "emptyDir": {}}],
        container={
            "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}],
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                             {"name": "data", "mountPath": "/data/out", "subPath": "results"},
                             {"name": "settings", "mountPath": "/etc/settings"},
                             {"name": "scratch", "mountPath": "/scratch"}]})
    p, log = run_pod(control_plane, pod)
    assert p["status"]["phase"] == "Succeeded", log
    assert (claim_dir / "results" / "result.txt").read_text() == "s3cret fast fast"


def test_pod_bigger_than_any_node_stays_pending(control_plane, nodes, runner_image, namespace):
    pod = python_pod("too-big", namespace, runner_image, "pass",
                     container={"resources": {"requests": {"cpu": "16"}}})
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def unschedulable():
        p = get_json(control_plane, "pod", "too-big", "-n", namespace)
        return next((c for c in p.get("status", {}).get("conditions", [])
                     if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = wait_for(unschedulable, 30, "PodScheduled=False on pod too-big")
    assert cond["reason"] == "Unschedulable" and "Insufficient cpu" in cond["message"]
    assert not get_json(control_plane, "pod", "too-big", "-n", namespace)["spec"].get("nodeName")


def test_pravah_is_installed_from_its_images(control_plane, pravah):
    """`kubectl apply -k` installed the operator and the API as Deployments, Available,
    running the images built here under their own service accounts."""
    table = control_plane.kubectl("-n", "pravah-system", "get", "deploy", "-o", "wide").stdout
    print(table)
    built = pravah.images.ensure()
    for name, key in (("pravah-operator", "operator"), ("pravah-api", "api")):
        deployment = get_json(control_plane, "deployment", name, "-n", "pravah-system")
        conditions = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
        assert conditions["Available"] == "True", name
        pod_spec = deployment["spec"]["template"]["spec"]
        assert pod_spec["containers"][0]["image"] == built[key].name
        assert pod_spec["serviceAccountName"] == name
        pods = get_json(control_plane, "pods", "-n", "pravah-system", "-l", f"app.kubernetes.io/name={name}")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        assert running and all(p["spec"]["nodeName"] in pravah.nodes.node_names for p in running)
        assert running[0]["status"]["containerStatuses"][0]["imageID"].startswith("sha256:") or \
            "@sha256:" in running[0]["status"]["containerStatuses"][0]["imageID"]
