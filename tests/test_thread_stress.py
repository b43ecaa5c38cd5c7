"""Thread stress: threads push progress while another thread calls ``done()``.

A training process (tests/fixtures/storm/stress_child.py) makes many runs one after
another; in each, two threads hammer ``run.progress()`` and one iterates
``trainwire.track(..., run=run)`` while another thread calls ``run.done()`` at a random
step. An independent consumer (tests/_storm.py ``Consumer``) notes when each message
arrives. For every run:

- exactly one terminal message (``training_done``), over the queue and the spool;
- nothing after it (no ``training_ing`` with a new ``message_id``);
- the last step before the end is sent: the step of a push that had returned before
  ``done()`` was called, or a later one, arrives before the terminal;
- the terminal is not held back by the backlog: it arrives less than ``TERMINAL_BOUND``
  after ``done()`` was called (the broker is healthy and local);
- ``done()`` and the feeders return.

``TRAINWIRE_STRESS_RUNS`` sets the runs per setting (default 100), ``TRAINWIRE_STRESS_SEED``
replays a seed (printed). The tally is printed in pytest's terminal summary.
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _faults import fault_report
from _storm import DONE, TERMINAL, Consumer, JobView, spool_of

__all__ = ["fault_report"]  # fixture

CHILD = Path(__file__).parent / "fixtures" / "storm" / "stress_child.py"
RUNS = int(os.environ.get("TRAINWIRE_STRESS_RUNS", "100"))
SEED = int(os.environ.get("TRAINWIRE_STRESS_SEED") or random.randrange(2**31))
#: Seconds the process may spend on its runs; a run takes ~0.1 s when all is well.
BUDGET = 60.0
FLUSH = 5.0
#: From the call of done() to the terminal message at the consumer, with a local broker:
#: half the flush timeout, so a terminal that waited for the flush deadline (the bug this
#: catches) fails, while a loaded 2-core CI machine (worst seen 0.96 s) does not.
TERMINAL_BOUND = FLUSH / 2
#: done() comes once the run reached a random step up to this (every-step mode publishes
#: each step: fewer of them keep the broker's load moderate).
MOST_STEPS = {10: 5000, None: 1000}


def _start(tmp_path: Path, config: Path, max_rate: float | None) -> subprocess.Popen[str]:
    opts = {"config": str(config), "runs": RUNS, "max_rate": max_rate, "flush": FLUSH,
            "seed": SEED, "budget": BUDGET, "most_steps": MOST_STEPS[max_rate],
            "dir": str(tmp_path)}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWIRE_")}
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(opts)], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _judge(report: dict[str, Any], arrived: list[tuple[float, str, Any]],
           model_dir: Path) -> dict[str, str]:  # fmt: skip
    """The problems of one run (kind -> detail)."""
    problems: dict[str, str] = {}
    if report["hung"]:
        problems["hung"] = "done() or a feeder thread did not return"
    view = JobView.of([(mid, body) for _, mid, body in arrived], spool_of(model_dir))
    if len(view.terminal_ids) != 1 or view.status != DONE:
        problems["terminal"] = f"{len(view.terminal_ids)} terminal(s), first {view.status}"
    if view.after_terminal:
        problems["after the terminal"] = (f"{len(view.after_terminal)} message(s): "
                                          + ", ".join(view.after_terminal[:3]))  # fmt: skip
    covered = report.get("covered", 0)
    if max(view.steps, default=0) < covered:
        problems["last step"] = (f"step {covered} had been pushed before done(); newest sent "
                                 f"{max(view.steps, default=None)}")  # fmt: skip
    at = next((t for t, mid, body in arrived if body.get("status") in TERMINAL), None)
    if at is None:
        problems["not delivered"] = f"no terminal in the queue (delivered={report['delivered']})"
    elif "called" in report and at - report["called"] >= TERMINAL_BOUND:
        problems["late terminal"] = f"{at - report['called']:.2f} s after done() was called"
    return problems


@pytest.mark.parametrize("max_rate", [10, None], ids=["max_rate=10", "max_rate=None"])
def test_threads_pushing_while_done_runs_never_follow_drop_or_delay_the_terminal(
    max_rate, broker, queue, make_config, tmp_path, fault_report
):
    name = f"thread stress [max_rate={max_rate}]"
    fault_report.line(f"{name}: {RUNS} runs, seed {SEED} (rerun with TRAINWIRE_STRESS_SEED="
                      f"{SEED} TRAINWIRE_STRESS_RUNS={RUNS})")  # fmt: skip
    model_dir = tmp_path / "model"
    config = make_config(model_id="stress", model_write_path=str(model_dir))
    started = time.monotonic()
    with Consumer(broker, queue) as consumer:
        proc = _start(tmp_path, config, max_rate)
        try:
            out, err = proc.communicate(timeout=BUDGET + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        broker.publish(queue, {"sentinel": True})  # FIFO: once it arrives, all before it did
        seen = consumer.wait_for(lambda ms: any(b == {"sentinel": True} for _, _, b in ms), 60)
        assert seen, "the consumer did not get everything the queue held in 60 s"
        messages = list(consumer.messages)
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    jobs: dict[str, list[tuple[float, str, Any]]] = collections.defaultdict(list)
    for m in messages:
        if isinstance(m[2], dict) and "model_id" in m[2]:
            jobs[m[2]["model_id"]].append(m)
    tally: collections.Counter[str] = collections.Counter()
    failures = []
    delays = []
    for i, report in enumerate(reports):
        arrived = jobs.get(report["model_id"], [])
        problems = _judge(report, arrived, model_dir / str(i))
        tally.update(problems.keys())
        at = next((t for t, _, b in arrived if b.get("status") in TERMINAL), None)
        if at is not None and "called" in report:
            delays.append(at - report["called"])
        if problems:
            failures.append(
                f"{report['model_id']}: " + "; ".join(f"{k}: {v}" for k, v in problems.items())
            )
    if len(reports) < RUNS:
        tally["runs not made"] = RUNS - len(reports)
    delays.sort()
    median = f"{delays[len(delays) // 2]:.3f} s" if delays else "-"
    worst = f"{delays[-1]:.3f} s" if delays else "-"
    failed = "; ".join(f"{k} {n}" for k, n in tally.items()) or "none"
    fault_report.line(
        f"  {name} tally: runs {len(reports)}/{RUNS}; messages {len(messages) - 1}; failed: "
        f"{failed}; done() called to terminal at the consumer: median {median}, worst {worst} "
        f"(bound {TERMINAL_BOUND} s); {time.monotonic() - started:.0f} s"
    )
    assert proc.returncode == 0, err[-3000:]
    assert not failures and len(reports) == RUNS, (
        f"{len(failures)} of {len(reports)} runs failed, {RUNS - len(reports)} not made "
        f"(budget {BUDGET:.0f} s):\n" + "\n".join(failures[:15]) + "\n--- stderr ---\n"
        + err[-2000:]
    )  # fmt: skip
