"""End-to-end harness: the operator as a real process, a namespace with volumes, waiting helpers."""

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
                 extra_env: dict[str, str] | None = None):
        self.log_path = workdir / f"operator-{identity}.log"
        self.metrics_port = free_port()
        self.env = {
            **os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "PRAVAH_DATABASE_URL": database,
            "PRAVAH_RUNNER_COMMAND": json.dumps([str(BIN / "pravah"), "runner"]),
            "PRAVAH_RUNNER_SERVICE_ACCOUNT": "", "PRAVAH_NAMESPACES": json.dumps([namespace]),
            "PRAVAH_LEASE_NAMESPACE": namespace, "PRAVAH_LEASE_SECONDS": "6", "PRAVAH_IDENTITY": identity,
            "PRAVAH_METRICS_PORT": str(self.metrics_port), "PRAVAH_STATUS_INTERVAL": "1",
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
                                   env).start()
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
