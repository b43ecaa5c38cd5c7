"""TLS (amqps) against the session broker's TLS listener, with certificates the fixture
generates: delivery with a CA file and with a client certificate, and one clear line
naming the config key for every certificate problem (also in ``trainwire check``).

Under TLS 1.3 a broker rejects the client certificate after the client's handshake is
over; pika often reports that as a bare EOF (the alert lost), just like a passing
hang-up. The tests below pin both sides: the EOF is retried, the rejection still named."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading

import pika
import pika.exceptions as pe
import pytest

import trainwire
from _broker import Broker
from _faults import (
    DONE,
    Training,
    check_run,
    collect,
    key_lines,
    new_queue,
    spool_records,
    write_config,
)
from trainwire._broker._amqp import connection_parameters, describe_connect_error
from trainwire._spec._config import load_config
from trainwire._tools._preflight import run_checks


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


class HangUpAfterTheHandshake:
    """A TLS server with the broker's certificate that completes the handshake, reads what
    the client sends first (pika: the AMQP header), then hangs up without a TLS close."""

    def __init__(self, broker: Broker) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(broker.server_cert_file, broker.server_key_file)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        #: What each connection sent before the hang-up (b"" for a silent one).
        self.first_bytes: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(1)  # a silent client (trainwire's probe) gets the EOF too
                data = b""
                with contextlib.suppress(socket.timeout):
                    data = tls.recv(8)
                self.first_bytes.append(data)
                tls.shutdown(socket.SHUT_RDWR)  # FIN without close_notify: an EOF to OpenSSL

    @property
    def amqp_attempts(self) -> int:
        return sum(data.startswith(b"AMQP") for data in self.first_bytes)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def hang_up(broker):
    server = HangUpAfterTheHandshake(broker)
    yield server
    server.close()


@pytest.fixture
def eof_after_the_handshake(broker, tmp_path, hang_up):
    """The exception pika raises when the stream ends after the TLS handshake (real, not
    built by hand): the same as for a rejected client certificate whose alert got lost."""
    config = load_config(
        write_config(tmp_path, host="localhost", port=hang_up.port, queue="q", message_tls=True,
                     message_ca_file=str(broker.ca_file))
    )  # fmt: skip
    with pytest.raises(pe.AMQPConnectionError) as caught:
        pika.BlockingConnection(connection_parameters(config))
    exc = caught.value
    assert isinstance(exc, pe.IncompatibleProtocolError), repr(exc)
    assert "SSLEOFError" in str(exc) and "ALERT" not in str(exc).upper(), repr(exc)
    return exc


def test_a_connection_lost_right_after_the_tls_handshake_is_retried(broker, tmp_path, hang_up):
    config = write_config(
        tmp_path, host="localhost", port=hang_up.port, queue="q", message_tls=True,
        message_ca_file=str(broker.ca_file),
    )  # fmt: skip
    run = Training(config, tmp_path, steps=300, sleep=0.01, flush=1)
    assert run.wait() == 0, run.describe()
    assert hang_up.amqp_attempts >= 2, hang_up.first_bytes  # an EOF is not a bad certificate
    assert "switched off" not in run.stderr
    lost = [ln for ln in run.stderr.splitlines() if "lost right after the TLS handshake" in ln]
    assert len(lost) == 1, run.stderr
    assert spool_records(config)[-1]["terminal"] is True


def test_an_eof_after_the_handshake_is_named_a_rejected_client_certificate_when_the_broker_says_so(
    broker, tmp_path, stranger, eof_after_the_handshake
):
    _, cert, key = stranger
    config = load_config(
        _tls_config(broker, tmp_path, message_cert_file=str(cert), message_key_file=str(key))
    )
    kind, sentence, retry = describe_connect_error(config, eof_after_the_handshake)
    assert (kind, retry) == ("tls", False), sentence
    assert "rejected trainwire's client certificate" in sentence
    assert "'message_cert_file'" in sentence


def test_an_eof_after_the_handshake_is_named_a_missing_client_certificate_when_the_broker_wants_one(
    broker_factory, tmp_path, eof_after_the_handshake
):
    strict = broker_factory(tls=True, extra_config=["ssl_options.fail_if_no_peer_cert = true"])
    config = load_config(_tls_config(strict, tmp_path))
    kind, sentence, retry = describe_connect_error(config, eof_after_the_handshake)
    assert (kind, retry) == ("tls", False), sentence
    assert "wants a client certificate" in sentence and "'message_cert_file'" in sentence


@pytest.mark.parametrize("client_cert", [False, True], ids=["no client cert", "trusted cert"])
def test_an_eof_after_the_handshake_is_retried_when_the_broker_accepts_the_handshake(
    broker, tmp_path, eof_after_the_handshake, client_cert
):
    extra = {}
    if client_cert:
        cert, key = broker.make_client_cert()
        extra = {"message_cert_file": str(cert), "message_key_file": str(key)}
    config = load_config(_tls_config(broker, tmp_path, **extra))
    kind, sentence, retry = describe_connect_error(config, eof_after_the_handshake)
    assert (kind, retry) == ("handshake", True), sentence
    assert "lost right after the TLS handshake" in sentence
