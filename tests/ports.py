"""Ports for servers that tests start (and restart in place) on 127.0.0.1.

A port from ``bind(0)`` lies in the kernel's ephemeral range (Linux: 32768–60999), the range
outgoing connections take their local ports from. A server stopped for a while (the Milvus
and broker outages of the fault suite) can then find its port taken as the local port of some
client connection when it starts again, and fail to bind. :func:`server_port` picks a free
port below that range instead.
"""
from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
"""Lowest port handed out (well above the registered well-known services)."""


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range, ``(32768, 60999)`` when it cannot be read."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def server_port(attempts: int = 200) -> int:
    """A TCP port nothing is bound to on 127.0.0.1, below the ephemeral range.

    Raises:
        RuntimeError: no free port found in ``attempts`` random tries.
    """
    high = ephemeral_range()[0]
    rng = random.SystemRandom()
    for _ in range(attempts):
        port = rng.randrange(LOWEST, max(LOWEST + 1, high))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{LOWEST}, {high}) after {attempts} tries")
