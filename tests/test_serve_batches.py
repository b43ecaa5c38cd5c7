"""The receiver's batches: at most half the prefetch count, so that the broker sends the
other half while a batch is stored (real broker, real SQLite store)."""

from __future__ import annotations

import time
import uuid

from _serve import publish_raw
from trainwire._broker._consumer import url_parameters
from trainwire._serve._receiver import BrokerSource, Receiver
from trainwire._serve._store import open_store
from trainwire._spec._protocol import Identity, Kind, encode, progress_message


def test_a_batch_holds_at_most_half_the_prefetch_count_and_still_several_messages(
    broker, queue, tmp_path
):
    jobs = [Identity(Kind.TRAINING, "pk", f"batch-{j}") for j in range(6)]
    for step in range(1, 11):
        for job in jobs:
            body = encode(progress_message(job, step, step * 9.0))
            publish_raw(broker, queue, body, message_id=uuid.uuid4().hex)
    store = open_store(f"sqlite:///{tmp_path}/batches.sqlite3")
    source = BrokerSource(url_parameters(broker.amqp_url), queue, "test broker")
    receiver = Receiver(store, source, prefetch=10)
    receiver.start()
    try:
        deadline = time.monotonic() + 60
        while receiver.stats.received < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        sizes = [count for _, count in receiver.stats.recent]
    finally:
        receiver.stop()
        store.close()
    assert receiver.stats.outcomes == {"applied": 60}
    assert sum(sizes) == 60
    assert max(sizes) <= 5, f"a batch of more than half the prefetch count: {sizes}"
    assert max(sizes) > 1, f"one message per transaction: {sizes}"
