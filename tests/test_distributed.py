"""Distributed training: one reporter (global rank 0), and a failure on another rank named
in rank 0's one training_error. Real processes: plain launches with RANK set, and torchrun
with the gloo backend on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import trainwire
from _frameworks import (
    DONE,
    ERROR,
    assert_run,
    framework,
    messages,
    model_dir_of,
    progress,
    python312,
    run_python,
    terminals,
)
from trainwire._distributed import (
    STALE_AFTER,
    error_file,
    find_failure,
    record_failure,
    root_cause,
)

RANK_1 = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
RANK_0 = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}


# -- the files, without processes ------------------------------------------------------


def test_rank_failure_file_is_found_and_the_earliest_failure_wins(tmp_path):
    record_failure(tmp_path, 2, "rank two's reason")
    time.sleep(0.01)
    record_failure(tmp_path, 1, "rank one's later reason")
    failure = find_failure(tmp_path, since=time.time())
    assert (failure.rank, failure.message) == (2, "rank two's reason")
    assert root_cause(tmp_path, "Connection closed by peer", "en", since=time.time()) == (
        "Process rank 2 of the distributed training failed: rank two's reason"
    )


def test_rank_failure_files_of_another_launch_or_too_old_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "old-launch")
    record_failure(tmp_path, 1, "from the previous launch")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "new-launch")
    assert find_failure(tmp_path, since=time.time(), launch="new-launch/0") is None
    assert root_cause(tmp_path, "own reason", "en", since=time.time()) == "own reason"
    # Without a launch id: by time, relative to when rank 0's run started.
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    path = record_failure(tmp_path, 3, "long ago")
    record = json.loads(path.read_text())
    record["time"] -= STALE_AFTER + 5
    path.write_text(json.dumps(record))
    assert find_failure(tmp_path, since=time.time()) is None


# -- real processes with RANK set --------------------------------------------------------


def test_failing_rank_1_records_its_reason_and_sends_nothing(broker, queue, make_config):
    config = make_config()
    result = run_python(
        """
        import trainwire
        run = trainwire.init(language="en")
        assert not run.is_reporting
        run.progress(1, percentage=10.0)
        raise RuntimeError("shard 7 is corrupt")
        """,
        config,
        env=RANK_1,
    )
    assert result.returncode == 1
    assert "RuntimeError: shard 7 is corrupt" in result.stderr
    record = json.loads(error_file(model_dir_of(config) / "save", 1).read_text())
    assert record["rank"] == 1
    assert record["message"] == "Training failed with an error: RuntimeError: shard 7 is corrupt"
    assert broker.drain(queue) == []


def test_rank_0_failing_after_rank_1_names_rank_1_and_its_cause(broker, queue, make_config):
    config = make_config()
    rank_1 = "import trainwire\ntrainwire.init(language='en')\nraise MemoryError()\n"
    assert run_python(rank_1, config, env=RANK_1).returncode == 1
    rank_0 = """
        import trainwire
        run = trainwire.init(total_steps=10, max_rate=None, language="en")
        run.progress(3)
        raise ConnectionResetError("[gloo] Connection closed by peer")
        """
    assert run_python(rank_0, config, env=RANK_0).returncode == 1

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert terminals(seq)[0]["message"] == (
        "Process rank 1 of the distributed training failed: Training stopped: the machine "
        "ran out of memory. Try a smaller batch or data set."
    )


def test_rank_1_ended_by_sigterm_or_normally_records_nothing(make_config):
    config = make_config()
    killed = run_python(
        "import os, signal, trainwire\ntrainwire.init()\nos.kill(os.getpid(), signal.SIGTERM)\n",
        config,
        env=RANK_1,
    )
    assert killed.returncode == -signal.SIGTERM  # the launcher's teardown is not a cause
    assert run_python("import trainwire\ntrainwire.init()\n", config, env=RANK_1).returncode == 0
    assert not error_file(model_dir_of(config) / "save", 1).exists()


def test_rank_1_exiting_with_status_3_records_it(make_config):
    # The exit status is known to the process hooks on Python >= 3.12 (sys.monitoring).
    config = make_config()
    src = str(Path(trainwire.__file__).parents[1])
    result = subprocess.run(
        [python312(), "-c", "import sys, trainwire\ntrainwire.init(language='en')\nsys.exit(3)\n"],
        env={**os.environ, "TRAINWIRE_CONFIG": str(config), "PYTHONPATH": src, **RANK_1},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    record = json.loads(error_file(model_dir_of(config) / "save", 1).read_text())
    assert record["message"] == "The training program exited with status 3."


# -- torchrun, gloo, two processes -------------------------------------------------------

DDP_SCRIPT = """
import os
import torch
import torch.distributed as dist
from torch import nn
import trainwire

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(rank)
model = nn.parallel.DistributedDataParallel(nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
fail_rank = int(os.environ.get("FAIL_RANK", "-1"))
for step in trainwire.track(range(12), max_rate=None):
    if rank == fail_rank and step == 5:
        raise RuntimeError(f"bad batch {step} on rank {rank}")
    loss = model(torch.randn(8, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()  # an all-reduce: the ranks wait for each other
    optimizer.step()
dist.destroy_process_group()
"""


def torchrun(tmp_path, config, **env):
    framework("torch")
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    full_env = {
        **os.environ,
        "TRAINWIRE_CONFIG": str(config),
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONUNBUFFERED": "1",
    }
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):  # torchrun's to set
        full_env.pop(var, None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script)],
        env=full_env, cwd=str(tmp_path), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_torchrun_two_ranks_send_one_stream_of_progress_and_one_done(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    result = torchrun(tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]

    seq = messages(broker, queue)
    assert_run(seq, DONE)
    assert [b["step"] for b in progress(seq)] == list(range(1, 13))  # each step once
    assert not list((model_dir_of(config) / "save").glob("trainwire-rank-*"))


def test_torchrun_rank_1_raising_gives_exactly_one_error_naming_rank_1(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    result = torchrun(tmp_path, config, FAIL_RANK="1")
    assert result.returncode != 0
    assert "RuntimeError: bad batch 5 on rank 1" in result.stderr

    seq = messages(broker, queue)
    assert_run(seq, ERROR, complete=False)
    assert max(b["step"] for b in progress(seq)) <= 5
    (error,) = terminals(seq)
    assert error["message"] == (
        "분산 학습의 1번 프로세스에서 오류가 발생했습니다: "
        "학습 중 오류가 발생했습니다: RuntimeError: bad batch 5 on rank 1"
    )
