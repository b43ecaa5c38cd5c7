"""The benchmark script runs end to end in its quick mode and produces every figure.

No timing is asserted here (the machines are shared and noisy): only that each figure
was measured, with numbers on both sides, and that the docs were left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.run import FIGURES  # noqa: E402

#: Figures that may legitimately be absent in a quick run, and the word that says why.
SKIPPED_WHEN_QUICK = {"instructions": "--quick", "instructions.import": "--quick"}


def test_quick_benchmark_run_produces_every_figure_without_touching_the_docs(tmp_path):
    doc = REPO / "docs" / "benchmarks.md"
    doc_before = doc.read_bytes() if doc.exists() else None
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-write", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["failed"] == []
    figures = {f["key"]: f for f in report["figures"]}
    expected = {key for keys in FIGURES.values() for key in keys}
    assert set(figures) == expected
    for key, figure in figures.items():
        if key in SKIPPED_WHEN_QUICK:
            assert SKIPPED_WHEN_QUICK[key] in figure["note"], figure
            continue
        assert figure["available"], figure
        assert isinstance(figure["trainwire"], (int, float)), figure
        assert isinstance(figure["baseline"], (int, float)), figure
        assert figure["title"] in proc.stdout  # the table printed every row
    for figure in figures.values():  # every figure with a goal says whether it met it
        if figure["goal"] and figure["available"]:
            assert figure["met"] in (True, False), figure
    assert report["machine"]["RabbitMQ"] != "not started"
    assert (doc.read_bytes() if doc.exists() else None) == doc_before


def test_benchmark_script_runs_as_a_file_and_rejects_an_unknown_module():
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--only", "no_such_figure", "--no-write"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no_such_figure" in proc.stderr and "hot_path" in proc.stderr
