"""Helpers for the fault-injection suite (tests/test_faults_*.py, test_soak.py, test_tls.py).

- ``fault_broker()``: a private RabbitMQ node of its own that fault tests may stop, kill and
  alarm freely (the session broker stays undisturbed); started once per test process.
- ``Training``: a real training process (a Python subprocess using ``trainwire.init``) that
  reports, on stdout, JSON events: its worst ``progress()`` call, the moments it holds so
  that a test can inject a fault at a known step, its end and ``run.delivered``.
- ``check_run``: the checks every scenario makes on what an independent consumer read from
  the queue: exactly one terminal message, last, with the right status; progress steps
  increasing; duplicates only with an equal ``message_id`` (and equal body).
- ``REPORT``: figures (worst step stall per scenario, the soak's tally) printed in pytest's
  terminal summary, so that they show in CI's log even when everything passes.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _broker import Broker
from trainwire._spec._protocol import Status, validate

PROGRESS, DONE, ERROR = Status.PROGRESS.value, Status.DONE.value, Status.ERROR.value
TERMINAL = (DONE, ERROR)
#: The bound asserted on the worst ``progress()`` call during a fault: far below a
#: heartbeat interval (20 s), generous for a loaded 2-core CI machine.
STALL_BOUND = 0.5

# ----------------------------------------------------------------------------- brokers

_fault_broker: Broker | None = None


def fault_broker() -> Broker:
    """The private broker for fault tests (started on first use, running on return)."""
    global _fault_broker
    if _fault_broker is None:
        _fault_broker = Broker()
    if not _fault_broker.is_running():
        _fault_broker.start()
    return _fault_broker


def kill9(broker: Broker) -> None:
    """``kill -9`` the broker, as a crash would, after flushing Mnesia's log.

    A queue's definition reaches disk asynchronously; the platform's queue is long
    declared when a real broker crashes, so the tests let it reach disk first.
    """
    broker.ctl("eval", "mnesia:sync_log().")
    broker.kill()


def new_queue(broker: Broker, arguments: dict[str, Any] | None = None) -> str:
    """A fresh durable queue on ``broker``."""
    return broker.declare_queue(f"tw-fault-{uuid.uuid4().hex[:10]}", arguments=arguments)


def write_config(directory: Path, *, port: int, queue: str, host: str = "127.0.0.1",
                 **overrides: Any) -> Path:  # fmt: skip
    """A training config in ``directory`` (model_write_path ``directory/model``)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "message_host": host,
        "message_port": port,
        "message_id": "guest",
        "message_pw": "guest",
        "queue_name": queue,
        "project_key": "pk-fault",
        "model_id": f"model-{uuid.uuid4().hex[:6]}",
        "model_write_path": str(directory / "model"),
    }
    config.update(overrides)
    config = {k: v for k, v in config.items() if v is not None}
    path = directory / f"config-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def spool_path(config: Path) -> Path:
    """Where runs of ``config`` keep what the broker did not confirm."""
    data = json.loads(config.read_text())
    return Path(data["model_write_path"]) / "save" / "trainwire-spool.jsonl"


def spool_records(config: Path) -> list[dict[str, Any]]:
    """The spool's records (``[]`` when there is no spool)."""
    path = spool_path(config)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class LoginCutter:
    """A server that answers the AMQP protocol header with ``Connection.Start`` and then cuts
    the connection (RST) as soon as the client sends its login: a network failure at that
    moment, which pika reports as a *probable* authentication error."""

    def __init__(self) -> None:
        import pika.frame
        import pika.spec

        start = pika.spec.Connection.Start(
            server_properties={"capabilities": {"authentication_failure_close": True}},
            mechanisms="PLAIN", locales="en_US",
        )  # fmt: skip
        self._start = pika.frame.Method(0, start).marshal()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            try:
                conn.settimeout(10)
                conn.recv(8)  # "AMQP\x00\x00\x09\x01"
                conn.sendall(self._start)
                conn.recv(4096)  # Connection.StartOk: the login
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        """Stop accepting."""
        self._server.close()

    def __enter__(self) -> LoginCutter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------- training processes

TRAIN_SCRIPT = textwrap.dedent(
    r"""
    import json, os, sys, time
    opts = json.loads(sys.argv[1])
    import trainwire

    def say(**event):
        print(json.dumps(event), flush=True)

    run = trainwire.init(total_steps=opts["steps"], flush_timeout=opts["flush"],
                         max_rate=opts.get("max_rate", 10))
    holds = set(opts.get("holds", ()))
    fork_at = opts.get("fork_at")
    perf = time.perf_counter
    worst = 0.0
    phase_worst = 0.0
    say(event="ready", pid=os.getpid())
    for step in range(1, opts["steps"] + 1):
        t0 = perf()
        run.progress(step)
        took = perf() - t0
        if took > phase_worst:
            phase_worst = took
            if took > worst:
                worst = took
                if took > 0.002:
                    say(event="worst", s=took, step=step)
        if step in holds:
            say(event="hold", step=step, phase_worst=phase_worst)
            phase_worst = 0.0
            go = os.path.join(opts["dir"], "go-%d" % step)
            while not os.path.exists(go):
                time.sleep(0.005)
        if step == fork_at:
            start = time.time()
            pid = os.fork()
            if pid == 0:
                for child_step in range(10_000, 10_050):
                    run.progress(child_step)
                if opts.get("child_end") == "fail":
                    run.fail("a forked child must not send this")
                sys.exit(0)  # atexit hooks run in the child: they must not send nor wait
            os.waitpid(pid, 0)
            say(event="child", seconds=time.time() - start)
        if opts.get("sleep"):
            time.sleep(opts["sleep"])
    say(event="trained", worst=worst, phase_worst=phase_worst, step=step, t=time.time())
    end = opts.get("end", "done")
    if end == "done":
        run.done()
    elif end == "fail":
        run.fail("the fault suite ends this run with an error")
    elif end == "raise":
        say(event="last", t=time.time())
        raise RuntimeError("the fault suite raises here")
    say(event="ended", delivered=run.delivered, status=run.status)
    say(event="last", t=time.time())
    """
)


class Training:
    """One training process reporting through trainwire; see ``TRAIN_SCRIPT`` for options.

    ``opts``: ``steps``, ``sleep`` (seconds per step), ``flush`` (flush_timeout),
    ``max_rate``, ``holds`` (steps at which it waits for :meth:`release`), ``fork_at``,
    ``end`` (``done``, ``fail``, ``raise`` or ``exit``: fall off the end, atexit decides).
    """

    def __init__(self, config: Path, workdir: Path, env: dict[str, str] | None = None,
                 **opts: Any) -> None:  # fmt: skip
        self.dir = workdir / f"train-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir(parents=True)
        opts.setdefault("flush", 5)
        opts["dir"] = str(self.dir)
        self.opts = opts
        script = self.dir / "train.py"
        script.write_text(TRAIN_SCRIPT)
        full_env = {**os.environ, "TRAINWIRE_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        full_env.pop("TRAINWIRE_MODE", None)
        full_env.update(env or {})
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self.exited_at: float | None = None
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), json.dumps(opts)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._watch_exit, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "text", "line": line.rstrip("\n")}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.stderr_lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def _watch_exit(self) -> None:
        self.proc.wait()
        with self._cond:
            self.exited_at = time.time()
            self._cond.notify_all()

    def wait_event(self, name: str, timeout: float = 60.0, **match: Any) -> dict[str, Any]:
        """The first event ``name`` (with the given fields), waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("event") == name and all(
                        event.get(k) == v for k, v in match.items()
                    ):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.exited_at is not None and not self._readers[0].is_alive()):
                    raise AssertionError(
                        f"no {name!r} event from the training process\n{self.describe()}"
                    )
                self._cond.wait(min(left, 0.2))

    def wait_stderr(self, text: str, timeout: float = 30.0) -> str:
        """The first stderr line containing ``text``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.stderr_lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.exited_at is not None and not self._readers[1].is_alive()):
                    raise AssertionError(f"no stderr line with {text!r}\n{self.describe()}")
                self._cond.wait(min(left, 0.2))

    def release(self, step: int) -> None:
        """Let the process go on past its hold at ``step``."""
        (self.dir / f"go-{step}").touch()

    def hold_then(self, step: int) -> dict[str, Any]:
        """Wait until the process holds at ``step``; returns the hold event."""
        return self.wait_event("hold", step=step)

    def wait(self, timeout: float = 90.0) -> int:
        """Wait for the process to end; its return code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the training process did not end\n{self.describe()}") from None
        for reader in self._readers:
            reader.join(10)
        return code

    def event(self, name: str) -> dict[str, Any] | None:
        """The last event ``name`` seen, if any."""
        with self._cond:
            found = [e for e in self.events if e.get("event") == name]
        return found[-1] if found else None

    @property
    def worst(self) -> float:
        """The worst ``progress()`` call time the process reported (seconds)."""
        with self._cond:
            values = [e["s"] for e in self.events if e.get("event") == "worst"]
            values += [e["worst"] for e in self.events if e.get("event") == "trained"]
            values += [e["phase_worst"] for e in self.events if e.get("event") == "hold"]
        return max(values, default=0.0)

    @property
    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        with self._cond:
            return "\n".join(self.stderr_lines)

    def exit_lag(self) -> float:
        """Seconds from the script's last statement to the process's end."""
        last = self.event("last")
        assert last is not None and self.exited_at is not None, self.describe()
        return float(self.exited_at - last["t"])

    def describe(self) -> str:
        """Events and stderr, for assertion messages."""
        with self._cond:
            events = "\n".join(json.dumps(e) for e in self.events[-30:])
            err = "\n".join(self.stderr_lines[-40:])
        return f"--- events ---\n{events}\n--- stderr ---\n{err}"


# --------------------------------------------------------------- reading the queue


def collect(broker: Broker, queue: str, *, timeout: float = 20.0,
            until_terminal: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Drain ``queue`` with an independent consumer (pika, not trainwire), waiting for a
    terminal message first unless ``until_terminal`` is false."""
    if not until_terminal:
        return broker.drain(queue)
    return broker.wait_for(
        queue,
        lambda ms: any(isinstance(m["body"], dict) and m["body"].get("status") in TERMINAL
                       for m in ms),
        timeout,
    )  # fmt: skip


@dataclass
class RunCheck:
    """What ``check_run`` found: the messages once each, in arrival order."""

    bodies: list[dict[str, Any]]
    ids: list[str]
    duplicates: int
    steps: list[int] = field(default_factory=list)

    @property
    def terminal_id(self) -> str:
        """The terminal message's ``message_id``."""
        return self.ids[-1]


def check_run(msgs: list[dict[str, Any]], status: str, *, last_step: int | None = None,
              context: str = "") -> RunCheck:  # fmt: skip
    """The invariants of one run's messages as a consumer that drops duplicates sees them."""
    seen: dict[str, dict[str, Any]] = {}
    bodies: list[dict[str, Any]] = []
    ids: list[str] = []
    duplicates = 0
    for m in msgs:
        mid = m["properties"].message_id
        assert mid, f"a message without message_id: {m}{context}"
        if mid in seen:
            assert seen[mid] == m["body"], f"duplicate {mid} with another body{context}"
            duplicates += 1
            continue
        seen[mid] = m["body"]
        bodies.append(m["body"])
        ids.append(mid)
    assert bodies, f"no message at all{context}"
    for body in bodies:
        validate(body)
    statuses = [b["status"] for b in bodies]
    terminals = [s for s in statuses if s in TERMINAL]
    assert len(terminals) == 1, f"{len(terminals)} terminal messages: {statuses}{context}"
    assert statuses[-1] == status, f"last is {statuses[-1]}, expected {status}{context}"
    steps = [b["step"] for b in bodies if b["status"] == PROGRESS]
    assert all(a < b for a, b in zip(steps, steps[1:])), f"steps not increasing: {steps}{context}"
    if last_step is not None:
        assert steps and steps[-1] == last_step, (
            f"last progress step {steps[-1:]} != {last_step}{context}"
        )
    return RunCheck(bodies, ids, duplicates, steps)


def key_lines(stderr: str, key: str) -> list[str]:
    """The trainwire log lines that name config key ``key`` (quoted, as the SDK writes it)."""
    return [ln for ln in stderr.splitlines() if "trainwire" in ln and f"'{key}'" in ln]


def rss_bytes() -> int:
    """Resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ----------------------------------------------------------- figures in the CI log


class FaultReport:
    """Figures the fault suite prints in pytest's terminal summary (shown even on success)."""

    def __init__(self) -> None:
        self.stalls: list[tuple[str, float]] = []
        self.lines: list[str] = []

    def stall(self, scenario: str, seconds: float) -> None:
        """Record (and print) the worst ``progress()`` call of a scenario."""
        self.stalls.append((scenario, seconds))
        print(f"worst progress() call, {scenario}: {seconds * 1e3:.3f} ms")

    def line(self, text: str) -> None:
        """A line for the summary."""
        self.lines.append(text)
        print(text)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """pytest hook: the figures, after the test results."""
        if not self.stalls and not self.lines:
            return
        terminalreporter.section("trainwire fault-injection figures")
        for scenario, seconds in self.stalls:
            terminalreporter.write_line(
                f"worst progress() call during {scenario}: {seconds * 1e3:.3f} ms"
            )
        if self.stalls:
            worst = max(self.stalls, key=lambda s: s[1])
            terminalreporter.write_line(
                f"worst of all: {worst[1] * 1e3:.3f} ms ({worst[0]}); asserted bound "
                f"{STALL_BOUND * 1e3:.0f} ms"
            )
        for text in self.lines:
            terminalreporter.write_line(text)


REPORT = FaultReport()


@pytest.fixture(scope="session")
def fault_report(pytestconfig: Any) -> FaultReport:
    """The session's :class:`FaultReport`, registered as a plugin on first use."""
    if not pytestconfig.pluginmanager.is_registered(REPORT):
        pytestconfig.pluginmanager.register(REPORT, "trainwire-fault-report")
    return REPORT


@pytest.fixture
def fbroker() -> Broker:
    """The private fault broker, running."""
    return fault_broker()
