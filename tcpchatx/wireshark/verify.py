"""Check a capture against what the README promises, using Wireshark's own decoding.

    tcpchatx verify captures/chat.pcapng

Theory of operation
-------------------
tshark reads the capture once with the Lua dissector (:func:`.dissector.dissect`):
we get every frame's TCP header and every chat line the dissector decoded.  Then
each claim is one function that looks at those facts and returns a :class:`Check`:

* **successful 3-way handshake**: per TCP stream, a SYN (the client's ISN), a
  SYN-ACK whose ack is ISN + 1 (the SYN consumed one sequence number), and an ACK
  whose seq is ISN + 1 and whose ack is the server's ISN + 1.
* **correct broadcast**: every chat message a client sent (kind ``message``)
  reaches every *other* client in the room as ``<nick> text`` (kind ``chat``),
  exactly once, after it was sent; never back to its sender.
* **proper teardown**: every stream that closed did so with both FINs
  acknowledged (a FIN consumes one sequence number, so its ACK is FIN seq + len + 1),
  or with a RST.  The shape is named as the analysis names it (``labels.CLOSE_KINDS``):
  four-way, three-way (FIN+ACK piggybacked), simultaneous, reset.
* **agrees with tcpchatx.analysis**: our own pure-Python reader finds the same chat
  lines, messages, deliveries and close shapes.  Two independent decoders agreeing
  is the best evidence that both are right.

Nothing here knows which side is the server except through the dissector's
``tcpchatx.direction`` and the SYN (the originator is the client).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from tcpchatx import protocol as proto
from tcpchatx.analysis.labels import CloseKind
from tcpchatx.tcp_flags import ACK, FIN, RST, SYN

from .dissector import DissectedLine, Dissection, DissectorError, Segment, dissect

SERVER_TO_CLIENT, CLIENT_TO_SERVER = "server->client", "client->server"
MAX_DETAILS = 12  # detail lines printed per check before "... and N more"


@dataclass(frozen=True)
class Check:
    """One claim about the capture: did it hold, why, and in which packets."""

    name: str
    status: str  # "pass", "fail", or "skip" (could not be checked)
    explanation: str
    frames: tuple[int, ...] = ()
    details: tuple[str, ...] = ()  # one line per stream or message, for the curious

    @property
    def passed(self) -> bool:
        return self.status != "fail"


def _seq_after(a: int, b: int) -> bool:
    """Sequence number ``a`` >= ``b``, in 32-bit wrap-around arithmetic (RFC 1982)."""
    return (a - b) % (1 << 32) < (1 << 31)


def _plus(a: int, n: int) -> int:
    return (a + n) % (1 << 32)


def _frames_text(frames: list[int] | tuple[int, ...]) -> str:
    return ", ".join(str(f) for f in frames)


# --------------------------------------------------------------------------- handshake


@dataclass
class Handshake:
    stream: int
    ok: bool
    note: str
    frames: list[int] = field(default_factory=list)
    client_port: int | None = None  # the originator's port, once a SYN is seen


def handshake_of(stream: int, segments: list[Segment]) -> Handshake:
    """Find and check one stream's SYN, SYN-ACK and ACK."""
    syn = next((s for s in segments if s.flags & (SYN | ACK) == SYN), None)
    if syn is None:
        return Handshake(stream, False, "no SYN: the capture began after this connection opened")
    isn = syn.seq
    reply = next((s for s in segments if s.frame > syn.frame and s.src_port == syn.dst_port
                  and s.flags & (SYN | RST)), None)
    if reply is None:
        return Handshake(stream, False, f"SYN in frame {syn.frame} was never answered",
                         [syn.frame], syn.src_port)
    if reply.flags & RST:
        return Handshake(stream, False, f"SYN in frame {syn.frame} was refused with a RST "
                         f"(frame {reply.frame}): nobody listening", [syn.frame, reply.frame], syn.src_port)
    frames = [syn.frame, reply.frame]
    if not reply.flags & ACK or reply.ack != _plus(isn, 1):
        return Handshake(stream, False, f"SYN-ACK in frame {reply.frame} acknowledges {reply.ack}, "
                         f"not the client's ISN + 1 = {_plus(isn, 1)}", frames, syn.src_port)
    server_isn = reply.seq
    last = next((s for s in segments if s.frame > reply.frame and s.src_port == syn.src_port
                 and s.flags & ACK and not s.flags & (SYN | RST)), None)
    if last is None:
        return Handshake(stream, False, f"SYN-ACK in frame {reply.frame} was never acknowledged",
                         frames, syn.src_port)
    frames.append(last.frame)
    if last.seq != _plus(isn, 1) or last.ack != _plus(server_isn, 1):
        return Handshake(stream, False, f"ACK in frame {last.frame} has seq {last.seq}, ack {last.ack}; "
                         f"expected seq = client ISN + 1 = {_plus(isn, 1)}, "
                         f"ack = server ISN + 1 = {_plus(server_isn, 1)}", frames, syn.src_port)
    return Handshake(stream, True, f"frames {_frames_text(frames)}: SYN (ISN {isn}), SYN-ACK "
                     f"(ISN {server_isn}, ack = {isn} + 1), ACK (seq = {isn} + 1, ack = {server_isn} + 1)",
                     frames, syn.src_port)


def check_handshakes(d: Dissection) -> Check:
    by_stream = _segments_by_stream(d)
    results = [handshake_of(stream, segs) for stream, segs in sorted(by_stream.items())]
    name = "successful 3-way handshake"
    if not results:
        return Check(name, "skip", "no TCP connections in the capture")
    good = [r for r in results if r.ok]
    frames = tuple(f for r in results for f in r.frames)
    details = tuple(f"stream {r.stream}: {'ok' if r.ok else 'FAIL'}: {r.note}" for r in results)
    if len(good) == len(results):
        return Check(name, "pass", f"{len(results)} of {len(results)} connections opened with SYN, "
                     "SYN-ACK (ack = client ISN + 1), ACK (ack = server ISN + 1)", frames, details)
    return Check(name, "fail", f"{len(results) - len(good)} of {len(results)} connections did not "
                 "complete a correct 3-way handshake", frames,
                 tuple(line for line in details if "FAIL" in line))


# --------------------------------------------------------------------------- teardown


@dataclass
class Teardown:
    stream: int
    shape: CloseKind  # named as the analysis names it
    ok: bool
    note: str
    frames: list[int] = field(default_factory=list)


def teardown_of(stream: int, segments: list[Segment], client_port: int | None) -> Teardown:
    """Name how one stream closed, and check that every FIN was acknowledged."""

    def who(segment: Segment) -> str:
        if client_port is None:
            return f"port {segment.src_port}"
        return "client" if segment.src_port == client_port else "server"

    established = any(s.flags & (SYN | ACK) == (SYN | ACK) for s in segments)
    rst = next((s for s in segments if s.flags & RST), None)
    if rst is not None and not established:
        return Teardown(stream, CloseKind.REFUSED, True, f"refused (RST in frame {rst.frame}): never opened",
                        [rst.frame])
    if rst is not None:
        return Teardown(stream, CloseKind.RESET, True, f"reset: the {who(rst)} sent a RST in frame {rst.frame}",
                        [rst.frame])
    # The first FIN from each side (a retransmission has the same sequence number).
    fins: list[Segment] = []
    for s in segments:
        if s.flags & FIN and all(f.src_port != s.src_port for f in fins):
            fins.append(s)
    if not fins:
        return Teardown(stream, CloseKind.OPEN, True, "still open when the capture ended (no FIN, no RST)")
    problems: list[str] = []
    acks: list[Segment | None] = []
    for fin in fins:
        wanted = _plus(fin.seq, fin.length + 1)  # the FIN itself consumes one sequence number
        ack = next((s for s in segments if s.frame > fin.frame and s.src_port != fin.src_port
                    and s.flags & ACK and _seq_after(s.ack, wanted)), None)
        acks.append(ack)
        if ack is None:
            problems.append(f"the {who(fin)}'s FIN (frame {fin.frame}) was never acknowledged "
                            f"(its ACK must be seq + len + 1 = {wanted})")
    frames = sorted({f.frame for f in fins} | {a.frame for a in acks if a is not None})
    if len(fins) == 1:
        problems.append(f"only the {who(fins[0])} sent a FIN (frame {fins[0].frame}); "
                        "the other side never sent its own")
        return Teardown(stream, CloseKind.HALF_CLOSED, False, "; ".join(problems), frames)
    first, second = fins
    first_end = _plus(first.seq, first.length + 1)
    if not (second.flags & ACK and _seq_after(second.ack, first_end)):
        shape, how = CloseKind.SIMULTANEOUS, "both FINs crossed (simultaneous close)"
    elif acks[0] is not None and acks[0].frame < second.frame:
        shape, how = CloseKind.FOUR_WAY, (f"FIN ({who(first)}, frame {first.frame}), ACK (frame {acks[0].frame}), "
                                  f"FIN ({who(second)}, frame {second.frame})")
    else:
        shape, how = CloseKind.THREE_WAY, (f"FIN ({who(first)}, frame {first.frame}), FIN+ACK "
                                   f"({who(second)}, frame {second.frame})")
    if problems:
        return Teardown(stream, shape, False, "; ".join(problems), frames)
    last = acks[1]
    assert last is not None
    return Teardown(stream, shape, True, f"{shape}: {how}, last ACK (frame {last.frame}); "
                    "both FINs acknowledged", frames)


def check_teardowns(d: Dissection) -> Check:
    by_stream = _segments_by_stream(d)
    results = []
    for stream, segs in sorted(by_stream.items()):
        client_port = handshake_of(stream, segs).client_port
        results.append(teardown_of(stream, segs, client_port))
    name = "proper teardown"
    closed = [r for r in results if r.shape not in (CloseKind.OPEN, CloseKind.REFUSED)]
    if not closed:
        return Check(name, "skip", "no connection closed within the capture",
                     details=tuple(f"stream {r.stream}: {r.note}" for r in results))
    bad = [r for r in closed if not r.ok]
    shapes = defaultdict(int)
    for r in closed:
        shapes[r.shape] += 1
    summary = ", ".join(f"{n} {shape}" for shape, n in sorted(shapes.items()))
    frames = tuple(f for r in results for f in r.frames)
    details = tuple(f"stream {r.stream}: {'ok' if r.ok else 'FAIL'}: {r.note}" for r in results)
    if bad:
        return Check(name, "fail", f"{len(bad)} of {len(closed)} closed connections did not close "
                     f"properly ({summary})", frames, details)
    open_note = f"; {len(results) - len(closed)} not closed" if len(closed) < len(results) else ""
    return Check(name, "pass", f"{len(closed)} of {len(closed)} closed connections: {summary}{open_note}",
                 frames, details)


def close_shapes(d: Dissection) -> dict[int, str]:
    """Each stream's close shape (labels.CLOSE_KINDS words), by tcp.stream."""
    by_stream = _segments_by_stream(d)
    return {stream: teardown_of(stream, segs, handshake_of(stream, segs).client_port).shape
            for stream, segs in by_stream.items()}


# --------------------------------------------------------------------------- broadcast


@dataclass
class Message:
    """A chat message a client sent, and the copies the server sent because of it."""

    line: DissectedLine
    text: str  # as the server relays it (sanitised)
    copies: dict[int, DissectedLine] = field(default_factory=dict)  # stream -> copy


def _room_events(d: Dissection) -> tuple[dict[int, int], dict[int, int]]:
    """Per client stream: when it joined (the frame of the server's "Welcome, NICK!"
    reply, in any server's words: :func:`tcpchatx.protocol.welcome_nick`) and when it
    started leaving (its /quit, or its first FIN or RST)."""
    joined: dict[int, int] = {}
    leaving: dict[int, int] = {}
    for line in d.lines:
        if line.direction == SERVER_TO_CLIENT and proto.welcome_nick(line.line or "") is not None:
            joined.setdefault(line.stream, line.frame)
        if line.direction == CLIENT_TO_SERVER and line.kind == "command" and line.command == "quit":
            leaving.setdefault(line.stream, line.frame)
    for s in d.segments:
        if s.flags & (FIN | RST):
            leaving[s.stream] = min(leaving.get(s.stream, s.frame), s.frame)
    return joined, leaving


def match_broadcast(d: Dissection) -> tuple[list[Message], list[DissectedLine]]:
    """Pair each client message with its copies; return (messages, unmatched chat lines).

    Each message takes, on every other stream, the first unused ``<nick> text`` line
    after it, as the analysis does (tcpchatx/analysis/chat.py, step 4).
    """
    unused: dict[tuple[str | None, str], list[DissectedLine]] = defaultdict(list)
    for line in d.lines:
        if line.direction == SERVER_TO_CLIENT and line.kind == "chat":
            unused[(line.nick, line.text or "")].append(line)
    messages: list[Message] = []
    for line in d.lines:
        if line.direction != CLIENT_TO_SERVER or line.kind != "message":
            continue
        text = proto.sanitize(line.text or "")[0]
        if not text.strip():
            continue  # an empty line says nothing: the server sends no copies
        message = Message(line, text)
        candidates = unused.get((line.nick, text), [])
        for copy in list(candidates):
            if copy.frame <= line.frame or copy.stream in message.copies:
                continue
            message.copies[copy.stream] = copy
            candidates.remove(copy)
        messages.append(message)
    leftover = sorted((c for lines in unused.values() for c in lines), key=lambda c: c.frame)
    return messages, leftover


def check_broadcast(d: Dissection) -> Check:
    name = "correct broadcast"
    messages, leftover = match_broadcast(d)
    if not messages and not leftover:
        return Check(name, "skip", "no chat messages in the capture")
    joined, leaving = _room_events(d)
    # Flood control holds lines and passes them on later; it loses a sender's lines only
    # when it disconnects a flooder (or, on servers before it held them, when it said so).
    flood_warned = {line.stream for line in d.lines if line.direction == SERVER_TO_CLIENT and (
        line.line == proto.FLOOD_KICK_LINE
        or (proto.parse_slow_down(line.line or "") is not None and "dropped" in line.line))}
    problems: list[str] = []
    frames: list[int] = []
    copies = 0
    for m in messages:
        sender = m.line.stream
        frames.append(m.line.frame)
        frames.extend(c.frame for c in m.copies.values())
        copies += len(m.copies)
        where = f"message {m.line.text!r} from {m.line.nick} (frame {m.line.frame})"
        echo = m.copies.pop(sender, None)
        if echo is not None:
            problems.append(f"{where} was echoed back to its sender (frame {echo.frame})")
        if not m.copies and sender in flood_warned:
            continue  # lost to flood control: the sender was told, nobody else gets it
        last_copy = max((c.frame for c in m.copies.values()), default=m.line.frame)
        for stream, joined_at in sorted(joined.items()):
            if stream == sender or stream in m.copies or joined_at > m.line.frame:
                continue
            left_at = leaving.get(stream)
            if left_at is not None and left_at < max(last_copy, m.line.frame + 1):
                continue  # it left while the message was on its way: either answer is right
            problems.append(f"{where} never reached stream {stream} "
                            f"(in the room since frame {joined_at})")
    for line in leftover:
        problems.append(f"chat line {line.line!r} to stream {line.stream} (frame {line.frame}) "
                        "matches no message sent before it: a duplicate, or its sender's "
                        "line is not in the capture")
        frames.append(line.frame)
    if problems:
        return Check(name, "fail", f"{len(problems)} problem(s) in the fan-out of {len(messages)} "
                     "message(s)", tuple(sorted(frames)), tuple(problems))
    details = tuple(
        f"frame {m.line.frame}: {m.line.nick}: {m.text!r} -> "
        + (", ".join(f"{c.client or 'stream ' + str(s)} (frame {c.frame})" for s, c in sorted(m.copies.items()))
           or "nobody else in the room")
        for m in messages)
    return Check(name, "pass", f"{len(messages)} message(s), {copies} copies: each reached every "
                 "other client exactly once, after it was sent", tuple(sorted(frames)), details)


# --------------------------------------------------------------------------- the analysis


def check_against_analysis(d: Dissection, capture_path: str | os.PathLike[str]) -> Check:
    """Do tcpchatx.analysis and the dissector see the same chat and the same closes?"""
    name = "agrees with tcpchatx.analysis"
    try:
        from tcpchatx.analysis import analyze

        analysis = analyze(capture_path)
    except Exception as exc:  # the analysis is optional here: say why, do not fail
        return Check(name, "skip", f"the analysis could not read this capture: {exc}")
    server = analysis.chat.server
    ours_chat = sum(1 for line in d.lines if line.kind == "chat")
    theirs_chat = sum(1 for line in analysis.lines if line.kind == "chat")
    messages, _ = match_broadcast(d)
    theirs_messages = [m for m in analysis.messages if m.kind == "chat"]
    ours_deliveries = sum(len(m.copies) for m in messages)
    theirs_deliveries = sum(len(m.deliveries) for m in theirs_messages)
    rows = [
        ("chat lines (server -> client)", ours_chat, theirs_chat),
        ("chat messages (client -> server)", len(messages), len(theirs_messages)),
        ("deliveries of those messages", ours_deliveries, theirs_deliveries),
    ]
    ours_shapes = close_shapes(d)
    theirs_shapes = sorted(c.close_kind for c in analysis.connections
                           if server is None or c.server == server)
    shape_names = sorted(ours_shapes.values())
    details = [f"{what}: dissector {a}, analysis {b}" for what, a, b in rows]
    details.append(f"close shapes: dissector {', '.join(shape_names) or '-'}; "
                   f"analysis {', '.join(theirs_shapes) or '-'}")
    disagree = [what for what, a, b in rows if a != b]
    if len(ours_shapes) == len(theirs_shapes) and shape_names != theirs_shapes:
        disagree.append("close shapes")
    if disagree:
        return Check(name, "fail", "the dissector and the analysis disagree on " + ", ".join(disagree),
                     details=tuple(details))
    return Check(name, "pass", f"same {ours_chat} chat lines, {len(messages)} messages, "
                 f"{ours_deliveries} deliveries and close shapes", details=tuple(details))


# --------------------------------------------------------------------------- putting it together


def _segments_by_stream(d: Dissection) -> dict[int, list[Segment]]:
    by_stream: dict[int, list[Segment]] = defaultdict(list)
    for s in d.segments:
        by_stream[s.stream].append(s)
    return by_stream


def verify(capture_path: str | os.PathLike[str], *, port: int | None = None,
           dissection: Dissection | None = None) -> list[Check]:
    """Run every check on the capture; see the module docstring for what each means.

    ``port`` is the chat server's port if it is neither 25000 nor recognisable by
    the dissector's heuristic.  Raises DissectorError (with a readable message) if
    tshark is missing or the file is not a capture.
    """
    d = dissection if dissection is not None else dissect(capture_path, port=port)
    return [
        check_handshakes(d),
        check_broadcast(d),
        check_teardowns(d),
        check_against_analysis(d, capture_path),
    ]


def format_checks(checks: list[Check], max_details: int = MAX_DETAILS) -> str:
    """A plain-text table: one row per check, its details indented below it."""
    name_width = max(len(c.name) for c in checks)
    out = [f"{'check':<{name_width}}  result  explanation", f"{'-' * name_width}  ------  -----------"]
    for c in checks:
        out.append(f"{c.name:<{name_width}}  {c.status.upper():<6}  {c.explanation}")
        shown = c.details[:max_details]
        for detail in shown:
            out.append(f"{'':<{name_width}}          {detail}")
        if len(c.details) > len(shown):
            out.append(f"{'':<{name_width}}          ... and {len(c.details) - len(shown)} more")
    failed = sum(1 for c in checks if not c.passed)
    out.append("")
    out.append("All checks passed." if not failed else f"{failed} check(s) failed.")
    return "\n".join(out)


def verify_main(capture_path: str | os.PathLike[str], port: int | None = None) -> int:
    """``tcpchatx verify CAPTURE``: print the table; 0 if every check passed, else 1."""
    try:
        checks = verify(capture_path, port=port)
    except DissectorError as exc:
        print(f"tcpchatx verify: {exc}", file=sys.stderr)
        return 1
    print(f"Checking {capture_path} with tshark and the TCPChatX dissector:\n")
    print(format_checks(checks))
    return 0 if all(c.passed for c in checks) else 1
