"""Helpers for the listener cases: several connections on one wire, told apart by port.

`fixtures.wire.Wire` gives each segment a sender but no ports, and keeps one ISN per *sender*, so with
several clients its relative seq/ack numbers mix connections. These helpers dissect the same raw frames
with the client's port kept, and wait on one connection's segments. (A candidate for fixtures/wire.py: a
`port=` filter on expect()/expect_no() and per-4-tuple ISNs.)
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from fixtures.endpoint import Endpoint
from fixtures.lab import SERVER_PORT, Lab
from fixtures.wire import FLAG_ORDER, flag_string, normalize

WAIT_STEP_S = 0.002


@dataclass(frozen=True)
class ConnSegment:
    ts: float
    sender: str  # "client" or "server", as in fixtures.wire
    client_port: int
    flags: str
    length: int
    raw_seq: int
    raw_ack: int

    def describe(self, t0: float) -> str:
        return f"{self.ts - t0:+.4f}s {self.sender:>6} :{self.client_port} [{self.flags}] len {self.length}"


def conn_segments(lab: Lab) -> list[ConnSegment]:
    """Every TCP segment captured so far, with the client-side port of its connection, in capture order."""
    out = []
    for frame in lab.capture.frames():
        pkt = Ether(frame.data)
        if TCP not in pkt or (IP not in pkt and IPv6 not in pkt):
            continue
        tcp, ip = pkt[TCP], (pkt[IP] if IP in pkt else pkt[IPv6])
        header = ip.ihl * 4 if IP in pkt else 40
        total = ip.len if IP in pkt else ip.plen + 40
        sender = "client" if frame.outgoing else "server"
        port = tcp.sport if frame.outgoing else tcp.dport
        out.append(ConnSegment(frame.ts, sender, port, flag_string(int(tcp.flags)),
                               total - header - tcp.dataofs * 4, tcp.seq, tcp.ack))
    return out


def _match(seg: ConnSegment, sender: str, port: int, flags: str | None, has: str) -> bool:
    if seg.sender != sender or seg.client_port != port:
        return False
    if flags is not None and seg.flags.replace("P", "") != normalize(flags).replace("P", ""):
        return False
    return set(normalize(has)) <= set(seg.flags)


def describe_wire(lab: Lab) -> str:
    return "\n".join("  " + s.describe(lab.t0) for s in conn_segments(lab)) or "  (nothing captured)"


def expect_on(lab: Lab, port: int, sender: str, flags: str | None = None, *, has: str = "", within: float,
              since: float, why: str = "") -> ConnSegment:
    """Wait for `sender`'s first segment on the connection of client port `port` after `since`."""
    assert set(normalize(flags or "") + normalize(has)) <= set(FLAG_ORDER)
    deadline = since + within
    while True:
        found = [s for s in conn_segments(lab) if s.ts >= since and _match(s, sender, port, flags, has)]
        if found and found[0].ts <= deadline:
            return found[0]
        if found or time.time() > deadline + 0.05:
            late = f" (it came {found[0].ts - since:.3f} s after)" if found else ""
            want = f"[{flags}]" if flags is not None else f"a segment with [{has}]"
            raise AssertionError(lab.explain(
                f"expected {sender} to send {want} on the connection of client port {port} within "
                f"{within:.3f} s{late}; per connection:\n{describe_wire(lab)}", why))
        time.sleep(WAIT_STEP_S)


def expect_none_on(lab: Lab, port: int, sender: str, *, during: float, since: float, has: str = "",
                   why: str = "") -> None:
    """Wait until `since + during` and fail if `sender` sent anything (with `has`) on that connection."""
    time.sleep(max(0.0, since + during - time.time()))
    found = [s for s in conn_segments(lab)
             if since <= s.ts <= since + during and _match(s, sender, port, None, has)]
    if found:
        raise AssertionError(lab.explain(
            f"expected nothing{f' with [{has}]' if has else ''} from {sender} on client port {port} for "
            f"{during:.3f} s, got [{found[0].flags}] after {found[0].ts - since:.3f} s; per connection:\n"
            f"{describe_wire(lab)}", why))


def on(lab: Lab, port: int, sender: str | None = None, flags: str | None = None, has: str = "",
       since: float = 0.0) -> list[ConnSegment]:
    return [s for s in conn_segments(lab) if s.ts >= since and (sender is None or s.sender == sender)
            and s.client_port == port and _match(s, s.sender, port, flags, has)]


def start_connect(lab: Lab, name: str, port: int = SERVER_PORT) -> Endpoint:
    """A non-blocking connect() from the client namespace (logged; EINPROGRESS is its normal result),
    watched in the state timeline as `name`. The handshake completes (or not) without blocking the test."""
    sock = lab.socket("client")
    sock.bind((lab.family.client, 0))
    ep = lab.adopt(name, sock, "client")
    sock.setblocking(False)
    lab.log.record(name, "connect", f"[{lab.family.server}]:{port} (O_NONBLOCK)",
                   lambda: _connect_ex(sock, (lab.family.server, port)))
    lab.sampler.watch(name, lab.probes["client"], ep.port, port)
    return ep


def _connect_ex(sock: socket.socket, addr: tuple[str, int]) -> str:
    rc = sock.connect_ex(addr)
    return errno.errorcode.get(rc, str(rc)) if rc else "0"


def watch_child(lab: Lab, client: Endpoint, name: str | None = None, port: int = SERVER_PORT) -> str:
    """Watch the server-side socket (request sock, child, or accepted socket) of `client`'s connection."""
    side = name or f"{client.name}@server"
    lab.sampler.watch(side, lab.probes["server"], port, client.port)
    return side


def wait_established(lab: Lab, side: str, within: float) -> float:
    return lab.wait_state(side, "ESTABLISHED", within)


def call_errno(ep: Endpoint, call: str, *args: object) -> str:
    """Run one logged Endpoint call and return its errno name ("0" if it succeeded)."""
    try:
        getattr(ep, call)(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "0"
