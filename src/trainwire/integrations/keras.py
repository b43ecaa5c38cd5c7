"""Keras 3 (any backend): report ``model.fit`` with one callback.

::

    from trainwire.integrations.keras import TrainwireCallback

    callback = TrainwireCallback()                 # reads $TRAINWIRE_CONFIG
    with callback:                                 # training_error if fit() raises
        model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[callback])

- total = ``epochs * steps`` (``self.params``), step = ``epoch * steps + batch + 1``, so a
  fit resumed with ``initial_epoch`` goes on from where it was; with data of unknown size
  (``steps`` is None) the steps are counted and the percentage is 0 until the end;
- at each epoch end the numbers of ``logs`` are written with x axis ``epoch`` (1, 2, ...):
  ``loss`` and ``val_loss`` as the graph ``loss`` (``train``, ``val``), likewise each
  compiled metric (the rule is in ``_series``); ``learning_rate`` from the logs (a
  scheduler callback puts it there), else read from the optimizer;
- ``training_done`` at ``on_train_end`` (also after ``EarlyStopping``);
- Keras has no exception hook: ``with callback:`` sends ``training_error`` when ``fit``
  raises; without it an exception that ends the program still does (process hook).
"""

from __future__ import annotations

from typing import Any

from ._reporter import ReporterOwner

try:
    import keras
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainwire.integrations.keras needs Keras 3: pip install 'trainwire[keras]'"
    ) from _exc

__all__ = ["TrainwireCallback"]

_KerasCallback: Any = keras.callbacks.Callback
_LR = "learning_rate"


class TrainwireCallback(ReporterOwner, _KerasCallback):  # type: ignore[misc, unused-ignore]
    """A Keras callback that reports training to the platform.

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.
    """

    _steps: int | None = None
    _offset = 0
    _count = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Make the run with the total ``epochs * steps``."""
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        self._steps = steps if isinstance(steps, int) and steps > 0 else None
        total = epochs * self._steps if isinstance(epochs, int) and self._steps else None
        self._reporter.begin(total)
        self._count = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Where this epoch's steps start (``initial_epoch`` included)."""
        if self._steps:
            self._offset = epoch * self._steps

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """One batch (one optimizer step) done: ``training_ing``."""
        if self._steps:
            self._reporter.progress(self._offset + batch + 1)
        else:
            self._count += 1
            self._reporter.progress(self._count)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """The epoch's numbers at x = epoch number (from 1): ``loss`` and ``val_loss`` in
        one graph ``loss`` (``train``, ``val``), likewise each compiled metric; the
        learning rate in ``learning_rate``."""
        values = dict(logs or {})
        if _LR not in values:  # Keras puts it there only with a scheduler callback
            rate = self._learning_rate()
            if rate is not None:
                values[_LR] = rate
        if values:
            self._reporter.log_paired(values, epoch + 1, x_axis="epoch")

    def _learning_rate(self) -> Any:
        """The optimizer's learning rate now (a schedule's value at this step), or None."""
        try:
            rate = self.model.optimizer.learning_rate
            return getattr(rate, "value", rate)  # a Keras variable's tensor, as it is
        except Exception:  # an optimizer without a readable rate: no graph, no harm
            return None

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """``fit`` finished (or stopped early): ``training_done``."""
        self._reporter.done()
