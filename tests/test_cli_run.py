"""``trainwire run``: any command supervised, exactly one terminal message, progress read
from the output. The installed command runs as a subprocess against the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from _cli_helpers import (
    DONE,
    ERROR,
    PROGRESS,
    TRAINWIRE,
    bodies,
    env,
    settle,
    start,
    terminals,
    trainwire,
)
from trainwire._sdk._explain import final_error_line
from trainwire._tools._progress_parse import LineParser, ProgressTracker
from trainwire._tools._supervisor import describe_failure

PY = sys.executable


def _python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def _run(
    config: Path, *command: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return trainwire("run", "--config", config, *options, "--", *command)


def _only_terminal(broker, queue) -> tuple[list[dict], dict]:
    msgs = settle(broker, queue)
    ends = terminals(msgs)
    assert len(ends) == 1, bodies(msgs)
    assert bodies(msgs)[-1] == ends[0], "the terminal message is not the last one"
    return msgs, ends[0]


# -- exit status -> terminal message ---------------------------------------------------------


def test_success_sends_one_training_done_and_passes_output_through(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        import sys
        print("hello from the job")
        print("a warning", file=sys.stderr)
    """))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the job\n"
    assert "a warning\n" in result.stderr
    _, end = _only_terminal(broker, queue)
    assert end["status"] == DONE
    assert end["model_id"] == "model-1" and end["project_key"] == "pk-test"


def test_output_bytes_pass_through_unchanged(broker, queue, make_config):
    payload = b"\x00\xff raw \r\n\xed\x95\x9c\xea\xb8\x80 no newline at end"
    code = f"import sys; sys.stdout.buffer.write({payload!r}); sys.stdout.flush()"
    result = subprocess.run(
        [*TRAINWIRE, "run", "--config", str(make_config()), "--", PY, "-c", code],
        capture_output=True, env=env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_exit_status_3_sends_training_error_naming_the_status(broker, queue, make_config):
    result = _run(make_config(), *_python("import sys; sys.exit(3)"))
    assert result.returncode == 3
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR
    assert "3" in end["message"]
    assert "Traceback" not in end["message"]


def test_uncaught_exception_becomes_a_sentence_naming_it(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        def load():
            raise ValueError("bad shape")
        load()
    """))  # fmt: skip
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr  # passed through for people
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR
    assert end["message"] == "학습 중 오류가 발생했습니다: ValueError: bad shape"


def test_dataloader_worker_error_names_the_missing_file_not_the_traceback(
    broker, queue, make_config, tmp_path
):
    missing = tmp_path / "images" / "cat-0007.jpg"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        from torch.utils.data import DataLoader, Dataset

        class Images(Dataset):
            def __len__(self):
                return 8

            def __getitem__(self, index):
                return open({str(missing)!r}, "rb").read()

        for batch in DataLoader(Images(), num_workers=1):
            pass
    """))  # fmt: skip
    result = _run(make_config(), PY, str(script), options=("--language", "en"))
    assert result.returncode == 1
    assert "Original Traceback (most recent call last):" in result.stderr  # torch's format
    _, end = _only_terminal(broker, queue)
    assert end["message"] == f"Training stopped: a file it needs was not found: {missing}"


def test_english_sentence_and_last_output_line_for_a_shell_failure(broker, queue, make_config):
    script = "echo 'cannot open /data/train.csv' >&2; exit 4"
    result = _run(make_config(), "sh", "-c", script, options=("--language", "en"))
    assert result.returncode == 4
    _, end = _only_terminal(broker, queue)
    assert end["message"] == (
        "The training program exited with status 4. Its last output: cannot open /data/train.csv"
    )


def test_child_killed_by_sigkill_reports_the_signal(broker, queue, make_config):
    proc = start("run", "--config", make_config(), "--", *_python("""
        import os, time
        print(os.getpid(), flush=True)
        time.sleep(60)
    """))  # fmt: skip
    child_pid = int(proc.stdout.readline())
    os.kill(child_pid, signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGKILL, err
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR
    assert "SIGKILL" in end["message"]


def test_sigterm_to_the_supervisor_is_forwarded_and_reported(broker, queue, make_config, tmp_path):
    marker = tmp_path / "child-got-sigterm"
    proc = start("run", "--config", make_config(), "--", *_python(f"""
        import signal, sys, time
        def stop(signum, frame):
            open({str(marker)!r}, "w").close()
            sys.exit(143)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
    """))  # fmt: skip
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert marker.exists(), "the child never saw the SIGTERM"
    assert proc.returncode == -signal.SIGTERM, err  # it ends by the signal it was stopped by
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR
    assert "SIGTERM" in end["message"]


def test_command_not_found_exits_127_with_one_error(broker, queue, make_config):
    result = _run(make_config(), "/nonexistent/train-job")
    assert result.returncode == 127
    assert "/nonexistent/train-job" in result.stderr
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR and "/nonexistent/train-job" in end["message"]


def test_a_background_process_holding_the_output_does_not_keep_run_alive(
    broker, queue, make_config
):
    result = trainwire("run", "--config", make_config(), "--", "sh", "-c",
                       "sleep 600 & echo $!", timeout=60)  # fmt: skip
    os.kill(int(result.stdout.split()[0]), signal.SIGKILL)
    assert result.returncode == 0
    _, end = _only_terminal(broker, queue)
    assert end["status"] == DONE


def test_bad_config_exits_2_without_starting_the_command(broker, queue, make_config, tmp_path):
    marker = tmp_path / "started"
    config = make_config(project_key=None)
    result = _run(config, *_python(f"open({str(marker)!r}, 'w').close()"))
    assert result.returncode == 2
    assert "project_key" in result.stderr and str(config) in result.stderr
    assert not marker.exists()
    assert broker.drain(queue) == []


# -- progress from the output ----------------------------------------------------------------


def test_tqdm_bar_becomes_increasing_progress_ending_at_100(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        import time
        from tqdm import tqdm
        for _ in tqdm(range(200)):
            time.sleep(0.004)
    """))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "200/200" in result.stderr
    msgs, end = _only_terminal(broker, queue)
    progress = [b for b in bodies(msgs) if b["status"] == PROGRESS]
    assert len(progress) >= 2
    steps = [b["step"] for b in progress]
    percentages = [b["percentage"] for b in progress]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert percentages == sorted(percentages)
    assert (steps[-1], percentages[-1]) == (200, 100.0)
    assert end["status"] == DONE


def test_plain_progress_lines_from_a_shell_script(broker, queue, make_config):
    script = "echo 'trainwire step=1 total=4'; echo 'trainwire step=3 percentage=80'"
    result = _run(make_config(), "sh", "-c", script, options=("--max-rate", "0"))
    assert result.returncode == 0
    assert result.stdout == "trainwire step=1 total=4\ntrainwire step=3 percentage=80\n"
    msgs, end = _only_terminal(broker, queue)
    progress = [(b["step"], b["percentage"]) for b in bodies(msgs) if b["status"] == PROGRESS]
    assert progress == [(1, 25.0), (3, 80.0)]
    assert end["status"] == DONE


# -- a child that uses the SDK itself --------------------------------------------------------


def test_child_using_the_sdk_gets_exactly_one_terminal_message(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        import trainwire
        from tqdm import tqdm
        run = trainwire.init(total_steps=50, max_rate=None)
        for step in tqdm(range(1, 51)):
            run.progress(step)
        run.done()
    """))  # fmt: skip
    assert result.returncode == 0, result.stderr
    msgs, end = _only_terminal(broker, queue)
    assert end["status"] == DONE
    progress = [b for b in bodies(msgs) if b["status"] == PROGRESS]
    # Every step once, from the child's run; the supervisor sent no progress of its own.
    assert [b["step"] for b in progress] == list(range(1, 51))


def test_sdk_child_failing_reports_its_own_error_only(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        import trainwire
        trainwire.init(total_steps=10)
        raise KeyError("labels")
    """))  # fmt: skip
    assert result.returncode == 1
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR and "KeyError" in end["message"]


def test_sdk_child_killed_before_its_end_is_reported_by_the_supervisor(broker, queue, make_config):
    result = _run(make_config(), *_python("""
        import os, signal, trainwire
        trainwire.init(total_steps=10)
        os.kill(os.getpid(), signal.SIGKILL)
    """))  # fmt: skip
    assert result.returncode == 137
    _, end = _only_terminal(broker, queue)
    assert end["status"] == ERROR and "SIGKILL" in end["message"]


def test_child_sees_the_config_and_the_state_file(broker, queue, make_config):
    config = make_config()
    result = _run(config, *_python("""
        import json, os
        print(json.dumps({k: os.environ.get(k) for k in
                          ("TRAINWIRE_CONFIG", "TRAINWIRE_STATE_FILE")}))
    """))  # fmt: skip
    seen = json.loads(result.stdout)
    assert seen["TRAINWIRE_CONFIG"] == str(config.resolve())
    assert seen["TRAINWIRE_STATE_FILE"]
    assert not Path(seen["TRAINWIRE_STATE_FILE"]).exists()  # cleaned up afterwards
    _only_terminal(broker, queue)


# -- the parsers and the sentence, on captured output (no subprocess) -------------------------

KERAS_OUT = (
    "Epoch 1/2\n"
    "\r\x1b[1m1/8\x1b[0m \x1b[32m━━\x1b[0m\x1b[37m━━━━━━━━━━━━━━━━━━\x1b[0m \x1b[1m0s\x1b[0m"
    " 53ms/step - loss: 0.4538\b\b\b\b"
    "\r\x1b[1m8/8\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m"
    " 13ms/step - loss: 0.5571\n"
    "Epoch 2/2\n"
    "\r\x1b[1m4/8\x1b[0m \x1b[32m━━━━━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━\x1b[0m 1s - loss: 0.5\b\b"
    "\r\x1b[1m8/8\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m 0s - loss: 0.4\n"
)
LIGHTNING_OUT = (
    "\rSanity Checking DataLoader 0: 100%|██████████| 2/2 [00:00<00:00, 69.39it/s]"
    "\rEpoch 0:  30%|███       | 3/10 [00:00<00:00, 241.32it/s]"
    "\rEpoch 0: 100%|██████████| 10/10 [00:00<00:00, 228.10it/s, train_loss=0.089]"
    "\n\rValidation DataLoader 0:  90%|█████████ | 9/10 [00:00<00:00, 438.79it/s]\x1b[A"
    "\rEpoch 0:   0%|          | 0/10 [00:00<?, ?it/s, train_loss=0.333]"
    "\rEpoch 1:  60%|██████    | 6/10 [00:00<00:00, 188.11it/s, train_loss=0.0287]"
    "\rEpoch 1: 100%|██████████| 10/10 [00:00<00:00, 207.19it/s, train_loss=0.0902]\n"
)


def _track(text: str, total_steps: int | None = None, chunk: int = 7) -> list[tuple[int, float]]:
    parser, tracker, seen = LineParser(), ProgressTracker(total_steps), []
    for i in range(0, len(text), chunk):
        for reading in parser.feed(text[i : i + chunk]):
            found = tracker.update(reading)
            if found:
                seen.append(found)
    return seen


def test_keras_lines_count_steps_across_epochs():
    assert _track(KERAS_OUT) == [(1, 6.25), (8, 50.0), (12, 75.0), (16, 100.0)]


def test_lightning_bars_skip_validation_and_count_on_per_epoch():
    assert _track(LIGHTNING_OUT, total_steps=20) == [(3, 15.0), (10, 50.0), (16, 80.0), (20, 100.0)]


def test_a_restarted_bar_continues_the_step_count():
    text = "".join(f"\r{p:3d}%|#| {n}/4 [00:00<00:00]" for p, n in [(0, 0), (50, 2), (100, 4)])
    assert _track(text + "\n" + text + "\n", total_steps=8) == [
        (0, 0.0), (2, 25.0), (4, 50.0), (6, 75.0), (8, 100.0)
    ]  # fmt: skip


def test_failure_sentence_uses_the_last_traceback_not_earlier_ones():
    stderr = [
        "Traceback (most recent call last):",
        '  File "a.py", line 1, in <module>',
        "KeyError: 'first'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "a.py", line 3, in <module>',
        "    raise RuntimeError('disk quota')",
        "RuntimeError: disk quota",
        " 45%|████▌     | 90/200 [00:01<00:02, 45.00it/s]",
    ]
    assert final_error_line(stderr) == "RuntimeError: disk quota"
    assert (
        describe_failure(1, stderr, []) == "학습 중 오류가 발생했습니다: RuntimeError: disk quota"
    )
    assert describe_failure(1, ["ModuleNotFoundError: No module named 'timm'"], []) == (
        "필요한 패키지 'timm'가 설치되어 있지 않아 학습을 시작할 수 없습니다."
    )
    assert (
        describe_failure(-15, stderr, []) == "종료 신호 SIGTERM을(를) 받아 학습이 중단되었습니다."
    )
