"""``serve --keep-messages N``: a thread that trims each job's message log to its newest
``N`` rows, a few seconds behind ingest (the job's state is kept; only history goes)."""

from __future__ import annotations

import logging
import threading

from ._store import Store

__all__ = ["TRIM_INTERVAL", "Trimmer"]

log = logging.getLogger("trainwire.serve")

#: Seconds between two passes (each looks only at jobs that logged something since).
TRIM_INTERVAL = 5.0


class Trimmer:
    """Keeps at most ``keep`` logged messages per job in ``store``."""

    def __init__(self, store: Store, keep: int) -> None:
        self.store = store
        self.keep = keep
        self._after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trainwire-trim", daemon=True)

    def start(self) -> None:
        """Trim now and then every :data:`TRIM_INTERVAL` seconds, in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop trimming."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def trim(self) -> int:
        """One pass now; how many rows it deleted."""
        self._after, deleted = self.store.trim_messages(self.keep, self._after)
        return deleted

    def _loop(self) -> None:
        while True:
            try:
                deleted = self.trim()
                if deleted:
                    log.info("trainwire serve: trimmed %d old messages", deleted)
            except Exception as exc:  # the database is down: the next pass catches up
                log.warning("trainwire serve: trimming the message log failed: %s", exc)
            if self._stop.wait(TRIM_INTERVAL):
                return
