"""``trainwire send progress|done|error``: one confirmed message each, for shell scripts."""

from __future__ import annotations

import json
import os
import stat

import pytest

from _cli_helpers import DONE, ERROR, PROGRESS, trainwire
from trainwire._spec._spool import OFFLINE_FILE, SPOOL_FILE, Spool


def _send(config, *args):
    return trainwire("send", *args, "--config", config, "--json")


def test_round_trip_of_progress_done_and_error(broker, queue, make_config):
    config = make_config()
    sent = []
    for args in (
        ("progress", "--step", "120", "--total", "400"),
        ("progress", "--step", "130", "--percentage", "33.3"),
        ("done",),
        ("error", "--message", "학습 데이터가 비어 있습니다."),
    ):
        result = _send(config, *args)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True and report["sent"] is True
        sent.append(report["message_id"])
    msgs = broker.wait_for(queue, lambda ms: len(ms) >= 4, timeout=10)
    assert [m["properties"].message_id for m in msgs] == sent
    progress_1, progress_2, done, error = (m["body"] for m in msgs)
    assert (progress_1["status"], progress_1["step"], progress_1["percentage"]) == (
        PROGRESS,
        120,
        30.0,
    )
    assert (progress_2["step"], progress_2["percentage"]) == (130, 33.3)
    assert done == {"cmd": "training_status", "project_key": "pk-test", "model_id": "model-1",
                    "status": DONE}  # fmt: skip
    assert (error["status"], error["message"]) == (ERROR, "학습 데이터가 비어 있습니다.")


def test_text_output_and_config_from_the_environment(broker, queue, make_config):
    config = make_config()
    result = trainwire("send", "done", TRAINWIRE_CONFIG=str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"sent {DONE} (queue {queue!r}, confirmed by the broker)")
    assert broker.wait_for(queue)[0]["body"]["status"] == DONE


def test_missing_queue_is_not_confirmed_and_the_terminal_message_is_spooled(
    broker, queue, make_config, tmp_path
):
    config = make_config(queue_name="tw-no-such-queue")
    result = trainwire("send", "done", "--config", config)
    assert result.returncode == 1
    assert "queue_name" in result.stderr and "tw-no-such-queue" in result.stderr
    assert "trainwire replay" in result.stderr
    (record,) = Spool(tmp_path / "models" / "save" / SPOOL_FILE).read()
    assert record.terminal and record.body["status"] == DONE


def test_unconfirmed_progress_exits_1_and_is_not_spooled(broker, queue, make_config, tmp_path):
    result = _send(make_config(queue_name="tw-no-such-queue"), "progress", "--step", "1",
                   "--percentage", "1")  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["problem"] == "unroutable"
    assert not (tmp_path / "models" / "save" / SPOOL_FILE).exists()


def test_wrong_password_exits_1_naming_the_keys_without_the_password(broker, queue, make_config):
    secret = "wrong-secret-9876"
    result = trainwire("send", "error", "-m", "x", "--no-spool", "--config",
                       make_config(message_pw=secret))  # fmt: skip
    assert result.returncode == 1
    assert "message_pw" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_progress_without_percentage_or_total_is_a_usage_error(broker, queue, make_config):
    result = trainwire("send", "progress", "--step", "3", "--config", make_config())
    assert result.returncode == 2
    assert "--percentage" in result.stderr
    assert broker.drain(queue) == []


def test_error_text_with_bytes_that_are_not_utf8_is_sent_readably(broker, queue, make_config):
    text = os.fsdecode(b"cannot open img-\xff.jpg\x1b[31m")  # as the shell hands it over
    result = _send(make_config(), "error", "--message", text)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (message,) = broker.drain(queue)
    assert message["body"]["message"] == "cannot open img-\\xff.jpg[31m"
    assert json.loads(result.stdout)["body"]["message"] == message["body"]["message"]


def test_an_error_text_of_control_characters_only_is_a_usage_error(broker, queue, make_config):
    result = _send(make_config(), "error", "--message", "\x01\x02")
    assert result.returncode == 2 and "--message must not be empty" in result.stderr
    assert broker.drain(queue) == []


@pytest.mark.parametrize(
    ("args", "option", "shown"),
    [
        (("--step", str(2**63), "--percentage", "1"), "--step", "0<=x<=9223372036854775807"),
        (("--step", "1", "--total", str(10**400)), "--total", "1<=x<=9223372036854775807"),
        (("--step", "1", "--percentage", "nan"), "--percentage", "between 0 and 100"),
        (("--step", "1", "--percentage", "1e400"), "--percentage", "0<=x<=100"),
    ],
    ids=["step-2**63", "total-10**400", "percentage-nan", "percentage-1e400"],
)
def test_numbers_the_platform_cannot_store_are_refused_naming_option_and_range(
    broker, queue, make_config, args, option, shown
):
    result = _send(make_config(), "progress", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"Invalid value for '{option}'" in result.stderr and shown in result.stderr
    assert broker.drain(queue) == []


def test_the_largest_step_is_sent(broker, queue, make_config):
    result = _send(make_config(), "progress", "--step", str(2**63 - 1), "--total", str(2**63 - 1))
    assert result.returncode == 0, result.stderr
    (message,) = broker.drain(queue)
    assert (message["body"]["step"], message["body"]["percentage"]) == (2**63 - 1, 100.0)


def test_the_offline_file_is_readable_by_its_owner_only(make_config, tmp_path):
    result = _send(make_config(message_host=None), "done")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "models" / "save" / OFFLINE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the project_key
