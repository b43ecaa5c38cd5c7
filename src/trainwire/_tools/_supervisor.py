"""Supervision of any training command: ``trainwire run -- CMD ...``.

The child runs in a session of its own with its stdout and stderr on pipes, or on
pseudo-terminals where ours are terminals (:mod:`trainwire._tools._pty`). One thread per
stream copies every byte to our own stdout/stderr as soon as it arrives (unchanged), keeps
the last lines and each distributed rank's for the error sentence
(:mod:`trainwire._tools._failure_cause`), and reads progress bars on the side
(:mod:`trainwire._tools._progress_parse`) within a budget (:mod:`trainwire._tools._flood`);
when it recognises none for a while it says so once (:mod:`trainwire._tools._hint`).
Signals that stop a program (SIGTERM, SIGINT, SIGHUP, SIGQUIT) and SIGUSR1/SIGUSR2 are
forwarded to the child's process group; the supervisor waits for the child, then sends
the one terminal message:

- the child used the SDK itself (it wrote ``$TRAINWIRE_STATE_FILE``) and its run decided
  the terminal message: nothing of ours, ever. The spool is the truth: a terminal message
  of this job that the child wrote ahead to the spool after the launch is the child's
  decision even when the child died (``kill -9``) before the broker confirmed it or before
  it recorded its end; the supervisor then delivers exactly those kept records. The
  supervisor also stops sending progress as soon as the child's run is up;
- exit status 0 -> ``training_done``, unless the supervisor forwarded a SIGTERM, SIGHUP or
  SIGQUIT (a job stopped from outside did not finish: ``training_error`` naming the
  signal). After a SIGINT (Ctrl+C) the child's outcome decides: a program that caught it
  and ended normally finished what it wanted;
- non-zero -> ``training_error`` with a sentence built from the child's last output
  (its final exception line, say), never a traceback;
- death by a signal -> ``training_error`` naming the signal.

The supervisor's own messages go through a :class:`trainwire.Run`, so rate limiting,
confirms and the spool are the SDK's. Its exit status is the child's (128+N after death by
signal N, as a shell reports it); after a stop signal of its own that ended in
``training_error``, ``trainwire run`` ends by that signal (:attr:`Outcome.ends_by`).
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from .._broker._delivery import belongs_to, send_records, spool_for
from .._sdk._explain import DEFAULT_LANGUAGE, short_detail, signal_name, text
from .._sdk._run import DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_RATE, STATE_FILE_ENV, Run, init, release
from .._spec._config import CONFIG_ENV, Config
from .._spec._protocol import Status
from .._spec._spool import SpoolRecord
from ._failure_cause import OutputTail, RankFailures, describe_failure
from ._flood import ReadingBudget
from ._hint import HINT_AFTER_LINES, HINT_AFTER_SECONDS, ProgressHint
from ._progress_parse import LineParser, ProgressTracker
from ._pty import copy_size, open_like

__all__ = ["ChildState", "Outcome", "Supervisor", "describe_failure"]

log = logging.getLogger("trainwire")

#: Signals forwarded to the child's process group.
FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
#: Forwarded signals that mean "stop": after one, exit status 0 is not a finished training
#: (except SIGINT: see :meth:`Supervisor._stopped_by`).
STOPPING = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
_STOP_SIGNALS = frozenset(int(getattr(signal, name)) for name in STOPPING)
#: After the child exits, how long the pipes may take to drain (a grandchild may hold them).
DRAIN_TIMEOUT = 2.0
#: At most this much per read, and the size asked for the child's pipes: a flood of output
#: is read in few large pieces (a pipe holds 64 KiB by default).
_READ_SIZE = 1 << 20


def _terminal_status(value: object) -> Status | None:
    """``value`` as a terminal :class:`Status`, or None."""
    try:
        status = Status(value)
    except ValueError:
        return None
    return status if status.terminal else None


@dataclass(frozen=True)
class ChildState:
    """What the command's own SDK run recorded in ``$TRAINWIRE_STATE_FILE``."""

    #: The terminal status its run decided; None while it runs or when its end is unknown.
    status: Status | None
    #: After its flush: True when the broker confirmed its terminal message, False when it
    #: gave up and left it in the spool; None before (or when unknown).
    confirmed: bool | None

    @classmethod
    def parse(cls, data: object) -> ChildState:
        """Read the state file's JSON; anything unexpected is "started, end unknown"."""
        if not isinstance(data, dict):
            return cls(None, None)
        confirmed = data.get("confirmed")
        return cls(
            _terminal_status(data.get("status")),
            confirmed if isinstance(confirmed, bool) else None,
        )


@dataclass
class Outcome:
    """How a supervised command ended and what was reported for it."""

    exit_status: int
    returncode: int | None
    #: The terminal status the supervisor sent of its own, or None.
    sent: Status | None
    #: The ``training_error`` sentence that went out (the supervisor's or the child's).
    message: str | None
    #: The terminal status the child's own SDK run decided, or None.
    child_reported: Status | None
    #: True/False: the broker confirmed the terminal message the supervisor sent or
    #: forwarded (or not); for a child that finished its own flush, what it recorded.
    delivered: bool | None
    #: The supervisor delivered the child's terminal message from the spool (the child
    #: wrote it ahead, then died before the broker confirmed it).
    forwarded: bool = False
    #: The stop signal ``trainwire run`` received when the job ended in ``training_error``:
    #: the CLI ends by that signal after reporting (a shell shows 128+N).
    ends_by: int | None = None

    @property
    def terminal(self) -> Status | None:
        """The one terminal status of the job, whoever decided it."""
        return self.sent or self.child_reported


class _Pump(threading.Thread):
    """Copies one of the child's pipes to our stream and reads it on the side."""

    def __init__(self, name: str, source: int, target_fd: int, supervisor: Supervisor):
        super().__init__(name=f"trainwire-{name}", daemon=True)
        self.source = source
        self.target_fd = target_fd
        self.supervisor = supervisor
        self.tail = OutputTail()
        self.ranks = RankFailures()
        self.parser = LineParser()
        self.budget = ReadingBudget()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._target_ok = True

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._target_ok:
            try:
                written = os.write(self.target_fd, view)
            except InterruptedError:
                continue
            except OSError:  # our own output is gone: keep draining the child anyway
                self._target_ok = False
                return
            view = view[written:]

    def run(self) -> None:
        fd = self.source
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except InterruptedError:
                continue
            except OSError:  # EIO: a pseudo-terminal whose last writer is gone
                break
            if not data:
                break
            self._write(data)
            try:
                chunk = self._decoder.decode(data)
                self.tail.feed(chunk)
                self.ranks.feed(chunk)
                if self.supervisor.parse_progress:
                    self._read_progress(chunk)
            except Exception as exc:  # reading progress must never stop the copying
                log.debug("trainwire: progress parsing failed: %r", exc)
            # After the parsing: progress in these lines counts before their number does.
            self.supervisor.hint.output(data.count(b"\n"))
        if self.supervisor.parse_progress:
            with contextlib.suppress(Exception):
                self._read_progress("", end=True)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _read_progress(self, chunk: str, *, end: bool = False) -> None:
        """Progress in ``chunk`` (in a flood, in its newest lines: :mod:`._flood`); at the
        ``end``, in what a flood left unread."""
        part = self.budget.rest() if end else self.budget.part(chunk)
        started = time.perf_counter()
        for reading in self.parser.feed(part):
            self.supervisor._on_reading(reading)
        pending = self.parser.tail()
        if pending is not None:
            self.supervisor._on_reading(pending)
        self.budget.spent(part, chunk, time.perf_counter() - started)


class Supervisor:
    """Runs one command and reports it; see the module docstring.

    :param command: the program and its arguments.
    :param config: the checked training config (the child sees it as ``$TRAINWIRE_CONFIG``).
    :param run_options: keywords for :func:`trainwire.init` (``total_steps``, ``max_rate``,
        ``flush_timeout``, ``language``).
    :param parse_progress: turn progress bars in the output into ``training_ing``.
    :param tty: give the command a pseudo-terminal for each of stdout and stderr: None
        (default) for those of ours that are terminals, True for both, False for neither
        (:mod:`trainwire._tools._pty`).
    :param hint_after: ``(seconds, lines)`` of output without recognised progress before the
        one hint on stderr (:mod:`trainwire._tools._hint`).
    """

    def __init__(
        self,
        command: Sequence[str],
        config: Config,
        *,
        total_steps: int | None = None,
        max_rate: float | None = DEFAULT_MAX_RATE,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        language: str = DEFAULT_LANGUAGE,
        parse_progress: bool = True,
        tty: bool | None = None,
        hint_after: tuple[float, int] = (HINT_AFTER_SECONDS, HINT_AFTER_LINES),
    ) -> None:
        if not command:
            raise ValueError("no command to run")
        self.command = list(command)
        self.config = config
        self.language = language
        self.parse_progress = parse_progress
        self.tty = tty
        self.hint = ProgressHint(self._child_reports, seconds=hint_after[0], lines=hint_after[1])
        self._ptys: dict[int, int] = {}  # our fd (1, 2) -> the master of the command's pty
        if not parse_progress:
            self.hint.stop()  # progress reading is off on purpose: nothing to hint at
        self._run_options: dict[str, Any] = {
            "total_steps": total_steps,
            "max_rate": max_rate,
            "flush_timeout": flush_timeout,
            "language": language,
        }
        self._tracker = ProgressTracker(total_steps)
        self._tracker_lock = threading.Lock()
        self._run: Run | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._signals: list[int] = []
        self._early_signals: list[int] = []
        self._state_path: Path | None = None
        self._child_active = False
        #: The spool's message ids before the launch: what is not among them is the child's.
        self._spool_before: set[str] = set()

    # -- the pieces ----------------------------------------------------------------------

    def _child_env(self, state_path: Path) -> dict[str, str]:
        env = dict(os.environ)
        env[CONFIG_ENV] = str(self.config.path.resolve())
        env[STATE_FILE_ENV] = str(state_path)
        # Python children write through at once (a pipe would make them block-buffered).
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        proc = self._proc
        if proc is None:
            self._early_signals.append(signum)  # forwarded as soon as the child exists
        elif proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signum)

    def _on_resize(self, signum: int, frame: FrameType | None) -> None:
        """Our terminal changed size: so do the command's, and it is told."""
        for ours, master in self._ptys.items():
            copy_size(ours, master)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGWINCH)

    def _install_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        handlers = {getattr(signal, name, None): self._on_signal for name in FORWARDED}
        handlers[signal.SIGWINCH] = self._on_resize
        for signum, handler in handlers.items():
            if signum is not None:
                previous[signum] = signal.getsignal(signum)
                signal.signal(signum, handler)
        return previous

    def _child_reports(self) -> bool:
        if not self._child_active and self._state_path is not None:
            self._child_active = self._state_path.exists()
        return self._child_active

    def _on_reading(self, reading: Any) -> None:
        if self._child_reports():
            return  # the child's own run sends progress: two sources would interleave
        with self._tracker_lock:
            found = self._tracker.update(reading)
        if found is None:
            return
        self.hint.progress()
        run = self._run
        if run is not None:
            run.progress(found[0], percentage=found[1])

    def _child_state(self) -> ChildState | None:
        """The child's own run as its state file tells it; None: it never started one."""
        path = self._state_path
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return ChildState(None, None)  # started (a kill can cut the write short)
        return ChildState.parse(data)

    def _spooled_ids(self) -> set[str]:
        try:
            return {record.message_id for record in spool_for(self.config).read()}
        except OSError:
            return set()

    def _kept_by_child(self) -> list[SpoolRecord]:
        """This job's records written to the spool after the launch: the child's write-ahead
        (its newest progress and its terminal message), in spool order."""
        try:
            records = spool_for(self.config).read()
        except OSError as exc:
            log.warning("trainwire: cannot read the spool: %s", exc)
            return []
        before = self._spool_before
        return [
            record
            for record in records
            if record.message_id not in before and belongs_to(self.config, record.body)
        ]

    def _release(self, run: Run) -> None:
        # The child sent the terminal message: end ours without one (and without the
        # exit hooks sending one later). The same path a forked child's run takes.
        release(run)

    # -- the whole thing ---------------------------------------------------------------

    def run(self) -> Outcome:
        """Start the command, pass its output through, wait, report; see :class:`Outcome`."""
        self._run = init(self.config.path, kind=self.config.kind.value, **self._run_options)
        previous = self._install_handlers()
        state_dir = Path(tempfile.mkdtemp(prefix="trainwire-run-"))
        self._state_path = state_dir / "state.json"
        try:
            return self._supervise()
        finally:
            for signum, handler in previous.items():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(signum, handler)
            shutil.rmtree(state_dir, ignore_errors=True)

    def _spawn(self) -> tuple[int, str] | None:
        """Start the child; when it cannot start, the shell's status (127 not found, 126
        not executable) and a sentence for the user."""
        assert self._state_path is not None
        self._spool_before = self._spooled_ids()
        slaves = self._open_ptys()
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdout=slaves.get(1, subprocess.PIPE),
                stderr=slaves.get(2, subprocess.PIPE),
                env=self._child_env(self._state_path),
                start_new_session=True,  # its own process group: signals reach all of it
            )
        except OSError as exc:
            for master in self._ptys.values():  # no command: nothing will be read
                os.close(master)
            self._ptys.clear()
            reason = exc.strerror or str(exc)
            status = 127 if isinstance(exc, FileNotFoundError) else 126
            detail = short_detail(f"{self.command[0]}: {reason}")
            return status, text("command_failed", self.language, detail=detail)
        finally:
            for slave in slaves.values():  # the child has its own: EOF when it is gone
                os.close(slave)
        self.hint.start()
        return None

    def _open_ptys(self) -> dict[int, int]:
        """A pseudo-terminal for each of our stdout/stderr that is a terminal (or none,
        see ``tty``): the command's end of each, by our fd."""
        slaves: dict[int, int] = {}
        if self.tty is False:
            return slaves
        for ours in (1, 2):
            pair = open_like(ours, always=bool(self.tty))
            if pair is not None:
                self._ptys[ours], slaves[ours] = pair
        return slaves

    def _supervise(self) -> Outcome:
        outcome = self._supervise_child()
        if outcome.terminal is Status.ERROR:
            outcome.ends_by = next((s for s in self._signals if s in _STOP_SIGNALS), None)
        return outcome

    def _supervise_child(self) -> Outcome:
        run = self._run
        assert run is not None
        problem = self._spawn()
        proc = self._proc
        if problem is not None or proc is None:
            status, sentence = problem or (126, "?")
            log.error("trainwire: %s", sentence)
            run.fail(sentence)
            return Outcome(status, None, Status.ERROR, sentence, None, run.delivered)
        returncode, tails = self._wait(proc)
        exit_status = returncode if returncode >= 0 else 128 - returncode
        own_end = self._childs_own_end(run, exit_status, returncode)
        if own_end is not None:
            return own_end
        stopped_by = self._stopped_by(returncode)
        if returncode == 0 and stopped_by is None:
            run.done()
            return Outcome(exit_status, returncode, Status.DONE, None, None, run.delivered)
        stderr, stdout = tails
        message = describe_failure(
            returncode,
            stderr.tail.snapshot(),
            stdout.tail.snapshot(),
            language=self.language,
            stopped_by=stopped_by,
            rank=stderr.ranks.cause() or stdout.ranks.cause(),
        )
        run.fail(message)
        return Outcome(exit_status, returncode, Status.ERROR, message, None, run.delivered)

    def _wait(self, proc: subprocess.Popen[bytes]) -> tuple[int, tuple[_Pump, _Pump]]:
        """Pass the output through until the child ends; its status and the pumps of its
        stderr and stdout (what they kept of the output)."""
        for signum in self._early_signals:  # signals that came while starting
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signum)
        stdout = _Pump("stdout", self._source(1, proc.stdout), 1, self)
        stderr = _Pump("stderr", self._source(2, proc.stderr), 2, self)
        for pump in (stdout, stderr):
            pump.start()
        returncode = proc.wait()
        self.hint.stop()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        for pump in (stdout, stderr):
            pump.join(max(0.0, deadline - time.monotonic()))
        return returncode, (stderr, stdout)

    def _source(self, ours: int, pipe: IO[bytes] | None) -> int:
        """The fd the pump for our fd ``ours`` reads and closes: the pseudo-terminal's
        master, or the pipe's (its own copy: the Popen object closes the pipe's)."""
        if pipe is None:
            return self._ptys[ours]
        fd = os.dup(pipe.fileno())
        pipe.close()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; a limit may refuse
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _READ_SIZE)
        return fd

    def _stopped_by(self, returncode: int) -> int | None:
        """The forwarded stop signal that makes this run a ``training_error``, if any.

        A SIGINT (Ctrl+C) the child handled and then ended normally after (status 0)
        does not: the child's outcome decides, as in the SDK.
        """
        for signum in self._signals:
            if signum in _STOP_SIGNALS and not (signum == signal.SIGINT and returncode == 0):
                return signum
        return None

    def _childs_own_end(self, run: Run, exit_status: int, returncode: int) -> Outcome | None:
        """The terminal message the child's own run decided, if it did: then none of ours.

        A terminal record the child wrote ahead to the spool after the launch is its
        decision even when the child died before its flush ended (its state file still
        says it runs): the supervisor delivers those records, exactly once. A child that
        recorded the end of its flush (confirmed, or given up and left to the spool) has
        said everything itself.
        """
        state = self._child_state()
        kept = self._kept_by_child()
        ends = [r for r in kept if r.terminal and _terminal_status(r.body.get("status"))]
        if ends and (state is None or state.confirmed is None):
            self._release(run)
            status = _terminal_status(ends[0].body.get("status"))
            message = ends[0].body.get("message")
            outcome = Outcome(exit_status, returncode, None, None, status, self._forward(kept))
            outcome.forwarded = True
            outcome.message = message if isinstance(message, str) else None
            return outcome
        if state is not None and state.status is not None:
            self._release(run)
            return Outcome(exit_status, returncode, None, None, state.status, state.confirmed)
        return None

    def _forward(self, kept: list[SpoolRecord]) -> bool:
        """Deliver the child's kept records (confirmed ones leave the spool): True when all
        were confirmed within ``flush_timeout``; the rest stays for ``trainwire replay``."""
        timeout = float(self._run_options["flush_timeout"])
        if timeout <= 0:
            return False
        try:
            result = send_records(self.config, kept, timeout=timeout)
        except OSError as exc:  # the spool could not be rewritten: replay sends it again
            log.warning("trainwire: cannot update the spool: %s", exc)
            return False
        if not result.ok and result.reason:
            log.warning("trainwire: %s", result.reason)
        return result.ok


def exit_status_name(status: int) -> str:
    """``143 (SIGTERM)`` for statuses above 128, else the number."""
    if status > 128:
        return f"{status} ({signal_name(status - 128)})"
    return str(status)
