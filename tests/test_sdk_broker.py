"""The SDK against a real RabbitMQ: shapes, lifecycle endings, outages, bad credentials."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import trainwire
from _broker import Broker
from trainwire._spec._protocol import Status, StatusMessage, decode, validate

PROGRESS, DONE, ERROR = Status.PROGRESS.value, Status.DONE.value, Status.ERROR.value


def bodies(broker, queue, *, until_terminal=True, timeout=20.0):
    """Every message body in the queue, waiting for a terminal one first."""
    if until_terminal:
        msgs = broker.wait_for(
            queue, lambda ms: any(m["body"].get("status") in (DONE, ERROR) for m in ms), timeout
        )
    else:
        msgs = broker.drain(queue)
    return [m["body"] for m in msgs], msgs


def assert_well_formed_run(seq, terminal):
    """Progress with increasing steps, then exactly one terminal message, last."""
    for body in seq:
        validate(body)  # every message valid per spec
    statuses = [b["status"] for b in seq]
    assert statuses[-1] == terminal
    assert statuses.count(DONE) + statuses.count(ERROR) == 1
    steps = [b["step"] for b in seq if b["status"] == PROGRESS]
    assert steps == sorted(set(steps)), steps
    percentages = [b["percentage"] for b in seq if b["status"] == PROGRESS]
    assert percentages == sorted(percentages)


def run_script(code, config, *, env=None, timeout=60, wait=True):
    full_env = {**os.environ, "TRAINWIRE_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    full_env.update(env or {})
    args = [sys.executable, "-c", textwrap.dedent(code)]
    if not wait:
        return subprocess.Popen(
            args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=timeout)


def test_fifty_step_with_block_sends_increasing_progress_then_one_done(broker, queue, make_config):
    config = make_config()
    with trainwire.init(config=config, total_steps=50) as run:
        for step in range(1, 51):
            run.progress(step)
            time.sleep(0.005)
    assert run.delivered is True
    seq, msgs = bodies(broker, queue)
    assert_well_formed_run(seq, DONE)
    progress = [b for b in seq if b["status"] == PROGRESS]
    assert 1 <= len(progress) <= 50
    assert progress[-1]["step"] == 50 and progress[-1]["percentage"] == 100
    assert seq[-1] == {
        "cmd": "training_status",
        "project_key": "pk-test",
        "model_id": "model-1",
        "status": DONE,
    }
    props = [m["properties"] for m in msgs]
    assert all(p.delivery_mode == 2 and p.content_type == "application/json" for p in props)
    assert len({p.message_id for p in props}) == len(props)


def test_every_step_mode_sends_every_step(broker, queue, make_config):
    with trainwire.init(config=make_config(), total_steps=200, max_rate=None) as run:
        for step in range(1, 201):
            run.progress(step)
    seq, _ = bodies(broker, queue)
    assert [b["step"] for b in seq[:-1]] == list(range(1, 201))


def test_max_rate_coalesces_to_the_newest_step_and_keeps_the_last(broker, queue, make_config):
    with trainwire.init(config=make_config(), total_steps=100_000, max_rate=5) as run:
        for step in range(1, 100_001):
            run.progress(step)
    seq, _ = bodies(broker, queue)
    steps = [b["step"] for b in seq if b["status"] == PROGRESS]
    assert steps[-1] == 100_000
    assert len(steps) < 50  # 100k calls coalesced


def test_exception_at_step_ten_sends_a_readable_error_and_exits_nonzero(broker, queue, make_config):
    result = run_script(
        """
        import trainwire
        with trainwire.init(total_steps=100) as run:
            for step in range(1, 100):
                run.progress(step)
                if step == 10:
                    raise FileNotFoundError(2, "No such file or directory", "/data/train.csv")
        """,
        make_config(),
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "FileNotFoundError" in result.stderr
    seq, _ = bodies(broker, queue)
    assert_well_formed_run(seq, ERROR)
    message = seq[-1]["message"]
    assert "/data/train.csv" in message and "파일" in message
    assert "Traceback" not in message and "\n" not in message


def test_training_error_text_is_sent_verbatim_in_korean(broker, queue, make_config):
    text = (
        "학습용 이미지의 크기가 적절하지 않습니다. "
        "3000x2000을 기대했는데, 300x200이 제공 되었습니다"
    )
    with pytest.raises(trainwire.TrainingError), trainwire.init(config=make_config()):
        raise trainwire.TrainingError(text)
    _, msgs = bodies(broker, queue)
    assert msgs[-1]["body"]["message"] == text
    raw = msgs[-1]["raw"]  # the bytes as the broker delivered them
    assert text.encode("utf-8") in raw  # UTF-8 as itself, not \u-escaped
    assert b"\\u" not in raw


def test_an_error_too_long_for_one_frame_arrives_whole_beside_framed_progress(
    broker, queue, make_config
):
    # Korean identifiers and message at their limits: a body of about 6 KB, beyond what
    # one frame of the smallest size holds, so pika builds it; the progress before it
    # goes as frames built from templates. Both arrive as sent.
    project_key, model_id, text = "프" * 512, "모" * 512, ("긴 오류 메시지 " * 111).strip()
    config = make_config(project_key=project_key, model_id=model_id)
    with (
        pytest.raises(trainwire.TrainingError),
        trainwire.init(config=config, total_steps=3, max_rate=None) as run,
    ):
        for step in (1, 2, 3):
            run.progress(step)
        raise trainwire.TrainingError(text)
    seq, msgs = bodies(broker, queue)
    assert [b["status"] for b in seq] == [PROGRESS] * 3 + [ERROR]
    assert [b["step"] for b in seq[:3]] == [1, 2, 3]
    assert len(msgs[-1]["raw"]) > 4096
    assert seq[-1]["message"] == text
    assert all(b["project_key"] == project_key and b["model_id"] == model_id for b in seq)
    props = [m["properties"] for m in msgs]
    assert all(p.delivery_mode == 2 and p.app_id == "trainwire" for p in props)
    assert len({p.message_id for p in props}) == 4


def test_english_sentences_on_request(broker, queue, make_config):
    with pytest.raises(MemoryError), trainwire.init(config=make_config(), language="en"):
        raise MemoryError()
    seq, _ = bodies(broker, queue)
    assert seq[-1]["message"].startswith("Training stopped: the machine ran out of memory")


def test_script_that_ends_normally_without_with_sends_done(broker, queue, make_config):
    result = run_script(
        """
        import trainwire
        run = trainwire.init(total_steps=5)
        for step in range(1, 6):
            run.progress(step)
        """,
        make_config(),
    )
    assert result.returncode == 0, result.stderr
    seq, _ = bodies(broker, queue)
    assert_well_formed_run(seq, DONE)
    assert seq[-2]["step"] == 5


def test_script_calling_sys_exit_3_sends_error(broker, queue, make_config):
    result = run_script(
        """
        import sys, trainwire
        run = trainwire.init(total_steps=5)
        run.progress(1)
        sys.exit(3)
        """,
        make_config(),
    )
    assert result.returncode == 3
    seq, _ = bodies(broker, queue)
    assert_well_formed_run(seq, ERROR)
    if sys.version_info >= (3, 12):
        assert "3" in seq[-1]["message"]
    else:
        assert "sys.exit" in seq[-1]["message"]


def python312():
    """A Python >= 3.12 with trainwire's dependencies (.ci/run installs them)."""
    if sys.version_info >= (3, 12):
        return sys.executable
    found = sorted(Path("/root/.pyenv/versions").glob("3.1[2-9].*/bin/python"))
    found += [Path(p) for p in map(shutil.which, ("python3.13", "python3.12")) if p]
    assert found, "no Python >= 3.12 found: .ci/run installs one for the exit-status tests"
    return str(found[0])


@pytest.mark.parametrize(("code", "status"), [(0, DONE), (3, ERROR), ("'bye'", ERROR)])
def test_sys_exit_status_is_exact_on_python_312(broker, queue, make_config, code, status):
    src = str(Path(trainwire.__file__).parents[1])
    result = subprocess.run(
        [python312(), "-c", f"import sys, trainwire\ntrainwire.init()\nsys.exit({code})\n"],
        env={**os.environ, "TRAINWIRE_CONFIG": str(make_config()), "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    seq, _ = bodies(broker, queue)
    assert [b["status"] for b in seq] == [status], result.stderr
    if code == 3:
        assert "3" in seq[-1]["message"]


@pytest.mark.parametrize(("sig", "named"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl+C")])
def test_signal_mid_run_sends_error_naming_it_and_the_process_dies_by_it(
    broker, queue, make_config, sig, named
):
    proc = run_script(
        """
        import time, trainwire
        run = trainwire.init(total_steps=10_000)
        for step in range(1, 10_000):
            run.progress(step)
            if step == 20:
                print("ready", flush=True)
            time.sleep(0.01)
        """,
        make_config(),
        wait=False,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode == -sig  # SIGINT: Python re-raises it after KeyboardInterrupt
    seq, _ = bodies(broker, queue)
    assert_well_formed_run(seq, ERROR)
    assert named in seq[-1]["message"]


def test_existing_sigterm_handler_is_chained(broker, queue, make_config):
    result = run_script(
        """
        import os, signal, trainwire
        seen = []
        signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
        run = trainwire.init(total_steps=5)
        os.kill(os.getpid(), signal.SIGTERM)
        print("handler saw", seen)
        """,
        make_config(),
    )
    assert result.returncode == 0, result.stderr
    assert "handler saw [15]" in result.stdout
    seq, _ = bodies(broker, queue)
    assert seq[-1]["status"] == ERROR


def test_calls_after_the_end_are_ignored_with_one_warning(broker, queue, make_config, caplog):
    run = trainwire.init(config=make_config(), total_steps=10)
    run.done()
    with caplog.at_level("WARNING", logger="trainwire"):
        run.progress(3)
        run.fail("late")
        run.done()
    assert len([r for r in caplog.records if "after the run ended" in r.message]) == 1
    seq, _ = bodies(broker, queue)
    assert [b["status"] for b in seq] == [DONE]


def test_broker_down_at_init_then_started_still_delivers_without_blocking(tmp_path):
    late = Broker()
    try:
        config = tmp_path / "c.json"
        config.write_text(
            json.dumps(
                {
                    "message_host": late.host,
                    "message_port": late.port,
                    "message_id": "guest",
                    "message_pw": "guest",
                    "queue_name": "late-q",
                    "project_key": "pk",
                    "model_id": "m-late",
                    "model_write_path": str(tmp_path / "m"),
                }
            )
        )
        proc = run_script(
            """
            import json, os, time, trainwire
            run = trainwire.init(total_steps=400, flush_timeout=60)
            print(json.dumps({"initialised": True}), flush=True)
            worst = 0.0
            for step in range(1, 401):
                t = time.perf_counter()
                run.progress(step)
                worst = max(worst, time.perf_counter() - t)
                time.sleep(0.025)
            print(json.dumps({"worst_progress_s": worst}), flush=True)
            # The platform declares the queue once its broker is up: end the run only then
            # (ended before it, the terminal would rightly come back as "no such queue").
            while not os.path.exists(os.environ["TRAINWIRE_CONFIG"] + ".queue-ready"):
                time.sleep(0.02)
            run.done()
            print(json.dumps({"delivered": run.delivered}), flush=True)
            """,
            config,
            wait=False,
        )
        # init() returns with the broker down (it is started only now) and training goes on
        assert select.select([proc.stdout], [], [], 60)[0], "init() did not return in 60 s"
        assert json.loads(proc.stdout.readline()) == {"initialised": True}
        late.start()
        late.declare_queue("late-q")
        Path(str(config) + ".queue-ready").touch()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        lines = [json.loads(x) for x in out.splitlines()]
        worst = lines[0]["worst_progress_s"]
        print(f"worst progress() call while the broker was down: {worst * 1e6:.0f} us")
        assert worst < 0.05  # never blocked on the network (a generous scheduler bound)
        assert lines[1]["delivered"] is True
        seq, _ = bodies(late, "late-q")
        assert_well_formed_run(seq, DONE)
        assert seq[-2]["step"] == 400
    finally:
        late.close()


def test_wrong_password_logs_one_clear_line_and_training_completes(broker, queue, make_config):
    result = run_script(
        """
        import trainwire
        with trainwire.init(total_steps=20, flush_timeout=5) as run:
            for step in range(1, 21):
                run.progress(step)
        print("training finished")
        """,
        make_config(message_pw="not-the-password"),
    )
    assert result.returncode == 0, result.stderr
    assert "training finished" in result.stdout
    login_lines = [ln for ln in result.stderr.splitlines() if "refused the login" in ln]
    assert len(login_lines) == 1, result.stderr
    assert "message_pw" in login_lines[0] and "not-the-password" not in result.stderr
    assert broker.drain(queue) == []


def test_validation_config_sends_validation_status(broker, queue, make_config):
    config = make_config(model_id=None, validation_id="val-7")
    with trainwire.init(config=config, total_steps=3) as run:
        assert run.config.kind.value == "validation"
        run.progress(3)
    seq, _ = bodies(broker, queue)
    assert {b["cmd"] for b in seq} == {"validation_status"}
    assert all(b["validation_id"] == "val-7" and "model_id" not in b for b in seq)
    assert [b["status"] for b in seq] == [PROGRESS, DONE]


def test_kind_argument_forces_validation(broker, queue, make_config):
    config = make_config(validation_id="val-9")
    with trainwire.init(config=config, kind="validation"):
        pass
    seq, _ = bodies(broker, queue)
    assert seq == [
        {
            "cmd": "validation_status",
            "project_key": "pk-test",
            "validation_id": "val-9",
            "status": DONE,
        }
    ]


def test_forked_child_progress_sends_nothing_and_parent_ends_correctly(broker, queue, make_config):
    result = run_script(
        """
        import os, trainwire
        run = trainwire.init(total_steps=100)
        run.progress(1)
        pid = os.fork()
        if pid == 0:
            for step in range(500, 600):
                run.progress(step)
            run.fail("child must not send this")
            os._exit(0)
        os.waitpid(pid, 0)
        run.progress(2)
        run.done()
        """,
        make_config(),
    )
    assert result.returncode == 0, result.stderr
    seq, _ = bodies(broker, queue)
    assert_well_formed_run(seq, DONE)
    assert all(b.get("step", 0) < 500 for b in seq)
    assert "child must not send this" not in json.dumps(seq)


def test_non_zero_rank_sends_nothing(broker, queue, make_config):
    result = run_script(
        """
        import trainwire
        with trainwire.init(total_steps=3) as run:
            run.progress(3)
        print(run.is_reporting)
        """,
        make_config(),
        env={"RANK": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    time.sleep(0.5)
    assert broker.drain(queue) == []


def test_offline_mode_writes_the_messages_to_a_local_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("project_key: pk\nmodel_id: m\nmodel_write_path: out\n")
    with trainwire.init(config=config, total_steps=4, max_rate=None) as run:
        for step in range(1, 5):
            run.progress(step)
    assert run.mode == "offline" and run.delivered is True
    lines = (tmp_path / "out" / "save" / "trainwire-offline.jsonl").read_text().splitlines()
    seq = [json.loads(x)["body"] for x in lines]
    assert [b.get("step") for b in seq] == [1, 2, 3, 4, None]
    assert seq[-1]["status"] == DONE
    for body in seq:
        assert isinstance(validate(body), StatusMessage)


def test_disabled_mode_sends_nothing(broker, queue, make_config, monkeypatch):
    monkeypatch.setenv("TRAINWIRE_MODE", "disabled")
    with trainwire.init(config=make_config(), total_steps=2) as run:
        run.progress(1)
    assert run.mode == "disabled"
    time.sleep(0.3)
    assert broker.drain(queue) == []


def test_unknown_mode_is_a_config_error(monkeypatch, make_config):
    monkeypatch.setenv("TRAINWIRE_MODE", "sometimes")
    with pytest.raises(trainwire.ConfigError, match="TRAINWIRE_MODE"):
        trainwire.init(config=make_config())


def test_missing_queue_is_reported_and_terminal_kept_in_spool(broker, make_config, caplog):
    config = make_config(queue_name="no-such-queue-here")
    with caplog.at_level("WARNING", logger="trainwire"):  # noqa: SIM117 (3.9 syntax)
        with trainwire.init(config=config, total_steps=3, flush_timeout=2) as run:
            run.progress(1)
    assert run.delivered is False
    text = caplog.text
    assert "no queue named 'no-such-queue-here'" in text and "queue_name" in text
    spool = Path(run.config.save_dir / "trainwire-spool.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in spool]
    assert records[-1]["terminal"] is True and records[-1]["body"]["status"] == DONE
    assert decode(json.dumps(records[-1]["body"]).encode())["model_id"] == "model-1"


def test_pika_noise_stays_out_of_a_configured_log_while_the_broker_is_away(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({
        "message_host": "127.0.0.1", "message_port": 1, "message_id": "guest",
        "message_pw": "guest", "queue_name": "q", "project_key": "pk", "model_id": "m",
        "model_write_path": str(tmp_path / "m"),
    }))  # fmt: skip
    result = run_script(
        """
        import logging, time, trainwire
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("pika").info("the user's own pika line")
        run = trainwire.init(total_steps=10, flush_timeout=2)
        for step in range(1, 11):
            run.progress(step)
            time.sleep(0.2)
        run.done()
        """,
        config,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("pika")] == ["pika INFO the user's own pika line"]
    refused = [ln for ln in lines if "connection refused" in ln]
    assert len(refused) == 1 and "'message_port'" in refused[0]
