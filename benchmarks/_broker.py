"""The benchmarks' RabbitMQ node: the test suite's private ``Broker``, imported, not copied."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

from _broker import Broker, BrokerError, free_port  # noqa: E402

__all__ = ["Broker", "BrokerError", "free_port"]
