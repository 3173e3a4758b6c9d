"""What every story on the lab network does around its own part: captures at both ends,
and a chat server with alice and bob connected across the router - or a bulk transfer.

:func:`chat_across_router` starts the server in the server namespace and a capture on
each host's veth end, connects alice and bob from the client namespace, and waits
until alice has seen bob join.  On the way out it saves both captures - or, if the
story raised, discards them: a story that missed its event saves nothing to study.
:func:`bulk_transfer` sends a block of bytes from the client to the server instead,
with the sender's TCP_INFO and the router's queue sampled as it goes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ..capture import LiveCapture
from ..client import ChatClient
from ..room import RoomConfig
from ..server import ChatServer
from ..tcpinfo import Sampler
from .namespaces import inside
from .queues import QueueSampler, queue_counters
from .topology import CLIENT, SERVER, Side

PORT = 25000  # every port is free in namespaces of our own
BULK_PORT = 25001
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)


def views(out_dir: str, name: str, router_view: bool = False) -> dict[str, Path]:
    """The story's capture files: the client's view and the server's, and with
    *router_view* the router's, in *out_dir* (made absolute: LiveCapture would put a
    bare file name into captures/)."""
    out = Path(out_dir).resolve()
    sides = ("client", "server", "router") if router_view else ("client", "server")
    return {side: out / f"{name}-{side}-view.pcapng" for side in sides}


def capture_on(side: Side, port: int, path: Path) -> LiveCapture:
    """A started capture of *port* on *side*'s end of its veth pair, in its namespace."""
    with inside(side.namespace):
        return LiveCapture(port, path, backend="dumpcap", interface=side.host_link,
                           marker_to=side.router_address).start()


def capture_at_router(port: int, path: Path) -> LiveCapture:
    """A started capture of *port* on the router's end of the client's link (``c0``):
    every frame from the client as it reached the router - the ones the router then
    dropped too - and every frame the router sent the client."""
    return LiveCapture(port, path, backend="dumpcap", interface=CLIENT.router_link,
                       marker_to=CLIENT.address).start()


@contextmanager
def captured(paths: dict[str, Path], port: int) -> Iterator[dict]:
    """Both ends captured for the ``with`` block (and the router, if *paths* has a
    ``"router"`` view); saved if it ends well, discarded if not.
    Yields a dict that, once the block is over, holds what each capture recorded
    (``{"server": CaptureResult, "client": ...}``: its packets, and dumpcap's drops)."""
    captures = {"server": capture_on(SERVER, port, paths["server"])}
    recorded: dict = {}
    try:
        captures["client"] = capture_on(CLIENT, port, paths["client"])
        if "router" in paths:
            captures["router"] = capture_at_router(port, paths["router"])
        yield recorded
    except BaseException:
        for capture in captures.values():
            capture.abort()
        raise
    recorded.update(stop_together(captures))


def stop_together(captures: dict[str, LiveCapture]) -> dict:
    """Stop every capture at once: {side: CaptureResult}.  Each stop waits for dumpcap to
    write its flush marker (0.25-0.75 s here: see capture/dumpcap.py), so one after the
    other they would cost the sum of those waits."""
    with ThreadPoolExecutor(max_workers=len(captures), thread_name_prefix="capture-stop") as pool:
        stopping = {side: pool.submit(capture.stop) for side, capture in captures.items()}
    return {side: future.result() for side, future in stopping.items()}  # the first failure raises


@contextmanager
def chat_across_router(paths: dict[str, Path], config: RoomConfig | None = None,
                       timeline: list | None = None,
                       **server_options) -> Iterator[tuple[ChatClient, ChatClient]]:
    """A chat server in the server namespace, alice and bob connected from the client
    namespace, both ends captured; yields (alice, bob).  Clients still open at the end
    are closed before the captures stop.  ``timeline``, if given, receives the server's
    timeline events once it has stopped."""
    with inside(SERVER.namespace):
        server = ChatServer(SERVER.address, PORT, config=config, **server_options).start()
    try:
        with captured(paths, PORT):
            with inside(CLIENT.namespace):
                alice = ChatClient.connect(SERVER.address, PORT, "alice", nodelay=True)
                bob = ChatClient.connect(SERVER.address, PORT, "bob", nodelay=True)
            alice.receive_until(lambda line: "bob joined" in line.text)
            try:
                yield alice, bob
            finally:
                for client in (alice, bob):
                    if client.sock.fileno() != -1:
                        client.close()
    finally:
        server.stop()
        if timeline is not None:
            timeline.extend(server.timeline_events())


def bulk_transfer(paths: dict[str, Path], size: int, congestion: str | None = None,
                  port: int = BULK_PORT, pace: tuple[int, float] | None = None) -> dict:
    """Send *size* bytes from the client to the server, captured at both ends; return
    the bytes received, the seconds it took, TCP_INFO samples of both ends (named
    ``"sender"``: its congestion window, threshold, RTT, retransmissions and send
    queue; and ``"receiver"``: its receive queue; on the capture's clock:
    :class:`tcpchatx.tcpinfo.Sampler`) and the router's queue towards the server
    (:class:`tcpchatx.netlab.queues.QueueSampler`).  *congestion* picks the sender's
    congestion control (``"cubic"``, ``"reno"``, ``"bbr"``), for its socket only.
    Without *congestion* the namespace's default runs (the machine's: cubic on most,
    bbr on some); ``"congestion"`` in the result says which.
    *pace* ``(chunk, interval)`` makes the sender an application with little to say:
    it writes *chunk* bytes every *interval* seconds instead of all at once.
    """
    received: list[int] = []
    with inside(SERVER.namespace):
        listener = socket.create_server((SERVER.address, port))

    def receive_all(connection: socket.socket) -> None:
        with connection:
            total = 0
            while chunk := connection.recv(1 << 16):
                total += len(chunk)
            received.append(total)

    try:
        with captured(paths, port) as recorded:
            with inside(CLIENT.namespace):
                sender = socket.socket()
            if congestion:
                sender.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, congestion.encode())
            sender.connect((SERVER.address, port))
            used = sender.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0").decode()
            connection, _ = listener.accept()
            reader = threading.Thread(target=receive_all, args=(connection,), name="bulk-receiver")
            reader.start()
            dropped_before = queue_counters(SERVER.router_link)["dropped"]  # the qdisc counts from its start
            both_ends = {"sender": sender, "receiver": connection}  # samples named by end
            with sender, Sampler(both_ends) as sampler, QueueSampler(SERVER.router_link) as queue:
                started = time.monotonic()
                if pace is None:
                    sender.sendall(b"x" * size)
                else:
                    _paced(sender, size, *pace)
                sender.shutdown(socket.SHUT_WR)
                reader.join(60)
                seconds = time.monotonic() - started
                sender.recv(1)  # the server's FIN
    finally:
        listener.close()
    return {"views": {name: str(path) for name, path in paths.items()}, "received": received,
            "seconds": seconds, "congestion": used, "dropped": queue.samples[-1]["dropped"] - dropped_before, "tcp_info": sampler.samples,
            "queue": queue.samples,
            "captured": {side: {"packets": r.packets, "dropped": r.dropped} for side, r in recorded.items()}}


def _paced(sender: socket.socket, size: int, chunk: int, interval: float) -> None:
    """*size* bytes, *chunk* at a time, one chunk every *interval* seconds."""
    for start in range(0, size, chunk):
        sender.sendall(b"x" * min(chunk, size - start))
        time.sleep(interval)  # the application's own pace, not a wait for something
