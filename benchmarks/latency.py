"""Latency: a ``progress()`` call to its arrival at a consumer, at 200 messages per second.

trainwire runs in every-step mode (``max_rate=None``: at the default ``max_rate=10``,
200 calls a second coalesce to 10 messages). Baseline: ``basic_publish`` of the same body
on a pika ``BlockingConnection`` from the calling thread itself — the floor set by the
network and the broker, paid for by blocking the training loop on every call.

Both go in the same paced loop, to two queues: every tick (5 ms) sends step ``n`` through
both, in alternating order, so that both see the same moments of the shared machine. One
consumer thread in the same process (another pika ``BlockingConnection``) reads both
queues; both sides stamp ``time.perf_counter()``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ._common import Context, Figure, online_run, percentile

__all__ = ["measure"]

RATE = 200.0


class _Consumer(threading.Thread):
    """Consumes ``queues`` until ``expected`` progress messages arrived on each."""

    def __init__(self, ctx: Context, queues: tuple[str, ...], expected: int) -> None:
        super().__init__(name="bench-consumer", daemon=True)
        self.ctx, self.queues, self.expected = ctx, queues, expected
        self.arrivals: dict[str, dict[int, float]] = {q: {} for q in queues}
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from trainwire._spec._protocol import Status, decode, validate

        try:
            conn = self.ctx.broker().connect()
            channel = conn.channel()

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                now = time.perf_counter()
                msg = validate(decode(body))
                if msg.status is Status.PROGRESS and msg.step is not None and msg.step > 0:
                    self.arrivals[method.routing_key].setdefault(msg.step, now)
                ch.basic_ack(method.delivery_tag)

            for queue in self.queues:
                channel.basic_consume(queue, on_message)
            self.ready.set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(
                len(a) < self.expected for a in self.arrivals.values()
            ):
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except BaseException as exc:  # reported by the caller
            self.error = exc
            self.ready.set()


def _latencies(sent: dict[int, float], arrivals: dict[int, float], who: str) -> list[float]:
    missing = [s for s in sent if s not in arrivals]
    if missing:
        raise RuntimeError(f"{who}: {len(missing)} of {len(sent)} messages never arrived")
    return [(arrivals[s] - t) * 1000.0 for s, t in sent.items()]


def measure(ctx: Context) -> list[Figure]:
    """Two figures: p50 and p99 latency, trainwire against the synchronous pika floor."""
    import pika

    from trainwire._spec._protocol import (
        CONTENT_TYPE,
        Identity,
        Kind,
        encode,
        new_message_id,
        progress_message,
    )

    n = 150 if ctx.quick else 1200
    ours_q, theirs_q = ctx.new_queue(), ctx.new_queue()
    run = online_run(ctx.config(queue=ours_q), total_steps=n, max_rate=None)
    conn = ctx.broker().connect()
    channel = conn.channel()
    identity = Identity(Kind.TRAINING, "pk-bench", "model-bench")

    def publish(step: int) -> None:
        channel.basic_publish(
            "",
            theirs_q,
            encode(progress_message(identity, step, round(step * 100.0 / n, 4))),
            pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=2,
                message_id=new_message_id(),
                timestamp=int(time.time()),
            ),
        )

    consumer = _Consumer(ctx, (ours_q, theirs_q), n)
    sent_ours: dict[int, float] = {}
    sent_theirs: dict[int, float] = {}
    try:
        consumer.start()
        consumer.ready.wait(30)
        progress, clock = run.progress, time.perf_counter
        start = clock() + 0.05
        for step in range(1, n + 1):
            pause = start + (step - 1) / RATE - clock()
            if pause > 0:
                time.sleep(pause)
            if step % 2:
                sent_ours[step] = clock()
                progress(step)
                sent_theirs[step] = clock()
                publish(step)
            else:
                sent_theirs[step] = clock()
                publish(step)
                sent_ours[step] = clock()
                progress(step)
        consumer.join(60)
    finally:
        conn.close()
        run.done()
        ctx.delete_queue(ours_q)
        ctx.delete_queue(theirs_q)
    if consumer.error is not None:
        raise RuntimeError(f"the consumer failed: {consumer.error!r}")
    ours = _latencies(sent_ours, consumer.arrivals[ours_q], "trainwire")
    theirs = _latencies(sent_theirs, consumer.arrivals[theirs_q], "pika")

    def spread(values: list[float]) -> str:
        return " / ".join(f"{percentile(values, q):.2f}" for q in (50, 90, 99, 100)) + " ms"

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
                    ("trainwire p50 / p90 / p99 / max", spread(ours)),
                    ("synchronous pika p50 / p90 / p99 / max", spread(theirs)),
                    (
                        "how",
                        f"{n} steps at {RATE:.0f}/s, each sent through both in the same tick "
                        "(alternating which goes first) to two queues; percentiles by "
                        "nearest rank",
                    ),
                ],
            )
        )
    return figures
