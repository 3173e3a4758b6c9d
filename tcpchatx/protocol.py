"""The TCPChatX wire protocol, with no sockets and no threads (sans-IO).

Theory of operation
-------------------
The protocol is line-based UTF-8 text, so a person can speak it with
``nc localhost 25000``.  Bytes arrive in arbitrary chunks; :class:`LineSplitter`
turns them into complete lines (``\\n`` or ``\\r\\n``), refusing lines longer than
:data:`MAX_LINE_BYTES` and lines that are not valid UTF-8.  Splitting happens on
bytes *before* decoding, so a multi-byte character cut in two by TCP is never
decoded half-way (the byte ``0x0A`` cannot occur inside a UTF-8 sequence).

Every line the server sends starts with a sigil that says its kind, so that a
human, the terminal client, the analysis and the Wireshark dissector can all
tell them apart::

    <alice> hello everyone          chat      (a broadcast from alice)
    *alice* psst                    private   (alice wrote to you alone)
    *** bob joined (2 online)       notice    (the server, to everyone)
    --- Online (2): alice, bob      reply     (the server, to you only)
    !!! Nickname "server" is taken  error     (the server, to you only)

The full description is in ``docs/protocol.md``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 25000
MAX_LINE_BYTES = 1024  # longest line, in bytes, without its terminator
NICK_MAX_CHARS = 16
RESERVED_NICKS = frozenset(
    {"server", "admin", "root", "system", "everyone", "all", "nobody", "tcpchatx"}
)
ENCODING = "utf-8"


# --------------------------------------------------------------------------- framing


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


# --------------------------------------------------------------------------- sanitising

# Bidirectional embeddings, overrides and isolates (Trojan Source, CVE-2021-42574),
# the implicit direction marks, and invisible zero-width characters.
_INVISIBLE = (
    "\u061c\u200e\u200f"  # ALM, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE PDF LRO RLO
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI
    "\u200b\u200c\u200d\u2060\ufeff\u180e"  # zero-width space/joiners, word joiner, BOM
)
# C0 controls except TAB, DEL, C1 controls, and the invisible characters above.
# Public: the analysis removes them from many texts at once (UNSAFE_CHARACTERS.sub).
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f" + _INVISIBLE + "]")


def sanitize(text: str) -> tuple[str, int]:
    """Remove characters that could repaint a terminal or hide text.

    Returns the clean text and how many characters were removed.
    """
    clean, removed = UNSAFE_CHARACTERS.subn("", text)
    return clean, removed


# --------------------------------------------------------------------------- nicknames


def nick_key(nick: str) -> str:
    """The identity of a nickname: ``Alice``, ``ALICE`` and ``Ａｌｉｃｅ`` are one."""
    return unicodedata.normalize("NFKC", nick).casefold()


def check_nick(raw: str) -> tuple[str | None, str | None]:
    """Validate a proposed nickname.

    Returns ``(nick, None)`` with the NFKC-normalised nickname, or
    ``(None, reason)`` saying what is wrong in words a student understands.
    Uniqueness is the room's business, not this function's.
    """
    nick = unicodedata.normalize("NFKC", raw.strip())
    if not nick:
        return None, "A nickname cannot be empty."
    if len(nick) > NICK_MAX_CHARS:
        return None, f"A nickname has at most {NICK_MAX_CHARS} characters."
    if not nick[0].isalpha():
        return None, "A nickname starts with a letter."
    if not nick.replace("_", "").replace("-", "").isalnum():  # each character, at C speed
        return None, "A nickname may use letters, digits, '_' and '-' only."
    if nick.casefold() in RESERVED_NICKS:
        return None, f'The nickname "{nick}" is reserved.'
    return nick, None


# --------------------------------------------------------------------------- line kinds


class Kind(str, Enum):
    """What a line means.  The same names appear in the analysis and the dissector."""

    CHAT = "chat"  # server -> client: a broadcast from a nick
    PRIVATE = "private"  # server -> client: a private message from a nick
    NOTICE = "notice"  # server -> everyone
    REPLY = "reply"  # server -> you, answering a command
    ERROR = "error"  # server -> you, something you sent was refused
    NICKNAME = "nickname"  # client -> server: the first line, a nickname
    COMMAND = "command"  # client -> server: /help, /online, /quit, /nick, /msg
    MESSAGE = "message"  # client -> server: anything else is chat text


NOTICE_SIGIL = "*** "
REPLY_SIGIL = "--- "
ERROR_SIGIL = "!!! "


def chat_line(nick: str, text: str) -> str:
    return f"<{nick}> {text}"


def private_line(nick: str, text: str) -> str:
    return f"*{nick}* {text}"


def notice_line(text: str) -> str:
    return NOTICE_SIGIL + text


def reply_line(text: str) -> str:
    return REPLY_SIGIL + text


def error_line(text: str) -> str:
    return ERROR_SIGIL + text


@dataclass(frozen=True)
class ServerLine:
    """A server line, parsed: its kind, the nick it is from (chat/private), its text."""

    kind: Kind
    text: str
    nick: str | None = None


# "<nick> " (chat) or "*nick* " (private): public, the analysis builds on it.
FROM_NICK = r"<([^<>\s]+)> |\*([^*\s]+)\* "
_FROM_NICK = re.compile("^(" + FROM_NICK + ")")


def parse_server_line(line: str) -> ServerLine:
    """Tell a server line's kind from its sigil (see the module docstring)."""
    for sigil, kind in (
        (NOTICE_SIGIL, Kind.NOTICE),
        (REPLY_SIGIL, Kind.REPLY),
        (ERROR_SIGIL, Kind.ERROR),
    ):
        if line.startswith(sigil):
            return ServerLine(kind, line[len(sigil) :])
    match = _FROM_NICK.match(line)
    if match:
        if match.group(2) is not None:
            return ServerLine(Kind.CHAT, line[match.end() :], match.group(2))
        return ServerLine(Kind.PRIVATE, line[match.end() :], match.group(3))
    return ServerLine(Kind.NOTICE, line)  # unknown shape: show it as a plain notice


@dataclass(frozen=True)
class ClientLine:
    """A client line after the nickname: a chat message or a command with its argument."""

    kind: Kind
    text: str
    command: str | None = None


def parse_client_line(line: str) -> ClientLine:
    """``/name arg`` is a command; ``//text`` sends ``/text`` as chat; the rest is chat."""
    if line.startswith("//"):
        return ClientLine(Kind.MESSAGE, line[1:])
    if line.startswith("/"):
        name, _, arg = line[1:].partition(" ")
        return ClientLine(Kind.COMMAND, arg.strip(), name.lower())
    return ClientLine(Kind.MESSAGE, line)


# --------------------------------------------------------------------------- flood control


class TokenBucket:
    """Flood control: ``burst`` lines at once, then ``rate`` lines per second.

    Time comes in as an argument (seconds, monotonic), so tests need no clock.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
