"""The run: what a training job holds while it reports, and ``trainwire.init()``."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._broker._transport import Outbox, Transport
from .._errors import ConfigError
from .._spec._config import Config, PathLike, load_config
from .._spec._protocol import (
    MAX_STEP,
    Status,
    check_percentage,
    check_step,
    done_message,
    error_message,
)
from .._spec._spool import OFFLINE_FILE
from . import _distributed, _lifecycle
from ._explain import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    explain_exception,
    explain_exit_status,
    explain_signal,
    text,
)
from ._lifecycle import Ending
from ._local import FileTransport, NullTransport
from ._rank import global_rank

if TYPE_CHECKING:
    from ._metrics import MetricsWriter

__all__ = ["MODE_ENV", "Run", "init", "release"]

log = logging.getLogger("trainwire")

MODE_ENV = "TRAINWIRE_MODE"
#: ``init()``'s defaults, the same for every integration and ``trainwire run``: at most
#: 10 progress messages a second, 30 s to wait for the broker at the end.
DEFAULT_MAX_RATE = 10.0
DEFAULT_FLUSH_TIMEOUT = 30.0
#: Set by ``trainwire run`` for its child: where the child records that it sent its own end.
STATE_FILE_ENV = "TRAINWIRE_STATE_FILE"
_MODES = ("online", "offline", "disabled")


class _HookSide:
    """A run's side of ending as the lifecycle hooks call it (``_lifecycle.Run``).

    The hooks end runs on the ending thread; these are ``Run``'s own steps of that,
    kept off the public class so that users see only ``progress``/``done``/``fail``.
    """

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def flush_timeout(self) -> float:
        return self._run.flush_timeout

    def claim(self, body: dict[str, Any], status: Status) -> bool:
        return self._run._claim(body, status)

    def begin_end(self) -> None:
        self._run._begin_end()

    def complete_end(self, timeout: float) -> None:
        self._run._complete_end(timeout)

    def wait_ended(self) -> None:
        self._run._wait_ended()

    def hurry(self) -> None:
        self._run._hurry()

    def exception_ending(self, exc: BaseException) -> Ending | None:
        return self._run._exception_ending(exc)

    def signal_ending(self, signum: int) -> Ending | None:
        return self._run._signal_ending(signum)

    def exit_ending(self, code: Any) -> Ending | None:
        return self._run._exit_ending(code)

    def detach_after_fork(self) -> None:
        self._run._detach_after_fork()


def release(run: Run) -> None:
    """End ``run`` without a terminal message of its own: another process sent it.

    ``trainwire run`` calls this when its child reported by itself; the exit hooks then
    send nothing for ``run`` either. The same path a forked child's copy of a run takes.
    """
    _lifecycle.forget(run._hooks)
    run._detach_after_fork()


class Run:
    """One training or validation job reporting to the platform.

    Create it with :func:`trainwire.init`. ``progress()`` is safe to call at every step:
    it only records the step for the I/O thread and returns. ``done()`` or ``fail()``
    sends the one terminal message; if neither is called, the process's exit decides (see
    :func:`trainwire.init`). After the terminal message every call is a no-op with one
    warning.
    """

    def __init__(
        self,
        config: Config,
        *,
        total_steps: int | None,
        max_rate: float | None,
        flush_timeout: float,
        language: str,
        mode: str,
        reporting: bool,
        rank: int = 0,
    ) -> None:
        self.config = config
        self.total_steps = total_steps
        self.max_rate = max_rate
        self.flush_timeout = flush_timeout
        self.language = language
        self.mode = mode if reporting else "disabled"
        self._outbox = Outbox(config.identity, max_rate, total_steps)
        self._push = self._outbox.push
        self._reporting = reporting
        self.rank = rank
        #: This launch's id, read while the launcher is surely alive (see _distributed).
        self._launch = _distributed.launch_id() if rank > 0 or reporting else None
        #: A non-zero rank records its failure for rank 0 to report (see _distributed).
        self._records_failure = rank > 0
        self._inactive = not reporting
        self._ended = False
        self._warned_after_end = False
        # Taken by the thread that ends the run, never by a signal handler (see _lifecycle).
        self._end_lock = threading.Lock()
        self._finished = threading.Event()
        self._status: Status | None = None
        self._confirmed: bool | None = None
        self._metrics: MetricsWriter | None = None
        self._metrics_lock = threading.Lock()
        self._hooks = _HookSide(self)
        if (reporting or self._records_failure) and not _lifecycle.register(self._hooks):
            # The process is ending by SIGTERM: a run started now would never be ended.
            log.warning("trainwire: init() after SIGTERM: this run reports nothing")
            self._reporting = self._records_failure = False
            self._inactive, self.mode = True, "disabled"
        self._transport = self._make_transport()
        self._transport.start()
        if self._reporting:
            self._tell_supervisor()  # under `trainwire run`: the child reports by itself

    def _make_transport(self) -> Transport:
        if self.mode == "disabled":
            return NullTransport(self._outbox)
        if self.mode == "offline" or not self.config.has_broker:
            self.mode = "offline"
            return FileTransport(self._outbox, self.config.save_dir / OFFLINE_FILE)
        from .._broker._amqp import AmqpTransport

        return AmqpTransport(self._outbox, self.config)

    def __repr__(self) -> str:
        return (
            f"<trainwire.Run {self.config.kind.value} {self.config.job_id!r} "
            f"mode={self.mode} state={self.status}>"
        )

    # -- progress: the hot path ------------------------------------------------------

    def progress(self, step: int, percentage: float | None = None) -> None:
        """Report that training reached ``step`` (``training_ing``).

        ``percentage`` defaults to ``step / total_steps * 100``; give it when the total is
        unknown. It is clamped to 0..100; NaN and infinity are errors, as is a step outside
        0..2**63-1. Never blocks, never raises for broker trouble.
        """
        if self._inactive:
            self._after_end("progress")
            return
        if type(step) is not int or step < 0 or step > MAX_STEP:
            step = check_step(step)
        if percentage is None:
            if self.total_steps is None:
                raise ValueError(
                    "progress(step) needs total_steps (trainwire.init(total_steps=...)) or an "
                    "explicit percentage: run.progress(step, percentage=37.5)"
                )
            # A bare int: the I/O thread computes step / total_steps * 100 (Outbox). No
            # allocation here, so this call never sets off the garbage collector.
            self._push(step)
            return
        if type(percentage) is not float or not 0.0 <= percentage <= 100.0:
            percentage = check_percentage(percentage)  # clamps to 0..100
        self._push((step, percentage))

    # -- the terminal message -------------------------------------------------------

    def done(self) -> None:
        """Send ``training_done``, wait up to ``flush_timeout`` for the broker, and close."""
        self._end(self._done_ending(), "done")

    def fail(self, message: str | BaseException) -> None:
        """Send ``training_error`` with ``message`` (shown to the user), flush and close.

        An exception is turned into a plain sentence (``TrainingError`` text verbatim).
        """
        if isinstance(message, BaseException):
            text_ = explain_exception(message, self.language)
        elif isinstance(message, str) and message.strip():
            text_ = message
        else:
            raise TypeError("fail() needs a non-empty message for the user, or an exception")
        self._end(self._error_ending(text_), "fail")

    def _end(self, ending: Ending | None, caller: str) -> None:
        if self._ended or (ending is not None and not _lifecycle.end([ending])[0]):
            self._after_end(caller)

    def _done_ending(self) -> Ending | None:
        if not self._reporting:
            return None
        return Ending(self._hooks, done_message(self.config.identity), Status.DONE)

    def _error_ending(self, text_: str) -> Ending | None:
        if self._reporting:
            text_ = _distributed.root_cause(
                self.config.save_dir, text_, self.language, launch=self._launch
            )
            return Ending(self._hooks, error_message(self.config.identity, text_), Status.ERROR)
        if self._records_failure:
            self._records_failure = False
            _distributed.record_failure(self.config.save_dir, self.rank, text_, launch=self._launch)
        return None

    # -- the end itself: run by _lifecycle on the ending thread ---------------------

    def _claim(self, body: dict[str, Any], status: Status) -> bool:
        """Make ``body`` the run's terminal message unless it has one; True if it was made."""
        with self._end_lock:
            if self._ended:
                return False
            self._ended = self._inactive = True
            self._status = status
        self._outbox.set_terminal(body)
        return True

    def _begin_end(self) -> None:
        try:
            self._transport.begin_finish()
        except Exception as exc:  # the flush below still gets its chance
            log.warning("trainwire: cannot keep the final status: %r", exc)
        # Decided and kept: from here on a supervisor never sends a terminal of its own,
        # even if this process dies before the end below records the confirm.
        self._tell_supervisor()

    def _complete_end(self, timeout: float) -> None:
        try:
            self._confirmed = self._transport.finish(timeout)
        except Exception as exc:
            self._confirmed = False
            log.warning("trainwire: the final status may not have been sent: %r", exc)
        finally:
            _lifecycle.forget(self._hooks)
            self._close_metrics()
            self._tell_supervisor()
            self._finished.set()

    def _wait_ended(self) -> None:
        self._finished.wait(self.flush_timeout + 5.0)

    def _hurry(self) -> None:
        """Stop waiting for the broker if the run is ending (safe in a signal handler)."""
        if self._ended:
            self._transport.hurry()

    def _after_end(self, caller: str) -> None:
        if self._ended and not self._warned_after_end:
            self._warned_after_end = True
            log.warning(
                "trainwire: %s() after the run ended (%s) is ignored: the platform accepts "
                "nothing after the terminal message",
                caller,
                self._status.value if self._status else "?",
            )

    def _tell_supervisor(self) -> None:
        path = os.environ.get(STATE_FILE_ENV)
        if not path:
            return
        try:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(
                    {"status": self.status, "confirmed": self._confirmed, "pid": os.getpid()}, fh
                )
        except OSError as exc:
            log.warning("trainwire: cannot write %s=%s: %s", STATE_FILE_ENV, path, exc)

    # -- ends decided by the lifecycle hooks ---------------------------------------

    def _exception_ending(self, exc: BaseException) -> Ending | None:
        return self._error_ending(explain_exception(exc, self.language))

    def _signal_ending(self, signum: int) -> Ending | None:
        if not self._reporting:
            return None  # on a non-zero rank a signal is the launcher's teardown, not a cause
        return self._error_ending(explain_signal(signum, self.language))

    def _exit_ending(self, code: Any) -> Ending | None:
        if code == 0:
            return self._done_ending()
        if code is _lifecycle.UNKNOWN_EXIT:
            if not self._reporting:  # a non-zero rank records only a failure it is sure of
                return None
            return self._error_ending(text("exit_unknown", self.language))
        return self._error_ending(explain_exit_status(code, self.language))

    def _detach_after_fork(self) -> None:
        self._inactive = True
        self._reporting = False
        self._records_failure = False
        self._transport.abandon()
        metrics = self._metrics
        if metrics is not None:
            metrics.disable()

    # -- state -------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``running``, or the terminal status sent (``training_done`` or ``training_error``)."""
        return self._status.value if self._status else "running"

    @property
    def delivered(self) -> bool | None:
        """After the end: True when the broker confirmed the terminal message (offline: when
        it was written to the offline file), False when it was not (kept in the spool for
        ``trainwire replay``, or the offline file could not be written). None before the end
        and for a run that sends nothing (disabled, other ranks)."""
        return None if self.mode == "disabled" else self._confirmed

    @property
    def is_reporting(self) -> bool:
        """False on processes that never send (non-zero ranks, forked children, disabled)."""
        return self._reporting and self.mode != "disabled"

    # -- graphs ------------------------------------------------------------------------

    def _writer(self) -> MetricsWriter | None:
        metrics = self._metrics
        if metrics is None and self._reporting:
            with self._metrics_lock:
                if self._metrics is None:
                    from ._metrics import MetricsWriter

                    self._metrics = MetricsWriter(self.config.metrics_dir)
                metrics = self._metrics
        return metrics

    def log(self, graph: str, x: float, *, x_axis: str = "step", **series: Any) -> None:
        """Append one row to the graph file ``<model_write_path>/save/metrics/<graph>.log``.

        ``x`` is the time axis value, each keyword one line of the graph::

            run.log("loss", step, train=0.31, val=0.29)
        """
        if self._inactive:
            if self._ended:
                self._after_end("log")
            return
        writer = self._writer()
        if writer is not None:
            writer.log(graph, x, series, x_axis=x_axis)

    def log_dict(self, metrics: Mapping[str, Any], step: float) -> None:
        """Log ``{"graph/series": value, "graph": value}`` at ``step``; see docs/metrics.md."""
        if self._inactive:
            if self._ended:
                self._after_end("log_dict")
            return
        writer = self._writer()
        if writer is not None:
            writer.log_dict(metrics, step)

    def _close_metrics(self) -> None:
        metrics = self._metrics
        if metrics is not None:
            metrics.close(timeout=1.0)

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
            self.done()
        else:
            self.fail(exc)


def _check_options(
    total_steps: int | None, max_rate: float | None, flush_timeout: float, language: str
) -> None:
    if total_steps is not None and (
        isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0
    ):
        raise ValueError(f"total_steps must be a positive integer or None, got {total_steps!r}")
    if max_rate is not None and (
        isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) or not max_rate > 0
    ):
        raise ValueError(f"max_rate must be a positive number or None, got {max_rate!r}")
    if (
        isinstance(flush_timeout, bool)
        or not isinstance(flush_timeout, (int, float))
        or not (flush_timeout >= 0)
    ):
        raise ValueError(f"flush_timeout must be a number of seconds >= 0, got {flush_timeout!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")


def mode_from_env() -> str:
    mode = os.environ.get(MODE_ENV, "").strip().lower() or "online"
    if mode not in _MODES:
        raise ConfigError(
            f"environment variable {MODE_ENV}={mode!r} is not one of {_MODES}: "
            "unset it to report to the broker, or set it to 'offline' or 'disabled'."
        )
    return mode


def init(
    config: PathLike | None = None,
    *,
    total_steps: int | None = None,
    kind: str | None = None,
    max_rate: float | None = DEFAULT_MAX_RATE,
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    language: str = DEFAULT_LANGUAGE,
) -> Run:
    """Start reporting a training (or validation) job to the platform.

    :param config: the training config file (JSON or YAML); defaults to ``$TRAINWIRE_CONFIG``.
        Every problem with it raises :class:`trainwire.ConfigError` here, before training.
    :param total_steps: the number of steps, so that ``progress(step)`` computes the
        percentage; without it pass ``percentage=`` to ``progress``.
    :param kind: ``"training"`` or ``"validation"``; by default a config with
        ``validation_id`` and no ``model_id`` is a validation job.
    :param max_rate: at most this many ``training_ing`` per second (newest step wins, and
        the last step before the end is always sent); ``None`` sends every step.
    :param flush_timeout: seconds ``done()``/``fail()``/exit wait for the broker to confirm
        the terminal message; what is not confirmed by then is kept in the local spool.
    :param language: ``"ko"`` (default) or ``"en"``, for the sentences trainwire writes.

    The run ends with exactly one terminal message however the program ends: ``with``
    block or ``done()``/``fail()``; an uncaught exception, ``sys.exit(n != 0)`` or SIGTERM
    sends ``training_error``; a normal end of the program sends ``training_done``.
    ``TRAINWIRE_MODE=offline`` (or a config without ``message_host``) writes the messages to
    ``<model_write_path>/save/trainwire-offline.jsonl`` instead; ``disabled`` sends nothing.
    Only global rank 0 reports.
    """
    _check_options(total_steps, max_rate, flush_timeout, language)
    mode = mode_from_env()
    loaded = load_config(config, kind=kind)
    rank = global_rank()
    reporting = rank == 0
    return Run(
        loaded,
        total_steps=total_steps,
        max_rate=max_rate,
        flush_timeout=float(flush_timeout),
        language=language,
        mode=mode,
        reporting=reporting,
        rank=rank,
    )
