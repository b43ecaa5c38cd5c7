"""Transports that need no server: the offline file (the embedded default) and nothing."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .._broker._transport import Outbox, Transport

__all__ = ["FileTransport", "NullTransport"]

log = logging.getLogger("trainwire")


class FileTransport(Transport):
    """Appends what would have been sent to a JSON-lines file, from its own thread.

    Used when the config names no ``message_host`` or ``TRAINWIRE_MODE=offline``: the run
    behaves exactly as with a broker (same rate limit, same terminal rule), and the file
    shows what the platform would have received. The terminal line is written by
    ``finish`` itself (a local, bounded write), so it is there whatever the timeout;
    ``finish`` is True only when it was written.
    """

    name = "offline"
    interval = 0.05

    def __init__(self, outbox: Outbox, path: Path) -> None:
        super().__init__(outbox)
        self.path = path
        self._wake_event = threading.Event()
        self._write_lock = threading.Lock()  # the I/O thread and finish(), never training
        self._stop = False
        self._broken = False
        self._thread = threading.Thread(target=self._main, name="trainwire-offline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake_event.set()

    def finish(self, timeout: float) -> bool:
        self._stop = True
        self.wake()
        with self._write_lock:
            lines = self._progress_lines(ending=True)
            terminal = self.outbox.terminal
            if terminal is not None:
                lines.append(offline_line(terminal.message_id, terminal.body))
            return self._write(lines, sync=True) and terminal is not None

    def abandon(self) -> None:
        self._stop = True

    def _progress_lines(self, ending: bool) -> list[str]:
        lines: list[str] = []
        while True:
            envelope = self.outbox.take_progress(ignore_rate=ending)
            if envelope is None:
                return lines
            lines.append(offline_line(envelope.message_id, envelope.body))
            if self.outbox.max_rate and not ending:
                return lines

    def _write(self, lines: list[str], sync: bool) -> bool:
        if self._broken:
            return False
        if not lines:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # A lone surrogate becomes a backslash-u escape: the line stays valid JSON.
                os.write(fd, "".join(lines).encode("utf-8", "backslashreplace"))
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._broken = True
            log.warning("trainwire: cannot write the offline record %s: %s", self.path, exc)
            return False
        return True

    def _main(self) -> None:
        while not self._stop:
            self._wake_event.wait(self.interval)
            self._wake_event.clear()
            with self._write_lock:
                if self._stop:
                    return
                self._write(self._progress_lines(ending=False), sync=False)


def offline_line(message_id: str, body: dict[str, object]) -> str:
    """One record of the offline file: the message id and body as a JSON line."""
    return json.dumps({"message_id": message_id, "body": body}, ensure_ascii=False) + "\n"


class NullTransport(Transport):
    """Sends nothing (``TRAINWIRE_MODE=disabled``, other ranks, forked children)."""

    name = "disabled"

    def start(self) -> None:
        pass

    def finish(self, timeout: float) -> bool:
        return False  # nothing was sent: Run.delivered says None for a disabled run
