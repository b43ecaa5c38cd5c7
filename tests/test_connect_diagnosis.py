"""A failed connect is classified as data (``_broker._diagnosis``) and worded by the caller."""

from __future__ import annotations

import socket

import pytest

from trainwire._broker._consumer import connect, url_parameters
from trainwire._broker._diagnosis import ConnectFailure, FailureKind, diagnose, tls_verdict
from trainwire._serve._receiver import BrokerSource


def failure_of(url: str) -> tuple[ConnectFailure, BrokerSource, BaseException]:
    """The diagnosis of connecting to ``url``, the serve source for it, and the error."""
    params = url_parameters(url, "trainwire test")
    with pytest.raises(Exception) as caught:
        connect(params).close()
    failure = diagnose(caught.value, tls=False, verdict=lambda: tls_verdict(params))
    return failure, BrokerSource(params, "q", "test"), caught.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_wrong_password_is_an_auth_failure_that_retrying_cannot_fix(broker):
    url = f"amqp://guest:hunter2-secret@{broker.host}:{broker.port}/%2F"
    failure, source, error = failure_of(url)
    assert (failure.kind, failure.retry) == (FailureKind.AUTH, False)
    sentence = source.explain(error).sentence  # serve words it for the URL
    assert "refused the login of user 'guest': check the user and password in --amqp-url" in (
        sentence
    )
    assert "hunter2-secret" not in sentence and "message_pw" not in sentence


def test_an_unknown_vhost_is_a_vhost_failure_worded_for_the_url(broker):
    url = f"amqp://guest:guest@{broker.host}:{broker.port}/no-such-vhost"
    failure, source, error = failure_of(url)
    assert (failure.kind, failure.retry) == (FailureKind.VHOST, False)
    kind, sentence, retry = source.explain(error)
    assert (kind, retry) == (FailureKind.VHOST, False)
    assert "virtual host 'no-such-vhost'" in sentence and "--amqp-url" in sentence
    assert "message_vhost" not in sentence  # no config key: there is no config


def test_a_closed_port_is_refused_and_retried():
    failure, source, error = failure_of(f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F")
    assert (failure.kind, failure.retry) == (FailureKind.REFUSED, True)
    assert "connection refused" in source.explain(error).sentence
