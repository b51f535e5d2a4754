"""End-to-end harness: the operator as a real process, a namespace with volumes, waiting helpers.

The operator runs as it does in a cluster: with a token of the `pravah-operator` service
account, bound by the RBAC of manifests/base (never the admin credential), so a
permission missing from the manifests fails the tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "pravahjobs.pravah.io.yaml"
BIN = Path(sys.executable).parent
MANIFESTS_BASE = ROOT / "manifests" / "base"
OPERATOR_NAMESPACE = "pravah-system"
OPERATOR_ACCOUNT = "pravah-operator"
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
# What a log shows when the API server refused a call for lack of a permission.
FORBIDDEN_MARKERS = ("Forbidden", "Not enough permissions")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """`pravah-operator` run as a real process, watching one namespace."""

    def __init__(self, control_plane, database: str, namespace: str, workdir: Path, identity: str,
                 extra_env: dict[str, str] | None = None, kubeconfig: Path | None = None):
        self.log_path = workdir / f"operator-{identity}.log"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = {
            **os.environ, "KUBECONFIG": str(kubeconfig or control_plane.kubeconfig), "PRAVAH_DATABASE_URL": database,
            "PRAVAH_RUNNER_COMMAND": json.dumps([str(BIN / "pravah"), "runner"]),
            "PRAVAH_RUNNER_SERVICE_ACCOUNT": "", "PRAVAH_NAMESPACES": json.dumps([namespace]),
            "PRAVAH_LEASE_NAMESPACE": namespace, "PRAVAH_LEASE_SECONDS": "6", "PRAVAH_IDENTITY": identity,
            "PRAVAH_METRICS_PORT": str(self.metrics_port), "PRAVAH_HEALTH_PORT": str(self.health_port),
            "PRAVAH_STATUS_INTERVAL": "1",
            **(extra_env or {}),
        }
        self.popen: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen([str(BIN / "pravah-operator")], env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to clean up, as in a node crash."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def forbidden(self) -> list[str]:
        """Log lines where the API server refused the operator a call (a missing permission)."""
        return [line for line in self.log().splitlines() if any(marker in line for marker in FORBIDDEN_MARKERS)]


@dataclass
class Cluster:
    """One namespace with `datasets` and `results` volumes and an operator watching it."""

    control_plane: Any
    node_agent: Any
    namespace: str
    database: str
    workdir: Path
    operators: list[OperatorProcess]
    operator_settings: dict[str, str]
    operator_kubeconfig: Path | None = None  # None: the admin credential

    @property
    def datasets(self) -> Path:
        return self.node_agent.pvc_root / self.namespace / "datasets"

    @property
    def results(self) -> Path:
        return self.node_agent.pvc_root / self.namespace / "results"

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return self.control_plane.kubectl("-n", self.namespace, *args, check=check, input=input)

    def apply(self, manifest: dict[str, Any] | Path) -> subprocess.CompletedProcess:
        if isinstance(manifest, Path):
            return self.kubectl("apply", "-f", str(manifest))
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "pravahjob", name, "-o", "json").stdout)

    def wait_phase(self, name: str, phases: tuple[str, ...] = ("Succeeded",), timeout: float = 120) -> dict:
        """Wait for one of `phases`; fail early (with the status) on another terminal phase."""
        terminal = {"Succeeded", "Failed", "Cancelled"}

        def reached():
            if self.operators and all(op.popen.poll() is not None for op in self.operators):
                raise AssertionError(f"every operator exited; log:\n{self.operators[-1].log()[-3000:]}")
            job = self.get(name)
            phase = (job.get("status") or {}).get("phase")
            if phase in phases:
                return job
            if phase in terminal:
                raise AssertionError(f"{name} ended {phase}: {json.dumps(job.get('status'), indent=1)}\n"
                                     f"operator log:\n{self.operators[0].log()[-3000:]}")
            return None

        try:
            return wait_for(reached, timeout, f"{name} to reach {phases}", interval=0.5)
        except AssertionError as exc:
            if "timed out" in str(exc):
                status = (self.get(name).get("status") or {})
                raise AssertionError(f"{exc}; status: {json.dumps(status, indent=1)}\n"
                                     f"operator log:\n{self.operators[0].log()[-3000:]}") from None
            raise

    def pods(self) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", "pods", "-o", "json").stdout)["items"]

    def jobs(self) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", "jobs", "-o", "json").stdout)["items"]

    def start_operator(self, identity: str = "operator-1") -> OperatorProcess:
        """Start an operator with this cluster's settings (`operator_settings`, as PRAVAH_* names)."""
        env = {f"PRAVAH_{key.upper()}": value for key, value in self.operator_settings.items()}
        operator = OperatorProcess(self.control_plane, self.database, self.namespace, self.workdir, identity,
                                   env, kubeconfig=self.operator_kubeconfig).start()
        self.operators.append(operator)
        return operator


def bind_volume(control_plane, node_agent, namespace: str, claim: str) -> None:
    """A PersistentVolume pre-bound to a claim, so the real scheduler accepts pods using it."""
    local = node_agent.pvc_root / namespace / claim
    local.mkdir(parents=True, exist_ok=True)
    pv_name = f"{namespace}-{claim}"[:63]
    manifests = [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(local)},
                  "claimRef": {"namespace": namespace, "name": claim}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                  "resources": {"requests": {"storage": "10Gi"}}}},
    ]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
    wait_for(lambda: json.loads(control_plane.kubectl("get", "pvc", claim, "-n", namespace, "-o", "json").stdout)
             .get("status", {}).get("phase") == "Bound", 60, f"claim {claim} to be Bound")




# -- the operator's own credential: the manifests' service account and RBAC --

_rbac_installed: set[str] = set()


def rendered_base() -> list[dict[str, Any]]:
    """manifests/base as kustomize renders it."""
    kubectl = _kubectl_binary()
    out = subprocess.run([kubectl, "kustomize", str(MANIFESTS_BASE)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _kubectl_binary() -> str:
    from testbed import bins

    return str(bins.k8s_bin_dir() / "kubectl")


def install_rbac(control_plane) -> None:
    """Apply the namespace, service accounts, roles and bindings of manifests/base (once per
    control plane): the operator then has exactly the permissions a real install gives it."""
    if control_plane.server in _rbac_installed:
        return
    docs = [doc for doc in rendered_base() if doc["kind"] in RBAC_KINDS]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    wait_for(lambda: control_plane.kubectl("get", "serviceaccount", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                                           check=False).returncode == 0, 30, "the operator's service account")
    _rbac_installed.add(control_plane.server)


def bind_leader_election(control_plane, namespace: str) -> None:
    """The Lease lives in PRAVAH_LEASE_NAMESPACE; as in manifests/base (a RoleBinding in the
    operator's namespace), the leader-election ClusterRole is granted in that one namespace."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "pravah-operator-leader-election", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "pravah-operator-leader-election"},
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}],
    }
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(binding))


def service_account_kubeconfig(control_plane, path: Path, account: str = OPERATOR_ACCOUNT,
                               namespace: str = OPERATOR_NAMESPACE, duration: str = "12h") -> Path:
    """A kubeconfig for the control plane that authenticates with a TokenRequest token of
    `namespace/account` (what the in-cluster service account token would give the pod)."""
    token = control_plane.kubectl("create", "token", account, "-n", namespace,
                                  f"--duration={duration}").stdout.strip()
    admin = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    user = f"system:serviceaccount:{namespace}:{account}"
    config = {
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": user}}],
        "current-context": account, "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def operator_kubeconfig(control_plane, namespace: str, workdir: Path) -> Path:
    """Everything the operator needs to run as its own service account watching `namespace`."""
    install_rbac(control_plane)
    bind_leader_election(control_plane, namespace)
    return service_account_kubeconfig(control_plane, workdir / "operator.kubeconfig")


# -- runner processes: freezing one (SIGSTOP) holds a job mid-run for failure tests --

def runner_pids(job_uid: str) -> list[int]:
    """Processes whose environment carries this job's uid."""
    marker = f"PRAVAH_JOB_UID={job_uid}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def freeze(job_uid: str) -> list[int]:
    pids = runner_pids(job_uid)
    signal_all(pids, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    signal_all(pids, signal.SIGCONT)
