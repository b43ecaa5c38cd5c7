"""LightGBM: report ``lightgbm.train`` / ``cv`` / the scikit-learn API with one callback.

::

    from trainwire.integrations.lightgbm import trainwire_callback

    callback = trainwire_callback()                 # reads $TRAINWIRE_CONFIG
    with callback:                                  # training_error if train() raises,
        booster = lightgbm.train(                   # training_done after an early stop
            params, train_set, num_boost_round=200, valid_sets=[valid_set],
            callbacks=[callback, lightgbm.early_stopping(10)],
        )

- step = the booster's rounds so far, total = ``end_iteration`` (its rounds before this
  call + ``num_boost_round``). A booster trained further (``init_model=``) goes on from its rounds:
  the round it resumes at is reported first, the percentage is of the whole boosting;
- each evaluation metric is a graph (``l2``, ``binary_logloss``...) with one line per
  data set (``training``, ``valid_0``...), x axis ``iteration``: the round as LightGBM
  prints it (``[1]`` is the first);
- the callback's ``order`` (25) puts it before ``early_stopping`` (30), so it sees the
  round that stops training too;
- ``training_done`` after the last round. LightGBM has no end hook: an early stop ends
  ``train()`` quietly, so ``with callback:`` sends ``training_done`` when it returns (and
  ``training_error`` when it raises); without it, the end of the program does.
"""

from __future__ import annotations

from typing import Any

from .._sdk._explain import DEFAULT_LANGUAGE
from .._sdk._run import DEFAULT_FLUSH_TIMEOUT, DEFAULT_MAX_RATE, Run
from .._spec._config import PathLike
from ._reporter import Reporter, ReporterOwner, graph_name, number, series_name

try:
    import lightgbm  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainwire.integrations.lightgbm needs LightGBM: pip install 'trainwire[lightgbm]'"
    ) from _exc

__all__ = ["ORDER", "TrainwireCallback", "trainwire_callback"]

#: Callbacks run by ``order``: ``log_evaluation`` is 10, ``record_evaluation`` 20,
#: ``early_stopping`` 30 (it raises to stop, so later callbacks miss the last round).
ORDER = 25


class TrainwireCallback(ReporterOwner):
    """The callable LightGBM calls after every round (make it with :func:`trainwire_callback`)."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        # LightGBM reads these from the instance (it setdefaults "order" in __dict__).
        self.order = ORDER
        self.before_iteration = False

    def __call__(self, env: Any) -> None:
        """One round done: ``training_ing``, a row of every metric's graph, done at the end."""
        begin, end = env.begin_iteration, env.end_iteration
        if self._reporter.total is None or env.iteration == begin:
            self._reporter.begin(end)
            if begin:  # trained further from init_model: where it resumes
                self._reporter.progress(begin)
        step = env.iteration + 1  # LightGBM's iteration counts on across init_model
        self._reporter.progress(step)
        results = env.evaluation_result_list
        if results:
            graphs: dict[str, dict[str, float]] = {}
            for item in results:
                data, metric, value = item[0], item[1], number(item[2])
                if data == "cv_agg" and " " in metric:  # lightgbm.cv: "valid l2"
                    data, metric = metric.split(" ", 1)
                graph, series = graph_name(metric), series_name(data)
                if value is not None and graph is not None and series is not None:
                    graphs.setdefault(graph, {})[series] = value
            for graph, row in graphs.items():
                self._reporter.log_graph(graph, env.iteration + 1, row, x_axis="iteration")
        if env.iteration + 1 >= end:
            self._reporter.done()


def trainwire_callback(
    config: PathLike | None = None,
    *,
    run: Run | None = None,
    kind: str | None = None,
    max_rate: float | None = DEFAULT_MAX_RATE,
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
    language: str = DEFAULT_LANGUAGE,
) -> TrainwireCallback:
    """A LightGBM callback that reports training to the platform.

    :param config: the training config file; default ``$TRAINWIRE_CONFIG``. Checked here.
    :param run: report into this open :class:`trainwire.Run` instead; it is yours to end.
    :param kind, max_rate, flush_timeout, language: as for :func:`trainwire.init`.

    Use it as a context manager around ``lightgbm.train(...)``: ``training_error`` when it
    raises, ``training_done`` when it returns after an early stop.
    """
    reporter = Reporter(
        config,
        run,
        kind=kind,
        max_rate=max_rate,
        flush_timeout=flush_timeout,
        language=language,
    )
    return TrainwireCallback(reporter)
