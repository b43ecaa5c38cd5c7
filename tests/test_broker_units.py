"""The publisher's small parts on their own: the node ring and backoff, the confirm
tracker (fed pika's own ``basic.ack``/``basic.nack`` methods), what a refused message
becomes on one node and in a cluster, the once-said log lines and the write-ahead.

Broker behaviour end to end is in test_sdk_broker.py, test_faults_*.py and
test_broker_failover.py; these pin the rules each part owns.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pika.spec
import pytest

from trainwire._broker import _nodes
from trainwire._broker._confirms import MAX_IN_FLIGHT, Confirms, Verdict
from trainwire._broker._diagnosis import ConnectFailure, FailureKind
from trainwire._broker._nodes import Backoff, NodeRing
from trainwire._broker._notices import Notices, Trouble
from trainwire._broker._phase import Phase
from trainwire._broker._publisher import Publisher
from trainwire._broker._sentences import connect_sentence
from trainwire._broker._transport import Envelope, Outbox
from trainwire._broker._writeahead import SpoolState
from trainwire._spec._config import Config, Endpoint
from trainwire._spec._protocol import Kind, done_message

NODES = (Endpoint("n1", 5672), Endpoint("n2", 5673), Endpoint("n3", 5674))


def _config(tmp_path: Path, nodes: tuple[Endpoint, ...] = NODES) -> Config:
    return Config(
        path=tmp_path / "train_config.json",
        kind=Kind.TRAINING,
        project_key="pk",
        job_id="job-1",
        model_write_path=tmp_path / "model",
        message_host=nodes[0].host,
        message_port=nodes[0].port,
        queue_name="q",
        brokers=nodes,
    )


def _ack(tag: int, *, multiple: bool = False) -> pika.spec.Basic.Ack:
    return pika.spec.Basic.Ack(delivery_tag=tag, multiple=multiple)


def _nack(tag: int) -> pika.spec.Basic.Nack:
    return pika.spec.Basic.Nack(delivery_tag=tag)


# -- which node next, and when to wait ---------------------------------------------------


def test_the_ring_moves_on_at_once_and_waits_only_after_a_whole_round():
    ring = NodeRing(NODES)
    assert sorted(ring.nodes) == sorted(NODES)
    seen = [ring.current]
    assert ring.next() is False  # the second node at once
    seen.append(ring.current)
    assert ring.next() is False  # the third at once
    seen.append(ring.current)
    assert sorted(seen) == sorted(NODES)
    assert ring.next() is True  # every node failed in turn: now wait
    assert ring.next() is False  # a new round starts after the wait


def test_a_node_that_worked_starts_a_new_round_and_one_node_always_waits():
    ring = NodeRing(NODES, shuffle=False)
    ring.next()
    ring.next()
    ring.worked()  # the third node took a connection, then went away
    assert ring.next() is False and ring.current == NODES[0]
    single = NodeRing(NODES[:1])
    assert single.next() is True and single.next() is True  # as before clusters


def test_the_order_is_shuffled_per_ring_and_rotates_past_the_node_used():
    orders = {tuple(NodeRing(range(6)).nodes) for _ in range(30)}
    assert len(orders) > 1  # 30 rings in one order: 1 chance in 720**29
    ring = NodeRing(NODES, shuffle=False)
    ring.move_past(NODES[1])
    assert ring.rotated() == [NODES[2], NODES[0], NODES[1]]
    with pytest.raises(ValueError, match="at least one node"):
        NodeRing([])


def test_backoff_doubles_with_jitter_up_to_its_cap_and_resets():
    backoff = Backoff()
    first = backoff.delay()
    assert 0.5 * _nodes.BACKOFF_FIRST <= first <= 1.5 * _nodes.BACKOFF_FIRST
    delays = [backoff.delay() for _ in range(12)]
    assert max(delays) <= 1.5 * _nodes.BACKOFF_MAX
    assert min(delays[-3:]) >= 0.5 * _nodes.BACKOFF_MAX
    assert backoff.delay(ending=True) <= _nodes.BACKOFF_ENDING
    backoff.reset()
    assert backoff.delay() <= 1.5 * _nodes.BACKOFF_FIRST


# -- the confirm tracker ---------------------------------------------------------------


def _envelopes(n: int) -> list[Envelope]:
    return [Envelope(f"id-{i}", {"step": i}) for i in range(1, n + 1)]


def test_a_multiple_ack_settles_every_tag_up_to_it_in_order():
    confirms = Confirms()
    for envelope in _envelopes(4):
        confirms.sent(envelope)
    settled = confirms.settle(_ack(3, multiple=True))
    assert [(s.envelope.message_id, v) for s, v in settled] == [
        ("id-1", Verdict.ACK),
        ("id-2", Verdict.ACK),
        ("id-3", Verdict.ACK),
    ]
    assert list(confirms.in_flight) == [4]
    assert confirms.settle(_ack(3)) == []  # settled already: nothing twice


def test_a_nack_and_a_return_are_told_apart_from_an_ack():
    confirms = Confirms()
    first, second = _envelopes(2)
    confirms.sent(first)
    confirms.sent(second)
    confirms.returned("id-1")
    assert confirms.settle(_ack(1))[0][1] is Verdict.RETURNED
    assert confirms.settle(_nack(2))[0][1] is Verdict.NACK
    assert confirms.returns["id-1"] == 1


def test_a_lost_channel_puts_what_was_in_flight_back_in_sequence_order():
    confirms = Confirms()
    one, two, three = _envelopes(3)
    confirms.sent(one)
    confirms.sent(two)
    confirms.sent(three)
    confirms.settle(_ack(2))
    assert confirms.waited() >= 0.0
    confirms.requeue()
    confirms.new_channel()
    assert [slot.envelope for slot in confirms.retry] == [one, three]
    assert confirms.in_flight == {} and confirms.waited() == 0.0
    confirms.sent(one, confirms.retry.pop(0).seq)  # sent again: keeps its place
    assert confirms.in_flight[1].seq == 1


def test_a_blocked_connection_restarts_the_wait_for_confirms():
    confirms = Confirms()
    confirms.sent(_envelopes(1)[0])
    restarted = time.monotonic()
    confirms.restart_clock()  # connection.unblocked: no confirm was due while blocked
    assert confirms.waited() <= time.monotonic() - restarted


def test_the_wire_holds_at_most_max_in_flight():
    confirms = Confirms()
    for envelope in _envelopes(MAX_IN_FLIGHT):
        confirms.sent(envelope)
    assert not confirms.room()


def test_progress_is_taken_in_batches_oldest_first_up_to_the_room(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    for step in range(1, 6):
        outbox.push(step)
    first = publisher.newest.take_many(3, ignore_rate=False)
    rest = publisher.newest.take_many(10, ignore_rate=False)
    assert [e.body["step"] for e in first + rest] == [1, 2, 3, 4, 5]
    assert publisher.newest.take_many(10, ignore_rate=False) == []
    assert publisher.newest.unconfirmed_final() is rest[-1]  # the newest taken: the spool's


def test_after_the_end_a_batch_ends_with_the_final_envelope_the_spool_keeps(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    for step in range(1, 4):
        outbox.push(step)
    outbox.set_terminal(done_message(publisher.config.identity))
    final = outbox.final_progress()
    taken = publisher.newest.take_many(10, ignore_rate=True)
    assert [e.body["step"] for e in taken] == [1, 2, 3] and taken[-1] is final


class _FailingChannel:
    """A channel whose third publish fails (the connection went while publishing)."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    def basic_publish(self, **message: object) -> None:
        if len(self.published) == 2:
            raise ConnectionError("gone")
        self.published.append(message["body"])  # type: ignore[arg-type]


class _FailingConnection:
    """pika's connection as the framed path writes to it: its third write fails."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def _output_marshaled_frames(self, chunks: tuple[bytes, ...]) -> None:
        if len(self.chunks) == 2:
            raise ConnectionError("gone")
        self.chunks.extend(chunks)


class _FailingFramedChannel:
    """A channel written to through its connection (trainwire's frames); the third fails."""

    channel_number = 1
    is_open = True

    def __init__(self) -> None:
        self.connection = _FailingConnection()


@pytest.mark.parametrize("channel", [_FailingChannel, _FailingFramedChannel])
def test_a_batch_cut_short_by_a_failed_publish_loses_nothing_and_keeps_its_order(tmp_path, channel):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    for step in range(1, 6):
        outbox.push(step)
    with pytest.raises(ConnectionError):
        publisher.order.fill(channel())
    confirms = publisher.confirms
    confirms.requeue()  # the session's on_close: what was in flight goes first
    assert [slot.envelope.body["step"] for slot in confirms.retry] == [1, 2, 3, 4, 5]
    assert [slot.seq for slot in confirms.retry] == [1, 2, 3, 4, 5]
    assert not outbox.has_pending()


# -- what a refused message becomes ----------------------------------------------------


def _publisher(tmp_path: Path, nodes: tuple[Endpoint, ...]) -> tuple[Publisher, Outbox]:
    config = _config(tmp_path, nodes)
    outbox = Outbox(config.identity, max_rate=None, total_steps=10)
    return Publisher(outbox, config, len(nodes)), outbox


def test_a_nacked_newest_step_waits_and_goes_again_on_one_node(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    outbox.push(1)
    step = publisher.newest.take(ignore_rate=False)
    assert step is not None
    publisher.confirms.sent(step)
    assert publisher.on_confirm(_nack(1)) == 0
    assert [s.envelope for s in publisher.confirms.retry] == [step]
    assert publisher.pause_until > 0 and publisher.leave is None


def _two_steps(publisher: Publisher, outbox: Outbox) -> tuple[Envelope, Envelope]:
    outbox.push(1)
    old = publisher.newest.take(ignore_rate=False)
    outbox.push(2)
    new = publisher.newest.take(ignore_rate=False)
    assert old is not None and new is not None
    publisher.confirms.sent(old)
    publisher.confirms.sent(new)
    return old, new


def test_one_node_drops_a_nacked_step_when_a_newer_one_exists(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    _two_steps(publisher, outbox)
    publisher.on_confirm(_nack(1))  # step 1 again after step 2 would go back: dropped
    assert publisher.confirms.retry == [] and publisher.leave is None


def test_in_a_cluster_nacked_steps_go_again_in_order_one_at_a_time_on_another_node(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES)
    old, new = _two_steps(publisher, outbox)
    publisher.on_confirm(_nack(1))  # a quorum queue electing its leader: nothing lost
    publisher.on_confirm(_nack(2))
    assert [s.envelope for s in publisher.confirms.retry] == [old, new]
    assert publisher.leave is not None and publisher.pause_until == 0.0
    confirms = publisher.confirms
    assert confirms.probing and confirms.room()  # room for one message
    confirms.new_channel()  # on the next node
    confirms.sent(old, confirms.retry.pop(0).seq)
    assert not confirms.room()
    publisher.on_confirm(_ack(1))
    assert not confirms.probing and confirms.room()  # confirmed: the pipeline again


def test_in_a_cluster_a_nacked_step_behind_a_confirmed_one_is_dropped(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES)
    _two_steps(publisher, outbox)
    publisher.on_confirm(_ack(2))
    publisher.on_confirm(_nack(1))  # step 1 again after step 2 would go back a step
    assert publisher.confirms.retry == [] and publisher.leave is None


def test_a_returned_terminal_is_tried_on_every_node_before_it_is_unroutable(tmp_path, caplog):
    publisher, outbox = _publisher(tmp_path, NODES)
    terminal = outbox.set_terminal(done_message(publisher.config.identity))
    for tag, node in enumerate(NODES, start=1):
        publisher.confirms.sent(terminal)
        with caplog.at_level(logging.ERROR, logger="trainwire"):
            publisher.on_return(terminal.message_id, "NO_ROUTE")
            publisher.on_confirm(_ack(tag))
        last = node == NODES[-1]
        assert publisher.settled.is_set() is last, node
        assert bool(publisher.confirms.retry) is not last, node
        publisher.confirms.retry.clear()
    assert "no queue named 'q'" in caplog.text
    assert publisher.delivered == 0 and not publisher.confirmed.is_set()


def test_the_terminal_confirmed_ends_the_run_and_settles_the_spool(tmp_path):
    publisher, outbox = _publisher(tmp_path, NODES[:1])
    terminal = outbox.set_terminal(done_message(publisher.config.identity))
    publisher.keep_final()
    assert publisher.write_ahead.state is SpoolState.HELD
    assert [r.message_id for r in publisher.write_ahead.spool.read()] == [terminal.message_id]
    publisher.confirms.sent(terminal)
    assert publisher.on_confirm(_ack(1)) == 1
    assert publisher.phase is Phase.CONFIRMED and publisher.confirmed.is_set()
    assert publisher.write_ahead.state is SpoolState.SETTLED
    assert publisher.write_ahead.spool.read() == []


def test_the_first_reason_to_stop_wins(tmp_path):
    publisher, _ = _publisher(tmp_path, NODES[:1])
    publisher.switch_off("auth", "wrong password")
    publisher.stop(Phase.GIVEN_UP)
    assert publisher.phase is Phase.SWITCHED_OFF and publisher.problem == "auth"
    assert publisher.settled.is_set() and not publisher.running


# -- words -----------------------------------------------------------------------------


def test_each_kind_of_trouble_is_said_once_until_it_passed(caplog):
    notices = Notices()
    with caplog.at_level(logging.WARNING, logger="trainwire"):
        for _ in range(3):
            notices.say(Trouble.LOST, logging.WARNING, "lost it")
        notices.forget(Trouble.LOST)
        notices.say(Trouble.LOST, logging.WARNING, "lost it")
    assert caplog.text.count("lost it") == 2
    assert notices.said(Trouble.BLOCKED, Trouble.LOST)


def test_a_connect_sentence_names_the_node_that_failed(tmp_path):
    config = _config(tmp_path)
    refused = ConnectFailure(FailureKind.REFUSED, True)
    assert "n1:5672" in connect_sentence(config, refused)
    sentence = connect_sentence(config, refused, host="n3", port=5674)
    assert "n3:5674" in sentence and "'message_port'" in sentence
    unknown = ConnectFailure(FailureKind.HOST, True)
    assert "'n2'" in connect_sentence(config, unknown, host="n2", port=5673)
