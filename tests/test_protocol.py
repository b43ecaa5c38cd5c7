"""The protocol module: shapes, encoding, validation and the job state machine."""

from __future__ import annotations

import json
import math

import pytest

import trainwire
from trainwire._protocol import (
    Identity,
    InvalidMessage,
    Job,
    JobState,
    Kind,
    Rejection,
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
