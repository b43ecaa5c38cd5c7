"""trainwire's benchmarks: what reporting costs a training job, measured side by side.

Run everything with ``python -m benchmarks`` (or ``python benchmarks/run.py``); it writes
``docs/benchmarks.md``. ``--quick`` is a fast smoke run, ``--no-write`` leaves the docs
alone, ``--json FILE`` keeps the raw figures. Each figure module measures trainwire and
its baseline in the same process run, in alternating rounds, and reports medians and the
ratio of the two: the machines are shared and noisy, so the ratio is what counts.
"""
