"""PyTorch Lightning: a ``Callback`` for progress and the end, a ``Logger`` for the graphs.

::

    from trainwire.integrations.lightning import TrainwireCallback, TrainwireLogger

    trainer = Trainer(callbacks=[TrainwireCallback()], logger=TrainwireLogger())
    trainer.fit(model, train_loader, val_loader)

- ``TrainwireCallback``: total = ``trainer.estimated_stepping_batches``, step =
  ``trainer.global_step`` (optimizer steps: gradient accumulation is counted right;
  a total Lightning cannot know, ``max_epochs=-1`` on an unsized loader, is sent as 0 %),
  ``training_done`` at ``on_fit_end``, ``training_error`` from ``on_exception`` (also
  Lightning's SIGTERM and Ctrl+C). The sanity-check validation sends nothing;
- ``TrainwireLogger``: every number Lightning logs (``self.log(...)``, every
  ``log_every_n_steps``) is written at x = step: a metric's training and validation
  values logged at one step share a graph (``train``, ``val``; the rule is in
  ``_series``), every other name is a graph of its own. It leaves the checkpoints where
  Lightning puts them without it. ``finalize("success")`` ends the run with
  ``training_done`` (so the logger alone also reports the end of ``validate`` or
  ``test``), ``finalize("failed")`` with ``training_error`` naming the exception;
- used together they share one run; each alone works too;
- works with ``lightning.pytorch`` and with ``pytorch_lightning``: the classes subclass
  the namespace your program imported (``pytorch_lightning`` when only it was imported
  before this module, else ``lightning.pytorch``), see :data:`FRAMEWORK`;
- picklable for ``ddp_spawn``: each process makes its own run from the config path (give
  ``config=``, not ``run=``); only global rank 0 reports.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from argparse import Namespace
from types import FrameType
from typing import Any, cast

from .._sdk._explain import explain_signal
from ._reporter import Reporter, ReporterOwner


def _import_lightning() -> Any:
    """``pytorch_lightning`` when the program imported only it, else ``lightning.pytorch``."""
    names = ["lightning.pytorch", "pytorch_lightning"]
    if "pytorch_lightning" in sys.modules and "lightning.pytorch" not in sys.modules:
        names.reverse()
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        "trainwire.integrations.lightning needs PyTorch Lightning: "
        "pip install 'trainwire[lightning]'"
    )


_pl = _import_lightning()

__all__ = ["FRAMEWORK", "TrainwireCallback", "TrainwireLogger"]

#: The Lightning namespace the classes subclass: "lightning.pytorch" or "pytorch_lightning".
FRAMEWORK: str = _pl.__name__

_Callback: Any = _pl.Callback
_Logger: Any = _pl.loggers.Logger
_SLURM: Any = importlib.import_module(f"{FRAMEWORK}.plugins.environments").SLURMEnvironment
# Lightning's default logger: TensorBoard's (versioned by a SLURM job's id) when installed,
# else a CSVLogger (always versioned by the next free number).
_TENSORBOARD = any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX"))
_FRAMES = 8  # how far up the callers a trainer asking for a logger's place is looked for


def _asking_trainer(logger: Any) -> Any:
    """The ``Trainer`` (among the callers' locals) whose ``loggers`` hold ``logger``, or None.

    Lightning gives a logger no link to its trainer, but asks for the logger's place with
    the trainer in hand (``ModelCheckpoint``'s ``trainer`` argument, ``Trainer.log_dir``'s
    ``self``), and only the trainer knows ``default_root_dir`` and the other loggers.
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_FRAMES):
        if frame is None:
            break
        for name in ("trainer", "self"):
            value = frame.f_locals.get(name)
            if isinstance(value, _pl.Trainer) and any(lg is logger for lg in value.loggers):
                return value
        frame = frame.f_back
    return None


def _error(exception: BaseException, reporter: Reporter) -> str | BaseException:
    if type(exception).__name__ == "SIGTERMException":  # Lightning's own, after a SIGTERM
        return explain_signal(signal.SIGTERM, reporter.options.get("language", "ko"))
    return exception


class TrainwireCallback(ReporterOwner, _Callback):  # type: ignore[misc, unused-ignore]
    """Reports a Lightning ``fit`` to the platform: progress, done, error.

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Share the run with a :class:`TrainwireLogger` of the same trainer; make it now."""
        for logger in trainer.loggers:
            if isinstance(logger, TrainwireLogger) and logger._reporter is not self._reporter:
                if logger._reporter.started and not self._reporter.started:
                    self._reporter = logger._reporter
                else:
                    logger._reporter = self._reporter
        if stage == "fit":
            self._reporter.run  # noqa: B018 - the process hooks cover the sanity check too

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """The total: ``trainer.estimated_stepping_batches`` optimizer steps."""
        self._reporter.begin(trainer.estimated_stepping_batches)
        step = trainer.global_step
        if step and trainer.is_global_zero:  # resumed from a checkpoint
            self._reporter.progress(step)
        else:  # the first micro-batches before an optimizer step are not a step
            self._reporter.last_step = max(self._reporter.last_step, step)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """``training_ing`` when an optimizer step completed (not per micro-batch); the
        logger's rows of the steps before the last one, now complete, to their files."""
        if trainer.is_global_zero:
            step = trainer.global_step
            if step > self._reporter.last_step:
                self._reporter.progress(step)
            # Lightning logs at x = global_step - 1; values of a lower x are all in.
            self._reporter.flush(before=step - 1)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """``fit`` finished: ``training_done``."""
        self._reporter.done()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """``fit`` raised (or was stopped by SIGTERM / Ctrl+C): ``training_error``."""
        self._reporter.fail(_error(exception, self._reporter))


class TrainwireLogger(ReporterOwner, _Logger):  # type: ignore[misc, unused-ignore]
    """A Lightning ``Logger`` that writes every logged number as a training graph.

    It leaves the checkpoints where they would be without it: Lightning puts them under
    the first logger's ``save_dir/name/version``, and this logger answers with the next
    logger's place when there is one (``[TrainwireLogger(), TensorBoardLogger(...)]``),
    else with the place of the logger Lightning would have made itself
    (``<default_root_dir>/lightning_logs/version_<N>``, a new ``N`` each run).

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.
    """

    _stand_in: Any = None  # Lightning's own default logger, for its place only

    @property
    def save_dir(self) -> str | None:
        """The ``save_dir`` of the logger whose place this one takes (see the class)."""
        return cast("str | None", self._place().save_dir)

    @property
    def name(self) -> str:
        """The ``name`` of the logger whose place this one takes: ``"lightning_logs"``
        when alone."""
        return cast(str, self._place().name)

    @property
    def version(self) -> int | str | None:
        """The ``version`` of the logger whose place this one takes: the next free
        ``version_<N>`` when alone (under SLURM with TensorBoard installed, the job's id,
        as Lightning does)."""
        return cast("int | str | None", self._place().version)

    def _place(self) -> Any:
        """The logger whose ``save_dir``, ``name`` and ``version`` are this one's."""
        if self._stand_in is not None:
            return self._stand_in
        trainer = _asking_trainer(self)
        if trainer is not None:
            for logger in trainer.loggers:
                if not isinstance(logger, TrainwireLogger):
                    return logger
        stand_in = _pl.loggers.CSVLogger(  # same place as its TensorBoardLogger
            trainer.default_root_dir if trainer is not None else os.getcwd(),
            version=_SLURM.job_id() if _TENSORBOARD else None,
        )
        if trainer is not None:  # the version is fixed from now on, as Lightning's is
            self._stand_in = stand_in
        return stand_in

    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Hyperparameters are not part of the platform's protocol: ignored."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """The metrics at x = ``step`` (``epoch`` left out): each a graph ``<name>.log``,
        but a training and a validation value of one metric logged at the same step share
        the graph ``<metric>.log`` (``train``, ``val``).

        Lightning logs one step in several calls (training values, then validation
        values), so a step's rows are written once the next step is under way: at the
        next optimizer step's end with a :class:`TrainwireCallback`, else when a later step
        is logged; and at the end.
        """
        x = step if step is not None else max(self._reporter.last_step, 0)
        self._reporter.log_paired(metrics, x, skip=("epoch",), hold=True)

    def finalize(self, status: str) -> None:
        """``"success"``: ``training_done``; ``"failed"``: ``training_error`` with the cause."""
        if status == "success":
            self._reporter.done()
        elif status == "failed":
            exception = sys.exc_info()[1]  # Lightning calls this inside its ``except``
            if exception is None:
                exception = RuntimeError("Lightning reported that training failed")
            self._reporter.fail(_error(exception, self._reporter))
