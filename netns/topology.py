"""Two namespaces joined by a veth pair, ready to pass traffic when the constructor returns.

What makes it fast (see FIELD-NOTES): the two veth ends get different ifindexes (same index on both ends
triggers a rate-limited, ~1 s carrier stall); DAD is off before any link exists and addresses carry
IFA_F_NODAD; readiness is polled (operstate UP, a real qdisc, no tentative address) rather than slept for.
Segmentation and checksum offloads are switched off so that a captured segment is what went on the "wire".
"""

from __future__ import annotations

import ipaddress
import socket
import time
from contextlib import ExitStack
from typing import ClassVar

from pyroute2 import IPRoute
from pyroute2.ethtool.ioctl import ETH_SS_FEATURES, IoctlEthtool

from netns.addresses import Family
from netns.namespace import Namespace, NamespaceError

IFA_F_NODAD = 0x02
RTAX_RTO_MIN = 13  # include/uapi/linux/rtnetlink.h (its bit in RTAX_LOCK: 1 << 13)
RT_TABLE_MAIN = 254
IFA_F_TENTATIVE = 0x40
CLIENT_IF = "c0"
SERVER_IF = "s0"
CLIENT_IFINDEX = 10  # the two ends' ifindexes differ: the same index on both ends stalls the carrier (FIELD-NOTES)
SERVER_IFINDEX = 2  # what a fresh namespace gives its first link after lo (checked when the link is read)
LOOPBACK_IFINDEX = 1
MAC = {"client": "02:5c:00:00:00:01", "server": "02:5c:00:00:00:02"}  # locally administered, the same every case
OFFLOADS_OFF = (
    "tx-tcp-segmentation",
    "tx-tcp6-segmentation",
    "tx-generic-segmentation",
    "tx-checksum-ip-generic",
    "rx-gro",
)
IFNAMES = {"client": CLIENT_IF, "server": SERVER_IF}
READY_TIMEOUT_S = 5.0


class Topology:
    """client namespace --c0==veth==s0-- server namespace, with IPv4 and IPv6 addresses on both ends."""

    def __init__(self, sysctls: dict[str, dict[str, str]] | dict[str, str] | None = None) -> None:
        """`sysctls`: {name: value} for both namespaces, or {"client": {...}, "server": {...}} per side."""
        self._stack = ExitStack()
        try:
            self.client_ns = self._stack.enter_context(Namespace("client"))
            self.server_ns = self._stack.enter_context(Namespace("server"))
            self.namespaces = {"client": self.client_ns, "server": self.server_ns}
            per_side = sysctls if sysctls and set(sysctls) <= {"client", "server"} else \
                {side: dict(sysctls or {}) for side in self.namespaces}
            for side, ns in self.namespaces.items():
                for scope in ("all", "default"):
                    ns.sysctl_set(f"net.ipv6.conf.{scope}.accept_dad", 0)
                for name, value in per_side.get(side, {}).items():  # type: ignore[union-attr]
                    ns.sysctl_set(name, value)
            self._build()
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        """One rtnetlink socket per namespace for the whole build: the veth pair is created with both MAC
        addresses and the client end's ifindex (the server end gets its fresh namespace's first, checked when it is
        read), so nothing is looked up; then addresses, links up, offloads off. (The block runs with the thread in
        the server namespace, the last one entered; every request goes through a socket already in its own.)"""
        from netns.addresses import IPV4, IPV6

        with self.client_ns.iproute() as client, self.server_ns.iproute() as server:
            rtnl = {"client": client, "server": server}
            client.link("add", ifname=CLIENT_IF, kind="veth", index=CLIENT_IFINDEX, address=MAC["client"],
                        state="up",  # (the peer's attributes cannot carry IFF_UP: it is set up below)
                        peer={"ifname": SERVER_IF, "address": MAC["server"], "net_ns_fd": self.server_ns.fd})
            self.ifindex = {"client": CLIENT_IFINDEX, "server": SERVER_IFINDEX}
            self.mac = dict(MAC)
            for side, ifname in (("client", CLIENT_IF), ("server", SERVER_IF)):
                ipr = rtnl[side]
                self.namespaces[side].call(self._offloads_off, ifname)
                for fam in (IPV4, IPV6):
                    addr = fam.client if side == "client" else fam.server
                    ipr.addr("add", index=self.ifindex[side], address=addr, prefixlen=fam.prefixlen,
                             flags=IFA_F_NODAD)
                ipr.link("set", index=LOOPBACK_IFINDEX, state="up")
                if side == "server":
                    ipr.link("set", index=self.ifindex[side], state="up")
            self._wait_ready(rtnl)

    @staticmethod
    def _offloads_off(ifname: str) -> None:
        """The ethtool ioctls (pyroute2's IoctlEthtool: its netlink Ethtool decodes every feature and link mode
        first, ~10 ms per interface), in the calling thread's namespace."""
        ethtool = _Ethtool(ifname)
        try:
            features = ethtool.get_features()
            for name in OFFLOADS_OFF:
                if name in features:
                    features[name] = False
            ethtool.set_features(features)
        finally:
            ethtool.close()

    def _wait_ready(self, rtnl: dict[str, IPRoute]) -> None:
        """Until each end is operationally up with a real qdisc (both set by linkwatch, after the link was set up)
        and has its IPv6 addresses out of tentative state (addrconf's work, after up). The IPv4 addresses were
        there when their requests were acknowledged. IPv6 address flags are read from the namespace's
        /proc/net/if_inet6 (one read; an RTM_GETADDR dump through pyroute2 cost ~1 ms of CPU per end)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = dict(self.ifindex)
        while pending:
            for side, idx in list(pending.items()):
                link = rtnl[side].get_links(idx)[0]
                if link.get("IFLA_IFNAME") != IFNAMES[side]:
                    raise NamespaceError(f"ifindex {idx} in the {side} namespace is {link.get('IFLA_IFNAME')}, "
                                         f"not {IFNAMES[side]}")
                up = link.get("IFLA_OPERSTATE") == "UP" and link.get("IFLA_QDISC") not in (None, "noop")
                if up and self._ipv6_ready(side, idx):
                    del pending[side]
            if pending and time.monotonic() > deadline:
                raise NamespaceError(f"veth not ready after {READY_TIMEOUT_S} s: {sorted(pending)}")
            if pending:
                time.sleep(0.001)

    def _ipv6_ready(self, side: str, idx: int) -> bool:
        """The end's own IPv6 address is there and no address of the link is tentative (if_inet6: address,
        ifindex, prefix length, scope, IFA_F_* flags, name; all hexadecimal)."""
        from netns.addresses import IPV6

        ours = ipaddress.ip_address(IPV6.client if side == "client" else IPV6.server).exploded.replace(":", "")
        lines = self.namespaces[side].read_proc_net("if_inet6").splitlines()
        entries = [line.split() for line in lines]
        mine = [e for e in entries if len(e) >= 5 and int(e[1], 16) == idx]
        return any(e[0] == ours for e in mine) and not any(int(e[4], 16) & IFA_F_TENTATIVE for e in mine)

    def set_rto_min(self, side: str, seconds: float) -> None:
        """A locked RTAX_RTO_MIN on `side`'s routes to the other end, both families (`ip route replace ... rto_min
        lock`): tcp_rto_min() takes it over the namespace's default. Unlike net.ipv4.tcp_rto_min_us (6.11+) every
        kernel has it (2.6.23, 05bb1fad1cde); it must be locked to count."""
        from netns.addresses import IPV4, IPV6

        with self.namespaces[side].iproute() as ipr:
            for fam in (IPV4, IPV6):
                ours = fam.client if side == "client" else fam.server
                net = ipaddress.ip_interface(f"{ours}/{fam.prefixlen}").network
                routes = [r for r in ipr.get_routes(family=fam.af, table=RT_TABLE_MAIN)
                          if r.get_attr("RTA_OIF") == self.ifindex[side] and r["dst_len"] == fam.prefixlen
                          and r.get_attr("RTA_DST") == str(net.network_address)]
                if len(routes) != 1:
                    raise NamespaceError(f"{side}: expected one route to {net}, found {len(routes)}")
                r = routes[0]
                ipr.route("replace", family=fam.af, dst=r.get_attr("RTA_DST"), dst_len=r["dst_len"],
                          oif=self.ifindex[side], proto=r["proto"], scope=r["scope"], table=r["table"],
                          priority=r.get_attr("RTA_PRIORITY"), prefsrc=r.get_attr("RTA_PREFSRC"),
                          metrics={"lock": 1 << RTAX_RTO_MIN, "rto_min": round(seconds * 1000)})

    def listen(self, family: Family, port: int = 8080, backlog: int = 128) -> socket.socket:
        """A listening TCP socket on the server side (netns-checked), for tests and benches of the topology."""
        sock = self.server_ns.socket(family.af)
        sock.bind((family.server, port))
        sock.listen(backlog)
        return sock


class _Ethtool(IoctlEthtool):
    """IoctlEthtool whose feature names (ETH_SS_FEATURES) are read once per process: they are the kernel's
    netdev_features_strings, the same for every device, and pyroute2 decodes them a character at a time
    (~0.6 ms per interface)."""

    _feature_names: ClassVar[list[str] | None] = None

    def get_stringset(self, set_id: int = ETH_SS_FEATURES, drvinfo_offset: int = 0,
                      null_terminate: int = 1) -> list[str]:
        if set_id != ETH_SS_FEATURES:
            return super().get_stringset(set_id, drvinfo_offset, null_terminate)
        if _Ethtool._feature_names is None:
            _Ethtool._feature_names = super().get_stringset(set_id, drvinfo_offset, null_terminate)
        return list(_Ethtool._feature_names)
