"""The AMQP transport: one daemon I/O thread owning a pika ``SelectConnection``.

Why this shape (see notes/amqp.md): pika objects are not thread-safe, and a
``BlockingConnection`` services heartbeats only inside pika calls, so a long training step
would kill it. Here the I/O thread runs pika's event loop on its own: heartbeats keep
flowing while the training thread computes, publishes are pipelined with publisher
confirms (many in flight), and the training thread never waits for the network.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from typing import Any, Optional

from .._config import Config
from .._protocol import CONTENT_TYPE, encode
from .._spool import SPOOL_FILE, Spool, make_record
from ._base import Envelope, Outbox, Transport

__all__ = ["AmqpTransport", "connection_parameters", "describe_connect_error"]

log = logging.getLogger("trainwire")

#: How often the I/O thread looks at the outbox when nothing woke it.
POLL_INTERVAL = 0.02
#: Unconfirmed messages allowed on the wire at once.
MAX_IN_FLIGHT = 1000
HEARTBEAT = 20
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0


def connection_parameters(config: Config, *, heartbeat: int = HEARTBEAT) -> Any:
    """pika connection parameters for a config (TLS when ``message_tls`` is true)."""
    import pika

    ssl_options = None
    if config.message_tls:
        context = ssl.create_default_context(
            cafile=str(config.message_ca_file) if config.message_ca_file else None
        )
        if config.message_cert_file:
            context.load_cert_chain(
                str(config.message_cert_file),
                str(config.message_key_file) if config.message_key_file else None,
            )
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


def describe_connect_error(config: Config, exc: BaseException) -> tuple[str, str, bool]:
    """Classify a failed connect: ``(kind, sentence naming the config key to fix, retry?)``."""
    import pika.exceptions as pe

    where = f"{config.message_host}:{config.message_port}"
    causes = _causes(exc)
    text = " ".join(f"{type(c).__name__}: {c}" for c in causes)
    for c in causes:
        if isinstance(c, (pe.ProbableAuthenticationError, pe.AuthenticationError)) or (
            "ACCESS_REFUSED" in str(c)
        ):
            return (
                "auth",
                f"the broker at {where} refused the login of user {config.message_id!r}: "
                f"check 'message_id' and 'message_pw' in {config.path}",
                False,
            )
        if isinstance(c, pe.ProbableAccessDeniedError) or "NOT_ALLOWED" in str(c):
            return (
                "vhost",
                f"the broker at {where} does not let user {config.message_id!r} into virtual "
                f"host {config.message_vhost!r}: check 'message_vhost' (and the user's "
                f"permissions) in {config.path}",
                False,
            )
        if isinstance(c, ssl.SSLError):
            return (
                "tls",
                f"the TLS handshake with {where} failed ({c}): check 'message_ca_file', "
                f"'message_cert_file' and 'message_host' in {config.path}",
                False,
            )
        if isinstance(c, socket.gaierror):
            return (
                "host",
                f"the broker host {config.message_host!r} cannot be resolved: check "
                f"'message_host' in {config.path}",
                True,
            )
        if isinstance(c, ConnectionRefusedError):
            return (
                "refused",
                f"nothing accepts connections at {where} (connection refused): the broker is "
                f"down, or 'message_port' in {config.path} is wrong",
                True,
            )
    if "SSL" in text or "CERTIFICATE" in text.upper():
        return ("tls", f"the TLS connection to {where} failed: check 'message_ca_file'", False)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return (
            "timeout",
            f"connecting to {where} timed out: check 'message_host' and 'message_port' in "
            f"{config.path} and the network",
            True,
        )
    return ("other", f"cannot connect to the broker at {where}: {text[:200]}", True)


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
        ) -> Any:
            try:
                result: Any = socket.getaddrinfo(host, port, family, socktype, proto, flags)
            except Exception as exc:
                result = exc
            self._loop.add_callback(lambda: on_done(result))
            return _Cancelled()

    return InlineResolverServices(IOLoop())


class AmqpTransport(Transport):
    """Publishes a run's messages to ``queue_name`` through the default exchange."""

    name = "amqp"

    def __init__(self, outbox: Outbox, config: Config) -> None:
        super().__init__(outbox)
        self.config = config
        self.spool = Spool(config.save_dir / SPOOL_FILE)
        self._thread = threading.Thread(target=self._main, name="trainwire-io", daemon=True)
        self._stop = False
        self._disabled: Optional[str] = None
        self._wake_event = threading.Event()
        self._confirmed = threading.Event()
        self._connection: Any = None
        self._channel: Any = None
        self._blocked = False
        self._tag = 0
        self._in_flight: dict[int, Envelope] = {}
        self._returned: set[str] = set()
        self._retry: list[Envelope] = []
        self._terminal_published = False
        self._pause_until = 0.0
        self._timer: Any = None
        self._said: set[str] = set()
        self._abandoned = False
        self.delivered = 0

    # -- the training thread's side -------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake_event.set()
        conn = self._connection
        if conn is not None:
            try:
                conn.ioloop.add_callback_threadsafe(self._pump)
            except Exception:  # the loop is closing: the thread's own loop will see it
                pass

    def finish(self, timeout: float) -> bool:
        self.wake()
        if self._disabled is None:
            self._confirmed.wait(timeout)
        confirmed = self._confirmed.is_set()
        self._stop = True
        self.wake()
        if not confirmed and not self._abandoned:
            self._spool_leftovers()
        return confirmed

    def abandon(self) -> None:
        # In a forked child: the socket belongs to the parent. Drop references only.
        self._abandoned = True
        self._stop = True
        self._connection = None
        self._channel = None

    # -- logging: one clear line per kind of trouble --------------------------------

    def _say(self, key: str, level: int, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.log(level, "trainwire: %s", text)

    # -- the I/O thread ---------------------------------------------------------------

    def _main(self) -> None:
        import pika

        backoff = BACKOFF_FIRST
        while not self._stop and self._disabled is None:
            opened = threading.Event()
            try:
                self._connection = pika.SelectConnection(
                    connection_parameters(self.config),
                    on_open_callback=lambda c: self._on_open(c, opened),
                    on_open_error_callback=self._on_open_error,
                    on_close_callback=self._on_close,
                    custom_ioloop=_inline_resolver_ioloop(),
                )
                self._connection.ioloop.start()
            except Exception as exc:  # never let the I/O thread die silently
                self._say("loop:" + type(exc).__name__, logging.WARNING, f"I/O error: {exc!r}")
            finally:
                self._connection = None
                self._channel = None
            if self._stop or self._disabled is not None or self._abandoned:
                break
            if opened.is_set():
                backoff = BACKOFF_FIRST
            delay = min(backoff, BACKOFF_MAX) * random.uniform(0.5, 1.5)
            backoff *= 2
            # A terminal message cuts the wait short so that it gets its chance quickly.
            self._wake_event.clear()
            self._wake_event.wait(delay)

    def _on_open(self, connection: Any, opened: threading.Event) -> None:
        opened.set()
        if "connected" in self._said or "refused" in self._said or "host" in self._said:
            log.info("trainwire: connected to %s", self.config.describe_broker())
        self._said.discard("refused")
        self._said.discard("timeout")
        self._said.discard("other")
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: Any, exc: BaseException) -> None:
        kind, text, retry = describe_connect_error(self.config, exc)
        if retry:
            self._say(kind, logging.WARNING, text + "; training goes on, retrying in background")
        else:
            self._disabled = kind
            self._say(kind, logging.ERROR, text + "; status reporting is switched off")
        connection.ioloop.stop()

    def _on_close(self, connection: Any, exc: BaseException) -> None:
        self._requeue_in_flight()
        self._channel = None
        if not self._stop:
            self._say("lost", logging.WARNING, f"lost the connection to the broker ({exc!r}); "
                      "reconnecting in background")
        connection.ioloop.stop()

    def _on_blocked(self, connection: Any, frame: Any) -> None:
        self._blocked = True
        self._say("blocked", logging.WARNING, "the broker is blocking publishers (memory or disk "
                  "alarm); messages wait, training goes on")

    def _on_unblocked(self, connection: Any, frame: Any) -> None:
        self._blocked = False
        self._said.discard("blocked")

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self._tag = 0
        self._timer = None
        channel.add_on_close_callback(self._on_channel_close)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_ok)

    def _on_confirm_ok(self, frame: Any) -> None:
        self._said.discard("lost")
        self._pump()

    def _on_channel_close(self, channel: Any, exc: BaseException) -> None:
        self._requeue_in_flight()
        self._channel = None
        conn = self._connection
        if conn is not None and conn.is_open:
            self._say("channel", logging.WARNING, f"the broker closed the channel ({exc!r})")
            conn.close()

    def _requeue_in_flight(self) -> None:
        if self._in_flight:
            waiting = [self._in_flight[t] for t in sorted(self._in_flight)]
            self._in_flight.clear()
            self._retry[:0] = waiting
            if any(e.terminal for e in waiting):
                self._terminal_published = False

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._returned.add(properties.message_id)
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
        tags = [t for t in self._in_flight if t <= tag] if method.multiple else [tag]
        for t in sorted(tags):
            envelope = self._in_flight.pop(t, None)
            if envelope is None:
                continue
            if acked and envelope.message_id not in self._returned:
                self.delivered += 1
                if envelope.terminal:
                    self._confirmed.set()
                    self._stop = True
                    if self._connection is not None:
                        self._connection.close()
                continue
            self._returned.discard(envelope.message_id)
            if envelope.terminal:
                self._terminal_published = False
                self._retry.append(envelope)
                self._pause_until = time.monotonic() + 1.0
            elif not acked:
                # A nacked progress message is retried only while nothing newer is queued.
                if not self.outbox.pending and not self._retry:
                    self._retry.append(envelope)
                self._pause_until = time.monotonic() + 0.5
        if self._connection is not None and not self._stop:
            self._pump_soon(0)

    def _pump_soon(self, delay: float) -> None:
        # One timer at a time: wake-ups and confirms reschedule it instead of adding more.
        conn = self._connection
        if conn is None:
            return
        if self._timer is not None:
            conn.ioloop.remove_timeout(self._timer)
        self._timer = conn.ioloop.call_later(delay, self._pump)

    def _publish(self, envelope: Envelope) -> None:
        import pika

        self._tag += 1
        self._in_flight[self._tag] = envelope
        self._channel.basic_publish(
            exchange="",
            routing_key=self.config.queue_name,
            body=encode(envelope.body),
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=envelope.message_id,
                timestamp=int(time.time()),
                app_id="trainwire",
            ),
            mandatory=True,
        )

    def _pump(self) -> None:
        """Move what the outbox holds onto the wire, in order, terminal last."""
        self._timer = None
        conn, channel = self._connection, self._channel
        if conn is None or channel is None or not channel.is_open:
            return
        if self._stop and self._confirmed.is_set():
            return
        self._wake_event.clear()
        now = time.monotonic()
        if self._blocked or now < self._pause_until:
            self._pump_soon(max(POLL_INTERVAL, self._pause_until - now))
            return
        try:
            ending = self.outbox.terminal is not None
            while self._retry and len(self._in_flight) < MAX_IN_FLIGHT:
                envelope = self._retry[0]
                if envelope.terminal and any(not e.terminal for e in self._in_flight.values()):
                    break
                self._retry.pop(0)
                if envelope.terminal:
                    self._terminal_published = True
                self._publish(envelope)
            if not self._retry:
                while len(self._in_flight) < MAX_IN_FLIGHT:
                    envelope = self.outbox.take_progress(ignore_rate=ending)
                    if envelope is None:
                        break
                    self._publish(envelope)
                    if self.outbox.max_rate and not ending:
                        break
                terminal = self.outbox.terminal
                if (
                    terminal is not None
                    and not self._terminal_published
                    and not self.outbox.pending
                    and not self._in_flight
                ):
                    # Terminal last: only once every progress message is confirmed, so a
                    # nack and retry can never put progress after it.
                    self._terminal_published = True
                    self._publish(terminal)
        except Exception as exc:
            self._say("publish", logging.WARNING, f"publish failed ({exc!r}); will retry")
            self._requeue_in_flight()
            if conn.is_open:
                conn.close()
            return
        self._pump_soon(POLL_INTERVAL)

    # -- giving up: keep what was not confirmed -------------------------------------

    def _spool_leftovers(self) -> None:
        terminal = self.outbox.terminal
        if terminal is None:
            return
        progress = self.outbox.take_progress(ignore_rate=True) or self.outbox.last_progress
        envelopes = [e for e in (progress, terminal) if e is not None]
        queue = self.config.queue_name
        try:
            self.spool.append(make_record(e.message_id, queue, e.body, e.terminal) for e in envelopes)
        except OSError as exc:
            log.error("trainwire: could not keep the undelivered terminal message in %s: %s",
                      self.spool.path, exc)
            return
        reason = f" ({self._disabled} problem, see above)" if self._disabled else ""
        log.warning(
            "trainwire: the broker did not confirm the final status%s; it is kept in %s. "
            "Send it with: trainwire replay --config %s",
            reason, self.spool.path, self.config.path,
        )
