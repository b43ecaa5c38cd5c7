"""TLS (amqps) against the session broker's TLS listener, with certificates the fixture
generates: delivery with a CA file and with a client certificate, and one clear line
naming the config key for every certificate problem (also in ``trainwire check``)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import pytest

import trainwire
from _broker import Broker
from _faults import DONE, Training, check_run, collect, key_lines, new_queue, write_config
from trainwire._preflight import run_checks


@pytest.fixture(scope="module")
def stranger():
    """A CA (and a client certificate it signed) that the broker does not know."""
    other = Broker(tls=True)
    cert, key = other.make_client_cert("stranger")
    yield other.ca_file, cert, key
    other.close()


def _tls_config(broker, tmp_path, **overrides):
    overrides.setdefault("message_ca_file", str(broker.ca_file))
    return write_config(
        tmp_path, host="localhost", port=broker.tls_port, queue=new_queue(broker),
        message_tls=True, **overrides,
    )  # fmt: skip


@pytest.mark.parametrize("client_cert", [False, True], ids=["ca file", "client certificate"])
def test_tls_run_delivers_with_the_config_ca_file(broker, tmp_path, client_cert):
    extra = {}
    if client_cert:
        cert, key = broker.make_client_cert()
        extra = {"message_cert_file": str(cert), "message_key_file": str(key)}
    config = _tls_config(broker, tmp_path, **extra)
    with trainwire.init(config=config, total_steps=20, flush_timeout=15) as run:
        for step in range(1, 21):
            run.progress(step)
    assert run.delivered is True
    queue = run.config.queue_name
    check_run(collect(broker, queue), DONE, last_step=20)


def _one_line(broker, tmp_path, config, key, words):
    run = Training(config, tmp_path, steps=30, sleep=0.005, flush=20)
    assert run.wait(timeout=15) == 0, run.describe()  # no retry, no wait for flush_timeout
    lines = key_lines(run.stderr, key)
    assert len(lines) == 1, run.stderr
    assert words in lines[0], lines[0]
    assert run.event("ended")["delivered"] is False
    failed = [r for r in run_checks(config).results if r.verdict == "fail"]
    assert failed and f"'{key}'" in (failed[0].fix or "") + failed[0].detail, failed


def test_wrong_ca_gives_one_line_naming_message_ca_file(broker, tmp_path, stranger):
    ca, _, _ = stranger
    config = _tls_config(broker, tmp_path, message_ca_file=str(ca))
    _one_line(broker, tmp_path, config, "message_ca_file", "not trusted")


def test_client_certificate_from_an_unknown_ca_names_message_cert_file(broker, tmp_path, stranger):
    _, cert, key = stranger
    config = _tls_config(broker, tmp_path, message_cert_file=str(cert), message_key_file=str(key))
    _one_line(broker, tmp_path, config, "message_cert_file", "rejected")


def test_key_that_does_not_match_the_certificate_names_message_key_file(broker, tmp_path, stranger):
    _, _, foreign_key = stranger
    cert, _ = broker.make_client_cert()
    config = _tls_config(
        broker, tmp_path, message_cert_file=str(cert), message_key_file=str(foreign_key)
    )
    _one_line(broker, tmp_path, config, "message_key_file", "cannot use the TLS file")


def test_tls_to_a_plain_port_names_message_port(broker, tmp_path):
    config = _tls_config(broker, tmp_path)
    data = json.loads(config.read_text())
    data["message_port"] = broker.port
    config.write_text(json.dumps(data))
    _one_line(broker, tmp_path, config, "message_port", "does not speak TLS")


def test_a_connection_cut_during_the_tls_handshake_is_retried(broker, tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up_after_the_client_hello():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            with contextlib.suppress(OSError):
                conn.settimeout(10)
                conn.recv(4096)
            conn.close()

    threading.Thread(target=hang_up_after_the_client_hello, daemon=True).start()
    try:
        config = write_config(
            tmp_path, port=server.getsockname()[1], queue="q", message_tls=True,
            message_ca_file=str(broker.ca_file),
        )  # fmt: skip
        run = Training(config, tmp_path, steps=150, sleep=0.01, flush=1)
        assert run.wait() == 0, run.describe()
    finally:
        server.close()
    assert len(accepted) >= 2  # a hang-up is passing trouble, not a bad certificate
    assert "switched off" not in run.stderr
    lost = [ln for ln in run.stderr.splitlines() if "lost during the TLS handshake" in ln]
    assert len(lost) == 1, run.stderr
