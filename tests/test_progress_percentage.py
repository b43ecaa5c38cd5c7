"""``progress(step)`` hands the I/O thread a bare int (the hot path allocates nothing) and
the outbox computes the percentage: the messages must be exactly what they were when the
training thread computed it. Real runs, real offline files."""

from __future__ import annotations

import json

import pytest

import trainwire
from trainwire._spec._protocol import Status
from trainwire._spec._spool import OFFLINE_FILE


def _progress_bodies(tmp_path, monkeypatch, total_steps, calls):
    monkeypatch.setenv("TRAINWIRE_MODE", "offline")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "queue_name": "q",
                "project_key": "pk",
                "model_id": "m",
                "model_write_path": str(tmp_path / "models"),
            }
        )
    )
    with trainwire.init(config, total_steps=total_steps, max_rate=None) as run:
        for args in calls:
            run.progress(*args)
    lines = (tmp_path / "models" / "save" / OFFLINE_FILE).read_text().splitlines()
    bodies = [json.loads(line)["body"] for line in lines]
    return [(b["step"], b["percentage"]) for b in bodies if b["status"] == Status.PROGRESS.value]


def test_percentage_is_step_over_total_steps_rounded_and_clamped(tmp_path, monkeypatch):
    got = _progress_bodies(tmp_path, monkeypatch, 3, [(0,), (1,), (2,), (3,), (7,)])
    assert got == [(0, 0.0), (1, 33.3333), (2, 66.6667), (3, 100.0), (7, 100.0)]
    assert all(type(p) is float for _, p in got)


def test_an_explicit_percentage_still_wins_and_is_clamped(tmp_path, monkeypatch):
    got = _progress_bodies(tmp_path, monkeypatch, 10, [(1,), (2, 12.5), (3, 250), (4, -1.0), (5,)])
    assert got == [(1, 10.0), (2, 12.5), (3, 100.0), (4, 0.0), (5, 50.0)]


def test_progress_without_total_steps_or_percentage_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="total_steps"):
        _progress_bodies(tmp_path, monkeypatch, None, [(1,)])
