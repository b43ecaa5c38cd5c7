"""``for x in trainwire.track(iterable)`` against ``for x in tqdm(iterable)``."""

from __future__ import annotations

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

TOTAL = 10**12


def _loop_bare(n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return time.perf_counter_ns() - t0


def _loop_wrapped(wrap: Callable[[Any], Any]) -> Callable[[int], int]:
    def loop(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in wrap(range(n)):
            pass
        return time.perf_counter_ns() - t0

    return loop


def _missing(reason: str) -> list[Figure]:
    return [
        Figure(
            key=f"track.{key}",
            title=f"`trainwire.track()` loop, {label}",
            unit="ns",
            trainwire=None,
            baseline=None,
            baseline_name="`for x in tqdm(...)`",
            goal="no slower than tqdm (ratio <= 1.00)",
            available=False,
            note=f"not available: {reason}",
        )
        for key, label in (("offline", "offline run"), ("online", "online run (live broker)"))
    ]


def measure(ctx: Context) -> list[Figure]:
    """Two figures: a track() loop into an offline run and into an online run, against tqdm.

    A disabled run is not measured: ``track`` skips reporting entirely when the run does
    not report, which would measure a bare loop.
    """
    from tqdm import tqdm

    import trainwire

    track = getattr(trainwire, "track", None)
    if track is None:
        return _missing("`trainwire.track` is not in this tree (src/trainwire/_sdk/_track.py)")

    n = 50_000 if ctx.quick else 200_000
    rounds = 3 if ctx.quick else 11
    queue = ctx.new_queue()
    with env_mode("offline"):
        offline = trainwire.init(ctx.config(), total_steps=TOTAL)
    online = online_run(ctx.config(queue=queue), total_steps=TOTAL)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        res = alternate(
            {
                "bare": _loop_bare,
                "tqdm": _loop_wrapped(lambda it: tqdm(it, file=devnull)),
                "offline": _loop_wrapped(lambda it: track(it, run=offline)),
                "online": _loop_wrapped(lambda it: track(it, run=online)),
            },
            n,
            rounds,
        )
    finally:
        devnull.close()
        offline.done()
        online.done()
        ctx.delete_queue(queue)

    med = {k: median(v) for k, v in res.items()}
    details = [
        (label, f"{fmt(med[key], 'ns')} per iteration")
        for key, label in (
            ("bare", "`for x in range(n): pass`"),
            ("tqdm", "`for x in tqdm(range(n), file=devnull): pass`"),
            ("offline", "`for x in trainwire.track(range(n), run=offline_run): pass`"),
            ("online", "`for x in trainwire.track(range(n), run=online_run): pass`"),
        )
    ]
    details.append(("how", f"{rounds} rounds of {n:,}-iteration loops, order rotated; medians"))
    figures = []
    for key, label in (("offline", "offline run"), ("online", "online run (live broker)")):
        ratio = per_round_ratio(res, key, "tqdm")
        figures.append(
            Figure(
                key=f"track.{key}",
                title=f"`trainwire.track()` loop, {label}",
                unit="ns",
                trainwire=med[key],
                baseline=med["tqdm"],
                baseline_name="`for x in tqdm(...)`",
                goal="no slower than tqdm (ratio <= 1.00)",
                met=ratio <= 1.0,
                ratio=ratio,
                note="per iteration, loop included",
                details=details if key == "offline" else [],
            )
        )
    return figures
