"""``trainwire.track``: progress for a plain loop, as cheap per iteration as tqdm.

::

    import trainwire

    for batch in trainwire.track(loader):          # reads $TRAINWIRE_CONFIG
        train_step(batch)

Each finished iteration is one step. The per-iteration work is one multiplication and
one ``deque.append`` of ``(step, percentage)`` onto the run's outbox (the same hand-off
``run.progress`` ends in, without its argument checks); the I/O thread does the rest at
the run's ``max_rate``.

Resumes never go back: in a new process, ``track(rest, initial=done)`` makes a run whose
first step reported is ``done``; a later ``track(..., run=run)`` on the same run goes on
from the step an earlier loop on it reached, and an ``initial`` below that is refused.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from .._spec._config import PathLike
from ._run import Run, init

__all__ = ["Tracker", "track"]

T = TypeVar("T")

#: The step the last ``track`` loop on each run reached, for the next loop on it.
_reached: weakref.WeakKeyDictionary[Run, int] = weakref.WeakKeyDictionary()


def _first_step(run: Run | None, initial: int | None) -> int:
    """The step the loop goes on from: ``initial``, never below what ``run`` reached."""
    if initial is not None and (
        isinstance(initial, bool) or not isinstance(initial, int) or initial < 0
    ):
        raise ValueError(f"initial must be an integer >= 0, got {initial!r}")
    reached = _reached.get(run, 0) if run is not None else 0
    if initial is None:
        return reached
    if initial < reached:
        raise ValueError(
            f"track(initial={initial}): an earlier track() loop on this run already reached "
            f"step {reached}, and steps never go back. Leave initial out to go on from "
            f"{reached}, or pass the number of steps done so far"
        )
    return initial


class Tracker(Generic[T]):
    """An iterable that reports each finished iteration as a step; see :func:`track`."""

    def __init__(
        self,
        iterable: Iterable[T],
        total: int | None,
        run: Run | None,
        initial: int | None,
        config: PathLike | None,
        options: dict[str, Any],
    ) -> None:
        if run is not None and config is not None:
            raise TypeError("give either config= (a training config file) or run=, not both")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
            raise TypeError(f"total must be an integer or None, got {type(total).__name__}")
        start = _first_step(run, initial)
        if total is None and run is not None:
            total = run.total_steps  # this loop is a part of the run: its length is not all
        elif total is None:
            try:
                total = start + len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable = iterable
        self.total = total if total and total > 0 else None
        self.initial = start
        #: The last step reported (updated when the loop ends).
        self.n = start
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
        if step and self._owns_run:  # a resumed training: its new run starts where it stood
            push((step, min(step * scale, 100.0)))
        try:
            for obj in self.iterable:
                yield obj
                step += 1
                percentage = step * scale
                push((step, percentage if percentage <= 100.0 else 100.0))
        finally:
            self.n = step
            if not self._owns_run:
                _reached[run] = step
        if self._owns_run:
            run.done()


def track(
    iterable: Iterable[T],
    total: int | None = None,
    run: Run | None = None,
    *,
    initial: int | None = None,
    config: PathLike | None = None,
    **options: Any,
) -> Tracker[T]:
    """Report each finished iteration of ``iterable`` as a training step (tqdm-like).

    :param total: the steps of the whole training, for the percentage. Default: with
        ``run``, ``run.total_steps``; without, ``initial + len(iterable)``. Without any,
        the percentage stays 0.
    :param run: report into this open :class:`trainwire.Run` (never ended here). Without
        it, ``track`` makes a run from ``config`` (default ``$TRAINWIRE_CONFIG``) with
        ``options`` (``max_rate``, ``flush_timeout``, ``language``, ``kind``) as for
        :func:`trainwire.init`, and sends ``training_done`` when the iterable is exhausted;
        an exception in the loop ends it with ``training_error`` (process hooks).
    :param initial: steps already done (resuming): the first iteration is step
        ``initial + 1``, and a run made here sends step ``initial`` before it. Default:
        with ``run``, the step the last ``track`` loop on that run reached (an ``initial``
        below it raises ``ValueError``: steps never go back); without, 0.

    The step is reported when the loop asks for the next item, so the loop body of step
    ``n`` has finished when ``n`` is sent. Cost per iteration: one ``deque.append`` (see
    docs/integrations.md for the figures next to tqdm).
    """
    return Tracker(iterable, total, run, initial, config, options)
