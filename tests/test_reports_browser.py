"""The rendered report in a real browser: Debian's headless Chromium driven by playwright.

Needs /usr/bin/chromium (never downloads a browser).  Saves a screenshot as index.png beside the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reports_sample import make_run, write_run

from reports.__main__ import render

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def test_report_draws_filters_and_has_no_console_errors(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    index = render(write_run(tmp_path / "run", make_run()))
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(index.as_uri())
            page.wait_for_load_state("load")

            matrix = page.locator("#matrix-table")
            box = matrix.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 200
            rows = page.locator("#matrix-table tbody tr")
            assert rows.count() == 9

            # the failed case is open, so its ladder is drawn; check its arrows too
            ladder = page.locator("#c-linger-zero-timeout-rst-ipv4 svg.ladder")
            lbox = ladder.bounding_box()
            assert lbox and lbox["width"] > 400 and lbox["height"] > 300
            arrow = ladder.locator("line.sg").first.bounding_box()
            assert arrow and arrow["width"] > 100
            # arrow heads resolve to the page's shared markers
            assert page.evaluate(
                "getComputedStyle(document.querySelector('line.sg.k-s')).markerEnd") == 'url("#ah-s")'

            page.screenshot(path=str(index.with_name("index.png")), full_page=True)

            # "failed only" hides passed rows and passed case sections
            page.check("#f-failed")
            visible = [r for r in rows.all() if r.is_visible()]
            assert len(visible) == 1 and "linger" in visible[0].inner_text()
            assert page.locator("details.case:visible").count() == 1
            assert "1 of 9 rows shown" in page.inner_text("#f-count")
            page.uncheck("#f-failed")
            assert len([r for r in rows.all() if r.is_visible()]) == 9

            # area and family filters
            page.select_option("#f-area", "close")
            assert len([r for r in rows.all() if r.is_visible()]) == 3
            page.select_option("#f-family", "ipv6")
            assert len([r for r in rows.all() if r.is_visible()]) == 2
            assert not page.locator('#matrix-table th[data-col="ipv4"]').is_visible()
            page.select_option("#f-area", "")
            page.select_option("#f-family", "")

            # clicking a matrix cell opens that case
            page.click('#matrix-table a[href="#c-orphan-fin-wait2-timeout-ipv4"]')
            assert page.locator("#c-orphan-fin-wait2-timeout-ipv4 svg.ladder").is_visible()

            # printing opens every case
            page.emulate_media(media="print")
            page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
            assert page.locator("details.case:not([open])").count() == 0
            assert not page.locator(".filters").is_visible()
        finally:
            browser.close()
    assert problems == []
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert index.with_name("index.png").stat().st_size > 20_000
