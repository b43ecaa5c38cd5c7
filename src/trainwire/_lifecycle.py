"""Process-level hooks that give every run exactly one terminal message, however it ends.

Installed once, on the first ``trainwire.init()``, each chained to what was there before:

- ``sys.excepthook``: an uncaught exception ends open runs with ``training_error``;
- ``atexit``: a run still open at interpreter exit ends with ``training_done`` when the
  program finished normally, with ``training_error`` naming the status after
  ``sys.exit(n)`` with ``n != 0``;
- a ``SIGTERM`` handler (main thread only, not when SIGTERM is ignored): ends open runs
  with ``training_error`` naming the signal, then lets the process end as it would have
  (the previous handler, or death by the signal). SIGINT needs no handler: Python turns it
  into ``KeyboardInterrupt``, which the excepthook sees;
- ``os.register_at_fork``: a forked child never sends and never touches the parent's
  connection.

Telling ``sys.exit(0)`` from ``sys.exit(3)`` at exit: Python 3.12+ reports the
``SystemExit`` unwinding the main module through ``sys.monitoring``, so the status is
exact. Older Pythons expose no exit status to ``atexit``; trainwire then knows only
whether the main module ran to its end, and reports ``training_error`` when it did not
(a program that ends with ``sys.exit()`` should call ``run.done()`` or use ``with``).
"""

from __future__ import annotations

import atexit
import dis
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["forget", "register"]

_runs: list[Run] = []
_lock = threading.RLock()  # re-entrant: a SIGTERM handler may run while it is held
_installed = False
_previous_excepthook: Callable[..., Any] | None = None
_previous_sigterm: Any = None
_main_frame: FrameType | None = None
_UNSET = object()
_exit_code: Any = _UNSET
_MONITOR_TOOL = 4


def register(run: Run) -> None:
    """Put ``run`` under the hooks (installing them on first use)."""
    with _lock:
        _install()
        _runs.append(run)


def forget(run: Run) -> None:
    """Take a finished run out of the hooks' reach."""
    with _lock:
        if run in _runs:
            _runs.remove(run)


def _open_runs() -> list[Run]:
    with _lock:
        return list(_runs)


def _install() -> None:
    global _installed, _previous_excepthook, _previous_sigterm, _main_frame
    if _installed:
        return
    _installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_IGN:
            _previous_sigterm = current
            signal.signal(signal.SIGTERM, _on_sigterm)
    _main_frame = _find_main_frame()
    _watch_system_exit()


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    for run in _open_runs():
        run._end_by_exception(exc)
    hook = _previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    for run in _open_runs():
        run._end_by_signal(signum)
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # The default action: end the process by this signal, as it would have without us.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    with _lock:
        runs = list(_runs)
        _runs.clear()
    for run in runs:
        run._detach_after_fork()


def _at_exit() -> None:
    runs = _open_runs()
    if not runs:
        return
    code = _exit_verdict()
    for run in runs:
        run._end_at_exit(code)


def _exit_verdict() -> Any:
    """0 for a normal end, the ``sys.exit`` code when known, else ``None``-less marker."""
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
    frame: FrameType | None = sys._getframe()
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
