"""Many open pages cost the hub little: a change is encoded once for every stream, and a
poll's changes reach each stream in one go (one wake-up, one write). The real hub on a
real SQLite store, in this process."""

from __future__ import annotations

import json
import time
import uuid

from trainwire._serve._store import Delivery, open_store
from trainwire._serve._web import Event, Hub, Subscriber
from trainwire._spec._protocol import Identity, Kind, encode, progress_message

STREAMS = 50
JOBS = 20


def _steps(step: int, jobs: list[str]) -> list[Delivery]:
    return [
        Delivery(
            encode(progress_message(Identity(Kind.TRAINING, "pk", job), step, step * 10.0)),
            uuid.uuid4().hex,
            int(time.time()),
        )
        for job in jobs
    ]


def _first(sub, deadline: float = 20.0) -> list[bytes]:
    """The first frames a subscriber is given (waiting up to ``deadline`` seconds)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        frames = sub.take(0.1)
        assert frames is not None, "the stream was closed"
        if frames:
            return frames
    raise AssertionError("nothing reached the stream")


def _shown(frame: bytes) -> tuple[str, int]:
    head, data = frame.decode().split("\n", 1)
    assert head == "event: job" and frame.endswith(b"\n\n")
    job = json.loads(data.removeprefix("data: "))
    return job["id"], job["step"]


def test_a_change_is_encoded_once_for_every_stream_and_arrives_in_one_go(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/fanout.sqlite3")
    jobs = [f"job-{j:02d}" for j in range(JOBS)]
    hub = Hub(store)
    hub.start()
    try:
        lists = [hub.subscribe() for _ in range(STREAMS)]
        page = hub.subscribe(("training", "job-07"))
        store.receive_many(_steps(1, jobs), time.time())  # one transaction: one poll sees all
        hub.poke()

        given = [_first(sub) for sub in lists]
        assert [_shown(f) for f in given[0]] == [(job, 1) for job in jobs]
        for frames in given[1:]:  # the same bytes, not equal copies: encoded once
            assert len(frames) == JOBS and all(a is b for a, b in zip(frames, given[0]))
        only = _first(page)
        assert len(only) == 1 and only[0] is given[0][7]

        store.receive_many(_steps(2, ["job-03"]), time.time())
        hub.poke()
        assert [_shown(f) for f in _first(lists[0])] == [("job-03", 2)]
    finally:
        hub.stop()
        store.close()
    assert lists[0].take(0.01) is None  # stopping the hub closes every stream


def test_a_reader_behind_gets_each_jobs_newest_state_the_latest_change_last():
    sub = Subscriber()
    first = {("training", j): f"{j}@1".encode() for j in ("a", "b", "c")}
    sub.offer_all(first, b"counts@1")
    sub.offer_all({("training", "a"): b"a@2"}, None)  # read nothing in between
    sub.offer(Event.REJECTED, {"unknown_project_key": 2})
    assert sub.take(0) == [
        b"b@1",
        b"c@1",
        b"a@2",
        b'event: rejected\ndata: {"unknown_project_key": 2}\n\n',
    ]
    assert sub.take(0) == []
    page = Subscriber(("training", "b"))
    page.offer_all(first, b"counts@1")  # a job page: its job only, no counts
    assert page.take(0) == [b"b@1"]
