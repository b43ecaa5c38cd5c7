"""``trainwire serve`` ingest: messages applied per second, against a raw pika consumer.

A queue is filled beforehand with the messages of many trainings (each job: progress
steps, then ``training_done``; jobs interleaved as a fleet sends them). Then the consumer
starts and drains it. trainwire: a real ``trainwire serve`` process (SQLite, and
PostgreSQL on a private server), the rate read from its ``/api/health`` counter.
Baseline: a raw pika consumer in its own process with the same prefetch, acking each batch
of the size serve stores at once (half the prefetch count) with ``multiple`` and doing
nothing else. Both use serve's default prefetch. Each side starts once the broker holds
every message and has gone quiet (the fill is published without confirms, and the broker
goes on writing it for a while): the raw consumer is ready a second before serve is, and
would otherwise share the machine with the broker's work on the fill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from trainwire._serve._defaults import PREFETCH

from ._common import Context, Figure, child_env, fmt, median, python

__all__ = ["measure"]

#: Messages serve stores in one transaction at most, and the raw consumer acks at once.
BATCH = PREFETCH // 2
#: A fleet of this many trainings at the platform's default 10 messages a second.
FLEET = 1_000
_RAW_CONSUMER = """
import sys, time, pika
host, queue = sys.argv[1], sys.argv[3]
port, n, prefetch, batch = (int(a) for a in (sys.argv[2], *sys.argv[4:7]))
conn = pika.BlockingConnection(pika.ConnectionParameters(host, port, heartbeat=0))
ch = conn.channel()
ch.basic_qos(prefetch_count=prefetch)
got, first = 0, None
for method, props, body in ch.consume(queue, auto_ack=False):
    if first is None:
        first, cpu = time.perf_counter(), time.process_time()
    got += 1
    if got % batch == 0 or got == n:
        ch.basic_ack(method.delivery_tag, multiple=True)
    if got == n:
        break
print(n / (time.perf_counter() - first), (time.process_time() - cpu) / n * 1e6)
"""


def _fill(ctx: Context, queue: str, jobs: int, steps: int, prefix: str = "model") -> int:
    """Publish ``jobs`` x (``steps`` progress + done) messages; how many."""
    import pika

    from trainwire._spec._protocol import Identity, Kind, done_message, encode, progress_message

    ids = [Identity(Kind.TRAINING, "pk-bench", f"{prefix}-{j:05d}") for j in range(jobs)]
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    conn = ctx.broker().connect()
    try:
        channel = conn.channel()
        for step in range(1, steps + 2):
            for identity in ids:
                body = (
                    progress_message(identity, step, step * 100.0 / (steps + 1))
                    if step <= steps
                    else done_message(identity)
                )
                channel.basic_publish("", queue, encode(body), props)
    finally:
        conn.close()
    return jobs * (steps + 1)


#: (messages per second, CPU µs per message of the consuming process)
Side = tuple[float, float]


def _raw_rate(ctx: Context, queue: str, n: int) -> Side:
    broker = ctx.broker()
    out = subprocess.run(
        [python(), "-c", _RAW_CONSUMER, broker.host, str(broker.port), queue, str(n),
         str(PREFETCH), str(BATCH)],
        capture_output=True, text=True, timeout=300, env=child_env(),
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"raw consumer failed: {out.stderr[-500:]}")
    rate, cpu = out.stdout.split()
    return float(rate), float(cpu)


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/api/health", timeout=10) as response:
        return dict(json.load(response))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve_rate(ctx: Context, queue: str, n: int, db: str) -> Side:
    broker = ctx.broker()
    amqp = f"amqp://guest:guest@{broker.host}:{broker.port}/%2F"
    with tempfile.TemporaryDirectory(dir=ctx.dir) as work:
        log = Path(work) / "serve.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [python(), "-m", "trainwire", "serve", "--port", "0", "--amqp-url", amqp,
                 "--queue", queue, "--db", db, "--prefetch", str(PREFETCH)],
                cwd=work, env=child_env(), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            url = _wait_url(log, proc)
            cpu = _cpu_seconds(proc.pid)
            rate = _drain_rate(url, n)
            return rate, (_cpu_seconds(proc.pid) - cpu) / n * 1e6
        finally:
            proc.terminate()
            proc.wait(30)


def _wait_url(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if "web page at " in line:
                return line.split("web page at ", 1)[1].strip().rstrip("/")
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {log.read_text(errors='replace')[-800:]}")
        time.sleep(0.02)
    raise RuntimeError("serve did not start in 60 s")


def _drain_rate(url: str, n: int) -> float:
    """Messages per second from the first poll of ``/api/health`` until all ``n`` arrived."""
    t0, r0 = time.perf_counter(), int(_health(url).get("received", 0))
    deadline = t0 + 600
    while time.perf_counter() < deadline:
        received = int(_health(url).get("received", 0))
        if received >= n:
            if received - r0 < n // 4:
                raise RuntimeError("serve drained the queue before it could be timed")
            return (received - r0) / (time.perf_counter() - t0)
        time.sleep(0.05)
    raise RuntimeError("serve did not drain the queue in 600 s")


def _postgres() -> Any:
    """The tests' private PostgreSQL server (``benchmarks._broker`` put tests/ on the path)."""
    from . import _broker

    assert _broker.Broker  # importing it put tests/ on sys.path
    from _postgres import Postgres

    return Postgres().start()


#: The broker is quiet when it used less than this share of a core over QUIET_WINDOW s.
QUIET_SHARE = 0.10
QUIET_WINDOW = 0.25


def _quiet(ctx: Context, queue: str, n: int, timeout: float = 30.0) -> None:
    """Until the broker holds the ``n`` messages of ``queue`` and has gone quiet."""
    broker = ctx.broker()
    deadline = time.monotonic() + timeout
    conn = broker.connect()
    try:
        channel = conn.channel()
        while channel.queue_declare(queue, passive=True).method.message_count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not take the {n:,} messages in {timeout} s")
            time.sleep(0.05)
    finally:
        conn.close()
    pid = broker.pid
    while pid is not None and time.monotonic() < deadline:
        cpu = _cpu_seconds(pid)
        time.sleep(QUIET_WINDOW)
        if _cpu_seconds(pid) - cpu < QUIET_SHARE * QUIET_WINDOW:
            return


def _side(ctx: Context, jobs: int, steps: int, db: str | None) -> Side:
    queue = ctx.new_queue()
    try:
        n = _fill(ctx, queue, jobs, steps)
        _quiet(ctx, queue, n)
        return _raw_rate(ctx, queue, n) if db is None else _serve_rate(ctx, queue, n, db)
    finally:
        ctx.delete_queue(queue)


def _figure(
    key: str, store: str, our_sides: list[Side], raw_sides: list[Side], goal: str
) -> Figure:
    ours, raw = [r for r, _ in our_sides], [r for r, _ in raw_sides]
    ratio = median([a / b for a, b in zip(ours, raw)])
    rate = median(ours)
    met = ratio >= 0.5 and rate >= FLEET * 10 if store == "SQLite" else rate >= FLEET * 10
    return Figure(
        key=key,
        title=f"`serve` ingest, {store}",
        unit="msg/s",
        trainwire=rate,
        baseline=median(raw),
        baseline_name=f"raw pika consumer, prefetch {PREFETCH}, one ack per {BATCH} messages",
        goal=goal,
        met=met,
        ratio=ratio,
        ratio_style="%",
        note=f"follows {rate / 10:,.0f} trainings at 10 msg/s",
        details=[
            (f"serve ({store}), each rep", ", ".join(fmt(v, "msg/s") for v in ours)),
            ("raw consumer, each rep", ", ".join(fmt(v, "msg/s") for v in raw)),
            (
                "CPU per message of the consuming process (median)",
                f"serve {median([c for _, c in our_sides]):.0f} µs, "
                f"raw consumer {median([c for _, c in raw_sides]):.0f} µs",
            ),
        ],
    )


def measure(ctx: Context) -> list[Figure]:
    """Two figures: serve's ingest rate on SQLite and on PostgreSQL, each beside raw pika."""
    # Five reps: the raw consumer's rate swings by a quarter from one rep to the next.
    jobs, steps, reps = (200, 9, 1) if ctx.quick else (1_000, 19, 5)
    pg = _postgres()
    sides = ("raw", "sqlite", "postgres")
    rates: dict[str, list[Side]] = {name: [] for name in sides}
    try:
        for rep in range(reps):
            dbs = {
                "raw": None,
                "sqlite": f"sqlite:///{ctx.dir}/ingest-{rep}.sqlite3",
                "postgres": pg.create_database(f"ingest{rep}"),
            }
            for name in sides[rep % 3 :] + sides[: rep % 3]:  # who goes first rotates
                rates[name].append(_side(ctx, jobs, steps, dbs[name]))
    finally:
        pg.close()
    goal = f">= 50 % of raw and >= {FLEET * 10:,} msg/s ({FLEET:,} trainings at 10 msg/s)"
    return [
        _figure("serve.ingest.sqlite", "SQLite", rates["sqlite"], rates["raw"], goal),
        _figure(
            "serve.ingest.postgres",
            "PostgreSQL",
            rates["postgres"],
            rates["raw"],
            f">= {FLEET * 10:,} msg/s ({FLEET:,} trainings at 10 msg/s)",
        ),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        context = Context(quick="--quick" in sys.argv, workdir=Path(scratch))
        try:
            for figure in measure(context):
                print(figure.key, fmt(figure.trainwire, "msg/s"), fmt(figure.baseline, "msg/s"),
                      figure.ratio_text, figure.note)  # fmt: skip
        finally:
            context.close()
