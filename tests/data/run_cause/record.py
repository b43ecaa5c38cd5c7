"""Re-record the real outputs in this folder: ``python3 tests/data/run_cause/record.py``.

Each case is a folder with the command's ``stdout`` and ``stderr`` as they came out (bytes)
and ``case.json``: the command, its exit status, and the training_error sentence expected
for it (checked by tests/test_run_cause.py; written by hand, not by this script).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
#: accelerate's multi-GPU launch (torch's elastic launcher underneath) runs gloo ranks on CPU.
ACCELERATE = [
    *(sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu"),
    *("--num_processes", "2", "--num_machines", "1"),
    *("--mixed_precision", "no", "--dynamo_backend", "no"),
]
CASES = {
    "torchrun_rank_failure": [*TORCHRUN, "rank_failure.py"],
    "accelerate_rank_failure": [*ACCELERATE, "rank_failure.py"],
    "plain_traceback": [sys.executable, "-c", "import json; json.loads('{bad')"],
    "keyboard_interrupt": [sys.executable, "-c", "raise KeyboardInterrupt"],
    "chained": [
        sys.executable,
        "-c",
        "try:\n    {}['lr']\n"
        "except KeyError:\n    raise RuntimeError('no learning rate in the config')",
    ],
}


def record(name: str, command: list[str]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo")
    done = subprocess.run(command, cwd=HERE, capture_output=True, env=env, timeout=300)
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    (folder / "stdout").write_bytes(done.stdout)
    (folder / "stderr").write_bytes(done.stderr)
    case_file = folder / "case.json"
    case = json.loads(case_file.read_text()) if case_file.exists() else {}
    case.update(command=[Path(c).name if c == sys.executable else c for c in command])
    case.update(returncode=done.returncode)
    case_file.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for case_name, case_command in CASES.items():
        if len(sys.argv) < 2 or case_name in sys.argv[1:]:
            record(case_name, case_command)
