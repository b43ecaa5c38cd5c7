"""The prose of docs/benchmarks.md: how to read the figures and what explains them."""

from __future__ import annotations

__all__ = ["ANALYSIS", "INTRO"]

INTRO = """
What reporting with trainwire costs a training job, measured side by side with what a
user would otherwise reach for. Every figure is measured against its baseline in the
same process run (alternating rounds, medians), because the machines are shared and
noisy: the ratio is what counts, the absolute numbers move from run to run.
"""

ANALYSIS = """
(to be written)
"""
