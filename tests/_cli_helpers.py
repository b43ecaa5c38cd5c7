"""Helpers for the CLI tests: run the installed ``trainwire`` command as a subprocess and
read what reached the queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The console script installed next to this interpreter, else ``python -m trainwire``.
_SCRIPT = Path(sys.executable).parent / "trainwire"
TRAINWIRE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "trainwire"]

PROGRESS, DONE, ERROR = "training_ing", "training_done", "training_error"


def env(**extra: str) -> dict[str, str]:
    """The test process's environment without trainwire's variables, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINWIRE_")}
    base.update(extra)
    return base


def trainwire(
    *args: Any, timeout: float = 60, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``trainwire ARGS...`` to completion; text output captured."""
    return subprocess.run(
        [*TRAINWIRE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(**extra_env),
        stdin=subprocess.DEVNULL,
    )


def start(*args: Any, **extra_env: str) -> subprocess.Popen[str]:
    """Start ``trainwire ARGS...`` in the background (stdout/stderr piped, text)."""
    return subprocess.Popen(
        [*TRAINWIRE, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(**extra_env),
        stdin=subprocess.DEVNULL,
    )


def bodies(messages: list[dict]) -> list[dict]:
    """The JSON bodies of drained messages."""
    return [m["body"] for m in messages]


def terminals(messages: list[dict]) -> list[dict]:
    """The terminal messages among drained ones."""
    return [b for b in bodies(messages) if b.get("status") in (DONE, ERROR)]


def settle(broker: Any, queue: str, *, quiet: float = 1.0, timeout: float = 10.0) -> list[dict]:
    """Everything in ``queue`` once a terminal message is there and ``quiet`` seconds more
    brought nothing (so a second terminal message would have been seen)."""
    msgs = broker.wait_for(queue, lambda ms: bool(terminals(ms)), timeout=timeout)
    return msgs + broker.wait_for(queue, lambda ms: False, timeout=quiet)
