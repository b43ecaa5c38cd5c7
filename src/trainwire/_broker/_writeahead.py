"""The spool side of a run: what an earlier run kept is set aside, the terminal message
is written ahead before any waiting and taken out again once the broker confirmed it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from enum import Enum

from .._spec._config import Config
from .._spec._spool import SPOOL_FILE, Spool, make_record
from ._transport import Envelope

__all__ = ["SUPERSEDED_FILE", "SpoolState", "WriteAhead"]

log = logging.getLogger("trainwire")

#: Where records of this job that an earlier run kept are moved when a new run starts.
SUPERSEDED_FILE = "trainwire-spool.superseded.jsonl"


class SpoolState(Enum):
    """This run's own records in the spool."""

    NOT_WRITTEN = "not-written"  # the run has not begun to finish
    HELD = "held"  # the terminal (and the newest progress) are in the spool
    UNWRITABLE = "unwritable"  # writing failed: the broker is the only way left
    SETTLED = "settled"  # confirmed and taken out again


class WriteAhead:
    """This run's records in ``<model_write_path>/save/`` (see ``_amqp``'s module doc)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.spool = Spool(config.save_dir / SPOOL_FILE)
        self.state = SpoolState.NOT_WRITTEN
        self._ids: list[str] = []
        self._lock = threading.Lock()  # the ending thread and the I/O thread

    def supersede_earlier(self) -> None:
        """Move what an earlier run of this job kept in the spool aside."""
        try:
            records = [r for r in self.spool.read() if self.config.identity.owns(r.body)]
            if not records:
                return
            aside = Spool(self.spool.path.with_name(SUPERSEDED_FILE))
            aside.append(records)
            self.spool.remove(r.message_id for r in records)
        except Exception as exc:  # never let an old file stop a new run
            log.warning("trainwire: cannot read %s: %s", self.spool.path, exc)
            return
        terminals = [r.body.get("status") for r in records if r.terminal]
        log.warning(
            "trainwire: %s held %d message(s) of an earlier run of this job (%s); they are not "
            "sent, because this run supersedes them (the platform would ignore this run after "
            "an earlier training_error); they are kept in %s",
            self.spool.path,
            len(records),
            ", ".join(map(str, terminals)) or "progress only",
            aside.path,
        )

    def write(self, envelopes: Callable[[], Sequence[Envelope] | None]) -> None:
        """Keep what ``envelopes()`` returns (None: nothing to keep yet) in the spool, once."""
        with self._lock:
            if self.state is not SpoolState.NOT_WRITTEN:
                return
            kept = envelopes()
            if kept is None:
                return
            queue = self.config.queue_name
            try:
                self.spool.append(
                    make_record(e.message_id, queue, e.body, e.terminal) for e in kept
                )
            except Exception as exc:  # whatever it is, the broker may still take it
                self.state = SpoolState.UNWRITABLE
                log.error(
                    "trainwire: cannot keep the final status in %s (%s): it is lost if the "
                    "broker does not confirm it; check that 'model_write_path' in %s is writable",
                    self.spool.path,
                    exc,
                    self.config.path,
                )
                return
            self._ids = [e.message_id for e in kept]
            self.state = SpoolState.HELD

    def settle(self) -> None:
        """The terminal message is confirmed: take this run's records out of the spool."""
        with self._lock:
            if self.state is not SpoolState.HELD:
                return
            self.state = SpoolState.SETTLED
            try:
                self.spool.remove(self._ids)
            except OSError as exc:
                log.warning("trainwire: cannot update %s: %s", self.spool.path, exc)

    def report_kept(self, problem: str | None) -> None:
        """Say where the unconfirmed terminal message waits (``problem``: why, if known)."""
        if self.state is not SpoolState.HELD:
            return
        reason = f" ({problem} problem, see above)" if problem else ""
        log.warning(
            "trainwire: the broker did not confirm the final status%s; it is kept in %s. "
            "Send it with: trainwire replay --config %s",
            reason,
            self.spool.path,
            self.config.path,
        )
