"""`trainwire demo`: the main job, with no broker, and against a real one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from trainwire._spec._protocol import Status, validate


def trainwire_cmd():
    exe = shutil.which("trainwire")
    return [exe] if exe else [sys.executable, "-m", "trainwire"]


def test_demo_runs_offline_and_shows_what_the_platform_would_receive():
    out = subprocess.run(
        [*trainwire_cmd(), "demo", "--seconds", "1", "--steps", "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "offline" in out.stdout
    assert "[##############################] 100%  step 20/20" in out.stdout
    assert "x training_ing, steps 1 -> 20" in out.stdout
    terminal = re.search(r"then the terminal message:\n\s+(\{.*\})", out.stdout)
    assert terminal, out.stdout
    assert json.loads(terminal.group(1))["status"] == Status.DONE.value
    assert "loss.log: header 'step, train, val', 20 rows" in out.stdout
    assert "accuracy.log: header 'epoch, top1', 10 rows" in out.stdout


def test_demo_fail_at_ends_with_training_error_and_exit_1():
    out = subprocess.run(
        [
            *trainwire_cmd(),
            "demo",
            "--seconds",
            "0.5",
            "--steps",
            "10",
            "--fail-at",
            "4",
            "--language",
            "en",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    terminal = re.search(r"then the terminal message:\n\s+(\{.*\})", out.stdout)
    body = json.loads(terminal.group(1))
    assert body["status"] == Status.ERROR.value
    assert body["message"] == "The demo training failed on purpose."


def test_demo_with_a_config_reports_to_the_broker(broker, queue, make_config):
    out = subprocess.run(
        [
            *trainwire_cmd(),
            "demo",
            "--config",
            str(make_config()),
            "--seconds",
            "0.5",
            "--steps",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    msgs = broker.wait_for(
        queue, lambda ms: any(m["body"].get("status") == Status.DONE.value for m in ms), 20
    )
    statuses = [validate(m["body"]).status for m in msgs]
    assert statuses[-1] is Status.DONE and statuses.count(Status.DONE) == 1
    assert msgs[-2]["body"]["step"] == 10


def test_demo_with_a_broken_config_says_what_is_wrong(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"model_id": "m"}')
    out = subprocess.run(
        [*trainwire_cmd(), "demo", "--config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "'project_key' is missing" in out.stderr
