"""Where a run's reporting is, as one value the training and I/O threads both read."""

from __future__ import annotations

import logging
import threading
from enum import Enum

from ._notices import Notices

__all__ = ["Phase", "Reporting"]


class Phase(Enum):
    """Every phase but ``RUNNING`` stops the I/O thread."""

    RUNNING = "running"
    CONFIRMED = "confirmed"  # the terminal message is confirmed
    GIVEN_UP = "given-up"  # finish() timed out: the spool owns what is left
    SWITCHED_OFF = "switched-off"  # retrying cannot help (login, TLS, permission)
    ABANDONED = "abandoned"  # a forked child, or the process is going


class Reporting:
    """The phase, the events ``finish`` waits on, and the one line per kind of trouble."""

    def __init__(self) -> None:
        self.phase = Phase.RUNNING
        self.notices = Notices()
        #: The kind of trouble that switched reporting off, for the last word.
        self.problem: str | None = None
        self.confirmed = threading.Event()
        #: Set when there is nothing more to wait for: confirmed, or reporting switched off.
        self.settled = threading.Event()

    @property
    def running(self) -> bool:
        """True until the run's reporting is over."""
        return self.phase is Phase.RUNNING

    def stop(self, phase: Phase) -> None:
        """End the reporting; the first reason wins."""
        if self.phase is Phase.RUNNING:
            self.phase = phase

    def switch_off(self, kind: str, text: str) -> None:
        """Retrying cannot help: say why once, and stop."""
        self.problem = kind
        self.stop(Phase.SWITCHED_OFF)
        self.notices.say(kind, logging.ERROR, text + "; status reporting is switched off")
        self.settled.set()

    def terminal_confirmed(self) -> None:
        """The broker confirmed the terminal message: nothing more to do."""
        self.confirmed.set()
        self.settled.set()
        self.stop(Phase.CONFIRMED)
