"""The bytes trainwire puts on the wire per message, built the cheap way, are the same as
built the plain way: progress bodies from the byte template, properties from a copy,
frames from templates."""

from __future__ import annotations

import os
import time

import pika
import pytest
from pika import frame, spec

from trainwire._broker._frames import ONE_FRAME, FramedPublisher
from trainwire._broker._params import message_properties
from trainwire._broker._transport import Outbox
from trainwire._spec._protocol import (
    CONTENT_TYPE,
    MAX_STEP,
    Identity,
    Kind,
    ProgressTemplate,
    encode,
    new_message_id,
    progress_message,
)

IDENTITIES = [
    Identity(Kind.TRAINING, "pk-bench", "model-bench"),
    Identity(Kind.VALIDATION, "프로젝트-키", '검증 모델 "따옴표" \\ 역슬래시'),
    Identity(Kind.TRAINING, "pk <&> \u00a0", "slash/é/\u2028/\U0001f600"),
]
STEPS = [0, 1, 7, 10**15, MAX_STEP]
PERCENTAGES = [0.0, 100.0, 33.3333, 1e-7, 0.5, 99.9999, 5e-324, 12.0]


@pytest.mark.parametrize("identity", IDENTITIES, ids=repr)
def test_progress_template_matches_encode(identity: Identity) -> None:
    template = ProgressTemplate(identity)
    for step in STEPS:
        for percentage in PERCENTAGES:
            body = template.body(step, percentage)
            assert body == progress_message(identity, step, percentage)
            assert list(body) == list(progress_message(identity, step, percentage))
            assert template.encode(body) == encode(body)


def test_progress_bytes_are_the_spec_shape() -> None:
    template = ProgressTemplate(IDENTITIES[0])
    assert template.encode(template.body(7, 33.3333)) == (
        b'{"cmd": "training_status", "project_key": "pk-bench", "model_id": "model-bench", '
        b'"status": "training_ing", "percentage": 33.3333, "step": 7}'
    )


@pytest.mark.parametrize("item", [0, 1, 3, 1000, (5, 33.33333333), (MAX_STEP, 100), (2, 1e-9)])
def test_outbox_envelope_bytes_match_its_body(item: int | tuple[int, float]) -> None:
    outbox = Outbox(IDENTITIES[1], None, total_steps=3)
    outbox.push(item)
    envelope = outbox.take_progress()
    assert envelope is not None and envelope.data is not None
    assert envelope.payload() == encode(envelope.body)


def test_message_properties_copy_matches_a_new_one() -> None:
    first, second = message_properties("id-1"), message_properties("id-2")
    assert (first.message_id, second.message_id) == ("id-1", "id-2")
    assert first.__dict__ is not second.__dict__
    built = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        content_encoding="utf-8",
        delivery_mode=2,
        message_id="id-2",
        timestamp=second.timestamp,
        app_id="trainwire",
    )
    assert vars(second) == vars(built)
    assert second.encode() == built.encode()
    assert abs(second.timestamp - time.time()) < 5


def test_rounded_progress_parts_are_round_then_encode() -> None:
    template = ProgressTemplate(IDENTITIES[1])
    ties = [k / 10**4 + 5e-5 for k in range(0, 10**6, 997)]  # halfway between two 4th digits
    grid = [
        s * (100.0 / total)
        for total in (3, 7, 9_999)
        for s in range(0, total + 1, 1 + total // 300)
    ]
    for percentage in [*PERCENTAGES, -0.0, 99.99995, 0.00005, 2.5e-5, *ties, *grid]:
        percentage = min(percentage, 100.0)
        for step in (0, 3, MAX_STEP):
            body, data = template.rounded(step, percentage)
            expected = template.body(step, round(percentage, 4))
            assert list(body.items()) == list(expected.items()), percentage
            assert data == encode(expected) == encode(body), percentage


def test_rounded_progress_parts_check_as_progress_message_does() -> None:
    template = ProgressTemplate(IDENTITIES[0])
    with pytest.raises(ValueError, match="step"):
        template.rounded(-1, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        template.rounded(1, float("nan"))
    assert template.rounded(1, 250.0)[0]["percentage"] == 100.0  # clamped, as progress() does


def _pika_frames(channel: int, queue: str, body: bytes, message_id: str, second: int) -> bytes:
    """The frames pika's ``basic_publish`` builds for the same message."""
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=message_id,
        timestamp=second,
        app_id="trainwire",
    )
    publish = spec.Basic.Publish(exchange="", routing_key=queue, mandatory=True)
    return b"".join(
        (
            frame.Method(channel, publish).marshal(),
            frame.Header(channel, len(body), properties).marshal(),
            frame.Body(channel, body).marshal(),
        )
    )


@pytest.mark.parametrize("channel", [1, 2, 65535])
def test_framed_messages_are_the_bytes_pika_builds(channel: int) -> None:
    framed = FramedPublisher()
    queues = ["q", "training-큐", "x" * 255]
    bodies = [b"{}", encode(progress_message(IDENTITIES[1], 7, 33.3)), b"b" * ONE_FRAME]
    ids = [new_message_id(), "id-1", "", "é" * 127]
    for queue in queues:
        for body in bodies:
            for message_id in ids:
                built = framed.frames(channel, queue, body, message_id)
                expected = _pika_frames(channel, queue, body, message_id, framed.second)
                assert built == expected, (queue, len(body), message_id)
    assert abs(framed.second - time.time()) < 5


def test_framed_messages_take_the_new_second_for_their_timestamp() -> None:
    framed = FramedPublisher()
    framed.frames(1, "q", b"{}", "id")
    framed.second -= 10  # as if the last message went ten seconds ago
    built = framed.frames(1, "q", b"{}", "id")
    assert built == _pika_frames(1, "q", b"{}", "id", framed.second)
    assert abs(framed.second - time.time()) < 5


def test_a_message_beyond_one_frame_or_with_a_long_id_is_left_to_pika() -> None:
    framed = FramedPublisher()
    assert framed.frames(1, "q", b"b" * (ONE_FRAME + 1), "id") is None
    assert framed.frames(1, "q", b"", "id") is None
    assert framed.frames(1, "q", b"{}", "가" * 86) is None  # 258 bytes: not a shortstr
    assert framed.frames(1, "q", b"{}", "가" * 85) is not None


def test_message_ids_are_unique_and_a_forked_child_draws_its_own() -> None:
    ids = [new_message_id() for _ in range(5_000)]  # several draws ahead
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        os.write(write, new_message_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != new_message_id()  # the id the parent hands out next, drawn before the fork
