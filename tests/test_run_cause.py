"""The cause a ``training_error`` names for a failed command: recorded real outputs
(tests/data/run_cause, re-recorded by its record.py) read as the supervisor reads them,
plus ``trainwire run -- torchrun ...`` end to end against the real broker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _cli_helpers import ERROR, bodies, settle, terminals, trainwire
from trainwire._tools._failure_cause import OutputTail, RankFailures, describe_failure

DATA = Path(__file__).parent / "data" / "run_cause"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "case.json").exists())
TORCHRUN = DATA / "torchrun_rank_failure"


def _read(stderr: bytes, stdout: bytes, chunk: int) -> dict[str, tuple[OutputTail, RankFailures]]:
    """Both streams fed in ``chunk``-sized pieces, as the pumps feed what they read."""
    streams = {}
    for name, raw in (("stderr", stderr), ("stdout", stdout)):
        tail, ranks = OutputTail(), RankFailures()
        text = raw.decode("utf-8", "replace")
        for i in range(0, len(text), chunk):
            tail.feed(text[i : i + chunk])
            ranks.feed(text[i : i + chunk])
        streams[name] = (tail, ranks)
    return streams


def _sentence(returncode: int, stderr: bytes, stdout: bytes, language: str, chunk: int) -> str:
    streams = _read(stderr, stdout, chunk)
    (err_tail, err_ranks), (out_tail, out_ranks) = streams["stderr"], streams["stdout"]
    return describe_failure(
        returncode,
        err_tail.snapshot(),
        out_tail.snapshot(),
        language=language,
        rank=err_ranks.cause() or out_ranks.cause(),
    )


def test_the_recorded_cases_are_all_there():
    assert CASES == [
        "accelerate_rank_failure",
        "chained",
        "keyboard_interrupt",
        "plain_traceback",
        "torchrun_rank_failure",
    ]


@pytest.mark.parametrize("chunk", [7, 65536])
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("case", CASES)
def test_recorded_output_gives_the_expected_sentence(case, language, chunk):
    folder = DATA / case
    spec = json.loads((folder / "case.json").read_text(encoding="utf-8"))
    stderr, stdout = (folder / "stderr").read_bytes(), (folder / "stdout").read_bytes()
    sentence = _sentence(spec["returncode"], stderr, stdout, language, chunk)
    assert sentence == spec["expected"][language]


def test_torchrun_the_launchers_wrapper_error_is_not_the_cause():
    stderr = (TORCHRUN / "stderr").read_bytes()
    assert b"ChildFailedError" in stderr  # what the old sentence quoted
    sentence = _sentence(1, stderr, b"", "en", 4096)
    assert "ChildFailedError" not in sentence and "Connection closed by peer" not in sentence


def _torchrun_blocks() -> tuple[list[bytes], list[bytes], list[bytes]]:
    lines = (TORCHRUN / "stderr").read_bytes().splitlines(keepends=True)
    rank1 = [line for line in lines if line.startswith(b"[rank1]:")]
    rank0 = [line for line in lines if line.startswith(b"[rank0]:")]
    rest = [line for line in lines if not line.startswith((b"[rank0]:", b"[rank1]:"))]
    return rank1, rank0, rest


def test_torchrun_the_root_cause_rank_wins_whichever_rank_printed_first():
    rank1, rank0, rest = _torchrun_blocks()
    stderr = b"".join(rank0 + rank1 + rest)  # the victim's traceback first this time
    assert _sentence(1, stderr, b"", "en", 4096) == (
        "Process rank 1 of the distributed training stopped first. Training failed with an "
        "error: RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x5 and 4x2)"
    )


def test_torchrun_a_rank_killed_by_a_signal_is_named_with_the_signal():
    _rank1, rank0, rest = _torchrun_blocks()
    summary = b"".join(rest).replace(b"exitcode  : 1 (pid", b"exitcode  : -9 (pid")
    sentence = _sentence(1, b"".join(rank0) + summary, b"", "en", 4096)
    assert sentence.startswith("Process rank 1 of the distributed training stopped first. ")
    assert "SIGKILL" in sentence and "Connection closed" not in sentence


def test_without_a_launcher_summary_the_first_rank_to_fail_is_the_cause():
    rank1, rank0, _rest = _torchrun_blocks()
    sentence = _sentence(1, b"".join(rank1 + rank0), b"", "en", 3)
    assert "rank 1" in sentence and "mat1 and mat2" in sentence


def test_without_ranks_the_last_words_and_the_status_are_the_existing_sentences():
    assert _sentence(4, b"cannot open /data/train.csv\n", b"", "en", 5) == (
        "The training program exited with status 4. Its last output: cannot open /data/train.csv"
    )
    assert _sentence(3, b"", b"", "en", 5) == "The training program exited with status 3."
    assert _sentence(-15, (TORCHRUN / "stderr").read_bytes(), b"", "en", 4096) == (
        "Training stopped: the process received the signal SIGTERM."
    )


def test_torchrun_rank_failure_end_to_end_names_the_ranks_exception(broker, queue, make_config):
    script = TORCHRUN.parent / "rank_failure.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = trainwire(
        "run", "--config", make_config(), "--language", "en", "--",
        *torchrun, "--nproc_per_node", "2", script,
        timeout=120, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "ChildFailedError" in result.stderr  # the launcher's own output passed through
    msgs = settle(broker, queue)
    (end,) = terminals(msgs)
    assert bodies(msgs)[-1] == end
    assert end["status"] == ERROR
    assert end["message"] == (
        "Process rank 1 of the distributed training stopped first. Training failed with an "
        "error: RuntimeError: mat1 and mat2 shapes cannot be multiplied (3x5 and 4x2)"
    )
