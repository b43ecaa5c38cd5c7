"""Training graphs: the metric files the platform reads while a job runs.

Each graph is one file, ``<model_write_path>/save/metrics/<graph>.log``, in the spec's
format: the first line holds the field names, the first column is the x axis, every
later column is one line of the graph, cells separated by a comma and a space::

    step, train, val
    1, 0.31, 0.29
    2, 0.27, 0.26

How the files are written (docs/metrics.md says the same for users):

* The header is written once, when the file is created, and the file only ever appears
  with its header in it (it is written beside it and hard-linked into place).
* Each row reaches the file in a single ``os.write`` on a descriptor opened once with
  ``O_APPEND``, never rewritten. A reader can still see the first part of an append that
  crosses a page, so a row is complete only once its line break is there (the contract
  docs/metrics.md gives the platform's readers). ``log()`` does no ``open()`` and no
  header check per call.
* Numbers are written in the shortest form that reads back to the same value (Python's
  ``repr``; 16- and 32-bit floats of NumPy or torch in their own shortest form); integers
  stay integers. Never a locale's format.
* Non-finite values: a row holding NaN or an infinity is left out of the file, with one
  warning per graph. The platform never gets a cell it cannot parse.
* Each row carries exactly its graph's series, fixed by the graph's first row; anything
  else raises :class:`MetricsError` at the call site. The x axis never goes backwards.
* Resume: an existing file with the same header is appended to; a different header
  raises :class:`MetricsError` naming the file and both headers.
* Disk full, a read-only or missing folder: one warning, that graph stops, training goes on.
* In a process forked from the writer's (data-loader workers) nothing is ever written.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import MetricsError
from .._spec._layout import GRAPH_SUFFIX
from ._graph_file import SEPARATOR, GraphFile
from ._graph_names import validate_graph_name, validate_series_name
from ._graph_numbers import NUMBER_RE, Number, parse_number
from ._graph_rows import encode_row, group_keys, mismatch

__all__ = [
    "NUMBER_RE",
    "SEPARATOR",
    "SUFFIX",
    "MetricsError",
    "MetricsWriter",
    "Number",
    "parse_number",
    "validate_graph_name",
    "validate_series_name",
]

log = logging.getLogger("trainwire")

#: File name suffix of a graph: ``<graph>.log``.
SUFFIX = GRAPH_SUFFIX


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"  # close() was called: later rows are not written (one warning)
    DISABLED = "disabled"  # disable(): nothing more, silently
    FORKED = "forked"  # this is a forked copy of the writer's process


# Open writers, for the fork hook. A plain set, not a WeakSet: a weakref callback run by
# the garbage collector would swallow a KeyboardInterrupt that lands inside it (seen by
# the signal storm: the process then never ended). Writers leave it when closed.
_writers: set[MetricsWriter] = set()


def _after_fork_in_child() -> None:
    for writer in list(_writers):
        writer._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MetricsWriter:
    """Writes the graph files of one run into ``directory`` (``<model_write_path>/save/metrics``).

    Thread-safe. The folder is created on the first row. Rules for callers:

    * ``log(graph, x, series)``: one row of ``graph``. The first row fixes the graph's
      series (in the order given) and its x axis name; every later row must give exactly
      those series (in any order), else :class:`MetricsError`.
    * ``log_dict(metrics, step)``: keys ``"graph/series"`` are split at the first ``/``; a
      key without ``/`` is a graph of its own with one series of the same name. All keys
      of one graph in one call make one row; the graph's series are fixed by its first
      row, so a later call must give all of them or none. Metrics logged at different
      steps (training loss every step, validation loss every epoch) therefore need
      different graphs, e.g. ``"train/loss"`` and ``"val/loss"``: the error says so.
    * A row holding NaN or an infinity is not written (one warning per graph).
    * ``x`` never goes backwards within a graph (else :class:`MetricsError`); after a
      resume, rows up to the file's last x are left out (one warning) until x passes it.
    * I/O errors (disk full, read-only folder) warn once and stop that graph; they are
      never raised.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._graphs: dict[str, GraphFile] = {}
        self._folded: dict[str, str] = {}
        self._state = _State.OPEN
        self._said: set[str] = set()
        self._dir_ready = False
        self._dir_failed = False
        _writers.add(self)

    # -- public --------------------------------------------------------------------

    def log(
        self, graph: str, x: Number, series: Mapping[str, Any], *, x_axis: str = "step"
    ) -> None:
        """Append one row ``x, series...`` to ``<directory>/<graph>.log``."""
        with self._lock:
            if self._state is not _State.OPEN:
                self._inactive()
                return
            try:
                g = self._graphs.get(graph)
            except TypeError:  # unhashable: _graph_for says what a name must be
                g = None
            if g is None or g.x_axis != x_axis or series.keys() != g.keyset:
                g = self._graph_for(graph, x_axis, series, False)
            row = encode_row(g, x, series)
            if row is not None and g.fd is not None:
                g.write(row)

    def log_dict(self, metrics: Mapping[str, Any], step: Number) -> None:
        """Log ``{"graph/series": value, "graph": value, ...}`` at x = ``step``.

        All or nothing: when any key or value is rejected, no row of this call is written.
        """
        groups = group_keys(metrics)
        with self._lock:
            if self._state is not _State.OPEN:
                self._inactive()
                return
            rows: list[tuple[GraphFile, bytes | None]] = []
            for graph, series in groups.items():
                g = self._graphs.get(graph)
                if g is None or g.x_axis != "step" or series.keys() != g.keyset:
                    g = self._graph_for(graph, "step", series, True)
                rows.append((g, encode_row(g, step, series)))
            for g, row in rows:
                if row is not None and g.fd is not None:
                    g.write(row)

    def close(self, timeout: float = -1) -> None:
        """Close the files. Rows logged afterwards are not written (one warning).

        With a ``timeout`` (seconds), a ``log()`` still holding the writer after it (the
        thread that ends a run must never wait on the training thread for long) leaves
        the descriptors to the process's exit; the writer is closed all the same.
        """
        _writers.discard(self)
        if not self._lock.acquire(timeout=timeout):
            if self._state is _State.OPEN:
                self._state = _State.CLOSED
            return
        try:
            if self._state is _State.OPEN:
                self._state = _State.CLOSED
            for g in self._graphs.values():
                g.close()
        finally:
            self._lock.release()

    def disable(self) -> None:
        """Stop writing for good, without flushing or closing anything (in a forked child:
        the descriptors are the parent's). Later calls do nothing."""
        _writers.discard(self)
        if self._state is not _State.FORKED:
            self._state = _State.DISABLED
        self._graphs = {}
        self._lock = threading.Lock()  # the parent's may have been held at fork time

    @property
    def graphs(self) -> dict[str, Path]:
        """The graphs logged so far in this process: name -> file."""
        return {name: g.path for name, g in self._graphs.items()}

    def path_for(self, graph: str) -> Path:
        """The file of ``graph`` (validates the name)."""
        return self.directory / (validate_graph_name(graph) + SUFFIX)

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- graphs --------------------------------------------------------------------

    def _graph_for(
        self, graph: str, x_axis: str, series: Mapping[str, Any], from_dict: bool
    ) -> GraphFile:
        g = self._graphs.get(graph) if isinstance(graph, str) else None
        if g is not None:
            raise MetricsError(mismatch(g, x_axis, series, from_dict))
        validate_graph_name(graph)
        validate_series_name(x_axis, "x axis")
        if not series:
            raise MetricsError(
                f"graph {graph!r}: no series given; log at least one, e.g. "
                f"log({graph!r}, step, value=0.5)"
            )
        names = tuple(series)
        for name in names:
            validate_series_name(name)
            if name == x_axis:
                raise MetricsError(
                    f"graph {graph!r}: series {name!r} has the x axis's name; the header "
                    f"cannot hold the same name twice, so rename the series"
                )
        folded = graph.casefold()
        other = self._folded.get(folded)
        if other is not None and other != graph:
            raise MetricsError(
                f"graph {graph!r} differs from the graph {other!r} only in upper/lower case; "
                f"on macOS and Windows both would be the same file: use one spelling"
            )
        g = GraphFile(graph, self.directory / (graph + SUFFIX), x_axis, names)
        if self._ensure_dir():
            g.open()
        self._graphs[graph] = g
        self._folded[folded] = graph
        return g

    def _ensure_dir(self) -> bool:
        """Create the metrics folder on the first graph; False (warned once) if it cannot."""
        if not self._dir_ready and not self._dir_failed:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._dir_ready = True
            except OSError as exc:
                self._dir_failed = True
                self._say(
                    "dir",
                    f"cannot create the metrics folder {self.directory}: "
                    f"{exc.strerror or exc}; training graphs are not written, training "
                    f"goes on",
                )
        return self._dir_ready

    # -- trouble -------------------------------------------------------------------

    def _say(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("trainwire: %s", text)

    def _inactive(self) -> None:
        if self._state is _State.CLOSED:
            self._say("closed", "metrics logged after the run ended are not written to the graphs")
        elif self._state is _State.FORKED:
            self._say(
                "forked",
                f"metrics logged in the forked process {os.getpid()} are not written: only "
                f"the process that started the run writes the graphs",
            )

    def _forked(self) -> None:
        self._state = _State.FORKED
        self.disable()
