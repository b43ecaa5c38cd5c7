"""Hugging Face ``Trainer``: report progress, graphs and the end with one callback.

::

    from trainwire.integrations.transformers import TrainwireCallback

    callback = TrainwireCallback()                 # reads $TRAINWIRE_CONFIG
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    with callback:                                 # training_error if train() raises
        trainer.train()

- total = ``state.max_steps`` and step = ``state.global_step``: optimizer steps, so
  gradient accumulation is counted right;
- every number of ``on_log`` is a graph of its own at x = step (``loss``,
  ``learning_rate``, ``grad_norm``, ``eval_loss``, ``eval_<metric>``...); bookkeeping keys
  (``epoch``, ``*_runtime``, ``*_per_second``, ``total_flos``, the final ``train_loss``)
  are left out. ``loss`` and ``eval_loss`` are not paired into one graph (as Keras's and
  Lightning's are): the Trainer evaluates on a schedule of its own, so their steps often
  differ, and a row must hold every column;
- ``train(resume_from_checkpoint=...)`` goes on from the checkpoint's step (reported
  first), with the percentage of ``state.max_steps``, the whole training;
- ``training_done`` at ``on_train_end``;
- the ``Trainer`` has no exception hook (``on_train_end`` is skipped when ``train()``
  raises): ``with callback:`` sends ``training_error``. Without it, an exception that ends
  the program still does (trainwire's process hook), but one caught by your code or a
  notebook would not;
- only the world's process zero reports; the other processes record their own failure for
  it (see docs/integrations.md).
"""

from __future__ import annotations

from typing import Any

from ._reporter import ReporterOwner

try:
    from transformers import (
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainwire.integrations.transformers needs Hugging Face transformers: "
        "pip install 'trainwire[transformers]'"
    ) from _exc

__all__ = ["TrainwireCallback"]

_SKIP = frozenset({"epoch", "total_flos", "train_loss"})
_SKIP_SUFFIXES = ("_runtime", "_per_second")


class TrainwireCallback(ReporterOwner, TrainerCallback):  # type: ignore[misc, unused-ignore]
    """A ``TrainerCallback`` that reports a Hugging Face training to the platform.

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.

    Use it as a context manager around ``trainer.train()`` so that an exception still
    sends ``training_error``.
    """

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Make the run (every process, so that a failing one can be named) with the total."""
        self._reporter.begin(state.max_steps)
        if state.global_step and state.is_world_process_zero:  # resumed from a checkpoint
            self._reporter.progress(state.global_step)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """One optimizer step done: ``training_ing`` with ``state.global_step``."""
        if state.is_world_process_zero:
            self._reporter.progress(state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        """The Trainer's logged numbers, one graph each, at x = ``state.global_step``."""
        if not logs or not state.is_world_process_zero:
            return
        metrics = {
            key: value
            for key, value in logs.items()
            if key not in _SKIP and not key.endswith(_SKIP_SUFFIXES)
        }
        if metrics:
            self._reporter.log(metrics, state.global_step)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Training finished: ``training_done``."""
        self._reporter.done()
