"""The socket factory's side inside the namespace: make sockets, capture, answer.

Started by :class:`~tcpchatx.capture.namespace_sockets.NamespaceSockets` as
``python -m tcpchatx.capture.namespace_sockets_child FD`` under ``unshare --user
--map-root-user --net``, with FD its end of a ``SOCK_SEQPACKET`` socket pair. It brings
the namespace's ``lo`` up, says it is ready, then answers one request at a time (the
messages are in :mod:`~tcpchatx.capture.namespace_sockets_protocol`). It is
single-threaded on purpose: only a process with one thread may enter a user
namespace, which is why a notebook kernel cannot do this itself.

When the parent's end closes (``close()``, or the parent died), ``recv`` returns
nothing: a running capture is abandoned (no file, no temporary file) and the child
exits; being process 1 of its PID namespace, it takes dumpcap along.
"""

from __future__ import annotations

import socket
import sys
import traceback

from .live import LiveCapture
from .namespace_child import bring_up
from .namespace_sockets_protocol import (
    MAX_MESSAGE,
    MakeSocket,
    Reply,
    Request,
    StartCapture,
    StopCapture,
    encode_reply,
    parse_request,
)


class Factory:
    """What the child holds between requests: at most one running capture."""

    def __init__(self) -> None:
        self.capture: LiveCapture | None = None

    def answer(self, request: Request) -> tuple[Reply, socket.socket | None]:
        """Carry out *request*; the reply, and the socket to send beside it (if any)."""
        if isinstance(request, MakeSocket):
            return Reply(ok=True), socket.socket(request.family, request.type, request.proto)
        if isinstance(request, StartCapture):
            if self.capture is not None:
                raise RuntimeError(f"a capture of port {self.capture.port} is already running; "
                                   "stop it first")
            capture = LiveCapture(request.port, request.path, backend=request.backend, interface="lo")
            self.capture = capture.start()
            return Reply(ok=True), None
        assert isinstance(request, StopCapture)
        if self.capture is None:
            raise RuntimeError("no capture is running; start one first")
        capture, self.capture = self.capture, None
        return Reply(ok=True, capture=capture.stop().to_dict()), None

    def abandon(self) -> None:
        if self.capture is not None:
            self.capture.abort()
            self.capture = None


def serve(channel: socket.socket) -> None:
    """Answer requests on *channel* until the parent closes its end."""
    factory = Factory()
    try:
        while True:
            data = channel.recv(MAX_MESSAGE)
            if not data:  # the parent is gone
                return
            made = None
            try:
                reply, made = factory.answer(parse_request(data))
            except Exception as exc:  # every failure is an answer; the child serves on
                reply = Reply(ok=False, error=f"{type(exc).__name__}: {exc}")
            try:
                socket.send_fds(channel, [encode_reply(reply)], [made.fileno()] if made else [])
            finally:
                if made is not None:
                    made.close()  # the parent's copy is the only one left
    finally:
        factory.abandon()


def main(argv: list[str]) -> int:
    channel = socket.socket(fileno=int(argv[0]))
    try:
        bring_up("lo")
    except Exception:
        channel.send(encode_reply(Reply(ok=False, error=traceback.format_exc(limit=4))))
        return 1
    channel.send(encode_reply(Reply(ok=True)))
    try:
        serve(channel)
    except (BrokenPipeError, ConnectionResetError):  # the parent left while we answered
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
