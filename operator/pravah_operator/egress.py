"""Where a job's runner pods may connect: the egress NetworkPolicy created with each Job.

A runner needs three things on the network: the operator's report endpoint, DNS, and the
S3 endpoints its own spec names (already checked against the allowlist at admission). The
policy allows exactly those, so a job on volumes talks to nothing but the operator, and a
spec cannot turn a runner into a client of other services in the cluster. An endpoint given
by IP address is allowed as that address and port; one given by host name (or the default
AWS endpoint) as its port on the CIDRs of `PRAVAH_RUNNER_EGRESS_CIDRS`, since a
NetworkPolicy cannot name hosts. Policies take effect where the network plugin enforces them.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pravah.spec import PravahJobSpec

from pravah_operator.planning import JOB_LABEL, job_name
from pravah_operator.settings import OperatorSettings

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
HTTPS_PORT = 443


def endpoint_rule(endpoint: str | None, settings: OperatorSettings) -> dict[str, Any]:
    """Egress to one S3 endpoint: its address when it is one, else the configured CIDRs."""
    parts = urlsplit(endpoint or "https://s3.amazonaws.com")
    port = parts.port or (HTTPS_PORT if parts.scheme == "https" else 80)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
        blocks = [f"{address}/{address.max_prefixlen}"]
    except ValueError:
        blocks = [cidr.strip() for cidr in settings.runner_egress_cidrs.split(",") if cidr.strip()]
    return {"to": [{"ipBlock": {"cidr": block}} for block in blocks], "ports": [{"protocol": "TCP", "port": port}]}


def egress_policy(spec: PravahJobSpec, name: str, namespace: str, uid: str,
                  settings: OperatorSettings) -> dict[str, Any]:
    endpoints = sorted({location.s3.endpoint or "" for location in (spec.source, spec.output)
                        if location is not None and location.s3 is not None})
    rules = [
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.lease_namespace}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "pravah-operator"}}}],
         "ports": [{"protocol": "TCP", "port": settings.report_port}]},
        {"to": [{"namespaceSelector": {}}], "ports": DNS_PORTS},
        *(endpoint_rule(endpoint or None, settings) for endpoint in endpoints),
    ]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{job_name(name, uid)}-egress", "namespace": namespace,
                     "labels": {JOB_LABEL: name, "app.kubernetes.io/managed-by": "pravah"}},
        "spec": {"podSelector": {"matchLabels": {JOB_LABEL: name}}, "policyTypes": ["Egress"], "egress": rules},
    }
