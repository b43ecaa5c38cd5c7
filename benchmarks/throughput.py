"""Throughput in every-step mode with publisher confirms, against raw pika.

trainwire: ``trainwire.init(..., max_rate=None)`` (every step is a message), ``n`` calls
of ``run.progress(step)`` as fast as the loop goes, timed until the broker confirmed all
``n``, stamped in the I/O thread's confirm handler as the raw side stamps in its own (no
polling thread competes for the GIL on either side). Baseline: a pika
``SelectConnection`` in the same process publishing the same bodies (built beforehand by
trainwire's own message builder, so the bytes on the wire are the same) with the same
properties, ``mandatory=True``, and pipelined confirms with at most 1,000 in flight —
trainwire's own window.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ._common import Context, Figure, delivered, fmt, median, online_run

__all__ = ["measure"]

WINDOW = 1000


def _stamp_when_confirmed(run: Any, target: int) -> tuple[threading.Event, list[float]]:
    """An event set, and (wall, process CPU) stamped, in the I/O thread's own confirm
    handler once the broker confirmed ``target`` messages of ``run``: the raw side stamps
    in its ``on_confirm`` too. A thread polling for the count instead would wake every
    few milliseconds and take the GIL from the I/O thread (measured: ~15 µs a message of
    trainwire's CPU at a 5 ms poll), a cost the raw side does not pay."""
    publisher = run._transport.publisher
    on_confirm = publisher.on_confirm
    done = threading.Event()
    stamp: list[float] = []

    def counted(method: Any) -> int:
        acked = int(on_confirm(method))
        if not stamp and publisher.delivered >= target:
            stamp.extend((time.perf_counter(), time.process_time()))
            done.set()
        return acked

    publisher.on_confirm = counted
    return done, stamp


def _trainwire_rate(ctx: Context, n: int) -> tuple[float, float]:
    queue = ctx.new_queue()
    run = online_run(ctx.config(queue=queue), total_steps=n, max_rate=None)
    try:
        base = delivered(run)
        done, stamp = _stamp_when_confirmed(run, base + n)
        c0 = time.process_time()
        t0 = time.perf_counter()
        for step in range(1, n + 1):
            run.progress(step)
        if not done.wait(timeout=120):
            raise RuntimeError(f"trainwire delivered {delivered(run) - base} of {n} messages")
        elapsed = stamp[0] - t0
        cpu = stamp[1] - c0
    finally:
        run.done()
        ctx.delete_queue(queue)
    return n / elapsed, cpu / n * 1e6


def _bodies(n: int) -> list[tuple[bytes, Any]]:
    import pika

    from trainwire._spec._protocol import (
        CONTENT_TYPE,
        Identity,
        Kind,
        encode,
        new_message_id,
        progress_message,
    )

    identity = Identity(Kind.TRAINING, "pk-bench", "model-bench")
    now = int(time.time())
    return [
        (
            encode(progress_message(identity, step, round(step * 100.0 / n, 4))),
            pika.BasicProperties(
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=new_message_id(),
                timestamp=now,
                app_id="trainwire",
            ),
        )
        for step in range(1, n + 1)
    ]


def _pika_rate(ctx: Context, n: int) -> tuple[float, float]:
    import pika

    messages = _bodies(n)
    queue = ctx.new_queue()
    state: dict[str, Any] = {
        "sent": 0,
        "acked": 0,
        "t0": 0.0,
        "t1": 0.0,
        "c0": 0.0,
        "c1": 0.0,
        "error": None,
    }

    def publish_more(channel: Any) -> None:
        while state["sent"] < n and state["sent"] - state["acked"] < WINDOW:
            body, props = messages[state["sent"]]
            channel.basic_publish("", queue, body, props, mandatory=True)
            state["sent"] += 1

    def on_confirm(channel: Any, frame: Any) -> None:
        method = frame.method
        if type(method).__name__ != "Ack":
            state["error"] = "nack"
        tag = method.delivery_tag
        state["acked"] = tag if method.multiple else max(state["acked"], tag)
        if state["acked"] >= n:
            state["t1"] = time.perf_counter()
            state["c1"] = time.process_time()
            channel.connection.close()
        else:
            publish_more(channel)

    def on_channel(channel: Any) -> None:
        def ready(_frame: Any) -> None:
            state["c0"] = time.process_time()
            state["t0"] = time.perf_counter()
            publish_more(channel)

        channel.confirm_delivery(lambda frame: on_confirm(channel, frame), callback=ready)

    def on_open_error(conn: Any, exc: BaseException) -> None:
        state["error"] = repr(exc)
        conn.ioloop.stop()

    conn = pika.SelectConnection(
        ctx.broker().params(),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=on_open_error,
        on_close_callback=lambda c, exc: c.ioloop.stop(),
    )
    conn.ioloop.call_later(120, conn.ioloop.stop)  # never hang the whole run
    try:
        conn.ioloop.start()
    finally:
        ctx.delete_queue(queue)
    if state["error"] or not state["t1"]:
        raise RuntimeError(f"raw pika baseline failed: {state}")
    return n / (state["t1"] - state["t0"]), (state["c1"] - state["c0"]) / n * 1e6


def measure(ctx: Context) -> list[Figure]:
    """One figure: trainwire msg/s as a share of raw pika's, alternating, several reps."""
    n = 2_000 if ctx.quick else 10_000
    reps = 2 if ctx.quick else 7
    ours: list[float] = []
    theirs: list[float] = []
    cpu_ours: list[float] = []
    cpu_theirs: list[float] = []
    for rep in range(reps):
        for side in ("pika", "trainwire") if rep % 2 == 0 else ("trainwire", "pika"):
            if side == "pika":
                rate, cpu = _pika_rate(ctx, n)
                theirs.append(rate)
                cpu_theirs.append(cpu)
            else:
                rate, cpu = _trainwire_rate(ctx, n)
                ours.append(rate)
                cpu_ours.append(cpu)
    ratio = median([a / b for a, b in zip(ours, theirs)])
    return [
        Figure(
            key="throughput",
            title="throughput, every-step mode (`max_rate=None`), publisher confirms",
            unit="msg/s",
            trainwire=median(ours),
            baseline=median(theirs),
            baseline_name="raw pika `SelectConnection`, 1,000 confirms in flight",
            goal=">= 90 % of raw pika",
            met=ratio >= 0.9,
            ratio=ratio,
            ratio_style="%",
            note="persistent messages to a durable classic queue on loopback",
            details=[
                ("trainwire, each rep", ", ".join(fmt(v, "msg/s") for v in ours)),
                ("raw pika, each rep", ", ".join(fmt(v, "msg/s") for v in theirs)),
                (
                    "client CPU per message (process time, median)",
                    f"trainwire {median(cpu_ours):.1f} µs, raw pika {median(cpu_theirs):.1f} µs",
                ),
                (
                    "how",
                    f"{reps} reps of {n:,} messages each side, alternating who goes first; "
                    "timed from the first publish to the last confirm",
                ),
            ],
        )
    ]
