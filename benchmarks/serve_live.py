"""``trainwire serve`` while people watch: ingest under open pages, and a long graph.

Ingest while the page is watched (a real ``trainwire serve`` on SQLite, a real broker):

- *rate*: a queue is filled beforehand with the messages of a fleet of trainings, then a
  fresh ``serve`` drains it, either with :data:`CLIENTS` event streams open on
  ``/api/events?list=0`` (what the job list page opens) or with none, the two sides
  alternating; the rate is timed over the same messages on both sides, the second half
  (every stream has its snapshot before it);
- *latency*: a publisher in this process sends :data:`LIVE_JOBS` trainings' progress at
  :data:`LIVE_RATE` messages a second each, evenly spread, recording when each (job, step)
  went out; the streams (in a child process) record when a ``job`` event first shows that
  step. The hub coalesces (a stream gets the newest state of each job per poll), so not
  every step arrives: the latency is over those that do, and their count is reported.
  Beside it, the same with one stream.

The graph of a long training: a registered job whose ``save/metrics/loss.log`` has
:data:`GRAPH_ROWS` rows, one of them a spike. What the job page asks for its graphs is its
event stream, ``/api/events?kind=..&id=..``, whose first ``graph`` event carries the whole
file (thinned on the server): timed from connecting to the end of that event, its size
counted, and the spike checked to be in it. The JSON route and the CSV download of the same
graph are timed beside it.
"""

from __future__ import annotations

import json
import math
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ._common import Context, Figure, child_env, fmt, median, percentile, python, wait_until
from .serve_ingest import _fill, _health
from .serve_pages import _get, _start

__all__ = ["measure", "watch"]

#: Open event streams while the fleet publishes (the issue's "50 open SSE clients").
CLIENTS = 50
#: The steady fleet of the latency figure: trainings, and messages a second from each.
LIVE_JOBS, LIVE_RATE = 300, 3
#: The goals: publish -> SSE p99, and ingest with the streams open against without.
LATENCY_GOAL_MS, INGEST_SHARE = 1000.0, 0.9
#: Rows of the long graph, the row that holds its spike, and the goals for what the page asks.
GRAPH_ROWS, SPIKE, GRAPH_GOAL_MS, GRAPH_GOAL_KB = 100_000, 1e6, 200.0, 500.0
#: Rows the training adds between two opens of its page.
APPENDED = 10
LIST_STREAM = "/api/events?list=0"
#: Streams whose events are timed (parsing all of them would load the machine serve runs on).
TIMED = 5
_JOB = re.compile(rb'"id": "([^"]+)".*?"step": (\d+)')


# -- the event-stream readers (a child process) ------------------------------------------


def _connect(url: str, path: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def watch(url: str, streams: str) -> None:
    """Hold ``streams`` streams of the list page open; print ``ready`` once every one has
    its snapshot; until stdin says ``stop PUBLISHED.json``, note when each of the first
    :data:`TIMED` streams first shows a (job, step) (the others read and drop, as cheaply
    as a client can); then print a JSON summary of publish -> event latencies."""
    count = int(streams)
    sel = selectors.DefaultSelector()
    for n in range(count):
        sock = _connect(url, LIST_STREAM)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, n)
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    buffers = [b""] * count
    seen: list[dict[tuple[str, int], float]] = [{} for _ in range(min(count, TIMED))]
    ready: set[int] = set()
    command = ""
    while not command:
        for key, _ in sel.select(5.0):
            n = key.data
            if n is None:
                command = sys.stdin.readline().strip() or "stop"
                continue
            data = key.fileobj.recv(1 << 18)  # type: ignore[union-attr]
            now = time.monotonic()
            if not data:
                raise SystemExit(f"stream {n} was closed by the server")
            if n >= TIMED and n in ready:
                continue
            *events, buffers[n] = (buffers[n] + data).split(b"\n\n")
            for event in events:
                if event.startswith(b"event: job") and n < TIMED:
                    for job, step in _JOB.findall(event):
                        seen[n].setdefault((job.decode(), int(step)), now)
                elif event.startswith(b"event: snapshot") and n not in ready:
                    ready.add(n)
                    if len(ready) == count:
                        print("ready", flush=True)
    published_file = command.partition(" ")[2]
    print(json.dumps(_latencies(seen, published_file)), flush=True)


def _latencies(seen: list[dict[tuple[str, int], float]], published_file: str) -> dict[str, Any]:
    """Milliseconds from each step's publish to its first event, per stream, summed up."""
    if not published_file:
        return {"arrived": 0}
    published: dict[str, list[float]] = json.loads(Path(published_file).read_text())
    late = [
        (at - published[job][step - 1]) * 1000
        for streams in seen
        for (job, step), at in streams.items()
        if job in published and 0 < step <= len(published[job])
    ]
    if not late:
        return {"arrived": 0}
    steps = sum(map(len, published.values()))
    return {
        "arrived": len(late),
        "per_stream": len(late) / len(seen),
        "steps": steps,
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late),
    }


class _Watchers:
    """The child process holding the streams open."""

    def __init__(self, url: str, count: int) -> None:
        code = "import sys; from benchmarks.serve_live import watch; watch(*sys.argv[1:])"
        self.proc = subprocess.Popen(
            [python(), "-c", code, url, str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(), text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(60) or self.proc.stdout.readline().strip() != "ready":
                self.proc.kill()
                raise RuntimeError(f"the {count} event streams did not all get a snapshot")

    def stop(self, published: Path | None = None) -> dict[str, Any]:
        """End the streams; the latency summary against ``published`` (when given)."""
        out, _ = self.proc.communicate(f"stop {published or ''}\n", timeout=120)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the event-stream readers failed ({self.proc.returncode})")
        return dict(json.loads(out.strip().splitlines()[-1]))


# -- ingest with and without the streams ---------------------------------------------------


def _received(url: str) -> int:
    return int(_health(url).get("received", 0))


def _drain(ctx: Context, work: Path, clients: int, fleet: tuple[int, int], tag: str) -> float:
    """Messages a second a fresh serve applies from a filled queue, ``clients`` streams open."""
    queue = ctx.new_queue()
    n = _fill(ctx, queue, *fleet, prefix=tag)
    proc, url = _start(ctx, f"sqlite:///{work}/{tag}.sqlite3", queue, work)
    watchers = None
    try:
        watchers = _Watchers(url, clients) if clients else None
        # Both sides are timed over the same messages: the second half.
        start = n // 2
        if _received(url) > start:
            raise RuntimeError(f"serve took over {start:,} of {n:,} messages before the streams")
        if not wait_until(lambda: _received(url) >= start, 600, 0.005):
            raise RuntimeError(f"serve did not take {start:,} messages in 600 s")
        t0, r0 = time.perf_counter(), _received(url)
        if not wait_until(lambda: _received(url) >= n, 600, 0.01):
            raise RuntimeError(f"serve did not drain {n:,} messages in 600 s")
        rate = (n - r0) / (time.perf_counter() - t0)
        if watchers is not None:
            watchers, _ = None, watchers.stop()
        return rate
    finally:
        if watchers is not None:
            watchers.proc.kill()
        proc.terminate()
        proc.wait(30)
        ctx.delete_queue(queue)


# -- publish -> event latency under a steady fleet ---------------------------------------


def _publish(ctx: Context, queue: str, jobs: int, rate: int, seconds: float, tag: str) -> Any:
    """Send ``jobs`` trainings' steps at ``rate`` a second each, spread evenly; returns
    when each (job, step) was published (``time.monotonic``, shared by the processes)."""
    import pika

    from trainwire._spec._protocol import Identity, Kind, encode, progress_message

    ids = [f"{tag}-{j:04d}" for j in range(jobs)]
    identities = [Identity(Kind.TRAINING, "pk-bench", i) for i in ids]
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    total, gap = int(jobs * rate * seconds), 1.0 / (jobs * rate)
    steps = total // jobs + 1
    published: dict[str, list[float]] = {i: [] for i in ids}
    conn = ctx.broker().connect()
    try:
        channel = conn.channel()
        t0 = time.monotonic()
        for n in range(total):
            wait = t0 + n * gap - time.monotonic()
            if wait > 0.001:
                time.sleep(wait)
            step, j = n // jobs + 1, n % jobs
            body = encode(progress_message(identities[j], step, step * 100.0 / steps))
            published[ids[j]].append(time.monotonic())
            channel.basic_publish("", queue, body, props)
        behind = time.monotonic() - (t0 + total * gap)
    finally:
        conn.close()
    return published, behind


def _watched(ctx: Context, work: Path, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """The steady fleet published for ``seconds`` while ``clients`` streams watch."""
    queue = ctx.new_queue()
    proc, url = _start(ctx, f"sqlite:///{work}/{tag}.sqlite3", queue, work)
    watchers = None
    try:
        watchers = _Watchers(url, clients)
        r0, t0 = _received(url), time.perf_counter()
        published, behind = _publish(ctx, queue, LIVE_JOBS, LIVE_RATE, seconds, tag)
        total = sum(map(len, published.values()))
        if not wait_until(lambda: _received(url) - r0 >= total, 300, 0.02):
            raise RuntimeError(f"serve did not take the fleet's {total:,} messages in 300 s")
        applied = total / (time.perf_counter() - t0)
        time.sleep(1.0)  # the hub's last poll and the streams' last writes
        path = work / f"{tag}-published.json"
        path.write_text(json.dumps(published))
        summary, watchers = watchers.stop(path), None
        return {**summary, "applied": applied, "offered": total / seconds, "behind": behind}
    finally:
        if watchers is not None:
            watchers.proc.kill()
        proc.terminate()
        proc.wait(30)
        ctx.delete_queue(queue)


# -- the graph of a long training ---------------------------------------------------------


def _write_graph(path: Path, first: int, last: int, spike_at: int) -> None:
    """Rows ``first..last`` of a falling loss and a rising accuracy (the header first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        if first == 1:
            out.write("step, loss, accuracy\n")
        for start in range(first, last + 1, 10_000):
            out.write(
                "".join(
                    f"{i}, {SPIKE if i == spike_at else _loss(i):.6g}, {_accuracy(i):.6g}\n"
                    for i in range(start, min(start + 10_000, last + 1))
                )
            )


def _loss(step: int) -> float:
    return 2.5 * math.exp(-step / 30_000) + (step % 7) / 100


def _accuracy(step: int) -> float:
    return 1 - math.exp(-step / 20_000)


def _first_graph(url: str, path: str) -> tuple[float, bytes]:
    """Milliseconds from connecting to the end of the stream's first ``graph`` event, and
    that event's data."""
    t0 = time.perf_counter()
    with _connect(url, path) as sock:
        buffer = b""
        while True:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError(f"{path} ended before its first graph event")
            *events, buffer = (buffer + data).split(b"\n\n")
            for event in events:
                if event.startswith(b"event: graph\ndata: "):
                    return (time.perf_counter() - t0) * 1000, event[len(b"event: graph\ndata: ") :]


def _check_spike(data: bytes, spike_at: int, rows: int) -> int:
    """The rows sent; raises unless the spike (near its step: a thinned row stands at its
    bucket's first or last step) and the last row are among them."""
    sent = json.loads(data)["rows"]
    near = 2 * rows // len(sent) + 2
    if not any(r[1] == SPIKE and abs(r[0] - spike_at) <= near for r in sent):
        raise RuntimeError(f"the spike at step {spike_at} is not in the {len(sent)} rows sent")
    if sent[-1][0] != rows:
        raise RuntimeError(f"the last row sent is step {sent[-1][0]}, not {rows}")
    return len(sent)


def _graph(ctx: Context, work: Path, rows: int, requests: int) -> dict[str, Any]:
    """A serve with one registered job of ``rows`` graph rows, asked as its page asks."""
    queue = ctx.new_queue()
    config = ctx.config(queue=queue)
    settings = json.loads(config.read_text())
    jobs = work / "jobs"
    jobs.mkdir(exist_ok=True)
    shutil.copy(config, jobs / "job.json")
    log = Path(settings["model_write_path"]) / "save" / "metrics" / "loss.log"
    spike_at = rows * 5 // 8 + 3
    _write_graph(log, 1, rows, spike_at)
    proc, url = _start(ctx, f"sqlite:///{work}/graph.sqlite3", queue, work, "--jobs", str(jobs))
    job = f"training/{settings['model_id']}"
    try:
        if not wait_until(lambda: _status(f"{url}/api/jobs/{job}") == 200, 60, 0.05):
            raise RuntimeError("serve did not register the job of the graph in 60 s")
        stream = f"/api/events?kind=training&id={urllib.parse.quote(settings['model_id'])}"
        cold = _first_graph(url, stream)  # the first page opened on the job since serve started
        page, api, last = [], [], rows
        for _ in range(requests):  # the training goes on: rows added between the requests
            _write_graph(log, last + 1, last + APPENDED, spike_at)
            last += APPENDED
            page.append(_first_graph(url, stream))
            api.append(_get(f"{url}/api/jobs/{job}/metrics"))
        csv = [_get(f"{url}/api/jobs/{job}/metrics/loss.csv") for _ in range(3)]
        floor = [_get(f"{url}/api/health")[0] for _ in range(requests)]
    finally:
        proc.terminate()
        proc.wait(30)
        ctx.delete_queue(queue)
    return {
        "cold": cold[0],
        "page": [ms for ms, _ in page],
        "bytes": len(page[-1][1]),
        "sent": _check_spike(page[-1][1], spike_at, last),
        "api": [ms for ms, _ in api],
        "api_bytes": int(api[-1][1].headers.get("Content-Length", 0)),
        "csv": [ms for ms, _ in csv],
        "file_bytes": log.stat().st_size,
        "floor": floor,
        "spike_at": spike_at,
    }


def _status(url: str) -> int:
    try:
        return int(_get(url)[1].status)
    except OSError:
        return 0


# -- the figures ----------------------------------------------------------------------------


def _ingest_figure(watched: list[float], alone: list[float], fleet: tuple[int, int]) -> Figure:
    ratio = median([a / b for a, b in zip(watched, alone)])
    return Figure(
        key="serve.live.ingest",
        title=f"`serve` ingest with {CLIENTS} open event streams",
        unit="msg/s",
        trainwire=median(watched),
        baseline=median(alone),
        baseline_name="the same, no stream open",
        goal=f">= {INGEST_SHARE:.0%} of the rate with no stream open",
        met=ratio >= INGEST_SHARE,
        ratio=ratio,
        ratio_style="%",
        note=(
            f"a queue filled with {fleet[0]:,} trainings x {fleet[1] + 1} messages, drained by a "
            f"fresh serve (SQLite); streams on `{LIST_STREAM}`, as the job list page opens"
        ),
        details=[
            (f"{CLIENTS} streams open, each rep", ", ".join(fmt(v, "msg/s") for v in watched)),
            ("no stream open, each rep", ", ".join(fmt(v, "msg/s") for v in alone)),
        ],
    )


def _latency_figure(many: list[dict[str, Any]], one: list[dict[str, Any]]) -> Figure:
    p99 = median([r["p99"] for r in many])
    base = median([r["p99"] for r in one])
    last = many[-1]
    return _p99_figure(
        ("serve.live.latency", f"publish -> event stream, {CLIENTS} streams open, p99"),
        (p99, base, "the same with one stream open, p99"),
        LATENCY_GOAL_MS,
        (
            f"{LIVE_JOBS} trainings at {LIVE_RATE} msg/s each ({LIVE_JOBS * LIVE_RATE:,} msg/s) "
            "published steadily; a step's latency is from its publish to the first `job` "
            "event showing it, over the steps that arrive (the hub coalesces)"
        ),
        [
            (f"{CLIENTS} streams: p50 / p99 / max, each rep", _spread(many)),
            ("one stream: p50 / p99 / max, each rep", _spread(one)),
            (
                "steps seen per stream (last rep)",
                f"{last['per_stream']:,.0f} of {last['steps']:,} published "
                f"({last['per_stream'] / last['steps']:.0%}); {last['arrived']:,} in all",
            ),
            (
                "serve applied (last rep)",
                f"{fmt(last['applied'], 'msg/s')} of {fmt(last['offered'], 'msg/s')} offered; "
                f"the publisher ended {max(0.0, last['behind']) * 1000:,.0f} ms behind schedule",
            ),
        ],
    )


def _p99_figure(
    names: tuple[str, str],
    p99s: tuple[float, float, str],
    goal_ms: float,
    note: str,
    details: list[tuple[str, str]],
) -> Figure:
    """A p99 in ms (key and title in ``names``) beside its baseline's (``p99s``: ours,
    theirs, what theirs is), with the goal ``p99 < goal_ms``."""
    (key, title), (p99, base, baseline_name) = names, p99s
    return Figure(
        key=key,
        title=title,
        unit="ms",
        trainwire=p99,
        baseline=base,
        baseline_name=baseline_name,
        goal=f"p99 < {goal_ms:,.0f} ms",
        met=p99 < goal_ms,
        ratio=p99 / base if base else None,
        note=note,
        details=details,
    )


def _spread(reps: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{fmt(r['p50'], 'ms')} / {fmt(r['p99'], 'ms')} / {fmt(r['max'], 'ms')}" for r in reps
    )


def _graph_figures(g: dict[str, Any], rows: int) -> list[Figure]:
    p99, base = percentile(g["page"], 99), percentile(g["floor"], 99)
    kb, file_kb = g["bytes"] / 1000, g["file_bytes"] / 1000
    note = (
        f"a registered job whose loss.log has {rows:,} rows (3 columns, one spike) and grows "
        f"by {APPENDED} rows between requests; the job page's stream, from connecting to the end "
        "of its first `graph` event (the whole file, thinned)"
    )
    return [
        _p99_figure(
            ("serve.graph.latency", f"the job page's graphs, {rows:,} rows, p99"),
            (p99, base, "`GET /api/health` on the same server (its floor), p99"),
            GRAPH_GOAL_MS,
            note,
            [
                ("p50 / p99", f"{fmt(median(g['page']), 'ms')} / {fmt(p99, 'ms')}"),
                ("requests", str(len(g["page"]))),
                (
                    "the first page opened since serve started (reads the file whole)",
                    fmt(g["cold"], "ms"),
                ),
                (
                    "`/api/jobs/KIND/ID/metrics` p50 / p99",
                    f"{fmt(median(g['api']), 'ms')} / {fmt(percentile(g['api'], 99), 'ms')} "
                    f"({g['api_bytes'] / 1000:,.1f} KB)",
                ),
                (
                    "the CSV download (every row) p50 / p99",
                    f"{fmt(median(g['csv']), 'ms')} / {fmt(percentile(g['csv'], 99), 'ms')}",
                ),
            ],
        ),
        Figure(
            key="serve.graph.bytes",
            title=f"the job page's first `graph` event, {rows:,} rows",
            unit="KB",
            trainwire=round(kb, 1),
            baseline=round(file_kb, 1),
            baseline_name="the graph file on disk",
            goal=f"< {GRAPH_GOAL_KB:.0f} KB, the spike kept",
            met=kb < GRAPH_GOAL_KB,  # the spike is checked: a lost one fails the benchmark
            ratio=kb / file_kb,
            ratio_style="%",
            note=note,
            details=[
                ("rows sent", f"{g['sent']:,} of {rows:,}"),
                ("the spike", f"step {g['spike_at']:,} ({SPIKE:g}): in the rows sent"),
            ],
        ),
    ]


def measure(ctx: Context) -> list[Figure]:
    """Four figures: ingest with streams open, publish -> event latency, the long graph's
    latency and size on the job page."""
    quick = ctx.quick
    fleet, reps = ((200, 60), 1) if quick else ((300, 120), 3)
    seconds, rows, requests = (2.0, 10_000, 10) if quick else (20.0, GRAPH_ROWS, 50)
    with tempfile.TemporaryDirectory(dir=ctx.dir) as scratch:
        work = Path(scratch)
        watched: list[float] = []
        alone: list[float] = []
        many: list[dict[str, Any]] = []
        one: list[dict[str, Any]] = []
        for rep in range(reps):
            sides = [(watched, CLIENTS), (alone, 0)]
            for out, clients in sides[rep % 2 :] + sides[: rep % 2]:
                out.append(_drain(ctx, work, clients, fleet, f"drain{rep}c{clients}"))
        for rep in range(max(1, reps - 1)):
            sides2 = [(many, CLIENTS), (one, 1)]
            for out2, clients in sides2[rep % 2 :] + sides2[: rep % 2]:
                out2.append(_watched(ctx, work, clients, seconds, f"live{rep}c{clients}"))
        graph = _graph(ctx, work, rows, requests)
    return [
        _ingest_figure(watched, alone, fleet),
        _latency_figure(many, one),
        *_graph_figures(graph, rows),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch_dir:
        context = Context(quick="--quick" in sys.argv, workdir=Path(scratch_dir))
        try:
            for figure in measure(context):
                ours, theirs = fmt(figure.trainwire, figure.unit), fmt(figure.baseline, figure.unit)
                print(figure.key, ours, theirs, figure.ratio_text, figure.met_text)
                for label, value in figure.details:
                    print("   ", label, value)
        finally:
            context.close()
