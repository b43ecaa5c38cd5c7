"""Bad configuration at the broker: each problem gives exactly one clear log line naming
the config key to fix, and reporting keeps trying only where trying can succeed."""

from __future__ import annotations

import os
import socket
import uuid

import pika.exceptions as pe
import pytest

from _broker import free_port
from _cli_helpers import trainwire
from _faults import (
    DONE,
    LoginCutter,
    Training,
    check_run,
    key_lines,
    new_queue,
    spool_records,
    write_config,
)
from trainwire._broker._amqp import describe_connect_error
from trainwire._spec._config import load_config
from trainwire._tools._preflight import run_checks


def test_missing_queue_logs_one_line_naming_queue_name_and_keeps_the_end_for_replay(
    broker, tmp_path
):
    name = f"tw-late-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, port=broker.port, queue=name)
    run = Training(config, tmp_path, steps=30, sleep=0.01, flush=30)
    line = run.wait_stderr("no queue named")
    assert "'queue_name'" in line and str(config) in line
    assert run.wait(timeout=20) == 0, run.describe()  # a returned end is not waited for
    assert run.event("ended")["delivered"] is False
    assert spool_records(config)[-1]["terminal"] is True
    assert len(key_lines(run.stderr, "queue_name")) == 1, run.stderr
    broker.declare_queue(name)  # the platform creates the queue later
    try:
        replayed = trainwire("replay", "--config", config)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        check_run(broker.drain(name), DONE, last_step=30, context=run.describe())
    finally:
        broker.delete_queue(name)


@pytest.mark.parametrize(
    ("case", "overrides", "key"),
    [
        ("credentials", {"message_pw": "wrong-pw-4711"}, "message_pw"),
        ("vhost", {"message_vhost": "no-such-vhost"}, "message_vhost"),
    ],
)
def test_refused_login_or_vhost_logs_one_line_naming_the_key_and_does_not_retry(
    broker, proxy, tmp_path, case, overrides, key
):
    queue = new_queue(broker)
    door = proxy()
    config = write_config(tmp_path, port=door.port, queue=queue, **overrides)
    run = Training(config, tmp_path, steps=150, sleep=0.01, flush=30)
    assert run.wait(timeout=25) == 0, run.describe()  # done() did not wait for flush_timeout
    lines = key_lines(run.stderr, key)
    assert len(lines) == 1, run.stderr
    assert "switched off" in lines[0]
    assert "wrong-pw-4711" not in run.stderr
    assert door.accepted == 1  # one attempt: retrying cannot help
    assert run.event("ended")["delivered"] is False
    assert spool_records(config)[-1]["terminal"] is True
    assert broker.drain(queue) == []
    # `trainwire check` gives the same diagnosis
    failed = [r for r in run_checks(config).results if r.verdict == "fail"]
    assert failed and f"'{key}'" in (failed[0].fix or ""), failed


def test_closed_port_logs_one_line_naming_message_port_and_keeps_trying(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port=port, queue="q")
    run = Training(config, tmp_path, steps=100, sleep=0.01, flush=1, holds=[10])
    run.hold_then(10)
    line = run.wait_stderr("connection refused")
    assert "'message_port'" in line and "retrying" in line
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(30)
        conn, _ = listener.accept()  # the SDK came back to try again
        conn.close()
    run.release(10)
    assert run.wait() == 0, run.describe()
    refused = [ln for ln in key_lines(run.stderr, "message_port") if "refused" in ln]
    assert len(refused) == 1, run.stderr
    assert spool_records(config)[-1]["terminal"] is True


def test_unknown_host_logs_one_line_naming_message_host(tmp_path):
    config = write_config(tmp_path, port=5672, queue="q", host="no-such-host.invalid")
    run = Training(config, tmp_path, steps=100, sleep=0.01, flush=1)
    assert run.wait() == 0, run.describe()
    lines = key_lines(run.stderr, "message_host")
    assert len(lines) == 1, run.stderr
    assert "cannot be resolved" in lines[0]
    assert spool_records(config)[-1]["terminal"] is True


def test_connection_lost_during_login_is_retried_not_taken_for_wrong_credentials(tmp_path):
    with LoginCutter() as cutter:
        config = write_config(tmp_path, port=cutter.port, queue="q")
        run = Training(config, tmp_path, steps=150, sleep=0.01, flush=1)
        assert run.wait() == 0, run.describe()
        assert cutter.connections >= 2  # tried again: a cut is not a refusal
    assert "refused the login" not in run.stderr
    lost = [ln for ln in run.stderr.splitlines() if "lost during the login" in ln]
    assert len(lost) == 1, run.stderr
    assert spool_records(config)[-1]["terminal"] is True


@pytest.mark.parametrize(
    ("reply", "kind", "retry"),
    [
        ("(530) 'NOT_ALLOWED - vhost nope not found'", "vhost", False),
        ("(530) 'NOT_ALLOWED - vhost / is down'", "vhost-down", True),  # still recovering
        (
            "(403) 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN'",
            "auth",
            False,
        ),
        ("StreamLostError: Stream connection lost: ConnectionResetError(104)", "handshake", True),
    ],
)
def test_only_the_brokers_own_refusal_stops_the_retries(tmp_path, reply, kind, retry):
    config = load_config(write_config(tmp_path, port=5672, queue="q"))
    error = (pe.ProbableAccessDeniedError if "530" in reply else pe.ProbableAuthenticationError)(
        reply
    )
    assert describe_connect_error(config, error)[0::2] == (kind, retry)


def test_user_without_write_permission_logs_one_line_and_does_not_storm(broker, proxy, tmp_path):
    user = f"tw-readonly-{uuid.uuid4().hex[:6]}"
    broker.add_user(user, "pw-ro-123", vhost=None)
    broker.ctl("set_permissions", "-p", "/", user, ".*", "", ".*")  # may not write
    queue = new_queue(broker)
    door = proxy()
    config = write_config(tmp_path, port=door.port, queue=queue, message_id=user,
                          message_pw="pw-ro-123")  # fmt: skip
    try:
        run = Training(config, tmp_path, steps=150, sleep=0.01, flush=30)
        assert run.wait(timeout=25) == 0, run.describe()
    finally:
        broker.delete_user(user)
    lines = key_lines(run.stderr, "message_id")
    assert len(lines) == 1 and "publish" in lines[0], run.stderr
    assert door.accepted == 1  # no reconnect storm: the broker's refusal is final
    assert run.event("ended")["delivered"] is False
    assert spool_records(config)[-1]["terminal"] is True


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("command", [("check",), ("send", "done")])
def test_a_config_that_is_no_regular_file_exits_2_at_once_naming_it(tmp_path, kind, command):
    path = tmp_path / "train_config.json"
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: reading it would block forever
    else:
        path.symlink_to("/dev/zero")  # reading it would fill the memory
    result = trainwire(*command, "--config", path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(path) in result.stdout + result.stderr
    assert "not a regular file" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
