"""Kueue's controller manager as a host process against the local control plane: the
binary and CRDs that scripts/kueue-bin builds from the sigs.k8s.io/kueue Go module.

Only the batch/job integration is on. No webhook configuration is registered: Pravah
creates its Jobs suspended with the `kueue.x-k8s.io/queue-name` label already, which is
all Kueue's Job webhook would add. The manager still serves its webhooks and, without its
own certificate management, reads a metrics certificate from the fixed path
/etc/kueue/metrics/certs; both get a throwaway certificate, the latter through an overlay
on /etc in a private mount namespace, so nothing is written outside the work directory.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from .bins import REPO_ROOT
from .pki import PKI
from .procs import PlatformError, Proc, free_ports, wait_until

KUEUE_SCRIPT = REPO_ROOT / "scripts" / "kueue-bin"
KUEUE_NAMESPACE = "kueue-system"
METRICS_CERTS = Path("kueue/metrics/certs")  # under /etc, where the manager reads them
# Mount an overlay on /etc (its writes land in the work directory), then become the manager.
OVERLAY_THEN_EXEC = 'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec "$@"'


def kueue_dir() -> Path:
    """The cache directory scripts/kueue-bin filled (bin/kueue, crds/); PlatformError if not built."""
    hint = f"build it with {KUEUE_SCRIPT.relative_to(REPO_ROOT)}"
    r = subprocess.run([str(KUEUE_SCRIPT), "--print"], capture_output=True, text=True, timeout=30, check=False)
    if r.returncode != 0 or not r.stdout.strip():
        raise PlatformError(f"Kueue is missing: the controller manager is not built; {hint} "
                            f"({(r.stderr or r.stdout).strip()[-300:]})")
    return Path(r.stdout.strip().splitlines()[-1])


def configuration(webhook_port: int, health_port: int, cert_dir: Path) -> dict:
    """Kueue's Configuration: Jobs only, one manager (no leader election), loopback ports,
    no metrics server and no visibility API server (it would need an APIService)."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "leaderElection": {"leaderElect": False},
        "featureGates": {"VisibilityOnDemand": False},
        "integrations": {"frameworks": ["batch/job"]},
    }


class Kueue:
    """Kueue's CRDs applied and its controller manager running, in `workdir`."""

    def __init__(self, control_plane, workdir: Path | str) -> None:
        self.control_plane = control_plane
        self.dir = Path(workdir)
        self.home = kueue_dir()
        self.webhook_port, self.health_port = free_ports(2)
        self.log_path = self.dir / "kueue.log"
        self.proc: Proc | None = None

    def start(self, timeout: float = 120) -> Kueue:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.apply_crds()
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}}
        self.control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(configuration(self.webhook_port, self.health_port, self.certificates())))
        upper, work = self.dir / "etc-upper", self.dir / "etc-work"
        work.mkdir(exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", OVERLAY_THEN_EXEC, "sh",
                upper, work, self.home / "bin" / "kueue", f"--config={config}",
                f"--kubeconfig={self.control_plane.kubeconfig}"]
        self.proc = Proc("kueue", argv, self.log_path, cwd=self.dir).start()
        wait_until(self.ready, timeout, f"Kueue's readyz on 127.0.0.1:{self.health_port}", interval=0.5,
                   procs=[self.proc])
        return self

    def apply_crds(self) -> None:
        """Kueue's own CRDs, server-side (some are too large for a client-side apply's annotation)."""
        crds = str(self.home / "crds")
        self.control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        self.control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)

    def certificates(self) -> Path:
        """A serving certificate for the webhook server and the metrics path; returns the
        webhook's certificate directory."""
        pair = PKI(self.dir / "pki").issue("kueue", "kueue", server=True, dns=("localhost",), ips=("127.0.0.1",))
        webhook = self.dir / "webhook-certs"
        for target in (webhook, self.dir / "etc-upper" / METRICS_CERTS):
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pair.cert, target / "tls.crt")
            shutil.copyfile(pair.key, target / "tls.key")
        return webhook

    def ready(self) -> bool:
        """The health endpoint says ready: caches synced and the webhook server listening."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=10)

    def log_tail(self, lines: int = 40) -> str:
        return self.proc.log_tail(lines) if self.proc else ""
