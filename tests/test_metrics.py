"""Training graph files: trainwire._sdk._metrics.MetricsWriter, on real files and processes."""

from __future__ import annotations

import decimal
import fractions
import json
import locale
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from trainwire._errors import TrainwireError
from trainwire._sdk._metrics import MetricsError, MetricsWriter
from trainwire._tools._metrics_check import check_metrics_dir

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "save" / "metrics"


@pytest.fixture
def writer(folder: Path):
    w = MetricsWriter(folder)
    yield w
    w.close()


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trainwire"]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


# -- the format ------------------------------------------------------------------------


def test_scripted_run_writes_files_byte_for_byte_in_the_spec_format(folder: Path) -> None:
    with MetricsWriter(folder) as w:
        for step, (train, val) in enumerate([(0.2, 0.2), (0.3, 0.25), (0.4, 0.43643)], 1):
            w.log("loss", step, {"train": train, "val": val})
        w.log("accuracy", 1, {"top1": 0.71}, x_axis="epoch")
        w.log("accuracy", 2, {"top1": 0.8}, x_axis="epoch")
        w.log_dict({"lr": 1e-4, "grad/norm": 3, "grad/max": 12.5}, step=1)
        w.log_dict({"lr": 5e-05, "grad/norm": 2, "grad/max": 7.25}, step=2)
    assert sorted(p.name for p in folder.iterdir()) == [
        "accuracy.log",
        "grad.log",
        "loss.log",
        "lr.log",
    ]
    assert (folder / "loss.log").read_bytes() == (
        b"step, train, val\n1, 0.2, 0.2\n2, 0.3, 0.25\n3, 0.4, 0.43643\n"
    )
    assert (folder / "accuracy.log").read_bytes() == b"epoch, top1\n1, 0.71\n2, 0.8\n"
    assert (folder / "lr.log").read_bytes() == b"step, lr\n1, 0.0001\n2, 5e-05\n"
    assert (folder / "grad.log").read_bytes() == b"step, norm, max\n1, 3, 12.5\n2, 2, 7.25\n"
    assert check_metrics_dir(folder) == []


def test_the_folder_is_created_on_the_first_row_only(folder: Path) -> None:
    w = MetricsWriter(folder)
    assert not folder.exists()
    w.log("loss", 1, {"v": 1.0})
    assert folder.is_dir()
    w.close()


def test_header_keeps_first_order_and_later_rows_may_give_series_in_any_order(
    writer: MetricsWriter, folder: Path
) -> None:
    writer.log("loss", 1, {"val": 0.5, "train": 0.25})
    writer.log("loss", 2, {"train": 0.125, "val": 0.75})
    assert read(folder / "loss.log") == "step, val, train\n1, 0.5, 0.25\n2, 0.75, 0.125\n"


def test_no_hidden_helper_file_is_left_behind(writer: MetricsWriter, folder: Path) -> None:
    writer.log("loss", 1, {"v": 1})
    writer.log("acc", 1, {"v": 1})
    assert sorted(os.listdir(folder)) == ["acc.log", "loss.log"]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (1e-4, "0.0001"),
        (1e-5, "1e-05"),
        (1e20, "1e+20"),
        (2.0, "2.0"),
        (-0.0, "-0.0"),
        (7, "7"),
        (-3, "-3"),
        (10**20, "100000000000000000000"),
        (decimal.Decimal("0.5"), "0.5"),
        (fractions.Fraction(1, 4), "0.25"),
    ],
)
def test_python_numbers_are_written_in_shortest_round_trip_form(
    writer: MetricsWriter, folder: Path, value: object, cell: str
) -> None:
    writer.log("g", 1, {"v": value})
    row = read(folder / "g.log").splitlines()[1]
    assert row == f"1, {cell}"
    assert float(row.split(", ")[1]) == float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (np.float64(0.1), "0.1"),
        (np.float32(0.1), "0.1"),
        (np.float32(0.31), "0.31"),
        (np.float16(0.1), "0.1"),
        (np.float32(3.0), "3.0"),
        (np.int64(7), "7"),
        (np.uint8(200), "200"),
        (np.array(0.25), "0.25"),
        (np.array(0.31, dtype=np.float32), "0.31"),
        (np.array(3, dtype=np.int32), "3"),
        (np.array([1.5]), "1.5"),
    ],
)
def test_numpy_scalars_and_0d_arrays_are_written_in_their_shortest_form(
    writer: MetricsWriter, folder: Path, value: object, cell: str
) -> None:
    writer.log("g", 1, {"v": value})
    assert read(folder / "g.log").splitlines()[1] == f"1, {cell}"


def test_a_32_bit_float_reads_back_to_the_same_32_bit_value(
    writer: MetricsWriter, folder: Path
) -> None:
    values = np.array([0.1, 1 / 3, 2.5e-7, 123456.789, 3.4e38], dtype=np.float32)
    for step, value in enumerate(values):
        writer.log("g", step, {"v": value})
    cells = [line.split(", ")[1] for line in read(folder / "g.log").splitlines()[1:]]
    assert np.array([float(c) for c in cells], dtype=np.float32).tolist() == values.tolist()


def test_numbers_ignore_the_locale(writer: MetricsWriter, folder: Path) -> None:
    saved = locale.setlocale(locale.LC_ALL)
    for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ko_KR.UTF-8"):
        try:
            locale.setlocale(locale.LC_ALL, name)
            break
        except locale.Error:
            continue
    else:
        if os.environ.get("CI"):  # .ci/run generates de_DE.UTF-8: never a silent skip there
            pytest.fail("no locale with a decimal comma is installed")
        pytest.skip("no locale with a decimal comma is installed")
    try:
        writer.log("g", 1000, {"v": 1234.5})
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    assert read(folder / "g.log") == "step, v\n1000, 1234.5\n"


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "error"),
    [
        ("", "graph name '' is empty"),
        ("   ", "graph name '   ' is empty"),
        (" loss", "starts or ends with a space"),
        ("loss ", "starts or ends with a space"),
        ("..", "starts with '.': '..' would leave the metrics folder"),
        (".hidden", "starts with '.'"),
        ("a/b", "contains '/' or '\\'"),
        ("../escape", "contains '/' or '\\'"),
        ("/etc/passwd", "contains '/' or '\\'"),
        ("a\\b", "contains '/' or '\\'"),
        ("C:\\temp", "contains '/' or '\\'"),
        ("C:loss", "contains ':', which file names on Windows cannot hold"),
        ("a\x00b", "contains the control character '\\x00'"),
        ("a\nb", "contains the control character '\\n'"),
        ("a\rb", "contains the control character '\\r'"),
        ("a\tb", "contains the control character '\\t'"),
        ("a\u2028b", "contains the control character"),
        ("a,b", "contains a comma, which separates the file's columns"),
        ("a<b", "contains '<'"),
        ("a>b", "contains '>'"),
        ('a"b', "contains '\"'"),
        ("a|b", "contains '|'"),
        ("a?b", "contains '?'"),
        ("a*b", "contains '*'"),
        ("CON", "is a device name on Windows"),
        ("nul", "is a device name on Windows"),
        ("com1.x", "is a device name on Windows"),
        ("x" * 101, "is too long (101 characters"),
        ("손" * 70, "is too long (70 characters, 210 bytes"),
        ("\ud800", "is not valid Unicode text"),
        (123, "graph name must be a string, got int 123"),
        (None, "graph name must be a string, got NoneType None"),
        (["loss"], "graph name must be a string, got list ['loss']"),
    ],
)
def test_rejected_graph_names(
    writer: MetricsWriter, folder: Path, graph: object, error: str
) -> None:
    with pytest.raises(MetricsError) as info:
        writer.log(graph, 1, {"v": 1.0})  # type: ignore[arg-type]
    assert error in str(info.value)
    assert not folder.exists() or os.listdir(folder) == []


@pytest.mark.parametrize(
    ("series", "x_axis", "error"),
    [
        ({"": 1}, "step", "series name '' is empty"),
        ({"a,b": 1}, "step", "series name 'a,b' contains a comma"),
        ({"a\nb": 1}, "step", "series name 'a\\nb' contains the control character '\\n'"),
        ({"a\rb": 1}, "step", "contains the control character '\\r'"),
        ({"a\x00": 1}, "step", "contains the control character '\\x00'"),
        ({" val": 1}, "step", "series name ' val' starts or ends with a space"),
        ({"v" * 101: 1}, "step", "series name 'vvvvvvvvvvvvvvvvvvvv'... is too long"),
        ({"step": 1}, "step", "series 'step' has the x axis's name"),
        ({}, "step", "no series given; log at least one"),
        ({"v": 1}, "", "x axis name '' is empty"),
        ({"v": 1}, "ep,och", "x axis name 'ep,och' contains a comma"),
        ({"v": 1}, "epoch\n", "x axis name 'epoch\\n' contains the control character"),
    ],
)
def test_rejected_series_and_x_axis_names(
    writer: MetricsWriter, folder: Path, series: dict[str, object], x_axis: str, error: str
) -> None:
    with pytest.raises(MetricsError) as info:
        writer.log("g", 1, series, x_axis=x_axis)
    assert error in str(info.value)
    assert not (folder / "g.log").exists()


def test_series_names_may_hold_slashes_and_spaces_inside(
    writer: MetricsWriter, folder: Path
) -> None:
    writer.log("g", 1, {"top 1/val": 0.5})
    assert read(folder / "g.log") == "step, top 1/val\n1, 0.5\n"


def test_korean_graph_and_series_names_work(writer: MetricsWriter, folder: Path) -> None:
    writer.log("손실", 1, {"학습": 0.5, "검증": 0.25}, x_axis="단계")
    writer.log_dict({"정확도/상위1": 0.75}, step=1)
    assert read(folder / "손실.log") == "단계, 학습, 검증\n1, 0.5, 0.25\n"
    assert read(folder / "정확도.log") == "step, 상위1\n1, 0.75\n"
    assert check_metrics_dir(folder) == []


def test_graph_names_differing_only_in_case_are_rejected(writer: MetricsWriter) -> None:
    writer.log("Loss", 1, {"v": 1.0})
    with pytest.raises(MetricsError, match="differs from the graph 'Loss' only in upper/lower"):
        writer.log("loss", 1, {"v": 1.0})


def test_metrics_error_is_a_trainwire_error_and_a_value_error(writer: MetricsWriter) -> None:
    with pytest.raises(TrainwireError):
        writer.log("a/b", 1, {"v": 1})
    with pytest.raises(ValueError):
        writer.log("a/b", 1, {"v": 1})


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (True, "graph 'g', series 'v': True is a bool, not a number"),
        (np.bool_(False), "graph 'g', series 'v': False is a bool, not a number"),
        (np.array(True), "graph 'g', series 'v': True is a bool, not a number"),
        ("0.5", "graph 'g', series 'v': '0.5' is text, not a number; convert it with float"),
        (b"1", "b'1' is text, not a number"),
        (None, "graph 'g', series 'v': None (NoneType) is not a number"),
        ([1.0, 2.0], "[1.0, 2.0] (list) is not a number"),
        (object, "(type) is not a number"),
        (1 + 2j, "(1+2j) is a complex number"),
        (np.complex64(1), "is a complex number"),
        (np.array([1.0, 2.0]), "is an array of shape (2,), not one number"),
        (np.zeros((2, 3)), "is an array of shape (2, 3), not one number"),
        (np.array([]), "is an array of shape (0,), not one number"),
    ],
)
def test_rejected_values(writer: MetricsWriter, folder: Path, value: object, error: str) -> None:
    writer.log("g", 0, {"v": 1.0})
    with pytest.raises(MetricsError) as info:
        writer.log("g", 1, {"v": value})
    assert error in str(info.value)
    assert read(folder / "g.log") == "step, v\n0, 1.0\n"


@pytest.mark.parametrize(
    ("x", "error"),
    [
        (float("nan"), "graph 'g': x (step) is nan; x must be a finite number"),
        (float("inf"), "x (step) is inf; x must be a finite number"),
        (np.float32("nan"), "x must be a finite number"),
        (True, "graph 'g', x (step): True is a bool, not a number"),
        ("3", "graph 'g', x (step): '3' is text, not a number"),
        (None, "None (NoneType) is not a number"),
    ],
)
def test_rejected_x_values(writer: MetricsWriter, folder: Path, x: object, error: str) -> None:
    with pytest.raises(MetricsError) as info:
        writer.log("g", x, {"v": 1.0})  # type: ignore[arg-type]
    assert error in str(info.value)
    assert read(folder / "g.log") == "step, v\n"


def test_x_may_be_a_float_or_a_numpy_integer(writer: MetricsWriter, folder: Path) -> None:
    writer.log("g", 0.5, {"v": 1})
    writer.log("g", np.int64(2), {"v": 2})
    writer.log("g", np.float32(2.5), {"v": 3})
    assert read(folder / "g.log") == "step, v\n0.5, 1\n2, 2\n2.5, 3\n"


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), float("-inf"), np.float32("nan"), np.array(np.inf)]
)
def test_a_row_holding_nan_or_infinity_is_left_out_and_warned_once_per_graph(
    writer: MetricsWriter, folder: Path, caplog: pytest.LogCaptureFixture, bad: object
) -> None:
    caplog.set_level(logging.WARNING, logger="trainwire")
    writer.log("loss", 1, {"train": 0.5, "val": 0.25})
    writer.log("loss", 2, {"train": bad, "val": 0.25})
    writer.log("loss", 3, {"train": 0.5, "val": bad})
    writer.log("loss", 4, {"train": 0.125, "val": 0.25})
    writer.log("other", 1, {"v": bad})
    writer.log("other", 2, {"v": 1})
    assert read(folder / "loss.log") == "step, train, val\n1, 0.5, 0.25\n4, 0.125, 0.25\n"
    assert read(folder / "other.log") == "step, v\n2, 1\n"
    said = warnings_of(caplog)
    assert len(said) == 2
    assert "graph 'loss'" in said[0] and "'train' is " in said[0] and "at step 2" in said[0]
    assert "rows holding NaN or infinity are left out of the file" in said[0]
    assert "graph 'other'" in said[1]


def test_a_bad_value_beside_nan_still_raises(writer: MetricsWriter) -> None:
    with pytest.raises(MetricsError, match="is a bool"):
        writer.log("g", 1, {"a": float("nan"), "b": True})


# -- the same series on every row ----------------------------------------------------------


def test_a_row_lacking_a_series_raises_and_says_what_to_do(
    writer: MetricsWriter, folder: Path
) -> None:
    writer.log("loss", 1, {"train": 0.5, "val": 0.25})
    with pytest.raises(MetricsError) as info:
        writer.log("loss", 2, {"train": 0.5})
    text = str(info.value)
    assert "graph 'loss' (loss.log) has the series train, val, fixed by its first row" in text
    assert "this row lacks 'val'" in text
    assert "belong to a graph of their own, e.g. log('val_loss', step, ...)" in text
    assert read(folder / "loss.log") == "step, train, val\n1, 0.5, 0.25\n"


def test_a_row_adding_a_series_raises(writer: MetricsWriter) -> None:
    writer.log("loss", 1, {"train": 0.5})
    with pytest.raises(MetricsError, match="this row adds 'val'"):
        writer.log("loss", 2, {"train": 0.5, "val": 0.1})
    with pytest.raises(MetricsError, match="this row lacks 'train' and adds 'test'"):
        writer.log("loss", 2, {"test": 0.5})


def test_a_graph_keeps_its_x_axis(writer: MetricsWriter) -> None:
    writer.log("acc", 1, {"top1": 0.5}, x_axis="epoch")
    with pytest.raises(MetricsError, match="has the x axis 'epoch'; this call gives x_axis='step'"):
        writer.log("acc", 2, {"top1": 0.5})


def test_x_going_backwards_raises_and_equal_x_is_fine(writer: MetricsWriter, folder: Path) -> None:
    writer.log("loss", 10, {"v": 1})
    writer.log("loss", 10, {"v": 2})
    with pytest.raises(MetricsError) as info:
        writer.log("loss", 3, {"v": 3})
    assert "the x axis (step) went backwards, from 10 to 3" in str(info.value)
    assert "pass a step that keeps counting across epochs" in str(info.value)
    assert read(folder / "loss.log") == "step, v\n10, 1\n10, 2\n"


# -- log_dict ----------------------------------------------------------------------------


def test_log_dict_groups_graph_slash_series_keys_into_one_row(
    writer: MetricsWriter, folder: Path
) -> None:
    writer.log_dict({"loss/train": 0.31, "loss/val": 0.29, "lr": 1e-4}, step=1)
    writer.log_dict({"lr": 2e-4, "loss/val": 0.19, "loss/train": 0.21}, step=2)
    assert read(folder / "loss.log") == "step, train, val\n1, 0.31, 0.29\n2, 0.21, 0.19\n"
    assert read(folder / "lr.log") == "step, lr\n1, 0.0001\n2, 0.0002\n"


def test_log_dict_splits_keys_at_the_first_slash(writer: MetricsWriter, folder: Path) -> None:
    writer.log_dict({"train/loss/ce": 1.5, "train/loss/l2": 0.5}, step=1)
    assert read(folder / "train.log") == "step, loss/ce, loss/l2\n1, 1.5, 0.5\n"


def test_log_dict_metrics_logged_at_different_steps_go_to_different_graphs(
    writer: MetricsWriter, folder: Path
) -> None:
    for step in range(1, 7):
        metrics = {"train/loss": 1.0 / step}
        if step % 3 == 0:
            writer.log_dict(metrics, step)
            writer.log_dict({"val/loss": 2.0 / step}, step)
        else:
            writer.log_dict(metrics, step)
    assert read(folder / "train.log").count("\n") == 7
    assert read(folder / "val.log") == "step, loss\n3, 0.6666666666666666\n6, 0.3333333333333333\n"


def test_log_dict_partial_graph_raises_and_writes_nothing_of_the_call(
    writer: MetricsWriter, folder: Path
) -> None:
    writer.log_dict({"loss/train": 0.5, "loss/val": 0.4, "lr": 0.1}, step=1)
    with pytest.raises(MetricsError) as info:
        writer.log_dict({"lr": 0.2, "loss/train": 0.3}, step=2)
    text = str(info.value)
    assert "graph 'loss' (loss.log) has the series train, val" in text
    assert "this row lacks 'val'" in text
    assert "give 'loss/train', 'loss/val' together" in text
    assert "e.g. 'train/loss' every step and 'val/loss' every epoch" in text
    assert read(folder / "lr.log") == "step, lr\n1, 0.1\n"  # all or nothing
    assert read(folder / "loss.log") == "step, train, val\n1, 0.5, 0.4\n"


def test_log_dict_nan_leaves_out_only_that_graphs_row(
    writer: MetricsWriter, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer.log_dict({"loss/train": float("nan"), "lr": 0.1}, step=1)
    assert read(folder / "loss.log") == "step, train\n"
    assert read(folder / "lr.log") == "step, lr\n1, 0.1\n"
    assert len(warnings_of(caplog)) == 1


def test_log_dict_graph_logged_with_another_x_axis_raises(writer: MetricsWriter) -> None:
    writer.log("acc", 1, {"acc": 0.5}, x_axis="epoch")
    with pytest.raises(MetricsError, match="log_dict\\(\\) always logs against 'step'"):
        writer.log_dict({"acc": 0.6}, step=2)


@pytest.mark.parametrize(
    ("metrics", "error"),
    [
        ({"/loss": 1}, "metric key '/loss' needs a name on both sides of the '/'"),
        ({"loss/": 1}, "metric key 'loss/' needs a name on both sides of the '/'"),
        ({3: 1}, "metric key 3 is not a string"),
        ({"a,b": 1}, "graph name 'a,b' contains a comma"),
        ({"loss/a,b": 1}, "series name 'a,b' contains a comma"),
        ({".x/y": 1}, "graph name '.x' starts with '.'"),
        ({"loss/train": "high"}, "graph 'loss', series 'train': 'high' is text, not a number"),
    ],
)
def test_log_dict_rejected_keys_and_values(
    writer: MetricsWriter, folder: Path, metrics: dict[object, object], error: str
) -> None:
    with pytest.raises(MetricsError) as info:
        writer.log_dict(metrics, step=1)  # type: ignore[arg-type]
    assert error in str(info.value)


# -- resume ------------------------------------------------------------------------------


def test_resume_with_the_same_header_appends(folder: Path) -> None:
    with MetricsWriter(folder) as first:
        first.log("loss", 1, {"train": 0.5, "val": 0.25})
        first.log("loss", 2, {"train": 0.4, "val": 0.2})
    with MetricsWriter(folder) as second:
        second.log("loss", 3, {"val": 0.1, "train": 0.3})  # other order: the file's wins
    assert read(folder / "loss.log") == (
        "step, train, val\n1, 0.5, 0.25\n2, 0.4, 0.2\n3, 0.3, 0.1\n"
    )


def test_resume_with_another_header_raises_naming_the_file_and_both_headers(
    folder: Path,
) -> None:
    with MetricsWriter(folder) as first:
        first.log("loss", 1, {"train": 0.5})
    before = read(folder / "loss.log")
    with MetricsWriter(folder) as second:
        with pytest.raises(MetricsError) as info:
            second.log("loss", 2, {"train": 0.5, "val": 0.1})
        text = str(info.value)
        assert f"{folder / 'loss.log'} already exists with the header 'step, train'" in text
        assert "graph 'loss' is now logged as 'step, train, val'" in text
        assert "log these series under a new graph name, or move the old file away" in text
        with pytest.raises(MetricsError, match="already exists with the header"):
            second.log("loss", 3, {"train": 0.5, "val": 0.1})  # not cached as good
        with pytest.raises(MetricsError, match="header 'step, train'"):
            second.log("loss", 3, {"train": 0.5}, x_axis="epoch")
    assert read(folder / "loss.log") == before


def test_resume_leaves_out_rows_up_to_the_files_last_x_with_one_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with MetricsWriter(folder) as first:
        for step in range(1, 6):
            first.log("loss", step * 100, {"v": step})
    with MetricsWriter(folder) as second:  # resumed from the checkpoint at step 300
        for step in range(3, 8):
            second.log("loss", step * 100, {"v": -step})
    assert read(folder / "loss.log") == (
        "step, v\n100, 1\n200, 2\n300, 3\n400, 4\n500, 5\n600, -6\n700, -7\n"
    )
    said = warnings_of(caplog)
    assert len(said) == 1
    assert "already has rows up to step 500" in said[0]
    assert check_metrics_dir(folder) == []


def test_resume_ends_a_file_lacking_its_last_line_break(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder.mkdir(parents=True)
    (folder / "loss.log").write_bytes(b"step, v\n1, 0.5")  # hand-written, no final newline
    with MetricsWriter(folder) as w:
        w.log("loss", 2, {"v": 0.25})
    assert read(folder / "loss.log") == "step, v\n1, 0.5\n2, 0.25\n"
    assert "did not end with a line break" in warnings_of(caplog)[0]


def test_resume_of_an_empty_file_writes_the_header(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "loss.log").touch()
    with MetricsWriter(folder) as w:
        w.log("loss", 1, {"v": 0.5})
    assert read(folder / "loss.log") == "step, v\n1, 0.5\n"


def test_resume_accepts_a_hand_written_header_without_spaces(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "loss.log").write_bytes(b"step,v\n1,0.5\n")
    with MetricsWriter(folder) as w:
        w.log("loss", 2, {"v": 0.25})
    assert read(folder / "loss.log") == "step,v\n1,0.5\n2, 0.25\n"


# -- trouble on the disk -----------------------------------------------------------------


def test_a_metrics_folder_that_cannot_be_created_warns_once_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "save").write_text("a file where the folder should be")
    w = MetricsWriter(tmp_path / "save" / "metrics")
    for step in range(5):
        w.log("loss", step, {"v": 0.5})
        w.log_dict({"acc/top1": 0.5, "lr": 0.1}, step)
    w.close()
    said = warnings_of(caplog)
    assert len(said) == 1
    assert f"cannot create the metrics folder {tmp_path / 'save' / 'metrics'}" in said[0]
    assert "training goes on" in said[0]
    with pytest.raises(MetricsError):  # programmer errors are still raised
        MetricsWriter(tmp_path / "save" / "metrics").log("a/b", 1, {"v": 1})


def test_a_full_disk_on_the_first_row_warns_once_and_stops_only_that_graph(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder.mkdir(parents=True)
    (folder / "loss.log").symlink_to("/dev/full")
    with MetricsWriter(folder) as w:
        for step in range(3):
            w.log("loss", step, {"v": 0.5})
            w.log("acc", step, {"v": 0.5})
        with pytest.raises(MetricsError, match="this row lacks 'v'"):
            w.log("loss", 4, {"other": 1})  # the graph's series are still checked
    said = warnings_of(caplog)
    assert len(said) == 1
    assert f"cannot write the training graph {folder / 'loss.log'}" in said[0]
    assert "No space left on device" in said[0]
    assert "this graph stops here, training goes on" in said[0]
    assert read(folder / "acc.log") == "step, v\n0, 0.5\n1, 0.5\n2, 0.5\n"


def test_a_full_disk_while_writing_rows_warns_once(
    writer: MetricsWriter, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer.log("loss", 0, {"v": 0.5})
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, writer._graphs["loss"].fd)  # the open file now writes to a full disk
    finally:
        os.close(full)
    for step in range(1, 5):
        writer.log("loss", step, {"v": 0.5})
    said = warnings_of(caplog)
    assert len(said) == 1
    assert "No space left on device" in said[0]


def test_a_file_size_limit_mid_row_leaves_only_complete_lines(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    code = textwrap.dedent(
        """
        import resource, signal, sys
        from pathlib import Path
        from trainwire._sdk._metrics import MetricsWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        w = MetricsWriter(Path(sys.argv[1]))
        for step in range(500):
            w.log("loss", step, {"train": 1 / (step + 1), "val": 0.5})
        w.close()
        print("training went on")
        """
    )
    result = run_python(code, str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "training went on\n"
    assert result.stderr.count("trainwire:") == 1
    assert "cannot write the training graph" in result.stderr
    assert "only part of a row fit (disk full or file size limit); the part was removed" in (
        result.stderr
    )
    data = (folder / "loss.log").read_bytes()
    assert 900 < len(data) <= 1000
    assert data.endswith(b"\n")
    assert check_metrics_dir(folder) == []


# -- processes and threads -----------------------------------------------------------------

# The row contract (docs/metrics.md, "Reading the files while a job runs"): a row is
# complete only once its line break is in the file. Each row reaches the file in one
# append, but Linux makes an append that crosses a page boundary visible in parts, so a
# reader can meet the first part of a row at the end of the file.

CONTRACT_READER = textwrap.dedent(
    """
    import json, os, sys, time
    path, total = sys.argv[1], int(sys.argv[2])
    fd = os.open(path, os.O_RDONLY)
    print("ready", flush=True)
    expected = ["step, train, val"] + [
        f"{i}, {i * 0.5!r}, {1 / (i + 1)!r}" for i in range(total)
    ]
    size = 1 << 16
    seen, pending, reads, cut, bad = 0, b"", 0, 0, []
    deadline = time.monotonic() + 60
    while seen < len(expected) and time.monotonic() < deadline:
        chunk = os.read(fd, size)
        if not chunk:
            continue
        reads += 1
        complete, nl, pending = (pending + chunk).rpartition(b"\\n")
        if pending and len(chunk) < size:
            cut += 1  # the file, as visible now, ended inside a row
        if not nl:
            continue
        for line in complete.split(b"\\n"):
            text = line.decode("utf-8")
            if seen >= len(expected) or text != expected[seen]:
                bad.append((seen, text))
            seen += 1
    print(json.dumps({"seen": seen, "reads": reads, "cut": cut, "bad": bad[:5],
                      "pending": pending.decode("utf-8", "replace")}))
    """
)


def test_a_reader_taking_only_rows_ended_by_a_line_break_sees_100000_appends_whole(
    folder: Path,
) -> None:
    total = 100_000
    w = MetricsWriter(folder)
    w.log("loss", 0, {"train": 0.0, "val": 1.0})
    reader = subprocess.Popen(
        [sys.executable, "-c", CONTRACT_READER, str(folder / "loss.log"), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "ready\n"
        for i in range(1, total):
            w.log("loss", i, {"train": i * 0.5, "val": 1 / (i + 1)})
        w.close()
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    result = json.loads(out)
    assert result["bad"] == [], result  # every complete row is exactly a row written
    assert result["seen"] == total + 1, result
    assert result["pending"] == "", result  # the writer ends every row with its line break
    assert result["reads"] >= 2, result  # it really read while the rows were being written


NAIVE_READER = textwrap.dedent(
    """
    import json, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print("ready", flush=True)
    size = 1 << 20
    rows, pending = 0, b""
    deadline = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        chunk = os.read(fd, size)
        if not chunk:
            continue
        complete, nl, pending = (pending + chunk).rpartition(b"\\n")
        rows += (complete.count(b"\\n") + 1) if nl else 0
        if pending and len(chunk) < size:  # the end of the file as it is now: mid-row
            break
    print(json.dumps({"rows": rows, "last_line": pending.decode("utf-8", "replace")}))
    """
)


def test_a_reader_can_see_the_first_part_of_a_row_being_appended(folder: Path) -> None:
    # Why readers must follow the contract: one that takes the last line it reads for a
    # row does, sooner or later, take a row cut in two (rows of ~4 KB make it frequent).
    series = {f"s{i}": 0.0 for i in range(200)}
    w = MetricsWriter(folder)
    w.log("wide", 0, series)
    path = folder / "wide.log"
    reader = subprocess.Popen(
        [sys.executable, "-c", NAIVE_READER, str(path), "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "ready\n"
        step = 0
        while reader.poll() is None and step < 20_000:
            step += 1
            w.log("wide", step, {name: 1 / (step + i + 1) for i, name in enumerate(series)})
        w.close()
        out, _ = reader.communicate(timeout=60)
    finally:
        reader.kill()
    seen = json.loads(out)
    cut = seen["last_line"]
    assert cut, f"no read ended inside a row in {step} appends of {path.stat().st_size} bytes"
    whole = path.read_text(encoding="utf-8").splitlines()[seen["rows"]]
    assert whole.startswith(cut) and len(cut) < len(whole)  # the first part of a real row
    assert check_metrics_dir(folder) == []


def test_a_forked_child_writes_nothing(writer: MetricsWriter, folder: Path) -> None:
    writer.log("loss", 1, {"v": 1})
    pid = os.fork()
    if pid == 0:  # the child: a data-loader worker, say
        code = 1
        try:
            writer.log("loss", 2, {"v": 2})
            writer.log("child", 1, {"v": 2})
            writer.log_dict({"other": 1}, 1)
            writer.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.log("loss", 3, {"v": 3})
    assert read(folder / "loss.log") == "step, v\n1, 1\n3, 3\n"
    assert sorted(os.listdir(folder)) == ["loss.log"]


def test_disable_stops_writing_for_good(writer: MetricsWriter, folder: Path) -> None:
    writer.log("loss", 1, {"v": 1})
    writer.disable()
    writer.log("loss", 2, {"v": 2})
    writer.log_dict({"lr": 0.1}, 2)
    writer.close()
    assert read(folder / "loss.log") == "step, v\n1, 1\n"
    assert sorted(os.listdir(folder)) == ["loss.log"]


def test_rows_logged_after_close_are_not_written_with_one_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = MetricsWriter(folder)
    w.log("loss", 1, {"v": 1})
    w.close()
    w.log("loss", 2, {"v": 2})
    w.log_dict({"loss/v": 3}, 3)
    w.close()
    assert read(folder / "loss.log") == "step, v\n1, 1\n"
    said = warnings_of(caplog)
    assert len(said) == 1 and "after the run ended are not written" in said[0]


def test_threads_logging_at_once_write_only_whole_rows(writer: MetricsWriter, folder: Path) -> None:
    def work(n: int) -> None:
        for i in range(2000):
            writer.log("shared", 0, {"thread": n, "i": i})
            writer.log(f"own{n}", i, {"v": i * 0.5})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = read(folder / "shared.log").splitlines()
    assert lines[0] == "step, thread, i"
    assert len(lines) == 1 + 4 * 2000
    assert sorted(lines[1:]) == sorted(f"0, {n}, {i}" for n in range(4) for i in range(2000))
    assert check_metrics_dir(folder) == []
