"""The exception hierarchy: one root, leaves that also inherit the matching built-in."""

from __future__ import annotations

__all__ = ["ConfigError", "MetricsError", "ProtocolError", "TrainingError", "TrainwireError"]


class TrainwireError(Exception):
    """Root of every exception trainwire raises."""


class ConfigError(TrainwireError, ValueError):
    """The training config file is missing, unreadable, malformed or incomplete.

    The text names the file, the key, what was expected and what was found.
    """


class MetricsError(TrainwireError, ValueError):
    """A graph, series or value that cannot go into a metrics file, or a file that does
    not match what is logged. The text says what is wrong and what to do."""


class ProtocolError(TrainwireError, ValueError):
    """A status message does not follow the platform's protocol."""


class TrainingError(TrainwireError, RuntimeError):
    """Raise it to end a run with ``training_error``; its text is sent verbatim.

    The platform shows the text to the user, so write it for a person::

        raise trainwire.TrainingError(
            "학습 이미지 크기가 맞지 않습니다. 3000x2000을 기대했는데 300x200이 제공되었습니다."
        )
    """

    def __init__(self, message: str) -> None:
        if not isinstance(message, str) or not message.strip():
            raise TypeError("TrainingError needs a non-empty message for the user")
        super().__init__(message)

    @property
    def message(self) -> str:
        """The text shown to the user."""
        return str(self.args[0])
