"""The address plan: the only addresses sockconf ever assigns or connects to.

IPv4 from 198.18.0.0/15 (RFC 2544, benchmarking) and IPv6 from 2001:db8::/32 (RFC 3849, documentation).
Each test has its own pair of namespaces, so every pair uses the same two addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

ALLOWED_V4 = ipaddress.ip_network("198.18.0.0/15")
ALLOWED_V6 = ipaddress.ip_network("2001:db8::/32")


def check_allowed(addr: str) -> None:
    ip = ipaddress.ip_address(addr)
    net = ALLOWED_V4 if ip.version == 4 else ALLOWED_V6
    if ip not in net:
        raise ValueError(f"{addr} is outside sockconf's address plan ({ALLOWED_V4}, {ALLOWED_V6})")


@dataclass(frozen=True)
class Family:
    name: str  # "ipv4" / "ipv6"
    af: int
    client: str
    server: str
    prefixlen: int

    def __post_init__(self) -> None:
        for addr in (self.client, self.server):
            check_allowed(addr)


IPV4 = Family("ipv4", socket.AF_INET, "198.18.0.1", "198.18.0.2", 24)
IPV6 = Family("ipv6", socket.AF_INET6, "2001:db8::1", "2001:db8::2", 64)
FAMILIES = {f.name: f for f in (IPV4, IPV6)}
