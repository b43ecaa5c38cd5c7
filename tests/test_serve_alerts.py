"""``trainwire serve --webhook``: real ``serve`` processes, the real broker, SQLite and
PostgreSQL, and a real HTTP receiver (a small server in this test) that records every
POST and checks its HMAC-SHA256 signature.

Each alert state arrives with its fields; a receiver that is down gets each alert once
it is up, exactly once; ``kill -9`` of ``serve`` while a POST is in flight loses nothing
(the copy sent again carries the same event id); Korean stays Korean in a Slack body;
bad options stop ``serve`` at start with a clear message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from _postgres import Postgres
from _serve import ServeProcess, cli, publish_raw, serve_factory_fixture  # noqa: F401
from test_serve_browser import ARTIFACTS, browser  # noqa: F401

SECRET = "s3cret-for-webhooks"
KOREAN_ERROR = "학습 데이터 경로가 없습니다: /data/train (확인해 주세요)"
PUBLIC = "https://status.example.com/tw/"


class Receiver:
    """An HTTP server that records each POST (headers, body, signature check).

    ``mode``: ``"ok"`` answers 200; ``"fail"`` answers 500; ``"hold"`` records the POST
    and answers only once :attr:`release` is set (a request in flight)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.got: list[dict[str, Any]] = []
        self.mode = "ok"
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                with receiver.lock:
                    receiver.got.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "raw": body,
                            "json": json.loads(body.decode("utf-8")),
                            "signed": self.headers.get("X-Trainwire-Signature") == expected,
                        }
                    )
                if receiver.mode == "hold":
                    receiver.release.wait(60)
                self.send_response(500 if receiver.mode == "fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def posts(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self.lock:
            return [g for g in self.got if g["path"] == path]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.release.set()
    r.stop()


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture():
    pg = Postgres().start()
    yield pg
    pg.close()


@pytest.fixture(params=["sqlite", "postgresql"], name="db_url")
def db_url_fixture(request, tmp_path):
    """A new database: a SQLite file, or a database on the module's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.sqlite3'}"
    pg = request.getfixturevalue("postgres")
    return pg.create_database(f"alerts_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def secret_file(tmp_path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_text(SECRET + "\n")
    return path


def _body(status: str, job_id: str, **extra: Any) -> dict[str, Any]:
    from trainwire._spec._protocol import Identity, Kind, Status

    return {**Identity(Kind.TRAINING, "pk-alerts", job_id).base(Status(status)), **extra}


def _send(broker, queue, status: str, job_id: str, **extra: Any) -> None:
    publish_raw(broker, queue, _body(status, job_id, **extra), message_id=uuid.uuid4().hex)


def _serve(serve_factory, broker, queue, db_url, *args: str) -> ServeProcess:
    return serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", db_url, *args)


def _events(posts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(p["json"]["id"], p["json"]["state"]) for p in posts]


def test_each_state_reaches_the_webhooks_that_want_it_signed_with_its_fields(
    serve_factory, broker, queue, db_url, receiver, secret_file
):
    server = _serve(
        serve_factory, broker, queue, db_url, "--stale-after", "3",
        "--webhook", receiver.url("/all") + "#running,done,error,abnormal",
        "--webhook", receiver.url("/slack") + "#slack",
        "--webhook-secret-file", str(secret_file), "--public-url", PUBLIC.rstrip("/"),
    )  # fmt: skip
    assert "alerts (abnormal, error) to http://127.0.0.1:" in server.output()

    # Back to back (in one stored batch or two, the same events): never silent that long.
    _send(broker, queue, "training_ing", "m-done", percentage=10.0, step=1)
    _send(broker, queue, "training_done", "m-done")
    _send(broker, queue, "training_ing", "m/err 1", percentage=42.5, step=17)
    _send(broker, queue, "training_error", "m/err 1", message=KOREAN_ERROR)
    _send(broker, queue, "training_ing", "m-silent", percentage=5.0, step=3)
    server.wait_job("m-silent", state="abnormal", timeout=30)
    server.wait_count("JSON alerts", lambda: receiver.posts("/all"), 6, timeout=30)
    server.wait_count("Slack alerts", lambda: receiver.posts("/slack"), 2, timeout=30)

    posts = receiver.posts("/all")
    assert sorted(_events(posts)) == sorted(
        [("m-done", "running"), ("m-done", "done"), ("m/err 1", "running"),
         ("m/err 1", "error"), ("m-silent", "running"), ("m-silent", "abnormal")]
    )  # fmt: skip
    assert all(p["signed"] for p in receiver.got), "every body is signed with the secret"
    assert len({p["json"]["event_id"] for p in posts}) == 6
    for p in posts:
        assert p["headers"]["X-Trainwire-Event-Id"] == p["json"]["event_id"]
        assert p["headers"]["Content-Type"] == "application/json; charset=utf-8"
    error = next(p["json"] for p in posts if p["json"]["state"] == "error")
    assert error["message"] == KOREAN_ERROR
    assert KOREAN_ERROR.encode("utf-8") in next(p for p in posts if p["json"] is error)["raw"]
    assert error["kind"] == "training" and error["id"] == "m/err 1"
    assert error["project_key"] == "pk-a… (9 chars)", "masked as the API masks it"
    assert (error["percentage"], error["step"], error["previous_state"]) == (42.5, 17, "running")
    assert error["url"] == PUBLIC + "jobs/training/m%2Ferr%201"
    assert error["time"].endswith("Z")
    abnormal = next(p["json"] for p in posts if p["json"]["state"] == "abnormal")
    assert (abnormal["percentage"], abnormal["step"], abnormal["message"]) == (5.0, 3, None)
    done = next(p["json"] for p in posts if p["json"]["state"] == "done")
    assert done["percentage"] == 100.0

    slack = receiver.posts("/slack")
    assert [set(p["json"]) for p in slack] == [{"text"}, {"text"}]
    texts = {p["json"]["text"].split("\n")[0].split(" is ")[1] for p in slack}
    assert texts == {"error (42.5%, step 17)", "abnormal (5%, step 3)"}
    slack_error = next(p for p in slack if "error" in p["json"]["text"].split("\n")[0])
    assert KOREAN_ERROR.encode("utf-8") in slack_error["raw"], "Korean as UTF-8, not escaped"
    assert f"> {KOREAN_ERROR}" in slack_error["json"]["text"]
    assert f"<{PUBLIC}jobs/training/m%2Ferr%201|job page>" in slack_error["json"]["text"]

    report = server.get("/api/alerts")
    assert report["signed"] is True
    hooks = {h["format"]: h for h in report["webhooks"]}
    assert hooks["json"]["states"] == ["abnormal", "done", "error", "running"]
    assert hooks["json"]["url"] == f"http://127.0.0.1:{receiver.port}/…", "path hidden"
    assert (hooks["json"]["delivered"], hooks["json"]["pending"]) == (6, 0)
    assert (hooks["slack"]["delivered"], hooks["slack"]["last_error"]) == (2, None)


def test_a_receiver_that_is_down_gets_each_alert_once_when_it_is_up(
    serve_factory,
    broker,
    queue,
    tmp_path,
    secret_file,
    browser,  # noqa: F811 (fixture)
):
    receiver = Receiver()  # not listening yet: connections are refused
    db = f"sqlite:///{tmp_path / 'down.sqlite3'}"
    server = _serve(
        serve_factory, broker, queue, db, "--webhook", receiver.url(),
        "--webhook-secret-file", str(secret_file),
    )  # fmt: skip
    _send(broker, queue, "training_error", "m-1", message="first")
    _send(broker, queue, "training_error", "m-2", message="second")

    def failing() -> Any:
        hook = server.get("/api/alerts")["webhooks"][0]
        return hook if hook["failed"] >= 2 and hook["pending"] == 2 else None

    hook = server.wait_until("failed attempts", failing, timeout=30)
    assert hook["last_error"].startswith("cannot connect"), hook
    assert hook["delivered"] == 0 and hook["last_error_at"] is not None
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto(server.url + "/")
    notice = page.wait_for_selector("#alerts-notice", timeout=15_000)
    assert notice is not None
    text = notice.text_content() or ""
    assert f"Alerts to http://127.0.0.1:{receiver.port}/… are not getting through" in text
    assert "2 waiting" in text and "cannot connect" in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-alerts-notice.png"))
    receiver.start()
    try:

        def drained() -> Any:
            hook = server.get("/api/alerts")["webhooks"][0]
            return hook if hook["pending"] == 0 else None

        hook = server.wait_until("the outbox drained", drained, timeout=90)
        assert hook["delivered"] == 2 and hook["last_error"] is None
        posts = receiver.posts()
        assert [(p["json"]["id"], p["json"]["message"]) for p in posts] == [
            ("m-1", "first"),
            ("m-2", "second"),
        ], "each alert once, in order"
        assert all(p["signed"] for p in posts)
        page.wait_for_selector("#alerts-notice", state="detached", timeout=15_000)
    finally:
        page.close()
        receiver.stop()


def test_kill_9_while_a_post_is_in_flight_loses_nothing(
    serve_factory, broker, queue, db_url, receiver, tmp_path
):
    receiver.mode = "hold"
    args = ("--webhook", receiver.url() + "#running,error")
    server = _serve(serve_factory, broker, queue, db_url, *args)
    _send(broker, queue, "training_ing", "m-kill", percentage=50.0, step=5)
    first = server.wait_until("a POST in flight", receiver.posts)[0]["json"]
    assert first["state"] == "running"
    # The receiver holds that POST: messages are still received and applied meanwhile.
    for step in range(6, 9):
        _send(broker, queue, "training_ing", "m-kill", percentage=step * 10.0, step=step)
    server.wait_job("m-kill", state="running", step=8)
    assert {p["json"]["event_id"] for p in receiver.posts()} == {first["event_id"]}
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    _send(broker, queue, "training_error", "m-kill", message="after the crash")
    receiver.mode = "ok"
    receiver.release.set()

    again = _serve(serve_factory, broker, queue, db_url, *args)

    def drained() -> Any:
        hook = again.get("/api/alerts")["webhooks"][0]
        states = {p["json"]["state"] for p in receiver.posts()}
        return hook["pending"] == 0 and states == {"running", "error"}

    again.wait_until("both alerts delivered", drained, timeout=60)
    posts = receiver.posts()
    running = [p["json"] for p in posts if p["json"]["state"] == "running"]
    errors = [p["json"] for p in posts if p["json"]["state"] == "error"]
    assert len(running) >= 2, "the POST cut by kill -9 is sent again"
    assert {e["event_id"] for e in running} == {first["event_id"]}, "duplicates keep the id"
    assert [e["message"] for e in errors] == ["after the crash"]


def test_bad_alert_options_stop_serve_at_start_with_a_clear_message(broker, queue, tmp_path):
    empty = tmp_path / "empty.secret"
    empty.write_text("")
    base = ("serve", "--amqp-url", broker.amqp_url, "--queue", queue, "--port", "0")
    cases = [
        (("--webhook", "ftp://hooks.example.com/x"), "expected an http:// or https:// URL"),
        (("--webhook", "https://hooks.example.com/T0/B0/tok#error,oops"), "unknown word 'oops'"),
        (("--webhook", "https://hooks.example.com/T0/B0/tok en"), "no spaces"),
        (("--webhook", "https://hooks.example.com:x/tok"), "https://hooks.example.com:x/…"),
        (("--webhook", "http://h/x", "--webhook-secret-file", str(tmp_path / "none")),
         "not a regular file"),
        (("--webhook", "http://h/x", "--webhook-secret-file", str(empty)), "the file is empty"),
        (("--webhook-secret-file", str(empty)), "give --webhook URL too"),
        (("--webhook", "http://h/tok#error", "--webhook", "http://h/tok#done"), "given twice"),
        (("--webhook", "http://h/x", "--public-url", "status.example.com"), "--public-url"),
    ]  # fmt: skip
    for args, expected in cases:
        result = cli(*base, *args, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert "tok" not in result.stderr, "a webhook's path (its secret) is never shown"
        assert "web page at" not in result.stderr


def test_two_servers_on_one_postgres_send_each_alert_once(
    serve_factory, broker, queue, postgres, receiver
):
    db = postgres.create_database(f"alerts_two_{uuid.uuid4().hex[:8]}")
    hook = ("--webhook", receiver.url() + "#running,done,error")
    servers = [_serve(serve_factory, broker, queue, db, *hook) for _ in range(2)]
    jobs = [f"m-{i}" for i in range(20)]
    for job_id in jobs:
        _send(broker, queue, "training_ing", job_id, percentage=50.0, step=5)

    def all_running() -> bool:  # first: a done may not overtake its job's first message
        listed = servers[1].get("/api/jobs")
        return len(listed) == len(jobs) and all(j["state"] == "running" for j in listed)

    servers[1].wait_until("every job running", all_running)
    for job_id in jobs:
        _send(broker, queue, "training_done", job_id)

    def drained() -> bool:
        waiting = sum(s.get("/api/alerts")["webhooks"][0]["pending"] for s in servers)
        return waiting == 0 and len(receiver.posts()) >= 2 * len(jobs)

    servers[0].wait_until("every alert sent", drained, timeout=60)
    posts = receiver.posts()
    assert sorted(_events(posts)) == sorted(
        [(j, "running") for j in jobs] + [(j, "done") for j in jobs]
    ), "each alert once, whichever server stored the change or sent it"
    sent = [s.get("/api/alerts")["webhooks"][0]["delivered"] for s in servers]
    assert sum(sent) == 2 * len(jobs), sent


def test_the_outbox_leases_rows_and_stays_bounded(tmp_path):
    from trainwire._serve._store import open_store
    from trainwire._serve._store._outbox import CAP, LEASE, MAX_AGE, Route
    from trainwire._spec._protocol import JobState

    store = open_store(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    try:
        outbox = store.outbox
        outbox.routes = (Route("hook", frozenset({JobState.ERROR})),)
        now = 1_800_000_000.0

        def event(i: int, state: str = "error") -> dict[str, Any]:
            return {"event_id": f"e{i}", "state": state}

        with store.pool.write() as tx:  # type: ignore[attr-defined]
            outbox.add(tx, [event(0), event(1, "done"), event(2)], now - MAX_AGE - 1)
            outbox.add(tx, [event(i) for i in range(3, CAP + 8)], now)
        assert outbox.pending("hook").count == 2 + CAP + 5, "one row per wanted event"

        claimed = outbox.claim("hook", now)
        assert claimed is not None and claimed.event["event_id"] == "e0", "oldest first"
        assert outbox.claim("hook", now + LEASE - 1) is None, "leased: the next waits"
        again = outbox.claim("hook", now + LEASE + 1)
        assert again is not None and again.event["event_id"] == "e0", "sent again later"
        outbox.failed(again.row, now + LEASE + 10, "HTTP 500 Internal Server Error")
        head = outbox.pending("hook")
        assert (head.attempts, head.last_error) == (1, "HTTP 500 Internal Server Error")

        assert outbox.expire(["hook"], now) == 2 + 5, "too old, then beyond the cap"
        left = outbox.pending("hook")
        assert (left.count, left.oldest) == (CAP, now)
        first = outbox.claim("hook", now)
        assert first is not None and first.event["event_id"] == "e8", "the newest are kept"
        outbox.sent(first.row)
        assert outbox.pending("hook").count == CAP - 1
    finally:
        store.close()
