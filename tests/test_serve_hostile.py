"""Hostile input never stops ``trainwire serve``: real ``serve`` processes on SQLite and on
PostgreSQL, the real broker. Each bad message is published before a good one; the good one
must be applied within seconds and the bad one stored as rejected with its reason.

Also here: the database refusing one row (a real trigger) quarantines that message only,
a message pika cannot even decode ends in a quorum queue's dead-letter queue, and the
SQLite file is created readable by its owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pika
import pytest

from _postgres import Postgres
from _serve import ServeProcess

DBS = ["sqlite", "postgresql"]
#: A good message after a bad one must be applied within this many seconds.
PROMPT = 10.0
MAX_STEP = 2**63 - 1


def _body(job: str, status: str = "training_ing", **extra: Any) -> dict[str, Any]:
    body = {"cmd": "training_status", "project_key": "pk-test", "model_id": job, "status": status}
    return {**body, **extra}


def _progress(job: str, step: int, **extra: Any) -> dict[str, Any]:
    return _body(job, **{"percentage": float(min(step, 100)), "step": step, **extra})


def _raw(text: str) -> bytes:
    return text.encode("utf-8")


class Publisher:
    """One confirmed channel to the queue, for many hand-made messages."""

    def __init__(self, broker: Any, queue: str) -> None:
        self.queue = queue
        self.conn = broker.connect()
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()

    def send(
        self,
        body: bytes | dict[str, Any],
        *,
        message_id: str | bytes | None = None,
        timestamp: int | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(body, dict):
            body = json.dumps(body).encode("ascii")  # \\uXXXX escapes stay escapes
        props = pika.BasicProperties(
            delivery_mode=2, message_id=message_id, timestamp=timestamp, headers=headers
        )
        self.channel.basic_publish("", self.queue, body, props, mandatory=True)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Platform:
    """One ``serve`` on one database, consuming its own queue."""

    db: str
    url: str
    queue: str
    server: ServeProcess
    publisher: Publisher
    sqlite_path: Path | None
    sql: Callable[[str], str]

    def rejected(self, message_id: str) -> dict[str, Any]:
        for m in self.server.get("/api/rejected?limit=1000")["messages"]:
            if m["message_id"] == message_id:
                return m  # type: ignore[no-any-return]
        raise AssertionError(f"{message_id!r} is not among the rejected messages")

    def log(self, job: str) -> list[dict[str, Any]]:
        quoted = urllib.parse.quote(job, safe="")
        return list(reversed(self.server.get(f"/api/jobs/training/{quoted}/messages?limit=1000")))


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres().start()
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def platforms(broker, postgres, tmp_path_factory) -> Iterator[Callable[[str], Platform]]:
    """``platforms(db)``: the module's serve on ``db`` (started once, on first use)."""
    started: dict[str, Platform] = {}
    work = tmp_path_factory.mktemp("hostile")

    def get(db: str) -> Platform:
        if db in started:
            return started[db]
        queue = broker.declare_queue(f"tw-hostile-{db}-{uuid.uuid4().hex[:8]}")
        sqlite_path: Path | None = None
        if db == "sqlite":
            sqlite_path = work / "hostile.sqlite3"
            url = f"sqlite:///{sqlite_path}"

            def sql(text: str) -> str:
                with contextlib.closing(sqlite3.connect(sqlite_path, isolation_level=None)) as c:
                    rows = c.execute(text).fetchall()
                return "\n".join("|".join(str(v) for v in row) for row in rows)
        else:
            name = f"tw_hostile_{uuid.uuid4().hex[:8]}"
            url = postgres.create_database(name)

            def sql(text: str) -> str:
                return postgres.psql(text, name)

        args = ["--amqp-url", broker.amqp_url, "--queue", queue, "--db", url]
        server = ServeProcess(args, work).start()
        started[db] = Platform(db, url, queue, server, Publisher(broker, queue), sqlite_path, sql)
        return started[db]

    yield get
    for p in started.values():
        p.publisher.close()
        p.server.stop()
        broker.delete_queue(p.queue)


@dataclass(frozen=True)
class Bad:
    """A message that must be rejected, and the reasons it may be rejected for."""

    name: str
    body: bytes | dict[str, Any]
    reasons: frozenset[str]
    #: A piece of the stored detail.
    says: str = ""


def _bad(name: str, body: bytes | dict[str, Any], *reasons: str, says: str = "") -> Bad:
    return Bad(name, body, frozenset(reasons), says)


BAD = [
    _bad("deep-array", b"[" * 100_000, "malformed_json", says="nested too deeply"),
    _bad("deep-object", b'{"a": ' * 50_000, "malformed_json", says="nested too deeply"),
    _bad(
        "deep-cmd",
        _raw('{"cmd": ' + "[" * 900 + "]" * 900 + ', "model_id": "deep-cmd"}'),
        "bad_field",
    ),
    _bad("step-2**63", _progress("step", 2**63), "bad_field", says=f"0..{MAX_STEP}"),
    _bad(
        "step-5000-digits",
        _raw(json.dumps(_progress("digits", 1))[:-1] + ', "step": 1' + "0" * 5000 + "}"),
        "malformed_json",
        "bad_field",
    ),
    _bad(
        "percentage-400-digits",
        _raw(json.dumps(_body("pct", step=1))[:-1] + ', "percentage": 1' + "0" * 400 + "}"),
        "bad_field",
        "percentage_out_of_range",
    ),
    _bad(
        "percentage-1e400",
        _raw(json.dumps(_body("pct", step=1))[:-1] + ', "percentage": 1e400}'),
        "bad_field",
    ),
    _bad("surrogate-model-id", _progress("\ud800", 1), "bad_field", says="model_id"),
    _bad("nul-model-id", _progress("model\x00x", 1), "bad_field", says="model_id"),
    _bad("escape-project-key", {**_progress("k", 1), "project_key": "pk\x1b[31m"}, "bad_field"),
    _bad("long-model-id", _progress("m" * 600, 1), "bad_field", says="model_id"),
    _bad("surrogate-status", _body("s", status="\udcff"), "unknown_status"),
    _bad("raw-nul-in-body", b'{"cmd": "training_status", \x00 }', "malformed_json"),
    _bad(
        "too-large",
        json.dumps({**_progress("big", 1), "pad": "x" * (2 << 20)}).encode(),
        "too_large",
        says="bytes",
    ),
    # What held up before: keep it tested on both databases.
    _bad("empty", b"", "malformed_json"),
    _bad("not-utf-8", b"\xff\xfe\x00not utf-8", "malformed_json"),
    _bad("wrong-type", _progress("t", 1, percentage="ten"), "bad_field"),
    _bad("unknown-status", _body("u", status="training_finished"), "unknown_status"),
]


@pytest.mark.parametrize("db", DBS)
@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_a_bad_message_is_rejected_with_its_reason_and_the_next_one_is_applied(platforms, db, bad):
    p = platforms(db)
    good = f"after-{bad.name}"
    p.publisher.send(bad.body, message_id=f"bad-{bad.name}")
    p.publisher.send(_progress(good, 1), message_id=f"good-{bad.name}")
    p.server.wait_job(good, state="running", step=1, timeout=PROMPT)
    stored = p.rejected(f"bad-{bad.name}")
    assert stored["outcome"] in bad.reasons, stored
    assert stored["rejected"] and stored["detail"] and bad.says in stored["detail"], stored
    assert stored["body"] is not None and "\x00" not in stored["body"]


@pytest.mark.parametrize("db", DBS)
def test_a_rejected_body_keeps_what_was_sent_with_unstorable_characters_replaced(platforms, db):
    p = platforms(db)
    p.publisher.send(b'{"cmd": "training_status", \x00 "x": "\\ud800" }', message_id="nul-body")
    p.publisher.send({**_progress("\ud800", 1), "x": 1}, message_id="masked-body")
    p.publisher.send(_progress("after-bodies", 1), message_id="after-bodies")
    p.server.wait_job("after-bodies", state="running", timeout=PROMPT)
    assert p.rejected("nul-body")["body"] == '{"cmd": "training_status", \ufffd "x": "\\ud800" }'
    # The key is masked by decoding the stored body: its escapes must not come back raw.
    masked = p.rejected("masked-body")["body"]
    assert "pk-test" not in masked and "\ufffd" in masked


@pytest.mark.parametrize("db", DBS)
def test_an_error_message_is_cleaned_and_cut_but_never_lost(platforms, db):
    p = platforms(db)
    texts = {
        "err-surrogate": ("데이터 \ud800 오류", "데이터 \ufffd 오류"),
        "err-nul": ("a\x00b\x1b[31mc\n", "ab[31mc\n"),
        "err-long": ("가" * 5000, "가" * 999 + "\u2026"),
    }
    for job, (sent, _) in texts.items():
        p.publisher.send(_body(job, "training_error", message=sent), message_id=job)
    p.publisher.send(_progress("after-errors", 1), message_id="after-errors")
    p.server.wait_job("after-errors", state="running", timeout=PROMPT)
    for job, (_, shown) in texts.items():
        stored = p.server.wait_job(job, state="error", timeout=PROMPT)
        assert stored["message"] == shown


@pytest.mark.parametrize("db", DBS)
@pytest.mark.parametrize(
    "future",
    [lambda now: 2**64 - 1, lambda now: 2**62, lambda now: now + 3600],
    ids=["2**64-1", "2**62", "an-hour-ahead"],
)
def test_a_timestamp_from_the_future_is_taken_as_the_receive_time(platforms, db, future):
    p = platforms(db)
    sent = future(int(time.time()))
    job = f"future-{sent}"
    p.publisher.send(_progress(job, 5), message_id=f"{job}-5", timestamp=sent)
    p.server.wait_job(job, state="running", step=5, timeout=PROMPT)
    # Published now, after it: it moves the job (a frozen job would call it superseded).
    p.publisher.send(_progress(job, 6), message_id=f"{job}-6", timestamp=int(time.time()))
    p.server.wait_job(job, state="running", step=6, timeout=PROMPT)
    log = p.log(job)
    assert [(m["step"], m["outcome"], m["superseded"]) for m in log] == [
        (5, "applied", False),
        (6, "applied", False),
    ]
    # Shown as the receive time (never later than now), not as a date nobody can show.
    # (Up to 10 s ahead is believed: test_serve_states relies on it for "published after".)
    assert log[0]["published_at"] is not None
    assert log[0]["published_at"] <= time.strftime("%Y-%m-%dT%H:%M:%S.999Z", time.gmtime())


@pytest.mark.parametrize("db", DBS)
def test_a_message_id_that_is_not_utf8_is_found_again_as_a_duplicate(platforms, db):
    p = platforms(db)
    body = _progress("raw-id", 1)
    p.publisher.send(body, message_id=b"\xff\xfe-raw-id")
    p.publisher.send(body, message_id="plain-id")  # str and bytes ids in one batch
    p.publisher.send(body, message_id=b"\xff\xfe-raw-id")
    p.publisher.send(_progress("raw-id", 2), message_id="raw-id\x00nul")
    p.publisher.send(_progress("raw-id", 3), message_id="raw-id\x00nul")
    p.server.wait_job("raw-id", step=2, timeout=PROMPT)
    log = p.server.wait_count("logged messages", lambda: p.log("raw-id"), 5, timeout=PROMPT)
    assert [(m["message_id"], m["outcome"]) for m in log] == [
        ("\\xff\\xfe-raw-id", "applied"),
        ("plain-id", "applied"),
        ("\\xff\\xfe-raw-id", "duplicate"),
        ("raw-id\ufffdnul", "applied"),
        ("raw-id\ufffdnul", "duplicate"),
    ]
    assert p.server.status("/api/rejected") == 200
    assert p.rejected("\\xff\\xfe-raw-id")["outcome"] == "duplicate"


def _refuse_job_rows(p: Platform, job: str, text: str, table: str = "tw_jobs") -> None:
    """A real trigger that makes the database refuse the rows of one job in ``table``."""
    if p.db == "sqlite":
        p.sql(
            f"CREATE TRIGGER tw_test_refuse BEFORE INSERT ON {table} WHEN NEW.job_id = '{job}'"
            f" BEGIN SELECT RAISE(ABORT, '{text}'); END"
        )
    else:
        p.sql(
            "CREATE FUNCTION tw_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF NEW.job_id = '{job}' THEN RAISE EXCEPTION '{text}'; END IF;"
            " RETURN NEW; END $$;"
            f" CREATE TRIGGER tw_test_refuse BEFORE INSERT ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION tw_test_refuse()"
        )


def _allow_job_rows(p: Platform, table: str = "tw_jobs") -> None:
    if p.db == "sqlite":
        p.sql("DROP TRIGGER tw_test_refuse")
    else:
        p.sql(f"DROP TRIGGER tw_test_refuse ON {table}; DROP FUNCTION tw_test_refuse()")


def _five_around_one(p: Platform, prefix: str, poison_id: str) -> None:
    """Five progress messages of ``{prefix}neighbour`` with one of ``{prefix}poison-job`` in
    their midst; returns once the five are applied."""
    for i in range(5):
        p.publisher.send(
            _progress(f"{prefix}neighbour", i + 1), message_id=f"{prefix}neighbour-{i}"
        )
        if i == 2:
            p.publisher.send(_progress(f"{prefix}poison-job", 1), message_id=poison_id)
    p.server.wait_job(f"{prefix}neighbour", state="running", step=5, applied=5, timeout=PROMPT)


@pytest.mark.parametrize("db", DBS)
def test_a_message_the_database_refuses_is_quarantined_and_the_others_are_applied(
    platforms, broker, db
):
    p = platforms(db)
    _refuse_job_rows(p, "poison-job", "poison row refused by a test trigger")
    try:
        _five_around_one(p, "", "poison")
        stored = p.rejected("poison")
        assert stored["outcome"] == "quarantined"
        assert "poison row refused by a test trigger" in stored["detail"]
        assert stored["id"] == "poison-job" and stored["body"]
        assert p.server.job("poison-job") is None
        p.server.wait_until("an empty queue", lambda: broker.list_queues()[p.queue] == 0)
        assert "quarantined" in p.server.output()
    finally:
        _allow_job_rows(p)
    # A redelivered copy of it is a duplicate, not a second quarantine.
    p.publisher.send(_progress("poison-job", 1), message_id="poison")
    p.publisher.send(_progress("neighbour", 6), message_id="neighbour-6")
    p.server.wait_job("neighbour", step=6, timeout=PROMPT)
    rejected = p.server.get("/api/rejected?limit=1000")["messages"]
    outcomes = [m["outcome"] for m in rejected if m["message_id"] == "poison"]
    assert outcomes == ["duplicate", "quarantined"]


@pytest.mark.parametrize("db", DBS)
def test_a_log_row_the_database_refuses_at_commit_is_quarantined_and_the_others_are_applied(
    platforms, broker, db
):
    # The log is written last (on PostgreSQL with the COMMIT, in one pipelined round trip):
    # a refusal there fails the batch late, and still only its message is set aside.
    p = platforms(db)
    _refuse_job_rows(p, "log-poison-job", "log row refused by a test trigger", table="tw_messages")
    try:
        _five_around_one(p, "log-", "log-poison")
        p.server.wait_until("an empty queue", lambda: broker.list_queues()[p.queue] == 0)
        rejected = p.server.get("/api/rejected?limit=1000")["messages"]
        # Even its whole quarantine row names the job: the bare one is kept.
        bare = [m for m in rejected if m["outcome"] == "quarantined" and m["message_id"] is None]
        assert len(bare) == 1 and bare[0]["body"] is None, bare
        assert "refused this message even on its own" in bare[0]["detail"]
        assert p.server.job("log-poison-job") is None
        assert [m["message_id"] for m in p.log("log-neighbour")] == [
            f"log-neighbour-{i}" for i in range(5)
        ]
    finally:
        _allow_job_rows(p, table="tw_messages")


def test_a_row_refused_once_is_applied_on_its_own_not_quarantined(platforms):
    p = platforms("postgresql")
    # A real trigger refuses the job's first row only: a sequence counts the attempts
    # (nextval is not rolled back with the failed batch).
    p.sql(
        "CREATE SEQUENCE tw_test_once;"
        " CREATE FUNCTION tw_test_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.job_id = 'hiccup-job' AND nextval('tw_test_once') = 1 THEN"
        " RAISE EXCEPTION 'a passing hiccup'; END IF; RETURN NEW; END $$;"
        " CREATE TRIGGER tw_test_once BEFORE INSERT ON tw_jobs"
        " FOR EACH ROW EXECUTE FUNCTION tw_test_once()"
    )
    try:
        p.publisher.send(_progress("hiccup-job", 1), message_id="hiccup")
        p.server.wait_job("hiccup-job", state="running", step=1, timeout=PROMPT)
        assert [m["outcome"] for m in p.log("hiccup-job")] == ["applied"]
        assert p.sql("SELECT last_value FROM tw_test_once") == "2"  # it did fail once
    finally:
        p.sql(
            "DROP TRIGGER tw_test_once ON tw_jobs; DROP FUNCTION tw_test_once();"
            " DROP SEQUENCE tw_test_once"
        )


def test_the_sqlite_file_is_created_readable_by_its_owner_only(platforms):
    p = platforms("sqlite")
    assert p.sqlite_path is not None
    files = [p.sqlite_path, *p.sqlite_path.parent.glob(p.sqlite_path.name + "-*")]
    modes = {f.name: oct(stat.S_IMODE(os.stat(f).st_mode)) for f in files}
    assert len(files) >= 2, modes  # the database and its WAL
    assert set(modes.values()) == {"0o600"}, modes


POISON_HEADERS = """
import sys
import pika

sys.setrecursionlimit(50_000)
headers = inner = {}
for _ in range(3000):  # pika's recursive decoder gives up long before this depth
    inner["a"] = {}
    inner = inner["a"]
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
channel = conn.channel()
channel.confirm_delivery()
props = pika.BasicProperties(delivery_mode=2, message_id="poison", headers=headers)
channel.basic_publish("", sys.argv[2], sys.argv[3].encode(), props, mandatory=True)
conn.close()
"""
#: Reads it back: the test process's pika could not decode it either.
GET_POISON = """
import sys
import pika

sys.setrecursionlimit(50_000)
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
method, props, body = conn.channel().basic_get(sys.argv[2], auto_ack=True)
reason = props.headers["x-death"][0]["reason"]
print(props.message_id, reason.decode() if isinstance(reason, bytes) else reason)
conn.close()
"""


def test_a_message_pika_cannot_decode_ends_in_the_dead_letter_queue(broker, tmp_path):
    name = f"tw-quorum-{uuid.uuid4().hex[:8]}"
    dead = f"{name}-dead"
    with broker.connect() as conn:
        channel = conn.channel()
        channel.exchange_declare(dead, "fanout", durable=True)
        channel.queue_declare(dead, durable=True)
        channel.queue_bind(dead, dead)
        arguments = {
            "x-queue-type": "quorum",
            "x-delivery-limit": 2,
            "x-dead-letter-exchange": dead,
        }
        channel.queue_declare(name, durable=True, arguments=arguments)
    publisher = Publisher(broker, name)
    try:
        publisher.send(_progress("dlx-job", 1), message_id="before")
        poison = json.dumps(_progress("dlx-job", 2))
        cmd = [sys.executable, "-c", POISON_HEADERS, broker.amqp_url, name, poison]
        subprocess.run(cmd, check=True, timeout=60)
        for step in (3, 4, 5):
            publisher.send(_progress("dlx-job", step), message_id=f"after-{step}")
        server = ServeProcess(
            ["--amqp-url", broker.amqp_url, "--queue", name, "--db", "sqlite:///dlx.sqlite3"],
            tmp_path,
        ).start()
        try:
            # Three failed deliveries (0.5 s + 1 s + 2 s of backoff), then the broker
            # dead-letters it and the messages after it go through.
            server.wait_job("dlx-job", state="running", step=5, timeout=30)
            # Each once, none lost to the limit with it (their order may change).
            applied = sorted(m["message_id"] for m in server.messages("dlx-job"))
            assert applied == ["after-3", "after-4", "after-5", "before"]
            server.wait_until(  # a quorum queue's count can lag a few seconds
                "the poison message in the dead-letter queue, none left in the queue",
                lambda: (broker.list_queues().get(dead), broker.list_queues().get(name)) == (1, 0),
                timeout=30,
            )
            cmd = [sys.executable, "-c", GET_POISON, broker.amqp_url, dead]
            got = subprocess.run(cmd, timeout=60, capture_output=True, text=True)
            assert got.stdout.split() == ["poison", "delivery_limit"], got.stderr[-2000:]
            assert "RecursionError" in server.output()
        finally:
            server.stop()
    finally:
        publisher.close()
        broker.delete_queue(name)
        broker.delete_queue(dead)
