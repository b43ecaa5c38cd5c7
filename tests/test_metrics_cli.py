"""``trainwire metrics check|show``: run as real subprocesses on fixture folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainwire._sdk._metrics import MetricsWriter
from trainwire._tools._metrics_check import (
    check_metrics_dir,
    scan_metrics_dir,
    summarize_metrics_dir,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")
FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
CALL_GROUP = (
    "import sys; from trainwire._cli._metrics_cmd import metrics; "
    "metrics(prog_name='trainwire metrics')"
)


def trainwire_metrics(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``trainwire metrics ARGS`` in a fresh interpreter (the group itself, so the test
    does not depend on the console script being installed)."""
    return subprocess.run(
        [sys.executable, "-c", CALL_GROUP, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONPATH": SRC, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
        check=False,
    )


# -- check -------------------------------------------------------------------------------


def test_check_on_a_good_folder_exits_0_and_says_each_file_is_ok() -> None:
    result = trainwire_metrics("check", FIXTURES / "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "accuracy.log: ok",
        "handwritten.log: ok",
        "loss.log: ok",
        "lr.log: ok",
        "손실.log: ok",
        "5 files checked, all ok",
    ]


BROKEN = [
    (
        "no_header",
        1,
        "'1, 0.2, 0.2' looks like data: the first line must hold the field names",
    ),
    ("empty_file", None, "is empty: the first line must hold the field names"),
    ("header_without_series", 1, "the header 'step' names only the x axis"),
    ("duplicate_field", 1, "the header names 'loss' more than once"),
    ("not_a_number", 3, "'val' is 'abc', not a number"),
    ("not_finite", 3, "'train' is 'nan': NaN and infinity cannot be drawn"),
    ("cell_count", 3, "has 2 cells, but the header has 3 (step, train, val)"),
    ("x_backwards", 4, "the x axis (step) goes backwards: 1 after 2 on line 3"),
    ("empty_line", 3, "is empty: every line after the header must be a row"),
    ("not_utf8", 1, "is not UTF-8 text"),
]


@pytest.mark.parametrize(("fixture", "line", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_check_on_a_broken_folder_names_file_line_and_problem_and_exits_1(
    fixture: str, line: int | None, message: str
) -> None:
    result = trainwire_metrics("check", FIXTURES / fixture)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("loss.log: ")
    where = "file" if line is None else f"line {line}"
    assert any(text.startswith(f"  {where}: ") and message in text for text in lines), lines
    assert lines[-1] == "problems in 1 of 1 file"


def test_check_lists_every_problem_of_a_file() -> None:
    problems = check_metrics_dir(FIXTURES / "not_a_number")
    assert [(p.line, p.message) for p in problems] == [
        (3, "'val' is 'abc', not a number"),
        (4, "'train' is '1_000', not a number"),
        (5, "'train' is '0x1f', not a number"),
        (5, "'val' is empty: every cell needs a number"),
    ]
    cells = check_metrics_dir(FIXTURES / "not_finite")
    assert [(p.line, p.message.split(":")[0]) for p in cells] == [
        (3, "'train' is 'nan'"),
        (4, "'val' is 'inf'"),
        (5, "'train' is '1e999', too large to be a finite number"),
    ]


def test_check_json_lists_problems_with_file_and_line() -> None:
    result = trainwire_metrics("check", "--json", FIXTURES / "cell_count")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["files"] == ["loss.log"]
    assert [(p["file"], p["line"]) for p in data["problems"]] == [
        ("loss.log", 3),
        ("loss.log", 4),
    ]
    good = trainwire_metrics("check", "--json", FIXTURES / "good")
    assert good.returncode == 0
    assert json.loads(good.stdout)["ok"] is True


def test_check_reports_each_file_of_a_mixed_folder(tmp_path: Path) -> None:
    for name in ("good", "x_backwards"):
        for source in (FIXTURES / name).iterdir():
            (tmp_path / f"{name}-{source.name}").write_bytes(source.read_bytes())
    result = trainwire_metrics("check", tmp_path)
    assert result.returncode == 1
    assert "good-loss.log: ok" in result.stdout
    assert "x_backwards-loss.log: 1 problem" in result.stdout
    assert result.stdout.splitlines()[-1] == "problems in 1 of 6 files"


def test_check_on_an_empty_folder_says_so_and_exits_0() -> None:
    result = trainwire_metrics("check", FIXTURES / "empty_folder")
    assert result.returncode == 0
    assert "no graph files" in result.stdout


def test_check_on_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = trainwire_metrics("check", tmp_path / "nope")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_files_written_by_the_writer_pass_check(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    with MetricsWriter(folder) as w:
        for step in range(1, 51):
            w.log("loss", step, {"train": 1 / step, "val": 1.5 / step})
            w.log_dict({"lr": 1e-3 * 0.9**step, "손실/학습": step * 0.25}, step)
            if step % 10 == 0:
                w.log("accuracy", step // 10, {"top1": step / 60}, x_axis="epoch")
    result = trainwire_metrics("check", folder)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "4 files checked, all ok"


# -- a row being written ------------------------------------------------------------------
#
# A row is complete only once its line break is in the file: a reader can meet the first
# part of a row being appended (tests/test_metrics.py shows it happen). Check and show
# take a last line without its line break as such a row: not read, not a problem.

BEING_WRITTEN = (
    "  note: line 3: no line break yet: a row being written, read once its line break is "
    "there (a finished file must end with one)"
)


def test_check_takes_a_last_line_without_its_line_break_as_a_row_being_written() -> None:
    result = trainwire_metrics("check", FIXTURES / "no_final_newline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["loss.log: ok", BEING_WRITTEN, "1 file checked, all ok"]
    data = json.loads(trainwire_metrics("check", "--json", FIXTURES / "no_final_newline").stdout)
    assert data["ok"] is True and data["problems"] == []
    assert data["being_written"] == [{"file": "loss.log", "line": 3}]


def cut_inside_the_last_row(folder: Path) -> tuple[Path, bytes]:
    """A file by the writer, as a reader sees it while its 4th row is being appended:
    the row cut inside its last cell, so that the cut part still reads as numbers."""
    with MetricsWriter(folder) as w:
        for step, train in enumerate((0.5, 0.25, 0.125, 0.0625), 1):
            w.log("loss", step, {"train": train, "val": 1 / 3 + step})
    path = folder / "loss.log"
    data = path.read_bytes()
    assert data.endswith(b"4, 0.0625, 4.333333333333333\n")
    cut = data[: -len(b"333333333\n")]
    path.write_bytes(cut)
    return path, cut


def test_show_and_check_do_not_read_a_row_being_written(tmp_path: Path) -> None:
    path, cut = cut_inside_the_last_row(tmp_path)
    [summary] = summarize_metrics_dir(tmp_path)
    assert (summary.rows, summary.last_x, summary.problems) == (3, 3, 0)
    assert summary.last == {"train": 0.125, "val": 1 / 3 + 3}
    assert summary.min["train"] == 0.125 and summary.partial_line == 5
    assert check_metrics_dir(tmp_path) == []
    shown = trainwire_metrics("show", tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "loss  (loss.log: 3 rows, step 1 .. 3)" in shown.stdout
    assert BEING_WRITTEN.replace("line 3", "line 5") in shown.stdout.splitlines()
    data = json.loads(trainwire_metrics("show", "--json", tmp_path).stdout)
    assert data["graphs"][0]["partial_line"] == 5 and data["graphs"][0]["rows"] == 3
    assert path.read_bytes() == cut  # reading never touches the file


def test_the_row_is_read_once_its_line_break_is_there(tmp_path: Path) -> None:
    path, cut = cut_inside_the_last_row(tmp_path)
    path.write_bytes(cut + b"333333333\n")
    [summary] = summarize_metrics_dir(tmp_path)
    assert (summary.rows, summary.last_x, summary.partial_line) == (4, 4, None)
    assert summary.last == {"train": 0.0625, "val": 1 / 3 + 4}


def test_a_file_holding_only_part_of_its_header_is_being_written_not_empty(
    tmp_path: Path,
) -> None:
    (tmp_path / "loss.log").write_bytes(b"step, tra")
    [scan] = scan_metrics_dir(tmp_path)
    assert scan.problems == [] and scan.summary.partial_line == 1
    assert (scan.summary.rows, scan.summary.series) == (0, ())
    (tmp_path / "empty.log").write_bytes(b"")
    assert [(p.file, p.line) for p in check_metrics_dir(tmp_path)] == [("empty.log", None)]


# -- show --------------------------------------------------------------------------------


def test_show_summarises_every_graph() -> None:
    result = trainwire_metrics("show", FIXTURES / "good")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loss  (loss.log: 3 rows, step 1 .. 3)" in out
    assert "  train  last        0.4  min        0.2  max        0.4" in out
    assert "  val    last    0.43643  min        0.2  max    0.43643" in out
    assert "accuracy  (accuracy.log: 2 rows, epoch 1 .. 2)" in out
    assert "lr  (lr.log: 3 rows, step 0 .. 200)" in out
    assert "  lr  last    1.5e-06  min    1.5e-06  max      0.001" in out
    assert "손실  (손실.log: 3 rows, 단계 1 .. 2)" in out


def test_show_json_has_series_rows_last_min_max() -> None:
    result = trainwire_metrics("show", "--json", FIXTURES / "good")
    assert result.returncode == 0
    graphs = {g["graph"]: g for g in json.loads(result.stdout)["graphs"]}
    assert sorted(graphs) == ["accuracy", "handwritten", "loss", "lr", "손실"]
    loss = graphs["loss"]
    assert loss["series"] == ["train", "val"]
    assert loss["rows"] == 3
    assert (loss["first_x"], loss["last_x"]) == (1, 3)
    assert loss["last"] == {"train": 0.4, "val": 0.43643}
    assert loss["min"] == {"train": 0.2, "val": 0.2}
    assert loss["max"] == {"train": 0.4, "val": 0.43643}
    assert loss["problems"] == 0
    assert graphs["손실"]["x_axis"] == "단계"


def test_show_counts_only_good_rows_and_points_to_check() -> None:
    result = trainwire_metrics("show", FIXTURES / "x_backwards")
    assert result.returncode == 0
    assert "loss  (loss.log: 3 rows, step 1 .. 3)" in result.stdout
    assert "! 1 problem: run `trainwire metrics check` on this folder" in result.stdout
    [summary] = summarize_metrics_dir(FIXTURES / "x_backwards")
    assert summary.rows == 3 and summary.problems == 1


def test_show_on_an_empty_folder_says_so() -> None:
    result = trainwire_metrics("show", FIXTURES / "empty_folder")
    assert result.returncode == 0
    assert "no graph files" in result.stdout


# -- help ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], "Check or summarise a folder of training graphs."),
        (["check", "--help"], "Validate every graph file in DIR"),
        (["show", "--help"], "Summarise every graph in DIR"),
        (["check", "-h"], "Exit status: 0 all good, 1 something is wrong"),
    ],
)
def test_help(args: list[str], expected: str) -> None:
    result = trainwire_metrics(*args)
    assert result.returncode == 0
    assert expected in result.stdout
    assert "--json" in result.stdout or args == ["--help"]


def test_the_trainwire_command_finds_the_metrics_group() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainwire._cli import main; main(prog_name='trainwire')",
            "metrics",
            "check",
            str(FIXTURES / "good"),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONPATH": SRC, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "5 files checked, all ok"
