"""The real test platform: a Kubernetes control plane built from source, a node agent that
runs pods as local processes, PostgreSQL and an S3 server — all on loopback.

See tests/platform/README.md.
"""

from .bins import k8s_bin_dir
from .controlplane import ControlPlane
from .nodeagent import NodeSpec, pod_log
from .platform import DEFAULT_NODES, NodeAgentProcess, Platform
from .postgres import Postgres
from .procs import PlatformError
from .s3 import S3Server

__all__ = [
    "DEFAULT_NODES",
    "ControlPlane",
    "NodeAgentProcess",
    "NodeSpec",
    "Platform",
    "PlatformError",
    "Postgres",
    "S3Server",
    "k8s_bin_dir",
    "pod_log",
]
