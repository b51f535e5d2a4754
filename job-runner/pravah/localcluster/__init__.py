"""A real Kubernetes cluster on one Linux machine, without Docker: a control plane built from
source, kubelets on containerd and runc, PostgreSQL and an S3 server, with Pravah installed
from its own images. `pravah dev up` and the tests start the same one.

See tests/platform/README.md.
"""

from .bins import k8s_bin_dir
from .controlplane import ControlPlane
from .nodes import DEFAULT_NODES, Nodes, NodeSpec
from .platform import Platform
from .postgres import Postgres
from .procs import PlatformError
from .s3 import S3Server

__all__ = [
    "DEFAULT_NODES",
    "ControlPlane",
    "NodeSpec",
    "Nodes",
    "Platform",
    "PlatformError",
    "Postgres",
    "S3Server",
    "k8s_bin_dir",
]
