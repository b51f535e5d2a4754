"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

Built from the Go modules by scripts/k8s-bins. The API server runs with RBAC and the Node
authorizer, service-account token signing, and a client-certificate admin credential
(like controller-runtime's envtest). Each component gets its own client certificate and
kubeconfig; the controller-manager runs its controllers with per-controller
service-account credentials, as kubeadm clusters do.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from .bins import k8s_bin_dir
from .network import HOST_IP
from .pki import PKI, CertPair
from .procs import PlatformError, Proc, free_ports, wait_until

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, user: str) -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "pravah-test", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": "pravah-test", "context": {"cluster": "pravah-test", "user": user}}],
        "current-context": "pravah-test",
        "preferences": {},
    }
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager + kube-scheduler) in `workdir`.

    >>> cp = ControlPlane(tmp).start()
    >>> cp.kubeconfig, cp.server
    >>> cp.kubectl("get", "ns")
    >>> cp.stop()
    """

    def __init__(
        self,
        workdir: Path | str,
        controllers: bool = True,
        scheduler: bool = True,
        bin_dir: Path | None = None,
    ) -> None:
        self.dir = Path(workdir)
        self.with_controllers = controllers
        self.with_scheduler = scheduler
        self.bin_dir = bin_dir
        self.procs: dict[str, Proc] = {}
        self.etcd_port, self.etcd_peer_port, self.port = free_ports(3)
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.dir / "kubeconfig"
        self.logs_dir = self.dir / "logs"
        self.startup_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> ControlPlane:
        t0 = time.monotonic()
        bins = self.bin_dir or k8s_bin_dir()
        self.bin_dir = bins
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = PKI(self.dir / "pki")
        self.pki = pki
        self.ca = pki.ca_path
        serving = pki.issue(
            "apiserver", "kube-apiserver", server=True,
            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local"),
            ips=("127.0.0.1", SERVICE_IP, HOST_IP),
        )
        self.admin = pki.issue("admin", "pravah-admin", orgs=("system:masters",))
        # What the API server shows kubelets (logs, exec, port-forward).
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                   orgs=("system:masters",))
        cm_cert = pki.issue("controller-manager", "system:kube-controller-manager")
        sched_cert = pki.issue("scheduler", "system:kube-scheduler")
        self.sa_keys = pki.service_account_keys()

        write_kubeconfig(self.kubeconfig, self.server, self.ca, self.admin, "admin")
        cm_kubeconfig = write_kubeconfig(
            self.dir / "controller-manager.kubeconfig", self.server, self.ca, cm_cert,
            "system:kube-controller-manager",
        )
        sched_kubeconfig = write_kubeconfig(
            self.dir / "scheduler.kubeconfig", self.server, self.ca, sched_cert, "system:kube-scheduler"
        )

        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd_url = etcd_url
        self._spawn(
            "etcd",
            [
                bins / "etcd",
                "--name=default",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_until(lambda: self._http_ok(f"{etcd_url}/health"), 30, "etcd /health", procs=[self.procs["etcd"]])

        self._spawn(
            "kube-apiserver",
            [
                bins / "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                "--bind-address=0.0.0.0",
                f"--advertise-address={HOST_IP}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self.ca}",
                "--authorization-mode=Node,RBAC",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={self.sa_keys.cert}",
                f"--service-account-signing-key-file={self.sa_keys.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.wait_ready(timeout=timeout, procs=[self.procs["etcd"], self.procs["kube-apiserver"]])

        if self.with_controllers:
            self._spawn(
                "kube-controller-manager",
                [
                    bins / "kube-controller-manager",
                    f"--kubeconfig={cm_kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--controllers=*",
                    "--use-service-account-credentials=true",
                    f"--root-ca-file={self.ca}",
                    f"--service-account-private-key-file={self.sa_keys.key}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        if self.with_scheduler:
            self._spawn(
                "kube-scheduler",
                [
                    bins / "kube-scheduler",
                    f"--kubeconfig={sched_kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        if self.with_controllers:
            # The service-account controller creates `default` in every namespace; pods can
            # only be created once it exists.
            wait_until(
                lambda: self._kubectl_ok("get", "serviceaccount", "default", "-n", "default"),
                timeout, "the `default` service account (kube-controller-manager)",
                interval=0.3, procs=list(self.procs.values()),
            )
        self.startup_seconds = time.monotonic() - t0
        return self

    def _spawn(self, name: str, argv: Sequence) -> Proc:
        p = Proc(name, argv, self.logs_dir / f"{name}.log").start()
        self.procs[name] = p
        return p

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            p = self.procs.get(name)
            if p is not None:
                p.stop(grace=5)

    def kill(self, name: str) -> None:
        """SIGKILL one component (to test failures)."""
        self.procs[name].kill()

    # -- health --------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200

    def readyz(self, timeout: float = 5.0) -> tuple[int, str]:
        """(HTTP status, verbose body) of the API server's /readyz; status 0 if unreachable."""
        try:
            with urllib.request.urlopen(
                f"{self.server}/readyz?verbose", context=self._ssl(), timeout=timeout
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            return 0, f"{type(e).__name__}: {getattr(e, 'reason', e)}"

    def wait_ready(self, timeout: float = 60.0, procs: Sequence[Proc] | None = None) -> None:
        """Wait for /readyz to be 200; raise PlatformError naming the failing checks."""
        last: dict[str, str] = {}

        def check() -> bool:
            status, body = self.readyz()
            last["status"], last["body"] = str(status), body
            return status == 200

        try:
            wait_until(check, timeout, f"kube-apiserver {self.server}/readyz", interval=0.2,
                       procs=procs if procs is not None else [])
        except PlatformError as e:
            failing = [ln for ln in last.get("body", "").splitlines() if ln.startswith("[-]")]
            detail = "\n".join(failing) or last.get("body", "")[:2000]
            raise PlatformError(
                f"kube-apiserver is not ready (last /readyz status {last.get('status')}):\n{detail}\n{e}"
            ) from None

    def check_healthy(self, timeout: float = 10.0) -> None:
        """Raise PlatformError (quickly) if any component died or /readyz fails."""
        for p in self.procs.values():
            if not p.alive():
                raise PlatformError(
                    f"{p.name} is not running (exit code {p.returncode()}).\n"
                    f"--- last lines of {p.log_path} ---\n{p.log_tail()}"
                )
        self.wait_ready(timeout=timeout)

    # -- clients -------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the built kubectl against this control plane."""
        argv = [*self.kubectl_command(), *args]
        r = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, argv, r.stdout, r.stderr)
        return r

    def kubectl_command(self) -> list[str]:
        """The built kubectl with this control plane's kubeconfig, for commands that stream."""
        return [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}"]

    def _kubectl_ok(self, *args: str) -> bool:
        return self.kubectl(*args, check=False, timeout=10).returncode == 0

    def api_client(self):
        """A synchronous `kubernetes` ApiClient with the admin credential."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    async def async_api_client(self):
        """A `kubernetes_asyncio` ApiClient with the admin credential (close it when done)."""
        from kubernetes_asyncio import config

        return await config.new_client_from_config(config_file=str(self.kubeconfig))

    def log_files(self) -> dict[str, Path]:
        return {name: p.log_path for name, p in self.procs.items()}

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}
