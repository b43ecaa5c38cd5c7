"""The benchmark script runs end to end in its quick mode and produces every figure.

No timing is asserted here (the machines are shared and noisy): only that each figure
was measured, with numbers on both sides, and that the docs were left alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import Figure, fmt  # noqa: E402
from benchmarks.run import FIGURES, render  # noqa: E402

from trainwire._broker._transport import EVERY_STEP_BACKLOG  # noqa: E402

#: Figures that may legitimately be absent in a quick run, and the word that says why.
SKIPPED_WHEN_QUICK = {
    "instructions": "--quick",
    "instructions.import": "--quick",
    "cluster.throughput": "--quick",
    "cluster.terminal": "--quick",
    "cluster.failover": "--quick",
}


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
    # memory: like with like, the baseline holds what the outbox holds, in the same bound
    assert "`deque(maxlen=1)`" in figures["memory.default"]["baseline_name"]
    bound = f"`deque(maxlen={EVERY_STEP_BACKLOG:_})`"
    assert bound in figures["memory.every_step"]["baseline_name"]


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


def test_the_analysis_quotes_this_runs_figures_and_cites_only_files_of_the_repository():
    figures = [
        Figure(
            key=key,
            title=f"figure {key}",
            unit="ms",
            trainwire=100 + n * 11.25,
            baseline=50 + n,
            baseline_name="a baseline",
            ratio=(100 + n * 11.25) / (50 + n),
        )
        for n, key in enumerate(key for keys in FIGURES.values() for key in keys)
    ]
    doc = render(figures, [("cpu", "test")], elapsed=1.0, quick=False)
    analysis = doc.split("## Analysis", 1)[1]
    for f in figures:  # every figure of the run, with its numbers as the table has them
        this_run = f"{f.title}: {fmt(f.trainwire, f.unit)} against {fmt(f.baseline, f.unit)}"
        assert this_run in analysis, f.key
    assert re.search(r"Recorded.*on 20\d\d-\d\d-\d\d, on the machine", analysis)
    cited = set(re.findall(r"\b((?:src|tests|benchmarks|docs|notes)/[\w./<>-]*\w)", analysis))
    assert cited, "the analysis names the files it speaks of"
    assert sorted(path for path in cited if not (REPO / path).exists()) == []
