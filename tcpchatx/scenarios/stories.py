"""The stories themselves: each function plays one scene against a running ChatServer.

A story gets a :class:`Stage` (the server, its address, the :class:`~.staging.Gates`
and a ``connect`` that remembers every client for the clean-up) plus its own
parameters, and returns a small dict of what it did.  Each docstring says how the
scene is staged so that its TCP shape cannot vary; "we wait" always means a poll
with a deadline on something the kernel or the server reports, never a sleep.
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client import ChatClient
from ..protocol import Kind, ServerLine, notice_line, parse_joined
from ..server import ChatServer
from .staging import (
    DEFAULT_TIMEOUT,
    Address,
    Gates,
    StagingError,
    accept_fins_again,
    drop_incoming_fins,
    tcp_counter,
    wait_acknowledged,
    wait_event,
    wait_tcp_state,
)


@dataclass
class Stage:
    """What a story plays with.  ``server`` is None only for the refused connection."""

    host: str
    port: int
    server: ChatServer | None
    gates: Gates
    clients: list[ChatClient] = field(default_factory=list)
    addresses: list[Address] = field(default_factory=list)  # every client end, in order
    nicks: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the staging went, for the reader

    @property
    def server_address(self) -> Address:
        return (self.host, self.port)

    def connect(self, nick: str, *, nagle: bool = True) -> ChatClient:
        client = ChatClient.connect(self.host, self.port, nick, nodelay=not nagle, timeout=DEFAULT_TIMEOUT)
        self.clients.append(client)
        self.addresses.append(client.local_address)
        self.nicks.append(nick)
        return client

    def wait_state(self, local: Address, remote: Address, *states: str | None,
                   cancelled: threading.Event | None = None) -> None:
        wait_tcp_state(local, remote, states, cancelled=cancelled, notes=self.notes)

    def wait_acknowledged(self, local: Address, remote: Address,
                          cancelled: threading.Event | None = None) -> None:
        wait_acknowledged(local, remote, cancelled=cancelled, notes=self.notes)

    def server_fin_alone(self, client: ChatClient) -> None:
        """Gate: the server sends its FIN to ``client`` only once all its data is acknowledged.

        Otherwise the FIN would leave while the client still delays the ACK of the
        last line, two segments unacknowledged, and Linux's tail loss probe would
        retransmit the FIN a few milliseconds later: a retransmission that has
        nothing to do with the story.  (A lone FIN waits 200 ms before a probe.)
        """
        me, client_id = client.local_address, self.client_id(client)
        self.gates.hold(f"server's FIN to {me[0]}:{me[1]} waits until its data is acknowledged",
                        lambda e: e.kind == "closing" and e.client == client_id,
                        lambda cancelled: self.wait_acknowledged(self.server_address, me, cancelled))

    def quit_four_way(self, client: ChatClient) -> list[str]:
        """``/quit`` so that the server closes first, in four separate segments.

        The server answers with ``--- Bye`` and its FIN (sent alone, see
        :meth:`server_fin_alone`).  Our kernel delays the ACK of that FIN (~40 ms):
        closing at once would put our FIN in the same segment (a three-way close).
        So we wait until the server's socket is in FIN_WAIT2 - its FIN was
        acknowledged - and only then close.
        """
        me = client.local_address
        self.server_fin_alone(client)
        client.send("/quit")
        lines = client.wait_closed(DEFAULT_TIMEOUT)
        self.wait_state(self.server_address, me, "FIN_WAIT2")
        client.close()
        return [line.text for line in lines]

    def gone(self, client_id: int) -> None:
        """Wait until the server has seen this client leave (its ``left`` event)."""
        assert self.server is not None
        self.server.timeline.wait_for(lambda e: e.kind == "left" and e.client == client_id, DEFAULT_TIMEOUT)

    def client_id(self, client: ChatClient) -> int:
        """The server's id for this client (from its ``accepted`` event)."""
        assert self.server is not None
        me = client.local_address
        event = self.server.timeline.wait_for(
            lambda e: e.kind == "accepted" and tuple(e.peer or ()) == me, DEFAULT_TIMEOUT)
        assert event.client is not None
        return event.client


def _say_round(speaker: ChatClient, listeners: list[ChatClient], text: str) -> None:
    """``speaker`` says ``text``; return once every listener has received it."""
    speaker.send(text)
    for listener in listeners:
        listener.receive_until(lambda line: line.kind is Kind.CHAT and line.text == text, DEFAULT_TIMEOUT)


def _joined(nick: str) -> Callable[[ServerLine], bool]:
    """For ``receive_until``: the server's ``*** NICK joined (N online)``."""

    def announces(line: ServerLine) -> bool:
        if line.kind is not Kind.NOTICE:
            return False
        joined = parse_joined(notice_line(line.text))  # a parser reads the whole line
        return joined is not None and joined[0] == nick

    return announces


# --------------------------------------------------------------------------- the stories


def chat(stage: Stage, clients: int = 3, messages: int = 2, nagle: bool = True) -> dict:
    """N clients join; each says ``messages`` lines; everyone else receives each one.

    Each line is sent only once every other client has received the previous one,
    so the capture reads like a conversation.  Then each client quits, one after the
    other, and the server closes first (see :meth:`Stage.quit_four_way`).
    """
    people, nicks, said = join_and_chat(stage, clients, messages, nagle)
    for person in people:
        stage.quit_four_way(person)
    return {"said": said}


def join_and_chat(stage: Stage, clients: int, messages: int, nagle: bool):
    """The conversation of :func:`chat`: returns the clients, their nicks, who said what."""
    if clients < 2:
        raise ValueError("a chat needs at least 2 clients")
    nicks = [f"user{i + 1}" for i in range(clients)]
    nicks[:3] = ["alice", "bob", "carol"][: min(3, clients)]
    people = []
    for nick in nicks:
        person = stage.connect(nick, nagle=nagle)
        for earlier in people:  # everyone already in sees "NICK joined"
            earlier.receive_until(_joined(nick))
        people.append(person)
    said = []
    for round_ in range(messages):
        for speaker, nick in zip(people, nicks):
            text = f"message {round_ + 1} from {nick}"
            _say_round(speaker, [p for p in people if p is not speaker], text)
            said.append({"sender": nick, "text": text})
    return people, nicks, said


def private(stage: Stage) -> dict:
    """alice sends bob a private ``/msg`` beside a broadcast to everyone.

    The private line (``*alice* psst``) goes to bob alone: one copy out.  The
    broadcast goes to bob and carol: two copies out (the fan-out).
    """
    alice, bob, carol = (stage.connect(nick) for nick in ("alice", "bob", "carol"))
    alice.receive_until(_joined("carol"))
    bob.receive_until(_joined("carol"))
    alice.send("/msg bob psst, just between us")
    bob.receive_until(lambda line: line.kind is Kind.PRIVATE)
    _say_round(alice, [bob, carol], "hello everyone")
    for person in (alice, bob, carol):
        stage.quit_four_way(person)
    return {"private": {"sender": "alice", "to": "bob", "text": "psst, just between us"},
            "broadcast": {"sender": "alice", "text": "hello everyone"}}


def quit_(stage: Stage) -> dict:
    """alice types ``/quit``: the server says Bye and closes first (the active closer).

    Four separate segments: server FIN, alice's ACK, alice's FIN, the server's ACK.
    Staged by :meth:`Stage.quit_four_way`: alice closes only once the server's FIN
    is acknowledged, so her ACK cannot ride on her FIN.
    """
    alice = stage.connect("alice")
    return {"lines": stage.quit_four_way(alice)}


def client_close(stage: Stage) -> dict:
    """alice closes first with ``close()``: a four-way close, alice the active closer.

    The server answers EOF with its own FIN within microseconds, faster than its
    kernel's delayed ACK (~40 ms): left alone, that FIN would carry the ACK (see the
    ``three-way`` story).  So a gate holds the server at its ``left`` event - just
    before it closes - until alice's socket is in FIN_WAIT2, i.e. her FIN has been
    acknowledged by a segment of its own.
    """
    alice = stage.connect("alice")
    me = alice.local_address
    stage.gates.hold("server waits until alice's FIN is acknowledged",
                     lambda e: e.kind == "left" and tuple(e.peer or ()) == me,
                     lambda cancelled: stage.wait_state(me, stage.server_address, "FIN_WAIT2",
                                                        cancelled=cancelled))
    alice_id = stage.client_id(alice)
    alice.close()
    stage.gone(alice_id)
    return {}


def three_way(stage: Stage) -> dict:
    """alice closes first; the server's FIN carries the ACK of hers: three segments.

    Linux switches a socket that receives a FIN into delayed-ACK mode, so the
    server's kernel waits ~40 ms (TCP_DELACK_MIN) before acknowledging alice's FIN.
    Our server reads the EOF and calls ``shutdown(SHUT_WR)`` at once, so its FIN
    leaves first and carries the ACK (FIN+ACK); then alice ACKs it.

    This is the one story staged by a margin rather than by a wait: the server must
    react within the delayed-ACK time.  It takes 0.3 ms typically; in 50 runs with
    two CPU-burning processes on a 2-core machine, 16 ms at worst.  So that a stalled
    machine cannot pass off a four-way close as this story, alice counts the segments
    that arrive after her FIN (``TCP_INFO``): the first one must have been the
    server's FIN, otherwise the story raises StagingError (the capture is kept).
    """
    alice = stage.connect("alice")
    alice_id = stage.client_id(alice)
    before = tcp_counter(alice.sock, "segs_in")
    alice.half_close()  # our FIN; the same on the wire as close(), but we may still ask TCP_INFO
    alice.wait_closed(DEFAULT_TIMEOUT)
    after = tcp_counter(alice.sock, "segs_in")
    alice.close()
    stage.gone(alice_id)
    if before is None or after is None:
        stage.notes.append("no TCP_INFO here: could not check that the server's FIN carried the ACK")
    elif after - before != 1:
        raise StagingError(f"{after - before} segments came back after alice's FIN instead of one FIN+ACK: "
                           "the server took longer than its kernel's delayed ACK (a busy machine?); "
                           "this capture shows a four-way close. Run the story again.")
    return {}


def simultaneous(stage: Stage) -> dict:
    """Both sides send a FIN before either has received the other's.

    On loopback a segment arrives within microseconds, so two FINs cross only if
    something holds one back - on a real network, the time in flight.  We play the
    network: a socket filter on alice's socket makes her kernel ignore segments
    carrying a FIN (:func:`~.staging.drop_incoming_fins`).  alice sends ``/quit``;
    the server sends Bye and its FIN (captured, but unseen by alice's TCP); once the
    server's socket is in FIN_WAIT1 alice sends her own FIN, which cannot
    acknowledge the server's.  The FINs have crossed: the server goes to CLOSING.
    We remove the filter; the server retransmits its FIN (~200 ms later, after its
    retransmission timeout), alice acknowledges it, and *both* ends hold TIME_WAIT.
    """
    alice = stage.connect("alice")
    me = alice.local_address
    alice_id = stage.client_id(alice)
    assert stage.server is not None
    stage.server_fin_alone(alice)
    drop_incoming_fins(alice.sock)
    try:
        alice.send("/quit")
        stage.server.timeline.wait_for(lambda e: e.kind == "closing" and e.client == alice_id,
                                       DEFAULT_TIMEOUT)
        stage.wait_state(stage.server_address, me, "FIN_WAIT1")  # its FIN is on the wire
        alice.half_close()  # our FIN, not acknowledging the server's
    finally:
        accept_fins_again(alice.sock)
    lines = alice.wait_closed(DEFAULT_TIMEOUT)  # the retransmitted FIN arrives
    alice.close()
    stage.wait_state(me, stage.server_address, "TIME_WAIT", None)
    return {"lines": [line.text for line in lines]}


def abort(stage: Stage) -> dict:
    """alice aborts: ``SO_LINGER`` 0 then ``close()`` sends RST instead of FIN.

    She first reads everything the server sent (an ``/online`` round trip), so the
    RST comes from the abort alone (compare ``unread-data``).
    """
    alice = stage.connect("alice")
    alice_id = stage.client_id(alice)
    alice.send("/online")
    alice.receive_until(lambda line: line.kind is Kind.REPLY)
    unread = unread_bytes(alice.sock)
    alice.abort()
    stage.gone(alice_id)
    return {"close": "setsockopt(SO_LINGER, on, 0 s), then close()", "unread_at_close": unread}


def unread_data(stage: Stage) -> dict:
    """alice closes normally, but a server line sits unread in her receive buffer.

    The kernel cannot deliver those bytes any more, so instead of a FIN it sends a
    RST (RFC 2525, "data lost").  Staged by waiting until the reply to her
    ``/online`` is in the buffer (the socket is readable) before ``close()``.
    """
    alice = stage.connect("alice")
    alice_id = stage.client_id(alice)
    alice.send("/online")
    readable, _, _ = select.select([alice.sock], [], [], DEFAULT_TIMEOUT)
    if not readable:
        raise StagingError("the /online reply did not arrive")
    unread = unread_bytes(alice.sock)
    alice.close()  # the reply is still unread: RST
    stage.gone(alice_id)
    return {"close": "close()", "unread_at_close": unread}


def unread_bytes(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive buffer that the program has not read
    (``FIONREAD``): what makes a plain ``close()`` send a RST.  The wire cannot show it."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]


def half_close(stage: Stage) -> dict:
    """alice sends her FIN with ``shutdown(SHUT_WR)`` and keeps reading.

    The server still sends her the answer to a question she asked just before her
    FIN, then closes: data flows in one direction after the other is closed.
    Staged with two gates: the server answers alice's ``/online`` only once her FIN
    has been acknowledged (her socket in FIN_WAIT2), and sends its own FIN only once
    she has read that answer.
    """
    alice = stage.connect("alice")
    me = alice.local_address
    alice_id = stage.client_id(alice)
    answer_read = threading.Event()
    stage.gates.hold("server answers only after alice's FIN is acknowledged",
                     lambda e: e.kind == "line-received" and e.client == alice_id and e.detail == "/online",
                     lambda cancelled: stage.wait_state(me, stage.server_address, "FIN_WAIT2",
                                                        cancelled=cancelled))
    stage.gates.hold("server closes only after alice has read its answer",
                     lambda e: e.kind == "left" and e.client == alice_id,
                     wait_event(answer_read, "alice to read the answer"))
    alice.send("/online")
    stage.wait_acknowledged(me, stage.server_address)  # so our FIN is our only unacknowledged segment
    alice.half_close()
    answer = alice.receive_until(lambda line: line.kind is Kind.REPLY)[-1]
    answer_read.set()
    rest = alice.wait_closed(DEFAULT_TIMEOUT)
    alice.close()
    return {"after_fin": [answer.text] + [line.text for line in rest]}


def refused(stage: Stage) -> dict:
    """Connect to a port nobody listens on: SYN, then the kernel's RST+ACK."""
    with _bound_elsewhere(stage.host, stage.port) as sock:  # so we know our own address before connecting
        stage.addresses.append(sock.getsockname()[:2])
        stage.nicks.append(None)
        sock.settimeout(DEFAULT_TIMEOUT)
        try:
            sock.connect(stage.server_address)
        except ConnectionRefusedError:
            return {"refused": True}
    raise StagingError(f"something is listening on {stage.host}:{stage.port}; the connection was accepted")


def _bound_elsewhere(host: str, port: int) -> socket.socket:
    """A socket bound to a port of the OS's choosing, never ``port`` itself: the port nobody
    listens on was free a moment ago, so the OS may hand it out again, and a socket that
    connects from a port to that same port connects to itself (TCP's simultaneous open)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _bound(family, host)
    if sock.getsockname()[1] != port:
        return sock
    with sock:  # held while the next one binds, so that it gets another port
        return _bound(family, host)


def _bound(family: socket.AddressFamily, host: str) -> socket.socket:
    """A socket bound to ``host`` and a port of the OS's choosing (closed if that fails)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def nagle(stage: Stage, messages: int = 5) -> dict:
    """Back-to-back small lines with Nagle's algorithm on (alice) and off (bob).

    With ``TCP_NODELAY`` (bob) every ``send`` leaves at once: one segment per line.
    With Nagle (alice) a small segment waits while an earlier small one is
    unacknowledged, so her later lines gather into one segment.  On loopback the
    ACK usually returns before the next ``send``, and nothing would gather; so each
    client first asks ``/online`` three times.  Request and answer make the
    server's kernel treat the connection as interactive and delay its ACKs (~40 ms,
    Linux's "pingpong" mode, as for a terminal session).  Then alice's first line
    leaves alone and the others, sent in a tight loop within microseconds, wait for
    its ACK and leave together: 2 segments (in every run we measured).  The result
    holds the data segments each client sent for its burst (``TCP_INFO``); the story
    raises StagingError if Nagle gathered nothing.
    """
    if messages < 2:
        raise ValueError("the nagle story needs at least 2 messages")
    alice = stage.connect("alice", nagle=True)
    bob = stage.connect("bob", nagle=False)
    alice.receive_until(_joined("bob"))
    bursts = {}
    for speaker, listener, nick in ((alice, bob, "alice"), (bob, alice, "bob")):
        for _ in range(3):
            speaker.send("/online")
            speaker.receive_until(lambda line: line.kind is Kind.REPLY)
        texts = [f"{nick} {i + 1}" for i in range(messages)]
        before = tcp_counter(speaker.sock, "data_segs_out")
        for text in texts:  # a tight loop: no waiting between the sends
            speaker.send(text)
        for text in texts:
            listener.receive_until(lambda line, text=text: line.kind is Kind.CHAT and line.text == text)
        after = tcp_counter(speaker.sock, "data_segs_out")
        segments = None if before is None or after is None else after - before
        bursts[nick] = {"nagle": speaker is alice, "lines": texts, "segments": segments}
    if bursts["alice"]["segments"] == messages:
        raise StagingError(f"Nagle gathered nothing: alice's {messages} lines left in {messages} segments "
                           "(the server acknowledged each at once)")
    for person in (alice, bob):
        stage.quit_four_way(person)
    return {"bursts": bursts}
