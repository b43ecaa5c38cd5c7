"""A loopback TCP proxy for network fault injection in tests.

    proxy = TcpProxy("127.0.0.1", broker.port)   # listens on 127.0.0.1:proxy.port
    ...connect the client under test to proxy.port...
    proxy.drop()            # close every live connection at once
    proxy.blackhole(True)   # sockets stay open, no bytes flow either way
    proxy.delay(0.5)        # each chunk is held 0.5 s before being forwarded
    proxy.refuse(True)      # new connections are closed immediately
    proxy.close()

One selector thread does everything (non-blocking sockets, no per-connection
threads).  Control calls are executed by that thread and return once done, so
e.g. after ``drop()`` returns the sockets are closed.  The proxy is bounded: at
most ``max_connections`` pairs, at most ``max_buffer`` bytes buffered per
direction (it stops reading beyond that), and it shuts itself down after
``lifetime`` seconds; its thread is a daemon.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import selectors
import socket
import threading
import time
from typing import Callable


class _Pipe:
    """One direction of a proxied connection: bytes read from src, written to dst."""

    __slots__ = ("chunks", "dst", "eof", "size", "src")

    def __init__(self, src: socket.socket, dst: socket.socket):
        self.src, self.dst = src, dst
        self.chunks: collections.deque[list] = collections.deque()  # [due_time, bytes]
        self.size = 0
        self.eof = False


class _Conn:
    __slots__ = ("client", "connected", "deadline", "down", "up", "upstream")

    def __init__(self, client: socket.socket, upstream: socket.socket, deadline: float):
        self.client, self.upstream = client, upstream
        self.connected = False
        self.up = _Pipe(client, upstream)  # client -> target
        self.down = _Pipe(upstream, client)  # target -> client
        self.deadline = deadline  # for the upstream connect


class TcpProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        max_connections: int = 128,
        max_buffer: int = 4 << 20,
        lifetime: float = 1800.0,
        connect_timeout: float = 5.0,
    ):
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.max_buffer = max_buffer
        self.connect_timeout = connect_timeout
        self._expires = time.monotonic() + lifetime
        self._delay = 0.0
        self._blackhole = False
        self._refuse = False
        self._closed = False
        self._conns: list[_Conn] = []
        self.accepted = 0  # total connections accepted (incl. refused)
        self._cmds: queue.Queue = queue.Queue()
        self._sel = selectors.DefaultSelector()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name=f"TcpProxy:{self.port}", daemon=True)
        self._thread.start()

    # --------------------------------------------------------------- control
    @property
    def connections(self) -> int:
        """Number of live proxied connections."""
        return len(self._conns)

    def drop(self) -> None:
        """Close all live connections at once (clients see a reset/EOF)."""
        self._call(self._drop_all)

    def blackhole(self, on: bool = True) -> None:
        """Keep sockets open but stop forwarding bytes in both directions.
        Nothing is discarded: ``blackhole(False)`` resumes the streams intact."""
        self._call(lambda: setattr(self, "_blackhole", bool(on)))

    def delay(self, seconds: float) -> None:
        """Hold every chunk read from now on for ``seconds`` before forwarding."""
        self._call(lambda: setattr(self, "_delay", max(0.0, float(seconds))))

    def refuse(self, on: bool = True) -> None:
        """Accept-and-close new connections immediately (existing ones live on)."""
        self._call(lambda: setattr(self, "_refuse", bool(on)))

    def reset(self) -> None:
        """Back to a transparent proxy: no blackhole, no delay, no refusing."""

        def _reset() -> None:
            self._blackhole, self._refuse, self._delay = False, False, 0.0

        self._call(_reset)

    def close(self) -> None:
        """Stop the proxy: closes the listener and all connections. Idempotent."""
        if self._thread.is_alive():
            self._call(self._shutdown)
            self._thread.join(5)
        self._wake_w.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            if fn == self._shutdown:
                return
            raise RuntimeError("TcpProxy is closed")
        done = threading.Event()
        self._cmds.put((fn, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(timeout):
            raise RuntimeError("TcpProxy thread did not respond")

    # ------------------------------------------------------------ event loop
    def _run(self) -> None:
        try:
            while not self._closed:
                now = time.monotonic()
                if now >= self._expires:
                    self._shutdown()
                    break
                self._register(now)
                for key, _ in self._sel.select(self._timeout(now)):
                    key.data()
                self._run_commands()
                self._check_connects()
                for c in list(self._conns):
                    self._pump(c)
        finally:
            self._shutdown()
            self._run_commands()  # release anyone waiting on a command

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done = self._cmds.get_nowait()
            except queue.Empty:
                return
            try:
                if not self._closed or fn == self._shutdown:
                    fn()
            finally:
                done.set()

    def _timeout(self, now: float) -> float:
        timeout = min(1.0, self._expires - now)
        if not self._blackhole:
            for c in self._conns:
                for p in (c.up, c.down):
                    if p.chunks:
                        timeout = min(timeout, p.chunks[0][0] - now)
        return max(0.0, timeout)

    def _register(self, now: float) -> None:
        """(Re)compute what each socket waits for."""
        self._sel_set(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._sel_set(self._listener, selectors.EVENT_READ, self._on_accept)
        for c in self._conns:
            if not c.connected:
                self._sel_set(c.upstream, selectors.EVENT_WRITE, lambda: None)
                self._sel_set(c.client, 0, None)
                continue
            for sock in (c.client, c.upstream):
                events = 0
                if not self._blackhole:
                    for p in (c.up, c.down):
                        if p.src is sock and not p.eof and p.size < self.max_buffer:
                            events |= selectors.EVENT_READ
                        if p.dst is sock and p.chunks and p.chunks[0][0] <= now:
                            events |= selectors.EVENT_WRITE
                self._sel_set(sock, events, None)

    def _sel_set(self, sock: socket.socket, events: int, data: object) -> None:
        try:
            key = self._sel.get_key(sock)
        except KeyError:
            key = None
        if not events:
            if key:
                self._sel.unregister(sock)
        elif key is None:
            self._sel.register(sock, events, data or (lambda: None))
        elif key.events != events:
            self._sel.modify(sock, events, data or key.data)

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _on_accept(self) -> None:
        for _ in range(64):
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepted += 1
            if self._refuse or len(self._conns) >= self.max_connections:
                _abort(client)
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.connect_ex(self.target)
            self._conns.append(_Conn(client, upstream, time.monotonic() + self.connect_timeout))

    def _check_connects(self) -> None:
        now = time.monotonic()
        for c in list(self._conns):
            if c.connected:
                continue
            err = c.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close_conn(c)
                continue
            try:
                c.upstream.getpeername()
                c.connected = True
            except OSError:
                if now >= c.deadline:
                    self._close_conn(c)

    def _pump(self, c: _Conn) -> None:
        if not c.connected or self._blackhole:
            return
        now = time.monotonic()
        for p in (c.up, c.down):
            # read whatever is available
            while not p.eof and p.size < self.max_buffer:
                try:
                    data = p.src.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._close_conn(c)
                    return
                if not data:
                    p.eof = True
                    break
                p.chunks.append([now + self._delay, data])
                p.size += len(data)
            # write what is due
            while p.chunks and p.chunks[0][0] <= now:
                chunk = p.chunks[0]
                try:
                    n = p.dst.send(chunk[1])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._close_conn(c)
                    return
                p.size -= n
                if n < len(chunk[1]):
                    chunk[1] = chunk[1][n:]
                    break
                p.chunks.popleft()
        # one side closed and everything it sent has been delivered: close both
        if (c.up.eof and not c.up.chunks) or (c.down.eof and not c.down.chunks):
            self._close_conn(c)

    def _close_conn(self, c: _Conn, abort: bool = False) -> None:
        for sock in (c.client, c.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            if abort:
                _abort(sock)
            else:
                sock.close()
        if c in self._conns:
            self._conns.remove(c)

    def _drop_all(self) -> None:
        for c in list(self._conns):
            self._close_conn(c, abort=True)

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._drop_all()
        for sock in (self._listener, self._wake_r):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()
        self._sel.close()


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), so the peer notices at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
