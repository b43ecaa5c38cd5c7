"""``trainwire metrics``: check and summarise a folder of training-graph files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .._sdk._metrics import Number
from .._tools._metrics_check import GraphScan, GraphSummary, scan_metrics_dir

__all__ = ["metrics"]

_DIR = click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path)
_SHOWN_PER_FILE = 20


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


@click.group(name="metrics", context_settings={"help_option_names": ["-h", "--help"]})
def metrics() -> None:
    """Check or summarise a folder of training graphs.

    The platform draws one graph per file in <model_write_path>/save/metrics: the first
    line names the fields, the first column is the x axis, each later column one line
    of the graph, cells separated by ', '. See docs/metrics.md.
    """


@metrics.command(name="check")
@click.argument("directory", metavar="DIR", type=_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check(ctx: click.Context, directory: Path, as_json: bool) -> None:
    """Validate every graph file in DIR against the platform's rules.

    Checks: a header line of field names, numeric cells, the same number of cells on
    every row, an x column that never goes backwards (and UTF-8 text, no empty lines).
    Prints what is wrong in each file and on which line. A last line without its line
    break is a row still being written: it is not read and not a problem (a note says so).

    Exit status: 0 all good, 1 something is wrong, 2 DIR is not a folder.
    """
    scans = scan_metrics_dir(directory)
    problems = [p for scan in scans for p in scan.problems]
    if as_json:
        click.echo(
            _json(
                {
                    "directory": str(directory),
                    "ok": not problems,
                    "files": [scan.summary.file for scan in scans],
                    "problems": [p.to_json() for p in problems],
                    "being_written": [
                        {"file": scan.summary.file, "line": scan.summary.partial_line}
                        for scan in scans
                        if scan.summary.partial_line is not None
                    ],
                }
            )
        )
    else:
        _print_check(directory, scans)
    ctx.exit(1 if problems else 0)


def _being_written(line: int) -> str:
    return (
        f"line {line}: no line break yet: a row being written, read once its line break "
        f"is there (a finished file must end with one)"
    )


def _print_check(directory: Path, scans: list[GraphScan]) -> None:
    if not scans:
        click.echo(f"{directory}: no graph files (the platform would draw no graphs)")
        return
    for scan in scans:
        name, found = scan.summary.file, scan.problems
        if found:
            click.echo(f"{name}: {len(found)} problem{'s' if len(found) != 1 else ''}")
        else:
            click.echo(f"{name}: ok")
        for problem in found[:_SHOWN_PER_FILE]:
            where = "file" if problem.line is None else f"line {problem.line}"
            click.echo(f"  {where}: {problem.message}")
        if len(found) > _SHOWN_PER_FILE:
            click.echo(f"  ... and {len(found) - _SHOWN_PER_FILE} more (--json lists all)")
        if scan.summary.partial_line is not None:
            click.echo(f"  note: {_being_written(scan.summary.partial_line)}")
    bad = sum(1 for scan in scans if scan.problems)
    files_text = f"{len(scans)} file{'s' if len(scans) != 1 else ''}"
    if bad:
        click.echo(f"problems in {bad} of {files_text}")
    else:
        click.echo(f"{files_text} checked, all ok")


@metrics.command(name="show")
@click.argument("directory", metavar="DIR", type=_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def show(directory: Path, as_json: bool) -> None:
    """Summarise every graph in DIR: series, rows, x range, last values, min and max.

    Rows with problems are not counted; `trainwire metrics check DIR` lists them. Nor is
    a last line without its line break: a row still being written.
    """
    summaries = [scan.summary for scan in scan_metrics_dir(directory)]
    if as_json:
        click.echo(_json({"directory": str(directory), "graphs": [s.to_json() for s in summaries]}))
        return
    if not summaries:
        click.echo(f"{directory}: no graph files")
        return
    for summary in summaries:
        _print_summary(summary)


def _num(value: Number | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def _print_summary(s: GraphSummary) -> None:
    rows = f"{s.rows} row{'s' if s.rows != 1 else ''}"
    span = f", {s.x_axis} {_num(s.first_x)} .. {_num(s.last_x)}" if s.rows else ""
    click.echo(f"{s.graph}  ({s.file}: {rows}{span})")
    width = max((len(name) for name in s.series), default=0)
    for name in s.series:
        click.echo(
            f"  {name:<{width}}  last {_num(s.last.get(name)):>10}"
            f"  min {_num(s.min.get(name)):>10}  max {_num(s.max.get(name)):>10}"
        )
    if s.partial_line is not None:
        click.echo(f"  note: {_being_written(s.partial_line)}")
    if s.problems:
        click.echo(
            f"  ! {s.problems} problem{'s' if s.problems != 1 else ''}: "
            f"run `trainwire metrics check` on this folder"
        )
