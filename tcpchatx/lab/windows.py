"""Flow control in a lab story: the receive window each ACK announces, a window that
closes and the probes that test it, and where the bytes of a transfer wait.

    f = lab.flow(limits, "rwnd", view="client")   # who sends, who announces the window
    lab.window_table(f)                             # every packet: ACK, window, ACK + window
    zw = lab.zero_window(lab.flow(story, view="server"))   # closed, probed, opened again

Theory of operation
-------------------
A receiver says in every ACK how many more bytes it can take: the *window* field.  The
field has 16 bits; a host that wants more offers a *window scale* S in its SYN (RFC
7323), and if both SYNs offer one, every later window it sends means ``field << S``
bytes.  A SYN's own window is never scaled (RFC 7323, 2.2).  ``ACK + window`` is then
the *edge*: the sender may send up to, not including, that sequence number.  All of
that is read from the packets alone (:func:`window_shift`, :func:`window_table`).

When the window is 0 the sender stops and probes it on a timer that doubles, as the
retransmission timer does; Linux's probe carries no byte, and the sequence number just
below the ACK, as if it sent an old byte again, which the receiver must answer with an
ACK that says its window (Wireshark calls the probe ``[TCP Keep-Alive]``).  Linux answers such an out-of-window segment at most once per
``net.ipv4.tcp_invalid_ratelimit`` (500 ms), so a probe that comes sooner after the
last answer gets none.  :func:`zero_window` finds the segment that filled the
window, the zero windows, the probes, their answers and the window update.

Each helper takes a :class:`Flow` (one view of one connection, and which way its data
goes) and returns plain values or a small table, frame numbers included, so that a
cell can ask its question first and check the answer after.  Times are milliseconds
since the connection's first packet (``ms``, ``..._ms``), the x axis of ``plots.time_sequence``;
sequence and ACK numbers are relative, in the data sender's sequence space.  No
socket is touched: the captures and what the story recorded are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..analysis import Analysis
from ..analysis.labels import DIRECTIONS, FLAG_STRINGS
from ..tcp_flags import ACK, FIN, RST, SYN
from .loss import TICK_MS  # a tick of the kernel's clock at most: how far its timers may be off
from .stories import StoryRun

#: Linux's ``net.ipv4.tcp_invalid_ratelimit``: at most one answer to out-of-window
#: segments (a zero-window probe is one) per this many milliseconds, per socket.
INVALID_RATELIMIT_MS = 500.0
#: An answer to a probe comes within this long of it (the zero-window story's path has
#: no delay: a round trip takes well under a millisecond), or it answers something else.
ANSWER_MS = 20.0


# --------------------------------------------------------------------------- one flow


@dataclass(frozen=True)
class Segment:
    """One packet of the flow, with the receiver's window in bytes where it announces one."""

    frame: int
    ms: float
    mine: bool  # sent by the data sender
    flags: int
    seq: int
    len: int
    ack: int
    window: int  # the field as on the wire
    window_bytes: int | None  # the receiver's packets: the field, scaled (a SYN's is not)
    edge: int | None  # the receiver's ACKs: ack + window_bytes, the most the sender may send
    in_flight: int | None  # the sender's: Wireshark's bytes in flight after it
    events: tuple[str, ...]  # Wireshark's expert findings (analysis.events)
    marks: str  # ... as its Info column shows them

    @property
    def flag_text(self) -> str:
        return str(FLAG_STRINGS[self.flags & 0x1FF])


@dataclass(frozen=True, eq=False)
class Flow:
    """One connection in one view of a story, and which way its data goes."""

    analysis: Analysis
    view: str  # "client" or "server": whose capture
    conn: int  # the connection id in that view
    direction: str  # the data sender's role, "originator" or "responder" (as plots.time_sequence takes it)
    sender: str  # names for the table's "who" column
    receiver: str
    shift: int  # the receiver's window scale: its windows (but not its SYN's) mean field << shift bytes
    t0: float  # the connection's first packet, seconds since 1970
    packets: tuple[Segment, ...] = ()  # every packet of the connection, in capture order

    @property
    def d(self) -> int:
        """The data sender's direction as a number (0 originator, 1 responder)."""
        return DIRECTIONS.index(self.direction)

    def ms(self, seconds: float) -> float:
        """Seconds since 1970 -> milliseconds since the connection's first packet."""
        return _ms(seconds, self.t0)


def _ms(seconds: float, t0: float) -> float:
    return round((seconds - t0) * 1000, 3)


def flow(story: StoryRun, part: str | None = None, view: str = "client") -> Flow:
    """The flow of a story's part in one of its views: alice's connection in a chat
    story, where the server sends and alice receives; else the connection that carries
    the most bytes, one way (a bulk transfer: the client sends, the server receives)."""
    a = story.analysis(view, part)
    alice = [conn for conn, nick in a.chat.nick_of_conn.items() if nick == "alice"]
    if alice:
        conn = alice[0]
    elif a.connections:
        conn = max(a.connections, key=lambda c: sum(c.payload_bytes)).id
    else:
        raise LookupError(f"{a.path} has no TCP connection")
    c = a.connections[conn]
    d = 0 if c.payload_bytes[0] >= c.payload_bytes[1] else 1
    if alice:
        sender, receiver = ("alice", "server") if d == 0 else ("server", "alice")
    else:
        sender, receiver = ("sender", "receiver")
    shift = window_shift(a, conn, 1 - d)
    return Flow(a, view, conn, DIRECTIONS[d], sender, receiver, shift, c.start,
                tuple(_segments(a, conn, d, shift, c.start)))


def window_shift(analysis: Analysis, conn: int, d: int) -> int:
    """The shift of the windows that direction ``d`` sends: the window scale in its own
    SYN, if both SYNs offered one (RFC 7323, 2.2); else 0."""
    p, t = analysis.packets, analysis.tracking
    offered = {}
    for side in (0, 1):
        rows = [i for i in range(len(p)) if t.conn[i] == conn and t.direction[i] == side and p.flags[i] & SYN]
        offered[side] = p.tcp_options(rows[0]).get("wscale") if rows else None
    if None in offered.values():
        return 0
    return int(offered[d])


# --------------------------------------------------------------------------- every packet


def segments(f: Flow) -> list[Segment]:
    """Every packet of the flow's connection, in capture order."""
    return list(f.packets)


def _segments(a: Analysis, conn: int, d: int, shift: int, t0: float) -> list[Segment]:
    p, t, x = a.packets, a.tracking, a.expert
    out = []
    for i in range(len(p)):
        if t.conn[i] != conn:
            continue
        mine = int(t.direction[i]) == d
        flags, field = int(p.flags[i]), int(p.window[i])
        window_bytes = edge = None
        if not mine:
            window_bytes = field if flags & SYN else field << shift  # a SYN's window is never scaled
            if flags & ACK:
                edge = int(t.rel_ack[i]) + window_bytes
        in_flight = int(x.bytes_in_flight[i]) if mine and x.bytes_in_flight[i] >= 0 else None
        out.append(Segment(int(p.frame[i]), _ms(float(p.seconds(i)), t0), mine, flags,
                           int(t.rel_seq[i]), int(p.payload_len[i]), int(t.rel_ack[i]), field, window_bytes,
                           edge, in_flight, tuple(a.events(i)), a.info(i)))
    return out


def window_table(f: Flow, first: int | None = None, last: int | None = None):
    """:func:`segments` as a table, frames ``first`` to ``last`` (default: all).

    ``window`` is the field as on the wire; for the receiver's packets ``window_bytes``
    is what it means (scaled, except in a SYN) and ``edge`` is ``ack + window_bytes``;
    for the sender's, ``in_flight`` is Wireshark's bytes in flight after it."""
    import pandas as pd

    rows = [{"frame": s.frame, "ms": s.ms, "who": _who(f, s), "flags": s.flag_text, "seq": s.seq, "len": s.len, "ack": s.ack, "window": s.window,
             "window_bytes": s.window_bytes, "edge": s.edge, "in_flight": s.in_flight, "marks": s.marks}
            for s in segments(f)
            if (first is None or s.frame >= first) and (last is None or s.frame <= last)]
    table = pd.DataFrame(rows, columns=["frame", "ms", "who", "flags", "seq", "len", "ack", "window",
                                        "window_bytes", "edge", "in_flight", "marks"])
    for column in ("window_bytes", "edge", "in_flight"):
        table[column] = table[column].astype("Int64")
    return table


def _who(f: Flow, s: Segment) -> str:
    return f"{f.sender} → {f.receiver}" if s.mine else f"{f.receiver} → {f.sender}"


# --------------------------------------------------------------------------- the handshake


@dataclass(frozen=True)
class FirstWindow:
    """The receiver's first windows: in its SYN (never scaled) and in its first ACK of data."""

    syn: int  # the receiver's SYN (or SYN-ACK)
    syn_window: int
    shift: int  # the window scale its SYN offered (and both SYNs had one): 0 if none applies
    offered: int | None  # the window-scale option in its SYN, as on the wire
    ack_frame: int  # its first ACK of the sender's data
    ack: int
    window: int  # that ACK's window field
    window_bytes: int  # ... scaled
    edge: int  # ack + window_bytes
    syn_ms: float  # when this view saw the receiver's SYN: in the sender's view, one round trip after its SYN


def first_window(f: Flow) -> FirstWindow:
    """The receiver's SYN and its first ACK of data, and what their windows mean."""
    all_ = segments(f)
    syn = next(s for s in all_ if not s.mine and s.flags & SYN)
    first_data = next(s for s in all_ if s.mine and s.len)
    ack = next(s for s in all_ if not s.mine and s.frame > first_data.frame and s.ack > first_data.seq)
    offered = f.analysis.packets.tcp_options(syn.frame - 1).get("wscale")
    return FirstWindow(syn.frame, syn.window, f.shift, offered, ack.frame, ack.ack, ack.window,
                       ack.window_bytes, ack.edge, syn.ms)


def handshake_windows(f: Flow):
    """The handshake and the receiver's first ACK of data, as on the wire: each packet's
    window field and window-scale option (nothing computed: that is the question)."""
    import pandas as pd

    fw = first_window(f)
    a = f.analysis
    rows = []
    for s in segments(f):
        if s.flags & SYN or s.frame == fw.ack_frame or (s.frame < fw.ack_frame and not s.len and s.mine):
            rows.append({"frame": s.frame, "who": _who(f, s), "flags": s.flag_text, "ack": s.ack, "window": s.window,
                         "wscale": a.packets.tcp_options(s.frame - 1).get("wscale")})
    table = pd.DataFrame(rows, columns=["frame", "who", "flags", "ack", "window", "wscale"])
    table["wscale"] = table["wscale"].astype("Int64")
    return table


# --------------------------------------------------------------------------- the window's rules


def past_the_edge(f: Flow) -> list[int]:
    """The sender's data segments that went past ACK + window, as the last of the
    receiver's packets before each said it (empty: the sender kept to the window).
    Linux's zero-window probes carry no byte, so they never count; another stack's
    one-byte probe would (RFC 9293, 3.8.6.1, allows it)."""
    edge = None
    crossed = []
    for s in segments(f):
        if not s.mine:
            if s.edge is not None:
                edge = s.edge
        elif s.len and edge is not None and s.seq + s.len > edge:
            crossed.append(s.frame)
    return crossed


def announced_windows(f: Flow) -> set[int]:
    """Every window the receiver announced, in bytes (its SYN's unscaled, the rest scaled)."""
    return {s.window_bytes for s in segments(f) if not s.mine and s.flags & ACK and s.window_bytes is not None}


@dataclass(frozen=True)
class WindowUse:
    """How much of the receiver's window the sender used."""

    window: int  # the window the receiver announced most often after its SYN, in bytes
    most_in_flight: int  # the most bytes in flight after any of the sender's segments
    segment: int  # the largest segment the sender sent (its MSS, in a bulk transfer)
    segments: int  # how many data segments it sent


def window_use(f: Flow) -> WindowUse:
    """The window the receiver announced most often, and the most the sender had in flight."""
    from collections import Counter

    windows = Counter(s.window_bytes for s in f.packets if not s.mine and s.edge is not None and not s.flags & SYN)
    data = [s for s in f.packets if s.mine and s.len]
    return WindowUse(windows.most_common(1)[0][0] if windows else 0,
                     max((s.in_flight or 0 for s in data), default=0),
                     max((s.len for s in data), default=0), len(data))


def kernel_windows(story: StoryRun, part: str | None = None, name: str = "sender") -> set[int]:
    """Every receive window the socket ``name``'s kernel worked with (TCP_INFO's
    ``snd_wnd``, in bytes), as sampled while the story played."""
    return {s["snd_wnd"] for s in story.part(part).get("tcp_info", []) if s.get("name") == name}


def window_full(f: Flow) -> list[tuple[int, int, int]]:
    """(frame, its end, the receiver's packet whose edge it reached) for each of the
    sender's segments that Wireshark marks ``[TCP Window Full]``."""
    out, last = [], None
    for s in segments(f):
        if not s.mine and s.edge is not None:
            last = s
        elif s.mine and "window_full" in s.events and last is not None:
            out.append((s.frame, s.seq + s.len, last.frame))
    return out


# --------------------------------------------------------------------------- a window that closes


@dataclass(frozen=True)
class ZeroWindow:
    """A window that filled, closed, was probed and opened again (frames of one view)."""

    full: int  # the sender's segment that filled the window, just before it closed
    full_end: int  # the seq just past its last byte
    full_len: int
    before: int  # the receiver's packet whose window it filled
    before_ack: int
    before_window: int  # that packet's window field
    before_window_bytes: int
    zeros: tuple[int, ...]  # the receiver's ACKs announcing window 0, until the update
    zero_ack: int  # their ACK number
    closed_ms: float  # when the first of them was seen
    probes: tuple[int, ...]  # the sender's zero-window probes
    probe_ms: tuple[float, ...]
    probe_seq: tuple[int, ...]
    probe_len: tuple[int, ...]
    answers: tuple[int | None, ...]  # the receiver's answer to each probe, or None
    answer_ms: tuple[float | None, ...]
    update: int | None  # the receiver's window update that opened it
    update_ms: float | None
    update_ack: int | None
    update_window: int | None  # its field
    update_window_bytes: int | None
    resumed: int | None  # the sender's first data segment after the update

    @property
    def gaps_ms(self) -> tuple[float, ...]:
        """From the first zero window to the first probe, then from probe to probe."""
        times = (self.closed_ms, *self.probe_ms)
        return tuple(round(later - earlier, 3) for earlier, later in zip(times, times[1:]))

    @property
    def since_answer_ms(self) -> tuple[float | None, ...]:
        """For each probe, how long after the receiver's last answer to a probe it came
        (None: no probe had been answered yet)."""
        out, last = [], None
        for at, answer_at in zip(self.probe_ms, self.answer_ms):
            out.append(None if last is None else round(at - last, 3))
            if answer_at is not None:
                last = answer_at
        return tuple(out)


def _is_probe(s: Segment) -> bool:
    """A probe, sent while the window is 0: Linux's carries no byte and the sequence
    number below the ACK (Wireshark: a keep-alive); other stacks send one new byte
    (Wireshark: a zero-window probe)."""
    return s.mine and ("keep_alive" in s.events or "zero_window_probe" in s.events)


def zero_window(f: Flow) -> ZeroWindow:
    """The flow's first zero window: what filled it, the probes and their answers, and
    the update that opened it (:class:`ZeroWindow`).  LookupError if it never closed."""
    all_ = segments(f)
    first_zero = next((k for k, s in enumerate(all_) if not s.mine and s.flags & ACK and s.window == 0
                       and not s.flags & (SYN | RST)), None)
    if first_zero is None:
        raise LookupError(f"the receiver's window never closed in {f.analysis.path}")
    zero = all_[first_zero]
    full = next(s for s in reversed(all_[:first_zero]) if s.mine and s.len)
    before = next(s for s in reversed(all_[:first_zero]) if not s.mine and s.edge is not None
                  and s.frame < full.frame)
    zeros, probes, answers, update = [zero], [], [], None
    for k in range(first_zero + 1, len(all_)):
        s = all_[k]
        if s.mine:
            if _is_probe(s):
                probes.append(s)
                answers.append(_answer(all_, k))
        elif s.flags & RST or not s.flags & ACK:
            break  # the connection ended with the window shut
        elif s.window == 0:
            zeros.append(s)
        else:
            update = s
            break
    resumed = (next((s for s in all_ if s.mine and s.len and s.frame > update.frame), None)
               if update is not None else None)
    return ZeroWindow(
        full.frame, full.seq + full.len, full.len, before.frame, before.ack, before.window, before.window_bytes,
        tuple(s.frame for s in zeros), zero.ack, zero.ms,
        tuple(p.frame for p in probes), tuple(p.ms for p in probes), tuple(p.seq for p in probes),
        tuple(p.len for p in probes),
        tuple(a.frame if a else None for a in answers), tuple(a.ms if a else None for a in answers),
        update.frame if update else None, update.ms if update else None, update.ack if update else None,
        update.window if update else None, update.window_bytes if update else None,
        resumed.frame if resumed else None)


def _answer(all_: list[Segment], k: int) -> Segment | None:
    """The receiver's answer to the probe at ``all_[k]``: its next packet, if that comes
    before the sender's next one and within ANSWER_MS (else it says something else: a
    window update, say, when the reader reads again)."""
    after = all_[k + 1] if k + 1 < len(all_) else None
    if after is None or after.mine or after.ms - all_[k].ms > ANSWER_MS:
        return None
    return after


def answered_as_linux_limits(zw: ZeroWindow, limit_ms: float = INVALID_RATELIMIT_MS,
                             slack_ms: float = TICK_MS) -> bool:
    """Whether each probe got an answer exactly when Linux's rate limit allows one: the
    first always; a later one only if it came ``limit_ms`` or more after the last answer
    (within a tick of ``limit_ms``, where the kernel's clock decides, either will do)."""
    for since, answer in zip(zw.since_answer_ms, zw.answers):
        if since is not None and abs(since - limit_ms) <= slack_ms:
            continue
        allowed = since is None or since >= limit_ms
        if (answer is not None) != allowed:
            return False
    return True


def ratios(gaps: tuple[float, ...]) -> list[float]:
    """Each gap over the one before it: about 2 for a timer that doubles."""
    return [round(later / earlier, 2) for earlier, later in zip(gaps, gaps[1:])]


# --------------------------------------------------------------------------- the chat story's end


@dataclass(frozen=True)
class CutOff:
    """How the chat server cut a reader off, as one view saw it."""

    notice: int | None  # the packet that tells the others "alice left (dropped: too slow...)"
    notice_ms: float | None
    last_data: int | None  # the server's last data segment to alice
    last_data_marks: str
    server_fin: int | None  # a FIN from the server to alice, if one was sent
    end: int | None  # the packet that ended alice's connection (a RST, or her FIN)
    end_flags: str
    end_by: str | None  # "alice" or "server"


def cut_off(f: Flow) -> CutOff:
    """The zero-window story's end: the server's notice that alice was dropped as too
    slow, what it sent her last, and how her connection ended."""
    a = f.analysis
    notice = next((line for line in a.lines if line.kind == "notice" and line.text
                   and "alice left" in line.text and "too slow" in line.text), None)
    all_ = segments(f)
    from_server = [s for s in all_ if s.mine]
    data = [s for s in from_server if s.len]
    fin = next((s for s in from_server if s.flags & FIN), None)
    end = next((s for s in all_ if s.flags & RST), None) or next((s for s in all_ if s.flags & FIN and not s.mine),
                                                                  None)
    return CutOff(notice.frame if notice else None, f.ms(notice.time) if notice else None,
                  data[-1].frame if data else None, data[-1].marks if data else "",
                  fin.frame if fin else None, end.frame if end else None, end.flag_text if end else "",
                  (f.sender if end.mine else f.receiver) if end else None)


def read_again_ms(story: StoryRun, f: Flow) -> float | None:
    """When alice started reading again (the zero-window story recorded it), on the flow's clock."""
    at = story.part().get("read_again_at")
    return None if at is None else f.ms(at)


def kernel_while_closed(story: StoryRun, f: Flow, zw: ZeroWindow, name: str = "alice") -> list[dict[str, Any]]:
    """The receiver's TCP_INFO samples (socket ``name``) taken while its window was 0
    and before it read again, each with ``at_ms`` on the flow's clock."""
    ends = [at for at in (zw.update_ms, read_again_ms(story, f)) if at is not None]
    end_ms = min(ends, default=float("inf"))
    out = []
    for sample in story.part().get("tcp_info", []):
        at = f.ms(sample["time"])
        if sample.get("name") == name and zw.closed_ms <= at <= end_ms:
            out.append({**sample, "at_ms": at})
    return out


# --------------------------------------------------------------------------- where the bytes wait


def where_bytes_wait(story: StoryRun):
    """For each part of a transfer story (``limits``, ``bottleneck``): the most bytes
    each buffer held, from TCP_INFO and the router's queue samples.

    ``in_flight`` (sent, not yet acknowledged) and ``not_sent`` (written, not yet sent:
    ``notsent_bytes``) split the sender's send queue; ``window`` is the largest receive
    window the sender's kernel knew (``snd_wnd``); ``router`` the router's queue and
    ``dropped`` what it threw away when full; ``receive_queue`` what waited for the
    receiving application.  ``limited_by`` is the story's verdict (TCP_INFO's
    ``busy_time`` split, docs/netlab.md)."""
    import pandas as pd

    rows = []
    for part in story.parts:
        run = story.part(part)
        sender = [s for s in run.get("tcp_info", []) if s.get("name") == "sender"]
        receiver = [s for s in run.get("tcp_info", []) if s.get("name") == "receiver"]
        queue = run.get("queue", [])
        rows.append({
            "part": part, "limited_by": run.get("limited_by", ""), "seconds": round(run.get("seconds", float("nan")), 3),
            "in_flight": max((s["send_queue"] - s["notsent_bytes"] for s in sender), default=None),
            "not_sent": max((s["notsent_bytes"] for s in sender), default=None),
            "window": max((s["snd_wnd"] for s in sender), default=None),
            "router": max((q["backlog_bytes"] for q in queue), default=None),
            "dropped": run.get("dropped"),
            "receive_queue": max((s["receive_queue"] for s in receiver), default=None),
        })
    table = pd.DataFrame(rows).set_index("part")
    for column in ("in_flight", "not_sent", "window", "router", "dropped", "receive_queue"):
        table[column] = table[column].astype("Int64")
    return table
