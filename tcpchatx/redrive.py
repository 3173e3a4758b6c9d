"""Re-drive a captured chat session: play it again against a live server, and compare.

    session = extract_session(analyze("captures/chat.pcapng"))
    with ChatServer("127.0.0.1", 0) as server:
        play_session(session, "127.0.0.1", server.port)

Theory of operation
-------------------
1. **Extract.**  From an analysis we keep only what the *clients* did: each chat
   connection in order of its SYN (a :class:`Participant`), and an ordered list of
   :class:`Event` s: a connection opens, a client sends a line (a nickname, a message,
   a command such as ``/msg`` or ``/nick``, exactly as it was typed), a client leaves.
   How it left (:data:`LEAVES`) is read from the TCP close: who sent the first FIN or
   RST, and whether the client had sent ``/quit``.  What the *server* did is the
   outcome we will compare: the connections' close kinds and the messages with the
   set of clients each one reached (:class:`MessageRecord`).
2. **Causal order, not timing.**  Events are sorted by the frame that carried them.
   Each event also records ``expect``: how many server lines each client had received
   in the original by the time the *next* event happened.  Playing, we do an event,
   then read from each client until it has received that many lines: after a join we
   have its welcome, after a message every other client has it, after a close the
   others have the "left" notice.  Nothing waits by sleeping, and the next client
   acts only once the previous action's effects were seen, as in the original.
3. **Compare.**  The new capture is analysed and extracted the same way;
   :func:`compare` lists what differs: connections, nicks, how each client left and
   its close kind, and the messages (sender, text, recipients).  Whether a close is
   ``four-way`` or ``three-way`` is a matter of timing (does the delayed ACK of the
   first FIN ride on the second FIN?), so those two count as the same unless
   ``exact=True``.

The module never reads packets itself: it uses the analysis' lines, connections and
messages (data flows one way: capture, packets, connections, annotations, outputs).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .analysis.labels import CloseKind
from .client import ChatClient, ConnectionClosed
from .tcp_flags import FIN, RST

#: How a client left, as far as the capture can tell.
LEAVES: dict[str, str] = {
    "quit": "sent /quit; the server closed first (its FIN came first)",
    "close": "the client closed first with a FIN (close())",
    "half-close": "the client sent its FIN and kept reading: the server sent data after it",
    "abort": "the client sent a RST (abort(), or close() with unread data)",
    "server-close": "the server closed first without a /quit (timeout, shutdown, dropped)",
    "open": "still open when the capture ended",
}

#: Close kinds that differ only by timing: whether the ACK of the first FIN waited
#: (Linux delays it ~40 ms) long enough to ride on the second FIN.
SAME_SHAPE = {CloseKind.THREE_WAY: "fin", CloseKind.FOUR_WAY: "fin"}


class RedriveError(RuntimeError):
    """The session could not be played: an effect never showed up, or nothing to play."""


# --------------------------------------------------------------------------- the session


@dataclass
class Participant:
    """One chat connection of the original capture."""

    conn: int  # its connection id in the analysis
    nick: str | None  # its last nickname
    leave: str  # a key of LEAVES
    close_kind: str  # a labels.CloseKind
    active_closer: str | None


@dataclass
class Event:
    """One thing a client did.  ``who`` indexes ``Session.participants``."""

    frame: int  # the frame that carried it in the original capture
    kind: str  # "open", "line" or "leave"
    who: int
    text: str | None = None  # the line, for kind "line"
    expect: list[int] = field(default_factory=list)  # server lines each participant has by then


@dataclass
class MessageRecord:
    """A chat message, private message or action, and who got it."""

    sender: str | None
    kind: str  # "chat", "private" or "action" (analysis.chat.MESSAGE_KINDS)
    text: str
    to: str | None  # private messages: the addressee
    recipients: list[str]  # sorted nicks of the clients it reached

    def key(self) -> tuple:
        return (self.sender, self.kind, self.text, self.to, tuple(self.recipients))

    def describe(self) -> str:
        target = f" to {self.to}" if self.to else ""
        reached = ", ".join(self.recipients) or "nobody"
        return f"{self.kind} from {self.sender}{target}: {self.text!r} -> {reached}"


@dataclass
class Session:
    """A chat session as data: who joined, who said what in which order, who left how."""

    source: str
    participants: list[Participant]
    events: list[Event]
    messages: list[MessageRecord]
    notes: list[str] = field(default_factory=list)  # what could not be extracted

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Session:
        return cls(
            source=data["source"],
            participants=[Participant(**p) for p in data["participants"]],
            events=[Event(**e) for e in data["events"]],
            messages=[MessageRecord(**m) for m in data["messages"]],
            notes=list(data.get("notes", [])),
        )

    def name(self, who: int) -> str:
        p = self.participants[who]
        return p.nick or f"connection {p.conn}"


# --------------------------------------------------------------------------- extracting


def _close_frames(analysis) -> dict[int, tuple[int | None, int | None, int | None]]:
    """For each connection: (first FIN/RST frame from the client, first from the server,
    first server data frame after the client's FIN or RST).  All connections at once."""
    p, t = analysis.packets, analysis.tracking
    tracked = t.conn >= 0
    closing = tracked & ((p.flags & (FIN | RST)) != 0)
    n = len(analysis.connections)
    client_close = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)

    def first_frame(mask) -> dict[int, int]:
        rows = np.flatnonzero(mask)  # in capture order, so the first of each conn comes first
        conns, first = np.unique(t.conn[rows], return_index=True)
        return dict(zip(conns.tolist(), p.frame[rows[first]].tolist(), strict=True))

    client = first_frame(closing & (t.direction == 0))
    server = first_frame(closing & (t.direction == 1))
    for conn, frame in client.items():
        client_close[conn] = frame
    late = tracked & (t.direction == 1) & (p.payload_len > 0)
    late[late] = p.frame[late] > client_close[t.conn[late]]
    data_after = first_frame(late)
    return {c: (client.get(c), server.get(c), data_after.get(c)) for c in range(n)}


def _leave(connection, sent_quit: bool, frames) -> str:
    client_fin, server_fin, data_after = frames
    if connection.close_kind == CloseKind.OPEN or (client_fin is None and server_fin is None):
        return "open"
    if connection.active_closer == "responder":
        return "quit" if sent_quit else "server-close"
    if connection.close_kind == CloseKind.RESET:
        return "abort"
    if connection.active_closer == "both":  # simultaneous: a FIN from each side at once
        return "quit" if sent_quit else "close"
    return "half-close" if data_after is not None else "close"


def extract_session(analysis) -> Session:
    """Who joined, who said what in which order, who left how, and what got delivered."""
    server = analysis.chat.server
    notes: list[str] = []
    chat_conns = [c for c in analysis.connections
                  if c.server == server and c.close_kind not in (CloseKind.REFUSED, CloseKind.INCOMPLETE)]
    skipped = len(analysis.connections) - len(chat_conns)
    if skipped:
        notes.append(f"{skipped} connection(s) left out: refused, incomplete or not to the chat server")
    who_of_conn = {c.id: k for k, c in enumerate(chat_conns)}
    client_lines = [ln for ln in analysis.lines if ln.direction == 0 and ln.conn in who_of_conn]
    invalid = [ln for ln in client_lines if ln.text is None]
    if invalid:
        notes.append(f"{len(invalid)} invalid client line(s) (too long or not UTF-8) not replayed")
    quitters = {ln.conn for ln in client_lines if ln.kind == "command" and ln.command == "quit"}

    participants: list[Participant] = []
    events: list[tuple[int, int, int, Event]] = []  # (frame, order within frame, seq, event)
    close_frames = _close_frames(analysis)
    for c in chat_conns:
        who = who_of_conn[c.id]
        frames = close_frames[c.id]
        leave = _leave(c, c.id in quitters, frames)
        participants.append(Participant(c.id, analysis.chat.nick_of_conn.get(c.id), leave,
                                        c.close_kind, c.active_closer))
        events.append((c.first_frame, 0, len(events), Event(c.first_frame, "open", who)))
        if leave != "open":
            # The leave happens where the connection's first FIN or RST is (either side).
            first_close = min(f for f in frames[:2] if f is not None)
            events.append((first_close, 2, len(events), Event(first_close, "leave", who)))
    for ln in client_lines:
        if ln.text is not None:
            events.append((ln.frame, 1, len(events), Event(ln.frame, "line", who_of_conn[ln.conn], ln.text)))
    ordered = [e for *_, e in sorted(events, key=lambda item: item[:3])]

    # expect: the server lines each client had received before the next event's frame.
    server_lines = sorted((ln.frame, who_of_conn[ln.conn]) for ln in analysis.lines
                          if ln.direction == 1 and ln.conn in who_of_conn)
    counts = [0] * len(participants)
    k = 0
    for n, event in enumerate(ordered):
        until = ordered[n + 1].frame if n + 1 < len(ordered) else None
        while k < len(server_lines) and (until is None or server_lines[k][0] < until):
            counts[server_lines[k][1]] += 1
            k += 1
        event.expect = list(counts)

    messages = [
        MessageRecord(m.sender, m.kind, m.text, m.to,
                      sorted(d.recipient or f"connection {d.conn}" for d in m.deliveries))
        for m in analysis.messages if m.conn in who_of_conn
    ]
    return Session(str(analysis.path), participants, ordered, messages, notes)


# --------------------------------------------------------------------------- playing


def _drain(client: ChatClient) -> int:
    """Read whatever bytes are already waiting, so close() sends FIN, not RST."""
    got = 0
    while True:
        try:
            data = client.sock.recv(65536, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return got
        except OSError:
            return got
        if not data:
            return got
        got += len(data)


def play_session(session: Session, host: str, port: int, *, timeout: float = 5.0) -> dict[int, ChatClient]:
    """Play every event against the server at (host, port), in order.

    After each event, read until every client still reading has received the lines it
    had in the original at that point (``Event.expect``).  Returns the clients that
    stay open (leave ``open``), by participant index; the caller closes them.
    Raises :class:`RedriveError` if an expected line does not arrive within ``timeout``.
    """
    clients: dict[int, ChatClient] = {}
    received = [0] * len(session.participants)
    reading: set[int] = set()  # clients whose socket we may still read

    def observe(event: Event) -> None:
        deadline = time.monotonic() + timeout
        for who in sorted(reading):
            while received[who] < event.expect[who]:
                try:
                    clients[who].receive(max(0.0, deadline - time.monotonic()))
                except ConnectionClosed:
                    reading.discard(who)
                    break
                except TimeoutError:
                    raise RedriveError(
                        f"after {describe_event(session, event)}: {session.name(who)} received "
                        f"{received[who]} of the {event.expect[who]} server line(s) it had in the "
                        f"original within {timeout:g} s"
                    ) from None
                received[who] += 1

    def read_to_end(who: int) -> None:
        received[who] += len(clients[who].wait_closed(timeout))

    try:
        for event in session.events:
            who = event.who
            if event.kind == "open":
                clients[who] = ChatClient.open(host, port, timeout=timeout)
                reading.add(who)
            elif event.kind == "line":
                clients[who].send(event.text or "")
            elif event.kind == "leave":
                leave = session.participants[who].leave
                client = clients[who]
                if leave in ("quit", "server-close"):  # the server closes first: wait for its FIN
                    read_to_end(who)
                    client.close()
                elif leave == "half-close":
                    client.half_close()
                    read_to_end(who)
                    client.close()
                elif leave == "abort":
                    client.abort()
                else:  # "close"
                    _drain(client)
                    client.close()
                reading.discard(who)
            observe(event)
    except BaseException:
        for client in clients.values():
            if client.sock.fileno() != -1:
                client.abort()
        raise
    return {who: c for who, c in clients.items()
            if session.participants[who].leave == "open" and c.sock.fileno() != -1}


def describe_event(session: Session, event: Event) -> str:
    name = session.name(event.who)
    if event.kind == "open":
        return f"frame {event.frame}: {name} connects"
    if event.kind == "line":
        return f"frame {event.frame}: {name} sends {event.text!r}"
    return f"frame {event.frame}: {name} leaves ({session.participants[event.who].leave})"


# --------------------------------------------------------------------------- comparing


def _shape(kind: str, exact: bool) -> str:
    return kind if exact else SAME_SHAPE.get(kind, kind)


def compare(original: Session, new: Session, *, exact: bool = False) -> list[str]:
    """The differences between two sessions, as sentences; [] if they match.

    Compared: the number of connections, the nicks (in connection order), how each
    client left and its close kind, and the messages (sender, kind, text, addressee,
    recipients) in order.
    """
    diffs: list[str] = []
    a, b = original.participants, new.participants
    if len(a) != len(b):
        diffs.append(f"connections: {len(a)} in the original, {len(b)} in the re-drive")
    for k, (p, q) in enumerate(zip(a, b)):
        if p.nick != q.nick:
            diffs.append(f"connection #{k + 1}: nick {p.nick!r} in the original, {q.nick!r} in the re-drive")
        name = p.nick or f"connection #{k + 1}"
        if p.leave != q.leave:
            diffs.append(f"{name}: left by {p.leave} in the original, by {q.leave} in the re-drive")
        if _shape(p.close_kind, exact) != _shape(q.close_kind, exact):
            diffs.append(f"{name}: close kind {p.close_kind} in the original, {q.close_kind} in the re-drive")
    old, fresh = Counter(m.key() for m in original.messages), Counter(m.key() for m in new.messages)
    by_key = {m.key(): m for m in original.messages + new.messages}
    for key, n in (old - fresh).items():
        diffs.append(f"message missing from the re-drive{f' ({n}x)' if n > 1 else ''}: {by_key[key].describe()}")
    for key, n in (fresh - old).items():
        diffs.append(f"message only in the re-drive{f' ({n}x)' if n > 1 else ''}: {by_key[key].describe()}")
    if old == fresh and [m.key() for m in original.messages] != [m.key() for m in new.messages]:
        diffs.append("the same messages arrived in a different order")
    return diffs


def format_result(original: Session, new: Session, diffs: list[str]) -> str:
    """One line if the re-drive reproduced the session, else one line per difference."""
    closes = ", ".join(f"{p.nick or p.conn}: {q.close_kind} ({q.leave})"
                       for p, q in zip(original.participants, new.participants))
    if not diffs:
        text = (f"Re-drive reproduced the session: {len(new.participants)} connections, "
                f"{len(new.messages)} messages, close kinds {closes or 'none'}")
        shapes = [f"{p.nick}: {p.close_kind} in the original, {q.close_kind} now"
                  for p, q in zip(original.participants, new.participants) if p.close_kind != q.close_kind]
        if shapes:
            text += ("\n  (timing, not a difference: " + "; ".join(shapes) +
                     " - whether the ACK of the first FIN rides on the second FIN)")
        return text
    return "\n".join([f"Re-drive differs from the original in {len(diffs)} way(s):"] +
                     [f"  - {d}" for d in diffs])


# --------------------------------------------------------------------------- all of it


@dataclass
class RedriveResult:
    original: Session
    new: Session
    differences: list[str]
    path: Path  # the new capture


def _wait_settled(server, port: int, keep_open: set[tuple[str, int]], timeout: float) -> None:
    """Wait until the server has let every closed client go and their closes are on the wire.

    Every socket on ``port`` except the listener and the clients we keep open must be
    in TIME_WAIT, CLOSE or gone (Linux: /proc/net/tcp); elsewhere only the server's
    own count of clients is watched.
    """
    from .sockstate import sample_once

    deadline = time.monotonic() + timeout

    def settled() -> bool:
        if server.client_count() > len(keep_open):
            return False
        try:
            states = sample_once([port])
        except NotImplementedError:
            return True
        for key, state in states.items():
            if state in ("LISTEN", "TIME_WAIT", "CLOSE"):
                continue
            if key.local in keep_open or key.remote in keep_open:
                continue
            return False
        return True

    while not settled():
        if time.monotonic() > deadline:
            raise RedriveError(f"the re-driven connections did not finish closing within {timeout:g} s")
        time.sleep(0.002)  # polling a condition, with a deadline


def redrive(capture: str | os.PathLike, out: str | os.PathLike, *, backend: str = "auto",
            host: str = "127.0.0.1", timeout: float = 5.0, exact: bool = False,
            analysis=None) -> RedriveResult:
    """Extract the session of ``capture``, play it against a fresh server while capturing
    into ``out``, analyse the new capture and compare."""
    from .analysis import analyze
    from .capture import LiveCapture
    from .server import ChatServer

    original_analysis = analysis if analysis is not None else analyze(capture)
    original = extract_session(original_analysis)
    if not original.participants:
        raise RedriveError(f"{capture}: no chat connection to re-drive")
    with ChatServer(host, 0) as server:
        live = LiveCapture(server.port, out, backend=backend).start()
        left_open: dict[int, ChatClient] = {}
        try:
            left_open = play_session(original, host, server.port, timeout=timeout)
            _wait_settled(server, server.port, {c.local_address for c in left_open.values()}, timeout)
        finally:
            result = live.stop()
            for client in left_open.values():
                client.close()
    new = extract_session(analyze(result.path))
    return RedriveResult(original, new, compare(original, new, exact=exact), result.path)


def default_out(capture: str | os.PathLike) -> str:
    """Where the re-drive's capture goes by default: out/redrive/NAME.redrive.pcapng."""
    stem = Path(capture).name.split(".")[0] or "capture"
    return os.path.join("out", "redrive", f"{stem}.redrive.pcapng")


def session_json(session: Session) -> str:
    return json.dumps(session.to_json(), indent=2)
