"""Where the Kubernetes and etcd binaries built by scripts/k8s-bins are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .procs import PlatformError

REPO_ROOT = Path(__file__).resolve().parents[3]
K8S_BINS_SCRIPT = REPO_ROOT / "scripts" / "k8s-bins"
REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet",
            "kube-proxy")


def k8s_bin_dir() -> Path:
    """The directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl.

    `PRAVAH_K8S_BIN` overrides the location; otherwise it is the cache that
    `scripts/k8s-bins` builds. Nothing is built here: building takes many minutes and is
    the job of `scripts/platform-prereqs` (or `scripts/k8s-bins`).
    """
    override = os.environ.get("PRAVAH_K8S_BIN")
    if override:
        d = Path(override)
    else:
        try:
            out = subprocess.run(
                [str(K8S_BINS_SCRIPT), "--print"], capture_output=True, text=True, timeout=30, check=False)
        except OSError as e:
            raise PlatformError(f"cannot run {K8S_BINS_SCRIPT}: {e}") from e
        if out.returncode != 0:
            raise PlatformError(
                "the Kubernetes binaries (etcd, kube-apiserver, kube-controller-manager, "
                "kube-scheduler, kubectl) are not built. Run `scripts/platform-prereqs` "
                f"(or `scripts/k8s-bins`) first. {out.stderr.strip()}"
            )
        d = Path(out.stdout.strip().splitlines()[-1])
    missing = [b for b in REQUIRED if not os.access(d / b, os.X_OK)]
    if missing:
        raise PlatformError(f"missing Kubernetes binaries in {d}: {', '.join(missing)}; run scripts/k8s-bins")
    return d


def build_info(bin_dir: Path) -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in (bin_dir / ".complete").read_text().splitlines():
            k, _, v = line.partition("=")
            info[k] = v
    except OSError:
        pass
    return info
