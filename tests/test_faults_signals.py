"""Signals and forks while the broker is unreachable: the error message is kept (in the
spool when the broker cannot take it), the process ends in time, a forked child never
sends nor waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from _faults import (
    DONE,
    ERROR,
    STALL_BOUND,
    Training,
    check_run,
    collect,
    fault_report,
    new_queue,
    spool_path,
    spool_records,
    write_config,
)
from trainwire._broker._delivery import replay_spool
from trainwire._spec._config import load_config

__all__ = ["fault_report"]  # fixture


def _outage_then(broker, proxy, tmp_path, flush):
    queue = new_queue(broker)
    cut = proxy()
    config = write_config(tmp_path, port=cut.port, queue=queue)
    run = Training(config, tmp_path, steps=100_000, sleep=0.01, flush=flush, holds=[30, 40])
    run.hold_then(30)
    cut.refuse(True)
    cut.drop()
    run.release(30)
    run.hold_then(40)  # training went on without the broker
    run.release(40)
    return queue, cut, config, run


def _spooled_terminal(config):
    """Whether the spool holds a terminal record (complete lines only: it may be growing)."""
    path = spool_path(config)
    data = path.read_bytes() if path.exists() else b""
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    return any(json.loads(line)["terminal"] for line in lines if line.strip())


def _wait_for_spooled_terminal(config, run, timeout=20.0):
    """Wait for the run's terminal message in its spool: written ahead as the flush starts."""
    deadline = time.monotonic() + timeout
    while not _spooled_terminal(config):
        assert time.monotonic() < deadline, f"no terminal message in the spool\n{run.describe()}"
        assert run.proc.poll() is None, f"the run ended before its flush\n{run.describe()}"
        time.sleep(0.01)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_during_an_outage_keeps_the_error_in_the_spool_and_ends_in_time(
    broker, proxy, tmp_path, signame, fault_report
):
    queue, cut, config, run = _outage_then(broker, proxy, tmp_path, flush=2)
    sent = time.time()
    run.proc.send_signal(getattr(signal, signame))
    code = run.wait()
    lag = run.exited_at - sent
    fault_report.line(f"exit after {signame} with the broker unreachable: {lag:.2f} s "
                      "(flush_timeout 2 s)")  # fmt: skip
    assert lag < 2 + 1
    if signame == "SIGTERM":
        assert code == -signal.SIGTERM
    else:
        assert code != 0
    kept = spool_records(config)
    assert [r["terminal"] for r in kept] == [False, True], kept
    assert kept[-1]["body"]["status"] == ERROR
    assert ("SIGTERM" if signame == "SIGTERM" else "Ctrl+C") in kept[-1]["body"]["message"]
    cut.refuse(False)
    result = replay_spool(load_config(config), timeout=20)
    assert result.ok, result.reason
    check = check_run(collect(broker, queue), ERROR, context=run.describe())
    assert check.steps[-1] == kept[0]["body"]["step"] > 30
    fault_report.stall(f"{signame} during an outage", run.worst)
    assert run.worst < STALL_BOUND


@pytest.mark.parametrize("second", ["SIGTERM", "SIGKILL"])
def test_a_second_signal_during_the_flush_cannot_lose_the_terminal_message(
    broker, proxy, tmp_path, second
):
    queue, cut, config, run = _outage_then(broker, proxy, tmp_path, flush=30)
    run.proc.send_signal(signal.SIGTERM)
    _wait_for_spooled_terminal(config, run)  # flushing now, waiting for the broker (30 s)
    run.proc.send_signal(getattr(signal, second))
    assert run.wait(timeout=20) == -getattr(signal, second)
    kept = spool_records(config)
    assert kept and kept[-1]["terminal"] is True, run.describe()
    assert "SIGTERM" in kept[-1]["body"]["message"]
    cut.refuse(False)
    assert replay_spool(load_config(config), timeout=20).ok
    check_run(collect(broker, queue), ERROR, context=run.describe())


def test_forked_child_during_an_outage_neither_sends_nor_waits_and_the_parent_delivers(
    broker, proxy, tmp_path, fault_report
):
    queue = new_queue(broker)
    cut = proxy()
    config = write_config(tmp_path, port=cut.port, queue=queue)
    run = Training(config, tmp_path, steps=200, sleep=0.005, flush=30, holds=[20, 100],
                   fork_at=60, child_end="fail")  # fmt: skip
    run.hold_then(20)
    cut.refuse(True)
    cut.drop()
    run.release(20)
    run.hold_then(100)
    cut.refuse(False)
    run.release(100)
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    child = run.event("child")
    fault_report.line(f"forked child's whole life during an outage: {child['seconds']:.2f} s "
                      "(the parent's flush_timeout is 30 s)")  # fmt: skip
    assert child["seconds"] < 30  # its exit hooks did not wait for the broker
    msgs = collect(broker, queue)
    check = check_run(msgs, DONE, last_step=200, context=run.describe())
    assert all(step < 10_000 for step in check.steps)
    assert not any("forked child" in str(m["body"]) for m in msgs)
    assert spool_records(config) == []
    fault_report.stall("fork during an outage", run.worst)
    assert run.worst < STALL_BOUND
    assert os.path.exists(config)


HOOK_LOCK_SCRIPT = """
import os, signal, sys, trainwire
from trainwire._sdk import _lifecycle
run = trainwire.init(total_steps=10, flush_timeout=2)
run.progress(1)
lock = _lifecycle._lock if sys.argv[1] == "hooks" else run._end_lock
with lock:  # as inside register()/forget(), or run._end(): a signal lands right here
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):
        pass
print("not reached", flush=True)
"""


@pytest.mark.parametrize("holder", ["hooks", "run end"])
def test_sigterm_landing_while_trainwire_holds_its_lock_still_ends_the_process(
    broker, tmp_path, holder
):
    queue = new_queue(broker)
    config = write_config(tmp_path, port=broker.port, queue=queue)
    proc = subprocess.run(
        [sys.executable, "-c", HOOK_LOCK_SCRIPT, "hooks" if holder == "hooks" else "end"],
        env={**os.environ, "TRAINWIRE_CONFIG": str(config)},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    check_run(collect(broker, queue), ERROR)
