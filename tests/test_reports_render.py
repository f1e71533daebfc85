"""`python -m reports render`: the self-contained HTML report and the JUnit XML (pure python, no root)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from reports_sample import (
    SS_TEXT,
    case_by_id,
    ended,
    external_resources,
    make_run,
    to_schema1,
    unbalanced_tags,
    write_run,
)

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


def section(report: str, case_id: str) -> str:
    """The HTML of one case's section."""
    return report.split(f'<details class="case" id="{slug(case_id)}"', 1)[1].split('<details class="case"', 1)[0]


def claims_html(report: str) -> str:
    return report.split('<h2 id="claims">', 1)[1].split('<h2 id="cases">', 1)[0]


LINGER = "linger/zero-timeout-rst[ipv4]"


def test_checked_list_shows_what_expected_seen_and_a_mark_per_check(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    for case_id in ("close/fin-handshake[ipv4]", "close/unread-data[ipv6]", LINGER):
        html = section(report, case_id)
        assert "<h3>Checked</h3>" in html
        table = html.split('<table class="checks">', 1)[1].split("</table>", 1)[0]
        rows = re.findall(r"<tr( class=\"[^\"]*\")?>(.*?)</tr>", table.split("<tbody>", 1)[1])
        checks = case_by_id(data, case_id)["checks"]
        assert len(rows) == len(checks) > 0
        for (cls, row), check in zip(rows, checks, strict=True):  # in the order the case checked them
            assert html_escape(check["what"]) in row
            assert f"<code>{html_escape(check['expected'])}</code>" in row
            assert f"<code>{html_escape(check['seen'])}</code>" in row
            assert ("✓" in row and cls == ' class="ok"') if check["ok"] else ("✗" in row and cls == ' class="bad"')
    linger = section(report, LINGER)
    # the failing check is highlighted, with its reason; the summary counts the failures
    bad = re.findall(r'<tr class="bad">(.*?)</tr>', linger)
    assert len(bad) == 2 and "client sends [R] within 0.250 s of close()" in bad[0]
    assert "why: SO_LINGER was set after connect()" in bad[0] and "[FA] seq 101 ack 1 at" in bad[0]
    assert "3 checks, <span class='bad'>2 failed</span>" in linger
    assert "2 of 3 checks failed" in linger.split("</summary>", 1)[0]
    assert "table.checks tr.bad td{background:" in report  # the highlight is styled
    fin = section(report, "close/fin-handshake[ipv4]")
    assert "6 checks, all passed" in fin and "✗" not in fin.split('<table class="checks">', 1)[1].split("</table>")[0]
    # allowed segments, with their reason, in the Checked section
    allowed = fin.split('<table class="allowed">', 1)[1].split("</table>", 1)[0]
    assert "<code" in allowed and "[FA] seq 1</code>" in allowed and "its FIN is not what this case checks" in allowed
    assert "<td>1</td>" in allowed  # matched once
    # the kernel expectations the case applied, with their version key and commit
    orphan = section(report, "orphan/fin-wait2-timeout[ipv4]")
    assert "a FIN to a gone orphan is answered with: <code>RST</code>" in orphan
    assert "from 5.8 (f0628c524fd1), and 5.4.251+ in 5.4.y" in orphan and "<code>f0628c524fd1</code>" in orphan
    # observations and the scenario
    unread = section(report, "close/unread-data[ipv4]")
    assert "<h3>Observed</h3>" in unread and "server sent RST, no FIN, on close()" in unread
    assert "<dt>scenario</dt>" in unread and "Measured values" in unread and "ECONNRESET" in unread


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_segment_table_marks_unexpected_and_injected_segments(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    linger = section(report, LINGER)
    # a case with an unexpected segment opens its segment table, and the row says so
    segs = linger.split('<details class="segments" open>', 1)[1].split("</details>", 1)[0]
    assert '<span class="tag unx">1 unexpected</span>' in segs.split("</summary>", 1)[0]
    unx = re.findall(r'<tr class="unx"><td>(\d+)</td>(.*?)</tr>', segs)
    assert [int(i) for i, _ in unx] == case_by_id(data, LINGER)["unexpected"] == [5]
    assert "FA seq=101 ack=1 len=0" in unx[0][1] and "✗ unexpected" in unx[0][1]
    # an injected frame is said to be the harness's, not a kernel's; the table stays folded without unexpected
    rst = section(report, "timewait/rst-assassination[ipv4]")
    assert '<details class="segments">' in rst
    crafted = re.findall(r'<tr class="crafted">(.*?)</tr>', rst)
    assert len(crafted) == 1 and "injected by the harness" in crafted[0] and "<td>peer</td>" in crafted[0]
    assert 'class="sg k-r crafted o-injected"' in rst  # and the ladder draws it so


def test_claims_section_joins_each_claim_to_its_evidence(report: str, sample: tuple[Path, dict]) -> None:
    _, data = sample
    claims = claims_html(report)
    blocks = re.findall(r'<div class="claim (v-\w+)" id="(claim-[^"]+)">(.*?)</div>', claims, re.S)
    assert [(cls, anchor) for cls, anchor, _ in blocks] == [
        ("v-confirmed", "claim-timewait-rst-assassination"), ("v-contradicted", "claim-shut-rd-clean-fin"),
        ("v-undecided", "claim-reuseport-timewait-takeover")]
    by_id = {anchor: html for _, anchor, html in blocks}
    for claim in data["claims"]:
        html = by_id[f"claim-{claim['id']}"]
        assert f"<blockquote>{html_escape(claim['quote'])}</blockquote>" in html
        assert html_escape(claim["asserts"]) in html  # what it asserts in testable terms
        assert f'<span class="badge v-{claim["verdict"]}">{claim["verdict"]}</span>' in html
        for ev in claim["evidence"]:  # each deciding case: linked, with its outcome in this run
            case = case_by_id(data, ev["case"])
            assert f'<a href="#{slug(ev["case"])}">{html_escape(ev["case"])}</a>' in html
            assert f'<span class="badge o-{case["outcome"]}">' in html
    confirmed = by_id["claim-timewait-rst-assassination"]
    # the evidence has no text of its own: the deciding case's observation text is shown
    assert "TIME_WAIT socket gone 20 µs after the injected RST" in confirmed
    assert '<span class="badge v-confirmed">confirms</span>' in confirmed
    assert "RST sent by the server 1 ms after close(); no FIN seen." in by_id["claim-shut-rd-clean-fin"]
    assert '<span class="badge v-contradicted">contradicts</span>' in by_id["claim-shut-rd-clean-fin"]
    undecided = by_id["claim-reuseport-timewait-takeover"]
    assert "o-skipped" in undecided and "decides nothing" in undecided and "not observed" in undecided
    assert "the deciding case was skipped on this kernel" in undecided
    assert ".v-undecided{" in report  # styled, neutral
    assert "1 confirmed, 1 contradicted, 1 undecided" in claims
    # and back: the case links to the claim it decides
    rst = section(report, "timewait/rst-assassination[ipv4]")
    assert 'href="#claim-timewait-rst-assassination"' in rst and "Evidence for the article" in rst


def test_claim_evidence_for_a_case_not_in_the_run_is_not_linked(tmp_path: Path) -> None:
    data = make_run()
    data["claims"][0]["evidence"].append({"case": "timewait/gone[ipv4]", "outcome": "passed", "value": "x",
                                          "verdict": True, "text": "seen elsewhere"})
    data["claims"].append({"quote": "No evidence at all."})  # every other field defaults
    html = claims_html(render(write_run(tmp_path / "run", data)).read_text())
    assert "<code>timewait/gone[ipv4]</code> <span class=\"muted\">(not in this run)</span>" in html
    assert 'href="#c-timewait-gone-ipv4"' not in html and "seen elsewhere" in html
    assert 'id="claim-4"' in html and "No case in this run decides this claim." in html


def test_schema1_file_still_renders(tmp_path: Path) -> None:
    data = to_schema1(make_run())
    assert data["schema"] == "sockconf/results/1" and "claims" not in data
    report = render(write_run(tmp_path / "run", data)).read_text()
    assert external_resources(report) == [] and unbalanced_tags(report) == []
    # the claims section comes from the cases' own claim fields, as before
    claims = report.split('id="claims"', 1)[1].split("</table>", 1)[0]
    assert "A stray RST cuts TIME_WAIT short" in claims and "v-confirmed" in claims
    assert "lets close() send a clean FIN" in claims and "v-contradicted" in claims
    assert "TIME_WAIT socket gone 20 µs" in claims
    assert claims.count("<blockquote>") == 2
    unread = section(report, "close/unread-data[ipv4]")
    assert "expectation applied: <code>from 0: RST</code>" in unread
    assert "<h3>Checked</h3>" not in unread and "crafted" not in unread and "unexpected" not in unread
    assert '<svg class="ladder"' in unread
    run = load_run(tmp_path / "run")
    case = run.case_map()["close/unread-data[ipv4]"]
    assert case["checks"] == [] and case["unexpected"] == [] and case["observations"] == {}
    assert {s["origin"] for s in case["segments"]} == {"kernel"} and run.data["claims"] is None


def test_text_is_escaped(tmp_path: Path) -> None:
    data = make_run()
    case_by_id(data, "close/unread-data[ipv4]")["title"] = "<script>alert(1)</script>"
    html = render(write_run(tmp_path / "run", data)).read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("schema", ["sockconf/results/1", "sockconf/results/2"])
def test_minimal_cases_render(tmp_path: Path, schema: str) -> None:
    """Only id and outcome are required of a case; everything else gets a default."""
    data = {"schema": schema, "run": {"id": "x"}, "cases": [{"id": "close/x", "outcome": "passed"}]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(data))
    html = render(run_dir).read_text()
    assert "close/x" in html and "All recorded sysctls are at their kernel defaults." in html
    assert "No case in this run checks a claim." in html


def test_schema2_items_get_defaults(tmp_path: Path) -> None:
    data = {"schema": "sockconf/results/2", "run": {"id": "x"}, "claims": [{"evidence": [{"case": "close/x"}]}],
            "cases": [{"id": "close/x", "outcome": "failed", "checks": [{"what": "something", "ok": False}],
                       "allowed": [{"pattern": "[A]"}], "segments": [{"t": 0.1, "sender": "client", "flags": "S"}],
                       "unexpected": [0]}]}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(data))
    run = load_run(run_dir)
    case = run.cases[0]
    assert case["checks"][0] == {"kind": "", "what": "something", "expected": "", "seen": "", "ok": False, "t": None,
                                 "why": "", "params": {}}
    assert case["allowed"][0]["count"] is None and case["segments"][0]["origin"] == "kernel"
    assert run.data["claims"][0]["verdict"] == "undecided" and run.data["claims"][0]["id"] == "1"
    html = render(run_dir).read_text()
    assert "something" in html and '<tr class="bad">' in html and '<tr class="unx">' in html


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
    # the failure text ends with the case's checks: how many, and each failed one
    text = failure.text or ""
    assert text.startswith("expected: client sends RST on close()") and "\n\nchecks: 3, 2 failed\n" in text
    assert ("✗ client sends [R] within 0.250 s of close(): expected [R] from client, seen [FA] seq 101 ack 1 at"
            in text and "(why: SO_LINGER was set after connect(); check setsockopt order)" in text)
    linger_props = {p.get("name"): p.get("value") for p in cases["linger/zero-timeout-rst[ipv4]"].iter("property")}
    assert linger_props["checks"] == "3" and linger_props["kernel_expectation"] == (
        "close() with SO_LINGER {1, 0} sends: RST (from 0)")
    assert cases["shutdown/shut-wr-half-close[ipv4]"].find("skipped") is not None


@pytest.mark.parametrize("problem", ["missing", "corrupt", "schema", "outcome", "duplicate", "unexpected", "claims"])
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
        results.write_text(json.dumps({**data, "schema": "sockconf/results/3"}))
    elif problem == "outcome":
        data["cases"][0]["outcome"] = "exploded"
        results.write_text(json.dumps(data))
    elif problem == "duplicate":
        data["cases"].append(data["cases"][0])
        results.write_text(json.dumps(data))
    elif problem == "unexpected":
        data["cases"][0]["unexpected"] = [99]  # not the index of a segment
        results.write_text(json.dumps(data))
    elif problem == "claims":
        data["claims"] = {"not": "a list"}
        results.write_text(json.dumps(data))
    assert main(["render", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("reports: error: "), err
    with pytest.raises(ResultsError):
        load_run(run_dir)
    assert not (run_dir / "index.html").exists()


def test_old_results_default_to_a_complete_run(tmp_path: Path) -> None:
    data = make_run()
    for key in ("status", "selected", "finished", "lost"):
        assert key not in data["run"]
    run = load_run(write_run(tmp_path / "run", data))
    assert (run.status, run.selected, run.finished, run.lost, run.complete) == ("complete", 11, 11, [], True)
    old = load_run(write_run(tmp_path / "old", to_schema1(data)))
    assert old.status == "complete" and old.finished == 11


def test_header_says_how_the_run_ended(tmp_path: Path) -> None:
    complete = render(write_run(tmp_path / "a", make_run())).read_text()
    header = complete.split("</header>", 1)[0]
    assert "<dt>run status</dt><dd>complete: all 11 selected cases finished</dd>" in header
    assert 'class="runstatus' not in header and "<title>sockconf — default</title>" in complete

    interrupted = render(write_run(tmp_path / "b", ended(make_run(), 6))).read_text()
    header = interrupted.split("</header>", 1)[0]
    assert '<p class="st-line">INTERRUPTED by SIGINT after 6 of 11 selected cases</p>' in header
    assert 'class="runstatus st-interrupted"' in header
    assert "<title>sockconf — default (INTERRUPTED)</title>" in interrupted
    assert "the others are not in this report" in header

    lost = [{"case": "close/unread-data[ipv6]", "reason": "truncated JSON at line 3",
             "file": "cases/close_unread-data_ipv6.json"}]
    killed = render(write_run(tmp_path / "c", ended(make_run(), 9, status="incomplete", signal=None, lost=lost)))
    header = killed.read_text().split("</header>", 1)[0]
    assert ('<p class="st-line">INCOMPLETE: rebuilt after the run was killed; 9 of 11 cases finished; 1 case&#x27;s '
            "evidence was lost (truncated)</p>") in header
    assert "<td><code>close/unread-data[ipv6]</code></td>" in header and "truncated JSON at line 3" in header

    no_signal = ended(make_run(), 3, signal=None)
    assert "INTERRUPTED after 3 of 11 selected cases" in render(write_run(tmp_path / "d", no_signal)).read_text()


def test_a_complete_run_that_lost_evidence_says_so(tmp_path: Path) -> None:
    data = ended(make_run(), 11, status="complete", signal=None,
                 lost=[{"case": "close/x[ipv4]", "reason": "cannot write cases/close_x_ipv4.json: disk full"}])
    header = render(write_run(tmp_path / "run", data)).read_text().split("</header>", 1)[0]
    assert ("complete: all 11 selected cases finished; 1 case&#x27;s evidence was lost (not written)"
            in header) and 'class="runstatus st-complete"' in header


def test_junit_carries_the_run_status_and_an_error_per_lost_case(tmp_path: Path) -> None:
    lost = [{"case": "close/unread-data[ipv6]", "reason": "truncated JSON at line 3",
             "file": "cases/close_unread-data_ipv6.json"}, {"case": "close_x.tmp", "reason": "left-over .tmp"}]
    run_dir = write_run(tmp_path / "run", ended(make_run(), 8, lost=lost))
    render(run_dir)
    suite = ET.parse(run_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (props["run_status"], props["selected"], props["finished"], props["signal"], props["lost"]) == (
        "interrupted", "11", "8", "SIGINT", "2")
    # 8 cases + one for the run status + one per lost case; those are errors
    assert suite.get("tests") == "11" and suite.get("errors") == "3"
    cases = {(tc.get("classname"), tc.get("name")): tc for tc in suite.findall("testcase")}
    status_error = cases[("sockconf.run", "run status")].find("error")
    assert status_error is not None
    assert status_error.get("message") == ("INTERRUPTED by SIGINT after 8 of 11 selected cases; 2 cases' evidence was "
                                           "lost (1 truncated, 1 never renamed into place)")
    error = cases[("sockconf.lost", "close/unread-data[ipv6]")].find("error")
    assert error is not None and error.get("message") == "evidence lost: truncated JSON at line 3"
    assert error.text == "cases/close_unread-data_ipv6.json: truncated JSON at line 3"
    assert cases[("sockconf.lost", "close_x.tmp")].find("error") is not None
    complete_dir = write_run(tmp_path / "complete", make_run())
    render(complete_dir)
    suite = ET.parse(complete_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "0"
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["run_status"] == "complete"
    assert all(tc.get("classname") not in ("sockconf.run", "sockconf.lost") for tc in suite.findall("testcase"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("status", "exploded", "run.status 'exploded' is not one of complete, interrupted, incomplete, running"),
    ("selected", -1, "run.selected must be a count of cases"),
    ("finished", "8", "run.finished must be a count of cases"),
    ("lost", {"a": 1}, "run.lost must be a list"),
])
def test_bad_run_status_fields_are_refused(tmp_path: Path, field: str, value: object, message: str) -> None:
    data = make_run()
    data["run"][field] = value
    with pytest.raises(ResultsError, match=re.escape(message)):
        load_run(write_run(tmp_path / "run", data, pcaps=False))


def test_a_duration_measured_as_a_span_shows_the_span_and_draws_it() -> None:
    from reports.html import durations_table, tolerance_bar

    span = {"name": "orphaned FIN_WAIT2 lifetime", "measured_s": 0.0575, "measured_low_s": 0.005,
            "measured_high_s": 0.11, "expected_s": 0.0, "low_s": 0.0, "high_s": 0.078, "ok": True,
            "source": "sock_diag"}
    table = durations_table({"durations": [span]})
    assert '<span class="num">0.005 … 0.110 s</span>' in table and "within" in table
    assert 'class="span ok"' in tolerance_bar(span)
    exact = span | {"measured_s": 0.0571, "measured_low_s": 0.0571, "measured_high_s": 0.0571}
    assert '<span class="num">0.057 s</span>' in durations_table({"durations": [exact]})
    older = {k: v for k, v in exact.items() if k not in ("measured_low_s", "measured_high_s")}
    assert '<span class="num">0.057 s</span>' in durations_table({"durations": [older]}), "a file before spans"
