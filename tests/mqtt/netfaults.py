"""Network faults made of real sockets: a black-holed listener, a relay that speaks 3.1.1 only."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


@contextmanager
def black_hole(port: int = 0) -> Iterator[int]:
    """A listener whose accept queue is full: further SYNs are dropped, so connect() hangs.

    ``listen(0)`` and connections that are never accepted; filled until a connect no longer
    completes.  Yields the port (``port``, or a free one).
    """
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a broker takes it after
    server.bind(("127.0.0.1", port))
    server.listen(0)
    port = server.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(64):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
            _, writable, _ = select.select([], [c], [], 0.5)
            if not writable:
                break  # this SYN was dropped: the queue is full
        else:
            raise AssertionError("the accept queue never filled")
        yield port
    finally:
        for c in fillers:
            c.close()
        server.close()


def _connect_level(head: bytes) -> int | None:
    """The protocol level of an MQTT CONNECT packet's first bytes (None if not yet known)."""
    i = 1
    while i < len(head) and head[i] & 0x80:
        i += 1
    i += 1  # past the remaining-length varint
    name_end = i + 2 + 4  # length-prefixed "MQTT"
    return head[name_end] if len(head) > name_end else None


class Relay:
    """A TCP relay to a broker on loopback; a subclass decides what each connection gets."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self._join(conn, b"")

    def _join(self, conn: socket.socket, head: bytes) -> None:
        """Relay ``conn`` to the broker, ``head`` (already read from it) first."""
        try:
            up = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            up.settimeout(None)
            conn.settimeout(None)
            up.sendall(head)
        except OSError:
            conn.close()
            return
        self._socks += [conn, up]
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every relayed connection."""
        for s in self._socks:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
        self._server.close()


class Gate(Relay):
    """A relay that refuses connections while shut."""

    def __init__(self, target_port: int) -> None:
        self.open = threading.Event()
        self.open.set()
        super().__init__(target_port)

    def _serve(self, conn: socket.socket) -> None:
        if not self.open.is_set():
            conn.close()
            return
        self._join(conn, b"")

    def cut(self) -> None:
        """Shut the gate and drop every relayed connection (a network outage)."""
        self.open.clear()
        super().cut()


class V311Relay(Relay):
    """A relay to a broker that speaks MQTT 3.1.1 only, like NATS' or RabbitMQ's listener.

    A CONNECT at protocol level 5 is closed without a CONNACK; while ``refuse_all`` is set,
    every connection is closed (a broker that accepts TCP and then gives up).
    """

    def __init__(self, target_port: int) -> None:
        self.refuse_all = threading.Event()
        self.v5_refused = 0
        super().__init__(target_port)

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        conn.settimeout(5)
        with suppress(OSError):
            while _connect_level(head) is None:
                chunk = conn.recv(64)
                if not chunk:
                    break
                head += chunk
        level = _connect_level(head)
        if level is None or level == 5 or self.refuse_all.is_set():
            self.v5_refused += level == 5
            conn.close()
            return
        self._join(conn, head)
