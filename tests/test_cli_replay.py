"""``trainwire replay``: what a run kept in its spool reaches the queue, in order, with
its original message ids, and leaves the spool only when confirmed."""

from __future__ import annotations

import json
import sys

from _broker import free_port
from _cli_helpers import DONE, ERROR, PROGRESS, trainwire
from trainwire._broker._delivery import replay_order
from trainwire._spec._spool import SPOOL_FILE, Spool, SpoolRecord, make_record


def _spool(tmp_path) -> Spool:
    return Spool(tmp_path / "models" / "save" / SPOOL_FILE)


def _run_with_broker_down(make_config, *command):
    down = make_config(message_port=free_port())
    result = trainwire("run", "--config", down, "--flush-timeout", "0.5", "--max-rate", "0",
                       "--", *command)  # fmt: skip
    return down, result


def test_replay_delivers_a_down_brokers_spool_in_order_with_original_ids(
    broker, queue, make_config, tmp_path
):
    _down, result = _run_with_broker_down(
        make_config, sys.executable, "-c", "print('trainwire step=7 total=10'); raise SystemExit(5)"
    )
    assert result.returncode == 5
    assert "trainwire replay" in result.stderr  # the transport says where it kept it
    kept = _spool(tmp_path).read()
    assert [(r.terminal, r.body["status"]) for r in kept] == [(False, PROGRESS), (True, ERROR)]
    assert broker.drain(queue) == []

    replayed = trainwire("replay", "--config", make_config(), "--json")
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert report["ok"] is True and report["remaining"] == 0

    msgs = broker.wait_for(queue, lambda ms: len(ms) >= 2, timeout=10)
    assert [m["properties"].message_id for m in msgs] == [r.message_id for r in kept]
    assert [m["body"] for m in msgs] == [r.body for r in kept]
    assert msgs[0]["body"]["step"] == 7
    assert not _spool(tmp_path).path.exists()


def test_replay_with_nothing_kept_succeeds(broker, queue, make_config):
    result = trainwire("replay", "--config", make_config())
    assert result.returncode == 0
    assert "nothing to replay" in result.stdout


def test_replay_to_a_missing_queue_keeps_everything(broker, queue, make_config, tmp_path):
    _, result = _run_with_broker_down(make_config, "true")
    assert result.returncode == 0
    before = _spool(tmp_path).read()
    assert [r.body["status"] for r in before] == [DONE]

    replayed = trainwire("replay", "--config", make_config(queue_name="tw-no-such-queue"))
    assert replayed.returncode == 1
    assert "queue_name" in replayed.stderr and "1 message(s) remain" in replayed.stderr
    assert _spool(tmp_path).read() == before


def test_records_of_another_job_are_left_for_their_own_config(broker, queue, make_config, tmp_path):
    _run_with_broker_down(make_config, "true")
    other = {"cmd": "training_status", "project_key": "pk-test", "model_id": "model-2",
             "status": DONE}  # fmt: skip
    _spool(tmp_path).append([make_record("other-job-id", queue, other, terminal=True)])

    result = trainwire("replay", "--config", make_config(), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["other_jobs"] == 1 and report["remaining"] == 0
    (msg,) = broker.wait_for(queue, timeout=10)
    assert msg["body"]["model_id"] == "model-1"
    assert [r.message_id for r in _spool(tmp_path).read()] == ["other-job-id"]


def test_dry_run_lists_without_sending(broker, queue, make_config, tmp_path):
    _run_with_broker_down(make_config, "true")
    result = trainwire("replay", "--config", make_config(), "--dry-run")
    assert result.returncode == 0
    assert "1 message(s) to send" in result.stdout and DONE in result.stdout
    assert len(_spool(tmp_path).read()) == 1
    assert broker.drain(queue) == []


def test_replay_order_keeps_each_run_together_and_drops_repeated_ids():
    def record(message_id: str, terminal: bool) -> SpoolRecord:
        return SpoolRecord(message_id, "q", {}, terminal, 0.0)

    # Two earlier runs, each spooled as its newest progress then its terminal message.
    records = [record("p1", False), record("t1", True), record("p2", False), record("t2", True),
               record("p1", False)]  # fmt: skip
    assert [r.message_id for r in replay_order(records)] == ["p1", "t1", "p2", "t2"]
