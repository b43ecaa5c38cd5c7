"""Broker pushback: a memory alarm (``connection.blocked``) and nacks from a full queue
(``x-max-length`` with ``x-overflow=reject-publish``). The training loop stays free, the
SDK retries, and the terminal message never overtakes progress."""

from __future__ import annotations

import json
import time

from _faults import (
    DONE,
    ERROR,
    STALL_BOUND,
    Training,
    check_run,
    collect,
    fault_report,
    fbroker,
    new_queue,
    spool_records,
    write_config,
)
from trainwire._broker._delivery import replay_spool
from trainwire._spec._config import load_config

__all__ = ["fault_report", "fbroker"]  # fixtures


def test_memory_alarm_blocks_publishing_not_training_and_delivery_resumes_after(
    fbroker, tmp_path, fault_report
):
    queue = new_queue(fbroker)
    config = write_config(tmp_path, port=fbroker.port, queue=queue)
    run = Training(config, tmp_path, steps=200, sleep=0.01, flush=60, holds=[30, 130])
    run.hold_then(30)
    fbroker.set_memory_alarm(True)
    try:
        run.release(30)
        run.wait_stderr("blocking publishers")  # the broker did block this connection
        during = run.hold_then(130)  # 100 steps trained while blocked
    finally:
        fbroker.set_memory_alarm(False)
    run.release(130)
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    check_run(collect(fbroker, queue), DONE, last_step=200, context=run.describe())
    fault_report.stall("memory alarm (connection.blocked)", max(run.worst, during["phase_worst"]))
    assert run.worst < STALL_BOUND


def test_memory_alarm_through_the_end_keeps_the_terminal_in_the_spool_for_replay(
    fbroker, tmp_path, fault_report
):
    queue = new_queue(fbroker)
    config = write_config(tmp_path, port=fbroker.port, queue=queue)
    run = Training(config, tmp_path, steps=100, sleep=0.01, flush=2, holds=[50], end="exit")
    run.hold_then(50)
    fbroker.set_memory_alarm(True)
    try:
        run.release(50)
        assert run.wait() == 0, run.describe()
    finally:
        fbroker.set_memory_alarm(False)
    lag = run.exit_lag()
    fault_report.line(f"exit after the last statement, broker blocking publishers: {lag:.2f} s "
                      "(flush_timeout 2 s)")  # fmt: skip
    assert lag < 2 + 1
    assert "blocking publishers" in run.stderr
    kept = spool_records(config)
    assert kept[-1]["terminal"] and kept[-1]["body"]["status"] == DONE
    result = replay_spool(load_config(config), timeout=20)
    assert result.ok, result.reason
    check_run(collect(fbroker, queue), DONE, last_step=100, context=run.describe())
    fault_report.stall("memory alarm through the end", run.worst)
    assert run.worst < STALL_BOUND


def test_nacks_from_a_full_queue_are_retried_and_the_terminal_comes_last(
    broker, tmp_path, fault_report
):
    queue = new_queue(broker, {"x-max-length": 2, "x-overflow": "reject-publish"})
    broker.publish(queue, {"filler": 1})
    broker.publish(queue, {"filler": 2})  # full: every publish is nacked until room is made
    config = write_config(tmp_path, port=broker.port, queue=queue)
    run = Training(config, tmp_path, steps=100, sleep=0.01, flush=30, holds=[30], end="fail")
    run.hold_then(30)
    time.sleep(1.0)  # step 30 is refused again and again while training holds
    run.release(30)
    # A slow consumer makes room for one message at a time.
    got = []
    connection = broker.connect()
    try:
        channel = connection.channel()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                got.append({"body": json.loads(body), "properties": properties})
                if got[-1]["body"].get("status") == ERROR:
                    break
            time.sleep(0.2)
    finally:
        connection.close()
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    msgs = [m for m in got if "filler" not in m["body"]]
    assert len(msgs) == len(got) - 2
    check = check_run(msgs, ERROR, last_step=100, context=run.describe())
    assert check.steps[0] >= 30  # steps 1..29 were refused: the queue was full
    fault_report.stall("nacks from a full queue", run.worst)
    assert run.worst < STALL_BOUND
