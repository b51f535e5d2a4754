"""The local platform's ports: free, never handed out twice, clear of outgoing connections."""

import socket

import pytest

from pravah.localcluster import procs
from pravah.localcluster.procs import EPHEMERAL_RANGE, LOWEST_PORT, PlatformError, free_port, free_ports


EPHEMERAL_LOW = int(EPHEMERAL_RANGE.read_text().split()[0])


def test_ports_are_free_distinct_and_below_the_outgoing_range():
    low = EPHEMERAL_LOW
    ports = free_ports(50) + [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports), "a port was handed out twice"
    assert all(LOWEST_PORT <= port < low for port in ports)
    for port in ports[:10]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("", port))


def test_a_port_in_use_is_not_handed_out(monkeypatch, tmp_path):
    """In a window of five ports around one a server listens on, every port handed out is
    another, until none is left (a clear refusal, not a port already taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        for taken in range(LOWEST_PORT + 5000, EPHEMERAL_LOW):  # not through free_ports: it never repeats
            try:
                busy.bind(("", taken))
                break
            except OSError:
                continue
        busy.listen()
        outgoing = tmp_path / "ip_local_port_range"
        outgoing.write_text(f"{taken + 3}\t60999\n")
        monkeypatch.setattr(procs, "EPHEMERAL_RANGE", outgoing)
        monkeypatch.setattr(procs, "LOWEST_PORT", taken - 2)
        handed = []
        with pytest.raises(PlatformError, match="no 1 free TCP ports"):
            while True:
                handed += free_ports(1)
        assert taken not in handed
        assert all(taken - 2 <= port < taken + 3 for port in handed)
