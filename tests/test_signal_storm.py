"""Signal storm: SIGTERM and SIGINT at random instants inside every public call.

For each target (``progress``, ``log``, ``log_dict``, ``track``, ``done``, ``fail``,
``init``, and a ``track()`` over a torch DataLoader with a forked worker) many short
training processes run the call in a tight loop against the session broker; each gets
one signal at a random instant inside the loop (tests/_storm.py says how, and what is
checked every time). The deliveries run a few at a time (2 cores).

The DataLoader target gets SIGTERM only (see SIGNALS).

``TRAINWIRE_STORM`` sets the number of deliveries over all targets (default 300; e.g.
2000 for a long soak), ``TRAINWIRE_STORM_SEED`` replays a seed (printed),
``TRAINWIRE_STORM_JOBS`` the processes at a time (default 3). The tally of each target is
printed in pytest's terminal summary (tests/_faults.py), on success too.
"""

from __future__ import annotations

import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from _faults import fault_report
from _storm import Plan, Tally, by_job, deliver, drain_all, judge

__all__ = ["fault_report"]  # fixture

TOTAL = int(os.environ.get("TRAINWIRE_STORM", "300"))
SEED = int(os.environ.get("TRAINWIRE_STORM_SEED") or random.randrange(2**31))
JOBS = int(os.environ.get("TRAINWIRE_STORM_JOBS", "3"))
#: target -> (most marks to wait for, longest random delay after them in seconds), sized
#: so that the signal lands anywhere in a loop iteration: the loop targets mark every
#: iteration, the hot loops once (their window spans the I/O thread's start, its connect
#: and steady work); a DataLoader epoch (a fork each) takes the longest.
WINDOWS = {
    "progress": (1, 0.25),
    "log": (1, 0.25),
    "log_dict": (1, 0.25),
    "track": (1, 0.25),
    "done": (3, 0.04),
    "fail": (3, 0.04),
    "init": (3, 0.004),
    "dataloader": (1, 0.3),
}
#: A delivery to the DataLoader target costs ~2 s of CPU for importing torch: fewer of them.
WEIGHTS = {target: 0.3 if target == "dataloader" else 1.0 for target in WINDOWS}
#: SIGTERM only for the DataLoader: after SIGINT, torch alone (no trainwire in the process)
#: takes 4 to 7 s, sometimes more than 20 s, to end a process with a live worker (measured
#: here), so the bound would test torch. SIGTERM is what a scheduler or torchrun sends.
SIGNALS = {target: (signal.SIGTERM, signal.SIGINT) for target in WINDOWS}
SIGNALS["dataloader"] = (signal.SIGTERM,)


def _count(target: str) -> int:
    share = TOTAL * WEIGHTS[target] / sum(WEIGHTS.values())
    return max(2, round(share))


def _plans(target: str) -> list[Plan]:
    rng = random.Random(f"{SEED}-{target}")
    most_marks, longest = WINDOWS[target]
    plans = [
        Plan(
            index=i,
            target=target,
            signum=SIGNALS[target][i % len(SIGNALS[target])],
            marks=rng.randint(1, most_marks),
            delay=rng.uniform(0.0, longest),
            flush=rng.choice([1.0, 2.0]),
            max_rate=rng.choice([10, 10, 100]),
        )
        for i in range(_count(target))
    ]
    rng.shuffle(plans)
    return plans


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWIRE_")}
    env["OMP_NUM_THREADS"] = "1"  # torch in a few processes at once on 2 cores
    return env


@pytest.mark.parametrize("target", list(WINDOWS))
def test_a_signal_at_a_random_instant_inside_each_call_ends_the_run_once_and_in_time(
    target, broker, queue, make_config, tmp_path, fault_report
):
    plans = _plans(target)
    fault_report.line(
        f"signal storm [{target}]: {len(plans)} deliveries, seed {SEED} (rerun with "
        f"TRAINWIRE_STORM_SEED={SEED} TRAINWIRE_STORM={TOTAL} -k {target})"
    )
    configs = {
        p.index: make_config(model_id=f"storm-{target}-{p.index}",
                             model_write_path=str(tmp_path / f"model-{p.index}"))
        for p in plans
    }  # fmt: skip
    env = _child_env()
    tally = Tally()
    started = time.monotonic()
    with ThreadPoolExecutor(JOBS) as pool:
        outcomes = list(
            pool.map(lambda p: deliver(p, configs[p.index], tmp_path / f"run-{p.index}", env),
                     plans)
        )  # fmt: skip
    queued = by_job(drain_all(broker, queue))
    for out in outcomes:
        judge(out, queued)
        tally.add(out)
    elapsed = time.monotonic() - started
    fault_report.line("  " + tally.line(f"signal storm tally [{target}]", elapsed))
    assert not any(o.problems for o in outcomes), tally.failures()
