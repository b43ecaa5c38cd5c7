"""PyTorch Lightning with TrainwireCallback and TrainwireLogger: real fits on random data."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

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
    runs,
    terminals,
)
from _graph_pictures import assert_files_as_pictured

torch = framework("torch")
L = framework("lightning.pytorch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from trainwire.integrations import lightning as tw_lightning  # noqa: E402
from trainwire.integrations.lightning import TrainwireCallback, TrainwireLogger  # noqa: E402


class TinyModule(L.LightningModule):
    def __init__(self, fail_at_batch=None, pairs=False):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.fail_at_batch = fail_at_batch
        self.pairs = pairs  # also log metrics once an epoch, for train/val graphs
        self.batches = 0

    def training_step(self, batch, batch_idx):
        self.batches += 1
        if self.batches == self.fail_at_batch:
            raise RuntimeError("the loss became NaN at batch 5")
        x, y = batch
        error = self.linear(x).squeeze(-1) - y
        loss = (error**2).mean()
        self.log("train_loss", loss)  # every step: a graph of its own
        if self.pairs:
            self.log("train_mae", error.abs().mean(), on_step=True, on_epoch=True)
            self.log("err/train", error.mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        error = self.linear(x).squeeze(-1) - y
        self.log("val_loss", (error**2).mean())
        if self.pairs:
            self.log("val_mae", error.abs().mean())
            self.log("err/val", error.mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader(n, seed):
    gen = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(n, 4, generator=gen), torch.randn(n, generator=gen))
    return DataLoader(data, batch_size=2)


def trainer_for(tmp_path, callbacks, logger, **overrides):
    options = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path / "pl"),
    )
    options.update(overrides)
    return L.Trainer(callbacks=callbacks, logger=logger, **options)


def test_lightning_fit_with_accumulation_reports_optimizer_steps_graphs_and_one_done(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None)
    logger = TrainwireLogger(config, max_rate=None)
    # 16 samples / batch 2 = 8 batches an epoch, accumulation 2: 4 optimizer steps an
    # epoch, 8 in all. The sanity check runs 2 validation batches first and sends nothing.
    trainer = trainer_for(
        tmp_path, [callback], logger, accumulate_grad_batches=2, num_sanity_val_steps=2
    )
    trainer.fit(TinyModule(), loader(16, 1), loader(4, 2))

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [b["step"] for b in progress(seq)] == list(range(1, 9))
    assert [b["percentage"] for b in progress(seq)] == [12.5 * s for s in range(1, 9)]
    assert callback.run is logger.run  # one run for the callback and the logger
    model_dir = model_dir_of(config)
    assert {"train_loss", "val_loss"} <= set(graph_names(model_dir))
    assert "epoch" not in graph_names(model_dir)
    header, rows = read_graph(model_dir, "train_loss")
    assert header == ["step", "train_loss"]
    # x is Lightning's own logging step (as in its CSVLogger): one row per optimizer step.
    assert [row[0] for row in rows] == list(range(8))
    header, rows = read_graph(model_dir, "val_loss")
    assert [row[0] for row in rows] == [3, 7]  # once an epoch; none from the sanity check


def test_lightning_fit_that_raises_sends_one_training_error_from_on_exception(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None, language="en")
    trainer = trainer_for(tmp_path, [callback], TrainwireLogger(config), num_sanity_val_steps=0)
    with pytest.raises(RuntimeError, match="NaN"):
        trainer.fit(TinyModule(fail_at_batch=5), loader(16, 1), loader(4, 2))

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3, 4]
    assert terminals(seq)[0]["message"] == (
        "Training failed with an error: RuntimeError: the loss became NaN at batch 5"
    )


def test_lightning_callback_and_logger_pickle_without_their_run_for_ddp_spawn(make_config):
    config = make_config()
    callback = TrainwireCallback(config)
    logger = TrainwireLogger(config)
    callback._reporter.run  # noqa: B018 - a run that must not travel
    copy = pickle.loads(pickle.dumps(callback))
    assert copy._reporter.config_path == callback._reporter.config_path
    assert not copy._reporter.started
    assert not pickle.loads(pickle.dumps(logger))._reporter.started
    callback.run.done()
    with pytest.raises(TypeError, match="config="):
        pickle.dumps(TrainwireCallback(run=callback.run))


def test_lightning_integration_subclasses_pytorch_lightning_when_the_program_uses_it(
    broker, queue, make_config
):
    assert tw_lightning.FRAMEWORK == "lightning.pytorch"
    config = make_config()
    result = run_python(
        """
        import pytorch_lightning as pl
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from trainwire.integrations import lightning as tw

        assert tw.FRAMEWORK == "pytorch_lightning", tw.FRAMEWORK

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(2, 1)
            def training_step(self, batch, batch_idx):
                loss = self.linear(batch[0]).pow(2).mean()
                self.log("loss", loss)
                return loss
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        data = DataLoader(TensorDataset(torch.randn(6, 2)), batch_size=2)
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", log_every_n_steps=1,
                             callbacks=[tw.TrainwireCallback(max_rate=None)],
                             logger=tw.TrainwireLogger(), enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(M(), data)
        """,
        config,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3]
    assert "loss" in graph_names(model_dir_of(config))


# -- train and validation in one graph ---------------------------------------------------


def test_lightning_train_and_val_values_logged_at_one_step_share_a_graph(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None)
    trainer = trainer_for(tmp_path, [callback], TrainwireLogger(config), num_sanity_val_steps=0)
    # 8 samples / batch 2: 4 steps an epoch, 2 epochs; Lightning logs an epoch's values
    # (validation, then the training ones with on_epoch) at its last step: 3, then 7.
    trainer.fit(TinyModule(pairs=True), loader(8, 1), loader(4, 2))
    assert_run(messages(broker, queue), DONE)

    model_dir = model_dir_of(config)
    assert graph_names(model_dir) == ["err", "mae", "train_loss", "train_mae_step", "val_loss"]
    final = trainer.callback_metrics
    for graph, train, val in (
        ("err", "err/train", "err/val"),
        ("mae", "train_mae_epoch", "val_mae"),
    ):
        header, rows = read_graph(model_dir, graph)
        assert header == ["step", "train", "val"], graph
        assert [row[0] for row in rows] == [3, 7]
        assert rows[-1][1:] == pytest.approx([float(final[train]), float(final[val])], rel=1e-6)
    # Values logged every step have no partner at most steps: graphs of their own.
    header, rows = read_graph(model_dir, "train_mae_step")
    assert (header, [row[0] for row in rows]) == (["step", "train_mae_step"], list(range(8)))
    assert read_graph(model_dir, "val_loss")[0] == ["step", "val_loss"]


# -- checkpoints stay where Lightning puts them -------------------------------------------


def checkpoints(root: Path):
    """The checkpoint files under ``root``, as paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.ckpt"))


def fit_twice(tmp_path, loggers_for):
    """Two fits one after the other, each with the loggers ``loggers_for()`` gives and
    Lightning's default ``ModelCheckpoint``; the warnings they gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            trainer = trainer_for(
                tmp_path, [], loggers_for(), max_epochs=1, enable_checkpointing=True
            )
            trainer.fit(TinyModule(), loader(8, 1), loader(4, 2))
    return [str(w.message) for w in caught]


RUNS = ["version_0/checkpoints/epoch=0-step=4.ckpt", "version_1/checkpoints/epoch=0-step=4.ckpt"]


@pytest.mark.parametrize("layout", ["alone", "trainwire first", "trainwire second"])
def test_lightning_logger_leaves_checkpoints_where_lightning_puts_them(
    broker, queue, make_config, tmp_path, layout
):
    config = make_config()
    csv_dir = tmp_path / "csv"

    def loggers():
        trainwire = TrainwireLogger(config, max_rate=None)
        if layout == "alone":
            return trainwire
        csv = L.loggers.CSVLogger(str(csv_dir))
        return [trainwire, csv] if layout == "trainwire first" else [csv, trainwire]

    said = fit_twice(tmp_path, loggers)
    if layout == "alone":  # where Lightning alone, with its default logger, puts them
        fit_twice(tmp_path / "plain", lambda: True)
        expected = checkpoints(tmp_path / "plain" / "pl")
        assert expected == [f"lightning_logs/{run}" for run in RUNS]
        assert checkpoints(tmp_path / "pl") == expected
    else:  # where the CSV logger alone puts them: each run its own version
        assert checkpoints(csv_dir) == [f"lightning_logs/{run}" for run in RUNS]
        assert not (tmp_path / "pl").exists()
        # the CSV logger's own files are beside the run's checkpoints
        assert sorted(os.listdir(csv_dir / "lightning_logs" / "version_1")) == [
            "checkpoints",
            "metrics.csv",
        ]
    assert not [text for text in said if "exists and is not empty" in text], said
    for seq in runs(broker, queue, 2):  # the logger alone: the end, no progress
        assert seq == terminals(seq) and seq[0]["status"] == DONE
    assert "train_loss" in graph_names(model_dir_of(config))


# -- resuming from a checkpoint ------------------------------------------------------------


def test_lightning_fit_resumed_from_a_checkpoint_goes_on_from_its_step(
    broker, queue, make_config, tmp_path
):
    config = make_config()

    def trainer():
        callback = TrainwireCallback(config, max_rate=None, language="en")
        return trainer_for(
            tmp_path,
            [callback],
            TrainwireLogger(config),
            max_epochs=4,
            enable_checkpointing=True,
            num_sanity_val_steps=0,
        )

    # 4 steps an epoch, 16 in all. The first fit saves a checkpoint at each epoch's end
    # and dies in its 11th step, after the checkpoint at step 8.
    with pytest.raises(RuntimeError, match="NaN"):
        trainer().fit(TinyModule(fail_at_batch=11, pairs=True), loader(8, 1), loader(4, 2))
    first = messages(broker, queue)
    assert_run(first, ERROR, complete=False)
    assert [b["step"] for b in progress(first)] == list(range(1, 11))
    (checkpoint,) = (tmp_path / "pl").rglob("*.ckpt")
    assert checkpoint.name == "epoch=1-step=8.ckpt"

    trainer().fit(TinyModule(pairs=True), loader(8, 1), loader(4, 2), ckpt_path=checkpoint)
    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # From the checkpoint's step on, never back; the percentage is of the whole training.
    assert [b["step"] for b in progress(seq)] == list(range(8, 17))
    assert [b["percentage"] for b in progress(seq)] == [s * 100 / 16 for s in range(8, 17)]

    # The graphs go on under their header. The first fit's rows after the checkpoint
    # (steps 8 and 9) stay; the resumed fit's rows start after them: no step twice.
    model_dir = model_dir_of(config)
    header, rows = read_graph(model_dir, "train_loss")
    assert [row[0] for row in rows] == list(range(16))
    header, rows = read_graph(model_dir, "err")
    assert header == ["step", "train", "val"]
    assert [row[0] for row in rows] == [3, 7, 11, 15]
    for name in graph_names(model_dir):  # one header each, every row numbers
        lines = (model_dir / "save" / "metrics" / f"{name}.log").read_text().splitlines()
        xs = [float(line.split(", ")[0]) for line in lines[1:]]
        assert xs == sorted(set(xs)), (name, lines)


# -- the examples of docs/integrations.md, as written ---------------------------------------


def test_lightning_docs_examples_run_as_written(broker, queue, make_config, tmp_path, monkeypatch):
    config = make_config()
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    section = "## PyTorch Lightning"
    namespace: dict = {}
    exec(DOC_MODEL, namespace)
    exec(example(section, 0), namespace)
    # The first fit's checkpoint, as "last.ckpt" for the second example.
    (checkpoint,) = (tmp_path / "lightning_logs").rglob("*.ckpt")
    shutil.copy(checkpoint, tmp_path / "last.ckpt")
    exec(example(section, 1), namespace)
    first, resumed = runs(broker, queue, 2)
    assert_run(first, DONE)  # at most 10 messages a second: steps in between may merge
    assert progress(first)[-1]["step"] == 8
    # max_epochs=4 from the checkpoint after 2: from step 8 of 16 on (the rate limit may
    # merge the first steps: the newest wins), each percentage of all 16.
    assert_run(resumed, DONE)
    assert progress(resumed)[0]["step"] >= 8
    assert all(b["percentage"] == b["step"] * 100 / 16 for b in progress(resumed))
    # The files are as docs/integrations.md draws them; the checkpoints where Lightning
    # alone puts them, one version per fit.
    assert_files_as_pictured(model_dir_of(config), "## Training and validation in one graph", 1)
    rows = read_graph(model_dir_of(config), "loss")[1]
    assert [row[0] for row in rows] == [3, 7, 11, 15]
    assert checkpoints(tmp_path / "lightning_logs") == [
        "version_0/checkpoints/epoch=1-step=8.ckpt",
        "version_1/checkpoints/epoch=3-step=16.ckpt",
    ]


# What the examples leave to the reader: a model logging as the docs' picture says, data,
# and a Trainer made small and quiet (the examples' own arguments still win).
DOC_MODEL = """
import functools
import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, TensorDataset

class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
    def loss(self, batch):
        x, y = batch
        return ((self.linear(x).squeeze(-1) - y) ** 2).mean()
    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

def data(n):
    return DataLoader(TensorDataset(torch.randn(n, 4), torch.randn(n)), batch_size=2)

model, train_loader, val_loader = Model(), data(8), data(4)
Trainer = functools.partial(
    L.Trainer, max_epochs=2, accelerator="cpu", log_every_n_steps=1,
    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
)
"""


def test_lightning_rows_of_a_step_reach_their_files_at_the_next_optimizer_step(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    folder = model_dir_of(config) / "save" / "metrics"
    seen = {}  # global_step -> the x values in the files then, per graph

    def xs(graph):
        path = folder / f"{graph}.log"
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        return [int(line.split(", ")[0]) for line in lines]

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            seen[trainer.global_step] = {g: xs(g) for g in ("train_loss", "mae")}

    callback = TrainwireCallback(config)
    trainer = trainer_for(
        tmp_path,
        [callback, Watch()],
        TrainwireLogger(config),
        log_every_n_steps=3,
        num_sanity_val_steps=0,
    )
    trainer.fit(TinyModule(pairs=True), loader(8, 1), loader(4, 2))
    assert_run(messages(broker, queue), DONE)
    final = {g: xs(g) for g in ("train_loss", "mae")}
    assert final == {"train_loss": [2, 5], "mae": [3, 7]}
    # Once a step's optimizer step is over, every earlier step's row is in (not only when
    # Lightning logs again, log_every_n_steps later).
    for step, files in seen.items():
        assert files == {g: [x for x in final[g] if x < step - 1] for g in final}, step
