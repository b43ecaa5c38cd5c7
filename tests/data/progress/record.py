"""Re-record the progress corpus: run each program as ``trainwire run`` would (its stdout
and stderr on pipes, ``PYTHONUNBUFFERED=1``) and keep the bytes exactly as read.

    python3 tests/data/progress/record.py [NAME ...]

For each case NAME it writes ``NAME.stdout`` and ``NAME.stderr`` (the raw bytes of each
pipe) and ``NAME.chunks.json`` (the order and size of the reads across both pipes, so a
test can replay the real interleaving). A case with ``pty`` runs its program on a
pseudo-terminal instead (stdout and stderr are one stream then: ``NAME.stdout``).
``NAME.expected.json`` is written by hand and never touched here.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"

#: name -> (program and arguments, extra environment, on a pseudo-terminal)
CASES: dict[str, tuple[list[str], dict[str, str], bool]] = {
    "hf_trainer": (["hf_trainer.py"], {}, False),
    "lightning_tqdm": (["lightning_bar.py", "tqdm"], {}, False),
    "lightning_rich": (["lightning_bar.py", "rich"], {}, False),
    "lightning_rich_color": (["lightning_bar.py", "rich"], {"FORCE_COLOR": "1"}, False),
    "lightning_rich_pty": (["lightning_bar.py", "rich"], {}, True),
    "keras": (["keras_fit.py"], {"KERAS_BACKEND": "torch"}, False),
    "keras_verbose2": (["keras_fit.py", "2"], {"KERAS_BACKEND": "torch"}, False),
    "xgboost": (["xgboost_train.py"], {}, False),
    "lightgbm": (["lightgbm_train.py"], {}, False),
    "torch_word_lm": (["torch_word_lm.py"], {}, False),
    "torch_epoch_step": (["torch_epoch_step.py"], {}, False),
    "tqdm_nested": (["tqdm_nested.py"], {}, False),
}


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TERM")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def _pipes(argv: list[str], env: dict[str, str], cwd: str) -> dict[str, object]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    data: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    chunks: list[list[object]] = []
    while streams:
        ready, _, _ = select.select(list(streams), [], [])
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                del streams[fd]
                continue
            data[streams[fd]] += chunk
            chunks.append([streams[fd], len(chunk)])
    return {"returncode": proc.wait(), "data": data, "chunks": chunks}


def _on_pty(argv: list[str], env: dict[str, str], cwd: str) -> dict[str, object]:
    env = dict(env, TERM="xterm-256color", COLUMNS="100", LINES="30")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, env=env, cwd=cwd)
    os.close(follower)
    data = {"stdout": bytearray(), "stderr": bytearray()}
    chunks: list[list[object]] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        data["stdout"] += chunk
        chunks.append(["stdout", len(chunk)])
    os.close(leader)
    return {"returncode": proc.wait(), "data": data, "chunks": chunks}


def record(name: str) -> None:
    """Run case ``name`` and write its files next to this script."""
    program, extra, on_pty = CASES[name]
    argv = [sys.executable, str(PROGRAMS / program[0]), *program[1:]]
    with tempfile.TemporaryDirectory() as cwd:
        result = (_on_pty if on_pty else _pipes)(argv, _environment(extra), cwd)
    if result["returncode"] != 0:
        raise SystemExit(f"{name}: exit status {result['returncode']}")
    data = result["data"]
    assert isinstance(data, dict)
    for stream in ("stdout", "stderr"):
        (HERE / f"{name}.{stream}").write_bytes(bytes(data[stream]))
    (HERE / f"{name}.chunks.json").write_text(json.dumps(result["chunks"]) + "\n")
    print(f"{name}: {len(data['stdout'])} + {len(data['stderr'])} bytes")


if __name__ == "__main__":
    for case in sys.argv[1:] or list(CASES):
        record(case)
