"""The shapes of progress one cleaned output line can hold, without any state.

:func:`shape_of` turns one line (ANSI colours removed, see ``_progress_parse.clean``) into
a :class:`Shape`, or None. What a shape means for the step count (which bar is the
training bar, which epoch a counter belongs to) is decided by ``_progress_parse``, which
keeps the state of a stream.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "MAX_COUNT",
    "MAX_READ",
    "Form",
    "Shape",
    "is_evaluation",
    "may_hold_progress",
    "shape_of",
]

#: Of a longer line only the start is read (progress is near the start of a line; bounds
#: the regular expressions' work on hostile output).
MAX_READ = 2048
#: Counts above this are not progress (a hostile or garbled line): the tracker's steps
#: stay far below the protocol's 2**63 - 1.
MAX_COUNT = 10**12

_NUMBER = r"\d{1,15}(?:\.\d{1,6})?[kMGTPEZY]?"
_TQDM = re.compile(
    r"(?P<pct>\d{1,3})%\|[^|]{0,400}\|\s*(?P<n>"
    + _NUMBER
    + r")/(?P<total>"
    + _NUMBER
    + r")(?![\w/])"
)
_RICH = re.compile(
    r"^\s*Epoch\s+(?P<epoch>\d{1,9})/(?P<last>\d{1,9})\s+[━╸╺╾╼─\s]+?\s"
    r"(?P<n>\d{1,15})/(?P<total>\d{1,15})\b"
)
_KERAS3 = re.compile(r"^\s*(?P<n>\d{1,15})/(?P<total>\d{1,15})\s+[━╸╺]")
_KERAS2 = re.compile(r"^\s*(?P<n>\d{1,15})/(?P<total>\d{1,15})\s+\[[=>.]*\]")
#: Keras's ``verbose=2``: one line per epoch, ``8/8 - 0s -6ms/step - loss: ...``.
_KERAS_LINE = re.compile(r"^\s*(?P<n>\d{1,15})/(?P<total>\d{1,15}) - \d+s\b")
_EPOCH_HEADER = re.compile(r"^\s*Epoch\s+(?P<epoch>\d{1,9})/(?P<epochs>\d{1,9})\s*$")
#: A bar described "Epoch 3" (Lightning, from 0) or "Epoch 3/10" (a user's loop).
_EPOCH_BAR = re.compile(r"^Epoch\s+(?P<epoch>\d{1,9})(?:\s*/\s*(?P<epochs>\d{1,9}))?$")
_PLAIN = re.compile(r"^\s*trainwire\s+(?P<pairs>\w+=\S+(?:\s+\w+=\S+)*)\s*$")
#: ``[12]\ttrain-logloss:0.1\teval-logloss:0.2`` (XGBoost, rounds from 0).
_XGBOOST = re.compile(r"^\[(?P<n>\d{1,12})\]\t[\w.]+-[\w@.:-]+?:\s*[-+\w.]+")
#: ``[12]\tvalid_0's binary_logloss: 0.2`` (LightGBM, rounds from 1).
_LIGHTGBM = re.compile(r"^\[(?P<n>\d{1,12})\]\t\w[\w.-]*'s \w")
#: ``Epoch [1/3], Step [10/40]``, ``epoch 2/5 step 40/100``, ``| epoch 1 | 20/111 batches |``.
_EPOCH = re.compile(r"\bepoch[\s:=\[#|]{0,4}(?P<e>\d{1,9})(?:\s*(?:/|of)\s*(?P<es>\d{1,9}))?", re.I)
_STEP = re.compile(
    r"\b(?:step|iter(?:ation)?|batch)s?[\s:=\[#|]{0,4}(?P<n>\d{1,15})\s*(?:/|of)\s*(?P<t>\d{1,15})\b"
    r"|(?<!-)\b(?P<bn>\d{1,15})\s*/\s*(?P<bt>\d{1,15})\s+(?:batch|step|iter)",
    re.I,
)
#: pytorch/examples' ``| end of epoch   1 | time: ...``.
_EPOCH_END = re.compile(r"^\|?\s*end of epoch\s+(?P<e>\d{1,9})\b", re.I)
#: Bars that are not training steps, by description: evaluation loops, and the data and
#: download bars of Hugging Face datasets/hub that come before training.
_NOT_TRAINING = re.compile(
    r"^(Validation|Validating|Valid\b|Val\b|Sanity Checking|Testing|Test\b|Predicting|"
    r"Predict|Prediction|Eval|Inference|Map\b|Filter\b|Generating|Download|Fetching|"
    r"Resolving|Extracting|Loading|Tokeniz|Running tokenizer|Casting|Saving|Uploading)",
    re.I,
)
#: Besides a "/", what every other recognised line contains one of: a bar, a counter's word.
_HINTS = ("%|", "━", "[", "poch", "tep", "ter", "atch", "POCH", "TEP", "TER", "ATCH")
_COUNTER_WORD = re.compile(r"poch|step|iter|batch", re.I)
_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}
#: What tqdm writes after a bar drawn below the top line, once per line.
CURSOR_UP = "\x1b[A"


class Form(enum.Enum):
    """What kind of progress a line shows."""

    #: a tqdm bar: ``n``/``total``, ``desc``, ``position`` (0 = top line)
    BAR = "bar"
    #: a counter within an epoch: ``epoch`` (from 0), ``epochs`` when printed
    EPOCH_COUNTER = "epoch-counter"
    #: a tqdm bar described ``Epoch 3`` (Lightning's, from 0) or ``Epoch 3/10``: the
    #: ``epoch`` and ``epochs`` as printed (from 0 or from 1: the stream's first one tells)
    EPOCH_BAR = "epoch-bar"
    #: a bare ``Epoch 2/10`` header (Keras prints it before the epoch's steps): the epoch
    #: of the step lines that follow, not progress itself
    EPOCH_HEADER = "epoch-header"
    #: ``Epoch 3/10`` with other text and no finer counter: epochs as the unit
    EPOCH_COUNT = "epoch-count"
    #: a step-counter line of Keras: the epoch comes from the last header
    KERAS = "keras"
    #: the end of epoch ``epoch`` (from 0), its step count from earlier counters
    EPOCH_END = "epoch-end"
    #: an already global step: the plain line, boosting rounds, ``step 40/1000``
    GLOBAL = "global"


@dataclass  # not frozen: a frozen dataclass takes 7 times as long to make, per frame
class Shape:
    """One line's progress as printed; see :class:`Form` for which fields are set.
    Read-only by convention."""

    form: Form
    n: int = 0
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    desc: str = ""
    position: int = 0
    percentage: float | None = None


def is_evaluation(desc: str) -> bool:
    """A bar description that is not training: an evaluation, validation, test or
    prediction loop, or a data, download or loading bar."""
    return _NOT_TRAINING.match(desc) is not None


def may_hold_progress(text: str) -> bool:
    """A cheap test: can ``text`` contain a line :func:`shape_of` recognises? (Most log
    lines cannot, and a chatty program should not pay for regular expressions.)"""
    if "trainwire" in text or "]\t" in text or "poch" in text:
        return True
    return "/" in text and any(hint in text for hint in _HINTS)


def _count(text: str) -> int | None:
    if text.isdecimal():  # the common case, without a float
        whole = int(text)
        return whole if whole <= MAX_COUNT else None
    scale = _SCALE.get(text[-1:], 1.0)
    if scale != 1.0:
        text = text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return int(value) if 0 <= value <= MAX_COUNT else None


def _pair(n_text: str | None, total_text: str | None) -> tuple[int, int] | None:
    """``n``/``total`` when both are sane: 0 <= n <= total, 0 < total <= MAX_COUNT."""
    if n_text is None or total_text is None:
        return None
    n, total = _count(n_text), _count(total_text)
    if n is None or total is None or total <= 0 or n > total:
        return None
    return n, total


def _plain(match: re.Match[str]) -> Shape | None:
    values = dict(pair.split("=", 1) for pair in match.group("pairs").split())
    try:
        step = int(values["step"])
        total = int(values["total"]) if "total" in values else None
        percentage = float(values["percentage"]) if "percentage" in values else None
    except (KeyError, ValueError):
        return None
    if not 0 <= step <= MAX_COUNT or (total is not None and not 0 < total <= MAX_COUNT):
        return None
    if percentage is not None and not 0.0 <= percentage <= 100.0:
        return None
    return Shape(Form.GLOBAL, step, total, percentage=percentage)


def _bar(raw: str, line: str, match: re.Match[str]) -> Shape | None:
    pair = _pair(match.group("n"), match.group("total"))
    if pair is None:
        return None
    desc = line[: match.start()].strip().rstrip(":").strip()
    epoch = _EPOCH_BAR.match(desc) if desc.startswith("Epoch") else None
    if epoch:  # a bar started again every epoch, its epoch as printed
        epochs = int(epoch.group("epochs")) if epoch.group("epochs") else None
        return Shape(Form.EPOCH_BAR, *pair, epoch=int(epoch.group("epoch")), epochs=epochs)
    if "B/s" in line[match.end() :]:  # bytes per second: a download, not training
        return None
    # tqdm draws a bar at position k as "\n" * k, the bar, then k times "cursor up".
    position = len(raw) - len(raw.rstrip().rstrip(CURSOR_UP))
    return Shape(Form.BAR, *pair, desc=desc, position=position // len(CURSOR_UP))


def _counter(line: str) -> Shape | None:
    """``N/M`` counters in a log line, with or without an epoch."""
    step = _STEP.search(line)
    epoch = _EPOCH.search(line)
    if step is None:
        if epoch is None or epoch.group("es") is None:
            return None
        pair = _pair(epoch.group("e"), epoch.group("es"))
        if pair is None:
            return None
        header = _EPOCH_HEADER.match(line) is not None
        return Shape(Form.EPOCH_HEADER if header else Form.EPOCH_COUNT, *pair)
    pair = _pair(step.group("n") or step.group("bn"), step.group("t") or step.group("bt"))
    if pair is None:
        return None
    if epoch is None:
        return Shape(Form.GLOBAL, *pair)
    number, epochs = int(epoch.group("e")), epoch.group("es")
    if number < 1 or (epochs is not None and not number <= int(epochs) <= MAX_COUNT):
        return None  # printed epochs count from 1
    return Shape(
        Form.EPOCH_COUNTER, *pair, epoch=number - 1, epochs=int(epochs) if epochs else None
    )


def _fixed(line: str) -> Shape | None:
    """Rich's and Keras's bars, boosting rounds, pytorch/examples' epoch end."""
    if line.startswith("["):
        rounds = _XGBOOST.match(line)
        if rounds:
            return Shape(Form.GLOBAL, int(rounds.group("n")) + 1)
        rounds = _LIGHTGBM.match(line)
        return Shape(Form.GLOBAL, int(rounds.group("n"))) if rounds else None
    rich = _RICH.match(line)
    if rich:
        pair = _pair(rich.group("n"), rich.group("total"))
        epoch, last = int(rich.group("epoch")), int(rich.group("last"))
        if pair is None or epoch > last:
            return None
        return Shape(Form.EPOCH_COUNTER, *pair, epoch=epoch, epochs=last + 1, desc="Epoch")
    keras = _KERAS3.match(line) or _KERAS2.match(line) or _KERAS_LINE.match(line)
    if keras:
        pair = _pair(keras.group("n"), keras.group("total"))
        return Shape(Form.KERAS, *pair) if pair else None
    end = _EPOCH_END.match(line)
    if end and int(end.group("e")) >= 1:
        return Shape(Form.EPOCH_END, epoch=int(end.group("e")) - 1)
    return None


def shape_of(line: str, raw: str = "") -> Shape | None:
    """The progress shape of one cleaned ``line``, or None.

    ``raw`` is the line before cleaning, when known: tqdm's cursor movements in it tell
    the position of a nested bar. Only the first :data:`MAX_READ` characters are read.
    """
    line = line[:MAX_READ]
    if "trainwire" in line:
        plain = _PLAIN.match(line)
        if plain:
            return _plain(plain)
    if "%|" in line:
        bar = _TQDM.search(line)
        if bar:
            return _bar(raw or line, line, bar)
    found = _fixed(line.lstrip(" |") if "end of" in line else line)
    if found is not None or "/" not in line or _COUNTER_WORD.search(line) is None:
        return found
    return _counter(line)
