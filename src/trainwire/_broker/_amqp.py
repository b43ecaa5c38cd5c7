"""The AMQP transport: one daemon I/O thread owning a pika ``SelectConnection``.

Why this shape: pika objects are not thread-safe, and a
``BlockingConnection`` services heartbeats only inside pika calls, so a long training step
would kill it. Here the I/O thread runs pika's event loop on its own: heartbeats keep
flowing while the training thread computes, publishes are pipelined with publisher
confirms (many in flight), and the training thread never waits for the network.

What it guarantees, whatever the broker or the network does:

- **Order.** Messages go out in one sequence: this run's progress, then its terminal
  message, published alone once everything before it is confirmed. A message that must
  be sent again (connection lost before its confirm, nack) keeps its place in that
  sequence; a nacked progress message is sent again only while nothing newer exists, so
  steps never go backwards.
- **A re-run supersedes what an earlier run kept.** Records of the same job left in the
  spool by an earlier run are not sent before this run: the platform ignores everything
  after a ``training_error``, so an old terminal message would discard the whole new run.
  They are moved to ``trainwire-spool.superseded.jsonl`` beside the spool, with one log
  line; records of other jobs stay for ``trainwire replay``.
- **Nothing lost.** When the run ends, its terminal message (and the newest progress not
  yet confirmed) is written to the spool *before* waiting for the broker, and removed once
  confirmed. A process that dies during the flush (a second SIGTERM, ``kill -9`` after a
  grace period) leaves it there for ``trainwire replay``.
- **Never blocked.** The training thread only appends to the outbox; reconnecting (with
  backoff and jitter, at least every second once the terminal message waits), a memory
  alarm (``connection.blocked``) and nacks are handled in the I/O thread.
- **Bounded exit.** ``finish`` waits at most its timeout; the I/O thread is a daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from typing import Any, NamedTuple

from .._spec._config import Config
from .._spec._protocol import CONTENT_TYPE, encode
from .._spec._spool import SPOOL_FILE, Spool, make_record
from ._diagnosis import (
    ConnectFailure,
    FailureKind,
    Stage,
    TlsFileError,
    diagnose,
    tls_verdict,
)
from ._transport import Envelope, Outbox, Transport

__all__ = [
    "AmqpTransport",
    "Diagnosis",
    "connect_sentence",
    "connection_parameters",
    "describe_connect_error",
    "message_properties",
]

log = logging.getLogger("trainwire")

#: How often the I/O thread looks at the outbox when nothing woke it.
POLL_INTERVAL = 0.02
#: Unconfirmed messages allowed on the wire at once.
MAX_IN_FLIGHT = 1000
HEARTBEAT = 20
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
#: Once the terminal message waits, reconnect at least this often.
BACKOFF_ENDING = 1.0
#: Pause before sending again what the broker nacked.
NACK_PAUSE = 0.5
#: Where records of this job that an earlier run kept are moved when a new run starts.
SUPERSEDED_FILE = "trainwire-spool.superseded.jsonl"


def message_properties(message_id: str) -> Any:
    """The AMQP properties of every message trainwire publishes: persistent JSON."""
    import pika

    return pika.BasicProperties(
        content_type=CONTENT_TYPE,
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=message_id,
        timestamp=int(time.time()),
        app_id="trainwire",
    )


def connection_parameters(config: Config, *, heartbeat: int = HEARTBEAT) -> Any:
    """pika connection parameters for a config (TLS when ``message_tls`` is true).

    Raises :class:`TlsFileError` when a TLS file of the config cannot be loaded.
    """
    import ssl

    import pika

    ssl_options = None
    if config.message_tls:
        try:
            context = ssl.create_default_context(
                cafile=str(config.message_ca_file) if config.message_ca_file else None
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsFileError(("message_ca_file",), config.message_ca_file, str(exc)) from exc
        if config.message_cert_file:
            try:
                context.load_cert_chain(
                    str(config.message_cert_file),
                    str(config.message_key_file) if config.message_key_file else None,
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                keys = ("message_cert_file", "message_key_file")
                if "KEY_VALUES_MISMATCH" in str(exc).upper():
                    keys = ("message_key_file", "message_cert_file")
                raise TlsFileError(keys, config.message_cert_file, str(exc)) from exc
        ssl_options = pika.SSLOptions(context, server_hostname=config.message_host)
    return pika.ConnectionParameters(
        host=config.message_host,
        port=config.message_port,
        virtual_host=config.message_vhost,
        credentials=pika.PlainCredentials(config.message_id, config.message_pw),
        heartbeat=heartbeat,
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=10,
        blocked_connection_timeout=None,
        ssl_options=ssl_options,
        client_properties={"connection_name": "trainwire", "product": "trainwire"},
    )


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
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD LAYER FAILURE", "PACKET_LENGTH_TOO_LONG",
            "UNKNOWN_PROTOCOL", "HTTP_REQUEST")  # fmt: skip


def _tls_sentence(config: Config, where: str, detail: str) -> str:
    upper = detail.upper()
    if any(alert in upper for alert in _CLIENT_CERT_ALERTS):
        if config.message_cert_file:
            return (
                f"the broker at {where} rejected trainwire's client certificate: check "
                f"'message_cert_file' and 'message_key_file' in {config.path} (the certificate "
                "must be signed by a CA the broker trusts)"
            )
        return (
            f"the broker at {where} wants a client certificate: set 'message_cert_file' and "
            f"'message_key_file' in {config.path}"
        )
    if any(marker in upper for marker in _NOT_TLS):
        return (
            f"{where} does not speak TLS: check 'message_port' in {config.path} (it must be the "
            "broker's TLS port, often 5671), or set 'message_tls' to false"
        )
    return (
        f"the TLS handshake with {where} failed ({detail[:160]}): check 'message_ca_file', "
        f"'message_cert_file' and 'message_key_file' in {config.path}"
    )


def _verify_sentence(config: Config, where: str, reason: str) -> str:
    if "mismatch" in reason.lower():
        return (
            f"the broker's TLS certificate is not valid for the name {config.message_host!r} "
            f"({reason}): set 'message_host' in {config.path} to a name the certificate lists"
        )
    if "expired" in reason.lower() or "not yet valid" in reason.lower():
        return (
            f"the broker's TLS certificate at {where} is out of date ({reason}): the broker's "
            "administrator must renew it"
        )
    cas = f"{str(config.message_ca_file)!r}" if config.message_ca_file else "the system's CAs"
    return (
        f"the broker's TLS certificate at {where} is not trusted ({reason}): check "
        f"'message_ca_file' in {config.path}; it must name the CA that signed the broker's "
        f"certificate (now: {cas})"
    )


def _tls_words(config: Config, where: str, failure: ConnectFailure) -> str:
    if failure.stage is Stage.TLS_FILE and failure.tls_file is not None:
        keys = " and ".join(f"'{key}'" for key in failure.tls_file.keys)
        return (
            f"cannot use the TLS file {str(failure.tls_file.path)!r} ({failure.text[:160]}): "
            f"check {keys} in {config.path}"
        )
    if failure.stage is Stage.CERT_VERIFY:
        return _verify_sentence(config, where, failure.text)
    return _tls_sentence(config, where, failure.text)


def _handshake_words(config: Config, where: str, stage: Stage) -> str:
    if stage is Stage.AFTER_TLS:
        return (
            f"the connection to {where} was lost right after the TLS handshake (network "
            f"trouble, or the broker restarting?); if this repeats, check that 'message_port' "
            f"in {config.path} is the broker's AMQPS port"
        )
    if stage is Stage.LOGIN:
        return (
            f"the connection to {where} was lost during the login, without an answer from the "
            f"broker (network trouble?); if this repeats, check 'message_id', 'message_pw' and "
            f"'message_vhost' in {config.path}"
        )
    return (
        f"the connection to {where} was lost during the TLS handshake (network "
        f"trouble, or the broker restarting?); if this repeats, check 'message_port' "
        f"and 'message_tls' in {config.path}"
    )


def connect_sentence(config: Config, failure: ConnectFailure) -> str:
    """A failed connect in words, naming the key of ``config``'s file to fix."""
    where = f"{config.message_host}:{config.message_port}"
    kind = failure.kind
    if kind is FailureKind.TLS:
        return _tls_words(config, where, failure)
    if kind is FailureKind.HANDSHAKE:
        return _handshake_words(config, where, failure.stage)
    if kind is FailureKind.AUTH:
        return (
            f"the broker at {where} refused the login of user {config.message_id!r}: "
            f"check 'message_id' and 'message_pw' in {config.path}"
        )
    if kind is FailureKind.VHOST_DOWN:
        return (
            f"the broker at {where} has virtual host {config.message_vhost!r} down (still "
            "recovering?); retrying"
        )
    if kind is FailureKind.VHOST:
        return (
            f"the broker at {where} does not let user {config.message_id!r} into virtual "
            f"host {config.message_vhost!r}: check 'message_vhost' (and the user's "
            f"permissions) in {config.path}"
        )
    if kind is FailureKind.HOST:
        return (
            f"the broker host {config.message_host!r} cannot be resolved: check "
            f"'message_host' in {config.path}"
        )
    if kind is FailureKind.REFUSED:
        return (
            f"nothing accepts connections at {where} (connection refused): the broker is "
            f"down, or 'message_port' in {config.path} is wrong"
        )
    if kind is FailureKind.PROTOCOL:
        hint = (
            f"check 'message_port' in {config.path}"
            if config.message_tls
            else f"if that port expects TLS, set 'message_tls' to true (with 'message_ca_file') "
            f"in {config.path}, else check 'message_port'"
        )
        return f"the broker at {where} closed the connection during the AMQP handshake: {hint}"
    if kind is FailureKind.TIMEOUT:
        return (
            f"connecting to {where} timed out: check 'message_host' and 'message_port' in "
            f"{config.path} and the network"
        )
    return f"cannot connect to the broker at {where}: {failure.text[:200]}"


#: Connect trouble that may pass by itself: said once, and "connected" said when it did.
_PASSING = (FailureKind.REFUSED, FailureKind.HOST, FailureKind.TIMEOUT, FailureKind.PROTOCOL,
            FailureKind.HANDSHAKE, FailureKind.VHOST_DOWN, FailureKind.OTHER)  # fmt: skip


class Diagnosis(NamedTuple):
    """A failed connect of a config's broker: kind, sentence, and whether to retry."""

    kind: FailureKind
    sentence: str
    retry: bool


def _config_verdict(config: Config) -> BaseException | None:
    try:
        params = connection_parameters(config)
    except Exception as exc:
        return exc
    return tls_verdict(params)


def describe_connect_error(config: Config, exc: BaseException) -> Diagnosis:
    """Classify a failed connect (:func:`diagnose`) and word it for ``config``.

    ``retry`` is False where trying again cannot succeed without a change: wrong
    credentials (``auth``), a virtual host the user may not use (``vhost``) and TLS
    problems (``tls``). A connection lost right after the TLS handshake is asked about once
    more: this may take a new connection and up to a few seconds.
    """
    failure = diagnose(exc, tls=config.message_tls, verdict=lambda: _config_verdict(config))
    return Diagnosis(failure.kind, connect_sentence(config, failure), failure.retry)


def _inline_resolver_ioloop() -> Any:
    """pika's I/O services with name resolution done inline, in the I/O thread itself.

    pika resolves host names in a helper thread per connection attempt. Python 3.12+
    forbids starting threads once the interpreter is exiting, which is exactly when a
    short program's terminal message may still need its first connection. The I/O
    thread is ours and may block, so resolving inline costs nothing.
    """
    from pika.adapters.select_connection import IOLoop
    from pika.adapters.utils.selector_ioloop_adapter import SelectorIOServicesAdapter

    class _Cancelled:
        def cancel(self) -> bool:
            return False

    class InlineResolverServices(SelectorIOServicesAdapter):  # type: ignore[misc]
        def getaddrinfo(
            self, host: str, port: int, on_done: Any, family: int = 0, socktype: int = 0,
            proto: int = 0, flags: int = 0,
        ) -> Any:  # fmt: skip
            import socket

            try:
                result: Any = socket.getaddrinfo(host, port, family, socktype, proto, flags)
            except Exception as exc:
                result = exc
            self._loop.add_callback(lambda: on_done(result))
            return _Cancelled()

    return InlineResolverServices(IOLoop())


#: The name of the I/O thread (records of pika logged from it are trainwire's business).
IO_THREAD_PREFIX = "trainwire-io"


def _from_io_thread(record: logging.LogRecord) -> bool:
    return not (record.threadName or "").startswith(IO_THREAD_PREFIX)


_pika_quieted = False


def _quiet_pika_in_io_threads() -> None:
    """Drop what pika logs from trainwire's I/O threads, once per process.

    pika logs every failed connection attempt at ERROR, ten lines each, and a program that
    calls ``logging.basicConfig()`` would print them all on every retry. trainwire says
    what went wrong itself, in one line naming the config key to fix. pika's records from
    the user's own threads (their own pika code) are left alone.
    """
    global _pika_quieted
    if _pika_quieted:
        return
    _pika_quieted = True
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == "pika" or name.startswith("pika.")) and isinstance(logger, logging.Logger):
            logger.addFilter(_from_io_thread)


class AmqpTransport(Transport):
    """Publishes a run's messages to ``queue_name`` through the default exchange."""

    name = "amqp"

    def __init__(self, outbox: Outbox, config: Config) -> None:
        super().__init__(outbox)
        self.config = config
        self.spool = Spool(config.save_dir / SPOOL_FILE)
        self._thread = threading.Thread(target=self._main, name=IO_THREAD_PREFIX, daemon=True)
        self._pid = os.getpid()
        self._stop = False
        self._abandoned = False
        self._disabled: str | None = None
        self._wake_event = threading.Event()
        self._confirmed = threading.Event()
        #: Set when there is nothing more to wait for: confirmed, or reporting switched off.
        self._settled = threading.Event()
        self._connection: Any = None
        self._channel: Any = None
        self._blocked = False
        self._opened_at = 0.0
        self._acked = False  # something confirmed on the current connection
        self._tag = 0
        self._seq = 0
        self._in_flight: dict[int, tuple[int, Envelope]] = {}
        self._retry: list[tuple[int, Envelope]] = []
        self._returned: set[str] = set()
        self._terminal_published = False
        self._pause_until = 0.0
        self._timer: Any = None
        self._said: set[str] = set()
        # The newest progress taken by the I/O thread: with the outbox's final step it is
        # what the write-ahead keeps, under one lock so that the spool and the wire agree.
        self._take_lock = threading.Lock()
        self._newest: Envelope | None = None
        self._newest_confirmed: str | None = None
        # This run's own records in the spool (the write-ahead of its terminal message).
        self._spool_lock = threading.Lock()
        self._spooled: list[str] | None = None
        #: Messages the broker confirmed.
        self.delivered = 0

    # -- the training thread's side -------------------------------------------------

    def start(self) -> None:
        self._supersede_earlier()
        self._thread.start()

    def wake(self) -> None:
        self._wake_event.set()
        conn = self._connection
        if conn is not None:
            # The loop may be closing: then the thread's own loop sees the change.
            with contextlib.suppress(Exception):
                conn.ioloop.add_callback_threadsafe(self._on_wake)

    def begin_finish(self) -> None:
        self.wake()
        if not self._abandoned:
            # Write-ahead: from here on a death of the process cannot lose the terminal
            # message. Removed again once the broker confirmed it.
            self._write_ahead()

    def finish(self, timeout: float) -> bool:
        if self._abandoned:
            return False
        self._write_ahead()  # done by begin_finish() already, unless finish came alone
        if timeout > 0:
            self._settled.wait(timeout)
        confirmed = self._confirmed.is_set()
        if confirmed:
            self._settle_spool()
        else:
            self._give_up()
            self._report_kept()
        return confirmed

    def hurry(self) -> None:
        self._settled.set()

    def abandon(self) -> None:
        self._abandoned = True
        self._stop = True
        if os.getpid() != self._pid:
            # A forked child: the socket belongs to the parent. Drop references only.
            self._connection = None
            self._channel = None
        else:
            self.wake()  # the same process: the I/O thread closes its connection and ends

    # -- logging: one clear line per kind of trouble --------------------------------

    def _say(self, key: str, level: int, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, "trainwire: %s", text)

    def _switch_off(self, kind: str, text: str) -> None:
        self._disabled = kind
        self._say(kind, logging.ERROR, text + "; status reporting is switched off")
        self._settled.set()

    # -- the spool ------------------------------------------------------------------

    def _supersede_earlier(self) -> None:
        """Move what an earlier run of this job kept in the spool aside (see module doc)."""
        try:
            records = [r for r in self.spool.read() if self.config.identity.owns(r.body)]
            if not records:
                return
            aside = Spool(self.spool.path.with_name(SUPERSEDED_FILE))
            aside.append(records)
            self.spool.remove(r.message_id for r in records)
        except Exception as exc:  # never let an old file stop a new run
            log.warning("trainwire: cannot read %s: %s", self.spool.path, exc)
            return
        terminals = [r.body.get("status") for r in records if r.terminal]
        log.warning(
            "trainwire: %s held %d message(s) of an earlier run of this job (%s); they are not "
            "sent, because this run supersedes them (the platform would ignore this run after "
            "an earlier training_error); they are kept in %s",
            self.spool.path, len(records), ", ".join(map(str, terminals)) or "progress only",
            aside.path,
        )  # fmt: skip

    def _final_progress(self) -> Envelope | None:
        """The newest progress of this run not yet confirmed (the write-ahead keeps it)."""
        with self._take_lock:
            newest = self.outbox.final_progress() or self._newest
        if newest is not None and newest.message_id == self._newest_confirmed:
            return None
        return newest

    def _write_ahead(self) -> None:
        """Keep the terminal message (and the newest progress) in the spool, once."""
        with self._spool_lock:
            terminal = self.outbox.terminal
            if self._spooled is not None or self._confirmed.is_set() or terminal is None:
                return
            envelopes = [e for e in (self._final_progress(), terminal) if e is not None]
            queue = self.config.queue_name
            try:
                self.spool.append(
                    make_record(e.message_id, queue, e.body, e.terminal) for e in envelopes
                )
            except Exception as exc:  # whatever it is, the broker may still take it
                self._spooled = []
                log.error(
                    "trainwire: cannot keep the final status in %s (%s): it is lost if the "
                    "broker does not confirm it; check that 'model_write_path' in %s is writable",
                    self.spool.path, exc, self.config.path,
                )  # fmt: skip
                return
            self._spooled = [e.message_id for e in envelopes]

    def _settle_spool(self) -> None:
        """The terminal message is confirmed: take this run's records out of the spool."""
        with self._spool_lock:
            ids = self._spooled
            if not ids or not self._confirmed.is_set():
                return
            self._spooled = []
            try:
                self.spool.remove(ids)
            except OSError as exc:
                log.warning("trainwire: cannot update %s: %s", self.spool.path, exc)

    def _report_kept(self) -> None:
        if not self._spooled:
            return
        reason = f" ({self._disabled} problem, see above)" if self._disabled else ""
        log.warning(
            "trainwire: the broker did not confirm the final status%s; it is kept in %s. "
            "Send it with: trainwire replay --config %s",
            reason, self.spool.path, self.config.path,
        )  # fmt: skip

    def _give_up(self) -> None:
        """The spool owns what is left: stop publishing and close the connection."""
        self._stop = True
        self.wake()

    # -- the I/O thread ---------------------------------------------------------------

    def _main(self) -> None:
        import pika
        import pika.adapters.select_connection  # its loggers exist from here on

        _quiet_pika_in_io_threads()
        try:
            params = connection_parameters(self.config)
        except Exception as exc:
            kind, text, _ = describe_connect_error(self.config, exc)
            self._switch_off(kind.value, text)
            return
        backoff = BACKOFF_FIRST
        while not self._stop and self._disabled is None:
            opened = threading.Event()
            ioloop = None
            try:
                ioloop = _inline_resolver_ioloop()
                self._connection = pika.SelectConnection(
                    params,
                    on_open_callback=lambda c, o=opened: self._on_open(c, o),
                    on_open_error_callback=self._on_open_error,
                    on_close_callback=self._on_close,
                    custom_ioloop=ioloop,
                )
                self._connection.ioloop.start()
            except Exception as exc:  # never let the I/O thread die silently
                self._say("loop:" + type(exc).__name__, logging.WARNING, f"I/O error: {exc!r}")
            finally:
                self._connection = None
                self._channel = None
                self._timer = None
                if ioloop is not None:  # its poller and wake-up sockets: no fd leak per try
                    with contextlib.suppress(Exception):
                        ioloop.close()
            if self._stop or self._disabled is not None:
                break
            if opened.is_set() and (
                self._acked or time.monotonic() - self._opened_at > BACKOFF_MAX
            ):
                backoff = BACKOFF_FIRST  # it worked for a while: a fresh start, not a storm
            delay = backoff * random.uniform(0.5, 1.5)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self.outbox.terminal is not None:
                delay = min(delay, BACKOFF_ENDING)
            # A terminal message (wake) cuts the wait short so that it gets its chance.
            self._wake_event.wait(delay)
            self._wake_event.clear()

    def _on_open(self, connection: Any, opened: threading.Event) -> None:
        opened.set()
        self._opened_at = time.monotonic()
        self._acked = False
        self._wake_event.clear()
        trouble = (*(kind.value for kind in _PASSING), "lost")
        if any(kind in self._said for kind in trouble):
            log.info("trainwire: connected to %s", self.config.describe_broker())
        for kind in trouble[:-1]:
            self._said.discard(kind)
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: Any, exc: BaseException) -> None:
        kind, text, retry = describe_connect_error(self.config, exc)
        if retry:
            self._say(
                kind.value, logging.WARNING, text + "; training goes on, retrying in background"
            )
        else:
            self._switch_off(kind.value, text)
        connection.ioloop.stop()

    def _on_close(self, connection: Any, exc: BaseException) -> None:
        self._requeue_in_flight()
        self._channel = None
        self._blocked = False
        if not self._stop:
            self._say("lost", logging.WARNING, f"lost the connection to the broker ({exc!r}); "
                      "reconnecting in background")  # fmt: skip
        connection.ioloop.stop()

    def _on_blocked(self, connection: Any, frame: Any) -> None:
        self._blocked = True
        self._say("blocked", logging.WARNING, "the broker is blocking publishers (memory or disk "
                  "alarm); messages wait, training goes on")  # fmt: skip

    def _on_unblocked(self, connection: Any, frame: Any) -> None:
        self._blocked = False
        self._said.discard("blocked")
        self._pump_soon(0)

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._tag = 0
        channel.add_on_close_callback(self._on_channel_close)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_ok)

    def _on_confirm_ok(self, frame: Any) -> None:
        self._said.discard("lost")
        self._pump_soon(0)

    def _on_channel_close(self, channel: Any, exc: BaseException) -> None:
        self._requeue_in_flight()
        self._channel = None
        conn = self._connection
        if conn is None or not conn.is_open:
            return
        config = self.config
        if "ACCESS_REFUSED" in str(exc):  # e.g. no write permission: retrying cannot help
            self._switch_off(
                "permission",
                f"the broker at {config.message_host}:{config.message_port} does not let user "
                f"{config.message_id!r} publish to queue {config.queue_name!r} ({exc}): check "
                f"'message_id' in {config.path}, or give that user write permission on virtual "
                f"host {config.message_vhost!r}",
            )
        else:
            self._say("channel", logging.WARNING, f"the broker closed the channel ({exc!r})")
        conn.close()

    def _requeue_in_flight(self) -> None:
        if self._in_flight:
            self._retry.extend(self._in_flight.values())
            self._in_flight.clear()
            self._retry.sort(key=lambda slot: slot[0])

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._returned.add(properties.message_id)
        terminal = self.outbox.terminal
        if terminal is not None and properties.message_id == terminal.message_id:
            self._settled.set()  # no queue: waiting cannot help; the spool keeps it
        self._say(
            "unroutable",
            logging.ERROR,
            f"the broker has no queue named {self.config.queue_name!r} (message returned: "
            f"{method.reply_text}): check 'queue_name' in {self.config.path}; the platform "
            "creates that queue, trainwire does not declare it",
        )

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = type(method).__name__ == "Ack"
        tag = method.delivery_tag
        tags = sorted(t for t in self._in_flight if t <= tag) if method.multiple else [tag]
        for t in tags:
            slot = self._in_flight.pop(t, None)
            if slot is None:
                continue
            envelope = slot[1]
            returned = envelope.message_id in self._returned
            self._returned.discard(envelope.message_id)
            if acked and not returned:
                self.delivered += 1
                self._acked = True
                if envelope.terminal:
                    self._on_terminal_confirmed()
                else:
                    self._newest_confirmed = envelope.message_id
                continue
            self._on_refused(slot, returned)
        if self._connection is not None and not self._stop:
            self._pump_soon(0)

    def _on_refused(self, slot: tuple[int, Envelope], returned: bool) -> None:
        """The broker nacked or returned a message: send it again where that is right."""
        envelope = slot[1]
        if returned:
            return  # no such queue: said once; the terminal stays in the spool
        if not envelope.terminal and (envelope is not self._newest or self.outbox.has_pending()):
            return  # a newer step exists: sending this one again would put it after it
        self._retry.append(slot)
        self._retry.sort(key=lambda s: s[0])
        self._pause_until = max(self._pause_until, time.monotonic() + NACK_PAUSE)

    def _on_terminal_confirmed(self) -> None:
        self._confirmed.set()
        self._settled.set()
        self._stop = True
        self._settle_spool()
        conn = self._connection
        if conn is not None and conn.is_open:
            conn.close()

    def _on_wake(self) -> None:
        self._pump_soon(0)

    def _pump_soon(self, delay: float) -> None:
        # One timer at a time: wake-ups and confirms reschedule it instead of adding more.
        conn = self._connection
        if conn is None:
            return
        if self._timer is not None:
            conn.ioloop.remove_timeout(self._timer)
        self._timer = conn.ioloop.call_later(delay, self._pump)

    def _publish(self, envelope: Envelope, seq: int | None = None) -> None:

        if seq is None:
            self._seq += 1
            seq = self._seq
        self._tag += 1
        self._in_flight[self._tag] = (seq, envelope)
        self._channel.basic_publish(
            exchange="",
            routing_key=envelope.queue or self.config.queue_name,
            body=encode(envelope.body),
            properties=message_properties(envelope.message_id),
            mandatory=True,
        )

    def _take_progress(self, ignore_rate: bool) -> Envelope | None:
        with self._take_lock:
            envelope = self.outbox.take_progress(ignore_rate=ignore_rate)
            if envelope is not None:
                self._newest = envelope
            return envelope

    def _pump(self) -> None:
        """Move what is waiting onto the wire; runs every POLL_INTERVAL while connected."""
        self._timer = None
        conn, channel = self._connection, self._channel
        if conn is None or not conn.is_open or channel is None or not channel.is_open:
            return
        if self._stop:
            conn.close()  # confirmed, given up (the spool has it) or abandoned
            return
        now = time.monotonic()
        if self._blocked or now < self._pause_until:
            self._pump_soon(max(POLL_INTERVAL, self._pause_until - now))
            return
        try:
            self._fill()
        except Exception as exc:
            self._say("publish", logging.WARNING, f"publish failed ({exc!r}); reconnecting")
            if conn.is_open:
                conn.close()  # _on_close puts what was in flight back in line
            return
        self._pump_soon(POLL_INTERVAL)

    def _room(self) -> bool:
        return len(self._in_flight) < MAX_IN_FLIGHT

    def _fill(self) -> None:
        """Publish in sequence: retries, progress, then the terminal alone."""
        while self._retry and self._room():
            envelope = self._retry[0][1]
            if envelope.terminal and self._in_flight:
                return  # a terminal message goes alone, after everything before it
            seq, envelope = self._retry.pop(0)
            self._publish(envelope, seq)
        if self._retry:
            return
        ending = self.outbox.terminal is not None
        while self._room():
            progress = self._take_progress(ignore_rate=ending)
            if progress is None:
                break
            self._publish(progress)
            if self.outbox.max_rate and not ending:
                break
        terminal = self.outbox.terminal
        if (
            terminal is not None
            and self._spooled is not None  # written ahead first: a kill -9 cannot lose it
            and not self._terminal_published
            and not self._in_flight
            and not self.outbox.has_pending()
        ):
            self._terminal_published = True
            self._publish(terminal)
