"""Line kinds: what a line means, and the sigil that tells a server line's kind.

:class:`Kind` names the kinds of both directions, once, in the words the analysis
and the dissector use; :func:`parse_server_line` tells a server line's kind from
its sigil (the table is in the package docstring, :mod:`tcpchatx.protocol`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """What a line means.  The same names appear in the analysis and the dissector."""

    CHAT = "chat"  # server -> client: a broadcast from a nick
    PRIVATE = "private"  # server -> client: a private message from a nick
    ACTION = "action"  # server -> client: what a nick does (/me), to everyone else
    NOTICE = "notice"  # server -> everyone
    REPLY = "reply"  # server -> you, answering a command
    ERROR = "error"  # server -> you, something you sent was refused
    NICKNAME = "nickname"  # client -> server: the first line, a nickname
    COMMAND = "command"  # client -> server: /help, /online, /quit, /nick, /msg, /me
    MESSAGE = "message"  # client -> server: anything else is chat text


# The sigils that start the server's lines (see the package docstring).
NOTICE_SIGIL = "*** "
REPLY_SIGIL = "--- "
ERROR_SIGIL = "!!! "


def notice_line(text: str) -> str:
    """``*** TEXT``: the server, to everyone (or, on connect, to you)."""
    return NOTICE_SIGIL + text


def reply_line(text: str) -> str:
    """``--- TEXT``: the server, to you alone, answering a command."""
    return REPLY_SIGIL + text


def error_line(text: str) -> str:
    """``!!! TEXT``: the server, to you alone: something you sent was refused."""
    return ERROR_SIGIL + text


@dataclass(frozen=True)
class ServerLine:
    """A server line, parsed: its kind, the nick it is from (chat/private/action), its text."""

    kind: Kind
    text: str
    nick: str | None = None


# "<nick> " (chat) or "*nick* " (private): public, the analysis builds on it.
FROM_NICK = r"<([^<>\s]+)> |\*([^*\s]+)\* "
_FROM_NICK = re.compile("^(" + FROM_NICK + ")")
# "* nick " (action, /me).  Never a notice's "*** ": its second character is a space,
# and the nick after it is the server's, so whatever a client writes after "/me" stays
# that nick's action ("* mallory joined (3 online)" is no join).  Public, as FROM_NICK.
ACTION_FROM_NICK = r"\* ([^*\s]+) "
_ACTION_FROM_NICK = re.compile(ACTION_FROM_NICK)


def has_server_shape(line: str) -> bool:
    """Does the line start as a TCPChatX server's lines do: a sigil or a nick?  (An
    HTTP server's ``HTTP/1.0 400 ...`` or ``<!DOCTYPE HTML>`` does not.)

    An action's ``* nick `` does not count: an IMAP server greets with ``* OK ...``,
    and a TCPChatX server never opens with an action.
    """
    return line.startswith((NOTICE_SIGIL, REPLY_SIGIL, ERROR_SIGIL)) or _FROM_NICK.match(line) is not None


def parse_server_line(line: str) -> ServerLine:
    """Tell a server line's kind from its sigil (see the package docstring)."""
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
    match = _ACTION_FROM_NICK.match(line)
    if match:
        return ServerLine(Kind.ACTION, line[match.end() :], match.group(1))
    return ServerLine(Kind.NOTICE, line)  # unknown shape: show it as a plain notice
