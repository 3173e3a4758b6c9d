"""The chat as numpy columns, and the objects built from them on demand.

Line ``i`` is row ``i`` of the ``line_*`` columns of :class:`Chat`, message ``j`` row
``j`` of the ``msg_*`` columns; a :class:`ChatLine` or :class:`Message` is made only
when someone asks for it.  :class:`Ids` numbers the strings the columns refer to.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tcpchatx.protocol import Kind

from .lines import pick

# Line kinds as small integers (column ``Chat.kind``); LINE_KIND_NAMES[code] is the label.
LINE_KIND_NAMES = ("invalid",) + tuple(k.value for k in Kind)
LINE_KIND_CODE = {name: code for code, name in enumerate(LINE_KIND_NAMES)}
INVALID, CHAT, PRIVATE = LINE_KIND_CODE["invalid"], LINE_KIND_CODE["chat"], LINE_KIND_CODE["private"]
ACTION = LINE_KIND_CODE["action"]
REPLY, NOTICE, NICKNAME = LINE_KIND_CODE["reply"], LINE_KIND_CODE["notice"], LINE_KIND_CODE["nickname"]
ERROR = LINE_KIND_CODE["error"]
MESSAGE, COMMAND = LINE_KIND_CODE["message"], LINE_KIND_CODE["command"]
NONE = -1  # "no value" in the id columns (nick, command, text)
# Message kinds (column ``Chat.msg_kind``): what a client sent, named by the server line
# that relays it: chat ("<nick> text"), private ("/msg": "*nick* text") or action ("/me":
# "* nick text").
MESSAGE_KINDS = (Kind.CHAT.value, Kind.PRIVATE.value, Kind.ACTION.value)
CHAT_MESSAGE, PRIVATE_MESSAGE, ACTION_MESSAGE = range(len(MESSAGE_KINDS))
# The message kind each line kind relays, by line kind code (NONE: it relays none).
RELAYED_AS = np.full(len(LINE_KIND_NAMES), NONE, dtype=np.int8)
RELAYED_AS[[CHAT, PRIVATE, ACTION]] = CHAT_MESSAGE, PRIVATE_MESSAGE, ACTION_MESSAGE


@dataclass
class ChatLine:
    """One protocol line, where it was on the wire and what it means."""

    id: int
    conn: int
    direction: int  # 0: client -> server, 1: server -> client
    text: str | None  # None if the line was not valid (too long, bad UTF-8)
    kind: str  # protocol.Kind value, or "invalid"
    nick: str | None  # chat/private/action: the nick it is from; client lines: the sender's nick
    command: str | None  # for client commands: "msg", "nick", ...
    start: int  # stream offset of its first byte (relative seq)
    end: int  # stream offset just past its "\n"
    frames: list[int]  # every frame that carried part of it, in stream order
    frame: int  # the frame that completed it (carried its "\n")
    time: float  # that frame's time
    recipient: str | None = None  # server lines: the nick of the client it went to
    ticks: int = 0  # the completing frame's exact timestamp (see packets.Packets.ts_ticks)
    per_second: int = 1_000_000


@dataclass
class Delivery:
    recipient: str | None  # the recipient's nick, if known
    conn: int
    frame: int
    time: float
    latency: float  # seconds from the message's frame to this delivery's frame
    line: int  # ChatLine id of the delivered line


@dataclass
class Message:
    """A chat message (or private message, or action) a client sent, and its deliveries."""

    id: int
    kind: str  # one of MESSAGE_KINDS: "chat", "private" or "action"
    conn: int
    sender: str | None
    text: str
    to: str | None  # private messages: the nick it was addressed to
    frame: int
    time: float
    line: int  # ChatLine id of the client's line
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Chat:
    """Every line and message, as columns; objects are built on demand.

    Line ``i`` (in the order its last byte arrived) is row ``i`` of the ``line_*``
    arrays; ids (``line_text``, ``line_nick``, ...) index ``texts``, ``nicks`` and
    ``commands``, with -1 for None.  Message ``j`` is row ``j`` of the ``msg_*``
    arrays; its deliveries are ``delivery_line[delivery_start[j]:delivery_start[j + 1]]``
    (line ids) with ``delivery_latency`` alongside.
    """

    server: tuple[str, int] | None
    nick_of_conn: dict[int, str]  # the last nickname of each client connection
    gaps: int  # holes in the byte streams (bytes never captured)
    texts: Sequence[str]  # distinct valid line texts (a list, or AsciiTexts)
    nicks: list[str]  # distinct nicknames
    commands: list[str]  # distinct command names
    run_frames: np.ndarray  # frame of each run of placed bytes (see Streams)
    line_conn: np.ndarray
    line_direction: np.ndarray
    line_text: np.ndarray
    line_kind: np.ndarray  # LINE_KIND_NAMES codes
    line_nick: np.ndarray
    line_command: np.ndarray
    line_recipient: np.ndarray
    line_start: np.ndarray
    line_end: np.ndarray
    line_first_run: np.ndarray  # runs first_run..last_run carried the line
    line_last_run: np.ndarray
    line_frame: np.ndarray  # sorted: lines are in order of the frame that completed them
    line_time: np.ndarray
    line_ticks: np.ndarray
    line_per_second: np.ndarray
    msg_line: np.ndarray  # the client line of each message
    msg_kind: np.ndarray  # int8: an index into MESSAGE_KINDS
    msg_payload: np.ndarray  # the text it relays: an id into payloads (see msg_text)
    msg_text_id: np.ndarray  # its client line's text (line_text), which names the addressee
    payloads: list[str]  # the relayed texts, once each
    addressee_of_text: list[str | None]  # by text id: who a "/msg" text is for
    delivery_start: np.ndarray  # len(messages) + 1 offsets
    delivery_line: np.ndarray
    delivery_latency: np.ndarray
    _lines: list[ChatLine] | None = field(default=None, repr=False)
    _messages: list[Message] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ objects

    @cached_property
    def msg_text(self) -> list[str]:
        """Each message's relayed text (made on first use: the summary needs none)."""
        return pick(self.payloads, self.msg_payload)

    @cached_property
    def msg_to(self) -> list[str | None]:
        """Each message's addressee, None for chat to everyone (made on first use)."""
        return pick(self.addressee_of_text, self.msg_text_id)

    @property
    def n_lines(self) -> int:
        return len(self.line_conn)

    @property
    def n_messages(self) -> int:
        return len(self.msg_line)

    @property
    def lines(self) -> list[ChatLine]:
        """Every line as a :class:`ChatLine` (built on first use, then kept)."""
        if self._lines is None:
            self._lines = self.build_lines(0, self.n_lines)
        return self._lines

    @property
    def messages(self) -> list[Message]:
        """Every message as a :class:`Message` (built on first use, then kept)."""
        if self._messages is None:
            self._messages = self.build_messages(0, self.n_messages)
        return self._messages

    def lines_of_frame(self, frame: int) -> list[ChatLine]:
        """The lines completed by this frame (the frame carrying their newline).

        Lines are sorted by that frame, so a frame's lines are a range, found by
        bisection.  Before ``chat.lines`` is built, only the range's lines are built
        (a ladder of 200 packets needs no object for every line); after, they are the
        same objects as in ``chat.lines``.  A caller asking about every frame
        should build ``chat.lines`` first.
        """
        # numpy bisects the column in place with a key of the column's own type: a key
        # of another type would have it convert the whole column on every call.
        frames = self.line_frame
        try:
            key = frames.dtype.type(frame)
        except OverflowError:  # beyond the column's type: no such frame
            return []
        lo, hi = int(frames.searchsorted(key, "left")), int(frames.searchsorted(key, "right"))
        if lo == hi:
            return []
        if self._lines is not None:
            return self._lines[lo:hi]
        return self.build_lines(lo, hi)

    def each_message(self, chunk: int = 1 << 14) -> Iterator[Message]:
        """Every message in order, built ``chunk`` at a time unless ``chat.messages`` exists.

        For outputs that look at each message once (the summary, the JSON writer):
        they never hold all the objects at the same time.
        """
        if self._messages is not None:
            yield from self._messages
            return
        for lo in range(0, self.n_messages, chunk):
            yield from self.build_messages(lo, min(self.n_messages, lo + chunk))

    @cached_property
    def _names(self) -> tuple[list, list]:
        """``nicks`` and ``commands``, each ending in None: id -1 picks None."""
        return self.nicks + [None], self.commands + [None]

    def build_lines(self, lo: int, hi: int) -> list[ChatLine]:
        """New :class:`ChatLine` objects for lines ``lo`` to ``hi - 1``."""
        texts = self.texts
        nicks, commands = self._names
        # Many lines: every run's frame as one list; a few: slices of the array.
        frames = self.run_frames.tolist() if hi - lo > 1000 else None
        out = []
        cols = zip(
            range(lo, hi), *(c[lo:hi].tolist() for c in (
                self.line_conn, self.line_direction, self.line_text, self.line_kind,
                self.line_nick, self.line_command, self.line_start, self.line_end,
                self.line_first_run, self.line_last_run, self.line_frame, self.line_time,
                self.line_recipient, self.line_ticks, self.line_per_second)),
            strict=True,
        )
        for (i, conn, d, text, kind, nick, command, start, end, first, last, frame, time,
             recipient, ticks, per_second) in cols:
            out.append(ChatLine(
                id=i, conn=conn, direction=d, text=texts[text] if text >= 0 else None,
                kind=LINE_KIND_NAMES[kind],
                nick=nicks[nick], command=commands[command], start=start, end=end,
                frames=frames[first : last + 1] if frames is not None
                else self.run_frames[first : last + 1].tolist(),
                frame=frame, time=time, recipient=nicks[recipient], ticks=ticks,
                per_second=per_second,
            ))
        return out

    def build_messages(self, lo: int, hi: int) -> list[Message]:
        """New :class:`Message` objects (with their deliveries) for messages ``lo`` to ``hi - 1``."""
        nicks, _ = self._names
        first, last = int(self.delivery_start[lo]), int(self.delivery_start[hi])
        d_line = self.delivery_line[first:last]
        # All of these messages' deliveries, in order (each message takes a slice), from
        # columns in Delivery's field order: recipient, conn, frame, time, latency, line.
        deliveries = [Delivery(*row) for row in zip(
            map(nicks.__getitem__, self.line_recipient[d_line].tolist()),
            self.line_conn[d_line].tolist(), self.line_frame[d_line].tolist(),
            self.line_time[d_line].tolist(), self.delivery_latency[first:last].tolist(),
            d_line.tolist(), strict=True,
        )]
        starts = (self.delivery_start[lo : hi + 1] - first).tolist()
        rows = self.msg_line[lo:hi]
        cols = zip(
            range(lo, hi), self.msg_kind[lo:hi].tolist(), self.line_conn[rows].tolist(),
            self.line_nick[rows].tolist(), self.msg_text[lo:hi], self.msg_to[lo:hi],
            self.line_frame[rows].tolist(), self.line_time[rows].tolist(), rows.tolist(),
            strict=True,
        )
        out = []
        for k, (j, kind, conn, sender, text, to, frame, time, line) in enumerate(cols):
            out.append(Message(
                id=j, kind=MESSAGE_KINDS[kind], conn=conn, sender=nicks[sender],
                text=text, to=to, frame=frame, time=time, line=line,
                deliveries=deliveries[starts[k] : starts[k + 1]],
            ))
        return out


class Ids(dict):
    """Strings to small integers, in order of first appearance (``names[id]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __missing__(self, name: str) -> int:
        self[name] = len(self.names)
        self.names.append(name)
        return self[name]

    def get_id(self, name: str | None) -> int:
        return NONE if name is None else self[name]

    def ids_of(self, names: list[str]) -> np.ndarray:
        """``[self[x] for x in names]`` as an array, with the loops in C (new names
        numbered in order)."""
        fresh = list(itertools.filterfalse(self.__contains__, dict.fromkeys(names)))
        self.update(zip(fresh, itertools.count(len(self.names))))
        self.names += fresh
        return np.fromiter(map(self.__getitem__, names), dtype=np.int64, count=len(names))
