"""Why a connection ended, in words a student can act on (sans-IO).

The server says why before it closes (``*** Server is shutting down``, ``!!! Server
full``, ``!!! No nickname after 30 s``, ...), and every line a TCPChatX server sends
starts with a sigil (``*** ``, ``--- ``, ``!!! ``) or a nick (``<bob> ``).  So the
first and the last line the client heard, and what it knows itself (did it ask to
leave, did the connection break), tell the story.  The client prints the message and exits with 1 when the end was
not what the student asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kinds import has_server_shape
from .server_lines import (
    FLOOD_KICK_LINE,
    SHUTDOWN_LINE,
    parse_disconnected,
    parse_idle_timeout,
    parse_nick_timeout,
    parse_server_full,
)

QUOTED_CHARS = 80  # of a stranger's first line


@dataclass(frozen=True)
class Ending:
    message: str  # what to tell the student ("" if nothing needs saying)
    unexpected: bool  # the student did not ask for it: the client exits with 1


def why_it_ended(first: str | None, last: str | None, asked_to_leave: bool, error: str | None) -> Ending:
    """``first`` and ``last``: the first and the last line the server sent (None: none)."""
    if error is not None:
        return Ending(f"Connection to the server lost: {error}.", True)
    if first is not None and not has_server_shape(first):
        shown = first if len(first) <= QUOTED_CHARS else first[:QUOTED_CHARS] + "..."
        return Ending(f"That is not a TCPChatX server: the first thing it said was {shown!r}. "
                      "Is another program listening on that port?", True)
    if first is None:
        return (Ending("", False) if asked_to_leave else
                Ending("The server closed the connection without a word: is it a TCPChatX server?", True))
    # The server's own reason, when it gave one, even if we were leaving anyway.
    if last == SHUTDOWN_LINE:
        return Ending("The server shut down.", True)
    if (clients := parse_server_full(last)) is not None:
        return Ending(f"The server is full ({clients} client{'' if clients == 1 else 's'}). Try again later.",
                      True)
    if (seconds := parse_nick_timeout(last)) is not None:
        return Ending(f"No nickname was chosen within {seconds:g} s, so the server closed the connection.",
                      True)
    if (seconds := parse_idle_timeout(last)) is not None:
        return Ending(f"Nothing was said for {seconds:g} s, so the server closed the connection.", True)
    if last == FLOOD_KICK_LINE:
        return Ending("The server cut you off for flooding: more lines were waiting than it holds.", True)
    if (reason := parse_disconnected(last)) is not None:
        return Ending(f"The server cut you off: {reason}.", True)
    if asked_to_leave:
        return Ending("", False)
    return Ending("The server closed the connection (it was stopped or killed).", True)
