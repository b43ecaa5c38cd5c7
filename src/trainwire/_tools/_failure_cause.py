"""The sentence of a ``training_error`` from what a failed command printed.

Each output stream keeps its last lines (:class:`OutputTail`) and, for launchers of
distributed training (``torchrun``, ``accelerate launch``, ``deepspeed``), the lines each
rank printed with PyTorch's ``[rankN]:`` prefix (:class:`RankFailures`): the launcher ends
with its own wrapper error (``ChildFailedError``) and a summary naming the rank that failed
first, while the cause is that rank's own last exception line, often far above the end.
:func:`describe_failure` picks the sentence: a signal, else the failing rank's exception,
else the last traceback's exception line, else the last line printed.
"""

from __future__ import annotations

import collections
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from .._sdk._explain import (
    DEFAULT_LANGUAGE,
    explain_exception_line,
    explain_signal,
    final_error_line,
    short_detail,
    text,
)
from ._progress_parse import clean, parse_line

__all__ = ["OutputTail", "RankCause", "RankFailures", "describe_failure"]

#: Lines of each stream kept for the error sentence.
TAIL_LINES = 50
#: Lines kept per rank: enough for a traceback's end.
RANK_LINES = 60
#: Ranks followed (a launcher on a large node prints a few dozen at most).
MAX_RANKS = 1024
_MAX_PENDING = 8192

_RANK_LINE = re.compile(r"^\[rank(?P<rank>\d+)\]: ?(?P<text>.*)$")
#: torchrun's summary: "Root Cause (first observed failure):" then "  rank : 1 (...)" and
#: "  exitcode : -9 (pid: ...)".
_ROOT_CAUSE = "Root Cause (first observed failure)"
_ROOT_FIELD = re.compile(r"^\s*(?P<key>rank|exitcode)\s*:\s*(?P<value>-?\d+)")


def _displayed(raw: str) -> str:
    segments = [s for s in clean(raw).split("\r") if s.strip()]
    return segments[-1].rstrip() if segments else ""


class OutputTail:
    """The last lines of one stream, as a terminal would show them (a ``\\r`` rewrites)."""

    def __init__(self, max_lines: int = TAIL_LINES) -> None:
        self.max_lines = max_lines
        self.lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._current = ""

    def feed(self, chunk: str) -> None:
        """Add decoded output."""
        if len(chunk) > 8192:  # only the last lines matter: skip splitting the rest
            cut = len(chunk)
            for _ in range(self.max_lines + 1):
                cut = chunk.rfind("\n", 0, cut)
                if cut < 0:
                    break
            if cut >= 0:
                self._current, chunk = "", chunk[cut + 1 :]
        pieces = chunk.split("\n")
        pieces[0] = self._current + pieces[0]
        self._current = pieces.pop()[-8192:]
        # Kept as read: cleaned only when asked for (a chatty command's lines mostly go).
        self.lines.extend(piece[-8192:] for piece in pieces[-self.max_lines :])

    def snapshot(self) -> list[str]:
        """The kept lines as a terminal shows them, the unfinished last one included."""
        lines = [_displayed(line) for line in self.lines]
        if self._current.strip():
            lines.append(_displayed(self._current))
        return lines


@dataclass(frozen=True)
class RankCause:
    """The rank of a distributed training that failed first, and how."""

    rank: int
    #: Its last exception line (``RuntimeError: ...``), when it printed one.
    error: str | None = None
    #: The signal that killed it, when the launcher's summary says so.
    signum: int | None = None


class RankFailures:
    """Follows one stream for the ``[rankN]:`` lines of a launcher's ranks and its summary.

    Only the complete lines of reads that mention "rank" are looked at: other output
    costs one substring search per read.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._lines: dict[int, collections.deque[str]] = {}
        self._root: dict[str, int] = {}
        self._in_root = False

    def feed(self, chunk: str) -> None:
        """Add decoded output."""
        data = self._pending + chunk
        cut = data.rfind("\n")
        self._pending = data[cut + 1 :][-_MAX_PENDING:]
        # torchrun's summary comes in one write: its "Root Cause" line with "rank" fields.
        if cut < 0 or not (self._in_root or "rank" in data):
            return
        for raw in data[:cut].split("\n"):
            if self._in_root or "rank" in raw or "Root Cause" in raw:
                self._line(_displayed(raw))

    def _line(self, line: str) -> None:
        match = _RANK_LINE.match(line)
        if match:
            rank = int(match.group("rank"))
            kept = self._lines.get(rank)
            if kept is None and len(self._lines) < MAX_RANKS:
                kept = self._lines[rank] = collections.deque(maxlen=RANK_LINES)
            if kept is not None:
                kept.append(match.group("text"))
        elif line.startswith(_ROOT_CAUSE):
            self._in_root, self._root = True, {}
        elif self._in_root:
            field = _ROOT_FIELD.match(line)
            if field:
                self._root.setdefault(field.group("key"), int(field.group("value")))
            self._in_root = not line.startswith("=====")

    def cause(self) -> RankCause | None:
        """The launcher's root-cause rank, else the first rank that printed an exception."""
        errors = {rank: final_error_line(list(lines)) for rank, lines in self._lines.items()}
        root = self._root.get("rank")
        if root is not None:
            exitcode = self._root.get("exitcode")
            signum = -exitcode if exitcode is not None and exitcode < 0 else None
            if errors.get(root) or signum:
                return RankCause(root, errors.get(root), signum)
        first = next((rank for rank, error in errors.items() if error), None)
        return None if first is None else RankCause(first, errors[first])


def _last_words(lines: Sequence[str]) -> str | None:
    """The last line worth quoting: not empty, not a progress bar, not trainwire's own."""
    for line in reversed(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("trainwire:"):
            continue
        if parse_line(stripped) is not None:
            continue
        return stripped
    return None


def _signal_sentence(signum: int, language: str) -> str:
    if signum == signal.SIGKILL:
        return text("signal_kill", language)
    return explain_signal(signum, language)


def _rank_sentence(cause: RankCause, language: str) -> str | None:
    if cause.error:
        detail = explain_exception_line(cause.error, language)
    elif cause.signum:
        detail = _signal_sentence(cause.signum, language)
    else:
        return None
    return text("nonzero_rank", language, rank=cause.rank, detail=detail)


def describe_failure(
    returncode: int,
    stderr: Sequence[str],
    stdout: Sequence[str],
    *,
    language: str = DEFAULT_LANGUAGE,
    stopped_by: int | None = None,
    rank: RankCause | None = None,
) -> str:
    """The ``training_error`` sentence for a child that ended with ``returncode``.

    ``stopped_by``: a stop signal the supervisor forwarded (it wins: the job was stopped).
    Otherwise the failing rank's own exception (``rank``, from :class:`RankFailures`), else
    the final exception line of a traceback, else the exit status with the last line the
    child printed.
    """
    if returncode < 0:
        return _signal_sentence(-returncode, language)
    if stopped_by is not None:
        return explain_signal(stopped_by, language)
    sentence = _rank_sentence(rank, language) if rank is not None else None
    if sentence:
        return sentence
    error = final_error_line(stderr) or final_error_line(stdout)
    if error:
        return explain_exception_line(error, language)
    words = _last_words(stderr) or _last_words(stdout)
    if words:
        return text("exit_status_output", language, code=returncode, detail=short_detail(words))
    return text("exit_status", language, detail=returncode)
