"""The job page's graphs in a real browser (Debian's chromium driven by Playwright) against
a real ``trainwire serve`` following a real job: each line's last, min and max beside its
chart equal the file's (also for a file longer than the page draws), the smoothing slider
redraws with the raw line kept faint and is kept per browser, the CSV download equals the
file's rows, hostile graph names and values break nothing. Screenshots go to
``test-artifacts/``."""

from __future__ import annotations

import csv
import io
import math
import time
import urllib.parse
from pathlib import Path

import trainwire
from _serve import serve_factory_fixture, serve_with_job  # noqa: F401
from test_serve_browser import ARTIFACTS, _page, browser  # noqa: F401

HOSTILE_NAME = '정확도 <img src=x onerror="window.__pwned=1"> #1 ?%&'
SAMPLED = "long"
LONG_ROWS = 30_000  # more than the 20,000 rows a graph update carries: the page gets fewer


def _card(file: str) -> str:
    """The CSS selector of a graph's card (the file name quoted as a CSS string)."""
    return '.chart[data-file="' + file.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def _file_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the complete, well-formed rows of a graph file, as the spec reads
    them: cells stripped, a cell that is not a finite number empty."""
    lines = path.read_text().split("\n")[:-1]  # the last one is unfinished (or empty)
    header = [c.strip() for c in lines[0].split(",")]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if line.strip() and len(cells) == len(header):
            rows.append([c if _finite(c) else "" for c in cells])
    return header, rows


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _expected_stats(path: Path) -> list[tuple[float | None, float | None, float | None]]:
    header, rows = _file_rows(path)
    out = []
    for c in range(1, len(header)):
        values = [float(r[c]) for r in rows if r[c]]
        out.append((values[-1], min(values), max(values)) if values else (None, None, None))
    return out


def _ema(values: list[float], weight: float) -> float:
    last, out = 0.0, math.nan
    for count, v in enumerate(values, 1):
        last = last * weight + (1 - weight) * v
        out = last / (1 - weight**count)
    return out


def _shown_stats(page, file: str) -> list[tuple[float | None, ...]]:
    card = page.locator(_card(file))
    shown = []
    for tr in card.locator("table.stats tbody tr").all():
        cells = [tr.locator(f"td.{what}") for what in ("last", "min", "max")]
        values = [cell.get_attribute("data-value") for cell in cells]
        shown.append(tuple(float(v) if v else None for v in values))
    return shown


def _canvas(page, file: str) -> str:
    return page.eval_on_selector(_card(file) + " canvas", "c => c.toDataURL()")  # type: ignore[no-any-return]


def test_graph_stats_smoothing_and_csv_in_the_browser(
    browser,  # noqa: F811
    serve_factory,
    broker,
    queue,
    make_config,
    tmp_path,
):
    config = make_config(model_id="차트-1")
    server, metrics = serve_with_job(serve_factory, broker, queue, config, tmp_path / "jobs")

    # A real run, at a pace, so that the page shows its speed and time left too.
    run = trainwire.init(config, total_steps=200, max_rate=None)
    losses = [(s, 2.0 / s + (0.3 if s == 3 else 0.0), 2.5 / s) for s in range(1, 9)]
    for step, train, val in losses:
        run.progress(step)
        run.log("loss", step, train=train, val=val)
        time.sleep(0.5)  # the pace of the run (its ETA), not a wait for anything
    # Written by hand: a long file (thinned on the page), hostile names and values.
    with (metrics / f"{SAMPLED}.log").open("w") as fh:
        fh.write("step, value, gappy\n")
        for i in range(1, LONG_ROWS + 1):
            value = 5.0 if i == 12_345 else -3.5 if i == 23_456 else math.sin(i / 100)
            fh.write(f"{i}, {value!r}, {'' if i > LONG_ROWS - 5 else i * 0.5}\n")
    hostile = metrics / f"{HOSTILE_NAME}.log"
    hostile.write_text(
        'epoch, top1 <script>alert(1)</script>, "상위5"\n'
        "1, 0.5, nan\n2, inf, 0.7\n3, junk, 1e999\nnot a row\n4, 0.25, 0.9\n5, 0.125"
    )
    (metrics / "link.log").symlink_to("/etc/passwd")
    server.wait_job("차트-1", state="running", step=8)

    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    page = _page(browser, errors)
    page.goto(server.url + "/jobs/training/" + urllib.parse.quote("차트-1"))
    hostile_card = _card(f"{HOSTILE_NAME}.log")
    page.wait_for_selector('.chart[data-file="loss.log"][data-points="8"]', timeout=15000)
    page.wait_for_selector(_card(f"{SAMPLED}.log"), timeout=15000)
    page.wait_for_selector(hostile_card + '[data-points="4"]', timeout=15000)
    assert page.locator(".chart").count() == 3  # the link is not a graph
    assert int(page.get_attribute(_card(f"{SAMPLED}.log"), "data-points")) <= 20_000

    # Last, min and max of every line equal the file's, over every row, not the drawn ones.
    for file in ("loss.log", f"{SAMPLED}.log", f"{HOSTILE_NAME}.log"):
        assert _shown_stats(page, file) == _expected_stats(metrics / file), file
    assert _expected_stats(metrics / f"{SAMPLED}.log")[0][1:] == (-3.5, 5.0)
    long_row = page.locator(_card(f"{SAMPLED}.log") + " table.stats tbody tr").nth(1)
    assert long_row.locator("td.last").inner_text() == "14997.5"  # the last row with a value
    hostile_rows = page.locator(hostile_card + " table.stats tbody tr .series")
    assert hostile_rows.all_inner_texts() == ["top1 <script>alert(1)</script>", '"상위5"']
    assert page.locator(hostile_card + " h3").inner_text() == HOSTILE_NAME

    # Live: new rows move the stats.
    run.progress(9)
    run.log("loss", 9, train=0.01, val=9.0)
    page.wait_for_selector('.chart[data-file="loss.log"][data-points="9"]', timeout=15000)
    page.locator('.chart[data-file="loss.log"] td.min').first.filter(has_text="0.01").wait_for()
    assert _shown_stats(page, "loss.log") == _expected_stats(metrics / "loss.log")
    assert _shown_stats(page, "loss.log")[1] == (9.0, 2.5 / 8, 9.0)

    # The CSV of each graph equals the file's rows (the long one whole, not thinned).
    for file in ("loss.log", f"{SAMPLED}.log", f"{HOSTILE_NAME}.log"):
        with page.expect_download() as info:
            page.locator(_card(file) + " a.csv").click()
        download = info.value
        name = download.suggested_filename  # chromium replaces <>"? in file names with _
        assert name.startswith(file[:3]) and name.endswith(".csv") and len(name) == len(file)
        got = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
        header, rows = _file_rows(metrics / file)
        assert got == [header, *rows], file
    assert len(rows) == 4  # the hostile file: the short row and the unfinished last one left out
    base = "/api/jobs/training/" + urllib.parse.quote("차트-1") + "/metrics/"
    for bad in ("link.csv", "..%2F..%2Fetc%2Fpasswd.csv", "loss.log", "loss", ".csv", "nope.csv"):
        assert server.status(base + bad) == 404, bad

    # Smoothing: the drawn lines change, each raw line stays, faint, and the smoothed last
    # value is TensorBoard's debiased moving average.
    loss_card = '.chart[data-file="loss.log"]'
    before = _canvas(page, "loss.log")
    assert page.locator(loss_card + " .u-legend").inner_text().count("raw") == 0
    page.locator("#smoothing").fill("0.9")
    page.wait_for_selector(loss_card + '[data-smoothing="0.9"]', timeout=5000)
    assert _canvas(page, "loss.log") != before
    legend = page.locator(loss_card + " .u-legend .u-series")
    labels = [t.strip() for t in legend.locator(".u-label").all_inner_texts()]
    assert labels[1:] == ["train · raw", "val · raw", "train", "val"]
    raw_colour = legend.nth(1).locator(".u-marker").evaluate("m => getComputedStyle(m).borderColor")
    assert raw_colour.startswith("rgba(") and float(raw_colour.rstrip(")").split(",")[-1]) < 0.5
    smoothed = page.locator(loss_card + " td.smoothed").first.get_attribute("data-value")
    trains = [train for _, train, _ in losses] + [0.01]
    assert math.isclose(float(smoothed or "nan"), _ema(trains, 0.9), rel_tol=1e-9)
    page.locator("#smoothing").fill("0.5")
    page.wait_for_selector(loss_card + '[data-smoothing="0.5"]', timeout=5000)
    smoothed_half = page.locator(loss_card + " td.smoothed").first.get_attribute("data-value")
    assert math.isclose(float(smoothed_half or "nan"), _ema(trains, 0.5), rel_tol=1e-9)
    page.locator(".job-facts #job-eta").filter(has_text="left").wait_for(timeout=15000)
    time.sleep(0.3)  # let the charts paint before the picture
    page.screenshot(path=str(ARTIFACTS / "serve-job-graph-stats.png"), full_page=True)

    # Kept per browser: a reload starts at the same setting; 0 is off (raw lines only).
    page.reload()
    page.wait_for_selector(loss_card + '[data-smoothing="0.5"]', timeout=15000)
    assert page.locator("#smoothing-value").inner_text() == "0.50"
    page.locator("#smoothing").fill("0")
    page.wait_for_selector(loss_card + '[data-smoothing="0"]', timeout=5000)
    assert page.locator(loss_card + " .u-legend").inner_text().count("raw") == 0
    assert page.locator(loss_card + " td.smoothed").first.is_hidden()

    page.goto(server.url + "/")
    page.locator('tr[data-id="차트-1"]').wait_for(timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "serve-list-with-charts-job.png"), full_page=True)
    run.done()
    assert page.evaluate("window.__pwned") is None
    assert errors == []
    page.close()
