"""Timers that decide how long a closing connection lives, measured."""

import pytest

from fixtures.references import reference
from fixtures.tolerance import PROMPT_S, timer_window


@pytest.mark.sysctls({"net.ipv4.tcp_fin_timeout": 1})
@reference("RFC 9293 §3.10.4 (FIN-WAIT-2 has no timeout in the RFC)",
           kernel=("net/ipv4/tcp.c __tcp_close() tcp_fin_time()", "net/ipv4/tcp_input.c tcp_rcv_state_process()"))
def test_orphaned_fin_wait2_lives_tcp_fin_timeout(pair):
    """An orphaned FIN_WAIT2 lives tcp_fin_timeout (1 s here), then vanishes without sending anything.

    RFC 9293 lets FIN-WAIT-2 wait forever; Linux bounds an orphan by tcp_fin_timeout, kept as a TIME_WAIT
    mini-socket in the FIN_WAIT2 substate (timer timewait), and drops it silently."""
    pair.client.close()
    fin = pair.wire.expect("client", "FA", within=PROMPT_S)
    ack = pair.wire.expect("server", "A", ack=fin.seq + 1, within=PROMPT_S)
    pair.wait_state("client", "FIN_WAIT2", within=PROMPT_S)
    pair.expect_state("client", "FIN_WAIT2", timer="timewait", why="an orphan FIN_WAIT2 is a timewait sock")
    gone = pair.wait_gone("client", within=3.0)
    pair.expect_duration("orphan FIN_WAIT2 lifetime", ack.ts, gone, timer_window(1.0, "sock_diag"), "sock_diag")
    pair.wire.expect_no("client", during=0.0, since=ack.ts, has="")
