"""Latency: a ``progress()`` call to its arrival at a consumer, at 200 messages per second.

trainwire runs in every-step mode (``max_rate=None``: at the default ``max_rate=10``,
200 calls a second coalesce to 10 messages). The consumer is a pika ``BlockingConnection``
in another thread of the same process; both sides stamp ``time.perf_counter()``.
Baseline: the same paced loop publishing the same body with ``basic_publish`` on a pika
``BlockingConnection`` from the calling thread itself — the floor set by the network
and the broker, paid for by blocking the training loop on every call.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from ._common import Context, Figure, online_run, percentile

__all__ = ["measure"]

RATE = 200.0


class _Consumer(threading.Thread):
    """Consumes ``queue`` until ``expected`` progress messages arrived; stamps arrivals."""

    def __init__(self, ctx: Context, queue: str, expected: int) -> None:
        super().__init__(name="bench-consumer", daemon=True)
        self.ctx, self.queue, self.expected = ctx, queue, expected
        self.arrivals: dict[int, float] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from trainwire._protocol import Status, decode, validate

        try:
            conn = self.ctx.broker().connect()
            channel = conn.channel()

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                now = time.perf_counter()
                msg = validate(decode(body))
                if msg.status is Status.PROGRESS and msg.step is not None and msg.step > 0:
                    self.arrivals.setdefault(msg.step, now)
                ch.basic_ack(method.delivery_tag)

            channel.basic_consume(self.queue, on_message)
            self.ready.set()
            deadline = time.monotonic() + 120
            while len(self.arrivals) < self.expected and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except BaseException as exc:  # reported by the caller
            self.error = exc
            self.ready.set()


def _paced(n: int, send: Callable[[int], None]) -> dict[int, float]:
    """Call ``send(step)`` for steps 1..n at RATE per second; the send time of each."""
    sent: dict[int, float] = {}
    start = time.perf_counter() + 0.05
    for step in range(1, n + 1):
        due = start + (step - 1) / RATE
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent[step] = time.perf_counter()
        send(step)
    return sent


def _latencies(ctx: Context, queue: str, n: int, send: Callable[[int], None]) -> list[float]:
    consumer = _Consumer(ctx, queue, n)
    consumer.start()
    consumer.ready.wait(30)
    sent = _paced(n, send)
    consumer.join(60)
    if consumer.error is not None:
        raise RuntimeError(f"the consumer failed: {consumer.error!r}")
    missing = [s for s in sent if s not in consumer.arrivals]
    if missing:
        raise RuntimeError(f"{len(missing)} of {n} messages never arrived (first: {missing[0]})")
    return [(consumer.arrivals[s] - t) * 1000.0 for s, t in sent.items()]


def _trainwire(ctx: Context, n: int) -> list[float]:
    queue = ctx.new_queue()
    run = online_run(ctx.config(queue=queue), total_steps=n, max_rate=None)
    try:
        return _latencies(ctx, queue, n, run.progress)
    finally:
        run.done()
        ctx.delete_queue(queue)


def _pika(ctx: Context, n: int) -> list[float]:
    import pika

    from trainwire._protocol import (
        CONTENT_TYPE,
        Identity,
        Kind,
        encode,
        new_message_id,
        progress_message,
    )

    identity = Identity(Kind.TRAINING, "pk-bench", "model-bench")
    queue = ctx.new_queue()
    conn = ctx.broker().connect()
    channel = conn.channel()

    def send(step: int) -> None:
        channel.basic_publish(
            "",
            queue,
            encode(progress_message(identity, step, round(step * 100.0 / n, 4))),
            pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=2,
                message_id=new_message_id(),
                timestamp=int(time.time()),
            ),
        )

    try:
        return _latencies(ctx, queue, n, send)
    finally:
        conn.close()
        ctx.delete_queue(queue)


def measure(ctx: Context) -> list[Figure]:
    """Two figures: p50 and p99 latency, trainwire against the synchronous pika floor."""
    n = 100 if ctx.quick else 600
    reps = 1 if ctx.quick else 2
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(reps):
        if rep % 2:
            ours += _trainwire(ctx, n)
            theirs += _pika(ctx, n)
        else:
            theirs += _pika(ctx, n)
            ours += _trainwire(ctx, n)
    figures = []
    for q in (50, 99):
        a, b = percentile(ours, q), percentile(theirs, q)
        figures.append(
            Figure(
                key=f"latency.p{q}",
                title=f"latency p{q}, `progress()` call to consumer, 200 msg/s",
                unit="ms",
                trainwire=a,
                baseline=b,
                baseline_name="pika `BlockingConnection.basic_publish` from the calling thread",
                ratio=a / b if b > 0 else None,
                note="every-step mode; no goal set",
                details=[]
                if q == 99
                else [
                    (
                        "trainwire p50 / p90 / p99 / max",
                        " / ".join(f"{percentile(ours, x):.2f}" for x in (50, 90, 99, 100)) + " ms",
                    ),
                    (
                        "synchronous pika p50 / p90 / p99 / max",
                        " / ".join(f"{percentile(theirs, x):.2f}" for x in (50, 90, 99, 100))
                        + " ms",
                    ),
                    (
                        "how",
                        f"{reps} x {n} messages each side at {RATE:.0f}/s, paced by sleep, "
                        f"{len(ours)} samples each; percentiles by nearest rank",
                    ),
                ],
            )
        )
    return figures
