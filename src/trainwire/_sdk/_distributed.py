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

A file belongs to this launch when it carries the same launch id (:func:`launch_id`):

- ``torchelastic:<run id>/<restart>`` under torchrun (and the launchers built on it, such
  as Accelerate), from ``TORCHELASTIC_RUN_ID`` and ``TORCHELASTIC_RESTART_COUNT``, when
  the run id is one of this launch (``--standalone``, or ``--rdzv-id``);
- ``slurm:<job>.<step>/<requeue>`` for tasks started by ``srun`` (``SLURM_PROCID`` set);
- ``pmix:<namespace>`` under a PMIx launcher (Open MPI's ``mpirun``, ``srun --mpi=pmix``);
- otherwise the ranks' parent process on this host: ``parent:<host>/<ppid>/<its start
  time>/<boot id>`` (``torch.multiprocessing.spawn``, DeepSpeed's launcher on one node, a
  shell script that starts the ranks; torchrun's static rendezvous, whose run id is the
  constant ``none``, gets the restart count added).

Every id is new for every launch, so a file from a launch that ended a second ago never
counts. A file without an id (written by an older trainwire) never counts either. The
cost of the last rule: ranks on other hosts whose launcher gives no launch-wide id
(torchrun's static rendezvous across nodes, DeepSpeed across nodes) are not named, and
rank 0 reports its own reason, as it does when no rank wrote a file.

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
#: torchrun's default ``--rdzv-id`` (static rendezvous): the same for every launch.
_STATIC_RUN_ID = "none"
#: (the pid that computed it, the parent-process launch id): a forked child recomputes.
_parent_cache: tuple[int, str] | None = None


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


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def launch_id() -> str:
    """An id shared by every process of this launch and new for every launch (see above)."""
    run_id = _env("TORCHELASTIC_RUN_ID")
    restart = _env("TORCHELASTIC_RESTART_COUNT") or "0"
    if run_id and run_id != _STATIC_RUN_ID:
        return f"torchelastic:{run_id}/{restart}"
    if not run_id:
        job, step = _env("SLURM_JOB_ID"), _env("SLURM_STEP_ID")
        if job and step and _env("SLURM_PROCID"):
            return f"slurm:{job}.{step}/{_env('SLURM_RESTART_COUNT') or '0'}"
        namespace = _env("PMIX_NAMESPACE")
        if namespace:
            return f"pmix:{namespace}"
    parent = _parent_launch()
    return f"torchelastic:{run_id}/{restart}@{parent}" if run_id else parent


def _parent_launch() -> str:
    """``parent:<host>/<ppid>/<its start time>/<boot id>``, computed once per process.

    Once: a rank outlives its launcher only while being torn down, and then its parent
    is no longer the launcher.
    """
    global _parent_cache
    pid = os.getpid()
    if _parent_cache is None or _parent_cache[0] != pid:
        ppid = os.getppid()
        parent = f"parent:{os.uname().nodename}/{ppid}/{_start_time(ppid)}/{_boot_id()}"
        _parent_cache = (pid, parent)
    return _parent_cache[1]


def _start_time(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot (Linux); "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def error_file(save_dir: Path, rank: int) -> Path:
    """Where ``rank`` writes its failure."""
    return Path(save_dir) / ERROR_FILE.format(rank=rank)


def record_failure(
    save_dir: Path, rank: int, message: str, *, launch: str | None = None
) -> Path | None:
    """On a non-zero rank: write why it failed, atomically; never raises. Returns the path.

    ``launch``: this launch's id, by default :func:`launch_id` (a run reads it at start,
    while the launcher it may derive from is surely alive).
    """
    path = error_file(save_dir, rank)
    record = {
        "rank": rank,
        "message": message,
        "time": time.time(),
        "host": _hostname(),
        "pid": os.getpid(),
        "launch": launch if launch is not None else launch_id(),
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


def find_failure(save_dir: Path, *, launch: str | None = None) -> RankFailure | None:
    """The earliest failure of another rank of this launch recorded in ``save_dir``.

    ``launch``: the launch id the files must carry, by default this process's
    :func:`launch_id`. Files of other launches, and files without an id, never count.
    """
    if launch is None:
        launch = launch_id()
    try:
        paths = sorted(Path(save_dir).glob(ERROR_FILE_GLOB))
    except OSError:
        return None
    found: list[RankFailure] = []
    for path in paths:
        failure = _read(path)
        if failure is not None and failure.rank != 0 and failure.launch == launch:
            found.append(failure)
    if not found:
        return None
    return min(found, key=lambda f: (f.time, f.rank))


def root_cause(save_dir: Path, message: str, language: str, *, launch: str | None = None) -> str:
    """On rank 0, ending with ``message``: the first failure of another rank of this launch
    (``launch``, by default :func:`launch_id`), if any."""
    failure = find_failure(save_dir, launch=launch)
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
