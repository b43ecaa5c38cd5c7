"""The platform's status protocol: vocabulary, message shapes, validation and the job state machine.

This is the only module that knows the protocol's words. The SDK builds messages with
it and ``trainwire serve`` validates and applies them with it, so the two sides cannot
drift apart. See ``training-status.ko.txt`` (the platform's document) for the source.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._errors import ProtocolError

__all__ = [
    "CONTENT_TYPE",
    "MAX_ID_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_STEP",
    "Identity",
    "Job",
    "JobState",
    "Kind",
    "ProgressTemplate",
    "Rejection",
    "Status",
    "StatusMessage",
    "check_percentage",
    "check_step",
    "clean_text",
    "decode",
    "done_message",
    "encode",
    "error_message",
    "find_unsafe",
    "identity_problem",
    "new_message_id",
    "progress_message",
    "validate",
]

CONTENT_TYPE = "application/json"

#: The largest ``step``: a signed 64-bit integer, what the platform's databases store.
MAX_STEP = 2**63 - 1
#: The error ``message`` is a sentence for a person, not a log: longer text is cut to this
#: many characters, ending with an ellipsis. It also keeps every body far below a broker's
#: ``max_message_size``.
MAX_MESSAGE_CHARS = 1000
#: The longest ``project_key``, ``model_id`` or ``validation_id``.
MAX_ID_CHARS = 512
_ELLIPSIS = "\u2026"

#: What cannot travel or be shown safely: C0 controls but tab and newline, DEL, C1
#: controls (terminal escapes) and lone surrogates (not encodable as UTF-8).
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
#: In an identifier not even tab and newline are wanted.
_ID_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: ``os.fsdecode`` turns an undecodable byte 0xNN into U+DCNN (PEP 383).
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def _safe_char(match: re.Match[str], backslash: str = "\\") -> str:
    code = ord(match.group())
    if code in _ESCAPED_BYTES:
        return f"{backslash}x{code - 0xDC00:02x}"  # the byte a file name held, readable
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return ""


def _json_safe_char(match: re.Match[str]) -> str:
    return _safe_char(match, backslash="\\\\")  # inside a JSON string: an escaped backslash


def clean_text(text: str, limit: int | None = None) -> str:
    """``text`` made safe to encode, store and show; cut to ``limit`` characters if given.

    Lone surrogates become readable: an undecodable byte from a file name (``os.fsdecode``)
    becomes ``\\xNN``, any other surrogate U+FFFD. Control characters other than tab and
    newline (NUL, terminal escapes) are removed. Text longer than ``limit`` is cut and
    ends with an ellipsis.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if _UNSAFE.search(text) is not None:
        text = _UNSAFE.sub(_safe_char, text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + _ELLIPSIS
    return text


def _shown(value: str, limit: int = 80) -> str:
    """A bounded, printable ``repr`` of untrusted text for an error's detail."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def _describe_int(value: int) -> str:
    # str() of an int beyond sys.get_int_max_str_digits() raises: describe it instead.
    if value.bit_length() <= 256:
        return str(value)
    return f"an integer of {value.bit_length()} bits"


def check_step(step: Any) -> int:
    """``step`` as an ``int`` within ``0..MAX_STEP``; ``TypeError``/``ValueError`` otherwise.

    Any integer type (numpy and torch integers too) is accepted; bool and float are not.
    """
    if type(step) is int and 0 <= step <= MAX_STEP:
        return step
    if isinstance(step, bool):
        raise TypeError("step must be an integer, got bool")
    try:
        value = int(step.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"step must be an integer, got {type(step).__name__}") from None
    if not 0 <= value <= MAX_STEP:
        raise ValueError(
            f"step must be an integer within 0..{MAX_STEP} (2**63-1), got {_describe_int(value)}"
        )
    return value


def check_percentage(percentage: Any) -> float:
    """``percentage`` as a float clamped to ``0..100``; ``TypeError``/``ValueError`` otherwise.

    Any real number is accepted (numpy and torch scalars too); NaN, infinity and numbers
    too large for a float are errors, as are bool and str.
    """
    if type(percentage) is float and 0.0 <= percentage <= 100.0:
        return percentage
    if isinstance(percentage, (bool, str, bytes)):
        raise TypeError(f"percentage must be a number, got {type(percentage).__name__}")
    try:
        value = float(percentage)
    except OverflowError:
        raise ValueError(
            "percentage is too large for a number: pass a number between 0 and 100"
        ) from None
    except (TypeError, ValueError):
        raise TypeError(f"percentage must be a number, got {type(percentage).__name__}") from None
    if not math.isfinite(value):
        what = "NaN" if math.isnan(value) else "infinite"
        raise ValueError(f"percentage is {what}: pass a number between 0 and 100")
    return min(100.0, max(0.0, value))


def find_unsafe(text: str) -> int:
    """Where ``text`` holds its first control character (tab and newline included) or lone
    surrogate, or -1: such text is refused where it names something (ids, hosts, paths)."""
    unsafe = _ID_UNSAFE.search(text)
    return -1 if unsafe is None else unsafe.start()


def identity_problem(value: object) -> str | None:
    """Why ``value`` cannot be a ``project_key``, ``model_id`` or ``validation_id``, or None."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"must be at most {MAX_ID_CHARS} characters, got {len(value)}"
    position = find_unsafe(value)
    if position >= 0:
        return (
            "contains a control character or an invalid code point "
            f"(U+{ord(value[position]):04X} at position {position})"
        )
    return None


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
    def of(cls, text: str) -> Kind:
        """The kind ``text`` names, as ``Kind(text)`` (ValueError for none) at a fraction of
        its cost: the store reads one per job row."""
        kind = _KINDS.get(text)
        return cls(text) if kind is None else kind

    @classmethod
    def from_cmd(cls, cmd: str) -> Kind:
        """The kind whose messages carry ``cmd``; ``ProtocolError`` if none."""
        for kind, value in _CMD.items():
            if value == cmd:
                return kind
        raise ProtocolError(f"unknown cmd {_shown(cmd)}: expected one of {sorted(_CMD.values())}")


_CMD = {Kind.TRAINING: "training_status", Kind.VALIDATION: "validation_status"}
_KINDS = {kind.value: kind for kind in Kind}
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


#: Each status by its text (a dict lookup costs a tenth of calling the enum).
_STATUSES = {status.value: status for status in Status}


@dataclass(frozen=True)
class Identity:
    """Who a message is about: the kind of job, the project key and the job's id."""

    kind: Kind
    project_key: str
    job_id: str

    def __post_init__(self) -> None:
        # Checked once here so that every message built from it can be encoded and stored.
        if not isinstance(self.kind, Kind):
            raise TypeError(f"kind must be a Kind, got {type(self.kind).__name__}")
        for name, value in (("project_key", self.project_key), ("job_id", self.job_id)):
            problem = identity_problem(value)
            if problem is not None:
                error = TypeError if not isinstance(value, str) else ValueError
                raise error(f"{name} {problem}")

    def __repr__(self) -> str:
        return f"Identity(kind={self.kind.value}, job_id={self.job_id!r})"

    def owns(self, body: dict[str, Any]) -> bool:
        """True when ``body`` is a message about this job (same kind, project and id)."""
        return (
            body.get("cmd") == self.kind.cmd
            and body.get("project_key") == self.project_key
            and body.get(self.kind.id_field) == self.job_id
        )

    def base(self, status: Status) -> dict[str, Any]:
        """The fields every message carries, in the spec's order."""
        return {
            "cmd": self.kind.cmd,
            "project_key": self.project_key,
            self.kind.id_field: self.job_id,
            "status": status.value,
        }


def progress_message(identity: Identity, step: int, percentage: float) -> dict[str, Any]:
    """A ``training_ing`` body: the spec's shape with ``percentage`` and ``step``.

    ``step`` must be within ``0..MAX_STEP`` and ``percentage`` finite (clamped to 0..100):
    see :func:`check_step` and :func:`check_percentage`, which raise otherwise. Many
    bodies of one identity: :class:`ProgressTemplate`.
    """
    return ProgressTemplate(identity).body(step, percentage)


def done_message(identity: Identity) -> dict[str, Any]:
    """A ``training_done`` body: only cmd, project_key, the identifier and status."""
    return identity.base(Status.DONE)


def error_message(identity: Identity, message: str) -> dict[str, Any]:
    """A ``training_error`` body with the message shown to the user.

    The text is made safe (:func:`clean_text`: no lone surrogates, no control characters)
    and cut to ``MAX_MESSAGE_CHARS``: whatever a program or the system put in it, the body
    can be encoded, kept in the spool and stored by the platform.
    """
    body = identity.base(Status.ERROR)
    body["message"] = clean_text(message, MAX_MESSAGE_CHARS)
    return body


#: Message ids drawn ahead: one ``os.urandom`` call per this many (a system call per
#: message was a tenth of the every-step publisher's own CPU).
_IDS_PER_DRAW = 256
_ids: collections.deque[str] = collections.deque()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    # A forked child must not hand out the ids its parent drew (duplicates get dropped).
    os.register_at_fork(after_in_child=_ids.clear)


def new_message_id() -> str:
    """A unique AMQP ``message_id`` so that a consumer can drop duplicates.

    32 random hex digits (128 bits from ``os.urandom``, the same shape as
    ``uuid4().hex``), several times cheaper than building a ``uuid.UUID`` per message.
    Any thread: ``popleft`` is atomic, and two threads refilling at once both add fresh ids.
    """
    try:
        return _ids.popleft()
    except IndexError:
        digits = os.urandom(16 * _IDS_PER_DRAW).hex()
        _ids.extend(digits[i : i + 32] for i in range(32, len(digits), 32))
        return digits[:32]


#: One encoder for every message: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), allow_nan=False)


def encode(body: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with non-ASCII characters written as themselves (Korean stays readable).

    Never fails on text: a lone surrogate that reached a body some other way than the
    builders (which clean their text) is written as :func:`clean_text` writes it.
    """
    text = _ENCODER.encode(body)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # JSON escapes every control character, so this replaces only the surrogates.
        return _UNSAFE.sub(_json_safe_char, text).encode()


class ProgressTemplate:
    """Progress bodies of one identity, and their bytes, for every-step mode's thousands a
    second: the identity part is built and encoded once; each message copies it and formats
    only the step and the percentage (as ``json`` writes them: ``repr`` of the float,
    digits of the int), the same bytes as :func:`encode` of the body."""

    def __init__(self, identity: Identity) -> None:
        self._base = identity.base(Status.PROGRESS)
        self._prefix = encode(self._base)[:-1] + b', "percentage": '

    def body(self, step: int, percentage: float) -> dict[str, Any]:
        """:func:`progress_message` for this identity (raises as it does)."""
        body = self._base.copy()
        body["percentage"] = check_percentage(percentage)
        body["step"] = check_step(step)
        return body

    def encode(self, body: dict[str, Any]) -> bytes:
        """``encode(body)`` of a body that :meth:`body` built."""
        return self._prefix + b'%r, "step": %d}' % (body["percentage"], body["step"])

    def rounded(self, step: int, percentage: float) -> tuple[dict[str, Any], bytes]:
        """``body(step, round(percentage, 4))`` and its bytes, with one float formatting
        instead of ``round`` and ``repr`` (each converts to decimal, the dearest part of a
        message): within 0..100, ``%.4f`` without its trailing zeros is the ``repr`` of
        the rounded float, and parsing it back gives that float."""
        if type(step) is not int or not 0 <= step <= MAX_STEP:
            step = check_step(step)
        if type(percentage) is not float or not 0.0 <= percentage <= 100.0:
            percentage = check_percentage(percentage)
        digits = (b"%.4f" % percentage).rstrip(b"0")
        if digits.endswith(b"."):
            digits += b"0"
        body = self._base.copy()
        body["percentage"] = float(digits)
        body["step"] = step
        return body, self._prefix + digits + b', "step": %d}' % step


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


class StatusMessage(NamedTuple):
    """A validated status message (a tuple: the receiver makes one per message)."""

    kind: Kind
    project_key: str
    job_id: str
    status: Status
    step: int | None = None
    percentage: float | None = None
    message: str | None = None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


#: Strict JSON: ``NaN``/``Infinity`` are not JSON (Python's parser accepts them by default).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def decode(raw: bytes) -> dict[str, Any]:
    """Parse a body as a JSON object, or raise ``InvalidMessage`` (never anything else)."""
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: also ints over 4300 digits
        raise InvalidMessage(Rejection.MALFORMED_JSON, str(exc)[:200]) from None
    except RecursionError:
        raise InvalidMessage(Rejection.MALFORMED_JSON, "the JSON is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidMessage(
            Rejection.NOT_AN_OBJECT, f"expected a JSON object, got a JSON {_json_type(value)}"
        )
    return value


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _require_str(body: Mapping[str, Any], key: str) -> str:
    if key not in body:
        raise InvalidMessage(Rejection.MISSING_FIELD, f"field {key!r} is missing")
    value = body[key]
    if not isinstance(value, str) or not value:
        raise InvalidMessage(Rejection.BAD_FIELD, f"field {key!r} must be a non-empty string")
    return value


#: Identifiers that passed :func:`identity_problem` lately: a job sends the same ones in
#: every message, and a set lookup costs a fraction of the check. Emptied when it holds
#: :data:`_CLEAN_IDS_MAX` (at most about 4 MB of text).
_CLEAN_IDS: set[str] = set()
_CLEAN_IDS_MAX = 2048


def _require_id(body: Mapping[str, Any], key: str) -> str:
    value = _require_str(body, key)
    if value in _CLEAN_IDS:
        return value
    problem = identity_problem(value)
    if problem is not None:
        raise InvalidMessage(Rejection.BAD_FIELD, f"field {key!r} {problem}")
    if len(_CLEAN_IDS) >= _CLEAN_IDS_MAX:
        _CLEAN_IDS.clear()
    _CLEAN_IDS.add(value)
    return value


def _percentage(body: Mapping[str, Any]) -> float:
    value = body["percentage"]
    # An int is compared as an int: float() of a 400-digit literal would overflow.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidMessage(Rejection.BAD_FIELD, "field 'percentage' must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidMessage(Rejection.BAD_FIELD, "field 'percentage' must be a finite number")
    if not 0 <= value <= 100:
        shown = _describe_int(value) if isinstance(value, int) else f"{value}"
        raise InvalidMessage(
            Rejection.PERCENTAGE_OUT_OF_RANGE, f"percentage is {shown}, not within 0..100"
        )
    return float(value)


def _step(body: Mapping[str, Any]) -> int:
    value = body["step"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP:
        raise InvalidMessage(
            Rejection.BAD_FIELD, f"field 'step' must be an integer within 0..{MAX_STEP}"
        )
    return value


def validate(body: Mapping[str, Any]) -> StatusMessage:
    """Check a decoded body against the spec; ``InvalidMessage`` names the first problem.

    Raises nothing else, whatever the body holds. Identifiers must be clean text of at
    most ``MAX_ID_CHARS``; a ``message`` is cleaned and cut (:func:`clean_text`) rather
    than refused, so that a job's error still reaches the platform.
    """
    if not isinstance(body, Mapping):
        raise InvalidMessage(Rejection.NOT_AN_OBJECT, "expected a JSON object")
    cmd = _require_str(body, "cmd")
    try:
        kind = Kind.from_cmd(cmd)
    except ProtocolError as exc:
        raise InvalidMessage(Rejection.UNKNOWN_CMD, str(exc)) from None
    project_key = _require_id(body, "project_key")
    job_id = _require_id(body, kind.id_field)
    status_text = _require_str(body, "status")
    status = _STATUSES.get(status_text)
    if status is None:
        allowed = [s.value for s in Status]
        raise InvalidMessage(
            Rejection.UNKNOWN_STATUS, f"status {_shown(status_text)} is not one of {allowed}"
        )
    if status is Status.PROGRESS:
        for key in ("percentage", "step"):
            if key not in body:
                raise InvalidMessage(Rejection.MISSING_FIELD, f"field {key!r} is missing")
        percentage = _percentage(body)
        return StatusMessage(kind, project_key, job_id, status, _step(body), percentage)
    if status is Status.ERROR:
        if "message" not in body:
            raise InvalidMessage(Rejection.MISSING_FIELD, "field 'message' is missing")
        if not isinstance(body["message"], str):
            raise InvalidMessage(Rejection.BAD_FIELD, "field 'message' must be a string")
        message = clean_text(body["message"], MAX_MESSAGE_CHARS)
        return StatusMessage(kind, project_key, job_id, status, message=message)
    return StatusMessage(kind, project_key, job_id, status)


class JobState(str, enum.Enum):
    """Where a job stands, as the platform shows it."""

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    ABNORMAL = "abnormal"

    @classmethod
    def of(cls, text: str) -> JobState:
        """The state ``text`` names, as ``JobState(text)`` (ValueError for none) at a
        fraction of its cost: the store reads one per job row."""
        state = _JOB_STATES.get(text)
        return cls(text) if state is None else state


_JOB_STATES = {state.value: state for state in JobState}


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
