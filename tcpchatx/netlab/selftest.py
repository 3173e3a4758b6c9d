"""A chat across the lab's router, captured at both ends: proof that the network works.

The server listens in the server namespace; alice and bob connect from the client
namespace, through the router; alice's line reaches bob.  dumpcap records the
client's view (on ``c1``) and the server's (on ``s1``).
"""

from __future__ import annotations

import socket
import threading

from ..protocol import Kind
from ..tcpinfo import Sampler
from .impair import bottleneck
from .namespaces import inside
from .play import captured, chat_across_router, views
from .queues import QueueSampler
from .topology import CLIENT, SERVER


def chat_through_router(out_dir: str) -> dict:
    """Play the chat; return the two capture paths and what bob received."""
    paths = views(out_dir, "chat")
    with chat_across_router(paths) as (alice, bob):
        alice.send("hello across the router")
        heard = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
        alice.quit()
        bob.quit()
    return {"views": {name: str(path) for name, path in paths.items()}, "bob_heard": heard.text,
            "from": heard.nick}


BULK_PORT = 25001


def bulk_through_bottleneck(out_dir: str, rate: str = "4mbit", buffer_bytes: int = 30_000,
                            size: int = 1_000_000) -> dict:
    """Send ``size`` bytes from the client to the server through a bottleneck on the
    router (tbf: ``rate``, a drop-tail queue of ``buffer_bytes``), captured at both
    ends; return the captures, the bytes received and how many the router dropped.

    A queue that small overflows while TCP's window grows: the router drops segments,
    and the capture shows the sender's retransmissions and the receiver's holes.
    Meanwhile the sender's TCP_INFO is sampled (:class:`tcpchatx.tcpinfo.Sampler`):
    its congestion window, threshold, RTT and retransmissions on the capture's clock;
    and so is the router's queue (:class:`tcpchatx.netlab.queues.QueueSampler`).
    """
    paths = views(out_dir, "bulk")
    bottleneck(towards=SERVER, rate=rate, buffer_bytes=buffer_bytes)
    received: list[int] = []
    with inside(SERVER.namespace):
        listener = socket.create_server((SERVER.address, BULK_PORT))

    def receive_all() -> None:
        connection, _ = listener.accept()
        with connection:
            total = 0
            while chunk := connection.recv(1 << 16):
                total += len(chunk)
            received.append(total)

    try:
        with captured(paths, BULK_PORT):
            reader = threading.Thread(target=receive_all, name="bulk-receiver")
            reader.start()
            with inside(CLIENT.namespace):
                sender = socket.create_connection((SERVER.address, BULK_PORT))
            # the kernel's view of the sender, and the router's queue, as it goes
            with sender, Sampler({"sender": sender}) as sampler, QueueSampler(SERVER.router_link) as queue:
                sender.sendall(b"x" * size)
                sender.shutdown(socket.SHUT_WR)
                reader.join(60)
                sender.recv(1)  # the server's FIN
    finally:
        listener.close()
    return {"views": {name: str(path) for name, path in paths.items()}, "received": received,
            "dropped": queue.samples[-1]["dropped"], "tcp_info": sampler.samples, "queue": queue.samples}
