"""pika's event loop as the I/O thread needs it: names resolved inline, pika kept quiet."""

from __future__ import annotations

import collections
import logging
from typing import Any

__all__ = [
    "IO_THREAD_PREFIX",
    "abort_connection",
    "coalesce_writes",
    "inline_resolver_ioloop",
    "quiet_pika_in_io_threads",
]

#: The name of the I/O thread (records of pika logged from it are trainwire's business).
IO_THREAD_PREFIX = "trainwire-io"


def inline_resolver_ioloop() -> Any:
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
            self,
            host: str,
            port: int,
            on_done: Any,
            family: int = 0,
            socktype: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> Any:
            import socket

            try:
                result: Any = socket.getaddrinfo(host, port, family, socktype, proto, flags)
            except Exception as exc:
                result = exc
            self._loop.add_callback(lambda: on_done(result))
            return _Cancelled()

    return InlineResolverServices(IOLoop())


def _from_io_thread(record: logging.LogRecord) -> bool:
    return not (record.threadName or "").startswith(IO_THREAD_PREFIX)


class _Quieter:
    """Drop what pika logs from trainwire's I/O threads, once per process.

    pika logs every failed connection attempt at ERROR, ten lines each, and a program that
    calls ``logging.basicConfig()`` would print them all on every retry. trainwire says
    what went wrong itself, in one line naming the config key to fix. pika's records from
    the user's own threads (their own pika code) are left alone.
    """

    def __init__(self) -> None:
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if (name == "pika" or name.startswith("pika.")) and isinstance(logger, logging.Logger):
                logger.addFilter(_from_io_thread)


quiet_pika_in_io_threads = _Quieter()


def abort_connection(connection: Any, reason: str) -> None:
    """Drop an open connection at once; its close callback then runs with ``reason``.

    ``connection.close()`` waits for the node's ``close-ok``, which a node cut off by a
    partition never sends: only pika's heartbeat check (tens of seconds) would end the
    wait. pika's own heartbeat check ends a connection through ``_terminate_stream``, so
    that is used here too; without it (another pika), close politely.
    """
    import pika.exceptions

    if not connection.is_open:
        return
    terminate = getattr(connection, "_terminate_stream", None)
    if terminate is None:
        connection.close()
    else:
        terminate(pika.exceptions.AMQPConnectionError(reason))


def coalesce_writes(connection: Any) -> None:
    """Join what the connection has buffered to send into one chunk: one ``send()``.

    pika buffers every frame it builds as a chunk of its own (a message is three: method,
    header, body) and sends each chunk with a system call of its own once the socket is
    writable. Every-step mode publishes hundreds of messages at a time; one ``send()`` for
    all of them instead of three a message was about a third of the publisher's CPU. The
    bytes and their order are pika's own, untouched. pika's transport keeps its buffer in
    private attributes: if they are not what this expects (another pika), nothing is done.
    """
    chunks = getattr(getattr(connection, "_transport", None), "_tx_buffers", None)
    if isinstance(chunks, collections.deque) and len(chunks) > 1:
        joined = b"".join(chunks)
        chunks.clear()
        chunks.append(joined)
