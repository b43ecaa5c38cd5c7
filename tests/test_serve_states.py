"""``trainwire serve`` against a real broker: the SDK (and hand-made messages) drive every
transition of the spec while the server runs as a real subprocess; the stored states are
read back through its JSON API."""

from __future__ import annotations

import json
import time

import pytest

import trainwire
from _serve import cli, publish_raw, serve_factory_fixture  # noqa: F401

KOREAN_ERROR = "학습 이미지 크기가 맞지 않습니다: 3000x2000을 기대했는데 300x200입니다."


def _body(status: str, job_id: str = "model-1", key: str = "pk-test", **extra):
    from trainwire._spec._protocol import Identity, Kind, Status

    return {**Identity(Kind.TRAINING, key, job_id).base(Status(status)), **extra}


def _progress(step: int, pct: float, **kw):
    return _body("training_ing", percentage=pct, step=step, **kw)


def _serve_amqp(serve_factory, broker, queue, *args):
    return serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, *args)


def test_registered_job_waits_then_runs_then_is_done(
    serve_factory, broker, queue, make_config, tmp_path
):
    config = make_config()
    added = cli("jobs", "add", str(config), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "registered training job 'model-1'" in added.stdout
    server = _serve_amqp(serve_factory, broker, queue)

    waiting = server.wait_job("model-1", state="waiting")
    assert waiting["percentage"] is None and waiting["step"] is None
    assert waiting["last_message_at"] is None

    run = trainwire.init(config, total_steps=10, max_rate=None)
    run.progress(3)
    running = server.wait_job("model-1", state="running", step=3)
    assert running["percentage"] == pytest.approx(30.0)
    assert running["last_message_at"] is not None
    run.progress(7)
    server.wait_job("model-1", state="running", step=7, percentage=pytest.approx(70.0))
    run.done()
    done = server.wait_job("model-1", state="done")
    assert done["percentage"] == 100.0
    assert done["message"] is None
    assert [m["outcome"] for m in server.messages("model-1")] == ["applied"] * 3
    assert server.get("/api/rejected")["messages"] == []


def test_error_keeps_the_friendly_message_and_nothing_after_it_is_applied(
    serve_factory, broker, queue, make_config
):
    config = make_config(model_id="model-err")
    server = _serve_amqp(serve_factory, broker, queue)
    run = trainwire.init(config, total_steps=10, max_rate=None)
    run.progress(2)
    run.fail(KOREAN_ERROR)
    error = server.wait_job("model-err", state="error")
    assert error["message"] == KOREAN_ERROR
    assert error["step"] == 2

    later = int(time.time()) + 5  # published after the error, as far as anyone can tell
    publish_raw(
        broker, queue, _progress(9, 90.0, job_id="model-err"), message_id="p9", timestamp=later
    )
    publish_raw(
        broker, queue, _body("training_done", "model-err"), message_id="d1", timestamp=later
    )
    publish_raw(
        broker, queue, _progress(10, 100.0, job_id="model-err"), message_id="p10"
    )  # no timestamp
    log = server.wait_count(
        "ignored messages", lambda: [m for m in server.messages("model-err") if m["rejected"]], 3
    )
    assert [m["outcome"] for m in log] == ["after_error"] * 3
    assert [m["message_id"] for m in log] == ["p9", "d1", "p10"]
    job = server.job("model-err")
    assert job["state"] == "error" and job["message"] == KOREAN_ERROR and job["step"] == 2


def test_progress_after_done_is_ignored(serve_factory, broker, queue, make_config):
    config = make_config(model_id="model-fin")
    server = _serve_amqp(serve_factory, broker, queue)
    with trainwire.init(config, total_steps=4, max_rate=None) as run:
        run.progress(4)
    server.wait_job("model-fin", state="done")
    publish_raw(broker, queue, _progress(5, 50.0, job_id="model-fin"), message_id="late-1",
                timestamp=int(time.time()) + 5)  # fmt: skip
    rejected = server.wait_until("the ignored progress", lambda: server.rejected())
    assert [(m["outcome"], m["id"], m["message_id"]) for m in rejected] == [
        ("after_done", "model-fin", "late-1")
    ]
    assert server.job("model-fin")["state"] == "done"


def test_silent_running_job_turns_abnormal_and_a_new_message_revives_it(
    serve_factory, broker, queue, make_config
):
    config = make_config(model_id="model-slow")
    server = _serve_amqp(serve_factory, broker, queue, "--stale-after", "1")
    run = trainwire.init(config, total_steps=10, max_rate=None)
    run.progress(1)
    server.wait_job("model-slow", state="running", step=1)
    abnormal = server.wait_job("model-slow", state="abnormal", timeout=15)
    assert abnormal["step"] == 1
    run.progress(2)
    server.wait_job("model-slow", state="running", step=2)
    run.done()
    server.wait_job("model-slow", state="done")
    time.sleep(2)  # longer than --stale-after: a finished job never turns abnormal
    assert server.job("model-slow")["state"] == "done"


def test_waiting_job_never_turns_abnormal(serve_factory, broker, queue, make_config, tmp_path):
    make_config(model_id="model-idle")  # written into tmp_path, which --jobs watches
    server = _serve_amqp(
        serve_factory, broker, queue, "--stale-after", "0.5", "--jobs", str(tmp_path)
    )
    server.wait_job("model-idle", state="waiting")
    time.sleep(2)
    assert server.job("model-idle")["state"] == "waiting"


def test_duplicate_message_id_is_applied_once(serve_factory, broker, queue):
    server = _serve_amqp(serve_factory, broker, queue)
    body = _progress(5, 50.0, job_id="model-dup")
    for _ in range(3):
        publish_raw(broker, queue, body, message_id="same-id", timestamp=int(time.time()))
    publish_raw(broker, queue, _body("training_done", "model-dup"), message_id="done-id")
    server.wait_job("model-dup", state="done")
    server.wait_count("logged messages", lambda: server.messages("model-dup"), 4)
    outcomes = [(m["message_id"], m["outcome"]) for m in server.messages("model-dup")]
    assert outcomes == [
        ("same-id", "applied"),
        ("same-id", "duplicate"),
        ("same-id", "duplicate"),
        ("done-id", "applied"),
    ]
    assert server.job("model-dup")["applied"] == 2


BAD_MESSAGES = [
    ("malformed_json", b'{"cmd": "training_status", "status": '),
    ("malformed_json", b"\xff\xfe not utf-8"),
    ("not_an_object", b'["training_status"]'),
    (
        "unknown_cmd",
        {
            "cmd": "training_stat",
            "project_key": "pk-test",
            "model_id": "m",
            "status": "training_ing",
        },
    ),
    ("unknown_status", {**_body("training_done", "model-bad"), "status": "training_finished"}),
    (
        "missing_field",
        {k: v for k, v in _body("training_done", "model-bad").items() if k != "model_id"},
    ),
    (
        "missing_field",
        {k: v for k, v in _progress(1, 1.0, job_id="model-bad").items() if k != "percentage"},
    ),
    ("missing_field", _body("training_error", "model-bad")),  # no message
    ("bad_field", _progress(1, "ten", job_id="model-bad")),
    ("bad_field", _progress(-1, 1.0, job_id="model-bad")),
    ("bad_field", {**_body("training_done", "model-bad"), "project_key": ""}),
    ("percentage_out_of_range", _progress(1, 100.5, job_id="model-bad")),
    ("percentage_out_of_range", _progress(1, -3, job_id="model-bad")),
    ("unknown_project_key", _progress(1, 1.0, job_id="model-bad", key="pk-other")),
]


def test_every_rejected_message_is_stored_with_its_reason(serve_factory, broker, queue):
    server = _serve_amqp(serve_factory, broker, queue, "--project-key", "pk-test")
    for i, (_, body) in enumerate(BAD_MESSAGES):
        publish_raw(broker, queue, body, message_id=f"bad-{i}")
    publish_raw(broker, queue, _progress(1, 1.0, job_id="model-ok"), message_id="good")
    server.wait_job("model-ok", state="running")
    rejected = server.wait_count("rejected messages", server.rejected, len(BAD_MESSAGES))
    by_id = {m["message_id"]: m for m in rejected}
    for i, (reason, body) in enumerate(BAD_MESSAGES):
        m = by_id[f"bad-{i}"]
        assert m["outcome"] == reason, (body, m)
        assert m["rejected"] and m["detail"] and m["body"]
    counts = server.get("/api/rejected")["counts"]
    assert sum(counts.values()) == len(BAD_MESSAGES)
    assert server.job("model-bad") is None  # no rejected message creates a job
    # The stored body keeps what was sent, with the project key shortened.
    wrong_key = by_id[f"bad-{len(BAD_MESSAGES) - 1}"]
    assert "pk-other" not in wrong_key["body"] and "pk-o" in wrong_key["body"]
    assert wrong_key["id"] == "model-bad"


def test_registered_config_makes_its_project_key_required(
    serve_factory, broker, queue, make_config, tmp_path
):
    config = make_config(model_id="model-reg", project_key="pk-real")
    assert cli("jobs", "add", str(config), cwd=tmp_path).returncode == 0
    server = _serve_amqp(serve_factory, broker, queue)
    publish_raw(
        broker, queue, _progress(1, 1.0, job_id="model-reg", key="pk-wrong"), message_id="w1"
    )
    publish_raw(
        broker, queue, _progress(1, 1.0, job_id="model-free", key="pk-wrong"), message_id="w2"
    )
    publish_raw(
        broker, queue, _progress(2, 2.0, job_id="model-reg", key="pk-real"), message_id="r1"
    )
    publish_raw(
        broker, queue, _progress(3, 3.0, job_id="model-other", key="pk-real"), message_id="r2"
    )
    server.wait_job("model-reg", state="running", step=2)
    server.wait_job("model-other", state="running", step=3)
    rejected = server.wait_count("rejected messages", server.rejected, 2)
    assert [(m["message_id"], m["outcome"]) for m in rejected] == [
        ("w1", "unknown_project_key"),
        ("w2", "unknown_project_key"),
    ]


def test_out_of_order_progress_never_moves_a_job_backwards(serve_factory, broker, queue):
    server = _serve_amqp(serve_factory, broker, queue)
    t = int(time.time())
    sequence = [  # (message_id, body, AMQP timestamp, outcome, superseded)
        ("a", _progress(10, 10.0, job_id="model-ord"), t, "applied", False),
        ("b", _progress(5, 5.0, job_id="model-ord"), t, "applied", True),  # same second, lower
        ("c", _progress(99, 99.0, job_id="model-ord"), t - 1, "applied", True),  # older second
        ("d", _progress(11, 11.0, job_id="model-ord"), t, "applied", False),
        ("e", _progress(3, 3.0, job_id="model-ord"), t + 1, "applied", False),  # newer: restart
        ("f", _body("training_done", "model-ord"), t + 1, "applied", False),
        ("g", _progress(4, 4.0, job_id="model-ord"), t + 1, "applied", True),  # sent before end
        ("h", _progress(5, 5.0, job_id="model-ord"), t + 2, "after_done", False),
    ]
    for message_id, body, ts, _, _ in sequence:
        publish_raw(broker, queue, body, message_id=message_id, timestamp=ts)
    log = server.wait_count("logged messages", lambda: server.messages("model-ord"), len(sequence))
    got = [(m["message_id"], m["outcome"], m["superseded"]) for m in log]
    assert got == [(s[0], s[3], s[4]) for s in sequence]
    assert "no later than the job's training_done" in log[6]["detail"]  # the client can tell
    job = server.job("model-ord")
    assert (job["state"], job["step"], job["percentage"]) == ("done", 3, 100.0)
    assert job["applied"] == 7  # superseded ones count: each valid message once


def test_messages_sent_while_the_server_is_down_are_applied_when_it_starts(
    serve_factory, broker, queue, make_config, tmp_path
):
    config = make_config(model_id="model-early")
    with trainwire.init(config, total_steps=5, max_rate=None) as run:
        for step in range(1, 6):
            run.progress(step)
    assert run.delivered
    server = _serve_amqp(serve_factory, broker, queue)
    done = server.wait_job("model-early", state="done")
    assert done["applied"] == 6 and done["step"] == 5
    assert broker.list_queues().get(queue) == 0


def test_validation_jobs_are_tracked_by_validation_id(serve_factory, broker, queue, make_config):
    config = make_config(model_id=None, validation_id="val-7")
    server = _serve_amqp(serve_factory, broker, queue)
    with trainwire.init(config, total_steps=2, max_rate=None) as run:
        run.progress(1)
    job = server.wait_job("val-7", kind="validation", state="done")
    assert job["kind"] == "validation" and job["id"] == "val-7"
    assert server.job("val-7", kind="training") is None


def test_config_option_consumes_its_queue_and_registers_its_job(serve_factory, make_config):
    config = make_config(model_id="model-cfg")
    server = serve_factory("--config", str(config))
    job = server.wait_job("model-cfg", state="waiting")
    assert job["registered"] is True
    with trainwire.init(config, total_steps=2, max_rate=None) as run:
        run.progress(2)
    server.wait_job("model-cfg", state="done")
    health = server.get("/api/health")
    assert health["receiver"] == "consuming"
    assert "guest@" in health["broker"] and "guest:guest" not in json.dumps(health)


def test_jobs_folder_registers_configs_written_while_serving(
    serve_factory, broker, queue, tmp_path
):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    server = _serve_amqp(serve_factory, broker, queue, "--jobs", str(folder))
    model_dir = tmp_path / "models-x"
    config = {"project_key": "pk-x", "model_id": "model-new", "model_write_path": str(model_dir)}
    (folder / "new.json").write_text(json.dumps(config))
    job = server.wait_job("model-new", state="waiting", timeout=15)
    assert job["registered"]
    assert "broken.json" in server.output() and "not valid JSON" in server.output()
