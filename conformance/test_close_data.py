"""close() and what is still queued: unread data (RST or FIN?), the peer's view of the reset, unsent data
behind a zero window, and a connection that never got past SYN_SENT."""

from __future__ import annotations

import errno
import time

import pytest

from conformance.claims import Key
from conformance.support_linger import fill, small_window_pair
from fixtures.lab import SERVER_PORT
from fixtures.references import reference
from fixtures.tolerance import PROMPT_S, prompt_window, timer_window

SYNACK_TIMEOUT_S = 1.0  # include/net/tcp.h TCP_TIMEOUT_INIT: the first SYN-ACK retransmission


def _outcome(call) -> str:  # type: ignore[no-untyped-def]
    """What a syscall gave: 'N bytes' / 'sent N' or the errno name."""
    try:
        result = call()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{len(result)} bytes" if isinstance(result, bytes) else f"sent {result}"


@pytest.mark.parametrize("situation", ["close-wait", "after-partial-read", "close-wait-after-partial-read"])
@reference("RFC 9293 §3.10.4", "RFC 2525 §2.17", "RFC 1122 §4.2.2.13",
           kernel="net/ipv4/tcp.c __tcp_close() (data_was_unread)")
def test_close_with_unread_data_sends_rst(pair, situation):
    """close() with received bytes not yet read sends RST, also in CLOSE_WAIT and after a partial read.

    __tcp_close() empties the receive queue and adds up every byte it drops (a FIN counts for nothing); any
    byte lost means the peer would wrongly believe its data was consumed, so it resets (RFC 2525 §2.17)
    instead of sending FIN, in whatever state the fd is. The RST acknowledges everything received, the FIN
    included; both sockets are gone at once and TCPAbortOnClose counts it."""
    pair.server.sendall(b"x" * 1000)
    expected_ack = 1001
    if situation.startswith("close-wait"):
        pair.server.shutdown("SHUT_WR")
        pair.wire.expect("server", "FA", within=PROMPT_S, seq=1001)
        pair.wait_state("client", "CLOSE_WAIT", within=PROMPT_S)
        expected_ack = 1002
    else:
        pair.client.wait_readable()
    if situation.endswith("after-partial-read"):
        pair.expect_equal("client partial read", pair.client.recv(400), b"x" * 400)
    unread = pair.client.unread_bytes()
    pair.expect_equal("client unread bytes before close() (FIONREAD)", unread,
                      600 if situation.endswith("after-partial-read") else 1000)
    pair.client.close()
    closed = pair.log.last("client", "close")
    try:
        pair.wire.expect("client", "RA", within=PROMPT_S, seq=1, ack=expected_ack,
                         why="unread data must reset the connection")
    finally:
        sent = pair.wire.all("client", since=closed.t)
        pair.observe(Key.CLOSE_UNREAD_DATA, {"unread_bytes": unread, "flags": sent[0].flags if sent else ""},
                     f"close() with {unread} unread bytes ({situation})")
    pair.wire.expect_no("client", has="F", during=PROMPT_S, since=closed.t, why="no FIN before or after the RST")
    pair.wait_gone("client", within=PROMPT_S)
    pair.wait_gone("server", within=PROMPT_S, why="the server was reset")
    pair.expect_nstat("client", "TcpExtTCPAbortOnClose", 1)


@pytest.mark.parametrize("situation", ["established", "close-wait-eof-not-read", "close-wait-eof-read"])
@reference("RFC 9293 §3.10.4", "RFC 1122 §4.2.2.13",
           kernel=("net/ipv4/tcp.c __tcp_close() (a FIN in the receive queue is not unread data)",
                   "net/ipv4/tcp.c tcp_close_state()"))
def test_close_after_reading_everything_sends_fin(pair, situation):
    """close() after every received byte was read sends FIN, not RST, even if the EOF itself was never read.

    __tcp_close() subtracts the FIN's sequence number when it counts what was dropped from the receive
    queue, so a pending EOF is not "unread data": tcp_close_state() picks FIN_WAIT1 (from ESTABLISHED) or
    LAST_ACK (from CLOSE_WAIT) and tcp_send_fin() sends the FIN. No abort is counted."""
    pair.server.sendall(b"x" * 1000)
    close_wait = situation.startswith("close-wait")
    if close_wait:
        pair.server.shutdown("SHUT_WR")
        pair.wire.expect("server", "FA", within=PROMPT_S, seq=1001)
        pair.wait_state("client", "CLOSE_WAIT", within=PROMPT_S)
    pair.expect_equal("client reads everything", pair.client.recv_exactly(1000), b"x" * 1000)
    if situation == "close-wait-eof-read":
        pair.expect_equal("client recv() after the peer's FIN", pair.client.recv(), b"", why="EOF")
    try:
        if close_wait:
            pair.client.close()
            fin = pair.wire.expect("client", "FA", within=PROMPT_S, seq=1, ack=1002)
            ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
        else:  # the orphan's path is the configuration's, not the ACK's timing against close() (lab.py)
            fin, ack = pair.close_holding_fin_ack("client", seq=1, ack=1001)
    finally:
        closed = pair.log.last("client", "close")
        fins = pair.wire.all("client", has="F", since=closed.t)
        pair.observe(Key.CLOSE_FIN_NOTHING_QUEUED,
                     {"flags": fins[0].flags, "len": fins[0].length} if fins else {"flags": "", "len": 0},
                     f"close() with nothing queued ({situation})")
    pair.wire.expect_no("client", has="R", during=PROMPT_S, since=closed.t, why="no RST before or after the FIN")
    if close_wait:
        pair.wait_gone("client", within=PROMPT_S, why="LAST_ACK ends with the ACK of its FIN")
        pair.wait_state("server", "TIME_WAIT", within=PROMPT_S)
    else:
        pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
        st = pair.state("client")
        timeout = None if st.timer == "none" else round(st.expires_ms / 1000 + time.time() - ack.ts, 3)
        pair.observe(Key.FIN_WAIT2_TIMEOUT_AT_DEFAULTS,
                     {"timeout_s": timeout, "at_defaults": "net.ipv4.tcp_fin_timeout" not in pair.evidence.sysctls},
                     f"orphaned FIN_WAIT2's timer (sock_diag expiry + time since the ACK of its FIN): {st.describe()}")
        pair.expect_orphan_fin_wait2("client")
        pair.wait_state("server", "CLOSE_WAIT", within=PROMPT_S)
    pair.expect_nstat("client", "TcpExtTCPAbortOnClose", 0)


@pytest.mark.parametrize(("first", "expected"), [
    pytest.param("recv", ["300 bytes", "ECONNRESET", "0 bytes", "EPIPE"], id="recv-first"),
    pytest.param("send", ["ECONNRESET", "300 bytes", "0 bytes", "EPIPE"], id="send-first"),
])
@reference("RFC 9293 §3.10.7.4 (RST in ESTABLISHED: flush the queues, signal connection reset)",
           kernel=("net/ipv4/tcp_input.c tcp_reset()", "net/ipv4/tcp.c tcp_recvmsg_locked()",
                   "include/net/sock.h sock_error()"))
def test_peer_of_a_reset_reads_queued_data_then_econnreset(pair, first, expected):
    """The reset peer can still read the bytes that arrived before the RST; ECONNRESET is reported once.

    tcp_reset() records ECONNRESET in sk_err and closes the socket, but leaves the receive queue alone
    (RFC 9293 says to flush it); tcp_recvmsg_locked() copies queued data before it looks at sk_err.
    sock_error() clears the error when it reports it, to whichever call comes first (recv or send); after
    that recv() returns EOF and send() fails with EPIPE (the send side is shut down)."""
    pair.client.sendall(b"c" * 300)
    pair.server.wait_readable()
    pair.server.sendall(b"s" * 100)
    pair.client.wait_readable()
    pair.client.close()
    pair.wire.expect("client", "RA", within=PROMPT_S)
    pair.wait_gone("server", within=PROMPT_S, why="the RST closes the server's socket")
    calls = {"recv": lambda: pair.server.recv(1000), "send": lambda: pair.server.send(b"z")}
    order = [first, "recv", "recv", "send"]
    seen = [_outcome(calls[op]) for op in order]
    pair.expect_equal(f"server calls {' '.join(order)}", seen, expected,
                      why="queued data first, then ECONNRESET once, then EOF and EPIPE")
    pair.wire.expect_no("server", during=0.05, why="a closed socket sends nothing, not even on send()")


@reference("RFC 9293 §3.10.4 (CLOSE: queued SENDs are sent before the FIN)", "RFC 1122 §4.2.2.17",
           kernel=("net/ipv4/tcp_output.c tcp_send_fin()", "net/ipv4/tcp_timer.c tcp_probe_timer()"))
def test_close_with_unsent_data_returns_at_once_and_delivers_it(lab):
    """close() with unsent data (peer window zero) returns at once; all data then goes out, FIN on the last.

    Without SO_LINGER close() does not wait: the orphan stays in FIN_WAIT1 with the persist (probe) timer
    while the window is zero. tcp_send_fin() sets FIN on the tail of the write queue when that segment has
    not been sent yet, so when the peer reads and the window opens, the FIN rides on the last data segment
    instead of following it alone."""
    small_window_pair(lab)
    sent = fill(lab.client)
    lab.expect_equal("the server advertised a zero window", any(s.win == 0 for s in lab.wire.all("server", "A")),
                     True, why="set-up: the small receive buffer fills")
    queued = lab.state("client").wqueue
    lab.expect_equal("data waiting in the client's send queue", queued > 0, True,
                     why=f"set-up: sock_diag wqueue {queued}")
    lab.client.close()
    call = lab.log.last("client", "close")
    lab.expect_duration("close() with unsent data, no linger", call.t, call.t_end, prompt_window(), "syscall")
    lab.wait_state("client", "FIN_WAIT1", within=PROMPT_S)
    lab.expect_state("client", "FIN_WAIT1", timer="probe", why="a zero window is probed by the persist timer")
    lab.wire.expect_no("client", has="F", during=0.1, since=call.t, why="the FIN waits behind the data")
    received = bytearray()
    while chunk := lab.server.recv(65536):
        received += chunk
    fin = lab.wire.expect("client", has="F", within=PROMPT_S)
    lab.wire.allow("client", has="F", seq=fin.seq, why="a tail-loss probe resends the last segment when its ACK comes "
                   "later than ~2 SRTT (tcp_send_loss_probe(): seen on a loaded machine)")
    lab.observe(Key.CLOSE_UNSENT_DATA, {"written_bytes": sent, "unsent_at_close": queued,
                                        "delivered_bytes": len(received), "fin_len": fin.length,
                                        "fin_ends_data": fin.seq + fin.length == sent + 1},
                f"close() with {queued} of {sent} bytes unsent behind a zero window")
    lab.expect_equal("bytes the server read", len(received), sent, why="every byte written is delivered")
    lab.expect_equal("bytes the server read are the data written", set(received) == {ord("d")}, True)
    lab.expect_equal("end of the FIN segment (seq + len)", fin.seq + fin.length, sent + 1,
                     why="the FIN ends the data")
    lab.wire.expect("server", "A", ack=sent + 2, within=PROMPT_S)
    lab.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    lab.wire.expect_no("client", has="R", during=time.time() - call.t, since=call.t,
                       why="nothing was reset from close() to the end of the transfer")
    lab.expect_equal("data bytes on the FIN segment > 0", fin.length > 0, True,
                     why=f"the FIN rides on the last data segment ({fin.describe(lab.t0)})")


HELD_RTO_MIN_S = 2.0


@pytest.mark.sysctls({"net.ipv4.tcp_early_retrans": 0}, sides=("client",))  # no loss probe: see below
@reference("RFC 1122 §4.2.3.4 (Nagle)", "RFC 9293 §3.10.4",
           kernel=("net/ipv4/tcp_output.c tcp_send_fin() (__tcp_push_pending_frames(sk, mss, TCP_NAGLE_OFF))",
                   "net/ipv4/tcp_output.c tcp_nagle_test()", "net/ipv4/tcp_output.c tcp_send_loss_probe()"))
def test_close_pushes_data_held_by_nagle_at_once(lab):
    """close() sends a small segment that Nagle holds back at once, with the FIN on it.

    The ACK of a first small segment is dropped, so Nagle (tcp_nagle_test()) keeps a second small write queued
    while the first is unacknowledged. close() -> tcp_send_fin() puts the FIN on that unsent tail skb and
    pushes with TCP_NAGLE_OFF: it leaves right away. Nothing else may release it first, however slow the
    harness (in an emulated guest, first send to close() took longer than 200 ms): the tail loss probe is off
    (tcp_early_retrans 0; tcp_send_loss_probe() sends new data when there is some) and the RTO is at least
    HELD_RTO_MIN_S (a locked route rto_min; an RTO retransmits the first segment only, but leaves cwnd at 1,
    which holds the second one as well). The route is set before the handshake: the RTO's floor comes in with
    an RTT sample, and the ACKs are dropped afterwards."""
    lab.route_rto_min("client", HELD_RTO_MIN_S, why="no RTO before close(), however slow the harness")
    pair = lab.connect()
    pair.scenario_start = time.time()  # as the pair fixture's: after the handshake
    pair.drop(towards="client", name="acks", exactly="A")  # the first small segment stays unACKed
    pair.client.send(b"a" * 10)
    first = pair.wire.expect("client", "PA", len=10, within=PROMPT_S)
    pair.client.send(b"b" * 10)
    pair.wire.expect_no("client", seq=first.seq + 10, during=0.05, since=pair.log.last("client", "send").t,
                        why="Nagle holds the second small segment while the first is unACKed (the first one's "
                            "retransmission may come: its ACK is dropped)")
    pair.client.close()
    closed = pair.log.last("client", "close")
    try:
        pair.wire.expect("client", has="F", len=10, seq=first.seq + 10, within=PROMPT_S,
                         why="close() pushes the held segment, FIN on it")
    finally:
        held = [s for s in pair.wire.all("client", since=closed.t) if s.length == 10 and s.seq == first.seq + 10]
        pair.observe(Key.CLOSE_NAGLE_HELD, {"bytes": 10,
                                            "delay_s": round(held[0].ts - closed.t, 6) if held else None},
                     "close() with a Nagle-held 10-byte segment")
    pair.wire.allow("client", has="F", why="retransmissions: the ACKs towards the client stay dropped")
    pair.wire.allow("client", "PA", seq=first.seq, len=10,
                    why="the first segment is retransmitted (TLP/RTO): its ACKs are dropped")


@pytest.mark.parametrize("linger", [None, (1, 0), (1, 1)], ids=["linger-off", "linger-1-0", "linger-1-1"])
@reference("RFC 9293 §3.10.4 (CLOSE in SYN-SENT: delete the TCB)",
           kernel=("net/ipv4/tcp.c tcp_close_state() (SYN_SENT -> CLOSE, no FIN)",
                   "net/ipv4/tcp.c tcp_disconnect() (tcp_need_reset() excludes SYN_SENT)",
                   "net/core/stream.c sk_stream_wait_close()"))
def test_close_in_syn_sent_sends_nothing(lab, linger):
    """close() in SYN_SENT sends nothing (no FIN, no RST) and frees the socket at once, whatever SO_LINGER says.

    tcp_close_state() maps SYN_SENT to CLOSE without a FIN; with SO_LINGER {1,0}, tcp_disconnect() resets
    only the states tcp_need_reset() lists, which exclude SYN_SENT; with {1,N} there is nothing to wait
    for (sk_stream_wait_close() only waits in FIN_WAIT1/CLOSING/LAST_ACK). The {1,0} branch still counts
    TCPAbortOnData. The SYN-ACK is dropped at the client so the socket stays in SYN_SENT."""
    lab.listen()
    lab.drop(towards="client", name="syn-ack", has="S")
    client = lab.start_connect()
    lab.wire.expect("client", "S", within=PROMPT_S)
    lab.wire.expect("server", "SA", within=PROMPT_S)
    lab.expect_state("client", "SYN_SENT", timer="retrans")
    if linger is not None:
        client.set_linger(True, linger[1])
    client.close()
    call = lab.log.last("client", "close")
    lab.expect_duration("close() in SYN_SENT", call.t, call.t_end, prompt_window(), "syscall")
    lab.wait_gone("client", within=PROMPT_S)
    lab.wire.expect_no("client", during=0.1, since=call.t, why="nothing to tell a peer that never answered")
    lab.expect_nstat("client", "TcpExtTCPAbortOnData", 1 if linger == (1, 0) else 0,
                     why="the {1,0} branch of __tcp_close() counts an abort even though nothing is sent")


@pytest.mark.parametrize("late_synack", ["injected", "retransmitted"])
@reference("RFC 9293 §3.10.7.1 (CLOSED: an ACK gets <SEQ=SEG.ACK><CTL=RST>)", "RFC 9293 §3.5.2",
           kernel=("net/ipv4/tcp_ipv4.c tcp_v4_send_reset()", "net/ipv6/tcp_ipv6.c tcp_v6_send_reset()",
                   "net/ipv4/inet_connection_sock.c reqsk_timer_handler()"))
def test_late_syn_ack_after_close_in_syn_sent_gets_rst(lab, late_synack):
    """A SYN-ACK that arrives after close() in SYN_SENT is answered by a bare RST with seq = its ACK number.

    Once closed, the client has no socket for the 4-tuple, so tcp_v4_rcv()/tcp_v6_rcv() answer any segment
    with a reset: the SYN-ACK carries an ACK, so the RST takes SEG.ACK as its sequence number and has no
    ACK flag. The late SYN-ACK is either crafted, or the server's own retransmission after
    TCP_TIMEOUT_INIT (1 s), the first SYN-ACK having been dropped at the client. A crafted one carries no TCP
    options, so the drop rule keeps dropping the server kernel's own SYN-ACKs (tcp_synack_options() always
    writes at least MSS) while the crafted one passes: however slow the harness is, the server's resend after
    1 s never reaches the client as a second late SYN-ACK."""
    if late_synack == "retransmitted" and not lab.cfg("net.ipv4.tcp_synack_retries", "server", why="a resent SYN-ACK"):
        pytest.skip("not testable with this configuration: tcp_synack_retries=0, the server never resends its SYN-ACK")
    lab.listen()
    # the first SYN-ACK is dropped; a retransmitted one passes even before the rule is removed (nft's limit: one
    # packet per hour matches), however long removing it takes (an nft call takes ~0.7 s in a TCG guest)
    only = "limit rate 1/hour burst 1 packets" if late_synack == "retransmitted" else "tcp doff > 5"  # options
    lab.drop(towards="client", name="syn-ack", has="S", match=only)
    client = lab.start_connect()
    lab.wire.expect("client", "S", within=PROMPT_S)
    synack = lab.wire.expect("server", "SA", within=PROMPT_S)
    client.close()
    lab.wait_gone("client", within=PROMPT_S)
    if late_synack == "injected":
        lab.inject("server", "SA", seq=synack.raw_seq, ack=synack.raw_ack, sport=SERVER_PORT, dport=client.port)
        late = lab.wire.expect("server", "SA", within=PROMPT_S, origin="injected")
    else:
        lab.undrop("client", "syn-ack")
        window = timer_window(SYNACK_TIMEOUT_S)
        late = lab.wire.expect("server", "SA", within=window.high_s, since=synack.ts)
        lab.expect_duration("SYN-ACK retransmission (TCP_TIMEOUT_INIT)", synack.ts, late.ts, window, "wire")
    rst = lab.wire.expect("client", "R", within=PROMPT_S, since=late.ts, seq=synack.ack,
                          why="no socket: RST with seq = SEG.ACK, no ACK flag")
    lab.expect_equal("RST raw seq", rst.raw_seq, late.raw_ack,
                     why="the RST's sequence number is the SYN-ACK's acknowledgment number")
    lab.expect_nstat("client", "TcpOutRsts", 1)
