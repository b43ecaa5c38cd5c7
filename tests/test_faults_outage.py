"""Outages of every kind: broker stopped or killed, connections dropped, delayed or
black-holed by a proxy, the broker away past the flush timeout (spool, then replay by the
next run), and a million progress calls with no broker at all.

Each scenario runs a real training process and reads the queue with an independent
consumer (see tests/_faults.py for the checks every scenario makes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from _broker import free_port
from _faults import (
    DONE,
    STALL_BOUND,
    Training,
    check_run,
    collect,
    fault_report,
    fbroker,
    kill9,
    new_queue,
    spool_path,
    spool_records,
    write_config,
)
from trainwire._broker._delivery import replay_spool
from trainwire._spec._config import load_config

__all__ = ["fault_report", "fbroker"]  # fixtures


def test_broker_stopped_mid_run_then_back_delivers_newest_progress_then_done(
    fbroker, tmp_path, fault_report
):
    queue = new_queue(fbroker)
    config = write_config(tmp_path, port=fbroker.port, queue=queue)
    run = Training(config, tmp_path, steps=300, sleep=0.01, flush=60, holds=[50, 150])
    run.hold_then(50)
    fbroker.stop()
    run.release(50)
    during = run.hold_then(150)  # 100 steps trained with the broker away
    fbroker.start()
    run.release(150)
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    check_run(collect(fbroker, queue), DONE, last_step=300, context=run.describe())
    fault_report.stall("broker stopped mid-run", max(during["phase_worst"], run.worst))
    assert run.worst < STALL_BOUND


def test_broker_killed_9_before_the_end_and_back_within_flush_timeout_delivers(
    fbroker, tmp_path, fault_report
):
    queue = new_queue(fbroker)
    config = write_config(tmp_path, port=fbroker.port, queue=queue)
    run = Training(config, tmp_path, steps=200, sleep=0.005, flush=60, holds=[50])
    run.hold_then(50)
    kill9(fbroker)
    run.release(50)
    run.wait_event("trained")  # done() waits for the broker now
    fbroker.start()
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    check_run(collect(fbroker, queue), DONE, last_step=200, context=run.describe())
    assert spool_records(config) == []  # confirmed: nothing left behind
    assert not spool_path(config).with_name("trainwire-spool.jsonl.lock").exists()
    fault_report.stall("broker kill -9 across done()", run.worst)
    assert run.worst < STALL_BOUND


def test_terminal_unconfirmed_at_flush_timeout_is_spooled_and_delivered_by_replay(
    broker, proxy, tmp_path, fault_report
):
    queue = new_queue(broker)
    cut = proxy()
    config = write_config(tmp_path, port=cut.port, queue=queue)
    first = Training(config, tmp_path, steps=120, sleep=0.005, flush=1.5, holds=[40])
    first.hold_then(40)
    cut.refuse(True)
    cut.drop()
    first.release(40)
    assert first.wait() == 0, first.describe()
    assert first.event("ended")["delivered"] is False
    lag = first.exit_lag()
    fault_report.line(f"exit after the last statement, broker unreachable: {lag:.2f} s "
                      "(flush_timeout 1.5 s)")  # fmt: skip
    assert lag < 1.5 + 1
    kept = spool_records(config)
    assert [(r["terminal"], r["body"].get("step")) for r in kept] == [(False, 120), (True, None)]
    assert "trainwire replay --config" in first.stderr
    before = collect(broker, queue, until_terminal=False)  # what arrived before the cut

    cut.refuse(False)
    assert replay_spool(load_config(config), timeout=20).ok  # `trainwire replay`
    msgs = collect(broker, queue)
    ids = [m["properties"].message_id for m in msgs]
    assert ids == [r["message_id"] for r in kept]  # ids kept, in order
    check_run(before + msgs, DONE, last_step=120, context=first.describe())
    assert not spool_path(config).exists()  # only confirmed records leave: all did
    fault_report.stall("connection cut past flush_timeout", first.worst)
    assert first.worst < STALL_BOUND


@pytest.mark.parametrize("when", ["mid-run", "from the start"])
def test_blackholed_connection_never_delays_exit_beyond_flush_timeout_plus_one_second(
    broker, proxy, tmp_path, when, fault_report
):
    queue = new_queue(broker)
    hole = proxy()
    config = write_config(tmp_path, port=hole.port, queue=queue)
    if when == "from the start":
        hole.blackhole(True)
    run = Training(config, tmp_path, steps=100, sleep=0.005, flush=2, holds=[60], end="exit")
    run.hold_then(60)
    hole.blackhole(True)
    run.release(60)
    assert run.wait() == 0, run.describe()
    lag = run.exit_lag()
    fault_report.line(f"exit after the last statement, connection black-holed {when}: "
                      f"{lag:.2f} s (flush_timeout 2 s)")  # fmt: skip
    assert lag < 2 + 1
    kept = spool_records(config)
    assert kept and kept[-1]["terminal"] and kept[-1]["body"]["status"] == DONE
    hole.blackhole(False)  # the stalled stream resumes: what was on the wire may arrive now
    result = replay_spool(load_config(config), timeout=20)
    assert result.ok, result.reason
    check_run(collect(broker, queue), DONE, last_step=100, context=run.describe())
    fault_report.stall(f"black-holed connection {when}", run.worst)
    assert run.worst < STALL_BOUND


def test_connections_dropped_again_and_again_lose_nothing(broker, proxy, tmp_path, fault_report):
    queue = new_queue(broker)
    flaky = proxy()
    config = write_config(tmp_path, port=flaky.port, queue=queue)
    holds = [20, 40, 60, 80]
    run = Training(config, tmp_path, steps=100, sleep=0.01, flush=30, holds=holds,
                   max_rate=None)  # fmt: skip
    for step in holds:
        run.hold_then(step)
        flaky.drop()
        run.release(step)
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    check = check_run(collect(broker, queue), DONE, last_step=100, context=run.describe())
    # every step mode: a dropped connection may cost the steps on the wire, never the last
    assert len(check.steps) >= 50
    fault_report.stall("connections dropped 4 times", run.worst)
    assert run.worst < STALL_BOUND


def test_slow_network_delays_messages_but_keeps_order(broker, proxy, tmp_path, fault_report):
    queue = new_queue(broker)
    slow = proxy()
    config = write_config(tmp_path, port=slow.port, queue=queue)
    run = Training(config, tmp_path, steps=150, sleep=0.01, flush=30, holds=[20])
    run.hold_then(20)
    slow.delay(0.4)
    run.release(20)
    assert run.wait() == 0, run.describe()
    assert run.event("ended")["delivered"] is True
    check_run(collect(broker, queue), DONE, last_step=150, context=run.describe())
    fault_report.stall("0.4 s network delay", run.worst)
    assert run.worst < STALL_BOUND


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import trainwire

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

    max_rate = json.loads(sys.argv[1])
    run = trainwire.init(total_steps=2_000_000, flush_timeout=0.5, max_rate=max_rate)
    for step in range(20_000):
        run.progress(step)
    time.sleep(0.5)  # the I/O thread has met the closed port
    before = rss()
    perf = time.perf_counter
    worst = 0.0
    for step in range(20_000, 1_020_000):
        t0 = perf()
        run.progress(step)
        took = perf() - t0
        if took > worst:
            worst = took
    after = rss()
    run.done()
    print(json.dumps({"before": before, "after": after, "worst": worst,
                      "delivered": run.delivered}))
    """
)


@pytest.mark.parametrize("max_rate", [10, None], ids=["max_rate=10", "every step"])
def test_a_million_progress_calls_with_the_broker_down_keep_memory_bounded(
    tmp_path, max_rate, fault_report
):
    config = write_config(tmp_path, port=free_port(), queue="nobody-listens")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, json.dumps(max_rate)],
        env={**os.environ, "TRAINWIRE_CONFIG": str(config)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    growth = figures["after"] - figures["before"]
    mode = "every step" if max_rate is None else f"max_rate={max_rate}"
    fault_report.line(f"RSS growth over 1,000,000 progress() calls, broker down, {mode}: "
                      f"{growth / 2**20:.2f} MiB")  # fmt: skip
    fault_report.stall(f"1,000,000 calls with the broker down ({mode})", figures["worst"])
    assert growth < 20 * 2**20
    assert figures["worst"] < STALL_BOUND
    assert figures["delivered"] is False
    assert spool_records(config)[-1]["terminal"] is True
    refused = [ln for ln in result.stderr.splitlines() if "'message_port'" in ln]
    assert len(refused) == 1, result.stderr


FD_SCRIPT = textwrap.dedent(
    """
    import gc, json, os, time
    import trainwire
    from trainwire._broker import _nodes

    gc.disable()  # as some training loops do: nothing may rely on the cyclic collector
    _nodes.BACKOFF_FIRST = _nodes.BACKOFF_MAX = 0.01  # a long outage's attempts, compressed
    run = trainwire.init(total_steps=100, flush_timeout=0.2)
    time.sleep(0.5)
    before = len(os.listdir("/proc/self/fd"))
    for step in range(100):
        run.progress(step)
        time.sleep(0.02)
    after = len(os.listdir("/proc/self/fd"))
    print(json.dumps({"before": before, "after": after}))
    """
)


def test_reconnect_attempts_through_a_long_outage_leak_no_file_descriptors(tmp_path):
    config = write_config(tmp_path, port=free_port(), queue="nobody-listens")
    result = subprocess.run(
        [sys.executable, "-c", FD_SCRIPT],
        env={**os.environ, "TRAINWIRE_CONFIG": str(config)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["after"] - figures["before"] < 10, figures  # ~100 attempts in between
