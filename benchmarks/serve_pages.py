"""``trainwire serve`` at fleet scale: the job list over a large store, and its memory.

A SQLite store is filled directly through SQL (the tables ``serve`` creates) with 10,000
jobs and 1,000,000 logged messages (1 % of them rejected, with their bodies; every message
id in ``tw_seen``), then a real ``trainwire serve`` process opens it:

- ``/api/jobs?limit=50``: the first page and the pages after it (each request follows the
  previous page's cursor, as the list's "next" button does), p50/p99 over the requests;
- the job list page: ``/`` and the three requests its script makes when it opens
  (``/api/jobs/counts``, ``/api/jobs?limit=50``, ``/api/rejected?limit=25``), one after
  the other, p50/p99 of the whole;
- the store's size on disk (the database file and its WAL);
- the server's resident memory (RSS) after ingesting two amounts of messages through the
  broker: it must not grow with the messages (no per-message state in memory).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ._common import Context, Figure, child_env, fmt, median, percentile, python, wait_until
from .serve_ingest import _fill, _health, _wait_url

__all__ = ["measure"]

#: The goal for one page of the job list (and for the whole list page).
GOAL_MS = 100.0
PAGE = 50


def _fill_store(path: Path, jobs: int, messages: int) -> None:
    """The tables as ``serve`` creates them, filled through SQL."""
    from trainwire._serve._store import open_store

    open_store(f"sqlite:///{path}").close()
    now = time.time()
    per_job = messages // jobs
    states = ("running", "done", "running", "error", "abnormal", "waiting", "running")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executemany(
            "INSERT INTO tw_jobs (kind, job_id, state, step, percentage, message, last_seen,"
            " applied, created_at, updated_at, registered, project_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                ("training", f"model-{j:05d}", states[j % len(states)], per_job,
                 100.0 * (j % 101) / 100, None, now - j, per_job, now - 3600 - j, now - j,
                 "pk-bench")
                for j in range(jobs)
            ),
        )  # fmt: skip
        # Generated inside SQLite (a recursive count): each job's messages in turn, 1 %
        # rejected with a body, as the receiver writes them.
        db.execute(
            "INSERT INTO tw_messages (received_at, message_id, published_ts, kind, job_id,"
            " status, step, percentage, outcome, rejected, superseded, detail, body)"
            " WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < ?)"
            " SELECT ? + x * 0.001, printf('%032x', x), CAST(? + x / 1000 AS INTEGER),"
            " 'training', printf('model-%05d', x % ?), 'training_ing', x / ? + 1,"
            " (x / ? + 1) * 100.0 / ?,"
            " CASE WHEN x % 100 = 99 THEN 'unknown_project_key' ELSE 'applied' END,"
            " x % 100 = 99, 0,"
            " CASE WHEN x % 100 = 99 THEN 'project_key pk-… (6 chars) is not one of the"
            " configured project keys (--project-key and the registered job configs)' END,"
            " CASE WHEN x % 100 = 99 THEN printf('{\"cmd\": \"training\", \"project_key\":"
            " \"pk-other\", \"model_id\": \"model-%05d\", \"status\": \"training_ing\","
            " \"step\": %d, \"percentage\": 1.0}', x % ?, x / ? + 1) END FROM n",
            (messages - 1, now - messages / 1000, now - messages / 1000, jobs, jobs, jobs,
             per_job, jobs, jobs),
        )  # fmt: skip
        db.execute(
            "INSERT INTO tw_seen (message_id, received_at)"
            " SELECT message_id, received_at FROM tw_messages"
        )
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _size_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1e6


def _get(url: str) -> tuple[float, Any]:
    """Milliseconds to read ``url`` whole, and the response."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return (time.perf_counter() - t0) * 1000, response


def _pages(url: str, count: int) -> list[float]:
    """``count`` pages of the list, each after the previous one's cursor (from the top
    again at the end)."""
    times, cursor = [], ""
    for _ in range(count):
        ms, response = _get(f"{url}/api/jobs?limit={PAGE}{cursor}")
        times.append(ms)
        nxt = response.headers.get("X-Next-Cursor")
        cursor = f"&cursor={nxt}" if nxt else ""
    return times


def _list_page(url: str, count: int) -> list[float]:
    """``count`` loads of the list page with the requests its script makes on opening."""
    parts = ("/", "/api/jobs/counts", f"/api/jobs?limit={PAGE}", "/api/rejected?limit=25")
    return [sum(_get(url + p)[0] for p in parts) for _ in range(count)]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _start(
    ctx: Context, db: str, queue: str, work: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``serve`` on ``db`` and ``queue`` (``extra``: more options), and its URL."""
    broker = ctx.broker()
    amqp = f"amqp://guest:guest@{broker.host}:{broker.port}/%2F"
    log = work / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [python(), "-m", "trainwire", "serve", "--port", "0", "--amqp-url", amqp,
             "--queue", queue, "--db", db, *extra],
            cwd=work, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        return proc, _wait_url(log, proc)
    except BaseException:
        proc.kill()
        raise


def _ingest(ctx: Context, queue: str, url: str, rounds: int, target: int) -> None:
    """Publish one more round of a 1,000-job fleet (``rounds``-th: fresh job ids) and wait
    until serve has received ``target`` messages in all."""
    _fill(ctx, queue, 1_000, 9, prefix=f"fleet{rounds}")
    if not wait_until(lambda: int(_health(url).get("received", 0)) >= target, 300, 0.2):
        raise RuntimeError(f"serve did not ingest {target:,} messages in 300 s")


def _memory(ctx: Context, queue: str, url: str, pid: int, counts: tuple[int, int]) -> list[float]:
    """RSS (MiB) after ingesting each of ``counts`` messages (10,000 per round)."""
    out, done = [], 0
    for count in counts:
        while done < count:
            done += 10_000
            _ingest(ctx, queue, url, done // 10_000, done)
        out.append(round(_rss_mb(pid), 1))
    return out


def _latency_figure(
    key: str, title: str, times: list[float], floor: list[float], details: list[Any]
) -> Figure:
    """p99 of ``times`` beside the p99 of ``GET /api/health`` (the server's own floor)."""
    p99, base = percentile(times, 99), percentile(floor, 99)
    return Figure(
        key=key,
        title=title,
        unit="ms",
        trainwire=p99,
        baseline=base,
        baseline_name="`GET /api/health` on the same server (its floor), p99",
        ratio=p99 / base if base else None,
        goal=f"p99 < {GOAL_MS:.0f} ms",
        met=p99 < GOAL_MS,
        note="p99 of the requests; SQLite store filled through SQL, read by a real serve",
        details=[
            ("p50 / p99", f"{fmt(median(times), 'ms')} / {fmt(p99, 'ms')}"),
            ("requests", str(len(times))),
            *details,
        ],
    )


def measure(ctx: Context) -> list[Figure]:
    """Three figures: a page of /api/jobs, the list page, and serve's memory."""
    jobs, messages, requests = (200, 10_000, 20) if ctx.quick else (10_000, 1_000_000, 300)
    counts = (10_000, 20_000) if ctx.quick else (10_000, 100_000)
    with tempfile.TemporaryDirectory(dir=ctx.dir) as scratch:
        work = Path(scratch)
        path = work / "pages.sqlite3"
        t0 = time.perf_counter()
        _fill_store(path, jobs, messages)
        filled = time.perf_counter() - t0
        size = _size_mb(path)
        queue = ctx.new_queue()
        proc, url = _start(ctx, f"sqlite:///{path}", queue, work)
        try:
            _pages(url, 5)  # warm: the first reads load the database's pages
            pages = _pages(url, requests)
            lists = _list_page(url, max(10, requests // 4))
            floor = [_get(f"{url}/api/health")[0] for _ in range(requests)]
            rss = _memory(ctx, queue, url, proc.pid, counts)
        finally:
            proc.terminate()
            proc.wait(30)
            ctx.delete_queue(queue)
    store = [
        ("store", f"{jobs:,} jobs, {messages:,} logged messages (1 % rejected, with bodies)"),
        ("size on disk", f"{size:,.0f} MB ({size * 1e6 / messages:,.0f} bytes per message)"),
        ("filled through SQL in", f"{filled:.1f} s"),
    ]
    growth = rss[1] - rss[0]
    memory = Figure(
        key="serve.memory",
        title=f"`serve` memory (RSS) after {counts[1]:,} messages",
        unit="MiB",
        trainwire=rss[1],
        baseline=rss[0],
        baseline_name=f"the same process after {counts[0]:,}",
        goal="bounded: < 10 MiB more for the later messages",
        met=growth < 10,
        ratio=rss[1] / rss[0],
        note="messages of 1,000-job fleets through the broker into the store above",
        details=[("growth", f"{growth:+.1f} MiB over {counts[1] - counts[0]:,} messages")],
    )
    return [
        _latency_figure("serve.jobs_api", f"`/api/jobs?limit={PAGE}`, a page", pages, floor, store),
        _latency_figure(
            "serve.jobs_page", "the job list page and its 3 requests", lists, floor, []
        ),
        memory,
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch_dir:
        context = Context(quick="--quick" in sys.argv, workdir=Path(scratch_dir))
        try:
            for figure in measure(context):
                print(figure.key, fmt(figure.trainwire, figure.unit), figure.met_text)
                for label, value in figure.details:
                    print("   ", label, value)
        finally:
            context.close()
