"""What ``trainwire jobs prune`` and ``serve --keep-messages`` read: an age such as
``30d`` and a list of job states (see docs/serve.md, "Retention")."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._spec._protocol import JobState

__all__ = ["DEFAULT_PRUNE_STATES", "keep_messages_option", "parse_age", "parse_states"]

F = TypeVar("F", bound=Callable[..., Any])

#: What ``jobs prune`` forgets unless ``--state`` says otherwise: the finished jobs.
DEFAULT_PRUNE_STATES = "done,error"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m`` or ``45s`` in seconds; a usage error otherwise."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(
            f"{text!r}: expected a number and a unit (s, m, h or d), such as 30d or 12h",
            param_hint="--older-than",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_states(text: str) -> frozenset[JobState]:
    """``done,error`` as states; a usage error naming the unknown one."""
    known = {s.value: s for s in JobState}
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    wrong = [w for w in words if w not in known]
    if wrong or not words:
        raise click.BadParameter(
            f"{(wrong or [text])[0]!r} is not a job state; expected some of "
            f"{', '.join(known)} separated by commas",
            param_hint="--state",
        )
    return frozenset(known[w] for w in words)


def keep_messages_option(function: F) -> F:
    """``--keep-messages N`` for ``serve``."""
    return click.option(
        "--keep-messages", type=click.IntRange(1, 2**31 - 1), metavar="N",
        help="Keep at most N logged messages per job (the newest; the job's state is "
        "kept). Default: keep every message.",
    )(function)  # fmt: skip
