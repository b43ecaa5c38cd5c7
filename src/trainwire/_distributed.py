"""A failure on a non-zero rank, told to the platform by rank 0.

In a distributed job only global rank 0 talks to the broker. When another rank fails,
rank 0 sees only the fallout: a collective that breaks ("Connection closed by peer") or
the launcher's SIGTERM (torchrun tears the surviving ranks down when one dies). So:

1. **The failing rank writes its reason.** A non-zero rank's run (``reporting`` is False)
   is still under the process hooks. When it ends with an error (an uncaught exception,
   ``run.fail(...)``, an integration's exception hook, ``sys.exit(n != 0)``) it writes
   ``<model_write_path>/save/trainwire-rank-<rank>.error.json`` atomically (temporary file
   and rename), before the process dies: the rank, the plain sentence, the time, the
   host, the pid and the launch it belongs to. A signal on a non-zero rank is the
   launcher's teardown, not a cause, and writes nothing.
2. **Rank 0 names the first failure.** When rank 0's run ends with an error (its own
   exception, the teardown's SIGTERM, a non-zero exit status), it reads those files and,
   when one belongs to this launch, sends its one ``training_error`` as "process rank
   <r> failed: <that rank's sentence>", with the earliest failure winning. No file: rank 0
   sends its own reason, as always. Rank 0 never waits and trainwire adds no collective
   call; the files are left in place for the user to read.

A file belongs to this launch when it carries the same launch id (torchrun, and the
launchers built on it such as Accelerate, set ``TORCHELASTIC_RUN_ID``; the restart count
is part of it) or, when the launcher sets none (and the file has none either), when it
was written no earlier than :data:`STALE_AFTER` seconds before rank 0's run started.

``trainwire run`` can use :func:`find_failure` the same way when rank 0 itself died
without a word (SIGKILL).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._explain import text

__all__ = [
    "ERROR_FILE_GLOB",
    "STALE_AFTER",
    "RankFailure",
    "error_file",
    "find_failure",
    "launch_id",
    "record_failure",
    "root_cause",
]

log = logging.getLogger("trainwire")

#: ``<save>/trainwire-rank-<rank>.error.json``, one per failed rank.
ERROR_FILE = "trainwire-rank-{rank}.error.json"
ERROR_FILE_GLOB = "trainwire-rank-*.error.json"
#: Without a launch id, a file written this long before rank 0's run started is stale.
STALE_AFTER = 60.0
_LAUNCH_VARS = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")


@dataclass(frozen=True)
class RankFailure:
    """What a failed rank wrote: who, what (a sentence for the user), when and where."""

    rank: int
    message: str
    time: float
    host: str = ""
    pid: int = 0
    launch: str | None = None

    def describe(self, language: str) -> str:
        """The sentence rank 0 sends: the rank and its reason."""
        return text("nonzero_rank", language, rank=self.rank, detail=self.message)


def launch_id() -> str | None:
    """An id shared by every process of this launch (and attempt), or None when unknown."""
    run_id = os.environ.get(_LAUNCH_VARS[0], "").strip()
    if not run_id:
        return None
    return f"{run_id}/{os.environ.get(_LAUNCH_VARS[1], '0').strip() or '0'}"


def error_file(save_dir: Path, rank: int) -> Path:
    """Where ``rank`` writes its failure."""
    return Path(save_dir) / ERROR_FILE.format(rank=rank)


def record_failure(save_dir: Path, rank: int, message: str) -> Path | None:
    """On a non-zero rank: write why it failed, atomically; never raises. Returns the path."""
    path = error_file(save_dir, rank)
    record = {
        "rank": rank,
        "message": message,
        "time": time.time(),
        "host": _hostname(),
        "pid": os.getpid(),
        "launch": launch_id(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning(
            "trainwire: rank %d cannot record its failure for rank 0 in %s: %s", rank, path, exc
        )
        return None
    return path


def _read(path: Path) -> RankFailure | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        rank, message, when = data["rank"], data["message"], data["time"]
        if not isinstance(rank, int) or not isinstance(message, str) or not message.strip():
            return None
        launch = data.get("launch")
        return RankFailure(
            rank=rank,
            message=message,
            time=float(when),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            launch=launch if isinstance(launch, str) else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_failure(save_dir: Path, *, since: float, launch: str | None = None) -> RankFailure | None:
    """The earliest failure of another rank of this launch recorded in ``save_dir``.

    ``launch`` is this process's :func:`launch_id`: only files of the same launch count
    (a file with a launch id is never one of a launch without). Without a launch id,
    files written before ``since - STALE_AFTER`` are stale.
    """
    try:
        paths = sorted(Path(save_dir).glob(ERROR_FILE_GLOB))
    except OSError:
        return None
    found: list[RankFailure] = []
    for path in paths:
        failure = _read(path)
        if failure is None or failure.rank == 0:
            continue
        if failure.launch != launch:
            continue
        if launch is None and failure.time < since - STALE_AFTER:
            continue
        found.append(failure)
    if not found:
        return None
    return min(found, key=lambda f: (f.time, f.rank))


def root_cause(save_dir: Path, message: str, language: str, *, since: float) -> str:
    """On rank 0, ending with ``message``: the first failure of another rank, if any."""
    failure = find_failure(save_dir, since=since, launch=launch_id())
    if failure is None:
        return message
    log.info(
        "trainwire: rank %d failed first (%s); reporting it instead of rank 0's %r",
        failure.rank,
        error_file(save_dir, failure.rank),
        message,
    )
    return failure.describe(language)


def _hostname() -> str:
    import socket  # here, not at the top: `import trainwire` stays light

    return socket.gethostname()
