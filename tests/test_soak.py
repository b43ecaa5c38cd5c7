"""Randomized soak: N training runs, each hit by one random fault at a random moment.

``TRAINWIRE_SOAK_RUNS`` sets N (default 20); ``TRAINWIRE_SOAK_SEED`` replays a seed (the
seed is printed). Every run must end with its terminal message in the queue or in the
spool; what is in the spool is then replayed (``trainwire._broker._delivery.replay_spool``, the
code behind ``trainwire replay``) and must arrive. The queue is read by an independent
consumer and checked as in the other fault tests. The tally is printed in pytest's
terminal summary (see tests/_faults.py), on success too.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time
import traceback
from pathlib import Path
from typing import Any

from _faults import (
    DONE,
    ERROR,
    STALL_BOUND,
    TERMINAL,
    Training,
    check_run,
    collect,
    fault_broker,
    fault_report,
    kill9,
    new_queue,
    spool_records,
    write_config,
)
from _proxy import TcpProxy
from trainwire._broker._delivery import replay_spool
from trainwire._spec._config import load_config

__all__ = ["fault_report"]  # fixture

FAULTS = (
    "none", "stop", "kill", "drop", "blackhole", "delay", "memory", "nack", "sigterm",
    "sigint", "fork",
)  # fmt: skip
ENDS = ("done", "fail", "exit", "raise")
STEP_SECONDS = 0.01


def _kinds(runs: int, rng: random.Random) -> list[str]:
    """Every kind of fault at least once (when runs allow), in random order."""
    kinds = [FAULTS[i % len(FAULTS)] for i in range(runs)]
    rng.shuffle(kinds)
    return kinds


def _expected_status(end: str, signalled_at: float | None, trained: dict[str, Any] | None,
                     ) -> tuple[str, ...]:  # fmt: skip
    """The terminal statuses a run may rightly end with."""
    own = DONE if end in ("done", "exit") else ERROR
    if signalled_at is None:
        return (own,)
    if trained is None or signalled_at < trained["t"] - 0.1:
        return (ERROR,)  # the signal came while training: it decides
    if signalled_at > trained["t"] + 0.2:
        return (own,)  # the run had ended already: the signal only cuts the flush short
    return (own, ERROR)  # the signal and the end of training crossed


class Soak:
    """The soak's state: the broker, the random source, the tally."""

    def __init__(self, rng: random.Random, workdir: Path) -> None:
        self.rng = rng
        self.workdir = workdir
        self.broker = fault_broker()
        self.tally: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.worst = 0.0

    def run(self, index: int, kind: str) -> tuple[str, list[str], str]:
        """One training run with one fault: (its line, its problems, its process's output)."""
        rng, broker = self.rng, self.broker
        if not broker.is_running():
            broker.start()
        steps = rng.randint(40, 150)
        flush = rng.choice([1.5, 3.0, 8.0])
        end = rng.choice(ENDS)
        max_rate = rng.choice([10, 10, None])
        fault_at = rng.uniform(0.0, steps * STEP_SECONDS + 1.0)
        duration = rng.uniform(0.2, 2.5)
        arguments = None
        if kind == "nack":  # full after a random number of messages: then nacks
            arguments = {"x-max-length": rng.randint(1, 8), "x-overflow": "reject-publish"}
        queue = new_queue(broker, arguments)
        proxy = TcpProxy(broker.host, broker.port)
        workdir = self.workdir / f"run{index}"
        config = write_config(workdir, port=proxy.port, queue=queue)
        opts: dict[str, Any] = {}
        if kind == "fork":
            opts = {"fork_at": rng.randint(1, steps), "child_end": rng.choice(["fail", "exit"])}
        label = (f"run {index}: {kind} at {fault_at:.2f}s for {duration:.2f}s, {steps} steps, "
                 f"end={end}, flush={flush}, max_rate={max_rate}")  # fmt: skip
        early: list[dict[str, Any]] = []
        signalled_at = None
        run = Training(config, workdir, steps=steps, sleep=STEP_SECONDS, flush=flush,
                       max_rate=max_rate, end=end, **opts)  # fmt: skip
        try:
            run.wait_event("ready")
            time.sleep(fault_at)
            self.faults[kind] += 1
            if kind in ("sigterm", "sigint"):
                if run.proc.poll() is None:
                    signalled_at = time.time()
                    run.proc.send_signal(signal.SIGTERM if kind == "sigterm" else signal.SIGINT)
            elif kind == "stop":
                broker.stop()
            elif kind == "kill":
                kill9(broker)
            elif kind == "drop":
                proxy.drop()
            elif kind == "blackhole":
                proxy.blackhole(True)
            elif kind == "delay":
                proxy.delay(rng.uniform(0.1, 0.8))
            elif kind == "memory":
                broker.set_memory_alarm(True)
            if kind in ("stop", "kill", "blackhole", "delay", "memory", "nack"):
                time.sleep(duration)
            # the fault ends
            if kind in ("stop", "kill"):
                broker.start()
            elif kind == "memory":
                broker.set_memory_alarm(False)
            elif kind == "nack":
                early = broker.drain(queue)  # room again: retries succeed
            proxy.reset()
            code = run.wait(timeout=120)
        finally:
            proxy.reset()
            if not broker.is_running():
                broker.start()
            if kind == "memory":
                broker.set_memory_alarm(False)
            if run.proc.poll() is None:
                run.proc.kill()
        try:
            return self._check(run, label, kind, config, queue, early, steps, end, signalled_at,
                               code)  # fmt: skip
        finally:
            proxy.close()

    def _check(self, run: Training, label: str, kind: str, config: Path, queue: str,
               early: list[dict[str, Any]], steps: int, end: str, signalled_at: float | None,
               code: int) -> tuple[str, list[str], str]:  # fmt: skip
        broker, tally = self.broker, self.tally
        self.worst = max(self.worst, run.worst)
        ended = run.event("ended")
        delivered = ended["delivered"] if ended else None
        msgs = early + collect(broker, queue, until_terminal=False)
        direct = any(m["body"].get("status") in TERMINAL for m in msgs)
        kept = [r for r in spool_records(config) if r["terminal"]]
        outcome = "delivered directly"
        problems = []
        if delivered is True and not direct:
            problems.append("run.delivered is True but the terminal is not in the queue")
        if delivered is True and kept:
            problems.append("run.delivered is True but the terminal is still in the spool")
        if not direct and not kept:
            tally["lost"] += 1
            problems.append("terminal neither in the queue nor in the spool: LOST")
        if kept:
            # A length-limited queue takes one message at a time: replay, drain, again.
            for _ in range(10):
                result = replay_spool(load_config(config), timeout=30)
                msgs += collect(broker, queue, until_terminal=False)
                if result.ok or result.problem != "nack":
                    break
            if not result.ok:
                problems.append(f"replay failed: {result.reason}")
            outcome = "in the spool, then replayed" if not direct else "delivered, spool replayed"
            tally["spooled then replayed"] += 1
            if spool_records(config):
                problems.append("the spool is not empty after replay")
        if direct:
            tally["terminal delivered directly"] += 1
        expected = _expected_status(end, signalled_at, run.event("trained"))
        try:
            statuses = [m["body"].get("status") for m in msgs]
            status = next((s for s in statuses if s in TERMINAL), expected[0])
            assert status in expected, f"terminal {status}, expected one of {expected}"
            last_step = steps if signalled_at is None else None
            check = check_run(msgs, status, last_step=last_step)
            tally["duplicates"] += check.duplicates
            if kind == "fork":
                assert all(step < 10_000 for step in check.steps), "a forked child sent"
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
        if code not in (0, 1, -signal.SIGTERM, -signal.SIGINT):
            problems.append(f"exit status {code}")
        if run.worst >= STALL_BOUND:
            problems.append(f"progress() stalled {run.worst:.3f} s")
        tally["runs"] += 1
        line = f"{label} -> {outcome}, {len(msgs)} msgs, worst step {run.worst * 1e3:.2f} ms"
        return line, problems, run.describe()

    def summary(self, elapsed: float) -> str:
        """The tally as one line."""
        tally = self.tally
        kinds = ", ".join(f"{k} {self.faults[k]}" for k in FAULTS if self.faults[k])
        return (
            f"soak tally: runs {tally['runs']}; faults: {kinds}; terminal delivered directly "
            f"{tally['terminal delivered directly']}; in the spool then replayed "
            f"{tally['spooled then replayed']}; duplicates {tally['duplicates']} (equal "
            f"message_id); lost {tally['lost']}; worst progress() {self.worst * 1e3:.2f} ms; "
            f"{elapsed:.0f} s"
        )


def test_soak_random_faults_never_lose_a_terminal_message(tmp_path, fault_report):
    runs = int(os.environ.get("TRAINWIRE_SOAK_RUNS", "20"))
    seed = int(os.environ.get("TRAINWIRE_SOAK_SEED") or random.randrange(2**31))
    rng = random.Random(seed)
    fault_report.line(f"soak: {runs} runs, seed {seed} (rerun with TRAINWIRE_SOAK_SEED={seed} "
                      f"TRAINWIRE_SOAK_RUNS={runs})")  # fmt: skip
    soak = Soak(rng, tmp_path)
    failures: list[str] = []
    started = time.monotonic()
    try:
        for index, kind in enumerate(_kinds(runs, rng)):
            try:
                line, problems, output = soak.run(index, kind)
            except Exception:  # the harness itself: report it, go on with the next run
                line, problems, output = f"run {index}: {kind}", ["harness error"], ""
                output = traceback.format_exc()
            if problems:
                line += " PROBLEMS: " + "; ".join(problems)
                failures.append(f"{line}\n{output}")
            fault_report.line("  " + line)
    finally:
        fault_report.line(soak.summary(time.monotonic() - started))
        fault_report.stall(f"the soak ({runs} runs)", soak.worst)
    assert not failures, "\n\n".join(failures)
    assert soak.tally["lost"] == 0
