"""Hugging Face Trainer with TrainwireCallback: real fits of a tiny model on random data."""

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

torch = framework("torch")
framework("transformers")
framework("accelerate")

from torch import nn  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

from trainwire.integrations.transformers import TrainwireCallback  # noqa: E402


class TinyRegressor(nn.Module):
    """Any nn.Module returning a loss works with the Trainer; this one can blow up."""

    def __init__(self, fail_at_call=None):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.calls = 0
        self.fail_at_call = fail_at_call

    def forward(self, x, labels=None):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_at_call:
                raise RuntimeError("the loss became NaN at batch 5")
        out = self.linear(x).squeeze(-1)
        return {"loss": ((out - labels) ** 2).mean(), "logits": out}


class RandomData(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = torch.randn(n, generator=gen)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def trainer_for(tmp_path, model, callback, **overrides):
    options = dict(
        output_dir=str(tmp_path / "hf"),
        per_device_train_batch_size=4,
        num_train_epochs=2,
        gradient_accumulation_steps=2,
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    options.update(overrides)
    return Trainer(
        model=model,
        args=TrainingArguments(**options),
        train_dataset=RandomData(16, seed=1),
        eval_dataset=RandomData(8, seed=2),
        callbacks=[callback],
    )


def test_trainer_fit_with_gradient_accumulation_reports_optimizer_steps_graphs_and_done(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None)
    trainer = trainer_for(tmp_path, TinyRegressor(), callback)
    with callback:
        trainer.train()

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # 16 samples / batch 4 = 4 micro-batches an epoch, accumulation 2: 2 optimizer steps
    # an epoch, 4 in all: the total is state.max_steps, not the 8 micro-batches.
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (1, 25.0),
        (2, 50.0),
        (3, 75.0),
        (4, 100.0),
    ]
    model_dir = model_dir_of(config)
    names = graph_names(model_dir)
    assert {"loss", "learning_rate", "grad_norm", "eval_loss"} <= set(names), names
    assert not {"epoch", "eval_runtime", "train_runtime", "total_flos"} & set(names), names
    header, rows = read_graph(model_dir, "loss")
    assert header == ["step", "loss"]
    assert [row[0] for row in rows] == [1, 2, 3, 4]
    header, rows = read_graph(model_dir, "eval_loss")
    assert header == ["step", "eval_loss"]
    assert [row[0] for row in rows] == [2, 4]
    assert callback.run.status == DONE


def test_trainer_that_raises_inside_with_callback_sends_one_training_error(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    callback = TrainwireCallback(config, max_rate=None, language="en")
    trainer = trainer_for(
        tmp_path, TinyRegressor(fail_at_call=5), callback, gradient_accumulation_steps=1
    )
    with pytest.raises(RuntimeError, match="NaN"), callback:
        trainer.train()

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert [b["step"] for b in progress(seq)] == [1, 2, 3, 4]
    (error,) = terminals(seq)
    assert error["message"] == (
        "Training failed with an error: RuntimeError: the loss became NaN at batch 5"
    )


def test_trainer_that_raises_without_with_block_still_sends_training_error_at_exit(
    broker, queue, make_config
):
    # The Trainer has no exception hook; an uncaught exception reaches trainwire's
    # process hook, which sends the error before the interpreter exits.
    config = make_config()
    result = run_python(
        """
        import torch
        from torch import nn
        from transformers import Trainer, TrainingArguments
        from trainwire.integrations.transformers import TrainwireCallback

        class Boom(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(2, 1)
                self.calls = 0
            def forward(self, x, labels=None):
                self.calls += 1
                if self.calls == 3:
                    raise ValueError("bad batch 3")
                return {"loss": ((self.linear(x).squeeze(-1) - labels) ** 2).mean()}

        data = [{"x": torch.randn(2), "labels": torch.randn(())} for _ in range(8)]
        args = TrainingArguments(output_dir="hf-out", per_device_train_batch_size=2,
                                 report_to="none", save_strategy="no", use_cpu=True,
                                 disable_tqdm=True)
        Trainer(model=Boom(), args=args, train_dataset=data,
                callbacks=[TrainwireCallback(max_rate=None)]).train()
        """,
        config,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "ValueError: bad batch 3" in result.stderr
    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert "ValueError: bad batch 3" in terminals(seq)[0]["message"]


def test_trainer_resumed_from_a_real_checkpoint_goes_on_from_its_step(
    broker, queue, make_config, tmp_path
):
    # 16 samples, batch 4, 2 epochs: 8 optimizer steps. The first training checkpoints
    # at step 4 and dies in step 5; the second resumes from checkpoint-4.
    config = make_config()
    resumable = dict(gradient_accumulation_steps=1, save_strategy="steps", save_steps=4)
    first = TrainwireCallback(config, max_rate=None)
    trainer = trainer_for(tmp_path, TinyRegressor(fail_at_call=5), first, **resumable)
    with pytest.raises(RuntimeError, match="NaN"), first:
        trainer.train()
    first_seq = messages(broker, queue)
    assert_run(first_seq, ERROR, complete=False)
    assert [b["step"] for b in progress(first_seq)] == [1, 2, 3, 4]
    checkpoint = tmp_path / "hf" / "checkpoint-4"
    assert checkpoint.is_dir()

    second = TrainwireCallback(config, max_rate=None)
    trainer = trainer_for(tmp_path, TinyRegressor(), second, **resumable)
    with second:
        trainer.train(resume_from_checkpoint=str(checkpoint))

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # The first message is the checkpoint's step; percentages are of all 8 steps.
    assert [(b["step"], b["percentage"]) for b in progress(seq)] == [
        (s, s * 12.5) for s in range(4, 9)
    ]
    model_dir = model_dir_of(config)
    for graph, xs in (("loss", list(range(1, 9))), ("eval_loss", [4, 8])):
        text = (model_dir / "save" / "metrics" / f"{graph}.log").read_text()
        assert text.count("step") == 1, text  # one header: appended under the first one's
        header, rows = read_graph(model_dir, graph)
        assert header == ["step", graph]
        assert [row[0] for row in rows] == xs


def test_the_docs_example_writes_the_graphs_the_docs_picture(
    broker, queue, make_config, tmp_path, monkeypatch
):
    config = make_config()
    monkeypatch.setenv("TRAINWIRE_CONFIG", str(config))
    probe = trainer_for(tmp_path, TinyRegressor(), TrainwireCallback(config))
    names = {
        "Trainer": Trainer,
        "model": TinyRegressor(),
        "args": probe.args,  # eval_strategy="epoch", logging_steps=1, 2 epochs of 2 steps
        "train": RandomData(16, seed=1),
        "valid": RandomData(8, seed=2),
    }
    exec(example("## Hugging Face `Trainer`"), names)

    assert_run(messages(broker, queue), DONE)
    model_dir = model_dir_of(config)
    picture = {"loss": [1, 2, 3, 4], "grad_norm": [1, 2, 3, 4],
               "learning_rate": [1, 2, 3, 4], "eval_loss": [2, 4]}  # fmt: skip
    assert graph_names(model_dir) == sorted(picture)
    for graph, xs in picture.items():
        header, rows = read_graph(model_dir, graph)
        assert header == ["step", graph]
        assert [row[0] for row in rows] == xs
