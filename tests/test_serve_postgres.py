"""Two ``trainwire serve`` processes share one queue and one real PostgreSQL: 20 concurrent
runs (4 processes x 5 threads, every step sent) publish 10,000 messages; every run ends in
the right state and every message is applied exactly once. And a server killed with
SIGKILL again and again while it drains a queue still applies each message once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import trainwire
from _postgres import Postgres
from _serve import serve_factory_fixture  # noqa: F401

RUNS = 20
MESSAGES_PER_RUN = 500  # 499 x training_ing + the terminal message
FAILING = {7, 13}  # these runs end with training_error

PROCESSES = 4  # each runs RUNS / PROCESSES runs at once, one thread per run
RUN_SCRIPT = """
import json
import sys
import threading

import trainwire

total = int(sys.argv[1])
results = {}


def one(config, fail, label):
    run = trainwire.init(config, total_steps=total, max_rate=None, flush_timeout=90)
    for step in range(1, total):
        run.progress(step)
    if fail:
        run.fail("학습 데이터가 잘못되었습니다 (" + label + ")")
    else:
        run.done()
    results[label] = run.delivered


threads = [threading.Thread(target=one, args=tuple(job)) for job in json.loads(sys.argv[2])]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(results)
sys.exit(0 if all(results.values()) and len(results) == len(threads) else 3)
"""


@pytest.fixture(scope="module")
def postgres():
    """One private PostgreSQL server for this module."""
    pg = Postgres().start()
    yield pg
    pg.close()


def test_two_servers_on_one_postgres_apply_10000_messages_exactly_once(
    postgres, serve_factory, broker, queue, make_config, tmp_path
):
    db = postgres.create_database("tw_two_servers")
    name = db.rsplit("/", 1)[1]
    args = ("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db, "--prefetch", "50")
    servers = [serve_factory(*args), serve_factory(*args)]
    configs = [make_config(model_id=f"model-{i:02d}") for i in range(RUNS)]

    work = [(str(cfg), i in FAILING, f"run {i}") for i, cfg in enumerate(configs)]
    publishers = []
    for p in range(PROCESSES):
        mine = json.dumps(work[p::PROCESSES])
        argv = [sys.executable, "-c", RUN_SCRIPT, str(MESSAGES_PER_RUN), mine]
        publishers.append(
            subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    for i, proc in enumerate(publishers):
        out, _ = proc.communicate(timeout=150)
        assert proc.returncode == 0, f"publisher {i} exited {proc.returncode}:\n{out.decode()}"

    total = RUNS * MESSAGES_PER_RUN
    q = postgres.psql

    def logged() -> bool:
        return int(q("SELECT count(*) FROM tw_messages", name)) == total

    servers[0].wait_until(f"{total} logged messages", logged, timeout=150)
    assert broker.list_queues()[queue] == 0

    # Every run's final state, as both servers show it.
    for server in servers:
        jobs = {j["id"]: j for j in server.get("/api/jobs")}
        assert len(jobs) == RUNS
        for i in range(RUNS):
            job = jobs[f"model-{i:02d}"]
            if i in FAILING:
                expected = f"학습 데이터가 잘못되었습니다 (run {i})"
                assert (job["state"], job["message"]) == ("error", expected)
            else:
                assert (job["state"], job["percentage"], job["message"]) == ("done", 100.0, None)

    # Each message applied once: one seen id and one log row per message, none rejected.
    assert int(q("SELECT count(*) FROM tw_seen", name)) == total
    applied = "SELECT count(*), count(DISTINCT message_id) FROM tw_messages WHERE outcome = "
    assert q(applied + "'applied'", name) == f"{total}|{total}"
    assert q("SELECT count(*) FROM tw_messages WHERE outcome <> 'applied'", name) == "0"
    per_job = q("SELECT job_id, count(*) FROM tw_messages GROUP BY job_id ORDER BY job_id", name)
    assert per_job.splitlines() == [f"model-{i:02d}|{MESSAGES_PER_RUN}" for i in range(RUNS)]
    # The job rows count every message applied, superseded ones (delivered out of order by
    # the other consumer: counted, but they move nothing) included.
    assert int(q("SELECT sum(applied) FROM tw_jobs", name)) == total
    superseded = int(q("SELECT count(*) FROM tw_messages WHERE superseded = 1", name))
    # Both servers did part of the work.
    received = [s.get("/api/health")["received"] for s in servers]
    assert sum(received) == total and min(received) > 0, received
    print(f"\nreceived per server {received}; applied {total}, of which superseded {superseded}")


def test_messages_wait_in_the_queue_while_the_database_is_down(
    postgres, serve_factory, broker, queue, make_config
):
    db = postgres.create_database("tw_outage")
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db)
    run = trainwire.init(make_config(model_id="model-outage"), total_steps=10, max_rate=None)
    run.progress(1)
    server.wait_job("model-outage", state="running", step=1)

    postgres.stop()
    try:
        run.progress(2)
        run.done()
        assert run.delivered
        server.wait_until(
            "the receiver to notice",
            lambda: "database failed" in server.output(),
            timeout=30,
        )
        # Not acknowledged: both messages are still the broker's.
        assert broker.list_queues()[queue] == 2
    finally:
        postgres.start()
    done = server.wait_job("model-outage", state="done", timeout=60)
    assert (done["step"], done["applied"]) == (2, 3)
    name = db.rsplit("/", 1)[1]
    assert postgres.psql("SELECT count(*), count(DISTINCT message_id) FROM tw_seen", name) == "3|3"
    assert "the database works again" in server.output()


def test_kill_9_of_serve_at_any_moment_of_ingest_applies_each_message_once(
    postgres, serve_factory, broker, queue
):
    # A batch's statements and its COMMIT go in one pipelined round trip, and the ack only
    # after it: a server killed anywhere in between leaves the batch either uncommitted
    # (redelivered, applied then) or committed without its ack (redelivered, a duplicate).
    import os
    import random
    import signal
    import time
    import uuid

    import pika

    from trainwire._spec._protocol import Identity, Kind, done_message, encode, progress_message

    jobs, steps = 200, 29
    db = postgres.create_database(f"tw_kill_{uuid.uuid4().hex[:8]}")
    name = db.rsplit("/", 1)[1]
    conn = broker.connect()
    channel = conn.channel()
    channel.confirm_delivery()
    ids = [Identity(Kind.TRAINING, "pk", f"kill-{j:03d}") for j in range(jobs)]
    for step in range(1, steps + 2):
        for identity in ids:
            body = progress_message(identity, step, step * 3.0) if step <= steps else None
            channel.basic_publish(
                "", queue, encode(body or done_message(identity)),
                pika.BasicProperties(delivery_mode=2, message_id=uuid.uuid4().hex),
            )  # fmt: skip
    conn.close()
    total = jobs * (steps + 1)
    args = ("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db, "--prefetch", "50")
    q = postgres.psql
    rng = random.Random()
    kills = 0
    while kills < 8:  # the tables exist once the first server started
        server = serve_factory(*args)
        time.sleep(rng.uniform(0.05, 0.6))
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        kills += 1
        if int(q("SELECT count(*) FROM tw_seen", name)) > total * 3 // 4:
            break
    server = serve_factory(*args)
    server.wait_until("an empty queue", lambda: broker.list_queues()[queue] == 0, timeout=120)
    applied = "SELECT count(*), count(DISTINCT message_id) FROM tw_messages WHERE outcome = "
    assert q(applied + "'applied'", name) == f"{total}|{total}"
    assert int(q("SELECT count(*) FROM tw_seen", name)) == total
    assert q("SELECT count(*) FROM tw_messages WHERE outcome NOT IN ('applied', 'duplicate')",
             name) == "0"  # fmt: skip
    states = q("SELECT state, applied, count(*) FROM tw_jobs GROUP BY state, applied", name)
    assert states == f"done|{steps + 1}|{jobs}", states
    duplicates = q("SELECT count(*) FROM tw_messages WHERE outcome = 'duplicate'", name)
    print(f"\n{kills} kill -9 during ingest; {total} applied once each, {duplicates} redelivered")
