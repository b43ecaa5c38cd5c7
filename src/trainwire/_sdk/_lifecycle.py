"""Process-level hooks that give every run exactly one terminal message, however it ends.

Installed on the first ``trainwire.init()``, each chained to what was there before:

- ``sys.excepthook``: an uncaught exception ends open runs with ``training_error``;
- ``atexit``: a run still open at interpreter exit ends with ``training_done`` when the
  program finished normally, with ``training_error`` naming the status after
  ``sys.exit(n)`` with ``n != 0``;
- a ``SIGTERM`` handler (installed from the main thread, not when SIGTERM is ignored):
  ends open runs with ``training_error`` naming the signal. A handler that was there
  before is called at once, as it would have been; without one the process ends by the
  signal once the end is flushed. A second SIGTERM (or a Ctrl+C) while the end flushes
  stops the wait: the terminal message is in the spool by then. SIGINT needs no handler:
  Python turns it into ``KeyboardInterrupt``, which the excepthook sees;
- ``os.register_at_fork``: a forked child never sends and never touches the parent's
  connection.

**Where the end runs.** A signal handler runs on the main thread between two bytecodes of
whatever it interrupted: inside ``log()`` holding the graph writer's lock, inside the
spool's write, inside ``done()``. So the handler takes no lock the main thread can hold:
it puts the signal number on a ``queue.SimpleQueue`` (reentrant by design). One daemon
thread per process, the *ender*, does the rest: it ends the open runs, flushes them
together, and then sends the signal again, which the handler now passes on. Ends asked for
on the main thread (``done()``, ``fail()``, the excepthook, ``atexit``) also run on the
ender, so that a ``KeyboardInterrupt`` arriving at any instant can cut short only the
main thread's *wait*, never the end itself: the terminal message is written ahead to the
spool and the flush goes on. Other threads end their runs themselves.

Telling ``sys.exit(0)`` from ``sys.exit(3)`` at exit: Python 3.12+ reports the
``SystemExit`` unwinding the main module through ``sys.monitoring``, so the status is
exact. Older Pythons expose no exit status to ``atexit``; trainwire then knows only
whether the main module ran to its end, and reports ``training_error`` when it did not
(a program that ends with ``sys.exit()`` should call ``run.done()`` or use ``with``).
"""

from __future__ import annotations

import atexit
import contextlib
import dis
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from typing import Protocol

    from .._spec._protocol import Status

    class Run(Protocol):
        """What the hooks need of a run, so that this module needs no ``Run``.

        ``_run.Run`` hands the hooks a small view of itself with these methods (its side
        of ending); users never see them.
        """

        @property
        def flush_timeout(self) -> float: ...
        def claim(self, body: dict[str, Any], status: Status) -> bool: ...
        def begin_end(self) -> None: ...
        def complete_end(self, timeout: float) -> None: ...
        def wait_ended(self) -> None: ...
        def hurry(self) -> None: ...
        def exception_ending(self, exc: BaseException) -> Ending | None: ...
        def signal_ending(self, signum: int) -> Ending | None: ...
        def exit_ending(self, code: Any) -> Ending | None: ...
        def detach_after_fork(self) -> None: ...


__all__ = ["UNKNOWN_EXIT", "Ending", "end", "forget", "register"]

log = logging.getLogger("trainwire")

_runs: list[Run] = []
_lock = threading.Lock()  # never taken by a signal handler
_installed = False
_sigterm_hooked = False
_warned_thread = False
_previous_excepthook: Callable[..., Any] | None = None
_previous_sigterm: Any = None
_main_frame: FrameType | None = None
_UNSET = object()
_exit_code: Any = _UNSET
_MONITOR_TOOL = 4
#: The SIGTERM being handled (set by the handler), and whether its end is flushed.
_signal_pending: int | None = None
_signal_flushed = False
_signal_done = threading.Event()
#: An uncaught KeyboardInterrupt ended the program (see _at_exit).
_interrupted = False
#: How much longer than its flush_timeout the main thread waits for the ender.
_WAIT_SLACK = 5.0


@dataclass
class Ending:
    """One run's terminal message, about to be sent."""

    run: Run
    body: dict[str, Any]
    status: Status


@dataclass(frozen=True)
class _Resend:
    """Send this signal again shortly (it landed inside a finalizer, see _on_sigint)."""

    signum: int


@dataclass
class _Batch:
    endings: list[Ending]
    won: list[bool] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class _Ender:
    """The thread that ends runs for the main thread and for signals (see module doc)."""

    def __init__(self) -> None:
        self.requests: queue.SimpleQueue[_Batch | _Resend | int] = queue.SimpleQueue()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._main, name="trainwire-end", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        while True:
            item = self.requests.get()
            try:
                if isinstance(item, _Batch):
                    item.won = _end_now(item.endings)
                elif isinstance(item, _Resend):
                    time.sleep(0.01)
                    os.kill(os.getpid(), item.signum)
                else:
                    _end_for_signal(item)
            except Exception:  # never let the ender die: log and serve the next request
                log.exception("trainwire: ending the run failed")
            finally:
                if isinstance(item, _Batch):
                    item.done.set()


_ender: _Ender | None = None


def register(run: Run) -> bool:
    """Put ``run`` under the hooks (installing them on first use).

    False when the process is about to end by SIGTERM (every open run is ended and the
    signal is passed on next): a run started now could never be ended, so it must not start.
    """
    global _ender
    with _lock:
        if _signal_flushed:
            return False
        _install()
        if _ender is None or _ender.pid != os.getpid():
            _ender = _Ender()
        _runs.append(run)
    return True


def forget(run: Run) -> None:
    """Take a finished run out of the hooks' reach."""
    with _lock:
        if run in _runs:
            _runs.remove(run)


def _open_runs() -> list[Run]:
    with _lock:
        return list(_runs)


def end(endings: list[Ending]) -> list[bool]:
    """Send these terminal messages and flush them together; True where the run was open.

    A run already ended (or ending elsewhere) is waited for, then reported as False.
    """
    if not endings:
        return []
    ender = _ender
    if threading.current_thread() is not threading.main_thread() or ender is None:
        return _end_now(endings)
    batch = _Batch(endings)
    ender.requests.put(batch)
    try:
        batch.done.wait(max(e.run.flush_timeout for e in endings) + _WAIT_SLACK)
    except BaseException:  # e.g. a second Ctrl+C: stop waiting; the spool keeps the end
        for ending in endings:
            ending.run.hurry()
        raise
    return batch.won or [False] * len(endings)


def _end_now(endings: list[Ending]) -> list[bool]:
    won = [e.run.claim(e.body, e.status) for e in endings]
    started = time.monotonic()
    mine = [e.run for e, w in zip(endings, won) if w]
    for run in mine:
        run.begin_end()
    for run in mine:
        run.complete_end(max(0.0, started + run.flush_timeout - time.monotonic()))
    for e, w in zip(endings, won):
        if not w:
            e.run.wait_ended()
    return won


def _end_for_signal(signum: int) -> None:
    global _signal_pending, _signal_flushed
    done = _signal_done
    dying = not callable(_previous_sigterm)  # else it was called at once: it decides
    seen: set[int] = set()
    try:
        while True:  # runs started while the first ones flushed are ended too
            with _lock:
                runs = [run for run in _runs if id(run) not in seen]
                seen.update(id(run) for run in runs)
                if not runs:
                    _signal_flushed = dying  # from here on register() refuses new runs
                    break
            _end_now([e for e in (run.signal_ending(signum) for run in runs) if e])
    finally:
        if dying:
            _signal_flushed = True
            os.kill(os.getpid(), signum)  # the handler passes it on now
        else:
            _signal_pending = None
        done.set()


def _install() -> None:
    global _installed, _previous_excepthook, _main_frame
    _hook_sigterm()
    if _installed:
        return
    _installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    _main_frame = _find_main_frame()
    _watch_system_exit()


def _hook_sigterm() -> None:
    global _sigterm_hooked, _previous_sigterm, _warned_thread
    if _sigterm_hooked:
        return
    if threading.current_thread() is not threading.main_thread():
        if not _warned_thread:
            _warned_thread = True
            log.warning(
                "trainwire: init() ran in thread %r, not the main thread; Python lets only the "
                "main thread handle signals, so a SIGTERM would end this process without a "
                "training_error. Call trainwire.init() once from the main thread (or run the "
                "job under `trainwire run`) to cover it.",
                threading.current_thread().name,
            )
        return
    _sigterm_hooked = True
    current = signal.getsignal(signal.SIGTERM)
    if current is not signal.SIG_IGN:
        _previous_sigterm = current
        signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Python's Ctrl+C, except inside a finalizer, where it would be lost.

    A ``KeyboardInterrupt`` raised inside a weakref callback or ``__del__`` (run by the
    garbage collector at any instant, e.g. ``threading``'s WeakSet of threads when a
    finished run's thread object goes) is printed as "Exception ignored" and dropped: the
    program then never stops. There the signal is sent again, to land after it.
    """
    ender = _ender
    if frame is not None and ender is not None and _in_finalizer(frame):
        ender.requests.put(_Resend(signum))  # reentrant; sent again once the callback ended
        return
    signal.default_int_handler(signum, frame)


def _in_finalizer(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name == "__del__" or code.co_filename.endswith("_weakrefset.py")


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    global _interrupted
    runs = _open_runs()
    if isinstance(exc, KeyboardInterrupt):  # Ctrl+C while an end flushes: stop waiting
        _interrupted = True
        for run in runs:
            run.hurry()
    # A second Ctrl+C while flushing stops the wait only: the spool has the end.
    with contextlib.suppress(BaseException):
        end([e for e in (run.exception_ending(exc) for run in runs) if e])
    hook = _previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Runs between two bytecodes of anything: nothing here may wait for a lock that the
    # interrupted code can hold (see module doc).
    global _signal_pending, _signal_done
    if _signal_pending is not None and not _signal_flushed:
        for run in list(_runs):  # again while the end flushes: stop waiting for the broker
            run.hurry()
        return
    if not _runs or _signal_flushed or _ender is None:
        _pass_on(signum, frame)
        return
    _signal_pending = signum
    _signal_done = threading.Event()
    _ender.requests.put(signum)
    if callable(_previous_sigterm):
        _previous_sigterm(signum, frame)


def _pass_on(signum: int, frame: FrameType | None) -> None:
    """Let the signal do what it would have done without trainwire."""
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    global _lock, _ender, _signal_pending, _signal_flushed, _signal_done
    _lock = threading.Lock()  # another thread may have held the parent's at fork time
    runs = list(_runs)
    _runs.clear()
    _ender, _signal_pending, _signal_flushed = None, None, False
    _signal_done = threading.Event()
    for run in runs:
        run.detach_after_fork()


def _at_exit() -> None:
    _end_at_exit()
    if _interrupted:
        # Python should end a process that a Ctrl+C stopped by SIGINT, but with other
        # threads about it sometimes exits with status 1 instead (seen with CPython 3.11):
        # do it here, so that a supervisor always sees the interruption.
        with contextlib.suppress(Exception):
            logging.shutdown()  # what the atexit hooks after this one would have flushed
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _end_at_exit() -> None:
    signum = _signal_pending
    if signum is not None:  # a SIGTERM is being handled: let its end finish (and die by it)
        _signal_done.wait(max((r.flush_timeout for r in _runs), default=0.0) + _WAIT_SLACK)
        if not callable(_previous_sigterm):
            _pass_on(signum, None)
        return
    runs = _open_runs()
    if not runs:
        return
    code = _exit_verdict()
    end([e for e in (run.exit_ending(code) for run in runs) if e])


def _exit_verdict() -> Any:
    """0 for a normal end, the ``sys.exit`` code when known, else :data:`UNKNOWN_EXIT`."""
    if _main_frame is not None and _ran_to_end(_main_frame):
        return 0
    if _exit_code is not _UNSET:
        code = _exit_code
        return 0 if code is None or code is False else code
    if _main_frame is None:
        return 0
    return UNKNOWN_EXIT


#: The program left its main module early through ``sys.exit`` with a status we cannot see.
UNKNOWN_EXIT = object()


def _find_main_frame() -> FrameType | None:
    """The ``__main__`` module's frame on the main thread, from whichever thread asks."""
    frame: FrameType | None = sys._current_frames().get(threading.main_thread().ident or 0)
    found = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            found = frame
        frame = frame.f_back
    return found


def _ran_to_end(frame: FrameType) -> bool:
    """Did this module frame finish with its final return (not through an exception)?"""
    offset = frame.f_lasti
    for instruction in dis.get_instructions(frame.f_code):
        if instruction.offset == offset:
            return instruction.opname in ("RETURN_VALUE", "RETURN_CONST")
    return False


def _watch_system_exit() -> None:
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None or _main_frame is None:
        return
    main_code = _main_frame.f_code
    try:
        monitoring.use_tool_id(_MONITOR_TOOL, "trainwire")
    except ValueError:  # another tool holds the id: fall back to the frame check
        return

    def on_unwind(code: Any, offset: int, exc: BaseException) -> Any:
        global _exit_code
        if code is main_code and isinstance(exc, SystemExit):
            _exit_code = exc.code
        return None

    monitoring.register_callback(_MONITOR_TOOL, monitoring.events.PY_UNWIND, on_unwind)
    monitoring.set_events(_MONITOR_TOOL, monitoring.events.PY_UNWIND)
