"""The protocol module: shapes, encoding, validation and the job state machine."""

from __future__ import annotations

import json
import math
import os
import random

import pytest

import trainwire
from trainwire._spec._protocol import (
    MAX_ID_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_STEP,
    Identity,
    InvalidMessage,
    Job,
    JobState,
    Kind,
    Rejection,
    check_percentage,
    check_step,
    clean_text,
    decode,
    done_message,
    encode,
    error_message,
    progress_message,
    validate,
)

TRAIN = Identity(Kind.TRAINING, "pk", "m-1")
VALID = Identity(Kind.VALIDATION, "pk", "v-1")


def test_message_shapes_match_the_spec_exactly():
    assert progress_message(TRAIN, 425, 42.5) == {
        "cmd": "training_status",
        "project_key": "pk",
        "model_id": "m-1",
        "status": "training_ing",
        "percentage": 42.5,
        "step": 425,
    }
    assert done_message(TRAIN) == {
        "cmd": "training_status",
        "project_key": "pk",
        "model_id": "m-1",
        "status": "training_done",
    }
    assert error_message(TRAIN, "x") == {
        "cmd": "training_status",
        "project_key": "pk",
        "model_id": "m-1",
        "status": "training_error",
        "message": "x",
    }
    assert done_message(VALID) == {
        "cmd": "validation_status",
        "project_key": "pk",
        "validation_id": "v-1",
        "status": "training_done",
    }


def test_encode_writes_korean_as_itself_in_utf8():
    raw = encode(error_message(TRAIN, "학습 이미지 크기가 맞지 않습니다"))
    assert "학습 이미지".encode() in raw and b"\\u" not in raw
    assert json.loads(raw)["message"] == "학습 이미지 크기가 맞지 않습니다"


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        encode(progress_message(TRAIN, 1, math.nan))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Rejection.MALFORMED_JSON),
        (b"[1,2]", Rejection.NOT_AN_OBJECT),
        (
            b'{"cmd":"x_status","project_key":"p","model_id":"m","status":"training_done"}',
            Rejection.UNKNOWN_CMD,
        ),
        (
            b'{"cmd":"training_status","project_key":"p","model_id":"m","status":"running"}',
            Rejection.UNKNOWN_STATUS,
        ),
        (
            b'{"cmd":"training_status","model_id":"m","status":"training_done"}',
            Rejection.MISSING_FIELD,
        ),
        (
            b'{"cmd":"training_status","project_key":"p","model_id":"m","status":"training_ing",'
            b'"step":1}',
            Rejection.MISSING_FIELD,
        ),
        (
            b'{"cmd":"training_status","project_key":"p","model_id":"m","status":"training_ing",'
            b'"step":1,"percentage":101}',
            Rejection.PERCENTAGE_OUT_OF_RANGE,
        ),
        (
            b'{"cmd":"training_status","project_key":"p","model_id":"m","status":"training_ing",'
            b'"step":"1","percentage":1}',
            Rejection.BAD_FIELD,
        ),
        (
            b'{"cmd":"training_status","project_key":"p","model_id":"m","status":"training_error"}',
            Rejection.MISSING_FIELD,
        ),
        (
            b'{"cmd":"validation_status","project_key":"p","model_id":"m",'
            b'"status":"training_done"}',
            Rejection.MISSING_FIELD,
        ),
    ],
)
def test_invalid_messages_are_rejected_with_their_reason(raw, reason):
    with pytest.raises(InvalidMessage) as info:
        validate(decode(raw))
    assert info.value.reason is reason


def test_job_state_machine_follows_the_spec():
    job = Job(Kind.TRAINING, "m-1")
    assert job.state is JobState.WAITING
    job.apply(validate(progress_message(TRAIN, 1, 10.0)), now=1.0)
    assert (job.state, job.step, job.percentage) == (JobState.RUNNING, 1, 10.0)
    assert job.check_stale(now=700.0, stale_after=600) is True
    assert job.state is JobState.ABNORMAL
    job.apply(validate(progress_message(TRAIN, 2, 20.0)), now=701.0)
    assert job.state is JobState.RUNNING
    job.apply(validate(error_message(TRAIN, "boom")), now=702.0)
    assert (job.state, job.message) == (JobState.ERROR, "boom")
    for late in (progress_message(TRAIN, 3, 30.0), done_message(TRAIN)):
        with pytest.raises(InvalidMessage) as info:
            job.apply(validate(late), now=703.0)
        assert info.value.reason is Rejection.AFTER_ERROR
    assert job.state is JobState.ERROR and job.step == 2


def test_done_is_final_too():
    job = Job(Kind.TRAINING, "m-1")
    job.apply(validate(done_message(TRAIN)), now=1.0)
    with pytest.raises(InvalidMessage) as info:
        job.apply(validate(progress_message(TRAIN, 1, 1.0)), now=2.0)
    assert info.value.reason is Rejection.AFTER_DONE


def test_status_vocabulary_lives_only_in_the_protocol_module():
    from pathlib import Path

    src = Path(trainwire.__file__).parent
    offenders = []
    for path in src.rglob("*.py"):
        if path.name == "_protocol.py":
            continue
        text = path.read_text(encoding="utf-8")
        for word in (
            "training_ing",
            "training_done",
            "training_error",
            "training_status",
            "validation_status",
        ):
            if f'"{word}"' in text or f"'{word}'" in text:
                offenders.append(f"{path.relative_to(src)}: {word}")
    assert offenders == []


# -- hostile text and numbers: builders always give a body the receiver accepts ---------


def test_clean_text_makes_file_name_bytes_readable_and_drops_control_characters():
    name = os.fsdecode(b"/data/img-\xff.jpg")  # what the OS gives for a non-UTF-8 name
    assert clean_text(name) == "/data/img-\\xff.jpg"
    assert clean_text("a\ud800b") == "a\ufffdb"  # a surrogate that is no escaped byte
    assert clean_text("a\x00b\x1b[31mc\x7f\x9bd\re") == "ab[31mcde"
    assert clean_text("line one\n\tline two") == "line one\n\tline two"  # kept
    assert clean_text("학습") == "학습"


def test_clean_text_cuts_long_text_with_an_ellipsis():
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"
    assert clean_text("x" * 10, 10) == "x" * 10
    with pytest.raises(ValueError):
        clean_text("x", 0)


def _random_text(rng: random.Random, size: int) -> str:
    pools = [(0, 0x20), (0x20, 0x7F), (0x7F, 0xA0), (0xAC00, 0xD7A4), (0xD800, 0xE000),
             (0xDC80, 0xDD00), (0x1F600, 0x1F650)]  # fmt: skip
    chars = []
    for _ in range(size):
        low, high = rng.choice(pools)
        chars.append(chr(rng.randrange(low, high)))
    return "".join(chars)


def test_every_error_body_encodes_and_is_accepted_whatever_its_text():
    rng = random.Random(12)
    for _ in range(300):
        text = _random_text(rng, rng.choice([1, 5, 80, 1500]))
        body = error_message(TRAIN, text)
        raw = encode(body)
        raw.decode("utf-8")  # valid UTF-8: no surrogate got through
        msg = validate(decode(raw))
        assert msg.message == body["message"]
        assert len(msg.message) <= MAX_MESSAGE_CHARS
        assert not any(0xD800 <= ord(c) <= 0xDFFF or c == "\x00" for c in msg.message)


def test_a_long_error_text_is_cut_to_a_sentence_with_an_ellipsis():
    body = error_message(TRAIN, "Traceback line\n" * 10_000)
    assert len(body["message"]) == MAX_MESSAGE_CHARS and body["message"].endswith("…")
    assert len(encode(body)) < 8 * MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    ("step", "error"),
    [(-1, ValueError), (MAX_STEP + 1, ValueError), (10**400, ValueError), (1.0, TypeError),
     (True, TypeError), ("3", TypeError), (None, TypeError)],
    ids=["-1", "2**63", "10**400", "float", "bool", "str", "None"],
)  # fmt: skip
def test_check_step_refuses_what_the_platform_cannot_store(step, error):
    with pytest.raises(error, match="step must be"):
        check_step(step)
    with pytest.raises(error):
        progress_message(TRAIN, step, 1.0)


def test_check_step_takes_every_integer_type_up_to_2_63_minus_1():
    import numpy as np

    assert check_step(0) == 0 and check_step(MAX_STEP) == MAX_STEP
    assert check_step(np.int64(7)) == 7 and type(check_step(np.int64(7))) is int
    body = progress_message(TRAIN, MAX_STEP, 100.0)
    assert validate(decode(encode(body))).step == MAX_STEP


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [(10**400, ValueError, "too large"), (math.inf, ValueError, "infinite"),
     (math.nan, ValueError, "NaN"), (True, TypeError, "bool"), ("50", TypeError, "str"),
     (None, TypeError, "NoneType")],
    ids=["10**400", "inf", "nan", "bool", "str", "None"],
)  # fmt: skip
def test_check_percentage_refuses_what_is_not_a_finite_number(value, error, match):
    with pytest.raises(error, match=match):
        check_percentage(value)


def test_check_percentage_clamps_finite_numbers_to_0_100():
    import numpy as np

    assert check_percentage(250) == 100.0 and check_percentage(-3) == 0.0
    assert check_percentage(np.float32(12.5)) == 12.5
    assert check_percentage(10**300) == 100.0  # finite as a float: clamped


@pytest.mark.parametrize(
    ("job_id", "error"),
    [("m\udcff", ValueError), ("m\x00", ValueError), ("m\x1b[2J", ValueError), ("", ValueError),
     ("m" * (MAX_ID_CHARS + 1), ValueError), (7, TypeError)],
    ids=["surrogate", "nul", "escape", "empty", "too-long", "int"],
)  # fmt: skip
def test_an_identity_that_cannot_travel_is_refused_when_it_is_made(job_id, error):
    with pytest.raises(error, match="job_id"):
        Identity(Kind.TRAINING, "pk", job_id)
    assert Identity(Kind.TRAINING, "pk", "m" * MAX_ID_CHARS).job_id == "m" * MAX_ID_CHARS


def test_encode_never_fails_on_text_that_did_not_come_from_a_builder():
    raw = encode({"message": "img-\udcff.jpg \ud800"})
    assert json.loads(raw) == {"message": "img-\\xff.jpg \ufffd"}


_HEAD = b'{"cmd":"training_status","project_key":"p","model_id":"m",'


_HOSTILE = {
    "deep-nesting": (b"[" * 100_000, Rejection.MALFORMED_JSON),  # RecursionError in json
    "5000-digit-int": (b'{"a": 1' + b"0" * 5000 + b"}", Rejection.MALFORMED_JSON),
    "nan-literal": (
        _HEAD + b'"status":"training_ing","step":1,"percentage":NaN}',
        Rejection.MALFORMED_JSON,
    ),
    "step-2**63": (
        _HEAD + b'"status":"training_ing","step":9223372036854775808,"percentage":1}',
        Rejection.BAD_FIELD,
    ),
    "step-negative": (
        _HEAD + b'"status":"training_ing","step":-1,"percentage":1}',
        Rejection.BAD_FIELD,
    ),
    "percentage-400-digit-int": (  # math.isfinite would raise OverflowError
        _HEAD + b'"status":"training_ing","step":1,"percentage":1' + b"0" * 400 + b"}",
        Rejection.PERCENTAGE_OUT_OF_RANGE,
    ),
    "percentage-1e400": (
        _HEAD + b'"status":"training_ing","step":1,"percentage":1e400}',
        Rejection.BAD_FIELD,
    ),
    "surrogate-id": (
        b'{"cmd":"training_status","project_key":"p","model_id":"\\ud800",'
        b'"status":"training_done"}',
        Rejection.BAD_FIELD,
    ),
    "nul-key": (
        b'{"cmd":"training_status","project_key":"p\\u0000","model_id":"m",'
        b'"status":"training_done"}',
        Rejection.BAD_FIELD,
    ),
    "long-id": (
        b'{"cmd":"training_status","project_key":"p","model_id":"' + b"m" * 513 + b'",'
        b'"status":"training_done"}',
        Rejection.BAD_FIELD,
    ),
    "huge-cmd": (b'{"cmd":"\\ud800' + b"x" * 100_000 + b'"}', Rejection.UNKNOWN_CMD),
    "surrogate-status": (_HEAD + b'"status":"\\udcff"}', Rejection.UNKNOWN_STATUS),
}


@pytest.mark.parametrize(("raw", "reason"), list(_HOSTILE.values()), ids=list(_HOSTILE))
def test_hostile_bodies_are_rejected_with_a_reason_never_an_exception(raw, reason):
    with pytest.raises(InvalidMessage) as info:
        validate(decode(raw))
    assert info.value.reason is reason
    assert len(info.value.detail) < 300  # a bounded detail to store, never the whole body
    info.value.detail.encode("utf-8")  # storable as it is


def test_an_error_message_with_surrogates_and_nul_is_cleaned_not_lost():
    msg = validate(decode(_HEAD + b'"status":"training_error","message":"a\\ud800\\u0000b"}'))
    assert msg.message == "a\ufffdb"


def _random_value(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([0, -1, 100, 2**63 - 1, 2**63, -(2**64), 10**400, True, None])
    if choice == 1:
        return rng.choice([0.0, 42.5, -0.0, 1e308, 100.0000001, float("inf"), float("nan")])
    if choice in (2, 3):
        return _random_text(rng, rng.choice([0, 1, 8, 600]))
    if choice == 4:
        return rng.choice(["training_status", "validation_status", "training_ing",
                           "training_done", "training_error", "pk", "m"])  # fmt: skip
    if choice == 5:
        return ""
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_random_text(rng, 3): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _random_body(rng: random.Random) -> bytes:
    keys = ["cmd", "project_key", "model_id", "validation_id", "status", "step", "percentage",
            "message"]  # fmt: skip
    good = {**progress_message(TRAIN, 5, 50.0), "message": "m", "validation_id": "v"}
    body = {k: (_random_value(rng) if rng.random() < 0.3 else good[k]) for k in keys}
    text = json.dumps(body)  # ensure_ascii: surrogates become \\udXXX escapes, inf Infinity
    if rng.random() < 0.2:
        text = text.replace("Infinity", "1e400").replace("NaN", "1" + "0" * 400)
    raw = text.encode()
    if rng.random() < 0.1:
        cut = rng.randrange(len(raw) + 1)
        raw = raw[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(8))) + raw[cut:]
    return raw


def test_decode_and_validate_never_raise_anything_but_a_rejection():
    rng = random.Random(2024)
    accepted = 0
    for _ in range(3000):
        raw = _random_body(rng)
        try:
            msg = validate(decode(raw))
        except InvalidMessage as exc:
            assert isinstance(exc.reason, Rejection)
            exc.detail.encode("utf-8")  # storable
            continue
        accepted += 1
        for text in (msg.project_key, msg.job_id, msg.message or ""):
            text.encode("utf-8")  # what is accepted can be stored as it is
            assert "\x00" not in text
        assert msg.step is None or 0 <= msg.step <= MAX_STEP
        assert msg.percentage is None or 0.0 <= msg.percentage <= 100.0
    assert 300 < accepted < 2700  # both paths exercised


def test_a_state_or_kind_read_by_its_text_is_the_member_and_another_text_is_refused():
    for enum_type in (JobState, Kind):
        for member in enum_type:
            assert enum_type.of(member.value) is member
        for text in ("", "RUNNING", "running ", "training\x00", "\ud800"):
            with pytest.raises(ValueError):
                enum_type.of(text)


def test_an_identifier_refused_once_is_refused_again_and_one_accepted_stays_accepted():
    # validate() remembers identifiers that passed its check: a refused one never joins them
    body = {"cmd": "training_status", "project_key": "pk", "status": "training_done"}
    for bad in ("m\x00", "m\ud800", "m\n", "x" * (MAX_ID_CHARS + 1)):
        for _ in range(3):
            with pytest.raises(InvalidMessage) as caught:
                validate({**body, "model_id": bad})
            assert caught.value.reason is Rejection.BAD_FIELD
    for i in range(5000):  # past the remembered set's bound: it is emptied, never wrong
        assert validate({**body, "model_id": f"m-{i}"}).job_id == f"m-{i}"
    assert validate({**body, "model_id": "m-0"}).job_id == "m-0"
