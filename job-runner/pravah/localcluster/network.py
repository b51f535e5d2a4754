"""The host side of the local cluster's network, all in the project's own addresses.

``HOST_IP`` lives on an interface of its own (a bridge without ports): it is every node's InternalIP, the API server's
advertised address (the endpoint of the ``kubernetes`` Service), and where the host
services that pods reach (PostgreSQL, the S3 server) listen. Each node's pods sit on a
bridge of their own inside ``CLUSTER_CIDR``; a FORWARD rule refuses every packet that
would leave the pod network for any other address.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .procs import PlatformError

HOST_IP = "10.87.0.1"
HOST_INTERFACE = "pravah0"
CLUSTER_CIDR = "10.88.0.0/16"
FORWARD_CHAIN = "PRAVAH-FORWARD"


def run(*argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, input=input, check=False)
    if check and r.returncode != 0:
        raise PlatformError(f"`{' '.join(argv)}` failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def setup_host_interface() -> None:
    """The interface holding HOST_IP (idempotent)."""
    if run("ip", "link", "show", HOST_INTERFACE, check=False).returncode != 0:
        run("ip", "link", "add", HOST_INTERFACE, "type", "bridge")
    run("ip", "addr", "replace", f"{HOST_IP}/32", "dev", HOST_INTERFACE)
    run("ip", "link", "set", HOST_INTERFACE, "up")


def setup_host_network(bridges: list[tuple[str, str]]) -> None:
    """The host address, one bridge per node, forwarding, and the egress guard (idempotent)."""
    setup_host_interface()
    for bridge, gateway in bridges:
        if run("ip", "link", "show", bridge, check=False).returncode != 0:
            run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "replace", f"{gateway}/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_nf.exists():
        bridge_nf.write_text("1")
    # Pods talk to pods, Services (DNAT'ed to pods before FORWARD) and the host (INPUT);
    # nothing else: no packet from the pod network is forwarded to any other address.
    if run("iptables", "-w", "-N", FORWARD_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-F", FORWARD_CHAIN)
    run("iptables", "-w", "-A", FORWARD_CHAIN, "-s", CLUSTER_CIDR, "-d", CLUSTER_CIDR, "-j", "ACCEPT")
    run("iptables", "-w", "-A", FORWARD_CHAIN, "-s", CLUSTER_CIDR, "-j", "REJECT")
    run("iptables", "-w", "-A", FORWARD_CHAIN, "-d", CLUSTER_CIDR, "-j", "ACCEPT")
    if run("iptables", "-w", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
        run("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)
