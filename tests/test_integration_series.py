"""The train/validation naming rule of the integrations (integrations/_series.py), and the
reporter writing by it into a real run's graph files."""

from __future__ import annotations

import logging

import pytest

from _frameworks import model_dir_of, read_graph
from trainwire.integrations._reporter import Reporter, graph_name
from trainwire.integrations._series import Role, SeriesPlan, split_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("val_loss", ("loss", Role.VAL)),
        ("train_acc", ("acc", Role.TRAIN)),
        ("acc/train", ("acc", Role.TRAIN)),
        ("train/acc", ("acc", Role.TRAIN)),
        ("acc_val", ("acc", Role.VAL)),
        ("validation_f1", ("f1", Role.VAL)),
        ("valid/f1", ("f1", Role.VAL)),
        ("eval_loss", ("loss", Role.VAL)),
        ("training_loss", ("loss", Role.TRAIN)),
        ("train_loss_epoch", ("loss", Role.TRAIN)),  # Lightning's on_epoch twin
        ("loss", ("loss", None)),
        ("interval", ("interval", None)),
        ("val", ("val", None)),
        ("val_", ("val_", None)),
    ],
)
def test_split_name_finds_the_metric_and_its_role(name, expected):
    assert split_name(name) == expected


def plan_rows(*groups):
    """The rows and left-out keys of consecutive groups of names logged at one x each."""
    plan = SeriesPlan(graph_name)
    out = []
    for group in groups:
        rows, left_out = plan.rows(dict.fromkeys(group, 1.0))
        out.append(({g: sorted(series) for g, series in rows}, [key for key, _ in left_out]))
    return out


def test_pairs_share_a_graph_and_keep_it():
    assert (
        plan_rows(["loss", "val_loss", "lr"], ["loss", "val_loss", "lr"])
        == [
            ({"loss": ["train", "val"], "lr": ["lr"]}, []),
        ]
        * 2
    )


def test_a_name_first_logged_alone_stays_alone():
    # Validation every second epoch: "loss" is first seen without its partner.
    assert plan_rows(["loss"], ["loss", "val_loss"]) == [
        ({"loss": ["loss"]}, []),
        ({"loss": ["loss"], "val_loss": ["val_loss"]}, []),
    ]


def test_three_names_of_one_metric_and_step_twins_never_pair():
    assert plan_rows(["loss", "train_loss", "val_loss", "mae_step", "val_mae"]) == [
        (
            {n: [n] for n in ("loss", "train_loss", "val_loss", "mae_step", "val_mae")},
            [],
        )
    ]


def test_a_pair_missing_its_partner_later_leaves_the_value_out():
    assert plan_rows(["acc/train", "acc/val"], ["acc/train"]) == [
        ({"acc": ["train", "val"]}, []),
        ({}, ["acc"]),
    ]


def test_a_pair_named_like_an_existing_graph_stays_apart():
    # "loss" already holds the bare loss alone; the later pair may not take its file.
    assert plan_rows(["loss"], ["train_loss", "val_loss"]) == [
        ({"loss": ["loss"]}, []),
        ({"train_loss": ["train_loss"], "val_loss": ["val_loss"]}, []),
    ]


def test_reporter_writes_pairs_and_leaves_out_a_row_holding_nan(make_config, caplog):
    config = make_config()
    reporter = Reporter(config)
    reporter.begin(10)
    with caplog.at_level(logging.WARNING, logger="trainwire"):
        reporter.log_paired({"loss": 0.5, "val_loss": 0.25, "epoch": 0}, 1, skip=("epoch",))
        reporter.log_paired({"loss": 0.4, "val_loss": float("nan")}, 2)
        reporter.log_paired({"loss": 0.3}, 3)  # the partner missing: left out, said once
        reporter.log_paired({"loss": 0.25, "val_loss": 0.125}, 4, hold=True)
        reporter.log_paired({"lr": 0.1}, 4, hold=True)  # the same x: held together
        reporter.done()  # writes what is held
    assert read_graph(model_dir_of(config), "loss") == (
        ["step", "train", "val"],
        [[1, 0.5, 0.25], [4, 0.25, 0.125]],
    )
    assert read_graph(model_dir_of(config), "lr") == (["step", "lr"], [[4, 0.1]])
    said = [r.getMessage() for r in caplog.records]
    assert any("'val' is nan at step 2" in text for text in said), said
    assert any("logged at an x without val_loss" in text for text in said), said
