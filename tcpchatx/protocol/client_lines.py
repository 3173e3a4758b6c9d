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
