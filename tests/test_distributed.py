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
from _broker import free_port
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
from trainwire._sdk._distributed import (
    error_file,
    find_failure,
    launch_id,
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
    failure = find_failure(tmp_path)
    assert (failure.rank, failure.message) == (2, "rank two's reason")
    assert root_cause(tmp_path, "Connection closed by peer", "en") == (
        "Process rank 2 of the distributed training stopped first. rank two's reason"
    )


def test_rank_failure_files_of_another_launch_or_without_a_launch_id_are_ignored(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "old-launch")
    record_failure(tmp_path, 1, "from the previous launch")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "new-launch")
    assert find_failure(tmp_path) is None
    assert root_cause(tmp_path, "own reason", "en") == "own reason"
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    path = record_failure(tmp_path, 3, "written by an older trainwire")
    record = json.loads(path.read_text())
    record["launch"] = None
    path.write_text(json.dumps(record))
    assert find_failure(tmp_path) is None


def test_launch_id_is_the_launchers_own_or_this_processs_parent(monkeypatch):
    for var in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID",
                "SLURM_STEP_ID", "SLURM_PROCID", "PMIX_NAMESPACE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    parent = launch_id()
    assert parent.startswith(f"parent:{os.uname().nodename}/{os.getppid()}/")
    monkeypatch.setenv("PMIX_NAMESPACE", "prterun-host-4711@1")
    assert launch_id() == "pmix:prterun-host-4711@1"
    monkeypatch.setenv("SLURM_JOB_ID", "812")
    monkeypatch.setenv("SLURM_STEP_ID", "3")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert launch_id() == "slurm:812.3/0"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun's static rendezvous
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    assert launch_id() == f"torchelastic:none/2@{parent}"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "5f0c1d")
    assert launch_id() == "torchelastic:5f0c1d/2"


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
        "Process rank 1 of the distributed training stopped first. Training stopped: the machine "
        "ran out of memory. Try a smaller batch or data set."
    )


# -- launches: a rank file of an earlier launch never counts -------------------------------

#: A launcher without a launch id of its own (a shell script, mp.spawn, DeepSpeed on one
#: node): it starts the given ranks one after the other as its children.
LAUNCHER = """
import json, os, subprocess, sys
statuses = []
for rank, code in json.loads(sys.argv[1]):
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "3", "LOCAL_RANK": str(rank)}
    statuses.append(subprocess.run([sys.executable, "-c", code], env=env).returncode)
print(json.dumps(statuses))
"""


def _failing(reason: str) -> str:
    return f"import trainwire\ntrainwire.init()\nraise RuntimeError({reason!r})\n"


def _launch(config, *ranks):
    """Run one launcher process with ``(rank, code)`` children; their exit statuses."""
    for var in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "PMIX_NAMESPACE"):
        assert var not in os.environ, f"{var} is set: the launches would share its id"
    result = run_python(LAUNCHER, config, args=(json.dumps(ranks),))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_rank_that_failed_in_the_previous_launch_is_never_blamed(broker, queue, make_config):
    config = make_config()
    assert _launch(config, (1, _failing("shard 3 is corrupt"))) == [1]
    # A quick restart, seconds later: rank 0 fails on its own.
    assert _launch(config, (0, _failing("CUDA error: device-side assert"))) == [1]
    (error,) = terminals(messages(broker, queue))
    assert error["message"] == (
        "학습 중 오류가 발생했습니다: RuntimeError: CUDA error: device-side assert"
    )


def test_the_failed_rank_of_this_launch_is_named_in_one_plain_sentence(broker, queue, make_config):
    config = make_config()
    assert _launch(config, (2, _failing("from the launch before"))) == [1]
    this_launch = ((1, _failing("shard 7 is corrupt")), (0, _failing("Connection closed by peer")))
    assert _launch(config, *this_launch) == [1, 1]
    (error,) = terminals(messages(broker, queue))
    assert error["message"] == (
        "분산 학습의 1번 프로세스가 먼저 중단되었습니다. "
        "학습 중 오류가 발생했습니다: RuntimeError: shard 7 is corrupt"
    )
    assert error["message"].count("오류가 발생했습니다") == 1


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


# -- an error raised in a DataLoader worker ---------------------------------------------

#: torch re-raises a worker's exception with the worker's whole traceback as its message.
DATALOADER_FAILURE = """
import trainwire
from torch.utils.data import DataLoader, Dataset

class Images(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return open({missing!r}, "rb").read()

run = trainwire.init(language="en")
for batch in DataLoader(Images(), num_workers=1):
    pass
"""

HF_DATALOADER_FAILURE = """
import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from trainwire.integrations.transformers import TrainwireCallback

class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x, labels=None):
        out = self.linear(x).squeeze(-1)
        return {{"loss": ((out - labels) ** 2).mean()}}

class Images(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return open({missing!r}, "rb").read()

callback = TrainwireCallback(language="en")
args = TrainingArguments(
    output_dir={output!r}, per_device_train_batch_size=4, num_train_epochs=1,
    report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
    dataloader_num_workers=1,
)
trainer = Trainer(model=Regressor(), args=args, train_dataset=Images(), callbacks=[callback])
with callback:
    trainer.train()
"""


def test_dataloader_worker_error_on_rank_1_reaches_rank_0_as_the_missing_file(
    broker, queue, make_config, tmp_path
):
    framework("torch")
    config = make_config()
    missing = tmp_path / "images" / "cat-0007.jpg"
    rank_1 = run_python(DATALOADER_FAILURE.format(missing=str(missing)), config, env=RANK_1)
    assert "Original Traceback (most recent call last):" in rank_1.stderr
    record = json.loads(error_file(model_dir_of(config) / "save", 1).read_text())
    assert record["message"] == f"Training stopped: a file it needs was not found: {missing}"
    rank_0 = "import trainwire\ntrainwire.init(language='en')\nraise ConnectionResetError()\n"
    assert run_python(rank_0, config, env=RANK_0).returncode == 1
    (error,) = terminals(messages(broker, queue))
    assert error["message"] == (
        "Process rank 1 of the distributed training stopped first. "
        f"Training stopped: a file it needs was not found: {missing}"
    )


def test_dataloader_worker_error_in_a_hugging_face_trainer_names_the_missing_file(
    broker, queue, make_config, tmp_path
):
    framework("torch")
    framework("transformers")
    missing = tmp_path / "images" / "cat-0007.jpg"
    code = HF_DATALOADER_FAILURE.format(missing=str(missing), output=str(tmp_path / "hf"))
    result = run_python(code, make_config())
    assert result.returncode == 1
    assert "Original Traceback (most recent call last):" in result.stderr
    (error,) = terminals(messages(broker, queue))
    assert error["message"] == f"Training stopped: a file it needs was not found: {missing}"


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
# DDP's reducer keeps the process group alive past destroy_process_group(): let both go
# while Python is whole, so that gloo's threads do not end during the interpreter's
# teardown (a CI run had a rank abort with "terminate called without an active exception").
del model, optimizer
dist.destroy_process_group()
"""


def torchrun(tmp_path, config, *, static=False, **env):
    """``torchrun --standalone`` (a fresh rendezvous id each launch), or with ``static`` a
    fixed ``--master-port`` (static rendezvous: the run id is the constant ``none``)."""
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
    rendezvous = f"--master-port={free_port()}" if static else "--standalone"
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", rendezvous, "--nproc_per_node=2",
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
        "분산 학습의 1번 프로세스가 먼저 중단되었습니다. "
        "학습 중 오류가 발생했습니다: RuntimeError: bad batch 5 on rank 1"
    )


def test_torchrun_restart_with_a_static_rendezvous_never_blames_the_previous_launch(
    broker, queue, make_config, tmp_path
):
    config = make_config()
    first = torchrun(tmp_path, config, static=True, FAIL_RANK="1")
    assert "RuntimeError: bad batch 5 on rank 1" in first.stderr
    (error,) = terminals(messages(broker, queue))
    assert "1번 프로세스" in error["message"]
    # The same command again: TORCHELASTIC_RUN_ID is "none" both times.
    second = torchrun(tmp_path, config, static=True, FAIL_RANK="0")
    assert "RuntimeError: bad batch 5 on rank 0" in second.stderr
    (error,) = terminals(messages(broker, queue))
    assert error["message"] == "학습 중 오류가 발생했습니다: RuntimeError: bad batch 5 on rank 0"
