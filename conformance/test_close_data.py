"""close() and what is still queued: unread data (RST or FIN?), the peer's view of the reset, unsent data
behind a zero window, and a connection that never got past SYN_SENT."""

from __future__ import annotations

import errno
import time

import pytest

from conformance.support_linger import fill, small_window_pair
from fixtures.lab import SERVER_PORT
from fixtures.references import claim, reference
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
        assert pair.client.recv(400) == b"x" * 400
    unread = pair.client.unread_bytes()
    assert unread == (600 if situation.endswith("after-partial-read") else 1000), f"{unread} bytes unread"
    pair.client.close()
    closed = pair.log.last("client", "close")
    pair.wire.expect("client", "RA", within=PROMPT_S, seq=1, ack=expected_ack,
                     why="unread data must reset the connection")
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
    assert pair.client.recv_exactly(1000) == b"x" * 1000
    if situation == "close-wait-eof-read":
        assert pair.client.recv() == b"", "recv() after the peer's FIN returns EOF"
    pair.client.close()
    closed = pair.log.last("client", "close")
    fin = pair.wire.expect("client", "FA", within=PROMPT_S, seq=1, ack=1002 if close_wait else 1001)
    pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.wire.expect_no("client", has="R", during=PROMPT_S, since=closed.t, why="no RST before or after the FIN")
    if close_wait:
        pair.wait_gone("client", within=PROMPT_S, why="LAST_ACK ends with the ACK of its FIN")
        pair.wait_state("server", "TIME_WAIT", within=PROMPT_S)
    else:
        pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
        pair.expect_state("client", "FIN_WAIT2", timer="timewait", why="an orphaned FIN_WAIT2")
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
    assert seen == expected, f"server calls {order} gave {seen}, expected {expected}"
    pair.wire.expect_no("server", during=0.05, why="a closed socket sends nothing, not even on send()")


@claim("如果有待发送的消息，那么要尽力保证这些消息都发出去的。所以，会在最后一个报文中加入FIN标志")
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
    assert any(s.win == 0 for s in lab.wire.all("server", "A")), "the server should advertise a zero window"
    queued = lab.state("client").wqueue
    assert queued > 0, "data should be waiting in the client's send queue"
    lab.client.close()
    call = lab.log.last("client", "close")
    lab.expect_duration("close() with unsent data, no linger", call.t, call.t_end, prompt_window(), "syscall")
    lab.wait_state("client", "FIN_WAIT1", within=PROMPT_S)
    lab.expect_state("client", "FIN_WAIT1", timer="probe", why="a zero window is probed by the persist timer")
    lab.wire.expect_no("client", has="F", during=0.1, since=call.t, why="the FIN waits behind the data")
    received = bytearray()
    while chunk := lab.server.recv(65536):
        received += chunk
    assert len(received) == sent and set(received) == {ord("d")}, f"received {len(received)} of {sent} bytes"
    fin = lab.wire.expect("client", has="F", within=PROMPT_S)
    assert fin.seq + fin.length == sent + 1, f"FIN at seq {fin.seq}+{fin.length}, data ended at {sent + 1}"
    lab.wire.expect("server", "A", ack=sent + 2, within=PROMPT_S)
    lab.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    lab.wire.expect_no("client", has="R", during=time.time() - call.t, since=call.t,
                       why="nothing was reset from close() to the end of the transfer")
    on_data = fin.length > 0
    lab.claim_verdict(on_data, f"{sent} bytes delivered after close(); the FIN came "
                               f"{'on the last data segment' if on_data else 'alone'} "
                               f"(seq {fin.seq}, {fin.length} bytes, flags {fin.flags})")
    assert on_data, f"the FIN came alone ({fin.describe(lab.t0)}), not on the last data segment"


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
    TCP_TIMEOUT_INIT (1 s), the first SYN-ACK having been dropped at the client."""
    lab.listen()
    lab.drop(towards="client", name="syn-ack", has="S")
    client = lab.start_connect()
    lab.wire.expect("client", "S", within=PROMPT_S)
    synack = lab.wire.expect("server", "SA", within=PROMPT_S)
    client.close()
    lab.wait_gone("client", within=PROMPT_S)
    lab.undrop("client", "syn-ack")
    if late_synack == "injected":
        lab.inject("server", "SA", seq=synack.raw_seq, ack=synack.raw_ack, sport=SERVER_PORT, dport=client.port)
        late = lab.wire.expect("server", "SA", within=PROMPT_S, origin="injected")
    else:
        window = timer_window(SYNACK_TIMEOUT_S, "wire")
        late = lab.wire.expect("server", "SA", within=window.high_s, since=synack.ts)
        lab.expect_duration("SYN-ACK retransmission (TCP_TIMEOUT_INIT)", synack.ts, late.ts, window, "wire")
    rst = lab.wire.expect("client", "R", within=PROMPT_S, since=late.ts, seq=synack.ack,
                          why="no socket: RST with seq = SEG.ACK, no ACK flag")
    assert rst.raw_seq == late.raw_ack, "the RST's sequence number is the SYN-ACK's acknowledgment number"
    lab.expect_nstat("client", "TcpOutRsts", 1)
