"""What every framework integration shares: one run per job, graphs that never break training.

An integration holds a :class:`Reporter`. The reporter either owns a run it makes itself
(from ``config=``, else ``$TRAINWIRE_CONFIG``, exactly as :func:`trainwire.init` reads it;
the config is checked when the integration is created, so a bad file fails before
training) or uses a :class:`~trainwire.Run` the user passed (``run=``), which it never
ends: the user's ``with`` block or the process hooks do.

The owned run is made when training starts, in the process that trains: a callback
pickled into a spawned worker (Lightning ``ddp_spawn``, Ray) carries only the config
path and makes its run there.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .._sdk._explain import DEFAULT_LANGUAGE
from .._sdk._metrics import MetricsError, validate_graph_name, validate_series_name
from .._sdk._run import DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_RATE, Run, init
from .._spec._config import PathLike, load_config
from ._series import SeriesPlan

__all__ = ["Reporter", "graph_name", "number"]

log = logging.getLogger("trainwire")

_UNSAFE = re.compile(r'[\x00-\x1f\x7f,/\\<>:"|?*]+')


def graph_name(name: str) -> str | None:
    """``name`` made into a valid graph (file) name, or None when nothing is left of it.

    Framework metric names like ``"train/loss"`` or ``"val loss"`` become
    ``"train_loss"`` and ``"val loss"``: separators and characters a file name cannot
    hold turn into ``_``.
    """
    cleaned = _UNSAFE.sub("_", str(name)).strip().lstrip(".").strip()
    if len(cleaned) > 100:
        cleaned = cleaned[:100].rstrip()
    try:
        return validate_graph_name(cleaned)
    except MetricsError:
        return None


def series_name(name: str) -> str | None:
    """``name`` made into a valid series (column) name, or None."""
    cleaned = _UNSAFE.sub("_", str(name)).strip()[:100].rstrip()
    try:
        return validate_series_name(cleaned)
    except MetricsError:
        return None


def number(value: Any, *, finite: bool = True) -> float | None:
    """``value`` as a float (Python, NumPy, 0-d tensors), else None; also None for NaN and
    infinities unless ``finite=False``."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        result = float(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return None
    return result if math.isfinite(result) or not finite else None


class Reporter:
    """The run of one integration: made lazily, shared, picklable, never raising into training.

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``.
    :param run: an open :class:`trainwire.Run` to report into instead (not ended here).
    :param options: ``kind``, ``max_rate``, ``flush_timeout``, ``language`` for
        :func:`trainwire.init`.
    """

    def __init__(
        self,
        config: PathLike | None = None,
        run: Run | None = None,
        **options: Any,
    ) -> None:
        if run is not None and config is not None:
            raise TypeError("give either config= (a training config file) or run=, not both")
        if run is not None and not isinstance(run, Run):
            raise TypeError(f"run must be a trainwire.Run, got {type(run).__name__}")
        self._run = run
        self.owns_run = run is None
        self.config_path: Path | None = None
        if run is None:
            # Read and check the file now: a ConfigError belongs before training, not in it.
            self.config_path = load_config(config, kind=options.get("kind")).path
        self.options = options
        self.total: int | None = None
        self._scale = 0.0
        self.last_step = -1
        self._skipped: set[str] = set()
        self._said: set[str] = set()
        self._plan = SeriesPlan(graph_name)
        self._held: dict[str, Any] = {}
        self._held_at: tuple[float, str] | None = None
        self._lock = threading.Lock()

    # -- the run -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the run exists (made here or given)."""
        return self._run is not None

    @property
    def run(self) -> Run:
        """The run, made now from the config when this reporter owns it and has none yet."""
        run = self._run
        if run is None:
            with self._lock:
                if self._run is None:
                    self._run = init(self.config_path, **self.options)
                run = self._run
        return run

    def begin(self, total: float | None) -> None:
        """Training starts with ``total`` optimizer steps (None or inf: unknown)."""
        self.run  # noqa: B018 - make the run (and its process hooks) now
        if total is not None and math.isfinite(total) and total > 0:
            self.total = int(total)
            self._scale = 100.0 / self.total
        else:
            self.total = None
            self._scale = 0.0

    def progress(self, step: int) -> None:
        """Report optimizer step ``step`` (once per new step; percentage from the total)."""
        if step <= self.last_step:
            return
        self.last_step = step
        percentage = step * self._scale
        self.run.progress(step, percentage if percentage <= 100.0 else 100.0)

    def log(
        self,
        metrics: Mapping[str, Any],
        x: float,
        *,
        x_axis: str = "step",
        skip: Iterable[str] = (),
    ) -> None:
        """One graph per metric: ``<name>.log`` with the series ``<name>``, at ``x``.

        Values that are not finite numbers are left out. A problem with a graph (a name or
        a resumed file that does not fit) is warned about once and never raised.
        """
        run = self.run
        if not run.is_reporting:
            return
        skipped = set(skip)
        for key, value in metrics.items():
            if key in skipped:
                continue
            val = number(value)
            if val is None:
                continue
            graph = graph_name(key)
            if graph is None:
                self._skip(key, "its name cannot be a graph file name")
                continue
            self.log_graph(graph, x, {graph: val}, x_axis=x_axis)

    def log_paired(
        self,
        metrics: Mapping[str, Any],
        x: float,
        *,
        x_axis: str = "step",
        skip: Iterable[str] = (),
        hold: bool = False,
    ) -> None:
        """Like :meth:`log`, but a metric's training and validation values logged at the
        same ``x`` share one graph with the series ``train`` and ``val`` (the rule is in
        :mod:`._series`).

        ``hold``: the framework logs one x in several calls (Lightning: the training
        values, then the validation values of the same step), so the values wait until a
        call with another x, :meth:`flush`, or the end.
        """
        if not self.run.is_reporting:
            return
        skipped = set(skip)
        # The values as they came: the writer prints a 32-bit float in its own shortest
        # form (0.31, not the 0.3100000023841858 of float()), and leaves out a row with a
        # NaN in it, saying so (here its partner would seem missing instead).
        values = {
            k: v
            for k, v in metrics.items()
            if k not in skipped and number(v, finite=False) is not None
        }
        if not hold:
            self._write_paired(values, x, x_axis)
            return
        if self._held_at != (x, x_axis):
            self.flush()
            self._held_at = (x, x_axis)
        self._held.update(values)

    def flush(self, before: float | None = None) -> None:
        """Write the values :meth:`log_paired` holds, if any (only if held at an x below
        ``before``: the caller knows that nothing more comes for such an x)."""
        held, at = self._held, self._held_at
        if before is not None and (at is None or at[0] >= before):
            return
        self._held, self._held_at = {}, None
        if held and at is not None and self.started and self.run.is_reporting:
            self._write_paired(held, *at)

    def _write_paired(self, values: dict[str, Any], x: float, x_axis: str) -> None:
        rows, left_out = self._plan.rows(values)
        for key, sentence in left_out:
            self._warn_once(key, sentence)
        for graph, series in rows:
            self.log_graph(graph, x, series, x_axis=x_axis)

    def log_graph(
        self, graph: str, x: float, series: Mapping[str, Any], *, x_axis: str = "step"
    ) -> None:
        """One row of ``graph``; a :class:`MetricsError` is warned about once, not raised."""
        if graph in self._skipped:
            return
        try:
            self.run.log(graph, x, x_axis=x_axis, **series)
        except MetricsError as exc:
            self._skip(graph, str(exc))

    def _skip(self, graph: str, why: str) -> None:
        if graph not in self._skipped:
            self._skipped.add(graph)
            log.warning("trainwire: the graph %r is not written: %s", graph, why)

    def _warn_once(self, key: str, sentence: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("trainwire: %s", sentence)

    # -- the end -----------------------------------------------------------------------

    def done(self) -> None:
        """Training finished: ``training_done``, when this reporter owns a running run."""
        self.flush()
        run = self._run
        if self.owns_run and run is not None and run.status == "running":
            run.done()

    def fail(self, error: str | BaseException) -> None:
        """Training failed: ``training_error`` (made even before training started)."""
        self.flush()
        if not self.owns_run:
            return
        run = self.run
        if run.status == "running":
            run.fail(error)

    def exit(self, exc: BaseException | None) -> None:
        """The end of a ``with`` block around ``train()``/``fit()``."""
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
            self.done()
        else:
            self.fail(exc)

    # -- pickling (spawned workers) and copies -----------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if not self.owns_run:
            raise TypeError(
                "a trainwire integration given run=... cannot be sent to another process "
                "(e.g. Lightning's ddp_spawn): give it config=... (or set TRAINWIRE_CONFIG) "
                "so that each process makes its own run"
            )
        state = self.__dict__.copy()
        state["_run"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class ReporterOwner:
    """Mixin for integration objects: the shared constructor, ``run``, ``with obj:`` around
    training, copies. Put it first in the bases, before the framework's class."""

    _reporter: Reporter

    def __init__(
        self,
        config: PathLike | None = None,
        *,
        run: Run | None = None,
        kind: str | None = None,
        max_rate: float | None = DEFAULT_MAX_RATE,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        super().__init__()  # the framework's base class
        self._reporter = Reporter(
            config,
            run,
            kind=kind,
            max_rate=max_rate,
            flush_timeout=flush_timeout,
            language=language,
        )

    @property
    def run(self) -> Run:
        """The :class:`trainwire.Run` this integration reports into (made on first use)."""
        return self._reporter.run

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``training_error`` when the block raised, else ``training_done`` if not sent yet."""
        self._reporter.exit(exc)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # A handle on the job's one run: copies (sklearn's clone) share it.
        return self
