"""``trainwire run`` passing a chatty child's output through, against ``cat``.

The child writes 50 MB (5 MB with ``--quick``) to stdout as fast as the pipe takes it: a
block of training output repeated (tqdm frames joined by ``\\r``, a
``| epoch 1 | 20/2000 batches |`` log line every 10 frames, plain log lines), so every
read holds progress for the parser. It stamps ``time.monotonic()`` before its first
write and after its last, and prints both on stderr.

trainwire: ``trainwire run --config C -- python child.py`` against the real broker (default
``--max-rate``, so the progress read reaches the queue). Baseline: ``python child.py | cat``.
The benchmark reads the pipeline's stdout and stamps the moment the last byte arrives:
throughput is the bytes over the time from the child's first write to that moment (start-up
and the terminal message are left out). The child's own wall time, with either consumer,
shows whether the supervisor slows it down: in the flood, and again with the child paced
to 2 MB/s (a very chatty training prints far less). Rounds alternate; medians.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time

from ._common import Context, Figure, child_env, fmt, median

__all__ = ["measure"]

MB = 1_000_000
#: Far above what a training prints (a chatty one: well under 1 MB/s).
GOAL_RATE = 20.0
#: Bytes a second of the paced child: far more than a training prints, far below the floods.
PACE = 2 * MB

_CHILD = textwrap.dedent("""
    import os, sys, time
    size, pace = int(sys.argv[1]), float(sys.argv[2])  # pace: bytes a second, 0: no limit
    parts = []
    for i in range(1, 2001):
        parts.append(f"\\rtrain: {i // 20:3d}%|{'#' * (i // 200):<10}| {i}/2000 [00:01<00:02]")
        if i % 10 == 0:
            parts.append(f"\\n| epoch   1 | {i:5d}/ 2000 batches | loss {i / 1e3:5.2f} |\\n")
        if i % 50 == 0:
            parts.append(f"INFO data: loaded shard {i} of the corpus from /data/train\\n")
    block = "".join(parts).encode()
    start = time.monotonic()
    written = 0
    while written < size:
        piece = block[: size - written]
        view = memoryview(piece)
        while view:
            view = view[os.write(1, view):]
        written += len(piece)
        if pace:
            time.sleep(max(0.0, start + written / pace - time.monotonic()))
    end = time.monotonic()
    print(f"child start={start!r} end={end!r}", file=sys.stderr, flush=True)
""")
_STAMPS = re.compile(r"child start=(?P<start>[\d.]+) end=(?P<end>[\d.]+)")


def _last_byte_at(fd: int, size: int, out: dict[str, float]) -> threading.Thread:
    """A thread reading ``stream`` to its end, stamping when ``size`` bytes arrived."""

    def read() -> None:
        seen = 0
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                return
            seen += len(data)
            if seen >= size and "last" not in out:
                out["last"] = time.monotonic()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _once(argv: list[str], size: int) -> tuple[float, float]:
    """``(MB/s through the consumer, the child's own seconds)`` for one pipeline run."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    stamps: dict[str, float] = {}
    reader = _last_byte_at(proc.stdout.fileno(), size, stamps)
    stderr = proc.stderr.read().decode("utf-8", "replace")
    proc.wait(timeout=600)
    reader.join(timeout=60)
    found = _STAMPS.search(stderr)
    if proc.returncode != 0 or found is None or "last" not in stamps:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {stderr[-500:]}")
    start, end = float(found["start"]), float(found["end"])
    return size / MB / (stamps["last"] - start), end - start


def _rounds(
    trainwire: list[str], child: list[str], size: int, pace: float, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """MB/s and the child's seconds per round, for ``trainwire run`` and for ``cat``."""
    command = [*child, str(size), str(pace)]
    shell = " ".join(f"'{part}'" for part in command) + " | cat"
    variants = {"trainwire": [*trainwire, *command], "cat": ["sh", "-c", shell]}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    child_seconds: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        for name in list(variants) if r % 2 == 0 else list(reversed(variants)):
            rate, seconds = _once(variants[name], size)
            rates[name].append(rate)
            child_seconds[name].append(seconds)
    return rates, child_seconds


def _slower(seconds: dict[str, list[float]]) -> str:
    ratio = median([a / b for a, b in zip(seconds["trainwire"], seconds["cat"])])
    ours, theirs = median(seconds["trainwire"]), median(seconds["cat"])
    return f"{ours:.2f} s / {theirs:.2f} s ({ratio:.2f}x)"


def measure(ctx: Context) -> list[Figure]:
    """One figure: MB/s through ``trainwire run`` against MB/s through ``cat``."""
    size = (5 if ctx.quick else 50) * MB
    child = ctx.dir / "chatty_child.py"
    child.write_text(_CHILD)
    queue = ctx.new_queue()
    config = ctx.config(queue=queue)
    trainwire = [sys.executable, "-m", "trainwire", "-q", "run", "--config", str(config), "--"]
    try:
        rates, child_seconds = _rounds(
            trainwire, [sys.executable, str(child)], size, 0, 3 if ctx.quick else 5
        )
        paced_size = (1 if ctx.quick else 5) * MB
        _paced_rates, paced = _rounds(
            trainwire, [sys.executable, str(child)], paced_size, PACE, 1 if ctx.quick else 3
        )
    finally:
        ctx.delete_queue(queue)
    ours, theirs = median(rates["trainwire"]), median(rates["cat"])
    return [
        Figure(
            key="supervisor",
            title=f"`trainwire run` passing {size // MB} MB of training output through",
            unit="MB/s",
            trainwire=round(ours, 1),
            baseline=round(theirs, 1),
            baseline_name="`python child.py | cat`",
            goal=f">= {GOAL_RATE:g} MB/s",
            met=ours >= GOAL_RATE,
            ratio=median([a / b for a, b in zip(rates["trainwire"], rates["cat"])]),
            ratio_style="%",
            note="tqdm frames, N/M log lines and plain lines; progress read and sent to the "
            "broker at the default --max-rate",
            details=[
                (
                    "trainwire run, each round",
                    ", ".join(fmt(round(v, 1), "MB/s") for v in rates["trainwire"]),
                ),
                ("cat, each round", ", ".join(fmt(round(v, 1), "MB/s") for v in rates["cat"])),
                (
                    "the child's own wall time, under trainwire run / piped to cat (median)",
                    _slower(child_seconds),
                ),
                (
                    f"the same child printing {paced_size // MB} MB at {PACE / MB:g} MB/s "
                    "(a very chatty training): its wall time, under trainwire run / piped to cat",
                    _slower(paced),
                ),
            ],
        )
    ]
