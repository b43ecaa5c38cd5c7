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
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainwire._tools._progress_parse import LineParser, ProgressTracker, parse_line

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


#: Feeds whose reads hold at most one whole bar frame: every frame printed is seen. A read
#: holding several frames of one bar is read by its newest frame only.
EVERY_FRAME = ("real-reads", "bytewise", "7-bytes", "awkward-cuts")


@pytest.mark.parametrize("feed", list(FEEDS))
@pytest.mark.parametrize(("name", "run"), RUNS, ids=IDS)
def test_corpus_progress_matches_the_real_run(name, run, feed):
    data, reads = _load(name)
    sent = track(FEEDS[feed](data, reads), run["total_steps"])
    expected = _expected(run)
    if feed not in EVERY_FRAME:
        steps = {step for step, _ in sent}
        expected = [pair for pair in expected if pair[0] in steps]
    assert [step for step, _ in sent] == [step for step, _ in expected]
    assert sent == pytest.approx(expected)
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


# -- the rules, on small hand-made streams ------------------------------------------------


def _text(text: str, total_steps: int | None = None) -> list[tuple[int, float]]:
    """``text`` fed one line or frame at a time."""
    pieces = re.split(r"(?<=[\r\n])", text)
    return track([("stderr", piece.encode()) for piece in pieces if piece], total_steps)


def _frame(desc: str, n: int, total: int, position: int = 0) -> str:
    pct = n * 100 // total
    bar = f"{desc}{': ' if desc else ''}{pct:3d}%|#| {n}/{total} [00:01<00:01, 9.00it/s]"
    return "\n" * position + "\r" + bar + "\x1b[A" * position


def test_bars_named_as_evaluation_or_data_never_count_even_first():
    frames = [
        _frame("Map", 1000, 1000),
        _frame("model.safetensors", 5, 10).replace("it/s", "MB/s"),
        _frame("Sanity Checking DataLoader 0", 2, 2),
        _frame("train", 3, 10),
        _frame("Evaluating", 40, 40, position=1),
        _frame("Validation DataLoader 0", 9, 10),
        _frame("train", 10, 10),
    ]
    assert _text("".join(frames) + "\n") == [(3, 30.0), (10, 100.0)]


def test_a_bar_appearing_once_the_training_bar_moved_is_not_training():
    # Hugging Face: the evaluation bar has no description and counts past the step.
    frames = [_frame("", n, 30) for n in range(0, 11, 5)]
    frames += [_frame("", n, 40, position=1) for n in range(0, 41, 10)]
    frames += [_frame("", 20, 30), _frame("", 0, 40), _frame("", 40, 40), _frame("", 30, 30)]
    assert [s for s, _ in _text("".join(frames) + "\n")] == [0, 5, 10, 20, 30]


def test_an_evaluation_before_the_first_step_is_not_an_inner_loop():
    # Hugging Face with eval_on_start: the evaluation bar (10) below the unmoved bar (30).
    frames = [_frame("", 0, 30)] + [_frame("", n, 10, position=1) for n in (0, 5, 10)]
    frames += [_frame("", n, 30) for n in (1, 15, 30)]
    assert _text("".join(frames) + "\n") == [(0, 0.0), (1, 100 / 30), (15, 50.0), (30, 100.0)]


def test_an_inner_bar_below_an_unmoved_outer_bar_counts_steps_of_its_epochs():
    frames = []
    for epoch in range(2):
        frames.append(_frame("epochs", epoch, 2))
        frames += [_frame(f"epoch {epoch}", n, 4, position=1) for n in (0, 2, 4)]
    frames.append(_frame("epochs", 2, 2))
    assert _text("".join(frames) + "\n") == [
        (0, 0.0), (2, 25.0), (4, 50.0), (6, 75.0), (8, 100.0)
    ]  # fmt: skip


def test_an_outer_bar_moving_without_its_inner_loop_demotes_the_inner_bar():
    frames = [_frame("outer", 0, 3), _frame("", 0, 5, position=1), _frame("", 5, 5, 1)]
    frames += [_frame("outer", 1, 3), _frame("outer", 2, 3), _frame("outer", 3, 3)]
    frames += [_frame("", 0, 5, position=1), _frame("", 5, 5, 1)]  # no longer counted
    assert [s for s, _ in _text("".join(frames) + "\n")] == [0, 5]


def test_lightning_epochs_without_their_count_never_say_100_before_the_end():
    frames = [f"\rEpoch {e}: 100%|#| 8/8 [00:00<00:00]\n" for e in range(3)]
    assert _text("".join(frames)) == [(8, 0.0), (16, 0.0), (24, 0.0)]
    assert _text("".join(frames), total_steps=24)[-1] == (24, 100.0)


def test_frames_drawn_over_within_one_read_count_by_the_newest_even_across_a_restart():
    first = "\rtrain:  50%|#| 5/10 [00:01<00:01]\n"
    frames = "".join(_frame("train", n, 10) for n in (9, 10, 0, 1)) + "\n"
    assert track([("stderr", first.encode()), ("stderr", frames.encode())]) == [
        (5, 50.0), (11, 50.0)
    ]  # fmt: skip


def test_epoch_bars_count_from_what_the_first_one_shows():
    def bars(descs):
        return "".join(f"\r{d}: 100%|#| 4/4 [00:00<00:00]\n" for d in descs)

    assert _text(bars(["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]))[-1] == (12, 100.0)
    assert _text(bars(["Epoch 0/2", "Epoch 1/2", "Epoch 2/2"]))[-1] == (12, 100.0)
    assert _text(bars(["Epoch 1", "Epoch 2"]), total_steps=8)[-1] == (8, 100.0)
    assert _text(bars(["Epoch 0", "Epoch 1"]), total_steps=8)[-1] == (8, 100.0)


def test_counters_in_log_lines():
    epochs = "Epoch 1/4 - loss 0.3\nEpoch 2/4 - loss 0.2\n"  # a count of epochs
    assert _text(epochs) == [(1, 25.0), (2, 50.0)]
    lines = [
        "step 40/1000 loss 2.1",
        "iter 80/1000 | lr 1e-3",
        "Epoch 2/4 - loss 0.2",  # coarser than the steps seen: ignored
        "trainwire step=120 total=1000",
    ]
    assert _text("\n".join(lines) + "\n") == [(40, 4.0), (80, 8.0), (120, 12.0)]


def test_an_unfinished_line_gives_a_bar_state_but_never_a_cut_counter():
    parser, tracker = LineParser(), ProgressTracker()
    for reading in parser.feed("\rtrain:  10%|#| 10/100 [00:01<00:09, 9.00it/s]\rtrain:  1"):
        tracker.update(reading)
    assert parser.tail() is None  # "1" of "12/100" must not count
    parser.feed("2%|#| 12/100 [00:01<00:09, 9.00it/s]")
    pending = parser.tail()
    assert pending is not None and tracker.update(pending) == (12, 12.0)
    parser.feed("\rEval:  1%|#| 1/2")
    assert parser.tail() is None


def test_a_new_bar_is_not_judged_on_an_unfinished_line():
    parser = LineParser()
    parser.feed("\rtrain:  50%|#| 5/10 [00:01<00:01]\n")
    parser.feed("\n\r  0%|          | 0/40 [00:00<?, ?it/s]")  # its "cursor up" still to come
    assert parser.tail() is None


# -- hostile output ----------------------------------------------------------------------

HOSTILE = [
    b"\x00\x00train:  50%|#| 5/10 [00:01]\x00\r\n",
    b"\xff\xfe\xed\xa0\x80 bad utf-8 \xc3\r\n",
    b"x" * 1_000_000,
    b"\r 100%|#| " + str(10**30).encode() + b"/" + str(10**30).encode() + b" [00:01]\n",
    b"\r 50%|#| -5/10 [00:01]\n\r 50%|#| 5/-10 [00:01]\n",
    b"\r 200%|#| 20/10 [00:01]\nstep 20/10\nEpoch [5/3], Step [1/2]\n",
    b"step -5/10\nx -5/10 batches\nEpoch -1/3, step 2/4\n",
    b"trainwire step=" + str(10**30).encode() + b" total=1\ntrainwire step=-1 total=5\n",
    b"trainwire step=3 percentage=nan\ntrainwire step=3 percentage=1e400\n",
    b"[" + b"9" * 40 + b"]\teval-logloss:0.1\n| end of epoch 99999999999999 |\n",
    b"Epoch 999999999/1000000000 ",
    b"\x1b[" + b"9" * 5000 + b"\x1b]" + b"\x07" * 3 + b"\x1b" * 1000 + b"\n",
    b"\r 1.5e3/2.0M |##| \r 99%|#| 1.5k/2.0M [00:01]\n",
    b"\r\r\r\n\n\n" * 1000,
    b"\r train:  60%|#| 6/10 [00:01]\n",
]


def _assert_sane(sent: list[tuple[int, float]]) -> None:
    steps = [s for s, _ in sent]
    percentages = [p for _, p in sent]
    assert steps == sorted(steps) and percentages == sorted(percentages)
    assert all(0 <= s <= 2**53 and 0.0 <= p <= 100.0 for s, p in sent)


@pytest.mark.parametrize("size", [1, 4096, 65536])
def test_hostile_output_neither_crashes_nor_moves_progress_back_or_past_100(size):
    data = b"".join(HOSTILE)
    if size == 1:
        data = data.replace(b"x" * 1_000_000, b"x" * 20_000)  # bytewise: keep it quick
    sent = track([("stderr", data[i : i + size]) for i in range(0, len(data), size)])
    _assert_sane(sent)
    assert sent[-1] == (6, 60.0), sent  # the bogus lines gave nothing; the last bar counts


def test_a_long_line_without_newline_keeps_only_its_end():
    parser = LineParser()
    for _ in range(16):
        assert parser.feed("y" * 65536) == []
    assert len(parser._pending) <= 8192
    assert parser.feed("\r train:  10%|#| 1/10 [00:01]\n") != []


def test_parse_line_alone_knows_progress_lines():
    assert parse_line("train:  45%|####5     | 90/200 [00:01<00:02, 45.00it/s]") is not None
    assert parse_line("[3]\tvalid_0's auc: 0.9") is not None
    assert (
        parse_line("RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x3 and 5x1)") is None
    )


_PIECES = [
    b"\r",
    b"\n",
    b"\x1b[A",
    b"\xe2\x96",
    b"\x88",
    b"\x00",
    b"\xff",
    b"train:  50%|#| 5/10 [00:01]",
    b" 10%|#| 1/10 [00:01]",
    b"Epoch 1:  20%|#| 2/10 [00:01]",
    b"Validation: 100%|#| 10/10 [00:01]",
    b"Epoch 2/3",
    b"3/8 \xe2\x94\x81\xe2\x94\x81 0s",
    b"[7]\teval-logloss:0.1",
    b"| epoch   2 |    20/   60 batches |",
    b"| end of epoch   2 |",
    b"step 7/9",
    b"trainwire step=4 total=8",
    b"99999999999999999999/1",
]


@pytest.mark.parametrize("seed", range(40))
def test_any_mix_of_progress_and_garbage_stays_monotone_and_bounded(seed):
    rng = random.Random(seed)
    pieces = [
        rng.choice(_PIECES) if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 12))
        for _ in range(rng.randint(0, 80))
    ]
    data, cut = b"".join(pieces), rng.randint(1, 9)
    chunks = [("stdout", data[i : i + cut]) for i in range(0, len(data), cut)]
    _assert_sane(track(chunks))
    _assert_sane(track(chunks, total_steps=5))
