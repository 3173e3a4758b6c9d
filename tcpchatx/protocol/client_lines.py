"""Client lines: what a client sends once it has a nickname, a message or a command.

The room reads every client line after the nickname with :func:`parse_client_line`;
the terminal client asks it too, and the analysis mirrors it for many lines at once,
so ``/quit`` and ``//text`` mean the same to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import Kind


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


def split_long_line(text: str, limit: int) -> list[str]:
    """A line too long for the server (over ``limit`` UTF-8 bytes) as lines that fit.

    Cut between characters, never inside one, and meaning the same: the pieces of
    ``/msg bob <long text>`` each start with ``/msg bob`` (the rest must stay private),
    those of ``/me <long text>`` with ``/me`` (each is still an action, not chat),
    and a piece that would start with ``/`` is escaped as ``//`` (it is not a command).
    A piece of a command that would hold only spaces is left out.
    Other commands and lines that fit come back whole; the server says if a command
    is too long.
    """
    if len(text.encode("utf-8", "surrogatepass")) <= limit:
        return [text]
    line = parse_client_line(text)
    if line.kind is Kind.COMMAND:
        if line.command == "msg":
            nick, _, body = line.text.partition(" ")
            prefix = f"/msg {nick} "
        elif line.command == "me":
            prefix, body = "/me ", line.text
        else:
            return [text]
    else:
        prefix, body = "", line.text  # line.text: "//x" already unescaped to "/x"
    room = limit - len(prefix.encode()) - (0 if prefix else 1)  # 1: a "/" that needs escaping
    if room < 4 or not body:  # a nickname near the limit: nothing sensible to cut
        return [text]
    pieces = []
    data = body.encode("utf-8", "surrogatepass")
    while data:
        end = min(room, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            end -= 1
        piece = data[:end].decode("utf-8", "surrogatepass")
        data = data[end:]
        if prefix and not piece.strip():
            continue  # "/me " and spaces alone: the server would answer "Usage: /me TEXT"
        pieces.append(prefix + ("/" + piece if not prefix and piece.startswith("/") else piece))
    return pieces
