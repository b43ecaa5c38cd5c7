"""Accelerate without the Trainer: the custom loop of docs/integrations.md, as written there,
under ``accelerate launch`` with two processes on CPU (gloo), against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

from _broker import free_port
from _doc_examples import example
from _frameworks import (
    DONE,
    ERROR,
    assert_run,
    framework,
    messages,
    model_dir_of,
    progress,
    terminals,
)

framework("torch")
framework("accelerate")

#: What the docs' example takes as given: the user's model, data and loss. 64 samples in
#: batches of 8 over 2 processes: 4 steps an epoch each, 3 epochs.
SETUP = """
import functools
import os
import torch
from torch import nn
from accelerate import Accelerator
import trainwire

# Every step a message (the example keeps the default max_rate), so that the test sees
# whether any step came twice, i.e. from two processes.
trainwire.init = functools.partial(trainwire.init, max_rate=None)
torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
loader = torch.utils.data.DataLoader(data, batch_size=8)
num_epochs = 3
calls = 0


def loss_fn(out, y):
    global calls
    calls += 1
    if os.environ["RANK"] == os.environ.get("FAIL_RANK") and calls == 6:
        raise RuntimeError(f"bad batch 6 on rank {os.environ['RANK']}")
    return nn.functional.mse_loss(out, y)
"""


def accelerate_launch(tmp_path, config, **env):
    """``accelerate launch --multi_gpu --num_processes 2`` of SETUP + the docs' example."""
    script = tmp_path / "train.py"
    script.write_text(SETUP + example("## Accelerate without `Trainer`"))
    full_env = {
        **os.environ,
        "TRAINWIRE_CONFIG": str(config),
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONUNBUFFERED": "1",
        "HF_HOME": str(tmp_path / "hf-home"),  # no accelerate config file of this machine
        "ACCELERATE_USE_CPU": "1",  # as docs/integrations.md says for a machine without GPUs
        **env,
    }
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):  # the launcher's
        full_env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
         "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", str(free_port()), str(script)],
        env=full_env, cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_accelerate_two_processes_send_one_stream_and_one_done(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    result = accelerate_launch(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    # One stream: each of the 12 steps once (the main process's), three epochs in a row.
    assert [b["step"] for b in progress(seq)] == list(range(1, 13))
    assert not list((model_dir_of(config) / "save").glob("trainwire-rank-*"))


def test_accelerate_process_1_raising_gives_one_error_naming_it(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    result = accelerate_launch(tmp_path, config, FAIL_RANK="1")
    assert result.returncode != 0
    assert "RuntimeError: bad batch 6 on rank 1" in result.stderr

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert max(b["step"] for b in progress(seq)) <= 6
    (error,) = terminals(seq)
    assert error["message"] == (
        "분산 학습의 1번 프로세스가 먼저 중단되었습니다. "
        "학습 중 오류가 발생했습니다: RuntimeError: bad batch 6 on rank 1"
    )
