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
        events: list[FrameEvent] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            chunk = data[start:newline]
            start = newline + 1
            if self._discarding:
                self._discarding = False
                self._buffer.clear()
                continue
            if self._buffer:
                self._buffer += chunk
                raw = bytes(self._buffer)
                self._buffer.clear()
            else:
                raw = chunk
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            events.append(self._decode(raw))
        rest = data[start:]
        if not self._discarding and rest:
            self._buffer += rest
            if len(self._buffer) > self.max_line_bytes + 1 or (
                len(self._buffer) == self.max_line_bytes + 1 and not self._buffer.endswith(b"\r")
            ):
                self._buffer.clear()
                self._discarding = True
                events.append(LineTooLong(self.max_line_bytes))
        return events

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
