"""Browser tests: Chromium (Playwright) drives the dashboard of a running demo service, and
opens an evaluation report from disk.

The service is started in a subprocess on a free port with a temp data dir and a small, fast
demo config. The dashboard must draw each metric with the model's expected band and the score
with its 1.0 threshold, state the time zone on the axes (UTC by default, local on request),
follow a deep link (``?entity=X&anomaly=ID``) to that entity zoomed to that anomaly, zoom by
preset, by dragging and back by double-click (the URL follows), explain feedback without a
token and with a rejected one, and store it with the right one (checked through the API).
The report page must render its inlined charts offline without a script error.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from .servekit import serving_until_anomalies

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
OUT = REPO / "test-output" / "test_dashboard"
CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-token-0123"
METRICS = ("cluster_cpu_request_ratio", "cluster_mem_request_ratio", "cluster_pod_ratio")
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
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} not found")
        pytest.skip(f"{CHROMIUM} not found")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    _need_chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    # Which demo hours the first minutes replay depends on the time of day (the replay starts
    # a day before the wall clock): wait up to five hours of data for the first flagged point.
    with serving_until_anomalies(CONFIG, tmp_path_factory.mktemp("dashboard"), OUT / "service.log",
                                 TOKEN, timeout_s=300) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def test_dashboard_band_time_zone_zoom_and_deep_link(service: str, browser) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1440, "height": 1300},
                              timezone_id="Europe/Berlin")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(f"{service}/")
    # One chart per metric plus the score; every metric with the model's expected band.
    charts = page.locator(".chart-box")
    expect(charts).to_have_count(4, timeout=30_000)
    for m in METRICS:
        expect(page.locator(f'.chart-box[data-metric="{m}"]')).to_have_attribute(
            "data-band", "drawn", timeout=10_000)
        assert int(page.locator(f'.chart-box[data-metric="{m}"]')
                   .get_attribute("data-band-points")) > 50
    expect(page.locator(".chart-box.score")).to_have_attribute("data-threshold", "1")
    assert page.locator(".chart-box canvas").count() == 4
    # Time zone stated on every time axis: UTC by default, local (named) after the toggle.
    # (uPlot draws axis labels on the canvas; the chart box carries the same text.)
    expect(page.locator('.chart-box[data-time-axis="time (UTC)"]')).to_have_count(4)
    page.locator('#tz button[data-tz="local"]').click()
    expect(page.locator(
        '.chart-box[data-time-axis="time (local: Europe/Berlin, UTC+01:00)"]')).to_have_count(4)
    assert _query(page.url)["tz"] == ["local"]
    expect(page.locator("#start-head")).to_have_text("Start (local)")
    page.locator('#tz button[data-tz="UTC"]').click()
    expect(page.locator('.chart-box[data-time-axis="time (UTC)"]')).to_have_count(4)
    assert "tz" not in _query(page.url)

    # Presets: the last hour of the entity's points; "all" resets.
    score = page.locator(".chart-box.score")
    page.locator('#range button[data-range="1h"]').click()
    expect(page.locator('#range button[data-range="1h"]')).to_have_class("btn small on")
    span = float(score.get_attribute("data-to")) - float(score.get_attribute("data-from"))
    assert span == pytest.approx(3600)
    assert _query(page.url)["range"] == ["1h"]
    page.locator('#range button[data-range="all"]').click()
    full = float(score.get_attribute("data-to")) - float(score.get_attribute("data-from"))
    assert full > 12 * 3600
    # Drag across a chart to zoom: every chart follows, the URL carries the window.
    over = page.locator('.chart-box[data-metric="cluster_pod_ratio"] .u-over')
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=8)
    page.mouse.up()
    zoomed = float(score.get_attribute("data-to")) - float(score.get_attribute("data-from"))
    assert 0.1 * full < zoomed < 0.3 * full
    first = page.locator('.chart-box[data-metric="cluster_cpu_request_ratio"]')
    assert first.get_attribute("data-from") == score.get_attribute("data-from")
    q = _query(page.url)
    assert abs(_epoch(q["from"][0]) - float(score.get_attribute("data-from"))) < 1
    # Double-click resets to everything loaded.
    over.dblclick()
    page.wait_for_function("!new URLSearchParams(location.search).has('from')")
    # (a new point may have arrived meanwhile: one 5-minute step every 5 s at speedup 60)
    reset = float(score.get_attribute("data-to")) - float(score.get_attribute("data-from"))
    assert full <= reset <= full + 3 * 300

    # A deep link as alerts carry it: the entity is selected and the charts zoom to the event.
    default = page.locator(".entity.active").get_attribute("data-entity")
    events = httpx.get(f"{service}/v1/anomalies", params={"limit": 200}, timeout=5).json()
    others = [e for e in events["items"] if e["entity"] != default]
    ev = (others or events["items"])[0]
    page.goto(f"{service}/?entity={ev['entity']}&anomaly={ev['event_id']}")
    expect(page.locator(".entity.active")).to_have_attribute("data-entity", ev["entity"],
                                                            timeout=20_000)
    expect(page.locator("#chart-title")).to_contain_text(ev["entity"])
    start, end = _epoch(ev["start"]), _epoch(ev["end"])
    pad = max(end - start, 3600)
    expect(score).to_have_attribute("data-from", str(int(start - pad)), timeout=20_000)
    assert float(score.get_attribute("data-to")) == pytest.approx(end + pad)
    expect(page.locator("#banner")).to_contain_text(f"Showing anomaly {ev['event_id']}")
    expect(page.locator(f'tr.focused[data-event-id="{ev["event_id"]}"]')).to_have_count(1)
    q = _query(page.url)
    assert q["entity"] == [ev["entity"]] and q["anomaly"] == [ev["event_id"]]
    for m in METRICS:  # the band is there around the anomaly too
        expect(page.locator(f'.chart-box[data-metric="{m}"]')).to_have_attribute(
            "data-band", "drawn")
    # each top metric says where it was against its band, in the API's numbers
    row = page.locator(f'tr[data-event-id="{ev["event_id"]}"] .contrib-val').first
    top = ev["top_metrics"][0]
    want = ("in band" if abs(top["deviation"]) <= 1 else
            f"{abs(top['deviation']):.1f}× band {'above' if top['deviation'] > 0 else 'below'}")
    expect(row).to_contain_text(want)
    page.wait_for_timeout(400)
    OUT.mkdir(parents=True, exist_ok=True)
    shot = OUT / "dashboard-deep-link.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    # A bad link says what it ignored.
    page.goto(f"{service}/?entity={ev['entity']}&from=yesterday&to=now")
    expect(page.locator("#banner")).to_contain_text("Ignored in the link: from=yesterday")
    assert not errors, errors
    assert all(u.startswith(service) or u.startswith("data:") for u in requests), [
        u for u in requests if not u.startswith(service)]
    ctx.close()


def test_feedback_explains_missing_and_rejected_tokens(service: str, browser) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{service}/")
    expect(page.locator("#token-state")).to_have_text("not set: feedback is off")
    rows = page.locator("#anomaly-body tr[data-event-id]")
    expect(rows.first).to_be_visible(timeout=30_000)
    event_id = rows.first.get_attribute("data-event-id")
    row = page.locator(f'tr[data-event-id="{event_id}"]')
    # No token: nothing is sent, the page says why and where the token goes.
    row.get_by_role("button", name="False alarm").click()
    expect(page.locator("#banner")).to_contain_text("Feedback needs the API token")
    expect(page.locator("#banner")).to_contain_text("API token field at the top right")
    expect(row.locator(".fb-msg")).to_have_text("Not sent: no API token set (see above).")
    assert httpx.get(f"{service}/v1/anomalies/{event_id}", timeout=5).json()["feedback"] is None
    # A wrong token: the service's refusal is explained.
    page.locator("#token").fill("not-the-token")
    page.locator("#token-form button").click()
    expect(page.locator("#token-state")).to_have_text("saved for this tab")
    row.get_by_role("button", name="False alarm").click()
    expect(page.locator("#banner")).to_contain_text("the service rejected the API token (403")
    expect(row.locator(".fb-msg")).to_have_text("Not sent: token rejected.")
    assert httpx.get(f"{service}/v1/anomalies/{event_id}", timeout=5).json()["feedback"] is None
    # The right token (kept in sessionStorage, not in the URL): saved, confirmed, stored.
    page.locator("#token").fill(TOKEN)
    page.locator("#token-form button").click()
    assert page.evaluate("sessionStorage.getItem('aws-anomaly-token')") == TOKEN
    assert TOKEN not in page.url
    row.get_by_role("button", name="False alarm").click()
    expect(page.locator("#banner")).to_contain_text("Feedback saved: marked as a false alarm",
                                                    timeout=10_000)
    expect(row.locator(".fb-msg")).to_have_text("Saved: false alarm.")
    got = httpx.get(f"{service}/v1/anomalies/{event_id}", timeout=5).json()
    assert got["feedback"] == "false_positive"
    assert got["feedback_history"][-1]["note"] == "from the dashboard"
    expect(row.locator(".verdict")).to_have_text("✗ false positive", timeout=10_000)
    expect(page.locator("#precision")).to_contain_text("reviewed", timeout=10_000)
    # The banner outlives the next poll (status updates do not hide it).
    page.wait_for_timeout(3500)
    expect(page.locator("#banner")).to_contain_text("Feedback saved")
    # The token printed by `serve` as "#token=..." moves into sessionStorage, whether the link
    # opens a new page or is pasted into this one.
    fresh = ctx.new_page()
    fresh.goto(f"{service}/#token=from-a-link")
    expect(fresh.locator("#token-state")).to_have_text("saved for this tab")
    assert fresh.evaluate("sessionStorage.getItem('aws-anomaly-token')") == "from-a-link"
    assert "token" not in fresh.url
    page.goto(f"{service}/#token=pasted-here")
    page.wait_for_function("sessionStorage.getItem('aws-anomaly-token') === 'pasted-here'")
    expect(page.locator("#token")).to_have_value("pasted-here")
    assert "token" not in page.url
    assert not errors, errors
    ctx.close()


def test_report_renders_offline(browser, tmp_path: Path) -> None:
    """The evaluation report opens from disk with JavaScript but no network: every chart is
    drawn, with the band, the PR and ROC curves, and no script error."""
    import pandas as pd
    from playwright.sync_api import expect

    from aws_anomaly.data.generator import generate_demo
    from aws_anomaly.evaluation.metrics import evaluate_flags
    from aws_anomaly.evaluation.report import flag_summary, write_report
    from aws_anomaly.evaluation.split import chronological_split, concat
    from aws_anomaly.model import AnomalyModel

    ds, _ = generate_demo(clusters=2, days=5, seed=3)
    split = chronological_split(ds)
    model = AnomalyModel("knn", calibration="fpr:0.02").fit(split.train, split.validation)
    metrics, scores = {}, {}
    for name, part, history in (("validation", split.validation, split.train),
                                ("test", split.test, concat([split.train, split.validation]))):
        s = model.score(part, history=history)
        scores[name] = s
        metrics[name] = {**flag_summary(s, part.step),
                         **evaluate_flags(part.frame, s["is_anomaly"].to_numpy())}
    frames = pd.concat([split.validation.frame, split.test.frame], ignore_index=True)
    _, hpath = write_report(tmp_path, metrics=metrics, scores=scores, data=frames,
                            metric_names=list(model.metrics_), model=model)
    ctx = browser.new_context(viewport={"width": 1300, "height": 1000}, offline=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(hpath.as_uri())
    expect(page.locator("body")).to_have_attribute("data-rendered", "true", timeout=10_000)
    per_entity = len(model.metrics_) + 1
    expect(page.locator(".entity-charts .chart-box canvas")).to_have_count(2 * per_entity)
    for m in model.metrics_:
        expect(page.locator(f'.chart-box[data-metric="{m}"][data-band="drawn"]')).to_have_count(2)
    expect(page.locator('.chart-box[data-time-axis="time (UTC)"]')).to_have_count(2 * per_entity)
    labelled = [n for n in ("validation", "test") if metrics[n].get("n_anomalous")]
    expect(page.locator(".curve canvas")).to_have_count(2 * len(labelled))
    page.screenshot(path=str(OUT / "report.png"), full_page=False)
    shutil.copy(hpath, OUT / "report.html")
    assert not errors, errors
    ctx.close()
