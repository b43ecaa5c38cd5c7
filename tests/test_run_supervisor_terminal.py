"""``trainwire run`` never doubles or hides a terminal message: a child that dies during its
own flush, a stop signal the command survives, Ctrl+C caught or let through. Real
``trainwire run`` processes, real children, real signals, the real broker (through a TCP
proxy where the network must hold the child's messages back)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

from _cli_helpers import DONE, ERROR, PROGRESS, bodies, settle, start, terminals, trainwire
from trainwire._spec._spool import SPOOL_FILE, Spool, SpoolRecord

PY = sys.executable


def _python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def _spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "models" / "save" / SPOOL_FILE)


def _wait_for_terminal_record(spool: Spool, timeout: float = 30.0) -> SpoolRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [record for record in spool.read() if record.terminal]
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no terminal record appeared in {spool.path}")


def _started(proc, first_line: str = "ready\n") -> None:
    line = proc.stdout.readline()
    assert line == first_line, (line, proc.stderr.read() if proc.poll() is not None else "")


# -- the child wrote its terminal message ahead, then died during the flush ---------------


def test_sdk_child_killed_during_its_flush_gets_exactly_its_own_terminal_message(
    broker, queue, make_config, proxy, tmp_path
):
    cut = proxy()
    config = make_config(message_port=cut.port)
    go = tmp_path / "go"
    proc = start("run", "-v", "--config", config, "--flush-timeout", "30", "--", *_python(f"""
        import os, time, trainwire
        run = trainwire.init(total_steps=10, max_rate=None, flush_timeout=120)
        for step in range(1, 6):
            run.progress(step)
        print(os.getpid(), flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        run.done()  # flushes into the black hole until the kill below
    """))  # fmt: skip
    child_pid = int(proc.stdout.readline())
    cut.blackhole(True)  # nothing the child sends from here on reaches the broker
    go.touch()
    kept = _wait_for_terminal_record(_spool(tmp_path))  # the child's write-ahead
    assert kept.body["status"] == DONE
    os.kill(child_pid, signal.SIGKILL)
    cut.drop()  # the dead child's withheld bytes go nowhere
    cut.reset()
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGKILL, err

    replayed = trainwire("replay", "--config", config)
    assert replayed.returncode == 0, replayed.stderr
    msgs = settle(broker, queue)
    ends = terminals(msgs)
    assert [end["status"] for end in ends] == [DONE], bodies(msgs)
    assert msgs[-1]["properties"].message_id == kept.message_id
    assert bodies(msgs)[-1] == kept.body
    assert not _spool(tmp_path).path.exists()
    assert "delivered it from the spool (confirmed by the broker)" in err


def test_sdk_child_that_gave_up_on_the_broker_leaves_its_terminal_to_replay_only(
    broker, queue, make_config, proxy, tmp_path
):
    cut = proxy()
    cut.blackhole(True)
    config = make_config(message_port=cut.port)
    result = trainwire("run", "--config", config, "--", *_python("""
        import trainwire
        run = trainwire.init(total_steps=4, max_rate=None, flush_timeout=0.5)
        run.progress(2)
        run.fail("the labels file is empty")
    """), timeout=90)  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = [r for r in _spool(tmp_path).read() if r.terminal]
    assert [r.body["status"] for r in kept] == [ERROR]
    cut.drop()  # what the dead child's socket still held goes nowhere
    cut.reset()
    assert broker.drain(queue) == []  # the child said it kept it: no second copy, no own end

    assert trainwire("replay", "--config", config).returncode == 0
    msgs = settle(broker, queue)
    assert [end["message"] for end in terminals(msgs)] == ["the labels file is empty"]


# -- stop signals sent to trainwire run itself ----------------------------------------------


def test_command_that_survives_sigterm_and_exits_0_ends_trainwire_run_by_sigterm(
    broker, queue, make_config
):
    proc = start("run", "--config", make_config(), "--", *_python("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        print("ready", flush=True)
        time.sleep(60)
    """))  # fmt: skip
    _started(proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err  # not 0: the platform got an error
    msgs = settle(broker, queue)
    (end,) = terminals(msgs)
    assert end["status"] == ERROR and "SIGTERM" in end["message"]


def test_ctrl_c_the_command_catches_and_then_ends_normally_sends_training_done(
    broker, queue, make_config
):
    proc = start("run", "--config", make_config(), "--max-rate", "0", "--", *_python("""
        import sys, time
        print("trainwire step=51 total=100", flush=True)
        try:  # entered before "ready": the Ctrl+C cannot land outside it
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("stopping early at step 51", flush=True)
    """))  # fmt: skip
    assert proc.stdout.readline() == "trainwire step=51 total=100\n"
    _started(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert out == "stopping early at step 51\n"
    assert proc.returncode == 0, err
    msgs = settle(broker, queue)
    assert [(b["status"], b.get("step")) for b in bodies(msgs)] == [(PROGRESS, 51), (DONE, None)]


def test_ctrl_c_the_command_lets_through_sends_stopped_by_user_and_ends_by_sigint(
    broker, queue, make_config
):
    proc = start("run", "--config", make_config(), "--", *_python("""
        import time
        print("ready", flush=True)
        time.sleep(60)
    """))  # fmt: skip
    _started(proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err  # the child's own traceback, passed through
    assert proc.returncode == -signal.SIGINT, err
    msgs = settle(broker, queue)
    (end,) = terminals(msgs)
    assert end["status"] == ERROR
    assert end["message"] == "사용자가 학습을 중단했습니다 (Ctrl+C / SIGINT)."


def test_ctrl_c_the_command_catches_and_exits_130_is_an_error_too(broker, queue, make_config):
    proc = start("run", "--config", make_config(), "--language", "en", "--", *_python("""
        import sys, time
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            sys.exit(130)
    """))  # fmt: skip
    _started(proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT, err
    (end,) = terminals(settle(broker, queue))
    assert end["message"] == "Training was interrupted by the user (Ctrl+C / SIGINT)."
