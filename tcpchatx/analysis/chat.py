"""From TCP segments back to chat lines, and from lines to who received what.

Theory of operation
-------------------
1. **Reassembly.**  Each direction of a connection is a byte stream numbered by the
   relative sequence number (byte 1 is the first after the SYN).  We sort that
   direction's data segments by sequence number and lay them end to end: bytes
   already placed (retransmissions, duplicates) are skipped; a hole (bytes never
   captured) ends the line in progress, which is dropped, since we cannot know it.
   Each placed run of bytes remembers the frame that carried it.  All directions
   are reassembled at once with numpy (:func:`reassemble_all`), into one array of bytes.
2. **Lines.**  The streams are cut at every ``\\n`` (found with numpy); each line is
   decoded with the server's rules (:func:`decode_line`: the same as
   :class:`tcpchatx.protocol.LineSplitter`, which a test checks).  A line knows its
   byte range, hence every frame that carried a part of it (a line split over two
   segments has two frames; one segment may carry several lines).
3. **Meaning.**  The *server* is the endpoint that answers connections (the
   responder seen most often).  Lines towards it are client lines: nicknames,
   commands and messages (:func:`~tcpchatx.protocol.parse_client_line`); lines from
   it are server lines (:func:`~tcpchatx.protocol.parse_server_line`).
4. **Fan-out.**  For each chat message a client sent, the server should send
   ``<nick> text`` to every *other* client; a ``/msg bob text`` becomes
   ``*nick* text`` to bob.  We match each to the first unmatched such line on the
   other connections sent after the message arrived, and call the time between the
   two frames the delivery's fan-out latency.

Columns, not objects
--------------------
A big capture has hundreds of thousands of lines, so lines and messages are kept
as numpy columns (:class:`Chat`), and a :class:`ChatLine` or :class:`Message` is
only built when someone asks for it (``chat.lines``, ``chat.line(i)``, ...).
Python still does the parts that need Python, but once per *distinct* thing:

* each distinct line text is decoded and parsed once (a broadcast repeats the
  same ``<nick> text`` to every client), and its facts become numbers (a kind
  code, a nick id, a text id); which lines are the same is found without a
  Python object per line, by a hash of their bytes (:func:`_line_ids`).  Server
  texts, most of them ``<nick> text``, are even parsed as bytes, so that only
  their distinct nicks and payloads become strings (:func:`_server_facts`); when
  all texts are plain ASCII, they stay one string, and a text becomes a string
  of its own only when it is read (:class:`_AsciiTexts`);
* nicknames change only on a few lines (the first line of a client, the server's
  ``Welcome, nick!`` and ``X is now known as Y``): a loop over those lines only
  records each change, and every line then looks up its connection's nick at its
  own position with :func:`numpy.searchsorted`;
* the fan-out of a message whose (kind, sender, text) no other message shares is
  a pure filter over its candidate lines (numpy); messages sharing one, which
  compete for the same deliveries, are matched in a loop, in order.

Step 1 is :func:`reassemble_chat`, step 2 :func:`find_chat_lines` (numpy: bytes
and offsets), the rest :func:`read_chat_lines` (Python: texts).  Only reassembly
needs the TCP tracker's connections and relative numbers, so :func:`.run.analyze`
labels the packets (mostly numpy, which lets go of the GIL) beside steps 2-4.

``tests/analysis_chat_reference.py`` keeps the object-per-line version; a test
checks that both give the same lines, messages and deliveries.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from tcpchatx import protocol as proto
from tcpchatx.protocol import Kind
from tcpchatx.tcp_flags import RST

from .capture_file import at_every_offset, release_pages, take
from .packets import Packets, exact_ratio
from .sorting import stable_argsort
from .tracker import Flows
from .workers import for_each, in_order

_WELCOME_START = "Welcome, "
_WELCOME = re.compile("^" + re.escape(_WELCOME_START) + r"(.+?)! ")
_RENAMED = re.compile(r"^(\S+) is now known as (\S+)$")

# Line kinds as small integers (column ``Chat.kind``); LINE_KIND_NAMES[code] is the label.
LINE_KIND_NAMES = ("invalid",) + tuple(k.value for k in Kind)
LINE_KIND_CODE = {name: code for code, name in enumerate(LINE_KIND_NAMES)}
INVALID, CHAT, PRIVATE = LINE_KIND_CODE["invalid"], LINE_KIND_CODE["chat"], LINE_KIND_CODE["private"]
REPLY, NOTICE, NICKNAME = LINE_KIND_CODE["reply"], LINE_KIND_CODE["notice"], LINE_KIND_CODE["nickname"]
ERROR = LINE_KIND_CODE["error"]
MESSAGE, COMMAND = LINE_KIND_CODE["message"], LINE_KIND_CODE["command"]
NONE = -1  # "no value" in the id columns (nick, command, text)


@dataclass
class ChatLine:
    """One protocol line, where it was on the wire and what it means."""

    id: int
    conn: int
    direction: int  # 0: client -> server, 1: server -> client
    text: str | None  # None if the line was not valid (too long, bad UTF-8)
    kind: str  # protocol.Kind value, or "invalid"
    nick: str | None  # chat/private: the nick it is from; client lines: the sender's nick
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
    """A chat message (or private message) a client sent, and its deliveries."""

    id: int
    kind: str  # "chat" or "private"
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
    texts: Sequence[str]  # distinct valid line texts (a list, or _AsciiTexts)
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
    msg_private: np.ndarray  # bool
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
        return _pick(self.payloads, self.msg_payload)

    @cached_property
    def msg_to(self) -> list[str | None]:
        """Each message's addressee, None for chat to everyone (made on first use)."""
        return _pick(self.addressee_of_text, self.msg_text_id)

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
        (a ladder of 200 packets needs no million objects); after, they are the
        same objects as in ``chat.lines``.  A caller asking about every frame
        should build ``chat.lines`` first.
        """
        # numpy bisects the column with a key of the column's own type (~1 us): a key
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
            range(lo, hi), self.msg_private[lo:hi].tolist(), self.line_conn[rows].tolist(),
            self.line_nick[rows].tolist(), self.msg_text[lo:hi], self.msg_to[lo:hi],
            self.line_frame[rows].tolist(), self.line_time[rows].tolist(), rows.tolist(),
            strict=True,
        )
        out = []
        for k, (j, private, conn, sender, text, to, frame, time, line) in enumerate(cols):
            out.append(Message(
                id=j, kind="private" if private else "chat", conn=conn, sender=nicks[sender],
                text=text, to=to, frame=frame, time=time, line=line,
                deliveries=deliveries[starts[k] : starts[k + 1]],
            ))
        return out


# --------------------------------------------------------------------------- reassembly


@dataclass
class Streams:
    """Every reassembled byte stream, laid end to end in one array of bytes.

    Stream *k* (one direction of one connection) occupies ``data[begin[k]:begin[k+1]]``;
    run *i* of placed bytes starts at ``run_starts[i]`` (an offset in ``data``) and
    came from packet row ``run_rows[i]``; ``gaps`` are offsets where a hole was.
    ``data`` ends with :data:`WORD` zero bytes after the last stream, so that the
    8 bytes from any offset can be read as one number (see :func:`_line_ids`).
    """

    data: np.ndarray  # uint8
    group: np.ndarray  # (conn * 2 + direction) of each stream
    begin: np.ndarray  # len(group) + 1 offsets
    run_starts: np.ndarray
    run_rows: np.ndarray
    gaps: np.ndarray


def reassemble_all(p: Packets, rows: np.ndarray, group: np.ndarray, rel_seq: np.ndarray) -> Streams:
    """Lay each group's segments end to end, all groups at once.

    Within a group, segments are taken in (sequence number, frame) order.  The next
    byte we expect is the furthest end placed so far (starting at relative seq 1),
    so a segment is placed iff it ends beyond it; it fills a hole iff it starts
    beyond it; and only its bytes beyond it are new.  A running maximum per group
    gives that for every segment at once.  Segments before the ISN (wrapped around,
    relative seq >= 2**31) are outside the stream.
    """
    if len(rows) and group.max() < 1 << 31 and (np.diff(rows) > 0).all():  # the usual case
        order = _by_group_then_seq(group, rel_seq)
    else:
        order = np.lexsort((rows, rel_seq, group))
    g, seq, rows = group[order], rel_seq[order].astype(np.int64), rows[order]
    del order
    inside = seq < 1 << 31
    g, seq, rows = g[inside], seq[inside], rows[inside]
    caplen = p.payload_caplen[rows].astype(np.int64)
    end = seq + caplen
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    shift = g.astype(np.int64) << 34  # keeps each group's running maximum apart
    furthest = np.maximum.accumulate(shift + np.maximum(end, 1)) - shift
    del shift
    expected = np.r_[1, furthest[:-1]]
    del furthest
    expected[first] = 1
    placed = end > expected
    hole = placed & (seq > expected)
    skip = np.maximum(expected - seq, 0)
    del expected, end, first
    g, rows, seq, caplen, skip, hole = g[placed], rows[placed], seq[placed], caplen[placed], skip[placed], hole[placed]
    size = caplen - skip
    src = p.payload_offsets(rows) + skip
    del seq, caplen, skip
    starts = np.r_[0, np.cumsum(size)[:-1]] if len(size) else np.zeros(0, np.int64)
    data = _gather_runs(p.buffer, src, size, starts)
    del src, size
    first_run = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, np.int64)
    groups = g[first_run]  # g is sorted
    begin = np.r_[starts[first_run], len(data) - WORD] if len(g) else np.zeros(1, np.int64)
    return Streams(data, groups, begin.astype(np.int64), starts, rows, starts[hole])


def _by_group_then_seq(group: np.ndarray, rel_seq: np.ndarray) -> np.ndarray:
    """``np.lexsort((rows, rel_seq, group))`` for segments in capture order.

    Usually each stream's segments were captured in sequence order (no
    retransmission, no reordering): then sorting stably by stream alone (one
    16-bit radix pass for up to 32,768 connections) gives that order, which we
    check.  Otherwise one int64 key per segment is sorted (three passes).
    """
    order = stable_argsort(group)
    g, seq = group[order], rel_seq[order].astype(np.int64)
    if not ((g[1:] == g[:-1]) & (seq[1:] < seq[:-1])).any():
        return order
    return stable_argsort(group.astype(np.int64) << 32 | rel_seq.astype(np.int64))


WORD = 8  # bytes copied, and compared, as one number


def _ranges(start: np.ndarray, size: np.ndarray, step: int = 1) -> np.ndarray:
    """``start[i], start[i] + step, ...`` (``size[i]`` of them) for every i, end to end."""
    begin = np.cumsum(size) - size
    return np.arange(int(size.sum()) if len(size) else 0) * step + np.repeat(start - begin * step, size)


def _every_word(data: np.ndarray) -> np.ndarray:
    """The 8 bytes at each offset of ``data`` as one little-endian number: a view, no copy.

    (Its last 7 offsets have no whole word; ``Streams.data`` ends in zeros for that.)
    """
    return at_every_offset(data, "<u8")


def _gather_runs(buffer, src: np.ndarray, size: np.ndarray, starts: np.ndarray,
                 chunk: int = 1 << 18) -> np.ndarray:
    """``b"".join(buffer[a:a + n] for a, n in zip(src, size))``, with numpy, then
    :data:`WORD` zero bytes.

    Each run is copied 8 bytes at a time (:func:`_every_word`), and its last
    ``n % 8`` bytes one by one: numpy needs an index for every item it copies,
    and an index is 8 bytes.  Runs are copied in the order they sit in the file,
    ``chunk`` bytes' worth at a time (two at once, :mod:`.workers`), so the index
    arrays stay small and each part of the mapped file can be released
    (:func:`~.capture.release_pages`, in file order) once it has been copied.
    """
    total = int(size.sum()) if len(size) else 0
    out = np.zeros(total + WORD, dtype=np.uint8)
    buf = np.frombuffer(buffer, dtype=np.uint8)
    words_in, words_out = _every_word(buf), _every_word(out)
    in_file_order = stable_argsort(src)
    src, size, starts = src[in_file_order], size[in_file_order], starts[in_file_order]
    copied = np.cumsum(size)  # bytes copied once each run is done
    spans, lo = [], 0
    while lo < len(size):
        before = int(copied[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(copied, before + chunk, "right")), lo + 1)
        spans.append((lo, hi))
        lo = hi

    def copy(span: tuple[int, int]) -> tuple[int, int]:
        lo, hi = span
        a, n, to = src[lo:hi], size[lo:hi], starts[lo:hi]
        whole = n // WORD
        words_out[_ranges(to, whole, WORD)] = words_in[_ranges(a, whole, WORD)]
        done, rest = whole * WORD, n % WORD
        out[_ranges(to + done, rest)] = buf[_ranges(a + done, rest)]
        return span

    for lo, hi in in_order(copy, spans):  # runs go to separate places: two threads at once
        release_pages(buffer, int(src[lo]), int(src[hi - 1] + size[hi - 1]))
    return out


def find_lines(s: Streams):
    """Every complete line of every stream: (stream index, start, end) offsets in ``s.data``.

    ``end`` is just past the ``\\n``.  A line with a hole inside it is left out (we
    cannot know it); bytes after a stream's last ``\\n`` are an unfinished line.
    """
    data = np.frombuffer(s.data, dtype=np.uint8)
    step = 1 << 22  # 4 MB at a time: no 30 MB array of booleans (in fresh memory)
    newline = np.concatenate([np.flatnonzero(data[lo : lo + step] == 10) + lo
                              for lo in range(0, len(data), step)] or [np.zeros(0, np.int64)])
    stream = np.searchsorted(s.begin, newline, "right") - 1
    prev = np.r_[-1, newline[:-1]]
    same = np.r_[False, stream[1:] == stream[:-1]]
    start = np.where(same, prev + 1, s.begin[stream])
    end = newline + 1
    if not len(s.gaps):
        return stream, start, end
    holes = np.searchsorted(s.gaps, newline, "right") - np.searchsorted(s.gaps, start, "right")
    keep = holes == 0
    return stream[keep], start[keep], end[keep]


def _words(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each line's bytes as 8-byte numbers (the last one zero-padded), end to end,
    and how many each line has.  A line of L bytes has ceil(L / 8) words."""
    count = (length + WORD - 1) // WORD
    words = _every_word(data)[_ranges(start, count, WORD)]  # data ends in WORD zeros
    has = count > 0
    last = np.cumsum(count)[has] - 1
    words[last] &= _KEEP_LOW_BYTES[length[has] - (count[has] - 1) * WORD]
    return words, count


_KEEP_LOW_BYTES = np.array([(1 << 8 * r) - 1 for r in range(WORD + 1)], dtype=np.uint64)


def _splitmix64(n: int) -> np.ndarray:
    """``n`` well-mixed pseudo-random 64-bit numbers (SplitMix64; no numpy.random import)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# A random odd multiplier for each word position in a line (a valid line has at most
# 129 words; longer ones reuse them, and the word-by-word check keeps that exact).
_MULTIPLIERS = _splitmix64(4096) | np.uint64(1)


def _line_ids(data: np.ndarray, start: np.ndarray, end: np.ndarray,
              chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Number the lines by content (``data[a:b]``), in order of first appearance.

    Returns each line's id and the first line of each id.  A busy chat repeats
    one ``<nick> text`` to every client, so there are far fewer texts than lines:
    each line gets a hash of its 8-byte words (numpy, no Python object per
    line), lines with the same hash (its top 32 bits) are compared word by word
    with the first of them, and only lines that turn out to differ (a collision:
    ~n**2 / 2**33 pairs among n distinct texts, ~3 for this lab's million-packet
    benchmark) are sorted out by a dict of their bytes.
    """
    n = len(start)
    length = end - start
    hashes = np.empty(n, dtype=np.uint64)

    def hash_lines(lo: int) -> None:
        words, count = _words(data, start[lo : lo + chunk], length[lo : lo + chunk])
        position = _ranges(np.zeros(len(count), dtype=np.int64), count)  # word k of its line
        if len(count) and count.max() > len(_MULTIPLIERS):  # only past the longest valid line
            position %= len(_MULTIPLIERS)
        with np.errstate(over="ignore"):  # arithmetic modulo 2**64, on purpose
            words *= _MULTIPLIERS[position]
            h = np.zeros(len(count), dtype=np.uint64)
            h[count > 0] = np.add.reduceat(words, (np.cumsum(count) - count)[count > 0])
            h ^= length[lo : lo + chunk].astype(np.uint64) * _MULTIPLIERS[-1]
        hashes[lo : lo + chunk] = h

    for_each(hash_lines, range(0, n, chunk))
    hashes >>= np.uint64(32)  # the top 32 bits: two radix passes; the check finds collisions
    order = stable_argsort(hashes)  # stable: the first line of each hash leads
    sorted_hashes = hashes[order]
    leads = np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]] if n else np.zeros(0, bool)
    first = np.empty(n, dtype=np.int64)
    first[order] = order[np.flatnonzero(leads)][np.cumsum(leads) - 1]
    del order, sorted_hashes, leads
    # Check every line against the first line with its hash.
    others = np.flatnonzero(first != np.arange(n))
    differs = np.zeros(n, dtype=bool)

    def check(lo: int) -> None:
        mine, theirs = others[lo : lo + chunk], first[others[lo : lo + chunk]]
        same_length = length[mine] == length[theirs]
        mine, theirs = mine[same_length], theirs[same_length]
        differs[others[lo : lo + chunk][~same_length]] = True
        a, count = _words(data, start[mine], length[mine])
        b, _ = _words(data, start[theirs], length[theirs])
        has = count > 0
        unequal = np.zeros(len(mine), dtype=bool)
        unequal[has] = np.bitwise_or.reduceat(a ^ b, (np.cumsum(count) - count)[has]) != 0
        differs[mine[unequal]] = True

    for_each(check, range(0, len(others), chunk))
    firsts_seen: dict[bytes, int] = {}
    for i in np.flatnonzero(differs).tolist():
        first[i] = firsts_seen.setdefault(data[start[i] : end[i]].tobytes(), i)
    leads = first == np.arange(n)
    return (np.cumsum(leads) - 1)[first].astype(np.int32), np.flatnonzero(leads)


def _joined_lines(data: np.ndarray, start: np.ndarray, end: np.ndarray, chunk: int = 1 << 18) -> memoryview:
    """The lines ``data[a:b]`` end to end (runs copied as in reassembly), as bytes:
    a view of the copy, not a second copy (8 MB for the million-packet benchmark)."""
    size = end - start
    return memoryview(_gather_runs(data, start, size, np.cumsum(size) - size, chunk)[:-WORD])


def decode_line(raw: bytes, max_bytes: int = proto.MAX_LINE_BYTES) -> str | None:
    """A line's text as the server's LineSplitter would decode it; None if invalid."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > max_bytes:
        return None
    try:
        return raw.decode(proto.ENCODING)
    except UnicodeDecodeError:
        return None


def _decode_all(joined: bytes | memoryview) -> Sequence[str | None]:
    """``[decode_line(raw) for raw in joined.split(b"\\n")[:-1]]`` (every line ends in
    ``\\n``), decoding them all in one call when we can.

    UTF-8 never uses byte 10 inside a character, so if the whole decodes, the
    pieces between newlines are the texts.  If they are all plain ASCII and
    valid (the usual case), they stay one string: see :class:`_AsciiTexts`.
    """
    if not joined:
        return []
    try:
        decoded = str(joined, proto.ENCODING)
    except UnicodeDecodeError:
        return [decode_line(raw) for raw in bytes(joined).split(b"\n")[:-1]]
    # Over-long lines and a trailing "\r" need decode_line's rules.
    raw = np.frombuffer(joined, dtype=np.uint8)
    newline = np.flatnonzero(raw == 10)
    length = np.diff(newline, prepend=-1) - 1
    with_cr = (length > 0) & (raw[np.maximum(newline - 1, 0)] == 13)
    special = np.flatnonzero((length > proto.MAX_LINE_BYTES) | with_cr).tolist()
    if not special and decoded.isascii():
        return _AsciiTexts(decoded, newline)
    pieces = decoded.split("\n")[:-1]
    if special:
        lines = bytes(joined).split(b"\n")
        for i in special:
            pieces[i] = decode_line(lines[i])
    return pieces


class _AsciiTexts(Sequence):
    """Texts that are all ASCII, kept as one string: text ``k`` is made on demand.

    A million packets have ~160,000 distinct texts, and the analysis reads most
    of them only as bytes (:func:`_server_facts`): a string each would cost ~12 ms
    and ~14 MB of fresh memory.  In ASCII a character is a byte, so where a text
    sits in ``decoded`` is where its bytes sit in the encoded texts too.
    """

    def __init__(self, decoded: str, newline: np.ndarray) -> None:
        self.decoded = decoded  # every text, each followed by "\n"
        self.ends = newline  # where each text's "\n" is
        self.starts = np.r_[0, newline[:-1] + 1]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return self.decoded[self.starts[k] : self.ends[k]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded.split("\n")[:-1])

    def __contains__(self, text) -> bool:
        return isinstance(text, str) and text in iter(self)

    def pick(self, ids: np.ndarray) -> list[str]:
        """``[self[k] for k in ids]``, without a numpy int per id."""
        text = self.decoded
        return [text[a:b] for a, b in zip(self.starts[ids].tolist(), self.ends[ids].tolist(), strict=True)]


# --------------------------------------------------------------------------- the chat


def find_server(p: Packets, t: Flows) -> tuple[str, int] | None:
    """The endpoint that answered most connections (the first of them on a tie)."""
    counts = Counter(zip(map(p.addresses.__getitem__, t.server_address.tolist()), t.server_port.tolist()))
    return counts.most_common(1)[0][0] if counts else None


def _connections_to(p: Packets, t: Flows, server: tuple[str, int]) -> np.ndarray:
    """The ids of the connections whose responder is ``server``."""
    address_ids = [k for k, address in enumerate(p.addresses) if address == server[0]]
    return np.flatnonzero(np.isin(t.server_address, address_ids) & (t.server_port == server[1]))


class _Ids(dict):
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


def analyze_chat(p: Packets, t: Flows, server: tuple[str, int] | None = None) -> Chat:
    """The chat on ``server`` (by default, :func:`find_server`): its lines and messages."""
    server, streams = reassemble_chat(p, t, server)
    lines = find_chat_lines(p, streams, server)
    del streams  # only the distinct lines' bytes are needed from here on
    return read_chat_lines(p, lines)


def reassemble_chat(p: Packets, t: Flows, server: tuple[str, int] | None = None
                    ) -> tuple[tuple[str, int] | None, Streams]:
    """The server (``server``, or :func:`find_server`'s), and its connections' streams."""
    server = server or find_server(p, t)
    server_conns = _connections_to(p, t, server) if server else np.zeros(0, np.int64)
    data = np.flatnonzero((t.conn >= 0) & (p.payload_len > 0) & ((p.flags & RST) == 0))
    data = data[np.isin(t.conn[data], server_conns)]
    group = t.conn[data].astype(np.int64) * 2 + t.direction[data]
    return server, reassemble_all(p, data, group, t.rel_seq[data])


@dataclass
class FoundLines:
    """The chat's lines as :func:`find_chat_lines` finds them: where they are, and the
    bytes of each distinct line (by ``text_of_line``), not yet read."""

    server: tuple[str, int] | None
    conn: np.ndarray
    direction: np.ndarray
    first: np.ndarray  # first and last run of each line's bytes
    last: np.ndarray
    done: np.ndarray  # the row that carried each line's newline
    line_start: np.ndarray  # relative sequence numbers
    line_end: np.ndarray
    text_of_line: np.ndarray  # raw text id (index into distinct)
    distinct: memoryview  # each distinct line, newline included, end to end
    run_frames: np.ndarray
    gaps: int


def find_chat_lines(p: Packets, streams: Streams, server: tuple[str, int] | None) -> FoundLines:
    """The streams cut into lines, and the distinct lines found by their bytes (numpy,
    and two threads: :mod:`.workers`)."""
    stream, start, end = find_lines(streams)
    first = np.searchsorted(streams.run_starts, start, "right") - 1
    last = np.searchsorted(streams.run_starts, end - 1, "right") - 1
    done = streams.run_rows[last]  # the row that carried each line's newline
    g = streams.group[stream]
    local = start - streams.begin[stream]  # offset inside its own stream
    # By completing frame; a frame's lines are in stream order, as find_lines gave them
    # (one frame carries bytes of one stream only).
    order = stable_argsort(p.frame[done])
    del stream
    start, end, local, g = (x[order] for x in (start, end, local, g))
    first, last, done = (x[order].astype(np.int32) for x in (first, last, done))
    conn = (g >> 1).astype(np.int32)
    direction = (g & 1).astype(np.int8)
    line_start, line_end = local + 1, local + (end - start) + 1  # relative seq numbers
    del order, g, local

    # ---- each distinct text, once (same lines found by a hash: _line_ids)
    text_of_line, firsts = _line_ids(streams.data, start, end)
    distinct = _joined_lines(streams.data, start[firsts], end[firsts])
    del start, end, firsts
    return FoundLines(server, conn, direction, first, last, done, line_start, line_end,
                      text_of_line, distinct, p.frame[streams.run_rows], len(streams.gaps))


def read_chat_lines(p: Packets, found: FoundLines) -> Chat:
    """What each line says (decoded, parsed: Python's work, one text at a time), who
    sent it to whom, and each message's deliveries.

    ``found`` is used up: its bytes and line ids are let go of as soon as they are
    read (they would otherwise be held through the fan-out, the peak of memory).
    """
    f = found
    server, conn, direction, first, last, done = f.server, f.conn, f.direction, f.first, f.last, f.done
    text_of_line, distinct = f.text_of_line, f.distinct
    f.done = f.text_of_line = f.distinct = None
    texts = _decode_all(distinct)
    del distinct
    if None in texts:  # some lines are invalid (not UTF-8, too long): renumber the valid ones
        valid = [text is not None for text in texts]
        text_id = np.full(len(texts), NONE, dtype=np.int32)  # raw id -> valid text id
        text_id[valid] = np.arange(sum(valid))
        texts = [text for text in texts if text is not None]
        line_text = text_id[text_of_line]
        del text_id
    else:  # the usual case: the raw ids are the valid ids
        line_text = text_of_line
    del text_of_line
    valid = line_text >= 0

    nicks, commands = _Ids(), _Ids()
    kinds = _kinds_of_texts(texts, line_text, direction, nicks, commands)
    n = len(line_text)
    line_kind = np.full(n, INVALID, dtype=np.uint8)
    server_line = valid & (direction == 1)
    client_line = valid & (direction == 0)
    st = line_text[server_line]
    line_kind[server_line] = kinds.server_kind[st]
    line_nick = np.full(n, NONE, dtype=np.int32)
    line_nick[server_line] = kinds.server_nick[st]
    line_command = np.full(n, NONE, dtype=np.int16)

    # ---- nicknames over time
    n_conn = int(conn.max()) + 1 if len(conn) else 0
    ids = np.arange(n)
    welcome = server_line & (kinds.welcome[line_text] >= 0)
    first_welcome = np.full(n_conn + 1, n, dtype=np.int64)
    np.minimum.at(first_welcome, conn[welcome], ids[welcome])
    before_welcome = client_line & (ids < first_welcome[conn])
    rename = server_line & (kinds.rename_from[line_text] >= 0)
    sets_nick = before_welcome & ~kinds.slash[line_text]
    changes, nick_of_conn = _follow_nicks(
        np.flatnonzero(welcome | rename | sets_nick).tolist(), line_text, conn, direction,
        kinds, texts, nicks)
    # A server line goes to the nick its connection had *before* it; a client line
    # is from the nick its connection had *after* it (its own first line sets it).
    # (Two binary searches over hundreds of thousands of lines: both at once.)
    line_recipient = np.full(n, NONE, dtype=np.int32)
    asked = ((conn[server_line], ids[server_line], n, False), (conn[client_line], ids[client_line], n, True))
    line_recipient[server_line], line_nick[client_line] = in_order(lambda ask: _nick_at(changes, *ask), asked)
    del asked
    line_kind[before_welcome] = NICKNAME
    after_welcome = client_line & ~before_welcome
    ct = line_text[after_welcome]
    line_kind[after_welcome] = kinds.client_kind[ct]
    line_command[after_welcome] = kinds.client_command[ct]

    tps = take(p.ts_tps, done)  # one resolution for all packets: no memory per line
    chat = Chat(
        server=server, nick_of_conn=nick_of_conn, gaps=f.gaps,
        texts=texts, nicks=nicks.names, commands=commands.names,
        run_frames=f.run_frames,
        line_conn=conn, line_direction=direction, line_text=line_text, line_kind=line_kind,
        line_nick=line_nick, line_command=line_command, line_recipient=line_recipient,
        line_start=f.line_start, line_end=f.line_end,
        line_first_run=first, line_last_run=last,
        line_frame=p.frame[done],
        line_time=p.seconds(done), line_ticks=p.ts_ticks[done],
        line_per_second=tps,
        msg_line=np.zeros(0, np.int64), msg_private=np.zeros(0, bool), msg_payload=np.zeros(0, np.int32),
        msg_text_id=np.zeros(0, np.int32), payloads=[], addressee_of_text=[],
        delivery_start=np.zeros(1, np.int64), delivery_line=np.zeros(0, np.int64),
        delivery_latency=np.zeros(0, np.float64),
    )
    del ids, done, st, ct, welcome, rename, sets_nick, before_welcome
    _fan_out(chat, kinds, after_welcome)
    return chat


@dataclass
class _TextFacts:
    """What each distinct text means, as a server line and as a client line (by text id)."""

    server_kind: np.ndarray
    server_nick: np.ndarray  # chat/private: the sender's nick id
    server_payload: np.ndarray  # chat/private: the id of the text after the sigil
    welcome: np.ndarray  # reply "Welcome, X! ...": X's nick id
    rename_from: np.ndarray  # notice "X is now known as Y": X and Y's nick ids
    rename_to: np.ndarray
    slash: np.ndarray  # bool: starts with "/"
    client_kind: np.ndarray
    client_command: np.ndarray
    message_private: np.ndarray  # client line as a message: -1 none, 0 chat, 1 private
    message_payload: np.ndarray  # its sanitised text's id
    message_to: list  # private: the addressee
    payloads: _Ids  # the texts compared by the fan-out


def _kinds_of_texts(texts, line_text, direction, nicks: _Ids, commands: _Ids) -> _TextFacts:
    """Parse each distinct text once, in the direction(s) it was seen."""
    m = len(texts)
    seen_as = np.zeros((m, 2), dtype=bool)
    valid = line_text >= 0
    seen_as[line_text[valid], direction[valid]] = True
    # One entry more than texts: text id -1 (an invalid line) picks that "nothing" entry.
    f = _TextFacts(*(np.full(m + 1, NONE, dtype=np.int32) for _ in range(6)),
                   slash=np.zeros(m + 1, dtype=bool), client_kind=np.full(m + 1, NONE, dtype=np.int8),
                   client_command=np.full(m + 1, NONE, dtype=np.int16),
                   message_private=np.full(m + 1, NONE, dtype=np.int8),
                   message_payload=np.full(m + 1, NONE, dtype=np.int32), message_to=[None] * (m + 1),
                   payloads=_Ids())
    server_ids = np.flatnonzero(seen_as[:, 1])
    _server_facts(f, texts, server_ids, nicks)
    client_ids = np.flatnonzero(seen_as[:, 0])
    _client_facts(f, _pick(texts, client_ids), client_ids, commands)
    return f


def _pick(values: Sequence, ids: np.ndarray) -> list:
    """``[values[k] for k in ids]``, indexed by numpy in C: no Python int per id
    (``ids.tolist()`` for 137,000 ids: ~10 ms and ~1,800 fresh pages)."""
    if isinstance(values, _AsciiTexts):
        return values.pick(ids)
    return np.array(values, dtype=object)[ids].tolist()


def _columns(rows: list[tuple], width: int) -> np.ndarray:
    """findall's tuples as ``width`` object arrays, one per group (for numpy comparisons)."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=object, count=width * len(rows))
    return flat.reshape(-1, width).T


# proto.parse_server_line as one regular expression over many lines at once: a
# sigil, or "<nick> " (chat), or "*nick* " (private), then the rest of the line.
_SERVER_LINES = re.compile(
    "^(?:(" + "|".join(re.escape(s) for s in (proto.NOTICE_SIGIL, proto.REPLY_SIGIL, proto.ERROR_SIGIL))
    + ")|" + proto.FROM_NICK + ")?(.*)$",
    re.MULTILINE,
)
_SIGIL_KIND = {proto.NOTICE_SIGIL: NOTICE, proto.REPLY_SIGIL: REPLY, proto.ERROR_SIGIL: ERROR}


def _nick_stops(opener: str, closer: str) -> np.ndarray:
    """For each byte value: does it end the nick after ``opener``?  Asked of
    :data:`_SERVER_LINES` itself, one ASCII character at a time.  Bytes from 128 up
    stop too: they may be part of a Unicode space, which the regex then settles."""
    stops = np.ones(256, dtype=bool)
    for b in range(128):
        found = _SERVER_LINES.match(f"{opener}{chr(b)}{closer} text")
        stops[b] = not (found and chr(b) in (found[2], found[3]))
    assert stops[ord(closer)]  # the scan below relies on it: the nick cannot hold its closer
    return stops


# The two prefixes with a nick ("<nick> ", "*nick* "): row 0 and 1 of the stop table.
_NICK_OPENERS, _NICK_CLOSERS = np.array([ord("<"), ord("*")]), np.array([ord(">"), ord("*")])
_NICK_STOPS = np.array([_nick_stops("<", ">"), _nick_stops("*", "*")])
_NICK_SCAN = proto.NICK_MAX_CHARS + 1  # bytes looked at; a longer run goes to the regex


def _server_facts(f: _TextFacts, texts: Sequence[str], ids: np.ndarray, nicks: _Ids) -> None:
    """:func:`tcpchatx.protocol.parse_server_line` for texts ``ids``, all at once.

    A busy chat has a distinct ``<nick> text`` per message: hundreds of thousands
    of texts, made of a few thousand nicks and payloads.  So the texts are read
    as bytes, all at once (numpy): each one's sigil, or where its ``<nick> `` or
    ``*nick* `` ends.  Nicks and payloads are numbered by their bytes
    (:func:`_line_ids`), and only the distinct ones become Python strings.  The
    few texts the byte scan cannot settle (a non-ASCII byte, or a run longer than
    any nick, where a nick would be) go to the regular expression.  A test checks
    all this against ``parse_server_line``.
    """
    n = len(ids)
    if n == 0:
        return
    data, start, end = _as_bytes(texts, ids)
    kind = np.full(n, NOTICE, dtype=np.int32)  # no sigil, no nick: a plain notice
    skip = np.zeros(n, dtype=np.int64)  # bytes (= characters) before the rest: a sigil's
    for mark, code in _SIGIL_KIND.items():
        hit = _starts_with(data, start, mark.encode())
        kind[hit], skip[hit] = code, len(mark)
    # "<nick> " or "*nick* ": the nick runs up to the first byte that cannot be in it.
    first = data[start]
    maybe = np.flatnonzero((skip == 0) & np.isin(first, _NICK_OPENERS))
    which = (first[maybe] == _NICK_OPENERS[1]).astype(np.intp)
    at = start[maybe] + 1  # the byte looked at, for each text
    running = np.arange(len(maybe))
    for _ in range(_NICK_SCAN):
        running = running[~_NICK_STOPS[which[running], data[at[running]]]]
        at[running] += 1
    stop = data[at]
    unsure = stop >= 128
    unsure[running] = True
    closed = ~unsure & (stop == _NICK_CLOSERS[which]) & (at > start[maybe] + 1) & (data[at + 1] == ord(" "))
    by_bytes, at, which = maybe[closed], at[closed], which[closed]
    kind[by_bytes] = np.where(which == 1, PRIVATE, CHAT)
    nick_of = np.empty(n, dtype=object)
    payload_of = np.empty(n, dtype=object)
    nick_of[by_bytes] = _distinct_strings(data, start[by_bytes] + 1, at)
    payload_of[by_bytes] = _distinct_strings(data, at + 2, end[by_bytes])
    by_regex = maybe[unsure]
    if len(by_regex):
        _, chat_nick, private_nick, rest = _columns(_SERVER_LINES.findall("\n".join(_pick(texts, ids[by_regex]))), 4)
        is_chat, is_private = chat_nick != "", private_nick != ""
        kind[by_regex[is_chat]], kind[by_regex[is_private]] = CHAT, PRIVATE
        nick_of[by_regex] = np.where(is_chat, chat_nick, private_nick)
        payload_of[by_regex] = rest
    f.server_kind[ids] = kind
    said = np.flatnonzero((kind == CHAT) | (kind == PRIVATE))
    f.server_nick[ids[said]] = nicks.ids_of(nick_of[said].tolist())
    f.server_payload[ids[said]] = f.payloads.ids_of(payload_of[said].tolist())
    del nick_of, payload_of
    # Replies may welcome a nick, notices may rename one (one findall each; ""
    # where a line is neither).  Nick ids in line order, old name before new.
    rows = np.flatnonzero(kind == REPLY)
    rows = rows[_starts_with(data, start[rows] + skip[rows], _WELCOME_START.encode())]
    name = np.array(_each_line(_WELCOMES, _rests(texts, ids[rows], skip[rows])), dtype=object)
    rows, name = rows[name != ""], name[name != ""]
    f.welcome[ids[rows]] = nicks.ids_of(name.tolist())
    rows = np.flatnonzero(kind == NOTICE)
    old_new = _columns(_each_line(_RENAMES, _rests(texts, ids[rows], skip[rows])), 2).T
    renamed = old_new[:, 0] != ""
    rows, old_new = rows[renamed], old_new[renamed]
    old_then_new = nicks.ids_of(old_new.ravel().tolist()).reshape(-1, 2)
    f.rename_from[ids[rows]], f.rename_to[ids[rows]] = old_then_new.T


def _starts_with(data: np.ndarray, offsets: np.ndarray, prefix: bytes) -> np.ndarray:
    """Whether the bytes at each offset begin with ``prefix``, compared 8 at a time
    (``data`` must go on for 8 bytes past where the prefix could end)."""
    found = np.ones(len(offsets), dtype=bool)
    for k in range(0, len(prefix), WORD):
        part = prefix[k : k + WORD]
        low = _KEEP_LOW_BYTES[len(part)]
        found &= (_every_word(data)[offsets + k] & low) == np.uint64(int.from_bytes(part, "little"))
    return found


def _distinct_strings(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``data[a:b]`` decoded, for each range, as an object array: one string for each
    distinct content (:func:`_line_ids`), shared by the ranges that hold it."""
    ids, firsts = _line_ids(data, start, end)
    strings = [data[a:b].tobytes().decode("utf-8", "surrogatepass")
               for a, b in zip(start[firsts].tolist(), end[firsts].tolist(), strict=True)]
    return np.array(strings, dtype=object)[ids]


def _rests(texts: Sequence[str], ids: np.ndarray, skip: np.ndarray) -> list[str]:
    """What follows each text's sigil, ``skip`` characters (the whole text if it has none)."""
    return [text[s:] for text, s in zip(_pick(texts, ids), skip.tolist(), strict=True)]


def _as_bytes(texts: Sequence[str], ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts ``ids`` as bytes: one array of them, each followed by a newline, then zeros
    that the scans may read past the end (see :func:`_words`); where each text starts,
    and where its newline is.  ASCII texts are encoded whole (the others among them
    are skipped by the offsets); other texts are joined first."""
    if isinstance(texts, _AsciiTexts):
        encoded, start, end = texts.decoded.encode("ascii"), texts.starts[ids], texts.ends[ids]
    else:
        encoded = ("\n".join(_pick(texts, ids)) + "\n").encode("utf-8", "surrogatepass")
        start = end = None
    data = np.zeros(len(encoded) + _NICK_SCAN + WORD, dtype=np.uint8)
    data[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
    if end is None:
        end = np.flatnonzero(data == 10)  # one newline after each text
        assert len(end) == len(ids)  # no text holds a newline
        start = np.r_[0, end[:-1] + 1]
    return data, start, end


# _WELCOME and _RENAMED as patterns that match every line, with empty groups if they do not.
_WELCOMES = re.compile("^(?:" + _WELCOME.pattern.removeprefix("^") + ")?.*$", re.MULTILINE)
_RENAMES = re.compile("^(?:" + _RENAMED.pattern.removeprefix("^").removesuffix("$") + "|.*)$",
                      re.MULTILINE)


def _each_line(every_line: re.Pattern, texts) -> list:
    """``every_line``'s groups for each text (no newlines in them), found by one findall:
    it matches any line, so there is one result per text."""
    found = every_line.findall("\n".join(texts)) if len(texts) else []
    assert len(found) == len(texts)
    return found


# proto.parse_client_line as one regular expression: "//text" (chat "/text"),
# "/name arg" (a command), or chat.
_CLIENT_LINES = re.compile(r"^(?:/(/.*)|(/)([^ \n]*)(?: (.*))?|(.*))$", re.MULTILINE)
_remove_unsafe = functools.partial(proto.UNSAFE_CHARACTERS.sub, "")  # proto.sanitize(text)[0]


def _client_facts(f: _TextFacts, texts: list[str], ids: np.ndarray, commands: _Ids) -> None:
    """:func:`tcpchatx.protocol.parse_client_line` for many texts at once (see
    :func:`_server_facts`), and what each means as a message: chat or private, the
    sanitised text the server will relay, and the addressee."""
    if not texts:
        return
    parts = _CLIENT_LINES.findall("\n".join(texts))
    assert len(parts) == len(texts)  # one match per line; no text holds a newline
    slash_text, slash, name, arg, plain = _columns(parts, 5)
    command = slash == "/"
    f.slash[ids] = command | (slash_text != "")
    f.client_kind[ids] = np.where(command, LINE_KIND_CODE["command"], LINE_KIND_CODE["message"])
    names = [x.lower() for x in name[command]]
    f.client_command[ids[command]] = commands.ids_of(names)
    # Chat messages: relayed (sanitised) unless blank.
    said = np.where(slash_text != "", slash_text, plain)  # "//x" says "/x"
    chat_rows = np.flatnonzero(~command)
    chat_rows = chat_rows[[bool(x.strip()) for x in said[chat_rows]]]
    f.message_private[ids[chat_rows]] = 0
    f.message_payload[ids[chat_rows]] = f.payloads.ids_of(list(map(_remove_unsafe, said[chat_rows])))
    # "/msg bob text": private, to bob (the texts in Python; the columns set in bulk).
    rows = np.flatnonzero(command)[[x == "msg" for x in names]]
    private, bodies, addressees = [], [], []
    for r, text in zip(rows.tolist(), arg[rows].tolist(), strict=True):
        to, _, body = text.strip().partition(" ")
        body = _remove_unsafe(body.strip())
        if to and body:
            private.append(r)
            bodies.append(body)
            addressees.append(to)
    private = ids[private]
    f.message_private[private] = 1
    f.message_payload[private] = f.payloads.ids_of(bodies)
    for k, to in zip(private.tolist(), addressees, strict=True):
        f.message_to[k] = to


def _follow_nicks(event_lines, line_text, conn, direction, kinds: _TextFacts, texts, nicks: _Ids):
    """Replay the lines that change nicknames; return the changes and the final nicks.

    The changes are ``(keys, nick ids)`` sorted by key ``conn * (n + 1) + line``.
    """
    nick: dict[int, int] = {}  # conn -> nick id (NONE: no valid nick)
    holders: dict[int, set[int]] = {}  # nick id -> connections using it
    change_conn: list[int] = []
    change_line: list[int] = []
    change_nick: list[int] = []
    checked: dict[str, int] = {}

    def set_nick(c: int, name: int, line: int) -> None:
        if c in nick:
            holders[nick[c]].discard(c)
        nick[c] = name
        holders.setdefault(name, set()).add(c)
        change_conn.append(c)
        change_line.append(line)
        change_nick.append(name)

    text = line_text[event_lines]
    for i, c, d, k, welcome, old, new in zip(
            event_lines, conn[event_lines].tolist(), direction[event_lines].tolist(), text.tolist(),
            kinds.welcome[text].tolist(), kinds.rename_from[text].tolist(), kinds.rename_to[text].tolist(),
            strict=True):
        if d == 0:  # a client's line before its welcome: a nickname
            if k not in checked:
                checked[k] = nicks.get_id(proto.check_nick(texts[k])[0])
            set_nick(c, checked[k], i)
        elif welcome >= 0:
            set_nick(c, welcome, i)
        else:
            for other in sorted(holders.get(old, ())):
                set_nick(other, new, i)
    n = len(line_text)
    keys = np.array(change_conn, dtype=np.int64) * (n + 1) + np.array(change_line, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    final = {c: nicks.names[x] for c, x in nick.items() if x != NONE}
    return (keys[order], np.array(change_nick, dtype=np.int32)[order]), final


def _nick_at(changes, conn: np.ndarray, line: np.ndarray, n: int, after: bool) -> np.ndarray:
    """Each connection's nick id just before (or just after) the given line."""
    keys, values = changes
    want = conn.astype(np.int64) * (n + 1) + line
    pos = np.searchsorted(keys, want, "right" if after else "left") - 1
    ok = pos >= 0
    pos = np.maximum(pos, 0)
    if len(keys):
        ok &= keys[pos] // (n + 1) == conn
        return np.where(ok, values[pos], NONE).astype(np.int32)
    return np.full(len(conn), NONE, dtype=np.int32)


def _fan_out(chat: Chat, kinds: _TextFacts, after_welcome: np.ndarray) -> None:
    """Match each client message with the lines the server sent because of it."""
    n = chat.n_lines
    n_nicks = len(chat.nicks) + 1
    # A key per (kind, nick, text): a message's and the server lines it should cause.
    def key(private, nick, payload):
        return (payload.astype(np.int64) * n_nicks + nick + 1) * 2 + private

    line_text = chat.line_text  # -1 picks the facts' "nothing" entry
    kind = chat.line_kind
    outbound = np.flatnonzero((chat.line_direction == 1) & ((kind == CHAT) | (kind == PRIVATE)))
    out_key = key((kind[outbound] == PRIVATE).astype(np.int64), chat.line_nick[outbound],
                  kinds.server_payload[line_text[outbound]])
    by_key = stable_argsort(out_key)  # line order within a key
    outbound, out_key = outbound[by_key], out_key[by_key]

    sent = after_welcome & (kinds.message_private[line_text] >= 0)
    msg_line = np.flatnonzero(sent)
    msg_private = kinds.message_private[line_text[msg_line]].astype(bool)
    msg_key = key(msg_private.astype(np.int64), chat.line_nick[msg_line],
                  kinds.message_payload[line_text[msg_line]])
    # Each message's lines: out_key[lo:hi].  (Looked up in key order, each search
    # starts where the one before ended: ~5x faster than in line order.)
    by_msg_key = stable_argsort(msg_key)
    sorted_keys = msg_key[by_msg_key]
    lo, hi = np.empty_like(msg_key), np.empty_like(msg_key)
    lo[by_msg_key] = np.searchsorted(out_key, sorted_keys, "left")
    hi[by_msg_key] = np.searchsorted(out_key, sorted_keys, "right")
    chat.msg_line, chat.msg_private, chat.msg_text_id = msg_line, msg_private, line_text[msg_line]
    chat.msg_payload = kinds.message_payload[chat.msg_text_id]
    chat.payloads, chat.addressee_of_text = kinds.payloads.names, kinds.message_to

    # Messages that share a key compete for its lines: those go through a loop below.
    same_as_next = sorted_keys[1:] == sorted_keys[:-1]
    shared = np.zeros(len(msg_line), dtype=bool)
    shared[by_msg_key] = np.r_[False, same_as_next] | np.r_[same_as_next, False]
    del sorted_keys, same_as_next
    if msg_private.any():
        # Nicks compare as the server compares them (proto.nick_key): ids of those keys.
        keys_of: dict[str, int] = {}
        nick_key_id = np.array([keys_of.setdefault(k, len(keys_of)) for k in map(proto.nick_key, chat.nicks)]
                               + [NONE], dtype=np.int64)
        sent_privately = np.zeros(len(kinds.message_to), dtype=bool)  # the private messages' texts
        sent_privately[chat.msg_text_id[msg_private]] = True
        texts_to = np.flatnonzero(sent_privately)
        key_of_text = np.full(len(kinds.message_to), NONE, dtype=np.int64)  # each addressee's key id
        key_of_text[texts_to] = [keys_of.setdefault(proto.nick_key(kinds.message_to[k]), len(keys_of))
                                 for k in texts_to.tolist()]

    # Candidate pairs (message, outbound line), message by message, in line order.
    # (int32 where it fits: these arrays are the fan-out's peak of memory)
    count = hi - lo
    pair_start = np.r_[0, np.cumsum(count)]
    pair_msg = np.repeat(np.arange(len(msg_line), dtype=np.int32), count)
    out_line = np.empty(len(pair_msg), dtype=np.int32)
    ok = np.empty(len(pair_msg), dtype=bool)  # the line may be a delivery of the message
    chosen = np.zeros(len(pair_msg), dtype=bool)
    outbound = outbound.astype(np.int32)
    width = int(chat.line_conn.max()) + 2 if n else 2  # connections, and one for "any"

    def check_pairs(messages: slice) -> None:
        """The pairs of some messages: ``ok``, and ``chosen`` for messages that stand alone."""
        pairs = slice(int(pair_start[messages.start]), int(pair_start[messages.stop]))
        msg, line = pair_msg[pairs], outbound[_ranges(lo[messages], count[messages])]
        out_line[pairs] = line
        m_line = msg_line[msg]
        good = chat.line_conn[line] != chat.line_conn[m_line]
        t_out, t_msg = chat.line_time[line], chat.line_time[m_line]
        good &= ~((t_out < t_msg) | ((t_out == t_msg) & (chat.line_frame[line] < chat.line_frame[m_line])))
        del t_out, t_msg, m_line
        private = msg_private[msg]
        rows = np.flatnonzero(private)  # a private message's line must go to its addressee
        if len(rows):
            recipient = nick_key_id[chat.line_recipient[line[rows]]]  # NONE -> last entry (NONE)
            addressee = key_of_text[chat.msg_text_id[msg[rows]]]
            good[rows] &= (recipient == NONE) | (addressee == NONE) | (recipient == addressee)
        ok[pairs] = good
        # Alone: the first acceptable line per (message, connection); private: only the first.
        cand = np.flatnonzero(good & ~shared[msg])
        group = msg[cand].astype(np.int64) * width + np.where(private[cand], width - 1, chat.line_conn[line[cand]])
        _, first = np.unique(group, return_index=True)
        chosen[pairs.start + cand[first]] = True

    half = len(msg_line) // 2  # two halves of the messages at once (.workers): their pairs apart
    for_each(check_pairs, (slice(0, half), slice(half, len(msg_line))))
    # Shared keys: in message order, each takes lines the earlier ones left.
    used: set[int] = set()
    conn_of = chat.line_conn
    for j in np.flatnonzero(shared).tolist():
        a, b = np.searchsorted(pair_msg, [j, j + 1]).tolist()
        seen: set[int] = set()
        for x in range(a, b):
            if not ok[x]:
                continue
            line = int(out_line[x])
            c = int(conn_of[line])
            if line in used or c in seen:
                continue
            used.add(line)
            seen.add(c)
            chosen[x] = True
            if msg_private[j]:
                break
    picked = np.flatnonzero(chosen)
    d_msg, d_line = pair_msg[picked].astype(np.int64), out_line[picked].astype(np.int64)
    del picked
    pair_msg = out_line = ok = chosen = None  # a million-packet chat: 30 MB, freed here
    chat.delivery_line = d_line
    chat.delivery_start = np.searchsorted(d_msg, np.arange(len(msg_line) + 1))
    chat.delivery_latency = _latencies(chat, msg_line[d_msg], d_line)


def _latencies(chat: Chat, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Seconds from each line in ``earlier`` to its line in ``later``.

    Exact when both timestamps have the same resolution: the tick difference
    divided by the ticks per second, correctly rounded (:func:`.packets.exact_ratio`).
    """
    per_second = chat.line_per_second[later]
    same_res = chat.line_per_second[earlier] == per_second
    ticks = chat.line_ticks[later] - chat.line_ticks[earlier]
    return np.where(same_res, exact_ratio(ticks, per_second),
                    chat.line_time[later] - chat.line_time[earlier])
