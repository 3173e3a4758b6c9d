"""A chat across the lab's router, captured at both ends: proof that the network works.

The server listens in the server namespace; alice and bob connect from the client
namespace, through the router; alice's line reaches bob.  dumpcap records the
client's view (on ``c1``) and the server's (on ``s1``).  Given a *script*
(:mod:`tcpchatx.netlab.script`), the relay (:mod:`tcpchatx.netlab.relay`) forwards
instead of the router's kernel, and follows it.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import nullcontext

from ..protocol import Kind
from ..tcpinfo import Sampler
from .impair import bottleneck
from .namespaces import inside
from .play import captured, chat_across_router, views
from .queues import QueueSampler
from .relay import Relay
from .topology import CLIENT, SERVER


def through(script: dict | None):
    """The relay following *script*, or (None) the router's kernel forwarding as it is."""
    return Relay(script) if script is not None else nullcontext()


def chat_through_router(out_dir: str, script: dict | None = None) -> dict:
    """Play the chat; return the two capture paths, what bob received and, with a
    *script*, the relay's report."""
    paths = views(out_dir, "chat")
    with through(script) as relay, chat_across_router(paths) as (alice, bob):
        alice.send("hello across the router")
        heard = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
        alice.quit()
        bob.quit()
    return {"views": {name: str(path) for name, path in paths.items()}, "bob_heard": heard.text,
            "from": heard.nick, "relay": relay.final if relay else None}


BULK_PORT = 25001


def bulk_through_bottleneck(out_dir: str, rate: str | None = "4mbit", buffer_bytes: int = 30_000,
                            size: int = 1_000_000, script: dict | None = None) -> dict:
    """Send ``size`` bytes from the client to the server through a bottleneck on the
    router (tbf: ``rate``, a drop-tail queue of ``buffer_bytes``), captured at both
    ends; return the captures, the bytes received and how many the router dropped.

    A queue that small overflows while TCP's window grows: the router drops segments,
    and the capture shows the sender's retransmissions and the receiver's holes.
    Meanwhile the sender's TCP_INFO is sampled (:class:`tcpchatx.tcpinfo.Sampler`):
    its congestion window, threshold, RTT and retransmissions on the capture's clock;
    and so is the router's queue (:class:`tcpchatx.netlab.queues.QueueSampler`).
    ``rate=None`` leaves the link as fast as the router forwards; the transfer's
    ``seconds`` then measure the router (the relay's benchmark does so).
    """
    paths = views(out_dir, "bulk")
    if rate is not None:
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
        with through(script) as relay, captured(paths, BULK_PORT):
            reader = threading.Thread(target=receive_all, name="bulk-receiver")
            reader.start()
            with inside(CLIENT.namespace):
                sender = socket.create_connection((SERVER.address, BULK_PORT))
            # the kernel's view of the sender, and the router's queue, as it goes
            with sender, Sampler({"sender": sender}) as sampler, QueueSampler(SERVER.router_link) as queue:
                started = time.monotonic()
                sender.sendall(b"x" * size)
                sender.shutdown(socket.SHUT_WR)
                reader.join(60)
                seconds = time.monotonic() - started
                sender.recv(1)  # the server's FIN
    finally:
        listener.close()
    return {"views": {name: str(path) for name, path in paths.items()}, "received": received,
            "dropped": queue.samples[-1]["dropped"], "tcp_info": sampler.samples, "queue": queue.samples,
            "seconds": seconds, "relay": relay.final if relay else None}
