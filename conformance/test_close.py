"""close() on an established connection: what goes on the wire, and what is left behind."""

from fixtures.references import reference
from fixtures.tolerance import PROMPT_S


@reference("RFC 9293 §3.10.4", "RFC 2525 §2.17", "RFC 1122 §4.2.2.13", kernel="net/ipv4/tcp.c __tcp_close()")
def test_close_with_unread_data_sends_rst(pair):
    """close() with unread data in the receive queue sends RST, not FIN.

    The server's bytes were acknowledged but never read: the kernel discards them and resets the connection
    (data_was_unread in __tcp_close) so the peer learns the data was lost. No FIN is sent and no TIME_WAIT
    is left behind."""
    pair.server.sendall(b"x" * 1000)
    pair.client.wait_readable()
    pair.client.close()
    pair.wire.expect("client", "RA", within=PROMPT_S)
    pair.wire.expect_no("client", has="F", during=0.1)
    pair.wait_gone("client", within=PROMPT_S)
