"""How a run ends, in the corners: signals inside calls, threads, offline, re-runs, no queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import trainwire
from trainwire._spec._spool import SPOOL_FILE, Spool, make_record

DONE, ERROR, PROGRESS = "training_done", "training_error", "training_ing"


def _script(code: str, config: Path, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "TRAINWIRE_CONFIG": str(config), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_line(proc: subprocess.Popen[str], expected: str, timeout: float = 30.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no {expected!r} from the child: {proc.communicate()[1]}")


def _statuses(broker, queue: str, *, timeout: float = 20.0) -> list[str]:
    msgs = broker.wait_for(
        queue, lambda ms: any(m["body"].get("status") in (DONE, ERROR) for m in ms), timeout
    )
    return [m["body"]["status"] for m in msgs]


_LOG_LOOP = """
import sys, trainwire
run = trainwire.init(total_steps=10**9, flush_timeout=10)
print("in-loop", flush=True)
step = 0
while True:
    step += 1
    run.progress(step)
    {call}
"""


@pytest.mark.parametrize(
    "call",
    [
        'run.log("loss", step, train=0.5, val=0.25)',
        'run.log_dict({"loss/train": 0.5, "acc": 0.9}, step)',
    ],
)
def test_sigterm_inside_log_ends_the_process_by_the_signal_with_one_error(
    broker, queue, make_config, call
):
    # Before: the handler's flush closed the graph writer whose lock log() held: a hang.
    for attempt in range(6):
        config = make_config(model_id=f"m-{attempt}")
        proc = _script(_LOG_LOOP.format(call=call), config)
        _wait_line(proc, "in-loop")
        time.sleep(0.05 * attempt)  # somewhere inside the loop's log() calls
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=12)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"hung after SIGTERM (attempt {attempt})") from None
        assert proc.returncode == -signal.SIGTERM, proc.communicate()[1]
        statuses = [s for s in _statuses(broker, queue) if s != PROGRESS]
        assert statuses == [ERROR]
        proc.communicate()


def test_init_in_a_worker_thread_sees_the_exit_status_and_warns_about_sigterm(
    broker, queue, make_config
):
    code = """
    import sys, threading, trainwire
    def train():
        run = trainwire.init(total_steps=10)
        run.progress(5)
    t = threading.Thread(target=train)
    t.start(); t.join()
    sys.exit(3)
    """
    proc = _script(code, make_config())
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert "not the main thread" in stderr and "SIGTERM" in stderr
    msgs = broker.wait_for(
        queue, lambda ms: any(m["body"].get("status") in (DONE, ERROR) for m in ms), 20
    )
    terminal = [m["body"] for m in msgs if m["body"]["status"] != PROGRESS]
    assert [b["status"] for b in terminal] == [ERROR]  # before: training_done


def test_offline_terminal_line_is_written_even_with_flush_timeout_zero(tmp_path):
    for attempt in range(20):
        model_dir = tmp_path / f"m{attempt}"
        config = tmp_path / f"c{attempt}.json"
        config.write_text(
            json.dumps({"project_key": "p", "model_id": "m", "model_write_path": str(model_dir)})
        )
        run = trainwire.init(config, total_steps=10, flush_timeout=0)
        run.progress(10)
        run.done()
        lines = (model_dir / "save" / "trainwire-offline.jsonl").read_text().splitlines()
        assert json.loads(lines[-1])["body"]["status"] == DONE, (attempt, lines)
        assert run.delivered is True


def test_offline_delivered_is_false_when_nothing_could_be_written(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the save folder should be")
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps({"project_key": "p", "model_id": "m", "model_write_path": str(blocked)})
    )
    run = trainwire.init(config, total_steps=10)
    run.progress(1)
    run.done()
    assert run.delivered is False


def test_disabled_run_says_nothing_was_delivered(tmp_path, monkeypatch):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"project_key": "p", "model_id": "m", "model_write_path": "."}))
    monkeypatch.setenv("TRAINWIRE_MODE", "disabled")
    run = trainwire.init(config, total_steps=10)
    run.done()
    assert run.delivered is None


def test_a_rerun_does_not_send_an_earlier_runs_kept_terminal_but_keeps_it_aside(
    broker, queue, make_config
):
    config = make_config()
    loaded = trainwire.load_config(config)
    spool = Spool(loaded.save_dir / SPOOL_FILE)
    old = {"cmd": "training_status", "project_key": "pk-test", "model_id": "model-1"}
    other = {**old, "model_id": "someone-else", "status": ERROR, "message": "x"}
    spool.append(
        [
            make_record("old-error", queue, {**old, "status": ERROR, "message": "old"}, True),
            make_record("other-job", queue, other, True),
        ]
    )
    with trainwire.init(config, total_steps=3) as run:
        for step in (1, 2, 3):
            run.progress(step)
    assert run.delivered is True
    msgs = broker.wait_for(queue, lambda ms: any(m["body"]["status"] == DONE for m in ms), 20)
    assert [m["properties"].message_id for m in msgs].count("old-error") == 0
    assert [m["body"]["status"] for m in msgs if m["body"]["status"] != PROGRESS] == [DONE]
    assert [r.message_id for r in spool.read()] == ["other-job"]  # other jobs stay for replay
    aside = Spool(loaded.save_dir / "trainwire-spool.superseded.jsonl").read()
    assert [r.message_id for r in aside] == ["old-error"]


def test_a_missing_queue_does_not_make_done_wait_for_the_whole_flush_timeout(broker, make_config):
    config = make_config(queue_name="no-such-queue-anywhere")
    run = trainwire.init(config, total_steps=10, flush_timeout=20)
    run.progress(3)
    started = time.monotonic()
    run.done()
    waited = time.monotonic() - started
    assert run.delivered is False
    assert waited < 10, f"done() waited {waited:.1f} s for a queue that does not exist"
    kept = Spool(run.config.save_dir / SPOOL_FILE).read()
    assert [r.body["status"] for r in kept if r.terminal] == [DONE]


def test_runs_open_at_exit_flush_together_not_one_after_another(tmp_path):
    # Two runs whose broker never answers: each may wait 3 s; together the exit takes ~3 s.
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never speaks AMQP
    port = silent.getsockname()[1]
    configs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        cfg = {
            "message_host": "127.0.0.1", "message_port": port, "message_id": "u",
            "message_pw": "p", "queue_name": "q", "project_key": "p", "model_id": name,
            "model_write_path": str(tmp_path / name),
        }  # fmt: skip
        path.write_text(json.dumps(cfg))
        configs.append(path)
    paths = [str(c) for c in configs]
    code = f"""
    import time, trainwire
    runs = [trainwire.init(c, total_steps=10, flush_timeout=3) for c in {paths!r}]
    for run in runs:
        run.progress(5)
    print("ending", flush=True)
    """
    proc = _script(code, configs[0])
    _wait_line(proc, "ending")
    started = time.monotonic()
    proc.wait(timeout=30)
    took = time.monotonic() - started
    silent.close()
    assert proc.returncode == 0, proc.communicate()[1]
    assert took < 5.5, f"exit took {took:.1f} s: the two flushes ran one after another"
    for name in ("a", "b"):
        kept = Spool(tmp_path / name / "save" / SPOOL_FILE).read()
        assert [r.body["status"] for r in kept if r.terminal] == [DONE]


@pytest.mark.parametrize("caught", [True, False])
def test_ctrl_c_the_program_lets_through_is_an_error_a_caught_one_ends_normally(
    broker, queue, make_config, caught
):
    code = """
    import time, trainwire
    run = trainwire.init(total_steps=100)
    try:
        print("training", flush=True)
        for step in range(1, 101):
            run.progress(step)
            time.sleep(0.05)
    except KeyboardInterrupt:
        if not CAUGHT:
            raise
        print("stopped early", flush=True)
    """.replace("CAUGHT", str(caught))
    proc = _script(code, make_config())
    _wait_line(proc, "training")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    statuses = [s for s in _statuses(broker, queue) if s != PROGRESS]
    if caught:
        assert proc.returncode == 0, stderr
        assert statuses == [DONE]
    else:
        assert proc.returncode == -signal.SIGINT, stderr
        assert statuses == [ERROR]


def test_a_users_sigterm_handler_that_calls_done_inside_log_does_not_wait_on_the_writer(
    broker, queue, make_config
):
    # The user's handler runs at once (chained) and waits for the end, which closes the
    # graph writer that the interrupted log() holds: the close must not wait for it.
    code = """
    import signal, sys, trainwire
    def on_term(signum, frame):
        run.done()
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    run = trainwire.init(total_steps=10**9, flush_timeout=10)
    row = {f"s{i}": 0.5 for i in range(300)}  # most of the loop's time is inside log()
    print("in-loop", flush=True)
    step = 0
    while True:
        step += 1
        run.progress(step)
        run.log("wide", step, **row)
    """
    proc = _script(code, make_config())
    _wait_line(proc, "in-loop")
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 0, stderr
    assert took < 8, f"{took:.1f} s: the end waited for the log() it interrupted"
    assert [s for s in _statuses(broker, queue) if s != PROGRESS] == [ERROR]


def test_a_ctrl_c_landing_inside_a_finalizer_still_stops_the_program(tmp_path):
    # Python drops a KeyboardInterrupt raised in a weakref callback or __del__ ("Exception
    # ignored"): the signal storm saw a process that never ended (threading's WeakSet).
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"project_key": "p", "model_id": "m", "model_write_path": "."}))
    code = """
    import signal, sys, trainwire
    run = trainwire.init(total_steps=10)
    handler = signal.getsignal(signal.SIGINT)
    class Finalized:
        def __del__(self):
            handler(signal.SIGINT, sys._getframe())  # as if Ctrl+C landed in here
    try:
        obj = Finalized()
        del obj
        for _ in range(300):
            for _ in range(10**5):
                pass
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted after the finalizer", flush=True)
        raise
    """
    proc = _script(code, config)
    out, err = proc.communicate(timeout=60)
    assert "interrupted after the finalizer" in out, err
    assert proc.returncode == -signal.SIGINT
    lines = (tmp_path / "save" / "trainwire-offline.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["body"]["status"] == ERROR
