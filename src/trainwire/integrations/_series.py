"""Which logged names share a graph: the train/validation naming rule of the integrations.

People compare a metric's training and validation values on one chart. When the two are
logged at the same x, they become one graph named after the metric, with the series
``train`` and ``val``::

    loss, val_loss              -> loss.log    (x, train, val)
    train_acc, val_acc          -> acc.log     (x, train, val)
    acc/train, acc/val          -> acc.log
    train/acc, val/acc          -> acc.log
    train_loss_epoch, val_loss  -> loss.log    (Lightning's "_epoch" suffix is dropped)

The rule (the one home of it; docs/integrations.md says the same for users):

* a name *means* training or validation by a word before or after it, joined with ``_``
  or ``/``: training ``train``, ``training``; validation ``val``, ``valid``,
  ``validation``, ``eval``. What is left is the metric (``val_loss``: ``loss``);
* a validation name pairs with the one training name of the same metric (or, when there
  is none, with the bare metric: ``val_loss`` with ``loss``), when both are logged at the
  same x, no third name claims that metric, and no other graph has that name yet;
* Lightning's ``_epoch`` suffix (a value logged with ``on_step`` and ``on_epoch``) is
  dropped before this; a ``_step`` name is per step and never pairs;
* the decision is made the first time a name is seen and then kept, so a graph keeps its
  columns: a name first seen without its partner stays a graph of its own
  (``<name>.log`` with the series ``<name>``, as every unpaired name);
* when a pair's partner is missing at a later x, the other value of that x is left out
  (a row must hold every column): warned about once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

__all__ = ["Role", "SeriesPlan", "split_name"]


class Role(Enum):
    """What a logged value measures: the training data or the validation data."""

    TRAIN = "train"
    VAL = "val"


_WORDS = {
    "train": Role.TRAIN,
    "training": Role.TRAIN,
    "val": Role.VAL,
    "valid": Role.VAL,
    "validation": Role.VAL,
    "eval": Role.VAL,
}
_JOINS = ("_", "/")
_EPOCH, _STEP = "_epoch", "_step"


def split_name(name: str) -> tuple[str, Role | None]:
    """``(metric, role)`` of a logged name: ``"val_loss"`` -> ``("loss", Role.VAL)``;
    ``("loss", None)`` for a name without a training/validation word."""
    if name.endswith(_EPOCH) and len(name) > len(_EPOCH):
        name = name[: -len(_EPOCH)]
    for word, role in _WORDS.items():
        for join in _JOINS:
            if name.startswith(word + join) and len(name) > len(word) + 1:
                return name[len(word) + 1 :], role
            if name.endswith(join + word) and len(name) > len(word) + 1:
                return name[: -len(word) - 1], role
    return name, None


#: A graph's row: the graph's name and its series' values.
Row = tuple[str, dict[str, Any]]


class SeriesPlan:
    """Where each logged name goes, decided once per name: ``rows(values)`` turns the
    values logged at one x into graph rows by the rule above.

    :param graph_name: a logged name made into a graph (file) name, or None when it
        cannot be one.
    """

    def __init__(self, graph_name: Callable[[str], str | None]) -> None:
        self._graph_name = graph_name
        self._slot: dict[str, tuple[str, str]] = {}  # name -> (graph, series)
        self._members: dict[str, tuple[str, ...]] = {}  # graph -> its names, column order

    def rows(self, values: Mapping[str, Any]) -> tuple[list[Row], list[tuple[str, str]]]:
        """The rows for ``values`` (all logged at one x), and ``(key, sentence)`` saying
        which values are left out and why."""
        left_out = self._place([name for name in values if name not in self._slot])
        rows: list[Row] = []
        done: set[str] = set()
        for name in values:
            slot = self._slot.get(name)
            if slot is None or slot[0] in done:
                continue
            graph = slot[0]
            done.add(graph)
            members = self._members[graph]
            missing = [m for m in members if m not in values]
            if missing:
                left_out.append((graph, _lonely(graph, members, missing)))
                continue
            rows.append((graph, {self._slot[m][1]: values[m] for m in members}))
        return rows, left_out

    def _place(self, new: list[str]) -> list[tuple[str, str]]:
        """Give each new name its graph: pairs first, then every other name alone."""
        paired = self._pairs(new)
        left_out: list[tuple[str, str]] = []
        for name in new:
            if name in paired:
                continue
            graph = self._graph_name(name)
            if graph is None:
                left_out.append((name, f"{name!r} is not written: it cannot be a file name"))
            elif graph in self._members:
                left_out.append(
                    (name, f"{name!r} is not written: the graph {graph!r} holds other values")
                )
            else:
                self._claim(graph, (name,), (graph,))
        return left_out

    def _pairs(self, new: list[str]) -> set[str]:
        """Pair the new names by the rule; the names paired."""
        by_metric: dict[str, list[tuple[str, Role | None]]] = {}
        for name in new:
            if not name.endswith(_STEP):
                metric, role = split_name(name)
                by_metric.setdefault(metric, []).append((name, role))
        paired: set[str] = set()
        for metric, names in by_metric.items():
            val = [n for n, role in names if role is Role.VAL]
            train = [n for n, role in names if role is Role.TRAIN] or [
                n for n, role in names if role is None
            ]
            graph = self._graph_name(metric)
            if len(names) != 2 or len(val) != 1 or len(train) != 1 or graph is None:
                continue
            pair = (train[0], val[0])
            if graph in self._members or any(
                self._graph_name(n) == graph for n in new if n not in pair
            ):
                continue  # the name of another value's graph
            self._claim(graph, pair, (Role.TRAIN.value, Role.VAL.value))
            paired.update(pair)
        return paired

    def _claim(self, graph: str, names: tuple[str, ...], series: tuple[str, ...]) -> None:
        self._members[graph] = names
        for name, column in zip(names, series):
            self._slot[name] = (graph, column)


def _lonely(graph: str, members: tuple[str, ...], missing: list[str]) -> str:
    kept = [m for m in members if m not in missing]
    return (
        f"the graph {graph!r} draws {' and '.join(members)} as one row; {', '.join(kept)} "
        f"was logged at an x without {', '.join(missing)}, and such values are left out, "
        f"since a row must hold every column (shown once)"
    )
