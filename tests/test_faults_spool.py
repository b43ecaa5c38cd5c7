"""The spool under faults: torn writes, concurrent writers, and what the background replay
at ``init()`` takes (only its own job's records, only what the broker confirmed)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import trainwire
from _faults import DONE, check_run, collect, new_queue, write_config
from trainwire._spec._config import load_config
from trainwire._spec._protocol import done_message, encode, new_message_id, progress_message
from trainwire._spec._spool import SPOOL_FILE, Spool, make_record


def test_a_torn_last_line_is_skipped_and_the_rest_is_kept(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE)
    spool.append([make_record("a", "q", {"status": "x"}, False)])
    with open(spool.path, "a") as fh:
        fh.write('{"message_id": "b", "queue": "q", "bo')  # the writer died mid-line
    assert [r.message_id for r in spool.read()] == ["a"]
    spool.append([make_record("c", "q", {"status": "y"}, True)])
    assert [r.message_id for r in spool.read()] == ["a", "c"]


def test_an_emptied_spool_removes_itself_and_its_lock_file(tmp_path):
    spool = Spool(tmp_path / "save" / SPOOL_FILE)
    spool.append(make_record(i, "q", {"n": i}, i == "3") for i in "123")
    assert spool.remove(["2"]) == 2
    assert [r.message_id for r in spool.read()] == ["1", "3"]
    assert spool.remove(["1", "3"]) == 0
    assert sorted(os.listdir(tmp_path / "save")) == []


def test_processes_appending_and_removing_at_once_lose_no_record(tmp_path):
    path = tmp_path / SPOOL_FILE
    children = []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:  # each child: 50 appends; it removes its odd records again
            try:
                spool = Spool(path)
                for n in range(50):
                    spool.append([make_record(f"{worker}-{n}", "q", {"n": n}, False)])
                    if n % 2:
                        spool.remove([f"{worker}-{n}"])
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    ids = {r.message_id for r in Spool(path).read()}
    assert ids == {f"{w}-{n}" for w in range(4) for n in range(0, 50, 2)}


def _kept_run(config, steps=7):
    """Spool records as a run of ``config`` leaves them when its broker never answered."""
    identity = load_config(config).identity
    records = [
        make_record(new_message_id(), "old-queue", progress_message(identity, steps, 70.0), False),
        make_record(new_message_id(), "old-queue", done_message(identity), True),
    ]
    Spool(load_config(config).save_dir / SPOOL_FILE).append(records)
    return records


def test_a_rerun_moves_its_jobs_kept_records_aside_and_leaves_other_jobs_for_replay(
    broker, tmp_path
):
    queue = new_queue(broker)
    config = write_config(tmp_path, port=broker.port, queue=queue, model_id="model-a")
    other = write_config(tmp_path, port=broker.port, queue=queue, model_id="model-b")
    assert load_config(other).save_dir == load_config(config).save_dir  # one save folder
    theirs = _kept_run(other)
    ours = _kept_run(config)
    with trainwire.init(config=config, total_steps=10, flush_timeout=15) as run:
        run.progress(10)
    assert run.delivered is True
    msgs = collect(broker, queue)
    sent = {m["properties"].message_id for m in msgs}
    assert not sent & {r.message_id for r in ours + theirs}  # nothing of earlier runs
    check_run(msgs, DONE, last_step=10)
    left = Spool(run.config.save_dir / SPOOL_FILE).read()
    assert [r.message_id for r in left] == [r.message_id for r in theirs]
    aside = Spool(run.config.save_dir / "trainwire-spool.superseded.jsonl").read()
    assert [r.message_id for r in aside] == [r.message_id for r in ours]


def test_a_rerun_with_a_missing_queue_keeps_its_own_end_not_the_earlier_one(
    broker, tmp_path, caplog
):
    config = write_config(tmp_path, port=broker.port, queue="tw-no-such-queue")
    ours = _kept_run(config)
    with caplog.at_level("WARNING", logger="trainwire"):  # noqa: SIM117 (3.9 syntax)
        with trainwire.init(config=config, total_steps=3, flush_timeout=2) as run:
            run.progress(3)
    assert run.delivered is False
    assert "trainwire replay --config" in caplog.text
    left = Spool(run.config.save_dir / SPOOL_FILE).read()
    assert not {r.message_id for r in left} & {r.message_id for r in ours}
    assert [r.terminal for r in left] == [False, True]  # this run's own
    assert json.loads(json.dumps(left[-1].body))["status"] == DONE


def test_a_record_with_text_that_is_not_utf8_is_kept_not_lost(tmp_path):
    spool = Spool(tmp_path / SPOOL_FILE)
    body = {"status": "training_error", "message": os.fsdecode(b"img-\xff.jpg")}
    spool.append([make_record("a", "q", body, True)])  # raised UnicodeEncodeError before
    (record,) = spool.read()
    assert record.terminal and record.message_id == "a"
    assert json.loads(encode(record.body))["message"] == "img-\\xff.jpg"  # replayable
    spool.append([make_record("b", "q", {"n": 1}, False)])
    assert spool.remove(["b"]) == 1  # the rewrite keeps it too
    assert [r.message_id for r in spool.read()] == ["a"]


def test_the_spool_and_its_lock_are_readable_by_their_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path / "save" / SPOOL_FILE)
        spool.append(make_record(i, "q", {"project_key": "pk"}, False) for i in "12")
        lock = Path(str(spool.path) + ".lock")
        assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert spool.remove(["1"]) == 1  # rewritten through a temporary file
        assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
