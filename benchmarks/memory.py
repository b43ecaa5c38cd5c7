"""Memory: RSS growth over 1,000,000 ``progress()`` calls while the broker is down.

Each case runs in a fresh interpreter (``python -m benchmarks.memory --child ...``) so
that nothing measured before it shapes its heap. The config points at a loopback port
where nothing listens: the run's I/O thread keeps failing to connect and retrying in the
background. pika is imported and the first connect attempt has failed before the first
reading, so the figure is what the calls themselves add. Baseline, like with like: the
same loop in the same kind of child without trainwire, appending the same bare ints to a
bare ``deque`` of the bound trainwire's outbox has in that mode (1 entry under a rate
limit, ``EVERY_STEP_BACKLOG`` in every-step mode).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from ._common import Context, Figure, child_env, python

__all__ = ["measure"]

CALLS = 1_000_000
#: The two modes measured: (case, label, the max_rate passed to init).
CASES = (("default", "default `max_rate=10`", 10), ("every_step", "`max_rate=None`", None))


def _bound(case: str) -> int:
    """How many entries the outbox keeps in ``case``: the newest one under a rate limit."""
    from trainwire._broker._transport import EVERY_STEP_BACKLOG

    return EVERY_STEP_BACKLOG if case == "every_step" else 1


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _child(side: str, case: str, config: str, calls: int) -> dict[str, Any]:
    import collections
    import logging

    import pika  # noqa: F401 - loaded before the first reading, as in a real program

    logging.getLogger("trainwire").setLevel(logging.CRITICAL)  # the refusals are expected
    if side == "baseline":
        sink: collections.deque[int] = collections.deque(maxlen=_bound(case))
        push: Any = sink.append
        run = None
    else:
        import trainwire

        max_rate = {c: rate for c, _, rate in CASES}[case]
        run = trainwire.init(config, total_steps=calls, max_rate=max_rate, flush_timeout=0)
        run.progress(0)
        time.sleep(1.0)  # the I/O thread starts, imports, fails its first connect
        push = run.progress
    gc.collect()
    before = _rss_mb()
    peak_before = _peak_mb()
    t0 = time.perf_counter()
    for step in range(calls):  # the same loop on both sides
        push(step)
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = _rss_mb()
    result = {
        "side": side,
        "case": case,
        "before_mb": before,
        "after_mb": after,
        "growth_mb": after - before,
        "peak_growth_mb": _peak_mb() - peak_before,
        "seconds": elapsed,
    }
    if run is not None:
        run.done()  # flush_timeout=0: the terminal goes to the spool at once
    return result


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux


def _spawn(side: str, case: str, config: str, calls: int) -> dict[str, Any]:
    out = subprocess.run(
        [python(), "-m", "benchmarks.memory", "--child", side, case, config, str(calls)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"memory child {side} {case} failed ({out.returncode}):\n{out.stderr[-2000:]}"
        )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(ctx: Context) -> list[Figure]:
    """Two figures: RSS growth at the default max_rate and in every-step mode."""
    from ._broker import free_port

    calls = 200_000 if ctx.quick else CALLS
    config = str(ctx.config(port=free_port()))
    figures = []
    for case, label, _ in CASES:
        base = _spawn("baseline", case, config, calls)
        r = _spawn("trainwire", case, config, calls)
        figures.append(
            Figure(
                key=f"memory.{case}",
                title=f"RSS growth over {calls:,} `progress()` calls, broker down, {label}",
                unit="MB",
                trainwire=r["growth_mb"],
                baseline=base["growth_mb"],
                baseline_name=f"same loop, same ints, into a bare `deque(maxlen={_bound(case):_})`",
                goal="< 5 MB",
                met=r["growth_mb"] < 5.0,
                note=f"RSS {r['before_mb']:.1f} -> {r['after_mb']:.1f} MB; "
                f"{r['seconds']:.2f} s for the calls",
                details=[
                    (f"{case}: peak RSS growth (ru_maxrss)", f"{r['peak_growth_mb']:+.2f} MB"),
                    (
                        "baseline: RSS growth",
                        f"{base['growth_mb']:+.2f} MB "
                        f"({base['before_mb']:.1f} -> {base['after_mb']:.1f} MB)",
                    ),
                ],
            )
        )
    return figures


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--child":
    print(json.dumps(_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))))
