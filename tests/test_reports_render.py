"""`python -m reports render`: the self-contained HTML report and the JUnit XML (pure python, no root)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reports_sample import SS_TEXT, case_by_id, external_resources, make_run, unbalanced_tags, write_run

from reports.__main__ import main, render
from reports.fmt import slug
from reports.load import ResultsError, load_run

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, dict]:
    data = make_run()
    return write_run(tmp_path / "run", data), data


@pytest.fixture
def report(sample: tuple[Path, dict]) -> str:
    run_dir, _ = sample
    return render(run_dir).read_text(encoding="utf-8")


def test_cli_writes_index_and_junit_and_prints_the_path(sample: tuple[Path, dict]) -> None:
    run_dir, _ = sample
    proc = subprocess.run([sys.executable, "-m", "reports", "render", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_dir / "index.html")
    assert (run_dir / "index.html").stat().st_size > 10_000
    assert (run_dir / "junit.xml").is_file()
    assert not list(run_dir.glob(".*.tmp"))


def test_report_is_self_contained(report: str) -> None:
    assert external_resources(report) == []
    assert "<style>" in report and "<script>" in report
    # RFC references stay plain links, which is allowed
    assert '<a href="https://www.rfc-editor.org/rfc/rfc9293#section-3.10.4">' in report


def test_self_containment_check_catches_fetched_resources() -> None:
    bad = ('<link rel="stylesheet" href="https://cdn.example/x.css"><script src="https://cdn.example/x.js">'
           '</script><style>@import "x.css"; body{background:url(https://x/y.png)}</style><img src="a.png">'
           '<svg><image href="http://x/y.svg"/><path marker-end="url(#ok)"/></svg><a href="https://rfc">ok</a>')
    found = external_resources(bad)
    assert len(found) == 6, found


def test_report_is_well_formed(report: str) -> None:
    assert unbalanced_tags(report) == []


def test_header_shows_kernel_totals_runtime_and_non_default_sysctls(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    assert "6.18.44-fc-v657" in report and "#1 SMP PREEMPT_DYNAMIC" in report
    assert "8 passed" in report and "1 failed" in report and "1 skipped" in report
    header = report.split("</header>", 1)[0]
    # tcp_congestion_control differs from its default; tcp_fin_timeout equals it but was given with --sysctl
    assert "net.ipv4.tcp_congestion_control" in header
    assert re.search(r"net\.ipv4\.tcp_fin_timeout.*?given with --sysctl", header)
    # sysctls at their default and not given are not listed
    assert "net.ipv4.tcp_rfc1337" not in header
    assert "5.9 s" in header or f"{data['run']['duration_s']:.1f} s" in header


def test_matrix_links_every_case_and_groups_families(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    matrix = report.split('id="matrix-table"', 1)[1].split("</table>", 1)[0]
    for case in data["cases"]:
        assert f'href="#{slug(case["id"])}"' in matrix, case["id"]
    # fin-handshake and unread-data have ipv4 and ipv6 cells on one row each
    assert matrix.count("<tr data-area=") == len(data["cases"]) - 2
    assert 'data-col="ipv4"' in matrix and 'data-col="ipv6"' in matrix
    assert 'class="cell o-failed"' in matrix


def test_each_case_has_a_section_with_verdict_ladder_and_tables(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    sections = dict(re.findall(r'<details class="case" id="([^"]+)"(.*?)(?=<details class="case"|<script>)', report,
                               re.S))
    assert len(sections) == len(data["cases"])
    fin = sections[slug("close/fin-handshake[ipv4]")]
    assert '<svg class="ladder"' in fin
    assert "TIME_WAIT · timewait 60s" in fin  # state change beside the client line
    assert "FA seq=101 ack=1 len=0" in fin  # arrow label
    assert "State timeline" in fin and "Syscalls" in fin
    assert "59.000 s … 60.000 s" in fin  # tolerance shown
    assert 'href="pcaps/close_fin-handshake_ipv4.pcap"' in fin and "file missing" not in fin
    # the failed case is open and shows its message and ss; passed cases do not show ss
    failed = sections[slug("linger/zero-timeout-rst[ipv4]")]
    assert failed.startswith(' data-area="linger" data-col="ipv4" data-o="failed" open>')
    assert "SO_LINGER was set after connect()" in failed
    assert report.count("FIN-WAIT-2 0      0") == 1 and "FIN-WAIT-2 0      0" in failed
    assert SS_TEXT.splitlines()[0] in failed
    skipped = sections[slug("timewait/reuse-port[ipv4]")]
    assert "needs kernel &gt;= 7.0" in skipped and "No pcap" in skipped and "<svg class=\"ladder\"" not in skipped


def test_long_ladders_are_capped_and_idle_gaps_compressed(report: str) -> None:
    bulk = report.split(f'id="{slug("close/bulk-then-close[ipv4]")}"', 1)[1].split('<details class="case"', 1)[0]
    svg = bulk.split("</svg>", 1)[0]
    assert svg.count('<line class="sg') == 60
    assert "events not drawn" in svg and "of 112 segments" in bulk
    orphan = report.split(f'id="{slug("orphan/fin-wait2-timeout[ipv4]")}"', 1)[1].split("</svg>", 1)[0]
    assert re.search(r"⋯ 1\.0\d\ds idle ⋯", orphan)


def test_claims_section_lists_quote_verdict_and_evidence(report: str) -> None:
    claims = report.split('id="claims"', 1)[1].split("</table>", 1)[0]
    assert "A stray RST cuts TIME_WAIT short" in claims and "v-confirmed" in claims
    assert "lets close() send a clean FIN" in claims and "v-contradicted" in claims
    assert "TIME_WAIT socket gone 20 µs" in claims
    assert claims.count("<blockquote>") == 2


def test_text_is_escaped(tmp_path: Path) -> None:
    data = make_run()
    case_by_id(data, "close/unread-data[ipv4]")["title"] = "<script>alert(1)</script>"
    html = render(write_run(tmp_path / "run", data)).read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_minimal_cases_render(tmp_path: Path) -> None:
    """Only id and outcome are required of a case; everything else gets a default."""
    data = {"schema": "sockconf/results/1", "run": {"id": "x"}, "cases": [{"id": "close/x", "outcome": "passed"}]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(data))
    html = render(run_dir).read_text()
    assert "close/x" in html and "All recorded sysctls are at their kernel defaults." in html
    assert "No case in this run checks a claim." in html


def test_junit_counts_failures_skips_and_carries_references(sample: tuple[Path, dict]) -> None:
    run_dir, data = sample
    render(run_dir)
    root = ET.parse(run_dir / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(data["cases"]))
    assert suite.get("failures") == "1" and suite.get("errors") == "0" and suite.get("skipped") == "2"
    props = {p.get("name"): p.get("value") for p in suite.iter("property") if p.get("name") == "kernel_release"}
    assert props == {"kernel_release": "6.18.44-fc-v657"}
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    unread = cases["close/unread-data[ipv4]"]
    refs = [p.get("value") for p in unread.iter("property") if p.get("name") == "reference"]
    assert "RFC 9293 §3.10.4 <https://www.rfc-editor.org/rfc/rfc9293#section-3.10.4>" in refs
    assert "net/ipv4/tcp.c __tcp_close()" in refs
    failure = cases["linger/zero-timeout-rst[ipv4]"].find("failure")
    assert failure is not None and failure.get("message") == "expected: client sends RST on close()"
    assert cases["shutdown/shut-wr-half-close[ipv4]"].find("skipped") is not None


@pytest.mark.parametrize("problem", ["missing", "corrupt", "schema", "outcome", "duplicate"])
def test_render_bad_input_is_one_line_and_exit_2(tmp_path: Path, problem: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    data = make_run()
    if problem != "missing":
        write_run(run_dir, data, pcaps=False)
    results = run_dir / "results.json"
    if problem == "corrupt":
        results.write_text(results.read_text()[:500])
    elif problem == "schema":
        results.write_text(json.dumps({**data, "schema": "sockconf/results/2"}))
    elif problem == "outcome":
        data["cases"][0]["outcome"] = "exploded"
        results.write_text(json.dumps(data))
    elif problem == "duplicate":
        data["cases"].append(data["cases"][0])
        results.write_text(json.dumps(data))
    assert main(["render", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reports: error: "), err
    with pytest.raises(ResultsError):
        load_run(run_dir)
    assert not (run_dir / "index.html").exists()
