"""Browser test: Chromium (Playwright) drives the dashboard of a running demo service.

The service is started in a subprocess on a free port with a temp data dir and a small, fast
demo config. The page must draw the charts, list anomalies, send feedback with the token
kept in sessionStorage, and the feedback must be stored (checked through the API).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .amkit import free_port

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-token-0123"
CONFIG = """
service:
  data_dir: {data}
jobs:
  - name: demo
    interval: 5m
    lookback: 1d
    source: {{type: demo, clusters: 3, days: 3, future_days: 1, speedup: 60}}
    model:
      history: 2d
      threshold: {{method: contamination, contamination: 0.03}}
"""


@pytest.fixture()
def service(tmp_path: Path, test_output: Path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} not found")
        pytest.skip(f"{CHROMIUM} not found")
    cfg = tmp_path / "service.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    port = free_port()
    log = (test_output / "service.log").open("wb")
    env = {**os.environ, "AWS_ANOMALY__SERVICE__TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "aws_anomaly", "serve", "--config", str(cfg),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"service exited ({proc.returncode}); see {log.name}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200 and httpx.get(
                        f"{base}/v1/anomalies", timeout=2).json()["items"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("service not ready with anomalies in time")
            time.sleep(0.25)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_dashboard_charts_anomalies_and_feedback(service: str, test_output: Path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto(f"{service}/#token={TOKEN}")
            # The token moved from the URL into sessionStorage.
            expect(page.locator("#token-state")).to_have_text("saved for this tab")
            assert "token" not in page.url
            # Charts: one per metric plus the anomaly score with its threshold line.
            expect(page.locator(".chart-box svg")).to_have_count(4, timeout=30_000)
            expect(page.locator(".chart-box.score line.threshold")).to_have_count(1)
            assert page.locator(".chart-box path.series").count() == 4
            expect(page.locator("#ready")).to_have_text("ready", timeout=15_000)
            # Entities with status and anomalies with explanations.
            expect(page.locator("#entity-list li")).to_have_count(3)
            rows = page.locator("#anomaly-body tr[data-event-id]")
            expect(rows.first).to_be_visible(timeout=15_000)
            assert page.locator(".contrib-row").count() > 0
            assert "driven by" in rows.first.locator(".explain").inner_text()
            # Shaded anomalies on the chart of an entity with anomalies.
            event_id = rows.first.get_attribute("data-event-id")
            rows.first.locator(".entity-cell a").click()
            expect(page.locator(".chart-box.score rect.shade").first).to_be_attached(
                timeout=10_000)
            # Feedback from the page, then read back through the API.
            rows.first.get_by_role("button", name="False alarm").click()
            expect(page.locator("#banner")).to_contain_text("Feedback saved", timeout=10_000)
            got = httpx.get(f"{service}/v1/anomalies/{event_id}", timeout=5).json()
            assert got["feedback"] == "false_positive"
            assert got["feedback_history"][-1]["note"] == "from the dashboard"
            expect(page.locator(f'tr[data-event-id="{event_id}"] .verdict')).to_have_text(
                "✗ false positive", timeout=10_000)
            expect(page.locator("#precision")).to_contain_text("reviewed", timeout=10_000)
            page.wait_for_timeout(500)
            shot = test_output / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            assert not errors, errors
            assert all(u.startswith(service) or u.startswith("data:") for u in requests), [
                u for u in requests if not u.startswith(service)]
        finally:
            browser.close()
    shutil.copy(shot, test_output / "dashboard-latest.png")
