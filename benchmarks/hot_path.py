"""Hot path: ``run.progress(step)`` per call against an empty loop, ``deque.append`` and
``tqdm.update(1)``, with a disabled run and with an online run to a live broker."""

from __future__ import annotations

import collections
import os
import time
from typing import Any, Callable

from ._common import (
    Context,
    Figure,
    alternate,
    env_mode,
    fmt,
    median,
    online_run,
    per_round_ratio,
)

__all__ = ["measure"]

TOTAL = 10**12  # total_steps: far above any step measured, so percentages stay < 100


def _loop_empty(n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return time.perf_counter_ns() - t0


def _loop_index(f: Callable[[int], Any]) -> Callable[[int], int]:
    def loop(n: int) -> int:
        t0 = time.perf_counter_ns()
        for i in range(n):
            f(i)
        return time.perf_counter_ns() - t0

    return loop


def _loop_one(f: Callable[[int], Any]) -> Callable[[int], int]:
    def loop(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            f(1)
        return time.perf_counter_ns() - t0

    return loop


def measure(ctx: Context) -> list[Figure]:
    """Two figures: progress() disabled and online, each against tqdm.update(1)."""
    from tqdm import tqdm

    import trainwire

    n = 50_000 if ctx.quick else 200_000
    rounds = 3 if ctx.quick else 15
    queue = ctx.new_queue()
    with env_mode("disabled"):
        disabled = trainwire.init(ctx.config(), total_steps=TOTAL)
    online = online_run(ctx.config(queue=queue), total_steps=TOTAL)  # default max_rate=10
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    bar = tqdm(total=None, file=devnull)
    sink: collections.deque[int] = collections.deque(maxlen=1)
    try:
        res = alternate(
            {
                "empty": _loop_empty,
                "deque": _loop_index(sink.append),
                "tqdm": _loop_one(bar.update),
                "disabled": _loop_index(disabled.progress),
                "online": _loop_index(online.progress),
            },
            n,
            rounds,
        )
    finally:
        bar.close()
        devnull.close()
        disabled.done()
        online.done()
        ctx.delete_queue(queue)

    med = {k: median(v) for k, v in res.items()}
    empty = med["empty"]
    details = [
        (
            f"{label}",
            f"{fmt(med[key], 'ns')} per iteration, {fmt(med[key] - empty, 'ns')} above the "
            f"empty loop",
        )
        for key, label in (
            ("empty", "empty loop body (`for i in range(n): pass`)"),
            ("deque", "`collections.deque(maxlen=1).append(i)`"),
            ("tqdm", "`tqdm.update(1)` (output to /dev/null)"),
            ("disabled", "`run.progress(i)`, `TRAINWIRE_MODE=disabled`"),
            ("online", "`run.progress(i)`, online to the local broker, default max_rate=10"),
        )
    ]
    details.append(
        ("how", f"{rounds} rounds of {n:,} calls each, order rotated per round; medians")
    )
    figures = []
    for key, title in (
        ("disabled", "hot path: `run.progress(step)`, disabled run"),
        ("online", "hot path: `run.progress(step)`, online run (live broker)"),
    ):
        ratio = per_round_ratio(res, key, "tqdm")
        figures.append(
            Figure(
                key=f"hot_path.{key}",
                title=title,
                unit="ns",
                trainwire=med[key],
                baseline=med["tqdm"],
                baseline_name="`tqdm.update(1)`",
                goal="no slower than tqdm.update (ratio <= 1.00)",
                met=ratio <= 1.0,
                ratio=ratio,
                note="per loop iteration, loop included; ratio = median of per-round ratios",
                details=details if key == "disabled" else [],
            )
        )
    return figures
