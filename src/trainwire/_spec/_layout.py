"""Where the spec puts a job's files under its ``model_write_path``: the one home of that layout.

``<model_write_path>/save/`` holds what trainwire keeps for a job (spools, rank failure
notes); ``<model_write_path>/save/metrics/<graph>.log`` are the graph files the platform
reads while training runs.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["GRAPH_SUFFIX", "metrics_dir", "save_dir"]

#: The suffix of a graph file: ``loss`` is drawn from ``save/metrics/loss.log``.
GRAPH_SUFFIX = ".log"

_SAVE = "save"
_METRICS = "metrics"


def save_dir(model_write_path: str | os.PathLike[str]) -> Path:
    """``<model_write_path>/save``."""
    return Path(model_write_path) / _SAVE


def metrics_dir(model_write_path: str | os.PathLike[str]) -> Path:
    """``<model_write_path>/save/metrics``: the folder of the graph files."""
    return save_dir(model_write_path) / _METRICS
