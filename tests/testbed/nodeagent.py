"""A test node agent: Node objects whose pods run as local processes.

No container runtime exists on the machines that run the tests, so this agent stands in
for the kubelet (and only for the kubelet). It

* registers Node objects with chosen CPU/memory capacity (allocatable = capacity) and
  keeps them Ready: a Lease in `kube-node-lease` renewed every few seconds and the node's
  Ready condition heartbeat;
* for every pod the real scheduler bound to one of its nodes (`spec.nodeName`), runs the
  first container's `command + args` as a local process (no image is pulled or resolved:
  `command` is run as-is; if it is empty, `args` is the whole command line);
* reports the pod `Running`, then `Succeeded`/`Failed` with the container's real exit code
  in `containerStatuses[].state.terminated.exitCode`, so the Job controller (including
  `podFailurePolicy` `onExitCodes` rules) sees what a kubelet would report;
* on deletion (`deletionTimestamp` set) sends SIGTERM to the process group, waits the
  grace period, sends SIGKILL, reports the final status and removes the pod object.

Conventions (the places where a process cannot be a container):

* **Volumes.** Each volume is a local directory:
  `hostPath` -> its own path; `emptyDir` -> `<state>/pods/<uid>/volumes/<name>`;
  `persistentVolumeClaim` -> `<pvc-root>/<namespace>/<claimName>` (default
  `<state>/pvc`); `configMap`/`secret`/`downwardAPI`/`projected` -> files written into
  `<state>/pods/<uid>/volumes/<name>`. A volume mount's `mountPath` cannot exist inside a
  process, so every occurrence of a `mountPath` prefix in the command, args, env values
  and workingDir is replaced by the local directory (`subPath` honoured), and the mapping
  is given to the process as JSON in `PRAVAH_MOUNTS` (`{"<mountPath>": "<local dir>"}`).
* **Service account.** If the pod mounts a service-account token (the usual
  `kube-api-access-*` projected volume added by admission), a bound token is requested
  through the TokenRequest API and written with `ca.crt` and `namespace` into
  `<state>/pods/<uid>/serviceaccount/`; the process gets `PRAVAH_SERVICEACCOUNT_DIR`
  pointing there, and `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` pointing at the
  API server on loopback. The standard mount path
  `/var/run/secrets/kubernetes.io/serviceaccount` is rewritten like any other mountPath.
* **Env.** `env` (values, `$(VAR)` expansion, `valueFrom.fieldRef` — metadata.name,
  namespace, uid, labels['k'], annotations['k'], spec.nodeName, spec.serviceAccountName,
  status.hostIP/podIP —, `resourceFieldRef`, `secretKeyRef`, `configMapKeyRef`) and
  `envFrom` (configMapRef/secretRef, with prefix) are honoured, plus `HOSTNAME` and the
  Kubernetes service variables. From the agent's own environment only PATH, HOME, LANG,
  LC_ALL, TZ, TMPDIR and VIRTUAL_ENV are passed on.
* **Logs.** Each pod's output (stdout and stderr together) is kept in
  `<state>/logs/<namespace>/<pod-name>.log` (`kubectl logs` needs a real kubelet);
  read it with :func:`pod_log`.

Run: ``python -m testbed.nodeagent --kubeconfig K --state DIR --node node-a:cpu=2,memory=8Gi``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import datetime as dt
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger("nodeagent")

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 5


def pod_log_path(state_dir: Path | str, namespace: str, name: str) -> Path:
    return Path(state_dir) / "logs" / namespace / f"{name}.log"


def pod_log(state_dir: Path | str, namespace: str, name: str) -> str:
    """The output of a pod run by the node agent ('' if it has not started)."""
    try:
        return pod_log_path(state_dir, namespace, name).read_text(errors="replace")
    except FileNotFoundError:
        return ""


@dataclass
class NodeSpec:
    name: str
    cpu: str = "2"
    memory: str = "8Gi"
    pods: str = "110"
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """`node-a:cpu=2,memory=8Gi,pods=110,label.pool=big`."""
        name, _, rest = text.partition(":")
        spec = cls(name=name)
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            if k.startswith("label."):
                spec.labels[k[len("label."):]] = v
            elif k in ("cpu", "memory", "pods"):
                setattr(spec, k, v)
            else:
                raise ValueError(f"unknown node attribute {k!r} in {text!r}")
        return spec

    def to_arg(self) -> str:
        items = [f"cpu={self.cpu}", f"memory={self.memory}", f"pods={self.pods}"]
        items += [f"label.{k}={v}" for k, v in self.labels.items()]
        return f"{self.name}:{','.join(items)}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _set_pdeathsig() -> None:
    """In the child: own session, and die if the agent dies (no orphaned pod processes)."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables replaced, `$$` escapes `$`."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, value)


class PodSetupError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Agent:
    def __init__(
        self,
        kubeconfig: str,
        state_dir: Path,
        nodes: list[NodeSpec],
        pvc_root: Path | None = None,
        kubelet_version: str = "v1.36.0",
    ) -> None:
        self.kubelet_version = kubelet_version
        self.kubeconfig = kubeconfig
        self.state = Path(state_dir)
        self.nodes = {n.name: n for n in nodes}
        self.pvc_root = Path(pvc_root) if pvc_root else self.state / "pvc"
        self.runners: dict[str, PodRunner] = {}
        self.finished: set[str] = set()
        self.api = None
        self.core = None
        self.coord = None
        self.api_host = "127.0.0.1"
        self.api_port = "443"
        self.ca_pem: bytes = b""
        self._stopping = asyncio.Event()

    # -- setup ---------------------------------------------------------------------------
    async def connect(self) -> None:
        from kubernetes_asyncio import client, config

        self.api = await config.new_client_from_config(config_file=self.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        url = urlparse(self.api.configuration.host)
        self.api_host = url.hostname or "127.0.0.1"
        self.api_port = str(url.port or 443)
        ca_file = self.api.configuration.ssl_ca_cert
        if ca_file:
            self.ca_pem = Path(ca_file).read_bytes()

    async def get_raw(self, coro) -> dict:
        resp = await coro
        return json.loads(await resp.read())

    # -- nodes ---------------------------------------------------------------------------
    def node_status(self, spec: NodeSpec) -> dict:
        now = _now()
        resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods,
                     "ephemeral-storage": "100Gi"}

        def cond(type_, status, reason, message):
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now}

        return {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": [
                cond("Ready", "True", "KubeletReady", "node agent is posting ready status"),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": spec.name, "systemUUID": spec.name, "bootID": str(os.getpid()),
                "kernelVersion": os.uname().release, "osImage": "pravah test node agent",
                "containerRuntimeVersion": "pravah-process://1", "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
            },
        }

    async def register_nodes(self) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        for spec in self.nodes.values():
            labels = {
                "kubernetes.io/hostname": spec.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "pravah.io/test-node": "true",
                **spec.labels,
            }
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": spec.name, "labels": labels}, "spec": {}}
            try:
                await self.core.create_node(body)
            except ApiException as e:
                if e.status != 409:
                    raise
                await self.core.patch_node(spec.name, {"metadata": {"labels": labels}})
            await self.core.patch_node_status(
                spec.name, {"status": self.node_status(spec)},
                _content_type="application/merge-patch+json",
            )
            log.info("registered node %s (cpu=%s memory=%s)", spec.name, spec.cpu, spec.memory)

    async def heartbeat(self) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        last_status = 0.0
        while not self._stopping.is_set():
            for spec in self.nodes.values():
                lease = {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": spec.name, "namespace": "kube-node-lease"},
                    "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": LEASE_SECONDS,
                             "renewTime": _now_micro()},
                }
                try:
                    try:
                        await self.coord.patch_namespaced_lease(
                            spec.name, "kube-node-lease", {"spec": lease["spec"]},
                            _content_type="application/merge-patch+json",
                        )
                    except ApiException as e:
                        if e.status != 404:
                            raise
                        await self.coord.create_namespaced_lease("kube-node-lease", lease)
                    if time.monotonic() - last_status > 20:
                        await self.core.patch_node_status(
                            spec.name, {"status": {"conditions": self.node_status(spec)["conditions"]}},
                            _content_type="application/strategic-merge-patch+json",
                        )
                except ApiException as e:
                    if e.status == 404:
                        await self.register_nodes()
                    else:
                        log.warning("heartbeat for %s failed: %s", spec.name, e.status)
                except Exception as e:  # noqa: BLE001 - keep beating
                    log.warning("heartbeat for %s failed: %s", spec.name, e)
            if time.monotonic() - last_status > 20:
                last_status = time.monotonic()
            try:
                await asyncio.wait_for(self._stopping.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                pass

    # -- pods ----------------------------------------------------------------------------
    async def watch_pods(self) -> None:
        from kubernetes_asyncio import watch
        from kubernetes_asyncio.client.exceptions import ApiException

        while not self._stopping.is_set():
            try:
                listing = await self.get_raw(
                    self.core.list_pod_for_all_namespaces(_preload_content=False)
                )
                seen = set()
                for pod in listing.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self.sync(pod)
                for uid, runner in list(self.runners.items()):
                    if uid not in seen:
                        runner.request_stop(0, gone=True)
                rv = listing["metadata"]["resourceVersion"]
                w = watch.Watch()
                async with w.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=rv,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                ) as stream:
                    async for ev in stream:
                        obj = ev["raw_object"]
                        if ev["type"] == "DELETED":
                            r = self.runners.get(obj["metadata"]["uid"])
                            if r is not None:
                                r.request_stop(0, gone=True)
                            self.finished.discard(obj["metadata"]["uid"])
                        elif ev["type"] in ("ADDED", "MODIFIED"):
                            self.sync(obj)
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status != 410:
                    log.warning("pod watch failed (%s); listing again", e.status)
                    await asyncio.sleep(1)
            except Exception as e:  # noqa: BLE001 - relist after any failure
                log.warning("pod watch failed (%s: %s); listing again", type(e).__name__, e)
                await asyncio.sleep(1)

    def sync(self, pod: dict) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        if spec.get("nodeName") not in self.nodes:
            return
        uid = meta["uid"]
        runner = self.runners.get(uid)
        deleting = meta.get("deletionTimestamp") is not None
        phase = pod.get("status", {}).get("phase")
        if runner is not None:
            runner.pod = pod
            if deleting:
                runner.request_stop(meta.get("deletionGracePeriodSeconds"))
            return
        if deleting:
            # Not running here (finished, or never started): finish the deletion.
            self.finished.add(uid)
            asyncio.ensure_future(self.finalize_deletion(pod))
            return
        if uid in self.finished or phase in ("Succeeded", "Failed"):
            return
        if phase == "Running":
            # A pod this agent ran before it restarted: its process is gone.
            self.finished.add(uid)
            asyncio.ensure_future(self.fail_orphan(pod))
            return
        runner = PodRunner(self, pod)
        self.runners[uid] = runner
        runner.task = asyncio.ensure_future(runner.run())

    async def finalize_deletion(self, pod: dict) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        meta = pod["metadata"]
        try:
            await self.core.delete_namespaced_pod(
                meta["name"], meta["namespace"], grace_period_seconds=0,
                body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                      "preconditions": {"uid": meta["uid"]}},
            )
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("deleting pod %s/%s failed: %s", meta["namespace"], meta["name"], e.status)

    async def fail_orphan(self, pod: dict) -> None:
        c = (pod["spec"].get("containers") or [{}])[0]
        now = _now()
        await self.patch_status(pod, {
            "phase": "Failed", "reason": "NodeAgentRestarted",
            "message": "the node agent restarted and the process is gone",
            "containerStatuses": [{
                "name": c.get("name", "main"), "image": c.get("image", ""), "imageID": "",
                "ready": False, "started": False, "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "Error",
                                         "startedAt": now, "finishedAt": now}},
            }],
        })

    async def patch_status(self, pod: dict, status: dict) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        meta = pod["metadata"]
        for attempt in range(5):
            try:
                await self.core.patch_namespaced_pod_status(
                    meta["name"], meta["namespace"], {"status": status},
                    _content_type="application/strategic-merge-patch+json",
                )
                return
            except ApiException as e:
                if e.status == 404:
                    return
                log.warning("status of %s/%s: %s %s", meta["namespace"], meta["name"], e.status, e.body)
                if e.status == 422:
                    return
            except Exception as e:  # noqa: BLE001
                log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], e)
            await asyncio.sleep(0.5 * (attempt + 1))

    # -- main ----------------------------------------------------------------------------
    async def run(self, ready_file: Path | None = None) -> None:
        await self.connect()
        await self.register_nodes()
        # A first lease before anybody waits on us.
        tasks = [asyncio.ensure_future(self.heartbeat()), asyncio.ensure_future(self.watch_pods())]
        if ready_file is not None:
            ready_file.write_text(json.dumps({"pid": os.getpid(), "nodes": list(self.nodes)}))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        log.info("stopping: terminating %d pod processes", len(self.runners))
        for r in list(self.runners.values()):
            r.request_stop(5, gone=True, shutdown=True)
        pending = [r.task for r in self.runners.values() if r.task]
        if pending:
            await asyncio.wait(pending, timeout=15)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.close()


class PodRunner:
    """Runs one pod's first container as a process and reports its status."""

    def __init__(self, agent: Agent, pod: dict) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.key = f"{self.ns}/{self.name}"
        self.dir = agent.state / "pods" / self.uid
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Future | None = None
        self._stop = asyncio.Event()
        self._grace: float = 30
        self._gone = False
        self._shutdown = False
        self.restart_count = 0
        self.sa_dir: Path | None = None

    def request_stop(self, grace: float | None, gone: bool = False, shutdown: bool = False) -> None:
        if grace is not None:
            grace = max(0.0, float(grace))
            self._grace = min(self._grace, grace) if self._stop.is_set() else grace
        self._gone = self._gone or gone
        self._shutdown = self._shutdown or shutdown
        self._stop.set()

    # -- lookups -------------------------------------------------------------------------
    async def _read_map(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        core = self.agent.core
        try:
            if kind == "secret":
                obj = await self.agent.get_raw(
                    core.read_namespaced_secret(name, self.ns, _preload_content=False))
                data = {k: base64.b64decode(v).decode("utf-8", "replace")
                        for k, v in (obj.get("data") or {}).items()}
                data.update(obj.get("stringData") or {})
                return data
            obj = await self.agent.get_raw(
                core.read_namespaced_config_map(name, self.ns, _preload_content=False))
            data = dict(obj.get("data") or {})
            for k, v in (obj.get("binaryData") or {}).items():
                data[k] = base64.b64decode(v).decode("utf-8", "replace")
            return data
        except ApiException as e:
            if e.status == 404 and optional:
                return None
            raise PodSetupError(
                "CreateContainerConfigError", f"{kind} {name!r} not found in {self.ns}"
            ) from None

    def _field(self, path: str) -> str:
        pod = self.pod
        meta = pod["metadata"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        simple = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", ""),
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
        }
        if path in ("metadata.labels", "metadata.annotations"):
            return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get(path.split(".")[1]) or {}).items()))
        if path not in simple:
            raise PodSetupError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")
        return simple[path]

    def _resource(self, container: dict, ref: dict) -> str:
        res = ref.get("resource", "")
        kind, _, rname = res.partition(".")
        resources = container.get("resources") or {}
        value = (resources.get(kind) or {}).get(rname)
        if value is None and kind == "limits":
            node = self.agent.nodes[self.pod["spec"]["nodeName"]]
            value = {"cpu": node.cpu, "memory": node.memory}.get(rname, "0")
        if value is None:
            value = "0"
        if rname == "cpu":
            v = str(value)
            cores = float(v[:-1]) / 1000 if v.endswith("m") else float(v)
            divisor = str(ref.get("divisor", "1"))
            div = float(divisor[:-1]) / 1000 if divisor.endswith("m") else float(divisor)
            return str(max(1, math.ceil(cores / div)))
        return str(value)

    # -- preparation ---------------------------------------------------------------------
    async def _service_account(self) -> Path:
        """Request a bound token for the pod's service account and write the usual files."""
        from kubernetes_asyncio.client.exceptions import ApiException

        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
            },
        }
        try:
            tr = await self.agent.get_raw(self.agent.core.create_namespaced_service_account_token(
                sa, self.ns, body, _preload_content=False))
        except ApiException as e:
            raise PodSetupError("CreateContainerConfigError",
                                f"token for service account {sa!r}: {e.status} {e.reason}") from None
        d = self.dir / "serviceaccount"
        d.mkdir(parents=True, exist_ok=True)
        (d / "token").write_text(tr["status"]["token"])
        (d / "ca.crt").write_bytes(self.agent.ca_pem)
        (d / "namespace").write_text(self.ns)
        self.sa_dir = d
        return d

    async def _refresh_token(self) -> None:
        while True:
            await asyncio.sleep(2400)
            try:
                await self._service_account()
            except Exception as e:  # noqa: BLE001
                log.warning("%s: token refresh failed: %s", self.key, e)

    async def _volume_dir(self, vol: dict) -> Path:
        name = vol["name"]
        local = self.dir / "volumes" / name
        if "hostPath" in vol:
            p = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type", "") in ("", "DirectoryOrCreate"):
                p.mkdir(parents=True, exist_ok=True)
            return p
        if "emptyDir" in vol:
            local.mkdir(parents=True, exist_ok=True)
            return local
        if "persistentVolumeClaim" in vol:
            p = self.agent.pvc_root / self.ns / vol["persistentVolumeClaim"]["claimName"]
            p.mkdir(parents=True, exist_ok=True)
            return p
        if "configMap" in vol or "secret" in vol:
            kind = "configMap" if "configMap" in vol else "secret"
            src = vol[kind]
            ref = src.get("name") if kind == "configMap" else src.get("secretName")
            data = await self._read_map("secret" if kind == "secret" else "configmap", ref,
                                        bool(src.get("optional")))
            self._write_items(local, data or {}, src.get("items"))
            return local
        if "downwardAPI" in vol:
            local.mkdir(parents=True, exist_ok=True)
            for item in vol["downwardAPI"].get("items", []):
                if "fieldRef" in item:
                    self._write_file(local / item["path"], self._field(item["fieldRef"]["fieldPath"]))
            return local
        if "projected" in vol:
            local.mkdir(parents=True, exist_ok=True)
            for src in vol["projected"].get("sources", []):
                if "serviceAccountToken" in src:
                    sa_dir = self.sa_dir or await self._service_account()
                    self._write_file(local / src["serviceAccountToken"]["path"], (sa_dir / "token").read_text())
                    if src["serviceAccountToken"]["path"] == "token" and vol["name"].startswith("kube-api-access"):
                        # Use the service-account directory itself so token refreshes are seen.
                        return sa_dir
                elif "configMap" in src:
                    cm = src["configMap"]
                    if cm.get("name") == "kube-root-ca.crt":
                        self._write_items(local, {"ca.crt": self.agent.ca_pem.decode()}, cm.get("items"))
                    else:
                        data = await self._read_map("configmap", cm["name"], bool(cm.get("optional")))
                        self._write_items(local, data or {}, cm.get("items"))
                elif "secret" in src:
                    s = src["secret"]
                    data = await self._read_map("secret", s["name"], bool(s.get("optional")))
                    self._write_items(local, data or {}, s.get("items"))
                elif "downwardAPI" in src:
                    for item in src["downwardAPI"].get("items", []):
                        if "fieldRef" in item:
                            self._write_file(local / item["path"], self._field(item["fieldRef"]["fieldPath"]))
            return local
        raise PodSetupError("CreateContainerConfigError",
                            f"volume {name!r}: type not supported by the test node agent")

    @staticmethod
    def _write_file(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _write_items(self, d: Path, data: dict[str, str], items: list | None) -> None:
        d.mkdir(parents=True, exist_ok=True)
        if items:
            for it in items:
                if it["key"] in data:
                    self._write_file(d / it["path"], data[it["key"]])
        else:
            for k, v in data.items():
                self._write_file(d / k, v)

    async def prepare(self) -> tuple[list[str], dict[str, str], str]:
        spec = self.pod["spec"]
        container = spec["containers"][0]
        self.dir.mkdir(parents=True, exist_ok=True)
        if container.get("command"):
            argv = list(container["command"]) + list(container.get("args") or [])
        else:
            argv = list(container.get("args") or [])
        if not argv:
            raise PodSetupError(
                "CreateContainerConfigError",
                "the test node agent runs `command`/`args` as a local process; both are empty",
            )

        # Volumes and mounts.
        vol_dirs: dict[str, Path] = {}
        for vol in spec.get("volumes") or []:
            if any(m["name"] == vol["name"] for m in container.get("volumeMounts") or []):
                vol_dirs[vol["name"]] = await self._volume_dir(vol)
        mounts: dict[str, str] = {}
        for m in container.get("volumeMounts") or []:
            base = vol_dirs.get(m["name"])
            if base is None:
                raise PodSetupError("CreateContainerConfigError", f"volumeMount {m['name']!r} has no volume")
            local = base / m["subPath"] if m.get("subPath") else base
            if m.get("subPath"):
                local.mkdir(parents=True, exist_ok=True)
            mounts[m["mountPath"].rstrip("/") or "/"] = str(local)
        if self.sa_dir is None and SA_MOUNT in mounts:
            self.sa_dir = Path(mounts[SA_MOUNT])

        # Longest mountPath first, whole path components only.
        patterns = [
            (re.compile(r"(?<![A-Za-z0-9_.\-/])" + re.escape(mp) + r"(?=/|$|[^A-Za-z0-9_.\-])"), local)
            for mp, local in sorted(mounts.items(), key=lambda kv: -len(kv[0]))
            if mp != "/"
        ]

        def rewrite(s: str) -> str:
            for pat, local in patterns:
                s = pat.sub(lambda _m, local=local: local, s)
            return s

        # Environment.
        env: dict[str, str] = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env["HOSTNAME"] = self.name
        env["KUBERNETES_SERVICE_HOST"] = self.agent.api_host
        env["KUBERNETES_SERVICE_PORT"] = self.agent.api_port
        env["KUBERNETES_SERVICE_PORT_HTTPS"] = self.agent.api_port
        env["KUBERNETES_PORT"] = f"tcp://{self.agent.api_host}:{self.agent.api_port}"
        env["PRAVAH_MOUNTS"] = json.dumps(mounts)
        if self.sa_dir is not None:
            env["PRAVAH_SERVICEACCOUNT_DIR"] = str(self.sa_dir)
        for ef in container.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            ref = ef.get("configMapRef") or ef.get("secretRef")
            kind = "configmap" if "configMapRef" in ef else "secret"
            data = await self._read_map(kind, ref["name"], bool(ref.get("optional")))
            for k, v in (data or {}).items():
                env[prefix + k] = v
        for e in container.get("env") or []:
            name = e["name"]
            if "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    value = self._field(vf["fieldRef"]["fieldPath"])
                elif "resourceFieldRef" in vf:
                    value = self._resource(container, vf["resourceFieldRef"])
                elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                    ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                    kind = "secret" if "secretKeyRef" in vf else "configmap"
                    data = await self._read_map(kind, ref["name"], bool(ref.get("optional")))
                    if data is None or ref["key"] not in data:
                        if ref.get("optional"):
                            continue
                        raise PodSetupError("CreateContainerConfigError",
                                            f"key {ref['key']!r} not found in {kind} {ref['name']!r}")
                    value = data[ref["key"]]
                else:
                    raise PodSetupError("CreateContainerConfigError", f"env {name}: unsupported valueFrom")
            else:
                value = expand(e.get("value", ""), env)
            env[name] = rewrite(value)
        argv = [rewrite(expand(a, env)) for a in argv]
        workdir = container.get("workingDir")
        if workdir:
            cwd = Path(rewrite(workdir))
        else:
            cwd = self.dir / "workdir"
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, env, str(cwd)

    # -- status --------------------------------------------------------------------------
    def _container_status(self, state: dict, ready: bool, last_state: dict | None = None) -> dict:
        c = self.pod["spec"]["containers"][0]
        st = {
            "name": c["name"], "image": c.get("image", ""), "imageID": "",
            "containerID": f"pravah://{self.uid}-{self.restart_count}",
            "ready": ready, "started": "running" in state, "restartCount": self.restart_count,
            "state": state,
        }
        if last_state:
            st["lastState"] = last_state
        return st

    def _conditions(self, ready: bool, reason: str | None = None) -> list[dict]:
        now = _now()
        conds = []
        for t in ("PodReadyToStartContainers", "Initialized"):
            conds.append({"type": t, "status": "True", "lastTransitionTime": now})
        for t in ("ContainersReady", "Ready"):
            c = {"type": t, "status": "True" if ready else "False", "lastTransitionTime": now}
            if reason:
                c["reason"] = reason
            conds.append(c)
        return conds

    # -- run -----------------------------------------------------------------------------
    async def run(self) -> None:
        pod_log = pod_log_path(self.agent.state, self.ns, self.name)
        pod_log.parent.mkdir(parents=True, exist_ok=True)
        started_at = _now()
        refresh: asyncio.Future | None = None
        try:
            try:
                argv, env, cwd = await self.prepare()
            except PodSetupError as e:
                log.warning("%s: %s", self.key, e.message)
                with open(pod_log, "a") as f:  # noqa: ASYNC230 - small local writes
                    f.write(f"[node agent] {e.reason}: {e.message}\n")
                await self.agent.patch_status(self.pod, {
                    "phase": "Failed", "reason": e.reason, "message": e.message,
                    "hostIP": "127.0.0.1", "startTime": started_at,
                    "containerStatuses": [self._container_status(
                        {"terminated": {"exitCode": 128, "reason": e.reason, "message": e.message,
                                        "startedAt": started_at, "finishedAt": _now()}}, False)],
                })
                return
            if self.sa_dir is not None:
                refresh = asyncio.ensure_future(self._refresh_token())
            restart_policy = self.pod["spec"].get("restartPolicy", "Always")
            last_state = None
            terminated = None
            code = 137
            while True:
                if self._stop.is_set():
                    break
                with open(pod_log, "ab", buffering=0) as out:  # noqa: ASYNC230 - small local writes
                    out.write(f"[node agent] start {_now()} on {self.pod['spec']['nodeName']}: "
                              f"{shlex.join(argv)}\n".encode())
                    try:
                        self.proc = await asyncio.create_subprocess_exec(
                            *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                            stdout=out, stderr=asyncio.subprocess.STDOUT, preexec_fn=_set_pdeathsig,
                        )
                    except OSError as e:
                        out.write(f"[node agent] cannot start: {e}\n".encode())
                        self.proc = None
                run_started = _now()
                if self.proc is None:
                    code = 127
                else:
                    log.info("%s: started pid %s: %s", self.key, self.proc.pid, shlex.join(argv))
                    await self.agent.patch_status(self.pod, {
                        "phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                        "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "startTime": started_at,
                        "conditions": self._conditions(True),
                        "containerStatuses": [self._container_status(
                            {"running": {"startedAt": run_started}}, True, last_state)],
                    })
                    code = await self._wait_or_stop()
                finished = _now()
                terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                              "startedAt": run_started, "finishedAt": finished,
                              "containerID": f"pravah://{self.uid}-{self.restart_count}"}
                with open(pod_log, "ab", buffering=0) as out:  # noqa: ASYNC230 - small local writes
                    out.write(f"[node agent] exit code {code} at {finished}\n".encode())
                log.info("%s: exited with %s", self.key, code)
                again = not self._stop.is_set() and (
                    restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0))
                if not again:
                    break
                last_state = {"terminated": terminated}
                self.restart_count += 1
                await asyncio.sleep(min(10, 2 ** self.restart_count))
            if not (self._gone and self._shutdown):
                await self.agent.patch_status(self.pod, {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "conditions": self._conditions(False, "PodCompleted"),
                    "containerStatuses": [self._container_status(
                        {"terminated": terminated or {
                            "exitCode": code, "reason": "Error", "startedAt": started_at,
                            "finishedAt": _now()}}, False, last_state)],
                })
            if self.pod["metadata"].get("deletionTimestamp") and not self._gone:
                await self.agent.finalize_deletion(self.pod)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: runner failed", self.key)
        finally:
            if refresh is not None:
                refresh.cancel()
            self.agent.finished.add(self.uid)
            self.agent.runners.pop(self.uid, None)

    async def _wait_or_stop(self) -> int:
        assert self.proc is not None
        wait_task = asyncio.ensure_future(self.proc.wait())
        stop_task = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({wait_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if not wait_task.done():
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(wait_task), max(0.0, self._grace))
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await wait_task
        stop_task.cancel()
        rc = wait_task.result()
        return 128 - rc if rc < 0 else rc

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state", required=True, type=Path, help="directory for pod dirs and logs")
    ap.add_argument("--pvc-root", type=Path, default=None, help="PVC directories (default <state>/pvc)")
    ap.add_argument("--node", action="append", required=True,
                    help="NAME:cpu=N,memory=Q[,pods=N][,label.KEY=VALUE] (repeatable)")
    ap.add_argument("--ready-file", type=Path, default=None)
    ap.add_argument("--kubelet-version", default="v1.36.0", help="version the nodes report")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.state.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.kubeconfig, args.state, [NodeSpec.parse(n) for n in args.node], args.pvc_root,
                  args.kubelet_version)
    asyncio.run(agent.run(args.ready_file))


if __name__ == "__main__":
    main()
