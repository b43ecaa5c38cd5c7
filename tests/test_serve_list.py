"""A list that scales: ``/api/jobs`` filters, search, sort and cursor pages, and the counts
per state, over 10,000 jobs in a real ``serve`` process on SQLite and PostgreSQL (the jobs
are put into the store directly, a thousand per transaction)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from _postgres import Postgres
from _serve import serve_factory_fixture  # noqa: F401
from test_serve_browser import ARTIFACTS, browser  # noqa: F401  (the same chromium)
from test_serve_browser import _page as browser_page
from trainwire._serve._store import Delivery, open_store
from trainwire._spec._protocol import (
    Identity,
    Kind,
    done_message,
    encode,
    error_message,
    progress_message,
)

JOBS = 10_000
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.close()


def expected_job(i: int) -> tuple[Kind, str, str, str]:
    """Job ``i``: kind, id, project key and final state."""
    kind = Kind.VALIDATION if i % 5 == 0 else Kind.TRAINING
    state = "done" if i % 3 == 0 else "error" if i % 7 == 0 else "running"
    return kind, f"job-{i:05d}", "pk-b" if i % 2 else "pk-a", state


def fill(url: str) -> None:
    store = open_store(url)
    try:
        for start in range(0, JOBS, 1000):
            batch = []
            for i in range(start, start + 1000):
                kind, job_id, key, state = expected_job(i)
                who = Identity(kind, key, job_id)
                batch.append(progress_message(who, i % 100, float(i % 100)))
                if state == "done":
                    batch.append(done_message(who))
                elif state == "error":
                    batch.append(error_message(who, "실패"))
            deliveries = [Delivery(encode(m), uuid.uuid4().hex, T0) for m in batch]
            store.receive_many(deliveries, T0 + start / 1000)
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def many(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('many')}/jobs.sqlite3"
    else:
        url = request.getfixturevalue("postgres").create_database("many_" + uuid.uuid4().hex[:8])
    fill(url)
    return url


def get(server, path: str) -> tuple[object, dict[str, str]]:
    with urllib.request.urlopen(server.url + path, timeout=30) as resp:
        return json.loads(resp.read()), dict(resp.headers)


def all_pages(server, path: str) -> list[dict]:
    """Every job of a paged listing, following the ``Link`` headers."""
    items: list[dict] = []
    while True:
        page, headers = get(server, path)
        items += page
        link = headers.get("Link")
        if link is None:
            return items
        assert link.endswith('>; rel="next"') and headers["X-Next-Cursor"] in link
        path = link[1 : link.index(">")]


def test_filters_pages_search_and_counts_over_10000_jobs(many, serve_factory, broker, queue):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", many)
    expected = [expected_job(i) for i in range(JOBS)]

    counts, _ = get(server, "/api/jobs/counts")
    assert counts["total"] == JOBS
    for state in ("running", "done", "error"):
        assert counts["states"][state] == sum(1 for e in expected if e[3] == state)
    assert counts["states"]["waiting"] == counts["states"]["abnormal"] == 0
    training, _ = get(server, "/api/jobs/counts?kind=training&project_key=pk-a")
    assert training["total"] == sum(1 for e in expected if e[0] is Kind.TRAINING and e[2] == "pk-a")

    # Every running training job exactly once, in pages of 500, newest first.
    pages = all_pages(server, "/api/jobs?state=running&kind=training&limit=500")
    want = {e[1] for e in expected if e[3] == "running" and e[0] is Kind.TRAINING}
    assert len(pages) == len(want) and {j["id"] for j in pages} == want
    created = [j["created_at"] for j in pages]
    assert created == sorted(created, reverse=True)

    # Sorted by id, ascending: the first page is the smallest ids.
    first, headers = get(server, "/api/jobs?sort=id&kind=validation&limit=3")
    assert [j["id"] for j in first] == ["job-00000", "job-00005", "job-00010"]
    assert "X-Next-Cursor" in headers
    # Sorted by progress, descending, with a state filter.
    top, _ = get(server, "/api/jobs?sort=-progress&state=running&limit=5")
    assert [j["percentage"] for j in top] == [99.0] * 5

    # Search by part of the id (any case), and an exact project key.
    found, _ = get(server, "/api/jobs?q=JOB-0004")
    assert sorted(j["id"] for j in found) == [f"job-{i:05d}" for i in range(40, 50)]
    mine, _ = get(server, "/api/jobs?q=_&project_key=pk-a")  # "_" is no wildcard
    assert mine == []
    keyed = all_pages(server, "/api/jobs?project_key=pk-b&state=done&limit=1000")
    assert len(keyed) == sum(1 for e in expected if e[2] == "pk-b" and e[3] == "done")

    # Without paging parameters: the whole list, as before.
    everything, headers = get(server, "/api/jobs")
    assert len(everything) == JOBS and "Link" not in headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=nope", "'state' must be one of"),
        ("kind=model", "'kind' must be one of"),
        ("sort=size", "'sort' must be one of"),
        ("cursor=not-a-cursor", "'cursor'"),
        ("cursor=" + urllib.parse.quote("WyJ4IiwgMV0="), "'cursor'"),
        ("limit=-1", "'limit' must be a whole number"),
        ("q=" + "x" * 201, "longer than 200"),
    ],
)
def test_bad_list_parameters_are_400_with_the_reason(query, expected, serve_factory, broker, queue):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue)
    with pytest.raises(urllib.error.HTTPError) as caught:
        get(server, "/api/jobs?" + query)
    assert caught.value.code == 400
    assert expected in json.loads(caught.value.read())["error"]


@pytest.mark.parametrize("many", ["sqlite"], indirect=True)  # the page is the same on both
def test_the_list_page_filters_pages_and_counts_10000_jobs_in_a_browser(
    many,
    serve_factory,
    broker,
    queue,
    browser,  # noqa: F811
):
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", many)
    errors: list[str] = []
    page = browser_page(browser, errors)
    page.goto(server.url + "/")
    page.locator("#jobs tbody tr").nth(49).wait_for(timeout=20000)
    assert page.locator("#jobs tbody tr").count() == 50
    running = sum(1 for i in range(JOBS) if expected_job(i)[3] == "running")
    page.locator('#state-filter button[data-state="running"]').filter(
        has_text=f"running {running}"
    ).wait_for(timeout=20000)
    # A state, then a search: the rows and the counts follow.
    page.locator('#state-filter button[data-state="done"]').click()
    page.locator('#state-filter button.on[data-state="done"]').wait_for(timeout=20000)
    rows = page.locator("#jobs tbody tr")
    page.locator('#jobs tbody tr:not([data-state="done"])').first.wait_for(state="detached")
    assert rows.count() == 50 and set(rows.evaluate_all("rs => rs.map(r => r.dataset.state)")) == {
        "done"
    }
    page.fill("#search", "job-0004")
    want = sorted(f"job-{i:05d}" for i in range(40, 50) if expected_job(i)[3] == "done")
    rows.nth(len(want)).wait_for(state="detached")
    rows.nth(len(want) - 1).wait_for()
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert sorted(ids) == want
    # Pages: the next one holds other rows, the previous one the first again.
    page.fill("#search", "")
    page.locator("#next:not([disabled])").wait_for(timeout=20000)
    first = page.locator("#jobs tbody tr").first.get_attribute("data-id")
    page.click("#next")
    page.locator("#page-info").filter(has_text="page 2").wait_for(timeout=20000)
    page.locator(f'#jobs tbody tr[data-id="{first}"]').wait_for(state="detached")
    assert rows.count() == 50
    page.click("#prev")
    page.locator("#page-info").filter(has_text="page 1").wait_for(timeout=20000)
    page.locator('#state-filter button[data-state="done"]').click()  # the filter in the picture
    page.locator('#jobs tbody tr:not([data-state="done"])').first.wait_for(state="detached")
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-job-list-filters.png"), full_page=False)
    assert errors == []
    page.close()
