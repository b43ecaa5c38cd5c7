"""The signal storm's machinery (tests/test_signal_storm.py) and what the thread stress test
(tests/test_thread_stress.py) shares with it: reading everything a queue holds, the
spool, and the invariants of one job's messages as the platform would see them.

A *delivery* is one training process (tests/fixtures/storm/storm_child.py) that sits inside
one public call of trainwire in a tight loop; the test waits until the process marks that
it is in the loop, waits a further random moment, sends SIGTERM or SIGINT, and checks:

- the process ends by that signal (SIGTERM: returncode -15; SIGINT: -2 or 130) within
  ``flush_timeout`` + 1 s, else it is killed and counted as hung;
- every run it started ends with exactly one terminal message, counted over the queue (read
  by an independent consumer) and the spool together, by ``message_id``;
- nothing new follows the terminal message, in the queue or in what a replay of the spool
  would add after it;
- a forked DataLoader worker sends nothing.
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _broker import Broker

CHILD = Path(__file__).parent / "fixtures" / "storm" / "storm_child.py"
PROGRESS, DONE, ERROR = "training_ing", "training_done", "training_error"
TERMINAL = (DONE, ERROR)
SPOOL_NAME = "trainwire-spool.jsonl"
#: Steps at and above this come from a forked DataLoader worker (storm_child.WORKER_STEPS).
WORKER_STEPS = 1_000_000
#: The exit bound is flush_timeout plus this.
EXIT_GRACE = 1.0
#: The statuses a process ended by each signal may show: death by the signal, or the
#: shell convention 128 + N.
EXIT_CODES = {
    signal.SIGTERM: (-signal.SIGTERM,),
    signal.SIGINT: (-signal.SIGINT, 128 + signal.SIGINT),
}

# ----------------------------------------------------------------------- the queue


def drain_all(broker: Broker, queue: str) -> list[dict[str, Any]]:
    """Every message in ``queue`` now, in queue order (read and acked by a pika consumer)."""
    msgs: list[dict[str, Any]] = []
    while True:
        got = broker.drain(queue, timeout=30)
        if not got:
            return msgs
        msgs += got


def by_job(msgs: Iterable[dict[str, Any]]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``{model_id: [(message_id, body), ...]}`` in arrival order."""
    jobs: dict[str, list[tuple[str, dict[str, Any]]]] = collections.defaultdict(list)
    for m in msgs:
        body = m["body"]
        if isinstance(body, dict):
            jobs[str(body.get("model_id"))].append((m["properties"].message_id, body))
    return jobs


def spool_of(model_write_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The spool records under ``model_write_path`` as ``(message_id, body)``, in file order."""
    path = model_write_path / "save" / SPOOL_NAME
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["message_id"], r["body"]) for r in records]


# ------------------------------------------------------------------ the invariants


@dataclass
class JobView:
    """One job's messages as a consumer that drops repeated ``message_id``s sees them: what
    the queue holds, then what replaying the spool would add."""

    stream: list[tuple[str, dict[str, Any]]]
    terminal_ids: list[str] = field(default_factory=list)
    after_terminal: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    in_queue: bool = False

    @classmethod
    def of(cls, queued: Sequence[tuple[str, dict[str, Any]]],
           spooled: Sequence[tuple[str, dict[str, Any]]]) -> JobView:  # fmt: skip
        """Judge a job from its queued messages and its spool records."""
        view = cls(stream=[*queued, *spooled])
        seen: set[str] = set()
        queued_ids = {mid for mid, _ in queued}
        for mid, body in view.stream:
            if mid in seen:
                continue
            seen.add(mid)
            status = body.get("status")
            if view.terminal_ids:
                view.after_terminal.append(f"{status} step={body.get('step')}")
            if status in TERMINAL:
                view.terminal_ids.append(mid)
                view.in_queue = mid in queued_ids
            elif status == PROGRESS and not view.terminal_ids:
                view.steps.append(int(body["step"]))
        return view

    @property
    def status(self) -> str | None:
        """The first terminal status, if any."""
        for mid, body in self.stream:
            if mid in self.terminal_ids:
                return str(body["status"])
        return None


# -------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Plan:
    """One delivery, drawn in advance from the seeded random source."""

    index: int
    target: str
    signum: int
    marks: int  # wait for this many marks (loop targets mark each call)
    delay: float  # then this many seconds
    flush: float
    max_rate: float | None

    @property
    def signame(self) -> str:
        """SIGTERM or SIGINT."""
        return signal.Signals(self.signum).name


@dataclass
class Outcome:
    """What one delivery did and what the checks found."""

    plan: Plan
    model_id: str
    model_write_path: Path
    workdir: Path
    returncode: int | None = None
    exit_after: float = 0.0
    hung: bool = False
    started: list[str] = field(default_factory=list)
    ended: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """One line naming the delivery, enough to reproduce it with the seed."""
        p = self.plan
        return (f"#{p.index} {p.target} {p.signame} after {p.marks} mark(s) + "
                f"{p.delay * 1e3:.1f} ms, flush={p.flush}, max_rate={p.max_rate}")  # fmt: skip

    def stderr_tail(self, lines: int = 25) -> str:
        """The end of the process's stderr."""
        try:
            text = (self.workdir / "stderr").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_marks(fd: int, count: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Read ``count`` mark bytes from ``fd``; False if the process ended or time ran out."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < count:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            data = os.read(fd, count - got)
            if not data:
                return False  # every writer closed it: the process ended
            got += len(data)
        elif proc.poll() is not None:
            return False
    return True


def deliver(plan: Plan, config: Path, workdir: Path, env: dict[str, str]) -> Outcome:
    """Start the process, wait until it is inside its loop, signal it, wait for its end."""
    data = json.loads(config.read_text())
    out = Outcome(plan, data["model_id"], Path(data["model_write_path"]), workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    opts = {"target": plan.target, "config": str(config), "flush": plan.flush,
            "max_rate": plan.max_rate, "mark_fd": write_fd,
            "events": str(workdir / "events")}  # fmt: skip
    try:
        with open(workdir / "stdout", "wb") as stdout, open(workdir / "stderr", "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(CHILD), json.dumps(opts)], env=env, stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, pass_fds=(write_fd,),
            )  # fmt: skip
        os.close(write_fd)
        write_fd = -1
        try:
            _signal_and_wait(plan, proc, read_fd, out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    _read_events(out)
    return out


def _signal_and_wait(plan: Plan, proc: subprocess.Popen[bytes], read_fd: int,
                     out: Outcome) -> None:  # fmt: skip
    if not _wait_marks(read_fd, plan.marks, proc, timeout=90):
        proc.kill()
        out.returncode = proc.wait()
        out.problems["harness"] = f"the process never reached its loop (exit {out.returncode})"
        return
    time.sleep(plan.delay)  # the random instant: not a synchronization
    sent = time.monotonic()
    proc.send_signal(plan.signum)
    try:
        out.returncode = proc.wait(timeout=plan.flush + EXIT_GRACE)
    except subprocess.TimeoutExpired:
        out.hung = True
        proc.kill()
        out.returncode = proc.wait()
    out.exit_after = time.monotonic() - sent


def _read_events(out: Outcome) -> None:
    try:
        lines = (out.workdir / "events").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        words = line.split()
        if words[:1] == ["start"]:
            out.started.append(words[1])
        elif words[:1] == ["end"] and len(words) == 3:
            out.ended[words[1]] = words[2]


def judge(out: Outcome, queued: dict[str, list[tuple[str, dict[str, Any]]]]) -> None:
    """Check one delivery's invariants; fills ``out.problems`` (kind -> detail)."""
    plan = out.plan
    if "harness" in out.problems:
        return
    if out.hung:
        out.problems["hung"] = f"still running {plan.flush + EXIT_GRACE:.1f} s after the signal"
    elif out.returncode not in EXIT_CODES[plan.signum]:
        out.problems["exit status"] = (f"exit status {out.returncode}, expected "
                                       f"{EXIT_CODES[plan.signum]}")  # fmt: skip
    jobs = set(out.started) | {j for j in queued if j == out.model_id or
                               j.startswith(out.model_id + "-")}  # fmt: skip
    for spool in out.model_write_path.glob(f"*/save/{SPOOL_NAME}"):  # loop targets' runs
        jobs.add(f"{out.model_id}-{spool.parent.parent.name}")
    if (out.model_write_path / "save" / SPOOL_NAME).exists():
        jobs.add(out.model_id)
    for job in sorted(jobs):
        _judge_job(out, job, queued.get(job, []))


def _judge_job(out: Outcome, job: str, queued: list[tuple[str, dict[str, Any]]]) -> None:
    suffix = job[len(out.model_id) + 1:]  # fmt: skip
    path = out.model_write_path / suffix if suffix else out.model_write_path
    view = JobView.of(queued, spool_of(path))
    where = f"{job}: "
    count = len(view.terminal_ids)
    if count == 0 and (job in out.started or view.stream):
        out.problems.setdefault("no terminal", where + f"{len(view.stream)} message(s), none ends")
    elif count > 1:
        out.problems.setdefault("several terminals", where + f"{count} terminal messages")
    if view.after_terminal:
        out.problems.setdefault("after the terminal",
                                where + ", ".join(view.after_terminal[:5]))  # fmt: skip
    if out.plan.target == "dataloader" and any(step >= WORKER_STEPS for step in view.steps):
        out.problems.setdefault("worker sent", where + "a forked worker's step arrived")
    expected = _expected(out, job)
    if count and view.status not in expected:
        out.problems.setdefault("wrong status", where + f"{view.status}, expected {expected}")


def _expected(out: Outcome, job: str) -> tuple[str, ...]:
    """The terminal statuses a job may rightly end with."""
    if job in out.ended:
        return (out.ended[job],)  # done()/fail() returned before the signal
    if out.plan.target in ("done", "fail", "init"):
        return TERMINAL  # the signal and the end may have crossed
    return (ERROR,)  # the signal came while training


# ---------------------------------------------------------------------- the tally


class Tally:
    """Counts over deliveries, printed like the fault soak's tally."""

    KINDS = ("hung", "exit status", "no terminal", "several terminals", "after the terminal",
             "worker sent", "wrong status", "harness")  # fmt: skip

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()

    def add(self, out: Outcome) -> None:
        """Count one judged delivery."""
        with self.lock:
            self.outcomes.append(out)

    def line(self, name: str, elapsed: float) -> str:
        """The tally of the deliveries so far, as one line."""
        outs = self.outcomes
        signals = collections.Counter(o.plan.signame for o in outs)
        kinds = collections.Counter(k for o in outs for k in o.problems)
        by_signal = collections.Counter((k, o.plan.signame) for o in outs for k in o.problems)
        codes = collections.Counter(o.returncode for o in outs if "exit status" in o.problems)
        clean = sum(1 for o in outs if not o.problems)
        exits = sorted(o.exit_after for o in outs if not o.hung and "harness" not in o.problems)
        slowest = f"{exits[-1]:.2f} s" if exits else "-"
        median = f"{exits[len(exits) // 2]:.2f} s" if exits else "-"
        failed = "; ".join(
            f"{k} {kinds[k]} (" + ", ".join(f"{n} {by_signal[k, n]}" for n in signals
                                            if by_signal[k, n]) + ")"
            for k in self.KINDS if kinds[k]
        ) or "none"  # fmt: skip
        code_text = f" (exit statuses {dict(codes)})" if codes else ""
        return (f"{name}: deliveries {len(outs)} (SIGTERM {signals['SIGTERM']}, SIGINT "
                f"{signals['SIGINT']}); every invariant held {clean}; failed: {failed}"
                f"{code_text}; exit after the signal median {median}, slowest {slowest}; "
                f"{elapsed:.0f} s")  # fmt: skip

    def failures(self, per_kind: int = 3) -> str:
        """A few failed deliveries of each kind of failure, with their stderr."""
        shown: list[Outcome] = []
        for kind in self.KINDS:
            shown += [o for o in self.outcomes if kind in o.problems and o not in shown][:per_kind]
        parts = []
        for o in shown:
            problems = "; ".join(f"{k}: {v}" for k, v in o.problems.items())
            parts.append(f"{o.label}\n  {problems}\n  --- stderr ---\n{o.stderr_tail()}")
        bad = sum(1 for o in self.outcomes if o.problems)
        return f"{bad} of {len(self.outcomes)} deliveries failed; some of each kind:\n\n" + (
            "\n\n".join(parts)
        )


# ------------------------------------------------------------- a live consumer


class Consumer:
    """An independent consumer (pika, its own thread and connection) that notes when each
    message of ``queue`` arrives: ``messages`` holds ``(time.time(), message_id, body)``."""

    def __init__(self, broker: Broker, queue: str) -> None:
        self.broker, self.queue = broker, queue
        self.messages: list[tuple[float, str, Any]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="storm-consumer", daemon=True)

    def __enter__(self) -> Consumer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the consumer did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _main(self) -> None:
        try:
            conn = self.broker.connect()
            try:
                channel = conn.channel()
                channel.basic_consume(self.queue, self._on_message, auto_ack=True)
                self._ready.set()
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.05)
            finally:
                conn.close()
        except BaseException as exc:  # reported by __enter__ or wait_for
            self._error = exc
            self._ready.set()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        arrived = time.time()
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        with self.lock:
            self.messages.append((arrived, properties.message_id, parsed))

    def wait_for(self, done: Any, timeout: float) -> bool:
        """Poll until ``done(messages)`` is true or ``timeout`` passes; the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            if self._error is not None:
                raise RuntimeError(f"the consumer failed: {self._error!r}")
            with self.lock:
                ok = bool(done(list(self.messages)))
            if ok or time.monotonic() >= deadline:
                return ok
            time.sleep(0.05)
