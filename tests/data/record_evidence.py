"""Record the evidence the mutation tests (tests/test_mutations.py) decide again: one real case per area, run on
this kernel as root, its case file trimmed (no ss text, no pcap) into tests/data/recorded/<name>.json.

    python3 tests/data/record_evidence.py          # as root, from the repository root; takes ~20 s
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "recorded"
CASES = {
    "close": "conformance/test_close.py::test_close_with_unread_data_sends_rst[ipv4]",
    "close_data": "conformance/test_close_data.py::test_close_in_syn_sent_sends_nothing[ipv4-linger-off]",
    "linger": "conformance/test_linger.py::test_zero_linger_close_in[ipv4-last-ack]",
    "time_wait": "conformance/test_time_wait.py::test_time_wait_timer_is_60s_whatever_tcp_fin_timeout[ipv4-1]",
    "orderings": "conformance/test_orderings.py::test_active_close_every_state_on_both_sides[ipv4-client]",
    "timers": "conformance/test_timers.py::test_orphaned_fin_wait2_lives_tcp_fin_timeout[ipv4-1]",
    "timers_series": ("conformance/test_timers.py::test_orphaned_fin_wait1_blackholed_retransmits_until_orphan_"
                      "retries_time[ipv4-retries1-rtomin200ms]"),
    "listener": "conformance/test_listener.py::test_close_resets_every_unaccepted_child[ipv4-linger-off]",
    "shutdown": "conformance/test_shutdown.py::test_shutdown_then_close_in_each_order_with_peer_close"
                "[ipv4-SHUT_WR-shutdown-close-peerclose]",
}
DROP = ("ss", "pcap", "fingerprint", "fingerprint_text", "message", "description")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-q", "--no-report",
                               "--results-dir", tmp, *CASES.values()], cwd=REPO)
        if proc.returncode != 0:
            print("record_evidence: some case failed; nothing recorded", file=sys.stderr)
            return 1
        by_nodeid = {}
        for path in Path(tmp, "cases").glob("*.json"):
            case = json.loads(path.read_text())
            by_nodeid[case["nodeid"]] = case
    OUT.mkdir(exist_ok=True)
    for name, nodeid in CASES.items():
        case = {k: v for k, v in by_nodeid[nodeid].items() if k not in DROP}
        (OUT / f"{name}.json").write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded {name}: {case['id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
