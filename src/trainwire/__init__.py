"""trainwire: report training progress to the ML platform over RabbitMQ.

Two lines to adopt::

    import trainwire

    with trainwire.init(config="train_config.json", total_steps=1000) as run:
        for step in range(1, 1001):
            ...
            run.progress(step)

``progress()`` never blocks or raises for broker trouble; the run always ends with exactly
one ``training_done`` or ``training_error``, confirmed by the broker or kept in a local
spool for ``trainwire replay``.
"""

from __future__ import annotations

from ._errors import ConfigError, MetricsError, ProtocolError, TrainingError, TrainwireError
from ._sdk._run import Run, init
from ._sdk._track import track
from ._spec._config import Config, load_config

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "MetricsError",
    "ProtocolError",
    "Run",
    "TrainingError",
    "TrainwireError",
    "__version__",
    "init",
    "load_config",
    "track",
]
