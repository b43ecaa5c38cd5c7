"""A failed connect worded for a training config: which key of which file to fix.

``_diagnosis`` classifies (data); this module words it for the SDK transport,
``trainwire send``/``replay``, ``check`` and ``serve --config``. ``serve --amqp-url``
words the same data for a URL in its own layer.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .._spec._config import Config
from ._diagnosis import ConnectFailure, FailureKind, Stage, diagnose, tls_verdict
from ._params import connection_parameters

__all__ = ["Diagnosis", "connect_sentence", "describe_connect_error", "missing_queue_fix"]

#: TLS alerts by which the broker rejects the client's certificate.
_CLIENT_CERT_ALERTS = (
    "ALERT_UNKNOWN_CA",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_ACCESS_DENIED",
)
#: What OpenSSL says when the other end does not speak TLS at all.
_NOT_TLS = (
    "WRONG_VERSION_NUMBER",
    "RECORD LAYER FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "UNKNOWN_PROTOCOL",
    "HTTP_REQUEST",
)


class _Where(NamedTuple):
    """The config and the node a sentence is about."""

    config: Config
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _tls_sentence(at: _Where, detail: str) -> str:
    upper, path = detail.upper(), at.config.path
    if any(alert in upper for alert in _CLIENT_CERT_ALERTS):
        if at.config.message_cert_file:
            return (
                f"the broker at {at} rejected trainwire's client certificate: check "
                f"'message_cert_file' and 'message_key_file' in {path} (the certificate "
                "must be signed by a CA the broker trusts)"
            )
        return (
            f"the broker at {at} wants a client certificate: set 'message_cert_file' and "
            f"'message_key_file' in {path}"
        )
    if any(marker in upper for marker in _NOT_TLS):
        return (
            f"{at} does not speak TLS: check 'message_port' in {path} (it must be the "
            "broker's TLS port, often 5671), or set 'message_tls' to false"
        )
    return (
        f"the TLS handshake with {at} failed ({detail[:160]}): check 'message_ca_file', "
        f"'message_cert_file' and 'message_key_file' in {path}"
    )


def _verify_sentence(at: _Where, reason: str) -> str:
    config = at.config
    if "mismatch" in reason.lower():
        return (
            f"the broker's TLS certificate is not valid for the name {at.host!r} "
            f"({reason}): set 'message_host' in {config.path} to a name the certificate lists"
        )
    if "expired" in reason.lower() or "not yet valid" in reason.lower():
        return (
            f"the broker's TLS certificate at {at} is out of date ({reason}): the broker's "
            "administrator must renew it"
        )
    cas = f"{str(config.message_ca_file)!r}" if config.message_ca_file else "the system's CAs"
    return (
        f"the broker's TLS certificate at {at} is not trusted ({reason}): check "
        f"'message_ca_file' in {config.path}; it must name the CA that signed the broker's "
        f"certificate (now: {cas})"
    )


def _tls_words(at: _Where, failure: ConnectFailure) -> str:
    if failure.stage is Stage.TLS_FILE and failure.tls_file is not None:
        keys = " and ".join(f"'{key}'" for key in failure.tls_file.keys)
        return (
            f"cannot use the TLS file {str(failure.tls_file.path)!r} ({failure.text[:160]}): "
            f"check {keys} in {at.config.path}"
        )
    if failure.stage is Stage.CERT_VERIFY:
        return _verify_sentence(at, failure.text)
    return _tls_sentence(at, failure.text)


def _handshake_words(at: _Where, failure: ConnectFailure) -> str:
    path = at.config.path
    if failure.stage is Stage.AFTER_TLS:
        return (
            f"the connection to {at} was lost right after the TLS handshake (network "
            f"trouble, or the broker restarting?); if this repeats, check that 'message_port' "
            f"in {path} is the broker's AMQPS port"
        )
    if failure.stage is Stage.LOGIN:
        return (
            f"the connection to {at} was lost during the login, without an answer from the "
            f"broker (network trouble?); if this repeats, check 'message_id', 'message_pw' and "
            f"'message_vhost' in {path}"
        )
    return (
        f"the connection to {at} was lost during the TLS handshake (network "
        f"trouble, or the broker restarting?); if this repeats, check 'message_port' "
        f"and 'message_tls' in {path}"
    )


#: Sentences that need only the names of the config and the node, by kind.
_TEMPLATES = {
    FailureKind.AUTH: "the broker at {at} refused the login of user {user!r}: check "
    "'message_id' and 'message_pw' in {path}",
    FailureKind.VHOST_DOWN: "the broker at {at} has virtual host {vhost!r} down (still "
    "recovering?); retrying",
    FailureKind.VHOST: "the broker at {at} does not let user {user!r} into virtual host "
    "{vhost!r}: check 'message_vhost' (and the user's permissions) in {path}",
    FailureKind.HOST: "the broker host {host!r} cannot be resolved: check 'message_host' in {path}",
    FailureKind.REFUSED: "nothing accepts connections at {at} (connection refused): the "
    "broker is down, or 'message_port' in {path} is wrong",
    FailureKind.TIMEOUT: "connecting to {at} timed out: check 'message_host' and "
    "'message_port' in {path} and the network",
    FailureKind.OTHER: "cannot connect to the broker at {at}: {text}",
}


def _template_words(at: _Where, failure: ConnectFailure) -> str:
    config = at.config
    return _TEMPLATES.get(failure.kind, _TEMPLATES[FailureKind.OTHER]).format(
        at=at,
        host=at.host,
        user=config.message_id,
        vhost=config.message_vhost,
        path=config.path,
        text=failure.text[:200],
    )


def _protocol_words(at: _Where, failure: ConnectFailure) -> str:
    path = at.config.path
    hint = (
        f"check 'message_port' in {path}"
        if at.config.message_tls
        else f"if that port expects TLS, set 'message_tls' to true (with 'message_ca_file') "
        f"in {path}, else check 'message_port'"
    )
    return f"the broker at {at} closed the connection during the AMQP handshake: {hint}"


_WORDS: dict[FailureKind, Callable[[_Where, ConnectFailure], str]] = {
    FailureKind.TLS: _tls_words,
    FailureKind.HANDSHAKE: _handshake_words,
    FailureKind.PROTOCOL: _protocol_words,
}


def missing_queue_fix(config: Config) -> str:
    """What to do when the config's queue does not exist (the platform declares it)."""
    return (
        f"check 'queue_name' in {config.path}; the platform creates that queue, trainwire "
        "does not declare it"
    )


def connect_sentence(
    config: Config, failure: ConnectFailure, *, host: str | None = None, port: int = 0
) -> str:
    """A failed connect in words, naming the key of ``config``'s file to fix.

    ``host``/``port`` name the node that failed (default: the config's first).
    """
    at = _Where(config, host or config.message_host or "", port or config.message_port)
    return _WORDS.get(failure.kind, _template_words)(at, failure)


class Diagnosis(NamedTuple):
    """A failed connect of a config's broker: kind, sentence, and whether to retry."""

    kind: FailureKind
    sentence: str
    retry: bool


def describe_connect_error(
    config: Config, exc: BaseException, *, host: str | None = None, port: int = 0
) -> Diagnosis:
    """Classify a failed connect (:func:`diagnose`) and word it for ``config``.

    ``retry`` is False where trying again cannot succeed without a change: wrong
    credentials (``auth``), a virtual host the user may not use (``vhost``) and TLS
    problems (``tls``). A connection lost right after the TLS handshake is asked about once
    more: this may take a new connection and up to a few seconds.
    """

    def verdict() -> BaseException | None:
        try:
            params = connection_parameters(config, host=host, port=port)
        except Exception as exc:
            return exc
        return tls_verdict(params)

    failure = diagnose(exc, tls=config.message_tls, verdict=verdict)
    sentence = connect_sentence(config, failure, host=host, port=port)
    return Diagnosis(failure.kind, sentence, failure.retry)
