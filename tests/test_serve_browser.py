"""The web page in a real browser (Debian's chromium driven by Playwright): the job list
and a job page follow a running job live, graphs gain points, user text is escaped, Korean
renders. Screenshots of both pages go to ``test-artifacts/``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import trainwire
from _serve import publish_raw, serve_factory_fixture  # noqa: F401

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOSTILE = '<img src=x onerror="window.__pwned=1"> 학습 이미지 크기가 맞지 않습니다 & <b>bold</b>'


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, errors: list[str]):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ko-KR")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _points(page, file: str) -> int:
    value = page.get_attribute(f'.chart[data-file="{file}"]', "data-points")
    return int(value or 0)


def test_pages_follow_a_running_job_live_and_escape_user_text(
    browser, serve_factory, broker, queue, make_config, tmp_path
):
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    config = make_config(model_id="모델-live-1")
    (jobs_dir / "live.json").write_text(config.read_text())
    failing = make_config(model_id="model-broken", model_write_path=str(tmp_path / "broken"))
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--jobs", str(jobs_dir))

    # A finished job whose error message tries to inject markup.
    bad = trainwire.init(failing, total_steps=10, max_rate=None)
    bad.progress(4)
    bad.fail(HOSTILE)
    server.wait_job("model-broken", state="error")

    # The live job: progress and two graphs, one with hostile names written by hand.
    run = trainwire.init(config, total_steps=20, max_rate=None)
    for step in range(1, 4):
        run.progress(step)
        run.log("loss", step, train=1.0 / step, val=1.2 / step)
    metrics = Path(json.loads(config.read_text())["model_write_path"]) / "save" / "metrics"
    hostile_graph = metrics / "정확도 <img src=x>.log"
    hostile_graph.write_text("epoch, top1 <script>, 상위5\n1, 0.5, 0.7\n")
    server.wait_job("모델-live-1", state="running", step=3)

    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    page = _page(browser, errors)
    page.goto(server.url + "/")
    row = page.locator('tr[data-id="모델-live-1"]')
    row.locator(".pct-text").filter(has_text="15.0 %").wait_for(timeout=15000)
    assert row.locator(".badge").inner_text() == "running"
    broken = page.locator('tr[data-id="model-broken"]')
    assert broken.locator(".msg").inner_text() == HOSTILE  # shown as text, not markup
    assert page.locator("img").count() == 0

    # Live: the percentage changes without a reload, and so does the list of ignored messages.
    run.progress(9)
    row.locator(".pct-text").filter(has_text="45.0 %").wait_for(timeout=15000)
    assert row.locator(".step").inner_text() == "9"
    junk = '{"cmd": "training_status", "model_id": "<b>x</b>", 학습'
    publish_raw(broker, queue, junk.encode(), message_id="junk-1")
    page.locator("#ignored-counts li").filter(has_text="malformed_json: 1").wait_for(timeout=15000)
    page.locator("#ignored tbody tr").first.wait_for(timeout=15000)
    assert page.locator("#ignored tbody tr .body").first.inner_text() == junk
    page.screenshot(path=str(ARTIFACTS / "serve-job-list.png"), full_page=True)

    # The job page: one chart per file, points arrive while the job runs.
    row.locator(".id a").click()
    page.wait_for_url("**/jobs/training/**")
    assert page.locator("#job-id").inner_text() == "모델-live-1"
    page.wait_for_selector('.chart[data-file="loss.log"][data-points="3"]', timeout=15000)
    page.wait_for_selector('.chart[data-file="정확도 <img src=x>.log"]', timeout=15000)
    assert page.locator(".chart").count() == 2
    for step in range(4, 8):
        run.progress(step * 2)
        run.log("loss", step, train=1.0 / step, val=1.2 / step)
    page.wait_for_selector('.chart[data-file="loss.log"][data-points="7"]', timeout=15000)
    with hostile_graph.open("a") as fh:
        fh.write("2, 0.6, 0.8\n")
    hostile_chart = '.chart[data-file="정확도 <img src=x>.log"]'
    page.wait_for_selector(hostile_chart + '[data-points="2"]', timeout=15000)
    page.locator("#job-progress .pct-text").filter(has_text="70.0 %").wait_for(timeout=15000)
    titles = page.locator(".chart h3").all_inner_texts()
    assert titles == ["loss", "정확도 <img src=x>"]
    legend = page.locator(".chart").nth(1).locator(".u-legend").inner_text()
    assert "top1 <script>" in legend and "상위5" in legend
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    time.sleep(0.3)  # let the chart paint before the picture
    page.screenshot(path=str(ARTIFACTS / "serve-job-page.png"), full_page=True)

    run.done()
    page.locator("#job-state .badge").filter(has_text="done").wait_for(timeout=15000)
    assert page.evaluate("window.__pwned") is None
    assert errors == []
    page.close()


def test_page_of_an_unknown_job_says_so_and_fills_in_when_it_arrives(
    browser, serve_factory, broker, queue, make_config
):
    config = make_config(model_id="model-later")
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(server.url + "/jobs/training/model-later")
    page.locator("#job-missing").wait_for(state="visible", timeout=15000)
    with trainwire.init(config, total_steps=4, max_rate=None) as run:
        run.progress(2)
    page.locator("#job-state .badge").filter(has_text="done").wait_for(timeout=15000)
    assert page.locator("#job-missing").is_hidden()
    assert page.locator("#graphs-note").inner_text().startswith("This job is not registered")
    assert errors == []
    page.close()


def test_login_form_sets_an_http_only_cookie_and_tells_a_wrong_token(
    browser, serve_factory, broker, queue, make_config, tmp_path
):
    token = "browser-login-token-42"
    token_file = tmp_path / "serve.token"
    token_file.write_text(token + "\n")
    server = serve_factory(
        "--amqp-url", broker.amqp_url, "--queue", queue, "--token-file", str(token_file)
    )
    with trainwire.init(make_config(model_id="model-behind-login"), total_steps=4) as run:
        run.progress(2)
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(server.url + "/")
    page.wait_for_url("**/login")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-login.png"), full_page=True)

    page.locator("#password").fill("not-the-token")
    page.locator("#login button[type=submit]").click()
    page.locator("#login-error").wait_for(timeout=15000)
    assert page.locator("#login-error").inner_text() == "Wrong token: try again."
    assert page.context.cookies() == []

    page.locator("#password").fill(token)
    page.locator("#login button[type=submit]").click()
    page.wait_for_url(server.url + "/")
    row = page.locator('tr[data-id="model-behind-login"]')
    row.locator(".badge").filter(has_text="done").wait_for(timeout=15000)
    page.wait_for_selector("#live.on", timeout=15000)  # the event stream took the cookie
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "trainwire_session" and cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict" and token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # out of the scripts' reach
    # The login POST answered 401 for the wrong token: the browser logs that, nothing else.
    assert [e for e in errors if "401" not in e] == []
    page.goto(server.url + "/logout")
    page.wait_for_url("**/login")
    assert page.context.cookies() == []
    page.close()
