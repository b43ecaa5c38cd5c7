"""``GET /metrics`` of real ``serve`` processes, parsed with prometheus-client's own parser:
every family, on SQLite and PostgreSQL, and the consumer gauge when the broker goes away."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from _postgres import Postgres
from _serve import publish_raw, serve_factory_fixture  # noqa: F401
from trainwire._serve._store import OUTCOMES
from trainwire._spec._protocol import (
    Identity,
    JobState,
    Kind,
    done_message,
    encode,
    progress_message,
)


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres().start()
    yield pg
    pg.close()


def scrape(server) -> dict[str, dict[tuple, float]]:
    """Family name -> {sorted label items: value}, as Prometheus would read the page."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode("utf-8")
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            tuple(sorted(s.labels.items())): s.value
            for s in family.samples
            if not s.name.endswith("_created")
        }
    return families


def _send(broker, queue, msg, mid=None) -> None:
    publish_raw(broker, queue, encode(msg), message_id=mid or uuid.uuid4().hex)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_metrics_page_has_every_family(db, serve_factory, broker, queue, request):
    args = ["--amqp-url", broker.amqp_url, "--queue", queue]
    if db == "postgresql":
        args += [
            "--db",
            request.getfixturevalue("postgres").create_database("m_" + uuid.uuid4().hex[:8]),
        ]
    server = serve_factory(*args)
    first = scrape(server)
    assert first["trainwire_serve_consumer_connected"] == {(): 1.0}
    assert first["trainwire_serve_ingest_messages_per_second"] == {(): 0.0}
    # Each kind x state pair is there from the start, at 0.
    assert len(first["trainwire_serve_jobs"]) == len(Kind) * len(JobState)
    assert set(first["trainwire_serve_jobs"].values()) == {0.0}

    a, b = Identity(Kind.TRAINING, "pk", "a"), Identity(Kind.VALIDATION, "pk", "v")
    _send(broker, queue, progress_message(a, 1, 10.0), mid="dup")
    _send(broker, queue, progress_message(a, 2, 20.0), mid="dup")  # a duplicate
    _send(broker, queue, progress_message(b, 1, 50.0))
    _send(broker, queue, done_message(b))
    publish_raw(broker, queue, b"not json", message_id="junk")
    server.wait_count("rejected", server.rejected, 2)
    server.wait_job("v", kind="validation", state="done")

    page = scrape(server)
    jobs = page["trainwire_serve_jobs"]
    assert jobs[(("kind", "training"), ("state", "running"))] == 1
    assert jobs[(("kind", "validation"), ("state", "done"))] == 1
    assert sum(jobs.values()) == 2
    received = page["trainwire_serve_messages_received"]
    assert {k[0][1]: v for k, v in received.items() if v} == {
        "applied": 3,
        "duplicate": 1,
        "malformed_json": 1,
    }
    assert {k[0][1] for k in received} == set(OUTCOMES)  # every reason, even at 0
    assert page["trainwire_serve_ingest_messages_per_second"][()] > 0
    assert 0 <= page["trainwire_serve_seconds_since_last_message"][()] < 30
    assert "trainwire_serve_alerts_sent" not in page  # no --webhook


def test_consumer_gauge_and_silence_follow_the_broker(serve_factory, proxy, broker, queue):
    gate = proxy()
    server = serve_factory(
        "--amqp-url", f"amqp://guest:guest@127.0.0.1:{gate.port}/%2F", "--queue", queue
    )
    _send(broker, queue, progress_message(Identity(Kind.TRAINING, "pk", "q"), 1, 1.0))
    server.wait_job("q", state="running")
    before = scrape(server)["trainwire_serve_seconds_since_last_message"][()]
    gate.refuse(True)
    gate.drop()
    server.wait_until(
        "the consumer gauge at 0",
        lambda: scrape(server)["trainwire_serve_consumer_connected"] == {(): 0.0},
    )
    server.wait_until(
        "the silence to grow",
        lambda: scrape(server)["trainwire_serve_seconds_since_last_message"][()] > before + 1,
    )
    gate.refuse(False)
    server.wait_until(
        "the consumer gauge back at 1",
        lambda: scrape(server)["trainwire_serve_consumer_connected"] == {(): 1.0},
        timeout=40,
    )
