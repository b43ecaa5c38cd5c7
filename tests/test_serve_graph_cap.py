"""The job page's charts stay bounded on a long run: a page left open gains every graph
update as an event, and past twice the server's row limit a chart is thinned in the page
as the server thins (min/max per bucket), so a spike stays and the newest row is the last
point. In a real browser (Debian's chromium driven by Playwright) against a real
``trainwire serve`` following a real job."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import trainwire
from _serve import serve_factory_fixture, serve_with_job  # noqa: F401
from test_serve_browser import _page, browser  # noqa: F401
from trainwire._serve._graphs import MAX_CELLS, MAX_POINTS

JOB_JS = Path(trainwire.__file__).parent / "_serve" / "static" / "job.js"
CAP = 2 * MAX_POINTS  # the page's most points per chart (a graph of 2 columns)
ROUND = 3_000  # rows appended per round: fewer than the server's limit, so none thinned there
ROUNDS = 6
SPIKE, DIP = 1e6, -1e6
SPIKE_AT, DIP_AT = 4_321, 10_101  # row numbers (x), in the second and the fourth round


def _page_constant(name: str) -> int:
    match = re.search(rf"^\s*const {name} = (\d+);$", JOB_JS.read_text(), re.MULTILINE)
    assert match, f"{JOB_JS}: no `const {name} = <digits>;`"
    return int(match.group(1))


def test_the_page_mirrors_the_servers_row_limits() -> None:
    assert (_page_constant("MAX_POINTS"), _page_constant("MAX_CELLS")) == (MAX_POINTS, MAX_CELLS)


def _value(x: int) -> float:
    return SPIKE if x == SPIKE_AT else DIP if x == DIP_AT else (x % 97) / 97


def _drawn(page) -> dict[str, Any]:
    return page.evaluate(  # type: ignore[no-any-return]
        """() => {
          const data = document.querySelector('.chart[data-file="long.log"] .plot').uplot.data;
          return { points: data[0].length, x: data[0], y: data[1], gappy: data[2] };
        }"""
    )


def test_a_chart_fed_past_its_cap_stays_bounded_and_keeps_its_spikes(
    browser,  # noqa: F811
    serve_factory,
    broker,
    queue,
    make_config,
    tmp_path,
):
    config = make_config(model_id="cap-1")
    server, metrics = serve_with_job(serve_factory, broker, queue, config, tmp_path / "jobs")
    metrics.mkdir(parents=True, exist_ok=True)
    long_log = metrics / "long.log"
    long_log.write_text("step, value, gappy\n1, 0.5, 1\n")
    run = trainwire.init(config, total_steps=100, max_rate=None)
    run.progress(1)
    server.wait_job("cap-1", state="running", step=1)

    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(server.url + "/jobs/training/" + urllib.parse.quote("cap-1"))
    page.wait_for_selector('.chart[data-file="long.log"][data-points="1"]', timeout=15000)
    last = 1
    seen = []
    for _ in range(ROUNDS):
        with long_log.open("a") as fh:
            for x in range(last + 1, last + ROUND + 1):
                fh.write(f"{x}, {_value(x)!r}, {'' if x % 5 else x}\n")
        last += ROUND
        # The round arrived as an event once the chart's last point is its newest row.
        page.wait_for_function(
            """last => {
              const plot = document.querySelector('.chart[data-file="long.log"] .plot');
              const x = plot && plot.uplot && plot.uplot.data[0];
              return !!x && x[x.length - 1] === last;
            }""",
            arg=last,
            timeout=15000,
        )
        drawn = _drawn(page)
        seen.append(drawn["points"])
        assert drawn["points"] <= CAP, seen
    assert last > 2 * CAP  # thinned more than once
    assert max(seen) > MAX_POINTS  # it grows between thinnings, as designed

    x, y, gappy = drawn["x"], drawn["y"], drawn["gappy"]
    assert len(x) == len(y) == len(gappy) == drawn["points"]
    assert x[0] == 1 and y[0] == 0.5  # the first row as it is
    assert (x[-1], y[-1], gappy[-1]) == (last, _value(last), last if last % 5 == 0 else None)
    assert x == sorted(x)
    assert SPIKE in y and DIP in y  # one row each among thousands, thinned twice
    assert y.index(SPIKE) < y.index(DIP)
    assert max(v for v in gappy if v is not None) == last - last % 5
    assert page.get_attribute('.chart[data-file="long.log"]', "data-points") == str(len(x))
    run.done()
    assert errors == []
    page.close()
