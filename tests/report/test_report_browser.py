"""The HTML report in a real headless browser: it loads with no network and draws the Sankey.

Chromium from Debian's packages (``apt-get install chromium``; ``make test``
installs it). A missing browser fails the test, it is never skipped. The
test drives the browser over the DevTools protocol (:mod:`.cdp`) and sees
every request the page makes: the page itself is the only one allowed (a CDN
script, a font or a map tile would be a request to the network). Host
resolution is also switched off, so the page cannot lean on a network the
test machine happens to have. The screenshot is kept in
``out/test-artifacts/report.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.report import Aggregator, render

from .cdp import Browser
from .test_report_aggregate import AUDIT, EVENTS

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "out" / "test-artifacts"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium: install Debian's chromium package (make browser)")


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    agg = Aggregator(customer="cA")
    agg.add_audit_records(AUDIT)
    agg.add_touchpoint_records(EVENTS)
    return agg.result()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(
        chromium(),
        "--no-sandbox",  # the tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
        f"--user-data-dir={tmp_path / 'profile'}",  # a fresh profile, whatever HOME is
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1400,1000",
    )
    try:
        b.open_page()
        yield b
    finally:
        b.close()


NODES = "document.querySelectorAll('g.sankey-node').length"
LABELS = "Array.from(document.querySelectorAll('g.sankey-node text.node-label')).map(t => t.textContent)"


def test_the_page_loads_offline_and_draws_every_sankey(data: dict[str, Any], browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render.to_html(data), encoding="utf-8")
    browser.send("Page.navigate", {"url": page.as_uri()})
    sankey = data["sankey"]
    expected = (
        len(sankey["all"]["nodes"])
        + sum(len(s["nodes"]) for s in sankey["topologies"].values())
        + len(data["customer"]["sankey"]["nodes"])
    )
    assert expected > 0
    browser.wait_for(f"{NODES} >= {expected}")
    labels = set(browser.evaluate(LABELS))
    for label in ("activation_failed · app", "goal reached · treated", "holdout_topology", "nudge"):
        assert label in labels
    assert browser.evaluate("document.getElementById('timeline') !== null")
    assert browser.evaluate("document.getElementById('uplift').rows.length") == 1 + len(data["topologies"])
    browser.pump(0.5)  # anything the page still asks for after drawing
    assert browser.requests() == [page.as_uri()]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.write_bytes(browser.screenshot())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # more than a blank page


def test_the_test_sees_a_page_that_asks_the_network(browser: Browser, tmp_path: Path) -> None:
    # The check above cannot pass by not looking: a page with a CDN script shows its request.
    page = tmp_path / "cdn.html"
    page.write_text("<html><head><script src='https://cdn.example.invalid/plotly.js'></script></head></html>")
    browser.send("Page.navigate", {"url": page.as_uri()})
    browser.wait_for("document.readyState === 'complete'")
    assert "https://cdn.example.invalid/plotly.js" in browser.requests()
