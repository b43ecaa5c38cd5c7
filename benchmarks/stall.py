"""Worst step stall: the longest single ``progress()`` call while the broker restarts.

A training loop of short steps (each sleeps 200 µs, as a step waiting on an accelerator
releases the GIL, then does a little Python work) calls ``run.progress(step)`` on an
online run at the default ``max_rate``, timing every call. Meanwhile another thread
stops the broker and starts it again (``Broker.restart``), and the loop goes on until the
run has reconnected and delivered again. Baseline: ``tqdm.update(1)`` timed the same way
in the same loop, right after each ``progress()``: a call of similar length exposed to
the same scheduler, so the machine's own jitter shows in both columns.

The kernel also says, per thread, how long the thread sat runnable waiting for a CPU
(``/proc/self/task/<tid>/schedstat``, second field). Read around every call, it splits a
slow call into time the machine did not run us (other jobs on a shared machine) and the
rest (our own threads, the GIL, trainwire). Both are reported.
"""

from __future__ import annotations

import array
import logging
import os
import threading
import time
from typing import Callable

from ._common import Context, Figure, delivered, online_run, percentile, wait_until

__all__ = ["measure"]

STEP_SLEEP = 0.0002


def _runqueue_reader() -> Callable[[], int]:
    """ns this thread has waited on a run queue so far (0s if the kernel does not say)."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
    except (OSError, AttributeError):
        return lambda: 0
    pread = os.pread

    def read() -> int:
        return int(pread(fd, 64, 0).split()[1])

    return read


def _stats(wall: array.array, waited: array.array) -> dict[str, float]:
    own = [max(0, w - q) for w, q in zip(wall, waited)]
    worst = max(range(len(wall)), key=wall.__getitem__)
    return {
        "max_ms": wall[worst] / 1e6,
        "max_waited_ms": waited[worst] / 1e6,
        "own_max_ms": max(own) / 1e6,
        "p50_us": percentile(list(wall), 50) / 1e3,
        "p99_us": percentile(list(wall), 99) / 1e3,
        "p999_us": percentile(list(wall), 99.9) / 1e3,
        "over_1ms": sum(1 for v in wall if v > 1_000_000),
        "own_over_1ms": sum(1 for v in own if v > 1_000_000),
    }


def measure(ctx: Context) -> list[Figure]:
    """Two figures: the worst progress() call, raw and without CPU run-queue waits."""
    from tqdm import tqdm

    broker = ctx.broker()
    queue = ctx.new_queue()
    logging.getLogger("trainwire").setLevel(logging.CRITICAL)  # the outage is on purpose
    run = online_run(ctx.config(queue=queue), total_steps=10**12)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    bar = tqdm(total=None, file=devnull)
    ours, ours_q = array.array("q"), array.array("q")
    theirs, theirs_q = array.array("q"), array.array("q")
    stop = threading.Event()
    timeline: dict[str, float] = {}

    def outage() -> None:
        try:
            time.sleep(0.5)
            timeline["stop"] = time.perf_counter()
            if ctx.quick:  # a smoke run: the broker drops every connection, stays up
                broker.close_all_connections()
            else:
                broker.restart()
            timeline["up"] = time.perf_counter()
            seen = delivered(run)
            if wait_until(lambda: delivered(run) > seen, timeout=60, interval=0.05):
                timeline["delivered"] = time.perf_counter()
            time.sleep(0.5)
        finally:
            stop.set()

    driver = threading.Thread(target=outage, name="bench-outage", daemon=True)
    progress, update, clock, sleep = run.progress, bar.update, time.perf_counter_ns, time.sleep
    runq = _runqueue_reader()
    step = 0
    t_start = time.perf_counter()
    driver.start()
    try:
        while not stop.is_set():
            sleep(STEP_SLEEP)
            step += 1
            x = 0
            for i in range(50):  # a little Python work that holds the GIL
                x += i
            q0 = runq()
            t0 = clock()
            progress(step)
            t1 = clock()
            q1 = runq()
            t2 = clock()
            update(1)
            t3 = clock()
            q2 = runq()
            ours.append(t1 - t0)
            ours_q.append(q1 - q0)
            theirs.append(t3 - t2)
            theirs_q.append(q2 - q1)
    finally:
        driver.join(120)
        bar.close()
        devnull.close()
        run.done()
        ctx.delete_queue(queue)
        logging.getLogger("trainwire").setLevel(logging.NOTSET)
    a, b = _stats(ours, ours_q), _stats(theirs, theirs_q)
    outage_s = timeline.get("up", 0.0) - timeline.get("stop", 0.0)
    back_s = timeline.get("delivered", float("nan")) - timeline.get("stop", 0.0)
    what = "closing every connection (--quick)" if ctx.quick else "down and restarting"
    note = (
        f"{len(ours):,} calls over {time.perf_counter() - t_start:.1f} s; broker {what} for "
        f"{outage_s:.1f} s, delivering again {back_s:.1f} s after the stop"
    )
    details = [
        (
            "progress(): p50 / p99 / p99.9 / max",
            f"{a['p50_us']:.1f} / {a['p99_us']:.1f} / {a['p999_us']:.1f} µs / {a['max_ms']:.2f} ms",
        ),
        (
            "tqdm.update(1): p50 / p99 / p99.9 / max",
            f"{b['p50_us']:.1f} / {b['p99_us']:.1f} / {b['p999_us']:.1f} µs / {b['max_ms']:.2f} ms",
        ),
        (
            "of the worst call, waiting for a CPU (run queue)",
            f"progress(): {a['max_waited_ms']:.2f} ms; tqdm.update: {b['max_waited_ms']:.2f} ms",
        ),
        (
            "calls over 1 ms (raw / without run-queue wait)",
            f"progress(): {a['over_1ms']} / {a['own_over_1ms']}; "
            f"tqdm.update: {b['over_1ms']} / {b['own_over_1ms']}",
        ),
    ]
    return [
        Figure(
            key="stall",
            title="worst single `progress()` call during a broker restart (wall time)",
            unit="ms",
            trainwire=a["max_ms"],
            baseline=b["max_ms"],
            baseline_name="worst `tqdm.update(1)` in the same loop",
            goal="< 1 ms",
            met=a["max_ms"] < 1.0,
            ratio=a["max_ms"] / b["max_ms"] if b["max_ms"] > 0 else None,
            note=note,
            details=details,
        ),
        Figure(
            key="stall.own",
            title="same, without the time the thread waited for a CPU (run queue)",
            unit="ms",
            trainwire=a["own_max_ms"],
            baseline=b["own_max_ms"],
            baseline_name="`tqdm.update(1)`, same correction",
            goal="< 1 ms",
            met=a["own_max_ms"] < 1.0,
            ratio=a["own_max_ms"] / b["own_max_ms"] if b["own_max_ms"] > 0 else None,
            note="wall time of each call minus its run-queue wait from "
            "/proc/self/task/<tid>/schedstat: what our own process (its threads, the GIL, "
            "trainwire) cost the call. The counter is read just outside the timed call, so "
            "a wait that lands in one of the two reads counts too (it shows as more wait "
            "than call)",
        ),
    ]
