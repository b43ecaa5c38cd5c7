"""Helpers for the framework, track and distributed tests: what the queue got, the graphs."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainwire._spec._protocol import Status, validate

PROGRESS, DONE, ERROR = Status.PROGRESS.value, Status.DONE.value, Status.ERROR.value
TERMINAL = (DONE, ERROR)


def framework(name):
    """Import the framework ``name``: a developer without it skips its tests, CI (``CI``
    set, where .ci/run installs every framework) fails on it instead of going green."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


def messages(broker, queue, *, timeout=30.0):
    """Every body in ``queue``, after a terminal one arrived (or ``timeout``), then one more
    drain so that a second terminal message would be seen too."""
    msgs = broker.wait_for(
        queue, lambda ms: any(m["body"].get("status") in TERMINAL for m in ms), timeout
    )
    msgs += broker.drain(queue, timeout=2.0)
    return [m["body"] for m in msgs]


def runs(broker, queue, count, *, timeout=30.0):
    """The bodies in ``queue`` of ``count`` runs one after the other, once ``count``
    terminal messages arrived (or ``timeout``): a list per run, each ending with its
    terminal message."""
    msgs = broker.wait_for(
        queue, lambda ms: len(terminals([m["body"] for m in ms])) >= count, timeout
    )
    cuts, seq = [], [m["body"] for m in msgs]
    for i, body in enumerate(seq):
        if body.get("status") in TERMINAL:
            cuts.append(i + 1)
    assert len(cuts) == count, seq
    return [seq[begin:end] for begin, end in zip([0, *cuts], cuts)]


def progress(seq):
    """The ``training_ing`` bodies of ``seq``."""
    return [b for b in seq if b["status"] == PROGRESS]


def terminals(seq):
    """The ``training_done``/``training_error`` bodies of ``seq``."""
    return [b for b in seq if b["status"] in TERMINAL]


def assert_run(seq, terminal, *, complete=True):
    """Valid messages, strictly increasing steps, percentages never going down, exactly one
    terminal message and it is the last; ``complete``: progress reached 100 %."""
    for body in seq:
        validate(body)
    assert [b["status"] for b in terminals(seq)] == [terminal], seq
    assert seq[-1]["status"] == terminal, seq
    steps = [b["step"] for b in progress(seq)]
    assert steps, seq
    assert steps == sorted(set(steps)), steps
    percentages = [b["percentage"] for b in progress(seq)]
    assert percentages == sorted(percentages), percentages
    if complete:
        assert percentages[-1] == 100, percentages


def read_graph(model_dir: Path, name: str):
    """``(header, rows)`` of ``<model_dir>/save/metrics/<name>.log``; rows as float lists."""
    lines = (model_dir / "save" / "metrics" / f"{name}.log").read_text("utf-8").splitlines()
    header = lines[0].split(", ")
    rows = [[float(cell) for cell in line.split(", ")] for line in lines[1:]]
    for row in rows:
        assert len(row) == len(header), (header, row)
    return header, rows


def graph_names(model_dir: Path):
    """The graphs written under ``<model_dir>/save/metrics``."""
    folder = model_dir / "save" / "metrics"
    return sorted(p.stem for p in folder.glob("*.log")) if folder.is_dir() else []


def model_dir_of(config: Path) -> Path:
    """The ``model_write_path`` of a config written by ``make_config``."""
    return Path(json.loads(Path(config).read_text())["model_write_path"])


def run_python(code, config, *, env=None, timeout=180, args=(), cwd=None):
    """Run ``code`` in a fresh interpreter with ``TRAINWIRE_CONFIG=config``, in ``cwd``
    (default: the config's folder, a test's tmp_path)."""
    full_env = {
        **os.environ,
        "TRAINWIRE_CONFIG": str(config),
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "KERAS_BACKEND": "torch",
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or Path(config).parent),
    )


def python312():
    """A Python >= 3.12 with trainwire's dependencies (.ci/run installs one), where the
    process hooks know the status of ``sys.exit(n)``."""
    if sys.version_info >= (3, 12):
        return sys.executable
    found = sorted(Path("/root/.pyenv/versions").glob("3.1[2-9].*/bin/python"))
    found += [Path(p) for p in map(shutil.which, ("python3.13", "python3.12")) if p]
    assert found, "no Python >= 3.12 found: .ci/run installs one for the exit-status tests"
    return str(found[0])
