"""Real tiny trainings of each framework, unmodified, under ``trainwire run`` against the
real broker: the queue gets steps that only go up, 100 % at the end, the framework's own
final step count as the last step, and exactly one terminal message.

The programs are those of the progress corpus (tests/data/progress/programs); each prints
its framework's own count of steps last (``global_step 30``), which the last step sent must
equal. Where nothing printed tells the total (boosting rounds, Lightning's tqdm bar, a
plain loop's ``| epoch 1 | 20/60 batches |``), ``--total-steps`` gives it, as a user would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from _cli_helpers import DONE, TRAINWIRE, bodies, env, settle
from _frameworks import assert_run, framework, progress
from trainwire._tools._hint import HINT

PROGRAMS = Path(__file__).parent / "data" / "progress" / "programs"

#: name -> (the framework to import, program and arguments, trainwire run options)
CASES: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "hf_trainer": ("transformers", ["hf_trainer.py"], ()),
    "lightning_tqdm": ("lightning", ["lightning_bar.py", "tqdm"], ("--total-steps", "24")),
    "lightning_rich": ("lightning", ["lightning_bar.py", "rich"], ()),
    "lightning_rich_tty": ("lightning", ["lightning_bar.py", "rich"], ("--tty",)),
    "keras": ("keras", ["keras_fit.py"], ()),
    "xgboost": ("xgboost", ["xgboost_train.py"], ("--total-steps", "20")),
    "lightgbm": ("lightgbm", ["lightgbm_train.py"], ("--total-steps", "20")),
    "torch_word_lm": ("torch", ["torch_word_lm.py"], ("--total-steps", "180")),
    "torch_epoch_step": ("torch", ["torch_epoch_step.py"], ()),
}
#: The program's last line: its framework's own count of steps done.
_REAL_STEPS = re.compile(rb"^(?:global_step|iterations|rounds|steps) (\d+)\s*$", re.M)
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # rich hides and shows the cursor


@pytest.mark.parametrize("name", list(CASES))
def test_framework_trains_under_trainwire_run(
    broker, queue, make_config, tmp_path, monkeypatch, name
):
    module, program, options = CASES[name]
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # before keras is imported
    framework(module)
    result = subprocess.run(
        [*TRAINWIRE, "run", "--config", str(make_config()), "--max-rate", "0", *options,
         "--", sys.executable, str(PROGRAMS / program[0]), *program[1:]],
        capture_output=True, cwd=tmp_path, timeout=240, stdin=subprocess.DEVNULL,
        env=env(OMP_NUM_THREADS="1", KERAS_BACKEND="torch", TOKENIZERS_PARALLELISM="false"),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    real = [int(n) for n in _REAL_STEPS.findall(_ESCAPES.sub(b"", result.stdout))]
    assert len(real) == 1 and real[0] > 0, result.stdout[-2000:]
    assert HINT.encode() not in result.stderr
    seq = bodies(settle(broker, queue))
    assert_run(seq, DONE)  # valid, steps up, percentages never down, 100 %, one terminal
    assert progress(seq)[-1]["step"] == real[0], [b["step"] for b in progress(seq)]
