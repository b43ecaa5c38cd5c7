"""The platform's status protocol: vocabulary, message shapes, validation and the job state machine.

This is the only module that knows the protocol's words. The SDK builds messages with
it and ``trainwire serve`` validates and applies them with it, so the two sides cannot
drift apart. See ``training-status.ko.txt`` (the platform's document) for the source.
"""

from __future__ import annotations

import enum
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ProtocolError

__all__ = [
    "CONTENT_TYPE",
    "Identity",
    "Job",
    "JobState",
    "Kind",
    "Rejection",
    "Status",
    "StatusMessage",
    "decode",
    "done_message",
    "encode",
    "error_message",
    "new_message_id",
    "progress_message",
    "validate",
]

CONTENT_TYPE = "application/json"


class Kind(str, enum.Enum):
    """What a job is: a training or a validation. Decides ``cmd`` and the identifier field."""

    TRAINING = "training"
    VALIDATION = "validation"

    @property
    def cmd(self) -> str:
        """The ``cmd`` value of this kind's messages."""
        return _CMD[self]

    @property
    def id_field(self) -> str:
        """The name of the identifier field (``model_id`` or ``validation_id``)."""
        return _ID_FIELD[self]

    @classmethod
    def from_cmd(cls, cmd: str) -> Kind:
        """The kind whose messages carry ``cmd``; ``ProtocolError`` if none."""
        for kind, value in _CMD.items():
            if value == cmd:
                return kind
        raise ProtocolError(f"unknown cmd {cmd!r}: expected one of {sorted(_CMD.values())}")


_CMD = {Kind.TRAINING: "training_status", Kind.VALIDATION: "validation_status"}
_ID_FIELD = {Kind.TRAINING: "model_id", Kind.VALIDATION: "validation_id"}


class Status(str, enum.Enum):
    """The ``status`` vocabulary. Validation jobs use the same values (spec, interpretation)."""

    PROGRESS = "training_ing"
    DONE = "training_done"
    ERROR = "training_error"

    @property
    def terminal(self) -> bool:
        """True for the statuses that end a job."""
        return self is not Status.PROGRESS


@dataclass(frozen=True)
class Identity:
    """Who a message is about: the kind of job, the project key and the job's id."""

    kind: Kind
    project_key: str
    job_id: str

    def __repr__(self) -> str:
        return f"Identity(kind={self.kind.value}, job_id={self.job_id!r})"

    def base(self, status: Status) -> dict[str, Any]:
        """The fields every message carries, in the spec's order."""
        return {
            "cmd": self.kind.cmd,
            "project_key": self.project_key,
            self.kind.id_field: self.job_id,
            "status": status.value,
        }


def progress_message(identity: Identity, step: int, percentage: float) -> dict[str, Any]:
    """A ``training_ing`` body: the spec's shape with ``percentage`` and ``step``."""
    body = identity.base(Status.PROGRESS)
    body["percentage"] = percentage
    body["step"] = step
    return body


def done_message(identity: Identity) -> dict[str, Any]:
    """A ``training_done`` body: only cmd, project_key, the identifier and status."""
    return identity.base(Status.DONE)


def error_message(identity: Identity, message: str) -> dict[str, Any]:
    """A ``training_error`` body with the message shown to the user."""
    body = identity.base(Status.ERROR)
    body["message"] = message
    return body


def new_message_id() -> str:
    """A unique AMQP ``message_id`` so that a consumer can drop duplicates.

    32 random hex digits (128 bits from ``os.urandom``, the same shape as
    ``uuid4().hex``), several times cheaper than building a ``uuid.UUID`` per message.
    """
    return os.urandom(16).hex()


#: One encoder for every message: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), allow_nan=False)


def encode(body: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with non-ASCII characters written as themselves (Korean stays readable)."""
    return _ENCODER.encode(body).encode()


class Rejection(str, enum.Enum):
    """Why a receiver did not apply a message. Stored with the message, never dropped silently."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_CMD = "unknown_cmd"
    UNKNOWN_STATUS = "unknown_status"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    PERCENTAGE_OUT_OF_RANGE = "percentage_out_of_range"
    UNKNOWN_PROJECT_KEY = "unknown_project_key"
    AFTER_ERROR = "after_error"
    AFTER_DONE = "after_done"
    DUPLICATE = "duplicate"


class InvalidMessage(ProtocolError):
    """A message that does not follow the spec, with the machine-readable reason."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class StatusMessage:
    """A validated status message."""

    kind: Kind
    project_key: str
    job_id: str
    status: Status
    step: int | None = None
    percentage: float | None = None
    message: str | None = None


def decode(raw: bytes) -> dict[str, Any]:
    """Parse a body as a JSON object, or raise ``InvalidMessage``."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidMessage(Rejection.MALFORMED_JSON, str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidMessage(Rejection.NOT_AN_OBJECT, f"expected a JSON object, got {value!r:.80}")
    return value


def _require_str(body: Mapping[str, Any], key: str) -> str:
    if key not in body:
        raise InvalidMessage(Rejection.MISSING_FIELD, f"field {key!r} is missing")
    value = body[key]
    if not isinstance(value, str) or not value:
        raise InvalidMessage(Rejection.BAD_FIELD, f"field {key!r} must be a non-empty string")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(body: Mapping[str, Any]) -> StatusMessage:
    """Check a decoded body against the spec; ``InvalidMessage`` names the first problem."""
    cmd = _require_str(body, "cmd")
    try:
        kind = Kind.from_cmd(cmd)
    except ProtocolError as exc:
        raise InvalidMessage(Rejection.UNKNOWN_CMD, str(exc)) from None
    project_key = _require_str(body, "project_key")
    job_id = _require_str(body, kind.id_field)
    status_text = _require_str(body, "status")
    try:
        status = Status(status_text)
    except ValueError:
        allowed = [s.value for s in Status]
        raise InvalidMessage(
            Rejection.UNKNOWN_STATUS, f"status {status_text!r} is not one of {allowed}"
        ) from None
    if status is Status.PROGRESS:
        for key in ("percentage", "step"):
            if key not in body:
                raise InvalidMessage(Rejection.MISSING_FIELD, f"field {key!r} is missing")
        percentage, step = body["percentage"], body["step"]
        if not _is_number(percentage) or not math.isfinite(percentage):
            raise InvalidMessage(Rejection.BAD_FIELD, "field 'percentage' must be a number")
        if not 0 <= percentage <= 100:
            raise InvalidMessage(
                Rejection.PERCENTAGE_OUT_OF_RANGE, f"percentage {percentage} is not within 0..100"
            )
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise InvalidMessage(Rejection.BAD_FIELD, "field 'step' must be an integer >= 0")
        return StatusMessage(kind, project_key, job_id, status, step, float(percentage))
    if status is Status.ERROR:
        if "message" not in body:
            raise InvalidMessage(Rejection.MISSING_FIELD, "field 'message' is missing")
        if not isinstance(body["message"], str):
            raise InvalidMessage(Rejection.BAD_FIELD, "field 'message' must be a string")
        return StatusMessage(kind, project_key, job_id, status, message=body["message"])
    return StatusMessage(kind, project_key, job_id, status)


class JobState(str, enum.Enum):
    """Where a job stands, as the platform shows it."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    ABNORMAL = "abnormal"


@dataclass
class Job:
    """The platform's view of one job, and the spec's rules for moving it.

    - ``waiting`` until the first ``training_ing``; then ``running`` with its step and
      percentage;
    - ``done`` after ``training_done``; ``error`` (with the message) after
      ``training_error``; nothing is applied after ``training_error`` (spec) or after
      ``training_done`` (a finished job stays finished);
    - ``abnormal`` when a running job has been silent longer than the stale limit
      (:meth:`check_stale`). A later message from it is applied as usual: the job was
      slow, not dead.
    """

    kind: Kind
    job_id: str
    state: JobState = JobState.WAITING
    step: int | None = None
    percentage: float | None = None
    message: str | None = None
    last_seen: float | None = None
    applied: int = field(default=0)

    def apply(self, msg: StatusMessage, now: float) -> None:
        """Apply a validated message, or raise ``InvalidMessage`` saying why it is ignored."""
        if self.state is JobState.ERROR:
            raise InvalidMessage(Rejection.AFTER_ERROR, "the job already reported training_error")
        if self.state is JobState.DONE:
            raise InvalidMessage(Rejection.AFTER_DONE, "the job already reported training_done")
        if msg.status is Status.PROGRESS:
            self.state = JobState.RUNNING
            self.step = msg.step
            self.percentage = msg.percentage
        elif msg.status is Status.DONE:
            self.state = JobState.DONE
            self.percentage = 100.0
        else:
            self.state = JobState.ERROR
            self.message = msg.message
        self.last_seen = now
        self.applied += 1

    def check_stale(self, now: float, stale_after: float) -> bool:
        """Mark a silent running job ``abnormal``; True when the state changed."""
        if (
            self.state is JobState.RUNNING
            and self.last_seen is not None
            and now - self.last_seen > stale_after
        ):
            self.state = JobState.ABNORMAL
            return True
        return False
