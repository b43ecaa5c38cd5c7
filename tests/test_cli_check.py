"""``trainwire check``: the preflight checklist against the real broker."""

from __future__ import annotations

import json

from _broker import free_port
from _cli_helpers import PROGRESS, trainwire


def _check(config, *args):
    result = trainwire("check", "--config", config, "--json", *args)
    report = json.loads(result.stdout)
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    return result, report, verdicts


def _failed(report, name):
    (check,) = [c for c in report["checks"] if c["name"] == name]
    assert check["verdict"] == "fail"
    return check


def test_good_config_passes_every_check_and_sends_nothing(broker, queue, make_config):
    result, report, verdicts = _check(make_config())
    assert result.returncode == 0, result.stdout
    assert report["ok"] is True
    names = ("config", "host", "port", "login", "vhost", "queue", "folder")
    assert verdicts == dict.fromkeys(names, "pass")
    assert broker.drain(queue) == []


def test_text_checklist_says_ready(broker, queue, make_config):
    result = trainwire("check", "--config", make_config())
    assert result.returncode == 0
    assert "READY: every check passed." in result.stdout
    assert result.stdout.count("[pass]") == 7


def test_wrong_password_fails_login_names_the_keys_and_hides_the_password(
    broker, queue, make_config
):
    secret = "not-the-password-1234"
    result, report, verdicts = _check(make_config(message_pw=secret))
    assert result.returncode == 1
    assert verdicts["port"] == "pass" and verdicts["queue"] == "skip"
    assert "message_pw" in _failed(report, "login")["fix"]
    text = trainwire("check", "--config", make_config(message_pw=secret))
    assert text.returncode == 1
    assert "NOT READY" in text.stdout and "fix:" in text.stdout
    assert secret not in result.stdout + result.stderr + text.stdout + text.stderr


def test_missing_queue_fails_the_queue_check(broker, queue, make_config):
    result, report, verdicts = _check(make_config(queue_name="tw-no-such-queue"))
    assert result.returncode == 1
    assert verdicts["login"] == "pass"
    check = _failed(report, "queue")
    assert "tw-no-such-queue" in check["detail"] and "queue_name" in check["fix"]
    assert "tw-no-such-queue" not in broker.list_queues()  # passive: nothing was created


def test_closed_port_fails_the_port_check(broker, queue, make_config):
    port = free_port()
    result, report, verdicts = _check(make_config(message_port=port))
    assert result.returncode == 1
    assert verdicts["host"] == "pass"
    assert "message_port" in _failed(report, "port")["fix"]
    assert verdicts["login"] == "skip"


def test_unknown_host_fails_the_host_check(broker, queue, make_config):
    result, report, _verdicts = _check(make_config(message_host="no-such-host.invalid"))
    assert result.returncode == 1
    assert "message_host" in _failed(report, "host")["fix"]


def test_model_write_path_under_a_regular_file_is_not_writable(
    broker, queue, make_config, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result, report, verdicts = _check(make_config(model_write_path=str(blocker / "models")))
    assert result.returncode == 1
    assert verdicts["queue"] == "pass"
    assert "model_write_path" in _failed(report, "folder")["fix"]


def test_model_write_path_on_a_filesystem_refusing_writes_is_not_writable(
    broker, queue, make_config
):
    result, report, _verdicts = _check(make_config(model_write_path="/proc/trainwire-models"))
    assert result.returncode == 1
    assert "cannot write in /proc" in _failed(report, "folder")["detail"]


def test_invalid_config_exits_2(broker, queue, make_config):
    result, report, _verdicts = _check(make_config(model_id=None))
    assert result.returncode == 2
    assert "model_id" in _failed(report, "config")["detail"]


def test_send_test_publishes_one_confirmed_progress_message(broker, queue, make_config):
    result, _report, verdicts = _check(make_config(), "--send-test")
    assert result.returncode == 0
    assert verdicts["send"] == "pass"
    (msg,) = broker.wait_for(queue, timeout=10)
    assert msg["body"]["status"] == PROGRESS and msg["body"]["step"] == 0


def test_tls_listener_with_the_ca_file_passes(broker, queue, make_config):
    config = make_config(message_port=broker.tls_port, message_tls=True,
                         message_ca_file=str(broker.ca_file))  # fmt: skip
    result, report, verdicts = _check(config)
    assert result.returncode == 0, result.stdout
    assert report["broker"].startswith("amqps://")
    assert verdicts["login"] == verdicts["queue"] == "pass"


def test_tls_listener_without_the_ca_file_fails_login_naming_the_tls_keys(
    broker, queue, make_config
):
    config = make_config(message_port=broker.tls_port, message_tls=True)
    result, report, _verdicts = _check(config)
    assert result.returncode == 1
    assert "message_ca_file" in _failed(report, "login")["fix"]
