"""Retention against real ``serve`` processes, the real broker, SQLite and PostgreSQL:
``trainwire jobs prune`` forgets old jobs in the chosen states (and nothing else), and
``serve --keep-messages N`` trims each job's log to its newest N messages while the job's
state stays."""

from __future__ import annotations

import uuid
from typing import Any

from _serve import ServeProcess, cli, publish_raw, serve_factory_fixture  # noqa: F401
from test_serve_alerts import db_url_fixture, postgres_fixture  # noqa: F401


def _send(broker, queue, status: str, job_id: str, **extra: Any) -> None:
    from trainwire._spec._protocol import Identity, Kind, Status

    body = {**Identity(Kind.TRAINING, "pk-keep", job_id).base(Status(status)), **extra}
    publish_raw(broker, queue, body, message_id=uuid.uuid4().hex)


def _serve(serve_factory, broker, queue, db: str, *args: str) -> ServeProcess:
    return serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db, *args)


def _ids(server: ServeProcess) -> set[str]:
    return {j["id"] for j in server.get("/api/jobs")}


def test_jobs_prune_forgets_old_jobs_in_the_chosen_states_only(
    serve_factory, broker, queue, db_url, tmp_path
):
    server = _serve(serve_factory, broker, queue, db_url)
    _send(broker, queue, "training_ing", "j-done", percentage=50.0, step=5)
    _send(broker, queue, "training_done", "j-done")
    _send(broker, queue, "training_error", "j-err", message="실패")
    _send(broker, queue, "training_ing", "j-run", percentage=10.0, step=1)
    publish_raw(broker, queue, b"{not json", message_id="bad-1")
    server.wait_job("j-done", state="done")
    server.wait_job("j-err", state="error")
    server.wait_job("j-run", state="running")
    server.wait_until("the rejected message", server.rejected)

    fresh = cli("jobs", "prune", "--older-than", "1h", "--db", db_url, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "pruned 0 job(s) (done, error, unchanged for 1h)" in fresh.stdout
    assert _ids(server) == {"j-done", "j-err", "j-run"}

    old = cli("jobs", "prune", "--older-than", "0s", "--db", db_url, cwd=tmp_path)
    assert old.returncode == 0, old.stderr
    assert "pruned 2 job(s)" in old.stdout and "and 4 logged message(s)" in old.stdout
    assert _ids(server) == {"j-run"}
    assert server.status("/api/jobs/training/j-done") == 404
    assert [m["status"] for m in server.messages("j-run")] == ["training_ing"]
    assert server.rejected() == [], "a rejected message that names no job goes too"
    # A message id is forgotten with it: the same id is now taken as new.
    publish_raw(broker, queue, b"{not json", message_id="bad-1")
    again = server.wait_until("the message again", server.rejected)
    assert [m["outcome"] for m in again] == ["malformed_json"]

    running = cli(
        "jobs", "prune", "--older-than", "0s", "--state", "running,abnormal", "--db", db_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert running.returncode == 0, running.stderr
    assert "pruned 1 job(s) (abnormal, running" in running.stdout
    assert _ids(server) == set()

    for args, expected in [
        (("--older-than", "30x"), "expected a number and a unit"),
        (("--older-than", "1d", "--state", "finished"), "'finished' is not a job state"),
    ]:
        bad = cli("jobs", "prune", *args, "--db", db_url, cwd=tmp_path)
        assert bad.returncode == 2 and expected in bad.stderr, bad.stderr


def test_keep_messages_trims_each_jobs_log_and_keeps_its_state(
    serve_factory, broker, queue, db_url
):
    server = _serve(serve_factory, broker, queue, db_url, "--keep-messages", "5")
    for step in range(1, 13):
        _send(broker, queue, "training_ing", "long", percentage=step * 5.0, step=step)
    for step in range(1, 4):
        _send(broker, queue, "training_ing", "short", percentage=step * 10.0, step=step)
    server.wait_job("long", state="running", step=12, applied=12)
    server.wait_job("short", state="running", step=3)

    kept = server.wait_count("kept messages", lambda: server.messages("long"), 5, timeout=30)
    assert [m["step"] for m in kept] == [8, 9, 10, 11, 12], "the newest are kept"
    assert [m["step"] for m in server.messages("short")] == [1, 2, 3]
    job = server.job("long")
    assert job is not None
    assert (job["state"], job["step"], job["percentage"], job["applied"]) == (
        "running", 12, 60.0, 12,
    )  # fmt: skip
