"""Why a connect to the broker failed, as data: this layer classifies, callers word it.

pika reports a failed connect as a nest of exceptions (its workflow errors wrap socket,
TLS and AMQP errors, sometimes only as text). :func:`diagnose` reads the whole chain once
and returns a :class:`ConnectFailure`: a :class:`FailureKind`, whether retrying can help,
and the few facts a sentence needs. The SDK transport and ``trainwire send``/``replay``
word it for a training config (``_sentences.describe_connect_error``: which key of which
file to fix), ``trainwire serve --amqp-url`` for a URL (``_serve/_receiver.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

__all__ = ["ConnectFailure", "FailureKind", "Stage", "TlsFileError", "diagnose", "tls_verdict"]


class FailureKind(str, Enum):
    """What kind of trouble; the value is the word logs, JSON and the checklist show."""

    AUTH = "auth"  # the broker refused the login (only its own answer proves it)
    VHOST = "vhost"  # the user may not use the virtual host
    VHOST_DOWN = "vhost-down"  # the virtual host is down (the broker still recovering it)
    TLS = "tls"  # a TLS file, certificate or handshake setting is wrong
    HANDSHAKE = "handshake"  # the connection was lost mid-handshake: passing trouble
    HOST = "host"  # the host name does not resolve
    REFUSED = "refused"  # nothing listens at the port
    PROTOCOL = "protocol"  # the other end does not speak AMQP (or wants TLS)
    TIMEOUT = "timeout"
    OTHER = "other"


class Stage(Enum):
    """Where in the connect a TLS problem or a lost connection happened."""

    NONE = "none"
    TLS_FILE = "tls-file"  # loading a TLS file named by the config
    CERT_VERIFY = "cert-verify"  # checking the broker's certificate
    DURING_TLS = "during-tls"  # the TLS handshake itself
    AFTER_TLS = "after-tls"  # after the TLS handshake, before the broker's AMQP answer
    LOGIN = "login"  # the AMQP login


class TlsFileError(ValueError):
    """A TLS file named by the config cannot be used (not PEM, key not matching, ...)."""

    def __init__(self, keys: tuple[str, ...], path: Path | None, detail: str) -> None:
        super().__init__(f"{', '.join(keys)} ({path}): {detail}")
        self.keys = keys
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class ConnectFailure:
    """A classified connect failure: enough to word a sentence, never a password."""

    kind: FailureKind
    #: False where trying again cannot succeed without a change (auth, vhost, TLS).
    retry: bool
    stage: Stage = Stage.NONE
    #: The error's own words where a sentence quotes them (a TLS alert, the certificate
    #: check's reason, the whole chain for ``OTHER``).
    text: str = ""
    #: The TLS file that could not be loaded (``Stage.TLS_FILE``).
    tls_file: TlsFileError | None = None


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (pika nests its workflow errors)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend(getattr(item, "exceptions", None) or [])
        todo.extend(getattr(item, "args", ()))
        todo.append(getattr(item, "exception", None))
        todo.append(item.__cause__)
        todo.append(item.__context__)
    return seen


def _is_tls_eof(exc: BaseException) -> bool:
    """The other end hung up without a TLS close (before 3.10 a plain SSLError may say so)."""
    import ssl

    return isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or (
        isinstance(exc, ssl.SSLError) and "UNEXPECTED_EOF" in str(exc).upper()
    )


#: How long a probe listens for the broker's verdict on the TLS handshake (see tls_verdict).
VERDICT_WAIT = 2.0


def tls_verdict(params: Any) -> BaseException | None:
    """Finish a TLS handshake with the broker and listen, sending nothing: what does it say?

    Under TLS 1.3 the client's handshake is over before the broker has checked the client
    certificate. pika writes the AMQP header at once; a broker that rejects the certificate
    sends its alert and closes, the header then meets a closed socket, and the reset loses
    the alert: pika sees a bare EOF, like a passing hang-up. A connection that sends nothing
    reads the alert. Returns the error the probe met, or None when the broker said nothing
    within ``VERDICT_WAIT`` (it accepted the handshake and waits for AMQP).
    """
    import socket

    try:
        context, name = params.ssl_options.context, params.ssl_options.server_hostname
        address, timeout = (params.host, params.port), params.socket_timeout
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(socket.create_connection(address, timeout=timeout))
            tls = stack.enter_context(context.wrap_socket(raw, server_hostname=name))
            tls.settimeout(VERDICT_WAIT)
            with contextlib.suppress(socket.timeout):  # silence: the broker waits for AMQP
                tls.recv(1)
    except Exception as exc:
        return exc
    return None


def _classify_cause(c: BaseException) -> ConnectFailure | None:
    """Classify one exception of a failed connect's chain; None when it says nothing sure."""
    import socket
    import ssl

    import pika.exceptions as pe  # type: ignore[import-untyped,unused-ignore]

    if isinstance(c, TlsFileError):
        return ConnectFailure(FailureKind.TLS, False, Stage.TLS_FILE, c.detail, c)
    # Only the broker's own answer (403, 530) proves a configuration problem: pika's
    # "Probable..." errors alone also mean a connection lost during the login.
    if isinstance(c, pe.AuthenticationError) or "ACCESS_REFUSED" in str(c):
        return ConnectFailure(FailureKind.AUTH, False)
    if "NOT_ALLOWED" in str(c) and "IS DOWN" in str(c).upper():
        return ConnectFailure(FailureKind.VHOST_DOWN, True)  # "vhost / is down": recovering
    if "NOT_ALLOWED" in str(c):
        return ConnectFailure(FailureKind.VHOST, False)
    if isinstance(c, ssl.SSLCertVerificationError):
        reason = str(getattr(c, "verify_message", "") or c)
        return ConnectFailure(FailureKind.TLS, False, Stage.CERT_VERIFY, reason)
    if _is_tls_eof(c):  # the other end hung up mid-handshake: passing trouble, not a setting
        return ConnectFailure(FailureKind.HANDSHAKE, True, Stage.DURING_TLS)
    if isinstance(c, ssl.SSLError):
        return ConnectFailure(FailureKind.TLS, False, Stage.DURING_TLS, str(c))
    if isinstance(c, socket.gaierror):
        return ConnectFailure(FailureKind.HOST, True)
    if isinstance(c, ConnectionRefusedError):
        return ConnectFailure(FailureKind.REFUSED, True)
    return None


def _lost_after_handshake(
    text: str, tls: bool, verdict: Callable[[], BaseException | None]
) -> ConnectFailure:
    """The stream ended after the TLS handshake, before the broker's AMQP answer.

    Only the broker's alert proves a rejected certificate: when pika's text does not carry
    one, ``verdict`` asks again. Without an alert this is passing trouble, retried.
    """
    import ssl

    if "ALERT_" in text.upper():
        return ConnectFailure(FailureKind.TLS, False, Stage.DURING_TLS, text)
    answer = verdict() if tls else None
    if isinstance(answer, ssl.SSLError) and not _is_tls_eof(answer):
        return diagnose(answer, tls=tls, verdict=verdict)
    return ConnectFailure(FailureKind.HANDSHAKE, True, Stage.AFTER_TLS)


def diagnose(
    exc: BaseException, *, tls: bool, verdict: Callable[[], BaseException | None]
) -> ConnectFailure:
    """Classify a failed connect (``tls``: the connection was to use TLS).

    A host that does not resolve, a refused port, a timeout or a lost handshake may be
    passing trouble, so those are retried. A connection lost right after the TLS handshake
    is asked about once more by calling ``verdict`` (:func:`tls_verdict` on the same
    parameters): this may take a new connection and up to a few seconds.
    """
    import pika.exceptions as pe  # type: ignore[import-untyped,unused-ignore]

    causes = _causes(exc)
    text = " ".join(f"{type(c).__name__}: {c}" for c in causes)
    upper = text.upper()
    for c in causes:
        classified = _classify_cause(c)
        if classified is not None:
            return classified
    # pika reports a stream lost after the TLS handshake (the AMQP header sent, no answer
    # yet) as IncompatibleProtocolError, with the TLS error only as text inside.
    incompatible = any(isinstance(c, pe.IncompatibleProtocolError) for c in causes)
    if (tls or "SSL" in upper) and incompatible:
        return _lost_after_handshake(text, tls, verdict)
    if "SSL" in upper or "CERTIFICATE" in upper:
        return ConnectFailure(FailureKind.TLS, False, Stage.DURING_TLS, text)
    if any(
        isinstance(c, (pe.ProbableAuthenticationError, pe.ProbableAccessDeniedError))
        for c in causes
    ):
        return ConnectFailure(FailureKind.HANDSHAKE, True, Stage.LOGIN)
    if incompatible:
        return ConnectFailure(FailureKind.PROTOCOL, True)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return ConnectFailure(FailureKind.TIMEOUT, True)
    return ConnectFailure(FailureKind.OTHER, True, text=text)
