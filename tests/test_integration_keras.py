"""Keras 3 (torch backend) with TrainwireCallback: real fits of a tiny model on random data."""

from __future__ import annotations

import os

import pytest

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

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is imported
framework("torch")
keras = framework("keras")
np = framework("numpy")

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
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(graph_names(model_dir))
    header, rows = read_graph(model_dir, "val_loss")
    assert header == ["epoch", "val_loss"]
    assert [row[0] for row in rows] == [1, 2, 3]


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
