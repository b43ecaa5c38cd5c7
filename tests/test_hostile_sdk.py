"""Hostile text and numbers on the SDK side (issue 12): whatever a program or the system
puts in an error, exactly one terminal message reaches the queue, the spool or the offline
file, readable and accepted by the receiver; numbers the platform cannot store are refused
at the call. Real training processes, the real broker."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _cli_helpers import env
from _faults import ERROR, check_run
from trainwire._spec._protocol import MAX_MESSAGE_CHARS, decode, validate
from trainwire._spec._spool import OFFLINE_FILE, SPOOL_FILE, Spool

#: A dataset file whose name is not UTF-8, as ``os.listdir`` of a real folder gives it.
BAD_NAME = r'os.fsdecode(b"/nonexistent-data/img-\xff.jpg")'
SHOWN = "img-\\xff.jpg"  # how the platform's user sees that name


def _train(tmp_path: Path, config: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a training script (``trainwire`` and ``os`` imported) to its end."""
    script = tmp_path / "train.py"
    script.write_text("import os, sys\nimport trainwire\n" + textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(TRAINWIRE_CONFIG=str(config)),
        stdin=subprocess.DEVNULL,
    )


def _one_error(broker, queue, result) -> str:
    """The message of the one terminal in ``queue`` (the process has ended: all is there)."""
    context = f"\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "UnicodeEncodeError" not in result.stderr, context
    check = check_run(broker.drain(queue), ERROR, context=context)
    return str(check.bodies[-1]["message"])


@pytest.mark.parametrize("how", ["with", "uncaught"])
def test_a_file_name_that_is_not_utf8_still_sends_training_error(
    broker, queue, make_config, tmp_path, how
):
    opening = f"open({BAD_NAME})"
    body = {
        "with": "with trainwire.init(total_steps=10) as run:\n"
        f"    run.progress(1)\n    {opening}\n",
        "uncaught": f"run = trainwire.init(total_steps=10)\nrun.progress(1)\n{opening}\n",
    }[how]
    result = _train(tmp_path, make_config(), body)
    assert result.returncode == 1 and "FileNotFoundError" in result.stderr, result.stderr
    assert SHOWN in _one_error(broker, queue, result)


def test_fail_with_surrogates_and_control_characters_sends_them_cleaned(
    broker, queue, make_config, tmp_path
):
    result = _train(tmp_path, make_config(), """
        run = trainwire.init(total_steps=10)
        run.fail("x\\udcff \\ud800 \\x00\\x1b[31mred")  # must not raise
        print("returned", run.status)
    """)  # fmt: skip
    assert result.returncode == 0 and "returned training_error" in result.stdout, result.stderr
    assert _one_error(broker, queue, result) == "x\\xff \ufffd [31mred"


def test_a_log_sized_error_text_is_cut_to_a_sentence(broker, queue, make_config, tmp_path):
    result = _train(tmp_path, make_config(), """
        run = trainwire.init(total_steps=10)
        run.fail("stack frame line\\n" * 100_000)
    """)  # fmt: skip
    message = _one_error(broker, queue, result)
    assert len(message) == MAX_MESSAGE_CHARS and message.endswith("…")


def test_an_unconfirmed_error_with_a_bad_file_name_is_kept_in_the_spool(
    broker, queue, make_config, tmp_path
):
    config = make_config(queue_name="tw-no-such-queue")  # the broker returns every message
    result = _train(tmp_path, config, f"""
        run = trainwire.init(total_steps=10, flush_timeout=3)
        run.progress(1)
        open({BAD_NAME})
    """)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "UnicodeEncodeError" not in result.stderr, result.stderr
    assert broker.drain(queue) == []
    spool = Spool(tmp_path / "models" / "save" / SPOOL_FILE)
    terminals = [r for r in spool.read() if r.terminal]
    assert len(terminals) == 1, spool.read()
    assert validate(terminals[0].body).status.value == ERROR
    assert SHOWN in terminals[0].body["message"]
    for path in (spool.path, Path(str(spool.path) + ".lock")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path  # it holds the project_key


def test_offline_mode_writes_one_readable_terminal_line_readable_by_the_owner_only(
    make_config, tmp_path
):
    config = make_config(message_host=None)
    result = _train(tmp_path, config, f"""
        run = trainwire.init(total_steps=10)
        run.progress(1)
        open({BAD_NAME})
    """)  # fmt: skip
    assert result.returncode == 1 and "UnicodeEncodeError" not in result.stderr, result.stderr
    path = tmp_path / "models" / "save" / OFFLINE_FILE
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    terminals = [ln["body"] for ln in lines if ln["body"]["status"] == ERROR]
    assert len(terminals) == 1 and SHOWN in terminals[0]["message"], lines
    raw = json.dumps(terminals[0], ensure_ascii=False).encode()
    assert validate(decode(raw)).message == terminals[0]["message"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("run.progress(2**63)", "ValueError"),
        ("run.progress(10**400)", "ValueError"),
        ("run.progress(5, percentage=10**400)", "ValueError"),
        ("run.progress(5, percentage=float('inf'))", "ValueError"),
    ],
)
def test_numbers_the_platform_cannot_store_raise_at_the_call_and_the_run_goes_on(
    broker, queue, make_config, tmp_path, call, error
):
    result = _train(tmp_path, make_config(), f"""
        run = trainwire.init(total_steps=10)
        try:
            {call}
        except Exception as exc:
            print("raised", type(exc).__name__, exc)
        run.progress(10)
        run.done()
        print("delivered", run.delivered)
    """)  # fmt: skip
    assert f"raised {error}" in result.stdout, result.stdout + result.stderr
    assert "delivered True" in result.stdout, result.stdout + result.stderr
    check = check_run(broker.drain(queue), "training_done", last_step=10)
    assert all(0 <= step <= 10 for step in check.steps)
