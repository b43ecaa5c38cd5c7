"""A flood of output: ``trainwire run`` copies every byte and still ends at the bar's last
state, while reading progress from only part of the flood (the budget in
``trainwire._tools._flood``). The budget on a test clock; one real flood end to end."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

from _cli_helpers import DONE, PROGRESS, TRAINWIRE, bodies, env, settle, terminals
from trainwire._tools._flood import INTERVAL, NEWEST, ReadingBudget


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _frames(first: int, last: int, total: int = 100_000) -> str:
    return "".join(f"\rtrain: {n * 100 // total:3d}%|#| {n}/{total} [00:01<00:02]" for n in
                   range(first, last + 1))  # fmt: skip


def test_quiet_output_is_read_whole():
    clock = Clock()
    budget = ReadingBudget(clock)
    for n in range(1, 50):
        clock.now += 0.1  # a bar frame every 100 ms
        text = _frames(n, n)
        assert budget.part(text) is text
        budget.spent(text, text, 1e-5)
    assert not budget.flooded and budget.rest() == ""


def test_a_flood_is_read_in_its_newest_whole_lines_at_most_every_interval():
    clock = Clock()
    budget = ReadingBudget(clock)
    flood = _frames(1, 20_000)
    part = budget.part(flood)
    assert budget.flooded
    assert part.startswith("\ntrain:") and len(part) <= NEWEST + 1
    assert flood.endswith("\r" + part[1:])  # the newest frames, from a frame's start
    budget.spent(part, flood, 0.001)
    clock.now += INTERVAL / 2
    more = _frames(20_001, 40_000)
    assert budget.part(more) == ""  # within the interval: not read at all...
    assert budget.rest().endswith("| 40000/100000 [00:01<00:02]")  # ...but kept for the end
    clock.now += INTERVAL
    assert budget.part(more).endswith("| 40000/100000 [00:01<00:02]")


def test_after_the_flood_the_output_is_read_whole_again():
    clock = Clock()
    budget = ReadingBudget(clock)
    budget.part(_frames(1, 20_000))
    assert budget.flooded
    clock.now += 5.0  # quiet again: the budget refills
    text = _frames(20_001, 20_001)
    assert budget.part(text) is text and not budget.flooded


FLOOD = """
    import os
    total = 200_000
    block = "".join(f"\\rtrain: {n * 100 // total:3d}%|#| {n}/{total} [00:01<00:02]"
                    for n in range(1, total + 1)).encode()
    view = memoryview(block)
    while view:
        view = view[os.write(1, view[:65536]):]
"""


def test_a_flood_of_output_passes_whole_and_ends_at_the_bars_last_state(broker, queue, make_config):
    result = subprocess.run(
        [*TRAINWIRE, "run", "--config", str(make_config()), "--",
         sys.executable, "-c", textwrap.dedent(FLOOD)],
        capture_output=True, env=env(), timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    total = 200_000
    expected = "".join(
        f"\rtrain: {n * 100 // total:3d}%|#| {n}/{total} [00:01<00:02]" for n in range(1, total + 1)
    ).encode()
    assert len(result.stdout) == len(expected) > 8_000_000
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(expected).digest()
    msgs = settle(broker, queue)
    progress = [(b["step"], b["percentage"]) for b in bodies(msgs) if b["status"] == PROGRESS]
    assert progress[-1] == (total, 100.0)
    assert [s for s, _ in progress] == sorted({s for s, _ in progress})
    assert [end["status"] for end in terminals(msgs)] == [DONE]
