"""Fuzzing ``trainwire serve`` through the real broker: a few thousand generated bodies and
AMQP properties (random JSON shapes, huge numbers, lone surrogates, NUL, deep nesting,
random bytes, huge bodies, odd message ids and timestamps, nested headers), with a good
message of a sentinel job after every few of them. Every message must end stored (applied
or rejected with a reason, never quarantined), the sentinel job must follow every one of
its messages, every API answer must render, and the server's memory must stay bounded.

The seed is fixed and printed; ``TW_FUZZ_SEED=N`` replays another one.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Callable

import pika
import pytest

from _postgres import Postgres
from _serve import ServeError, ServeProcess, serve_factory_fixture  # noqa: F401
from trainwire._serve._store import OUTCOMES

SEED = int(os.environ.get("TW_FUZZ_SEED", "20251127"))
COUNT = 3000
#: A good message of the sentinel job after every this many generated ones.
SENTINEL_EVERY = 10
#: How much the server's resident memory may grow while it takes all of it.
RSS_GROWTH_LIMIT_MB = 150

HOSTILE_TEXT = ["\x00", "\ud800", "\udcff", "\x1b[31m", "\x7f", "\x9b", "\n", '"', "\\", "가", "😀"]
PLAIN_TEXT = ["x", "model"]


class Fuzzer:
    """Generates hostile bodies and properties from one seeded ``random.Random``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids: list[str | bytes] = []

    def text(self, hostile: float = 0.3) -> str:
        rng = self.rng
        if rng.random() >= hostile:
            return "".join(rng.choice("abcdefgh-_0123456789") for _ in range(rng.randint(1, 12)))
        pieces = [rng.choice([*HOSTILE_TEXT, *PLAIN_TEXT]) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.05:
            pieces.append("y" * rng.choice([513, 5000]))
        return "".join(pieces)

    def number(self) -> Any:
        rng = self.rng
        return rng.choice(
            [
                rng.randint(0, 10**6),
                rng.uniform(0, 100),
                -rng.randint(1, 10),
                2**63 - 1,
                2**63,
                2**64 + 7,
                10**30,
                1e308,
                -0.0,
                1.5,
                "@@HUGE_INT@@",
                "@@HUGE_FLOAT@@",
                "ten",
                None,
                True,
            ]
        )

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(7 if depth < 5 else 4)
        if kind == 0:
            return None
        if kind == 1:
            return self.number()
        if kind in (2, 3):
            return self.text(0.5)
        if kind in (4, 5):
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {self.text(0.2): self.value(depth + 1) for _ in range(rng.randint(0, 4))}

    def status_body(self) -> dict[str, Any]:
        rng = self.rng
        cmd = rng.choice(["training_status"] * 4 + ["validation_status", self.text()])
        body: dict[str, Any] = {
            "cmd": cmd,
            "project_key": self.text(0.2),
            self.id_field(cmd): self.text(0.4),
            "status": rng.choice(["training_ing"] * 3 + ["training_done", "training_error", "?"]),
            "percentage": rng.choice([rng.uniform(0, 100), self.number()]),
            "step": rng.choice([rng.randint(0, 10**6), self.number()]),
            "message": self.text(0.6),
        }
        for key in list(body):
            if rng.random() < 0.03:
                del body[key]
        if rng.random() < 0.2:
            body[self.text()] = self.value()
        return body

    def id_field(self, cmd: str) -> str:
        fields = ["model_id", "validation_id"]
        if cmd == "validation_status":
            fields.reverse()
        return fields[0] if self.rng.random() < 0.9 else fields[1]

    def encode(self, value: Any) -> bytes:
        rng = self.rng
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        text = text.replace('"@@HUGE_INT@@"', "1" + "0" * rng.choice([30, 400, 5000]))
        text = text.replace('"@@HUGE_FLOAT@@"', rng.choice(["1e400", "-1e400", "1.5e308"]))
        return text.encode("utf-8", "surrogatepass")  # a raw surrogate is invalid UTF-8

    def body(self) -> bytes:
        rng = self.rng
        shape = rng.choices(
            ["status", "json", "deep", "bytes", "big"], weights=[60, 15, 8, 15, 0.4]
        )[0]
        if shape == "status":
            return self.encode(self.status_body())
        if shape == "json":
            return self.encode(self.value())
        if shape == "deep":
            depth = rng.choice([500, 990, 5000, 100_000])
            opener, closer = rng.choice([("[", "]"), ('{"a": ', "}")])
            return (opener * depth + (closer * depth if rng.random() < 0.5 else "")).encode()
        if shape == "bytes":
            return rng.randbytes(rng.randint(0, 300))
        pad = "x" * rng.choice([900_000, 1_500_000])  # below and above the body limit
        return self.encode({**self.status_body(), "pad": pad})

    def message_id(self) -> str | bytes | None:
        rng = self.rng
        pick = rng.random()
        if pick < 0.15:
            return None
        if pick < 0.25 and self.ids:
            return rng.choice(self.ids)  # a duplicate
        if pick < 0.45:
            new: str | bytes = rng.randbytes(rng.randint(1, 40))
        elif pick < 0.5:
            new = "id\x00" + self.text(0.0)
        else:
            new = f"fuzz-{uuid.UUID(int=rng.getrandbits(128)).hex}"
        self.ids.append(new)
        return new

    def timestamp(self) -> int | None:
        rng = self.rng
        now = int(time.time())
        past, future = now - rng.randint(0, 10**6), now + rng.randint(1, 10**6)
        return rng.choice([None, now, past, future, 2**62, rng.randint(0, 2**64 - 1), 2**64 - 1, 0])

    def headers(self, depth: int = 0) -> dict[str, Any] | None:
        rng = self.rng
        if depth == 0 and rng.random() < 0.7:
            return None
        out: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            choice = rng.randrange(6 if depth < 40 else 4)
            out[self.text(0.0)] = (
                [rng.randint(-(2**62), 2**62), Decimal("1.5"), None, True, b"\xff\x00"][
                    rng.randrange(5)
                ]
                if choice < 2
                else self.text(0.0)
                if choice < 4
                else self.headers(depth + rng.randint(1, 10))
            )
        return out


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = Postgres().start()
    yield pg
    pg.close()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _db(kind: str, tmp_path: Any, request: Any) -> tuple[str, Callable[[str], str]]:
    if kind == "sqlite":
        path = tmp_path / "fuzz.sqlite3"

        def sql(text: str) -> str:
            conn = sqlite3.connect(path)
            try:
                return "\n".join("|".join(map(str, r)) for r in conn.execute(text).fetchall())
            finally:
                conn.close()

        return f"sqlite:///{path}", sql
    pg = request.getfixturevalue("postgres")
    name = f"tw_fuzz_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(name)
    return url, lambda text: pg.psql(text, name)


def _check_every_answer_renders(server: ServeProcess) -> dict[str, int]:
    """Page through every rejected message and the jobs' logs; every answer is JSON."""
    counts: dict[str, int] = server.get("/api/rejected")["counts"]
    seen, before = 0, ""
    while True:
        page = server.get(f"/api/rejected?limit=1000{before}")["messages"]
        if not page:
            break
        seen += len(page)
        before = f"&before={page[-1]['seq']}"
    assert seen == sum(counts.values())
    jobs = server.get("/api/jobs")
    for job in jobs[:150]:
        quoted = urllib.parse.quote(job["id"], safe="")
        assert server.status(f"/api/jobs/{job['kind']}/{quoted}/messages?limit=1000") == 200
        assert server.status(f"/api/jobs/{job['kind']}/{quoted}") == 200
        assert job["step"] is None or 0 <= job["step"] <= 2**63 - 1
        assert job["percentage"] is None or 0 <= job["percentage"] <= 100
    return counts


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_thousands_of_hostile_messages_are_each_stored_and_never_stop_serve(
    serve_factory, broker, queue, tmp_path, request, db
):
    print(f"fuzz seed {SEED} (replay with TW_FUZZ_SEED={SEED})")
    url, sql = _db(db, tmp_path, request)
    server = serve_factory("--amqp-url", broker.amqp_url, "--queue", queue, "--db", url)
    assert server.proc is not None
    rss_start = _rss_mb(server.proc.pid)
    fuzz = Fuzzer(SEED)
    conn = broker.connect()
    channel = conn.channel()  # no confirms, transient messages: the flood comes fast
    sentinels = 0
    started = time.monotonic()
    try:
        for i in range(COUNT):
            props = pika.BasicProperties(
                message_id=fuzz.message_id(),
                timestamp=fuzz.timestamp(),
                headers=fuzz.headers(),
            )
            channel.basic_publish("", queue, fuzz.body(), props)
            if i % SENTINEL_EVERY == 0:
                sentinels += 1
                body = {
                    "cmd": "training_status",
                    "project_key": "pk",
                    "model_id": "fuzz-sentinel",
                    "status": "training_ing",
                    "percentage": 50.0,
                    "step": sentinels,
                }
                props = pika.BasicProperties(
                    message_id=f"sentinel-{sentinels}", timestamp=int(time.time())
                )
                channel.basic_publish("", queue, json.dumps(body).encode(), props)
                # The sentinel follows each of its messages while the flood goes on.
                if sentinels % 50 == 0:
                    server.wait_job("fuzz-sentinel", step=sentinels, timeout=10)
    finally:
        conn.close()
    total = COUNT + sentinels
    rss_peak = rss_start
    published = time.monotonic()

    def all_stored() -> bool:
        nonlocal rss_peak
        rss_peak = max(rss_peak, _rss_mb(server.proc.pid))  # type: ignore[union-attr]
        return int(server.get("/api/health")["received"]) == total

    try:
        server.wait_until(f"{total} messages received", all_stored, timeout=60)
    except ServeError:
        print(f"fuzz seed {SEED}: stored {sql('SELECT count(*) FROM tw_messages')} of {total}")
        raise
    assert int(sql("SELECT count(*) FROM tw_messages")) == total
    stored = time.monotonic()
    server.wait_until("an empty queue", lambda: broker.list_queues()[queue] == 0)
    job = server.wait_job("fuzz-sentinel", state="running", step=sentinels)
    assert job["applied"] == sentinels
    log = server.messages("fuzz-sentinel")
    expected = [(f"sentinel-{i}", "applied", False) for i in range(1, sentinels + 1)]
    assert [(m["message_id"], m["outcome"], m["superseded"]) for m in log] == expected
    counts = _check_every_answer_renders(server)
    assert set(counts) <= set(OUTCOMES) and "quarantined" not in counts, counts
    assert "Traceback" not in server.output()
    print(f"fuzz seed {SEED}: {total} messages, rejected {counts}")
    print(
        f"published in {published - started:.1f} s, all stored {stored - published:.1f} s later,"
        f" checked in {time.monotonic() - stored:.1f} s"
    )
    print(f"serve RSS {rss_start:.0f} MB at start, {rss_peak:.0f} MB at most")
    assert rss_peak - rss_start < RSS_GROWTH_LIMIT_MB
