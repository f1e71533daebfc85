"""Namespaces, the host guard, topology readiness, capture and faults, against the real kernel (root)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from fixtures.endpoint import Endpoint, SyscallLog
from fixtures.states import Sampler
from netns.addresses import FAMILIES
from netns.capture import Capture
from netns.faults import Faults
from netns.namespace import HostGuard, HostNamespaceError, Namespace, socket_netns_cookie
from netns.topology import CLIENT_IF, Topology
from tests.conftest import netns_cookies_in_use

pytestmark = pytest.mark.root


def test_host_socket_is_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as host_sock:
        with pytest.raises(HostNamespaceError, match="host network namespace"):
            HostGuard.check_socket(host_sock)
        with pytest.raises(HostNamespaceError):
            Endpoint("client", host_sock, SyscallLog(), netns_cookie=socket_netns_cookie(host_sock))


def test_socket_from_another_test_namespace_is_refused():
    with Namespace("a") as a, Namespace("b") as b:
        sock = a.socket(socket.AF_INET)
        with pytest.raises(HostNamespaceError, match="expected"):
            HostGuard.check_socket(sock, expected_cookie=b.cookie)
        sock.close()


def test_namespace_is_new_and_vanishes_when_closed():
    ns = Namespace("t")
    assert ns.cookie not in HostGuard.forbidden()
    assert ns.cookie in netns_cookies_in_use([os.getpid()])
    ns.close()
    assert ns.cookie not in netns_cookies_in_use()


def test_inside_restores_the_calling_threads_namespace():
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        home = socket_netns_cookie(s)
    with Namespace("t") as ns:
        with ns.inside(), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            assert socket_netns_cookie(s) == ns.cookie
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            assert socket_netns_cookie(s) == home


def test_namespace_sysctl_does_not_touch_the_host():
    with open("/proc/sys/net/ipv4/tcp_fin_timeout") as f:
        host_before = f.read()
    with Namespace("t") as ns:
        ns.sysctl_set("net.ipv4.tcp_fin_timeout", 7)
        assert ns.sysctl_get("net.ipv4.tcp_fin_timeout") == "7"
    with open("/proc/sys/net/ipv4/tcp_fin_timeout") as f:
        assert f.read() == host_before


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_topology_passes_traffic_at_once(family):
    fam = FAMILIES[family]
    with Topology() as topo:
        listener = topo.listen(fam)
        client = topo.client_ns.socket(fam.af)
        start = time.perf_counter()
        client.connect((fam.server, 8080))
        assert time.perf_counter() - start < 0.1, "first connect should not wait for DAD or carrier"
        for s in (client, listener):
            s.close()


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_route_rto_min_sets_the_rto_of_a_new_connection(family):
    fam = FAMILIES[family]
    with Topology() as topo:
        listener = topo.listen(fam)
        rtos = []
        for rto_min_s in (None, 1.5):
            if rto_min_s:
                topo.set_rto_min("client", rto_min_s)
            client = topo.client_ns.socket(fam.af)
            client.connect((fam.server, 8080))
            info = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            rtos.append(int.from_bytes(info[8:12], "little") / 1e6)  # struct tcp_info: tcpi_rto (us)
            client.close()
        listener.close()
    assert rtos[0] < 1.0 and 1.5 <= rtos[1] < 1.6, rtos


def test_capture_sees_the_first_syn():
    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        cap = Capture(topo.client_ns, CLIENT_IF)
        listener = topo.listen(fam)
        client = topo.client_ns.socket(fam.af)
        t = time.time()
        client.connect((fam.server, 8080))
        frames = cap.stop()
        client.close()
        listener.close()
    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether

    tcp = [(f, Ether(f.data)[TCP]) for f in frames if TCP in Ether(f.data)]
    first, seg = tcp[0]
    assert str(seg.flags) == "S" and first.outgoing
    assert 0 <= first.ts - t < 0.05, "kernel timestamps are CLOCK_REALTIME, close to time.time()"


def test_drop_rule_drops_and_leaves_no_table():
    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        faults = Faults(topo.server_ns)
        faults.blackhole()
        client = topo.client_ns.socket(fam.af)
        client.settimeout(0.3)
        with pytest.raises((TimeoutError, OSError)):
            client.connect((fam.server, 8080))
        client.close()
        assert faults.counters()["blackhole"] >= 1
        faults.close()
        assert "sockconf" not in topo.server_ns.run(["nft", "list", "tables"])


def test_drop_rules_are_removed_by_their_own_handle():
    """Each rule's handle is the one nft echoed when it was added: removing one leaves the others, and what a
    removed rule dropped stays counted."""
    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        faults = Faults(topo.server_ns)
        faults.drop_flags("fins", has="F")
        faults.blackhole()
        faults.drop_flags("rsts", has="R")
        assert [r.handle for r in faults.rules.values()] == sorted({r.handle for r in faults.rules.values()})
        client = topo.client_ns.socket(fam.af)
        client.settimeout(0.3)
        with pytest.raises((TimeoutError, OSError)):
            client.connect((fam.server, 8080))
        client.close()
        dropped = faults.counters()["blackhole"]
        assert dropped >= 1
        faults.remove("blackhole")
        listed = topo.server_ns.run(["nft", "list", "table", "inet", "sockconf_faults"])
        assert '"fins"' in listed and '"rsts"' in listed and '"blackhole"' not in listed
        assert faults.counters() == {"fins": 0, "rsts": 0, "blackhole": dropped}
        faults.close()
        assert "sockconf" not in topo.server_ns.run(["nft", "list", "tables"])


def test_host_firewall_untouched_by_faults():
    before = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    with Topology() as topo:
        Faults(topo.client_ns).drop_flags("fins", has="F")
    after = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert before == after


def test_nft_scripts_apply_in_their_namespace_only_and_errors_carry_nfts_message():
    """libnftables runs in this process: a script reaches the namespace it names (the nft command sees it there),
    not the other test namespace nor the host, even when the calling thread was elsewhere; a script nft rejects
    raises with nft's own error text."""
    from netns import nft

    host_before = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    with Topology() as topo:
        out = nft.run(topo.server_ns, "add table inet sockconf_probe\nlist tables\n")
        assert "sockconf_probe" in out
        assert "sockconf_probe" in topo.server_ns.run(["nft", "list", "tables"])
        assert "sockconf_probe" not in topo.client_ns.run(["nft", "list", "tables"])
        listed = json.loads(nft.run(topo.server_ns, "list table inet sockconf_probe\n", json=True))
        assert listed["nftables"][1]["table"]["name"] == "sockconf_probe"
        with pytest.raises(nft.NftError, match="No such file or directory"):
            nft.run(topo.client_ns, "delete table inet sockconf_probe\n")
    assert subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout == host_before


def test_state_probe_reads_the_test_namespace_from_any_thread():
    """pyroute2's DiagSocket opens a netlink socket per thread: a sampler thread must not see the host."""
    import threading

    from fixtures.states import StateProbe

    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        listener = topo.listen(fam)
        probe = StateProbe(topo.server_ns, fam.af)
        seen: list[list[tuple[str, int]]] = []

        def query() -> None:
            seen.append([(m["idiag_src"], m["idiag_sport"]) for m in probe.sockets()])

        thread = threading.Thread(target=query)
        thread.start()
        thread.join()
        probe.close()
        listener.close()
    assert seen == [[(fam.server, 8080)]]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_state_lookup_finds_what_a_dump_finds(family: str) -> None:
    """The probe asks for one socket by its four-tuple (a hash lookup, not a dump of the machine-wide table): it must
    answer as a dump does for a listener, a connection, a half-open request, a TIME_WAIT sock and a gone one."""
    import socket
    import struct

    from fixtures.states import StateProbe

    fam = FAMILIES[family]
    with Topology() as topo:
        listener = topo.listen(fam, backlog=4)
        client = topo.client_ns.socket(fam.af)
        client.bind((fam.client, 0))
        client.connect((fam.server, 8080))
        conn, _ = listener.accept()
        port = client.getsockname()[1]
        closer = topo.client_ns.socket(fam.af)
        closer.bind((fam.client, 0))
        closer.connect((fam.server, 8080))
        time_wait_port = closer.getsockname()[1]
        closer.shutdown(socket.SHUT_RDWR)
        closed_peer, _ = listener.accept()
        closed_peer.close()
        closer.close()
        reset = topo.client_ns.socket(fam.af)  # reset by the server: CLOSE, its fd open, no longer hashed
        reset.bind((fam.client, 0))
        reset.connect((fam.server, 8080))
        reset_peer, _ = listener.accept()
        reset_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        reset_peer.close()
        half_open = topo.client_ns.socket(fam.af)
        Faults(topo.client_ns).drop_flags("synacks", has="SA")  # the half-open one stays a request sock
        half_open.bind((fam.client, 0))
        half_open.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            half_open.connect((fam.server, 8080))
        time.sleep(0.05)  # (the FINs and the half-open SYN reach the server)
        looked, dumped = (StateProbe(topo.server_ns, fam.af, fam.server, fam.client),
                          StateProbe(topo.server_ns, fam.af))
        client_looked = StateProbe(topo.client_ns, fam.af, fam.client, fam.server)
        client_dumped = StateProbe(topo.client_ns, fam.af)
        try:
            asked = [(8080, None), (8080, port), (8080, half_open.getsockname()[1]), (8080, 1)]
            answers = [(looked.find(*a).state, dumped.find(*a).state) for a in asked]
            for port_asked in (time_wait_port, reset.getsockname()[1]):
                answers.append((client_looked.find(port_asked, 8080).state,
                                client_dumped.find(port_asked, 8080).state))
        finally:
            for probe in (looked, dumped, client_looked, client_dumped):
                probe.close()
            for sock in (client, conn, half_open, listener, reset):
                sock.close()
    assert answers == [("LISTEN", "LISTEN"), ("ESTABLISHED", "ESTABLISHED"), ("SYN_RECV", "SYN_RECV"),
                       ("CLOSED", "CLOSED"), ("TIME_WAIT", "TIME_WAIT"), ("CLOSED", "CLOSED")]


def test_a_waiting_expectation_wakes_when_a_frame_arrives_not_at_its_timeout():
    """Capture.wait_beyond() (what Wire.expect sleeps in): it returns once the drain thread holds more frames, and
    only at its timeout when none comes."""
    import threading

    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether

    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        cap = Capture(topo.client_ns, CLIENT_IF)
        listener = topo.listen(fam)
        client = topo.client_ns.socket(fam.af)
        try:
            t = time.monotonic()
            cap.wait_beyond(len(cap.frames()) + 1000, timeout=0.3)  # more than will come: the timeout ends it
            idle = time.monotonic() - t
            timer = threading.Timer(0.2, client.connect, ((fam.server, 8080),))
            timer.start()
            t = time.monotonic()
            while not any(Ether(f.data).haslayer(TCP) for f in cap.frames()):  # (neighbour discovery may come first)
                cap.wait_beyond(len(cap.frames()), timeout=10.0)
            woke = time.monotonic() - t
            timer.join()
        finally:
            cap.stop()
            client.close()
            listener.close()
    assert 0.29 <= idle < 1.0, idle
    assert 0.19 <= woke < 2.0, woke


@contextlib.contextmanager
def _sampled_listener() -> Iterator[Sampler]:
    """A Sampler watching a listener (as "listener") in a fresh topology; stopped and closed afterwards."""
    from fixtures.states import StateProbe

    fam = FAMILIES["ipv4"]
    with Topology() as topo:
        listener = topo.listen(fam)
        probe = StateProbe(topo.server_ns, fam.af, fam.server, fam.client)
        sampler = Sampler()
        try:
            sampler.watch("listener", probe, 8080, None)
            yield sampler
        finally:
            sampler.stop()
            probe.close()
            listener.close()


def test_a_waiting_state_read_takes_the_samplers_next_round_or_reads_itself():
    """Sampler.next_read() (what Lab.wait_state waits in): the sampler's next round while it runs, a read of its own
    once it has stopped -- either way the socket's current state."""
    from fixtures.states import SAMPLE_INTERVAL_S

    with _sampled_listener() as sampler:
        t = time.monotonic()
        st = sampler.next_read("listener", timeout=5.0)
        waited = time.monotonic() - t
        sampler.stop()
        t = time.monotonic()
        after = sampler.next_read("listener", timeout=5.0)
        fallback = time.monotonic() - t
    assert st.state == "LISTEN" and after.state == "LISTEN"
    assert waited < 1.0, f"the next round came after {waited:.3f} s (interval {SAMPLE_INTERVAL_S} s)"
    assert fallback < 0.5, f"a stopped sampler's next_read() waited {fallback:.3f} s"


def test_the_sampler_polls_fast_only_while_a_watched_state_can_change():
    """Sampler.quiet_for(): no wait beyond the fast interval after a poke (a frame, a syscall) or with a watched
    timer due soon or overdue; up to QUIET_INTERVAL_S when only a segment or a syscall can change the states. And
    a poke ends a quiet wait: the next round comes about one fast interval later, not at the end of the wait."""
    from fixtures.states import QUIET_INTERVAL_S, SAMPLE_INTERVAL_S, SETTLE_S, Sampler, SockState

    sampler = Sampler()
    now = time.time()
    idle = SockState("ESTABLISHED", t=now, side="client", t_end=now)
    sampler.observe("client", idle)
    sampler.poke()
    assert sampler.quiet_for() == 0.0  # just poked
    sampler._last_activity -= SETTLE_S
    assert sampler.quiet_for() == pytest.approx(QUIET_INTERVAL_S - SAMPLE_INTERVAL_S)
    sampler.observe("server", SockState("TIME_WAIT", "timewait", expires_ms=20, t=now, side="server", t_end=now))
    assert sampler.quiet_for() == 0.0  # its timer is due within TIMER_LEAD_S
    sampler.observe("server", SockState("TIME_WAIT", "timewait", expires_ms=0, t=now - 1, side="server", t_end=now))
    assert sampler.quiet_for() == 0.0  # past due: fires late, never early
    sampler.observe("server", SockState("TIME_WAIT", "timewait", expires_ms=60, t=now, side="server", t_end=now))
    assert 0.0 < sampler.quiet_for() < QUIET_INTERVAL_S - SAMPLE_INTERVAL_S  # the first fast round before it
    sampler.observe("server", SockState("CLOSED", t=now, side="server", t_end=now))
    assert sampler.quiet_for() == pytest.approx(QUIET_INTERVAL_S - SAMPLE_INTERVAL_S, abs=0.01)


def test_a_poke_ends_the_samplers_quiet_wait():
    from fixtures.states import QUIET_INTERVAL_S, SETTLE_S

    with _sampled_listener() as sampler:
        time.sleep(SETTLE_S + QUIET_INTERVAL_S)  # quiet now: a listener changes only by a syscall
        quiet_rounds = sampler._round
        time.sleep(QUIET_INTERVAL_S * 3)
        quiet_rounds = sampler._round - quiet_rounds
        sampler.next_read("listener", timeout=1.0)  # lands anywhere in a quiet wait
        sampler.poke()
        t = time.monotonic()
        sampler.next_read("listener", timeout=1.0)
        waited = time.monotonic() - t
    assert quiet_rounds <= 4, f"{quiet_rounds} rounds in {QUIET_INTERVAL_S * 3:.1f} s of quiet"
    assert waited < QUIET_INTERVAL_S / 2, f"the round after a poke came {waited:.3f} s later"
