"""Framing: where the bytes go, how they become lines, and how a line goes back out.

TCP delivers a byte stream in chunks of any size; :class:`LineSplitter` cuts it into
complete lines, with a cap on what it buffers.  This is the lowest layer: it knows
bytes and UTF-8, not what a line says, so it imports nothing from its siblings.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 25000
MAX_LINE_BYTES = 1024  # longest line, in bytes, without its terminator
ENCODING = "utf-8"


@dataclass(frozen=True)
class Line:
    """One complete, valid line of text (terminator removed)."""

    text: str


@dataclass(frozen=True)
class LineTooLong:
    """A line went past MAX_LINE_BYTES; everything up to its end was discarded."""

    limit: int


@dataclass(frozen=True)
class InvalidUtf8:
    """A complete line that is not valid UTF-8; it was discarded."""

    raw: bytes


FrameEvent = Line | LineTooLong | InvalidUtf8


class LineSplitter:
    """Bytes in, complete lines out.

    Invariant: ``self._buffer`` never holds more than ``max_line_bytes + 1`` bytes
    (the extra byte is a possible ``\\r`` waiting for its ``\\n``), so a peer that
    never sends a newline costs bounded memory.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line, waiting for its end

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add received bytes; return the events for every line they complete."""
        first = data.find(b"\n")
        if first < 0:  # no line ends here: all of it waits for its newline
            events: list[FrameEvent] = []
            self._keep(data, events)
            return events
        # The first line ends what came before it: the buffered start of a line, or
        # the rest of one too long to keep.
        if self._discarding:
            self._discarding = False
            self._buffer.clear()
            events = []
        elif self._buffer:
            self._buffer += data[:first]
            events = [self._line(bytes(self._buffer))]
            self._buffer.clear()
        else:
            events = [self._line(data[:first])]
        last = data.rfind(b"\n")
        if last > first:  # whole lines in between: nothing buffered is part of them
            events += self._whole_lines(data[first + 1 : last])
        self._keep(data[last + 1 :], events)
        return events

    def _line(self, raw: bytes) -> FrameEvent:
        """One complete line, its ``\\n`` removed: the rule for every line."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return self._decode(raw)

    def _whole_lines(self, block: bytes) -> list[FrameEvent]:
        """:meth:`_line` for each line of ``block`` (complete lines, joined by ``\\n``).

        A server reads hundreds of lines per ``recv``, nearly always short ASCII ones.
        ASCII bytes are their own characters and always valid, so such a block is
        decoded and split in two C calls; anything else goes one line at a time."""
        if block.isascii():
            texts = block.decode("ascii").split("\n")
            if b"\r" in block:
                texts = [text[:-1] if text.endswith("\r") else text for text in texts]
            if max(map(len, texts)) <= self.max_line_bytes:
                return [Line(text) for text in texts]
        return [self._line(raw) for raw in block.split(b"\n")]

    def _keep(self, rest: bytes, events: list[FrameEvent]) -> None:
        """Buffer the start of a line; refuse it once it cannot fit any more."""
        if not self._discarding and rest:
            self._buffer += rest
            if len(self._buffer) > self.max_line_bytes + 1 or (
                len(self._buffer) == self.max_line_bytes + 1 and not self._buffer.endswith(b"\r")
            ):
                self._buffer.clear()
                self._discarding = True
                events.append(LineTooLong(self.max_line_bytes))

    def _decode(self, raw: bytes) -> FrameEvent:
        if len(raw) > self.max_line_bytes:
            return LineTooLong(self.max_line_bytes)
        try:
            return Line(raw.decode(ENCODING))
        except UnicodeDecodeError:
            return InvalidUtf8(raw)

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished line."""
        return len(self._buffer)


def encode_line(text: str) -> bytes:
    """One protocol line on the wire: UTF-8 text and a ``\\n``."""
    return text.encode(ENCODING) + b"\n"
