"""LightGBM with trainwire_callback: real boosting on random data."""

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
    run_python,
    terminals,
)

np = framework("numpy")
lightgbm = framework("lightgbm")

from trainwire.integrations.lightgbm import trainwire_callback  # noqa: E402

PARAMS = {"objective": "regression", "num_leaves": 4, "min_data_in_leaf": 2,
          "num_threads": 1, "verbosity": -1, "metric": ["l2", "l1"]}  # fmt: skip


def datasets(seed=0, noise_valid=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 3))
    y = x[:, 0] * 2 + rng.normal(scale=0.1, size=64)
    xv = rng.normal(size=(32, 3))
    yv = rng.normal(size=32) if noise_valid else xv[:, 0] * 2
    train = lightgbm.Dataset(x, label=y)
    return train, lightgbm.Dataset(xv, label=yv, reference=train)


def test_lightgbm_train_reports_rounds_metric_graphs_and_one_done(broker, queue, make_config):
    config = make_config()
    train, valid = datasets()
    lightgbm.train(
        PARAMS, train, num_boost_round=10, valid_sets=[train, valid],
        valid_names=["train", "valid"], callbacks=[trainwire_callback(config, max_rate=None)],
    )  # fmt: skip

    seq = messages(broker, queue)
    assert_run(seq, DONE)  # sent after the last round, no with-block needed
    assert [b["step"] for b in progress(seq)] == list(range(1, 11))
    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["l1", "l2"]
    header, rows = read_graph(model_dir, "l2")
    assert header == ["iteration", "train", "valid"]
    assert [row[0] for row in rows] == list(range(1, 11))


def test_lightgbm_early_stop_inside_with_callback_ends_with_done(broker, queue, make_config):
    config = make_config()
    callback = trainwire_callback(config, max_rate=None)
    train, valid = datasets(noise_valid=True)
    with callback:
        booster = lightgbm.train(
            PARAMS, train, num_boost_round=200, valid_sets=[valid],
            callbacks=[lightgbm.early_stopping(3, verbose=False), callback],
        )  # fmt: skip

    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)
    # Ordered before early_stopping, the callback saw the round that stopped training.
    assert progress(seq)[-1]["step"] == booster.best_iteration + 3
    assert progress(seq)[-1]["percentage"] < 100


def test_lightgbm_early_stop_without_with_block_ends_with_done_at_exit(broker, queue, make_config):
    config = make_config()
    result = run_python(
        """
        import lightgbm, numpy as np
        from trainwire.integrations.lightgbm import trainwire_callback
        rng = np.random.default_rng(0)
        train = lightgbm.Dataset(rng.normal(size=(64, 3)), label=rng.normal(size=64))
        valid = lightgbm.Dataset(rng.normal(size=(32, 3)), label=rng.normal(size=32),
                                 reference=train)
        booster = lightgbm.train(
            {"num_threads": 1, "verbosity": -1, "num_leaves": 4, "min_data_in_leaf": 2},
            train, num_boost_round=200, valid_sets=[valid],
            callbacks=[trainwire_callback(max_rate=None), lightgbm.early_stopping(2, False)])
        print(booster.best_iteration)
        """,
        config,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    best = int(result.stdout.split()[-1])
    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)  # the process hook: done when the program ends
    assert progress(seq)[-1]["step"] == best + 2 < 200


def test_lightgbm_train_that_raises_inside_with_callback_sends_one_training_error(
    broker, queue, make_config
):
    config = make_config()
    callback = trainwire_callback(config, max_rate=None, language="en")
    calls = []

    def metric(preds, data):
        calls.append(1)
        if len(calls) == 5:
            raise ValueError("a feature column is empty in round 5")
        return "zero", 0.0, False

    train, valid = datasets()
    with pytest.raises(ValueError, match="empty"), callback:
        lightgbm.train(
            PARAMS, train, num_boost_round=20, valid_sets=[valid], feval=metric,
            callbacks=[callback],
        )  # fmt: skip

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3, 4]
    assert terminals(seq)[0]["message"] == (
        "Training failed with an error: ValueError: a feature column is empty in round 5"
    )


def test_lightgbm_trained_further_from_a_saved_model_goes_on_from_its_rounds(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    train, valid = datasets()
    booster = lightgbm.train(
        PARAMS, train, num_boost_round=4, valid_sets=[train, valid],
        valid_names=["train", "valid"], callbacks=[trainwire_callback(config, max_rate=None)],
    )  # fmt: skip
    booster.save_model(tmp_path / "model.txt")
    assert [b["step"] for b in progress(messages(broker, queue))] == [1, 2, 3, 4]

    train, valid = datasets()  # as a new process would load them
    booster = lightgbm.train(
        PARAMS, train, num_boost_round=6, init_model=tmp_path / "model.txt",
        valid_sets=[train, valid], valid_names=["train", "valid"],
        callbacks=[trainwire_callback(config, max_rate=None)],
    )  # fmt: skip

    assert booster.current_iteration() == 10
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # From the saved model's 4 rounds on, percentages of all 10 rounds.
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 10.0) for s in range(4, 11)
    ]
    model_dir = model_dir_of(config)
    assert (model_dir / "save" / "metrics" / "l2.log").read_text().count("iteration") == 1
    header, rows = read_graph(model_dir, "l2")
    assert header == ["iteration", "train", "valid"]
    assert [row[0] for row in rows] == list(range(1, 11))


def test_the_docs_example_runs_and_writes_the_graph_the_docs_name(
    broker, queue, make_config, monkeypatch, capfd
):
    config = make_config()
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    train_set, valid_set = datasets(noise_valid=True)  # stops early
    names = {"lightgbm": lightgbm, "train_set": train_set, "valid_set": valid_set,
             "params": {"objective": "regression", "num_threads": 1, "verbosity": -1}}  # fmt: skip
    exec(example("## LightGBM"), names)

    booster = names["booster"]
    rounds = booster.best_iteration + 10  # early_stopping(10): the round that stopped
    seq = messages(broker, queue)
    assert_run(seq, DONE, complete=False)
    assert progress(seq)[-1]["step"] == rounds
    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["l2"]
    header, rows = read_graph(model_dir, "l2")
    assert header == ["iteration", "valid_0"]
    assert [row[0] for row in rows] == list(range(1, rounds + 1))
    # LightGBM names the best round as the graph's x: "[n]\tvalid_0's l2: ...".
    (best,) = [row for row in rows if row[0] == booster.best_iteration]
    assert best[1] == min(row[1] for row in rows)
    captured = capfd.readouterr()
    assert f"[{booster.best_iteration}]\tvalid_0's l2: " in captured.out + captured.err
