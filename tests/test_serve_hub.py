"""The hub that feeds the live pages: it reads the database only while a page listens,
and a page that opens later still gets every change since the hub last looked."""

from __future__ import annotations

import json
import time
import uuid

from trainwire._serve._store import Delivery, open_store
from trainwire._serve._web import Event, Hub
from trainwire._spec._protocol import Identity, Kind, encode, progress_message


def _progress(job: str, step: int) -> Delivery:
    body = encode(progress_message(Identity(Kind.TRAINING, "pk", job), step, step * 10.0))
    return Delivery(body, uuid.uuid4().hex, int(time.time()))


def _jobs(frames: list[bytes] | None) -> list[tuple[str, int]]:
    """(job id, step) of the job events among a stream's frames."""
    out = []
    for raw in frames or []:
        head, data = raw.decode().split("\n", 1)
        if head == f"event: {Event.JOB.value}":
            job = json.loads(data.removeprefix("data: "))
            out.append((job["id"], job["step"]))
    return out


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_hub_reads_nothing_while_no_page_listens_then_catches_up(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/hub.sqlite3")
    reads = []
    real = store.jobs_changed_since

    def counted(since: float):  # the real query, counted
        reads.append(since)
        return real(since)

    store.jobs_changed_since = counted  # type: ignore[method-assign]
    hub = Hub(store)
    hub.start()
    try:
        for step in range(1, 6):
            store.receive_many([_progress("quiet", step)], time.time())
            hub.poke()
            time.sleep(0.3)  # longer than the hub's pause: a polling hub would have read
        assert reads == []

        sub = hub.subscribe()
        assert _wait(lambda: len(reads) >= 1)  # subscribing wakes the hub at once
        seen: list[tuple[str, int]] = []
        assert _wait(lambda: bool(seen.extend(_jobs(sub.take(0.1))) or seen))
        assert seen == [("quiet", 5)]

        store.receive_many([_progress("quiet", 6)], time.time())
        hub.poke()
        later: list[tuple[str, int]] = []
        assert _wait(lambda: bool(later.extend(_jobs(sub.take(0.1))) or later))
        assert later == [("quiet", 6)]
    finally:
        hub.stop()
        store.close()
