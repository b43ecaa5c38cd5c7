"""Progress read from real captured training output (tests/data/progress).

Each case is what a pipe saw from a real tiny training run (re-record with
``python3 tests/data/progress/record.py``); its ``.expected.json`` was written by hand
from the run: the steps the training bar or counter showed, the total they add up to and
the framework's real step count. The bytes go through the parser as the supervisor feeds
it (one :class:`LineParser` per stream, one shared :class:`ProgressTracker`, ``tail()``
after every read) in the real read sizes, in fixed sizes, and cut at awkward places.
"""

from __future__ import annotations

import codecs
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainwire._tools._progress_parse import LineParser, ProgressTracker

DATA = Path(__file__).parent / "data" / "progress"
CASES = sorted(p.name.removesuffix(".expected.json") for p in DATA.glob("*.expected.json"))
STREAMS = ("stdout", "stderr")

Chunks = list[tuple[str, bytes]]


def _load(name: str) -> tuple[dict[str, bytes], list[tuple[str, int]]]:
    data = {s: (DATA / f"{name}.{s}").read_bytes() for s in STREAMS}
    reads = [(s, int(n)) for s, n in json.loads((DATA / f"{name}.chunks.json").read_text())]
    return data, reads


def _real_reads(data: dict[str, bytes], reads: list[tuple[str, int]]) -> Chunks:
    """The reads as the recorder got them, interleaved across the two pipes."""
    at = dict.fromkeys(STREAMS, 0)
    chunks = []
    for stream, size in reads:
        chunks.append((stream, data[stream][at[stream] : at[stream] + size]))
        at[stream] += size
    assert all(at[s] == len(data[s]) for s in STREAMS), "chunks.json does not match the data"
    return chunks


def _fixed(data: dict[str, bytes], size: int) -> Chunks:
    return [(s, data[s][i : i + size]) for s in STREAMS for i in range(0, len(data[s]), size)]


def _awkward_cuts(blob: bytes) -> Iterator[int]:
    """Offsets inside a UTF-8 character, between ``\\r`` and ``\\n``, inside an escape."""
    for i in range(1, len(blob)):
        if 0x80 <= blob[i] < 0xC0 or blob[i - 1 : i + 1] in (b"\r\n", b"\x1b[") or blob[i] == 0x1B:
            yield i


def _awkward(data: dict[str, bytes]) -> Chunks:
    chunks = []
    for stream in STREAMS:
        blob, start = data[stream], 0
        for cut in _awkward_cuts(blob):
            chunks.append((stream, blob[start:cut]))
            start = cut
        chunks.append((stream, blob[start:]))
    return chunks


def _random(data: dict[str, bytes], seed: int) -> Chunks:
    rng, chunks = random.Random(seed), []
    at = dict.fromkeys(STREAMS, 0)
    while any(at[s] < len(data[s]) for s in STREAMS):
        stream = rng.choice([s for s in STREAMS if at[s] < len(data[s])])
        size = rng.choice((1, 2, 3, 5, 64, 700))
        chunks.append((stream, data[stream][at[stream] : at[stream] + size]))
        at[stream] += size
    return chunks


def track(chunks: Chunks, total_steps: int | None = None) -> list[tuple[int, float]]:
    """What the supervisor would send for ``chunks`` (stream, bytes), in order."""
    tracker = ProgressTracker(total_steps)
    parsers = {s: LineParser() for s in STREAMS}
    decoders = {s: codecs.getincrementaldecoder("utf-8")(errors="replace") for s in STREAMS}
    sent = []
    for stream, data in chunks:
        parser = parsers[stream]
        readings = parser.feed(decoders[stream].decode(data))
        pending = parser.tail()
        for reading in [*readings, *([pending] if pending is not None else [])]:
            found = tracker.update(reading)
            if found is not None:
                sent.append(found)
    return sent


def _runs() -> Iterator[tuple[str, dict]]:
    for name in CASES:
        expected = json.loads((DATA / f"{name}.expected.json").read_text())
        for run in expected["runs"]:
            yield name, dict(run, real_steps=expected["real_steps"])


RUNS = list(_runs())
IDS = [f"{name}-total{run['total_steps']}" for name, run in RUNS]
FEEDS = {
    "real-reads": lambda data, reads: _real_reads(data, reads),
    "bytewise": lambda data, reads: _fixed(data, 1),
    "7-bytes": lambda data, reads: _fixed(data, 7),
    "64k": lambda data, reads: _fixed(data, 65536),
    "awkward-cuts": lambda data, reads: _awkward(data),
    "random": lambda data, reads: _random(data, 14),
}


def _expected(run: dict) -> list[tuple[int, float]]:
    total = run["total"]
    return [(step, step * 100.0 / total if total else 0.0) for step in run["steps"]]


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize(("name", "run"), RUNS, ids=IDS)
def test_corpus_progress_matches_the_real_run(name, run, feed):
    data, reads = _load(name)
    sent = track(FEEDS[feed](data, reads), run["total_steps"])
    assert [step for step, _ in sent] == run["steps"]
    assert sent == pytest.approx(_expected(run))
    assert sent[-1][0] == run["real_steps"]


@pytest.mark.parametrize("name", CASES)
def test_corpus_files_are_small_and_recorded_whole(name):
    data, reads = _load(name)
    assert sum(map(len, data.values())) < 200_000
    _real_reads(data, reads)  # the recorded reads cover the bytes exactly


def test_feed_bytes_decodes_characters_split_across_reads():
    frame = "train:  50%|█████     | 5/10 [00:01<00:01]\r".encode()
    parser, tracker = LineParser(), ProgressTracker()
    readings = [r for byte in range(len(frame)) for r in parser.feed_bytes(frame[byte : byte + 1])]
    assert [tracker.update(r) for r in readings] == [(5, 50.0)]
