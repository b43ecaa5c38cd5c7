"""XGBoost with TrainwireCallback: real boosting on random data."""

from __future__ import annotations

import pytest

from _doc_examples import example
from _frameworks import (
    DONE,
    ERROR,
    assert_run,
    framework,
    graph_names,
    messages,
    model_dir_of,
    progress,
    read_graph,
    terminals,
)

np = framework("numpy")
xgboost = framework("xgboost")

from trainwire.integrations.xgboost import TrainwireCallback  # noqa: E402

PARAMS = {"max_depth": 2, "eta": 0.3, "nthread": 1, "eval_metric": ["rmse", "mae"]}


def matrices(seed=0, noise_valid=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 3))
    y = x[:, 0] * 2 + rng.normal(scale=0.1, size=64)
    xv = rng.normal(size=(32, 3))
    yv = rng.normal(size=32) if noise_valid else xv[:, 0] * 2
    return xgboost.DMatrix(x, label=y), xgboost.DMatrix(xv, label=yv)


def test_xgboost_train_reports_rounds_metric_graphs_and_one_done(broker, queue, make_config):
    config = make_config()
    callback = TrainwireCallback(8, config, max_rate=None)
    dtrain, dvalid = matrices()
    with callback:
        xgboost.train(
            PARAMS, dtrain, num_boost_round=8, evals=[(dtrain, "train"), (dvalid, "valid")],
            verbose_eval=False, callbacks=[callback],
        )  # fmt: skip

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 12.5) for s in range(1, 9)
    ]
    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["mae", "rmse"]
    header, rows = read_graph(model_dir, "rmse")
    assert header == ["iteration", "train", "valid"]
    assert [row[0] for row in rows] == list(range(8))  # as XGBoost prints them: [0] .. [7]
    assert rows[-1][1] < rows[0][1]  # the training error goes down


def test_xgboost_early_stopping_ends_with_done_below_the_total(broker, queue, make_config):
    config = make_config()
    callback = TrainwireCallback(200, config, max_rate=None)
    dtrain, dvalid = matrices(noise_valid=True)  # validation labels are noise: stops early
    booster = xgboost.train(
        PARAMS, dtrain, num_boost_round=200, evals=[(dvalid, "valid")],
        early_stopping_rounds=3, verbose_eval=False, callbacks=[callback],
    )  # fmt: skip

    assert booster.num_boosted_rounds() < 200
    # The graph's x is XGBoost's index: the best round is where the stopping metric
    # (the last of eval_metric, mae) is lowest.
    _, rows = read_graph(model_dir_of(config), "mae")
    assert min(rows, key=lambda row: row[1])[0] == booster.best_iteration
    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)
    assert progress(seq)[-1]["step"] == booster.num_boosted_rounds()
    assert progress(seq)[-1]["percentage"] < 100


def test_xgboost_train_that_raises_inside_with_callback_sends_one_training_error(
    broker, queue, make_config
):
    config = make_config()
    callback = TrainwireCallback(20, config, max_rate=None, language="en")
    calls = []

    def metric(predt, dmatrix):
        calls.append(1)
        if len(calls) == 4:
            raise ValueError("labels hold NaN in round 4")
        return "zero", 0.0

    dtrain, _ = matrices()
    with pytest.raises(ValueError, match="NaN"), callback:
        xgboost.train(
            {"nthread": 1}, dtrain, num_boost_round=20, evals=[(dtrain, "train")],
            custom_metric=metric, verbose_eval=False, callbacks=[callback],
        )  # fmt: skip

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3]
    assert terminals(seq)[0]["message"] == (
        "Training failed with an error: ValueError: labels hold NaN in round 4"
    )


def test_xgboost_callback_needs_the_number_of_rounds(make_config):
    with pytest.raises(ValueError, match="num_boost_round"):
        TrainwireCallback(0, make_config())


def test_xgboost_resumed_from_a_checkpoint_goes_on_from_its_rounds(
    broker, queue, make_config, tmp_path
):
    # A first training checkpoints after its 5th round ([4]) and dies in the 6th; the second
    # goes on from the checkpoint with the rounds that are left.
    config = make_config()
    dtrain, dvalid = matrices()
    evals = [(dtrain, "train"), (dvalid, "valid")]
    calls = []

    def dies_in_round_6(predt, dmatrix):
        calls.append(1)
        if len(calls) == 2 * 6:  # two data sets a round
            raise MemoryError("the node ran out of memory in round 6")
        return "zero", 0.0

    first = TrainwireCallback(10, config, max_rate=None)
    (tmp_path / "ckpt").mkdir()
    checkpoint = xgboost.callback.TrainingCheckPoint(tmp_path / "ckpt", interval=4)
    with pytest.raises(MemoryError), first:
        xgboost.train(
            PARAMS, dtrain, num_boost_round=10, evals=evals, custom_metric=dies_in_round_6,
            verbose_eval=False, callbacks=[first, checkpoint],
        )  # fmt: skip
    first_seq = messages(broker, queue)
    assert_run(first_seq, ERROR, complete=False)
    assert [b["step"] for b in progress(first_seq)] == [1, 2, 3, 4, 5]

    saved = xgboost.Booster(model_file=tmp_path / "ckpt" / "model_4.ubj")
    assert saved.num_boosted_rounds() == 5
    second = TrainwireCallback(10 - 5, config, max_rate=None)
    with second:
        booster = xgboost.train(
            PARAMS, dtrain, num_boost_round=10 - 5, evals=evals, xgb_model=saved,
            verbose_eval=False, callbacks=[second],
        )  # fmt: skip

    assert booster.num_boosted_rounds() == 10
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # From the checkpoint's round on, percentages of all 10 rounds.
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 10.0) for s in range(5, 11)
    ]
    model_dir = model_dir_of(config)
    text = (model_dir / "save" / "metrics" / "rmse.log").read_text()
    assert text.count("iteration") == 1  # appended under the first training's header
    header, rows = read_graph(model_dir, "rmse")
    assert header == ["iteration", "train", "valid"]
    assert [row[0] for row in rows] == list(range(10))


def test_the_docs_examples_run_and_the_graph_is_at_xgboosts_printed_rounds(
    broker, queue, make_config, tmp_path, monkeypatch, capfd
):
    # The example as written, then its resume from a booster of 100 rounds.
    config = make_config()
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    dtrain, dvalid = matrices()
    names = {"xgboost": xgboost, "params": {"max_depth": 2, "nthread": 1},
             "dtrain": dtrain, "dvalid": dvalid}  # fmt: skip
    exec(example("## XGBoost"), names)

    assert_run(messages(broker, queue), DONE)
    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["rmse"]
    header, rows = read_graph(model_dir, "rmse")
    assert header == ["iteration", "train", "valid"]
    assert [row[0] for row in rows] == list(range(200))
    printed = capfd.readouterr().out.splitlines()
    assert printed[0].startswith("[0]\t") and printed[-1].startswith("[199]\t")
    for line, row in zip(printed, rows):  # "[i]\ttrain-rmse:0.78764\tvalid-rmse:0.84117"
        cells = line.split("\t")
        assert cells[0] == f"[{int(row[0])}]"
        assert [float(c.split(":")[1]) for c in cells[1:]] == [round(v, 5) for v in row[1:]]

    resumed = make_config(model_write_path=str(tmp_path / "resumed"))
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(resumed))
    names["booster"][:100].save_model(tmp_path / "model_99.ubj")
    names["checkpoint"] = tmp_path / "model_99.ubj"
    exec(example("## XGBoost", 1), names)

    assert names["booster"].num_boosted_rounds() == 200
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # max_rate=10: the newest step wins, so which steps are sent depends on the speed.
    assert all(100 <= b["step"] <= 200 for b in progress(seq))
    assert all(b["percentage"] == b["step"] / 2 for b in progress(seq))
    assert progress(seq)[-1]["step"] == 200
    header, rows = read_graph(tmp_path / "resumed", "rmse")
    assert [row[0] for row in rows] == list(range(100, 200))
