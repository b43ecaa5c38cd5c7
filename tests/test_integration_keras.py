"""Keras 3 (torch backend) with TrainwireCallback: real fits of a tiny model on random data."""

from __future__ import annotations

import os

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
    runs,
    terminals,
)
from _graph_pictures import assert_files_as_pictured

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is imported
framework("torch")
keras = framework("keras")
np = framework("numpy")

from trainwire._serve._graphs import read_graphs  # noqa: E402
from trainwire._tools._metrics_check import check_metrics_dir  # noqa: E402
from trainwire.integrations.keras import TrainwireCallback  # noqa: E402


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return model


def random_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_keras_runs_on_the_torch_backend():
    assert keras.backend.backend() == "torch"


def test_keras_fit_reports_every_batch_epoch_graphs_and_one_done(broker, queue, make_config):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None)
    x, y = random_data()
    # 40 samples, 20% for validation: 32 / batch 8 = 4 steps an epoch, 3 epochs.
    with callback:
        tiny_model().fit(
            x, y, epochs=3, batch_size=8, validation_split=0.2, callbacks=[callback], verbose=0
        )

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [b["step"] for b in progress(seq)] == list(range(1, 13))
    assert progress(seq)[5]["percentage"] == 50
    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["learning_rate", "loss", "mae"]
    history = callback.model.history.history
    for graph in ("loss", "mae"):  # training and validation on one graph, as Keras plots them
        header, rows = read_graph(model_dir, graph)
        assert header == ["epoch", "train", "val"]
        assert [row[0] for row in rows] == [1, 2, 3]
        assert [row[1] for row in rows] == pytest.approx(history[graph], rel=1e-6)
        assert [row[2] for row in rows] == pytest.approx(history[f"val_{graph}"], rel=1e-6)
    # What the platform's readers make of the two-line files: no problem, both lines.
    folder = model_dir / "save" / "metrics"
    assert check_metrics_dir(folder) == []
    drawn = {graph["name"]: graph for graph in read_graphs(folder)}
    assert drawn["loss"]["columns"] == ["epoch", "train", "val"]
    assert [row[:1] for row in drawn["loss"]["rows"]] == [[1], [2], [3]]
    assert all(len(row) == 3 and None not in row for row in drawn["loss"]["rows"])
    # No scheduler: Keras leaves the learning rate out of its logs; it is the optimizer's.
    assert "learning_rate" not in history
    assert read_graph(model_dir, "learning_rate") == (
        ["epoch", "learning_rate"],
        [[1, 0.01], [2, 0.01], [3, 0.01]],
    )


def test_keras_fit_that_raises_inside_with_callback_sends_one_training_error(
    broker, queue, make_config
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None, language="en")

    def explode(batch, logs):
        if batch == 2:
            raise FloatingPointError("the loss diverged in epoch 2")

    x, y = random_data()
    boom = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: setattr(boom, "armed", epoch == 1),
        on_train_batch_end=lambda batch, logs: boom.armed and explode(batch, logs),
    )
    with pytest.raises(FloatingPointError), callback:
        tiny_model().fit(x, y, epochs=3, batch_size=8, callbacks=[callback, boom], verbose=0)

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == list(range(1, 9))  # 5 an epoch, 3rd of 2nd
    assert terminals(seq)[0]["message"] == (
        "Training failed with an error: FloatingPointError: the loss diverged in epoch 2"
    )


def test_keras_learning_rate_graph_follows_a_scheduler_or_a_schedule(make_config, tmp_path):
    x, y = random_data()
    # A scheduler callback puts the rate of each epoch into Keras' logs.
    config = make_config()
    callback = TrainwireCallback(config)
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 * 0.5**epoch)
    with callback:
        tiny_model().fit(x, y, epochs=3, batch_size=10, callbacks=[callback, halve], verbose=0)
    rates = [row[1] for row in read_graph(model_dir_of(config), "learning_rate")[1]]
    assert rates == [0.1, 0.05, 0.025]
    assert read_graph(model_dir_of(config), "loss")[0] == ["epoch", "loss"]  # no val data
    # A schedule given to the optimizer: its value after each epoch's last step.
    config = make_config(model_write_path=str(tmp_path / "scheduled"))
    callback = TrainwireCallback(config)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(decay), loss="mse")
    with callback:
        model.fit(x, y, epochs=3, batch_size=10, callbacks=[callback], verbose=0)
    rates = [row[1] for row in read_graph(model_dir_of(config), "learning_rate")[1]]
    assert rates == [0.05, 0.025, 0.0125]  # 4 steps an epoch: halved each epoch


def test_keras_fit_resumed_with_initial_epoch_goes_on_from_its_step(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    x, y = random_data()
    saved = tmp_path / "model.keras"
    # 32 training samples / batch 8: 4 steps an epoch, 4 epochs: 16 steps in all.
    first = TrainwireCallback(config, max_rate=None)
    with first:
        tiny_model().fit(
            x,
            y,
            epochs=2,
            batch_size=8,
            validation_split=0.2,
            verbose=0,
            callbacks=[first, keras.callbacks.ModelCheckpoint(str(saved))],
        )
    assert [b["step"] for b in progress(messages(broker, queue))] == list(range(1, 9))

    model = keras.models.load_model(str(saved))
    callback = TrainwireCallback(config, max_rate=None)
    with callback:
        model.fit(
            x,
            y,
            epochs=4,
            initial_epoch=2,
            batch_size=8,
            validation_split=0.2,
            verbose=0,
            callbacks=[callback],
        )
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # Epoch 3 begins at step 9; the percentage is of the whole training.
    assert [b["step"] for b in progress(seq)] == list(range(9, 17))
    assert [b["percentage"] for b in progress(seq)] == [s * 100 / 16 for s in range(9, 17)]
    model_dir = model_dir_of(config)
    for graph in graph_names(model_dir):  # one header, epochs 1 to 4 once each
        lines = (model_dir / "save" / "metrics" / f"{graph}.log").read_text().splitlines()
        assert lines[0].startswith("epoch, ")
        assert [line.split(", ")[0] for line in lines[1:]] == ["1", "2", "3", "4"], graph
    assert read_graph(model_dir, "loss")[0] == ["epoch", "train", "val"]


# -- the examples of docs/integrations.md, as written ---------------------------------------


def test_keras_docs_examples_run_as_written(broker, queue, make_config, tmp_path, monkeypatch):
    config = make_config()
    resumed_config = make_config(model_write_path=str(tmp_path / "resumed"))
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    section = "## Keras 3"
    namespace: dict = {}
    exec(DOC_MODEL, namespace)
    exec(example(section, 0), namespace)
    exec(DOC_CHECKPOINT, namespace)
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(resumed_config))  # a job of its own
    exec(example(section, 1), namespace)
    first, resumed = runs(broker, queue, 2)
    # 36 training samples, batches of 32: 2 steps an epoch, 10 epochs.
    assert_run(first, DONE)  # at most 10 messages a second: steps in between may merge
    assert progress(first)[-1]["step"] == 20
    # From epoch 6: step 11 of 20 on (the rate limit may merge the first steps: the newest
    # wins), each percentage of all 20.
    assert_run(resumed, DONE)
    assert progress(resumed)[0]["step"] >= 11
    assert all(b["percentage"] == b["step"] * 5 for b in progress(resumed))
    # The files are as docs/integrations.md draws them.
    assert_files_as_pictured(model_dir_of(config), "## Training and validation in one graph", 0)
    assert_files_as_pictured(
        model_dir_of(resumed_config), "## Training and validation in one graph", 0
    )
    rows = read_graph(model_dir_of(resumed_config), "loss")[1]
    assert [row[0] for row in rows] == [6, 7, 8, 9, 10]


# What the examples leave to the reader: a compiled model (as the docs' picture says), data;
# then a checkpoint saved after 5 epochs (the resumed fit reports as a job of its own).
DOC_MODEL = """
import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.normal(size=(40, 4)).astype("float32")
y = rng.normal(size=(40, 1)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
"""
DOC_CHECKPOINT = """
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
model.fit(x, y, epochs=5, validation_split=0.1, verbose=0)
model.save("checkpoint.keras")
"""
