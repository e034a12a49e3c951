"""The run report opened in a real headless browser: Debian's Chromium, driven by
Playwright (which never downloads a browser of its own). A run on the local backend with
a retried attempt is reported; the page must draw one bar per attempt, show the step
table, and fetch nothing from the network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import in_ci
from tests.runtime.test_run_report import RETRYING_FOREACH

CHROMIUM = "/usr/bin/chromium"
#: As the machine's notes advise: without the background-networking flags Chromium
#: keeps trying to reach Google's hosts, which this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> str | None:
    """Installs Debian's Chromium (root and apt-get needed); the reason when it cannot."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Chromium is missing and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, installed from Debian when missing (always in CI)."""
    if not Path(CHROMIUM).exists():
        problem = _install_chromium()
        if problem:
            if in_ci():
                pytest.fail(f"CI=true and Chromium cannot be installed: {problem}")
            pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_report_renders_every_attempt_and_fetches_nothing(browser: Any, tmp_path: Path) -> None:
    flow = tmp_path / "timed_flow.py"
    flow.write_text(RETRYING_FOREACH)
    env = {**os.environ, "BATCHWRIGHT_DATASTORE_ROOT": str(tmp_path / "store"), "NO_COLOR": "1"}
    run = subprocess.run(
        [sys.executable, str(flow), "run"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    page_file = tmp_path / "report.html"
    report = subprocess.run(
        [sys.executable, str(flow), "report", "-o", str(page_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_file.as_uri())
    page.wait_for_selector("#timeline .barlayer .point", state="attached")
    # 7 attempts (start, 3 work tasks + 1 retry, join, end): each has a waiting bar and a
    # running bar, drawn as SVG by Plotly.
    traces = page.evaluate(
        "Array.from(document.getElementById('timeline').data, t => [t.name, t.x.length])"
    )
    running = sum(n for name, n in traces if name.startswith("running"))
    assert running == 7
    assert dict(traces)["running, retried"] == 1
    assert page.locator("#timeline .barlayer .point").count() == 2 * 7
    rows = page.locator("#steps tbody tr")
    assert rows.count() == 4
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(4)] == [
        "start",
        "work",
        "join",
        "end",
    ]
    assert page.locator("#totals").inner_text().count("attempts\t7") == 1
    # Everything came from the file itself.
    assert requests == [page_file.as_uri()]
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page.close()
