"""``trainwire.track``: progress for a plain loop, as cheap per iteration as tqdm.

::

    import trainwire

    for batch in trainwire.track(loader):          # reads $TRAINWIRE_CONFIG
        train_step(batch)

Each finished iteration is one step. The per-iteration work is one multiplication and
one ``deque.append`` of ``(step, percentage)`` onto the run's outbox (the same hand-off
``run.progress`` ends in, without its argument checks); the I/O thread does the rest at
the run's ``max_rate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from .._spec._config import PathLike
from ._run import Run, init

__all__ = ["Tracker", "track"]

T = TypeVar("T")


class Tracker(Generic[T]):
    """An iterable that reports each finished iteration as a step; see :func:`track`."""

    def __init__(
        self,
        iterable: Iterable[T],
        total: int | None,
        run: Run | None,
        initial: int,
        config: PathLike | None,
        options: dict[str, Any],
    ) -> None:
        if run is not None and config is not None:
            raise TypeError("give either config= (a training config file) or run=, not both")
        if total is None and run is not None and run.total_steps:
            total = run.total_steps
        if total is None:
            try:
                total = initial + len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise TypeError(f"total must be an integer or None, got {type(total).__name__}")
        if isinstance(initial, bool) or not isinstance(initial, int) or initial < 0:
            raise ValueError(f"initial must be an integer >= 0, got {initial!r}")
        self.iterable = iterable
        self.total = total if total and total > 0 else None
        self.initial = initial
        #: The last step reported (updated when the loop ends).
        self.n = initial
        self._owns_run = run is None
        self._run = run if run is not None else init(config, **options)

    @property
    def run(self) -> Run:
        """The run the steps go to (made by :func:`track` from the config when not given)."""
        return self._run

    def __len__(self) -> int:
        return len(self.iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[T]:
        run = self._run
        if not run.is_reporting:  # other ranks, disabled: nothing but the loop
            yield from self.iterable
            return
        push = run._push
        scale = 100.0 / self.total if self.total else 0.0
        step = self.initial
        try:
            for obj in self.iterable:
                yield obj
                step += 1
                percentage = step * scale
                push((step, percentage if percentage <= 100.0 else 100.0))
        finally:
            self.n = step
        if self._owns_run:
            run.done()


def track(
    iterable: Iterable[T],
    total: int | None = None,
    run: Run | None = None,
    *,
    initial: int = 0,
    config: PathLike | None = None,
    **options: Any,
) -> Tracker[T]:
    """Report each finished iteration of ``iterable`` as a training step (tqdm-like).

    :param total: the number of steps for the percentage; default: ``run.total_steps``,
        else ``initial + len(iterable)``. Without any, the percentage stays 0.
    :param run: report into this open :class:`trainwire.Run` (never ended here). Without
        it, ``track`` makes a run from ``config`` (default ``$TRAINWIRE_CONFIG``) with
        ``options`` (``max_rate``, ``flush_timeout``, ``language``, ``kind``) as for
        :func:`trainwire.init`, and sends ``training_done`` when the iterable is exhausted;
        an exception in the loop ends it with ``training_error`` (process hooks).
    :param initial: steps already done (resuming): the first iteration is step
        ``initial + 1``.

    The step is reported when the loop asks for the next item, so the loop body of step
    ``n`` has finished when ``n`` is sent. Cost per iteration: one ``deque.append`` (see
    docs/integrations.md for the figures next to tqdm).
    """
    return Tracker(iterable, total, run, initial, config, options)
