"""A programmatic chat client for notebooks, tests and scenarios.

No threads: ``receive()`` reads from the socket until a whole line is there or the
timeout passes.  The close methods are the ones a TCP lab needs, each one a
different picture in a capture:

==============  ===========================================  ==================
method          socket calls                                 on the wire
==============  ===========================================  ==================
``close()``     ``close()``                                  FIN (or RST if data
                                                             was left unread)
``half_close``  ``shutdown(SHUT_WR)``                        FIN, still reading
``abort()``     ``SO_LINGER`` on, 0 s, then ``close()``      RST
``quit()``      send ``/quit``, read until the server's FIN  server FINs first
==============  ===========================================  ==================
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from collections.abc import Callable

from .protocol import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Kind,
    Line,
    LineSplitter,
    ServerLine,
    encode_line,
    parse_server_line,
)


class ConnectionClosed(ConnectionError):
    """The server closed the connection (its FIN arrived)."""


class ChatClient:
    """One chat connection.  Use :meth:`connect` to open it and choose a nickname."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.nick: str | None = None
        self._splitter = LineSplitter(max_line_bytes=64 * 1024)
        self._lines: deque[ServerLine] = deque()
        self.eof = False
        self.history: deque[ServerLine] = deque(maxlen=1000)  # the latest lines received

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        nodelay: bool = False,
        timeout: float = 5.0,
        source_port: int = 0,
    ) -> ChatClient:
        """Open the TCP connection only (the 3-way handshake); no nickname yet."""
        sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=("", source_port) if source_port else None,
        )
        sock.settimeout(None)
        client = cls(sock)
        client.set_nodelay(nodelay)
        return client

    @classmethod
    def connect(
        cls,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        nick: str = "student",
        *,
        nodelay: bool = False,
        timeout: float = 5.0,
    ) -> ChatClient:
        """Connect, answer the nickname question, and return once welcomed.

        Raises ValueError with the server's words if the nickname is refused.
        """
        client = cls.open(host, port, nodelay=nodelay, timeout=timeout)
        try:
            client.choose_nick(nick, timeout=timeout)
        except BaseException:
            client.close()
            raise
        return client

    def choose_nick(self, nick: str, timeout: float = 5.0) -> ServerLine:
        """Read the welcome notice, send ``nick``, wait for the server's answer."""
        self.receive(timeout)  # the "choose a nickname" notice
        self.send(nick)
        answer = self.receive_until(lambda line: line.kind in (Kind.REPLY, Kind.ERROR), timeout)[-1]
        if answer.kind is Kind.ERROR:
            raise ValueError(f"nickname {nick!r} refused: {answer.text}")
        self.nick = nick
        return answer

    # ------------------------------------------------------------------ sending

    def send(self, text: str) -> None:
        """Send one line (a chat message, or a command such as ``/online``)."""
        self.sock.sendall(encode_line(text))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are: for framing experiments and attacks."""
        self.sock.sendall(data)

    def set_nodelay(self, on: bool) -> None:
        """Nagle's algorithm off (``on=True``) sends small segments at once."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if on else 0)

    # ------------------------------------------------------------------ receiving

    def receive(self, timeout: float = 5.0) -> ServerLine:
        """The next server line; TimeoutError if none within ``timeout`` seconds,
        ConnectionClosed if the server closed first."""
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self.eof:
                raise ConnectionClosed("the server closed the connection")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line from the server within {timeout:g} s")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            finally:
                self.sock.settimeout(None)
            if not data:
                self.eof = True
                continue
            for event in self._splitter.feed(data):
                if isinstance(event, Line):
                    line = parse_server_line(event.text)
                    self._lines.append(line)
                    self.history.append(line)
        return self._lines.popleft()

    def receive_until(
        self, predicate: Callable[[ServerLine], bool], timeout: float = 5.0
    ) -> list[ServerLine]:
        """Lines up to and including the first one matching ``predicate``."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self.receive(max(0.0, deadline - time.monotonic()))
            lines.append(line)
            if predicate(line):
                return lines

    def receive_all(self, count: int, timeout: float = 5.0) -> list[ServerLine]:
        deadline = time.monotonic() + timeout
        return [self.receive(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def wait_closed(self, timeout: float = 5.0) -> list[ServerLine]:
        """Read until the server's FIN; return the lines that came before it."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines.append(self.receive(max(0.0, deadline - time.monotonic())))
            except ConnectionClosed:
                return lines

    # ------------------------------------------------------------------ closing

    def quit(self, timeout: float = 5.0) -> list[ServerLine]:
        """Send ``/quit``, read until the server closes, then close our side."""
        self.send("/quit")
        lines = self.wait_closed(timeout)
        self.close()
        return lines

    def close(self) -> None:
        """Orderly close: FIN (RST instead if unread data is waiting in the kernel)."""
        self.sock.close()

    def half_close(self) -> None:
        """Send our FIN but keep reading: ``shutdown(SHUT_WR)``."""
        self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """Close with RST instead of FIN: ``SO_LINGER`` on with a 0 s timeout."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    @property
    def local_address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.sock.fileno() != -1:
            self.close()
