"""The chat over a bad network: does every line still arrive, once, in order?

``clients`` clients in the client namespace each send ``messages`` lines across a
path that loses ``loss`` of the frames each way (seeded) and delays each by
``delay_ms``.  TCP's promise is that none of that shows: every client receives
every other client's lines exactly once and in the order each was sent.  And the
chat server must not mistake a slow network for a slow reader: no client may be cut
off as "too slow" (the server's queue limit, :class:`tcpchatx.server.ChatServer`'s
``queue_bytes``, is there for readers that stop, as in the ``zero_window`` story).

Each client sends at ``rate`` lines per second, under the room's flood limit (5 per
second sustained).  A stall of the network can still hand the server a client's
lines bunched in one ``recv``; flood control then holds the ones over its burst for
a moment (the server's timeline says how many), and nobody is warned or cut off.  The clients connect in parallel
(one thread each: a handshake costs a round trip), and each reads on its own thread
until it has every line it expects, or the deadline passes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ..client import ChatClient
from ..protocol import Kind
from ..server import ChatServer
from .namespaces import inside
from .play import PORT
from .relay import Relay
from .topology import CLIENT, SERVER


@dataclass
class Receiver:
    """One client, and the chat lines it received, in order: (sender, number)."""

    index: int
    client: ChatClient | None = None
    got: list[tuple[int, int]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # lines addressed to this client alone (!!!)
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


def _connect(receiver: Receiver, ready: threading.Barrier) -> None:
    with inside(CLIENT.namespace):  # this thread's sockets live in the client namespace
        receiver.client = ChatClient.connect(SERVER.address, PORT, f"c{receiver.index}", nodelay=True, timeout=30)
    ready.wait(60)


def _read(receiver: Receiver, expected: int, deadline: float) -> None:
    """Collect chat lines until *expected* of them came in, or *deadline*."""
    try:
        while len(receiver.got) < expected:
            line = receiver.client.receive(max(0.01, deadline - time.monotonic()))
            if line.kind is Kind.CHAT and line.text.startswith("m "):
                _, sender, number = line.text.split()
                receiver.got.append((int(sender), int(number)))
            elif line.kind is Kind.NOTICE:
                receiver.notices.append(line.text)
            elif line.kind is Kind.ERROR:
                receiver.errors.append(line.text)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the others go on
        receiver.error = f"{type(exc).__name__}: {exc}"
    finally:
        receiver.done.set()


def chat_over_a_bad_network(clients: int = 50, messages: int = 100, loss: float = 0.02, delay_ms: float = 100,
                            rate: float = 4.0, seed: int = 1, deadline_s: float = 120.0) -> dict:
    """Run the chat; return what each client received, checked (see :func:`verdict`)."""
    path = {"delay_ms": delay_ms, "loss": loss}
    script = {"to_server": {**path, "seed": seed}, "to_client": {**path, "seed": seed + 1}}
    expected = (clients - 1) * messages
    with inside(SERVER.namespace):
        server = ChatServer(SERVER.address, PORT).start()
    receivers = [Receiver(k) for k in range(clients)]
    try:
        with Relay(script) as relay:
            ready = threading.Barrier(clients + 1)
            connecting = [threading.Thread(target=_connect, args=(r, ready), daemon=True) for r in receivers]
            for thread in connecting:
                thread.start()
            ready.wait(120)  # every client is in the room
            for thread in connecting:
                thread.join()
            started = time.monotonic()
            deadline = started + deadline_s
            for receiver in receivers:
                threading.Thread(target=_read, args=(receiver, expected, deadline), daemon=True).start()
            for number in range(messages):  # each client's next line, then a pause: `rate` lines/s each
                for receiver in receivers:
                    receiver.client.send(f"m {receiver.index} {number}")
                time.sleep(1 / rate)  # the load's own schedule, not a wait for something
            for receiver in receivers:
                receiver.done.wait(max(0.0, deadline - time.monotonic()))
            took = time.monotonic() - started
            counts = relay.report()["counts"]
            held = [e for e in server.timeline_events() if e.kind == "held"]
            for receiver in receivers:
                receiver.client.close()
    finally:
        server.stop()
    return {"clients": clients, "messages": messages, "loss": loss, "delay_ms": delay_ms, "seconds": took,
            "relay_counts": counts, "held_lines": len(held),
            "most_held_at_once": max((int(e.detail.split()[0]) for e in held), default=0),
            **verdict(receivers, clients, messages)}


def verdict(receivers: list[Receiver], clients: int, messages: int) -> dict:
    """Exactly once, in per-sender order, nobody cut off: what failed, per client."""
    problems: dict[int, list[str]] = {}
    for r in receivers:
        found = []
        by_sender: dict[int, list[int]] = {}
        for sender, number in r.got:
            by_sender.setdefault(sender, []).append(number)
        for sender in range(clients):
            if sender == r.index:
                continue
            numbers = by_sender.get(sender, [])
            if numbers != list(range(messages)):
                missing = len(set(range(messages)) - set(numbers))
                twice = len(numbers) - len(set(numbers))
                found.append(f"from c{sender}: {missing} missing, {twice} twice, "
                             f"{'in' if numbers == sorted(numbers) else 'OUT OF'} order")
        cut_off = [text for text in r.notices if "too slow" in text]
        if cut_off:
            found.append(f"saw clients cut off: {cut_off[:3]}")
        if r.errors:
            found.append(f"was told: {r.errors[:3]}")
        if r.error:
            found.append(r.error)
        if found:
            problems[r.index] = found
    return {"delivered": sum(len(r.got) for r in receivers), "expected": clients * (clients - 1) * messages,
            "problems": {f"c{k}": v for k, v in problems.items()}}
