"""XGBoost: report ``xgboost.train`` (or the scikit-learn API) with one ``TrainingCallback``.

::

    from trainwire.integrations.xgboost import TrainwireCallback

    callback = TrainwireCallback(num_boost_round=200)   # reads $TRAINWIRE_CONFIG
    with callback:                                      # training_error if train() raises
        booster = xgboost.train(params, dtrain, num_boost_round=200,
                                evals=[(dtrain, "train"), (dvalid, "valid")],
                                callbacks=[callback])

- XGBoost does not tell a callback how many rounds there are: give the same
  ``num_boost_round`` (``n_estimators`` for ``XGBRegressor``/``XGBClassifier``);
- step = the booster's rounds so far, one ``training_ing`` per round; total = its rounds
  before this call + ``num_boost_round``. A booster trained further (``xgb_model=``) goes
  on from its rounds (the round it resumes at is reported first), and the percentage is
  of the whole boosting, not of this call;
- each evaluation metric is a graph (``rmse``, ``logloss``...) with one line per data set
  (``train``, ``valid``), x axis ``iteration`` = the round's index as XGBoost prints it
  (``[0]`` is the first round). A booster trained further goes on from its rounds,
  where XGBoost's printout starts again at ``[0]``;
- ``training_done`` at ``after_training``, also after early stopping;
- XGBoost has no exception hook: ``with callback:`` sends ``training_error``;
- in distributed XGBoost only the worker of ``xgboost.collective.get_rank() == 0`` reports.

One callback object per training: XGBoost callbacks keep state.
"""

from __future__ import annotations

from typing import Any

from .._sdk._explain import DEFAULT_LANGUAGE
from .._sdk._run import DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_RATE, Run
from .._spec._config import PathLike
from ._reporter import ReporterOwner, graph_name, number, series_name

try:
    import xgboost
    from xgboost.callback import (
        TrainingCallback,
    )
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainwire.integrations.xgboost needs XGBoost: pip install 'trainwire[xgboost]'"
    ) from _exc

__all__ = ["TrainwireCallback"]

_Base: Any = TrainingCallback


def _collective_rank() -> int:
    try:
        return int(xgboost.collective.get_rank())
    except Exception:  # no collective set up: a single process
        return 0


class TrainwireCallback(ReporterOwner, _Base):  # type: ignore[misc, unused-ignore]
    """An XGBoost ``TrainingCallback`` that reports boosting to the platform.

    :param num_boost_round: the rounds this training runs (XGBoost does not tell callbacks).
    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.
    """

    def __init__(
        self,
        num_boost_round: int,
        config: PathLike | None = None,
        *,
        run: Run | None = None,
        kind: str | None = None,
        max_rate: float | None = DEFAULT_MAX_RATE,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        language: str = DEFAULT_LANGUAGE,
    ) -> None:
        if (
            isinstance(num_boost_round, bool)
            or not isinstance(num_boost_round, int)
            or (num_boost_round <= 0)
        ):
            raise ValueError(
                f"num_boost_round must be the positive number of boosting rounds given to "
                f"xgboost.train (n_estimators in the scikit-learn API), got {num_boost_round!r}"
            )
        super().__init__(
            config, run=run, kind=kind, max_rate=max_rate, flush_timeout=flush_timeout,
            language=language,
        )  # fmt: skip
        self.num_boost_round = num_boost_round
        self._active = True
        self._first_round = 0
        self._step = 0

    def before_training(self, model: Any) -> Any:
        """Make the run (on collective rank 0); a booster trained further reports where it is."""
        self._active = _collective_rank() == 0
        if self._active:
            rounds = getattr(model, "num_boosted_rounds", None)
            self._first_round = int(rounds()) if callable(rounds) else 0
            self._step = self._first_round
            self._reporter.begin(self._first_round + self.num_boost_round)
            if self._first_round:
                self._reporter.progress(self._first_round)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        """One round done: ``training_ing`` and a row of every metric's graph."""
        if not self._active:
            return False
        # XGBoost's ``epoch`` starts again at 0 on a booster trained further: count here.
        self._step += 1
        self._reporter.progress(self._step)
        if evals_log:
            graphs: dict[str, dict[str, float]] = {}
            for data, metrics in evals_log.items():
                series = series_name(data)
                if series is None:
                    continue
                for metric, values in metrics.items():
                    if not values:
                        continue
                    last = values[-1]
                    value = number(last[0] if isinstance(last, tuple) else last)  # cv: (mean, std)
                    graph = graph_name(metric)
                    if value is not None and graph is not None:
                        graphs.setdefault(graph, {})[series] = value
            for graph, row in graphs.items():  # x: the round's index, as XGBoost prints it
                self._reporter.log_graph(graph, self._step - 1, row, x_axis="iteration")
        return False

    def after_training(self, model: Any) -> Any:
        """Training finished (or stopped early): ``training_done``."""
        if self._active:
            self._reporter.done()
        return model
