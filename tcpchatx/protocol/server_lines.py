r"""Every line the server sends: a builder, and beside it the parser that reads it back.

A line with fields has a builder (``joined_line``) and, right below it, its parser
(``parse_joined``), which gives back the builder's arguments, or None for any
other line.  A line without fields is a constant (``SHUTDOWN_LINE``): ``==`` is its
parser.  tests/test_protocol.py holds every pair to a round trip, so a text and
its reading cannot drift apart.  The room and the server write no text of their own.

A parser takes a whole line: sigil included, newline removed.  It reads the text
after the sigil with a pattern matched in full.  The patterns are public and
unanchored (like FROM_NICK), so that code reading many lines at once (the
analysis) can wrap one in ^...$ and run it over all of them in one findall.
A nickname in a pattern is (\S+): a valid nickname never holds a space, and the
words after it (matched in full) pin where it ends.

Top to bottom: chat, private and action lines, notices (``*** ``), how a client left,
replies (``--- ``), errors (``!!! ``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .kinds import (
    ERROR_SIGIL,
    NOTICE_SIGIL,
    REPLY_SIGIL,
    Kind,
    error_line,
    notice_line,
    parse_server_line,
    reply_line,
)
from .nicks import NICK_MAX_CHARS, NickProblem


def _match(sigil: str, pattern: re.Pattern[str], line: str) -> re.Match[str] | None:
    """``pattern`` matched against all of ``line`` after ``sigil``, or None."""
    if not line.startswith(sigil):
        return None
    return pattern.fullmatch(line, len(sigil))


def _number(text: str) -> float | None:
    """A number as ``{:g}`` writes it (``30``, ``0.5``, ``1e+06``, ``inf``), or None."""
    try:
        return float(text)
    except ValueError:
        return None


# -- chat: a nick's words (or actions), relayed


def chat_line(nick: str, text: str) -> str:
    """``<alice> hello``: alice's message, to everyone chatting except alice."""
    return f"<{nick}> {text}"


def parse_chat(line: str) -> tuple[str, str] | None:
    """:func:`chat_line`'s ``(nick, text)``."""
    parsed = parse_server_line(line)
    return (parsed.nick, parsed.text) if parsed.kind is Kind.CHAT and parsed.nick else None


def private_line(nick: str, text: str) -> str:
    """``*alice* psst``: alice's private message, to its one recipient."""
    return f"*{nick}* {text}"


def parse_private(line: str) -> tuple[str, str] | None:
    """:func:`private_line`'s ``(nick, text)``."""
    parsed = parse_server_line(line)
    return (parsed.nick, parsed.text) if parsed.kind is Kind.PRIVATE and parsed.nick else None


def action_line(nick: str, text: str) -> str:
    """``* alice waves``: what alice does (``/me waves``), to everyone chatting except alice.

    As IRC shows it.  It starts with ``* alice ``, which no notice (``*** ``) does: a
    client chooses only what follows its own nickname, so ``/me joined (3 online)``
    reads ``* alice joined (3 online)``, alice's action, not a join.
    """
    return f"* {nick} {text}"


def parse_action(line: str) -> tuple[str, str] | None:
    """:func:`action_line`'s ``(nick, text)``."""
    parsed = parse_server_line(line)
    return (parsed.nick, parsed.text) if parsed.kind is Kind.ACTION and parsed.nick else None


# -- notices (*** ): the server, to everyone


PROMPT_LINE = notice_line(
    f"Welcome to TCPChatX! Choose a nickname (1-{NICK_MAX_CHARS} letters, digits, _ or -) "
    "and press Enter."
)  # the first line, on connect


def joined_line(nick: str, online: int) -> str:
    """``*** bob joined (2 online)``: to everyone else, once bob has chosen a nickname."""
    return notice_line(f"{nick} joined ({online} online)")


JOINED_PATTERN = re.compile(r"(\S+) joined \((\d+) online\)")


def parse_joined(line: str) -> tuple[str, int] | None:
    """:func:`joined_line`'s ``(nick, online)``."""
    found = _match(NOTICE_SIGIL, JOINED_PATTERN, line)
    return (found[1], int(found[2])) if found else None


def left_line(nick: str, how: str, online: int) -> str:
    """``*** bob left (quit, 1 online)``: to everyone else; ``how`` from :func:`how_left`."""
    return notice_line(f"{nick} left ({how}, {online} online)")


# HOW may hold ", " itself (an OS error message): the last ", N online)" closes it.
LEFT_PATTERN = re.compile(r"(\S+) left \((.*), (\d+) online\)")


def parse_left(line: str) -> tuple[str, str, int] | None:
    """:func:`left_line`'s ``(nick, how, online)``."""
    found = _match(NOTICE_SIGIL, LEFT_PATTERN, line)
    return (found[1], found[2], int(found[3])) if found else None


def renamed_line(old: str, new: str) -> str:
    """``*** bob is now known as robert``: to everyone chatting, robert included."""
    return notice_line(f"{old} is now known as {new}")


RENAMED_PATTERN = re.compile(r"(\S+) is now known as (\S+)")


def parse_renamed(line: str) -> tuple[str, str] | None:
    """:func:`renamed_line`'s ``(old, new)``."""
    found = _match(NOTICE_SIGIL, RENAMED_PATTERN, line)
    return (found[1], found[2]) if found else None


SHUTDOWN_LINE = notice_line("Server is shutting down. Bye!")  # to everyone, then the FIN


# -- how a connection ended: HOW in "NICK left (HOW, N online)"


class HowLeft:
    """The labels for how a connection ended, defined once.

    Plain strings, not an Enum: they go into lines and the timeline as they are.
    """

    QUIT = "quit"  # the client sent /quit
    CLOSED = "closed by client"  # the client's FIN came first
    RESET = "connection reset"  # the client's RST
    CONNECTION_ERROR = "connection error"  # with a detail: what the OS said
    DROPPED = "dropped"  # the server cut it, with a detail (see the drop reasons below)
    NICK_TIMEOUT = "nick-timeout"  # no nickname in time
    IDLE_TIMEOUT = "idle-timeout"  # silent for too long
    FLOODING = "flooding"  # too many lines refused in a row
    SERVER_FULL = "server-full"  # refused on connect (nobody is told: no nickname yet)
    SERVER_STOP = "server-stop"  # the server is stopping (nobody is told: all are leaving)


def how_left(label: str, detail: str | None = None) -> str:
    """HOW for :func:`left_line`: a :class:`HowLeft` label, and ``: detail`` if given."""
    return label if detail is None else f"{label}: {detail}"


def parse_how_left(how: str) -> tuple[str, str | None]:
    """:func:`how_left`'s ``(label, detail)``; the detail is None if there is none."""
    label, colon, detail = how.partition(": ")
    return (label, detail) if colon else (how, None)


# Why the server cut a connection: the detail of HowLeft.DROPPED, and REASON in
# "!!! Disconnected: REASON".
SERVER_STOPPED = "server stopped"  # the client did not answer the server's FIN in time


def too_slow_reason(waiting: int) -> str:
    """The client did not read: its queue was full with ``waiting`` lines."""
    return f"too slow: {waiting} lines were waiting to be sent"


TOO_SLOW_PATTERN = re.compile(r"too slow: (\d+) lines were waiting to be sent")


def parse_too_slow_reason(reason: str) -> int | None:
    """:func:`too_slow_reason`'s ``waiting``."""
    found = TOO_SLOW_PATTERN.fullmatch(reason)
    return int(found[1]) if found else None


def no_fin_reason(timeout: float) -> str:
    """The client never sent its FIN, ``timeout`` seconds after the server's."""
    return f"no FIN from the client within {timeout:g} s of ours"


NO_FIN_PATTERN = re.compile(r"no FIN from the client within (\S+) s of ours")


def parse_no_fin_reason(reason: str) -> float | None:
    """:func:`no_fin_reason`'s ``timeout`` (as ``{:g}`` rounded it)."""
    found = NO_FIN_PATTERN.fullmatch(reason)
    return _number(found[1]) if found else None


# -- replies (--- ): the server, to you, answering a command

ONLINE_LIST_BYTES = 800  # a list of names stops here, so its line stays under MAX_LINE_BYTES


@dataclass(frozen=True)
class Online:
    """Who is online, as a reply lists them: how many, the names shown, how many more."""

    count: int
    names: tuple[str, ...]
    more: int = 0  # names left out to keep the line short


def _names(nicks: Sequence[str], budget: int = ONLINE_LIST_BYTES) -> str:
    """``alice, bob``, or past ``budget`` bytes ``alice, bob and 298 more``."""
    shown: list[str] = []
    used = 0
    for nick in nicks:
        used += len(nick.encode()) + 2
        if used > budget:
            return ", ".join(shown) + f" and {len(nicks) - len(shown)} more"
        shown.append(nick)
    return ", ".join(shown)


_MORE = re.compile(r"(.*) and (\d+) more")


def _online(count: str, names: str) -> Online:
    """The count and the :func:`_names` text of a reply, read back."""
    more = _MORE.fullmatch(names)
    shown = more[1] if more else names
    return Online(int(count), tuple(shown.split(", ")) if shown else (),
                  int(more[2]) if more else 0)


def welcome_line(nick: str, online: Sequence[str]) -> str:
    """``--- Welcome, bob! Online (2): alice, bob. Type /help for commands.``"""
    return reply_line(
        f"Welcome, {nick}! Online ({len(online)}): {_names(online)}. Type /help for commands."
    )


WELCOME_PATTERN = re.compile(r"Welcome, (\S+)! Online \((\d+)\): (.*)\. Type /help for commands\.")


@dataclass(frozen=True)
class Welcome:
    """A welcome, parsed: the nickname it confirms, and who is online (that one too)."""

    nick: str
    online: Online


def parse_welcome(line: str) -> Welcome | None:
    """:func:`welcome_line`'s nickname and list of who is online."""
    found = _match(REPLY_SIGIL, WELCOME_PATTERN, line)
    return Welcome(found[1], _online(found[2], found[3])) if found else None


# Any welcome, in this server's words or not: only the nickname, up to the first "! ".
# (.+?), not (\S+): another server's nickname may hold a space; the dissector and the
# analysis read a welcome the same way.
WELCOME_NICK_PATTERN = re.compile(r"Welcome, (.+?)! ")


def welcome_nick(line: str) -> str | None:
    """The nickname of any ``--- Welcome, NICK! ...`` reply, whatever follows it.

    Lenient where :func:`parse_welcome` is strict, for captures made by another
    server (an older TCPChatX, a student's): they may list who is online in other
    words, and the Lua dissector and the analysis count them as welcomes too.
    """
    if not line.startswith(REPLY_SIGIL):
        return None
    found = WELCOME_NICK_PATTERN.match(line, len(REPLY_SIGIL))
    return found[1] if found else None


def online_line(nicks: Sequence[str]) -> str:
    """``--- Online (2): alice, bob``: the answer to /online."""
    return reply_line(f"Online ({len(nicks)}): {_names(nicks)}")


ONLINE_PATTERN = re.compile(r"Online \((\d+)\): (.*)")


def parse_online(line: str) -> Online | None:
    """:func:`online_line`'s list of who is online."""
    found = _match(REPLY_SIGIL, ONLINE_PATTERN, line)
    return _online(found[1], found[2]) if found else None


HELP_LINE = reply_line(
    "Commands: /help this text | /online who is here | /nick NEW change nickname | "
    "/msg NICK TEXT private message | /me TEXT an action (* NICK TEXT) | "
    "/quit [MESSAGE] leave. Anything else is sent to everyone."
)  # the answer to /help


def bye_line(nick: str) -> str:
    """``--- Bye, bob!``: the answer to /quit, just before the server's FIN."""
    return reply_line(f"Bye, {nick}!")


BYE_PATTERN = re.compile(r"Bye, (\S+)!")


def parse_bye(line: str) -> str | None:
    """:func:`bye_line`'s ``nick``."""
    found = _match(REPLY_SIGIL, BYE_PATTERN, line)
    return found[1] if found else None


def private_sent_line(recipient: str, text: str) -> str:
    """``--- -> bob: psst``: to the sender of a private message, whom it went to."""
    return reply_line(f"-> {recipient}: {text}")


PRIVATE_SENT_PATTERN = re.compile(r"-> (\S+): (.*)")


def parse_private_sent(line: str) -> tuple[str, str] | None:
    """:func:`private_sent_line`'s ``(recipient, text)``."""
    found = _match(REPLY_SIGIL, PRIVATE_SENT_PATTERN, line)
    return (found[1], found[2]) if found else None


# -- errors (!!! ): the server, to you: something was refused


def server_full_line(max_clients: int) -> str:
    """``!!! Server full (200 clients). ...``: instead of the prompt, then the FIN."""
    return error_line(f"Server full ({max_clients} client{'' if max_clients == 1 else 's'}). Try again later.")


SERVER_FULL_PATTERN = re.compile(r"Server full \((\d+) clients?\)\. Try again later\.")


def parse_server_full(line: str) -> int | None:
    """:func:`server_full_line`'s ``max_clients``."""
    found = _match(ERROR_SIGIL, SERVER_FULL_PATTERN, line)
    return int(found[1]) if found else None


def too_long_line(limit: int) -> str:
    """``!!! Line too long: at most 1024 bytes. ...``: the line was dropped."""
    return error_line(f"Line too long: at most {limit} bytes. It was dropped.")


TOO_LONG_PATTERN = re.compile(r"Line too long: at most (\d+) bytes\. It was dropped\.")


def parse_too_long(line: str) -> int | None:
    """:func:`too_long_line`'s ``limit``."""
    found = _match(ERROR_SIGIL, TOO_LONG_PATTERN, line)
    return int(found[1]) if found else None


NOT_UTF8_LINE = error_line("That line was not valid UTF-8 text. It was dropped.")


def removed_line(count: int) -> str:
    """``!!! Removed 2 control or invisible character(s) ...``: the rest was relayed."""
    return error_line(f"Removed {count} control or invisible character(s) from your line.")


REMOVED_PATTERN = re.compile(r"Removed (\d+) control or invisible character\(s\) from your line\.")


def parse_removed(line: str) -> int | None:
    """:func:`removed_line`'s ``count``."""
    found = _match(ERROR_SIGIL, REMOVED_PATTERN, line)
    return int(found[1]) if found else None


CHOOSE_NICK_FIRST_LINE = error_line("Choose a nickname first (or /quit).")  # a command too early


def nick_refused_line(problem: NickProblem, nick: str) -> str:
    """``!!! The nickname "bob" is taken. Try another.``: ``problem`` with ``nick`` filled in."""
    return error_line(problem.says(nick))


# One pattern per problem: its text, with (\S+) where the nickname goes.
NICK_PROBLEM_PATTERNS = {
    problem: re.compile(r"(\S+)".join(map(re.escape, problem.value.split("{nick}"))))
    for problem in NickProblem
}


def parse_nick_refused(line: str) -> tuple[NickProblem, str | None] | None:
    """:func:`nick_refused_line`'s ``(problem, nick)``; nick is None if the text names none."""
    for problem, pattern in NICK_PROBLEM_PATTERNS.items():
        found = _match(ERROR_SIGIL, pattern, line)
        if found:
            return problem, found[1] if pattern.groups else None
    return None


def nick_timeout_line(seconds: float) -> str:
    """``!!! No nickname after 30 s. Bye.``: then the server closes."""
    return error_line(f"No nickname after {seconds:g} s. Bye.")


NICK_TIMEOUT_PATTERN = re.compile(r"No nickname after (\S+) s\. Bye\.")


def parse_nick_timeout(line: str) -> float | None:
    """:func:`nick_timeout_line`'s ``seconds`` (as ``{:g}`` rounded them)."""
    found = _match(ERROR_SIGIL, NICK_TIMEOUT_PATTERN, line)
    return _number(found[1]) if found else None


def idle_timeout_line(seconds: float) -> str:
    """``!!! Idle for 600 s. Bye.``: then the server closes."""
    return error_line(f"Idle for {seconds:g} s. Bye.")


IDLE_TIMEOUT_PATTERN = re.compile(r"Idle for (\S+) s\. Bye\.")


def parse_idle_timeout(line: str) -> float | None:
    """:func:`idle_timeout_line`'s ``seconds`` (as ``{:g}`` rounded them)."""
    found = _match(ERROR_SIGIL, IDLE_TIMEOUT_PATTERN, line)
    return _number(found[1]) if found else None


def unknown_command_line(name: str) -> str:
    """``!!! Unknown command /dance. Type /help for the list.``"""
    return error_line(f"Unknown command /{name}. Type /help for the list.")


UNKNOWN_COMMAND_PATTERN = re.compile(r"Unknown command /(.*)\. Type /help for the list\.")


def parse_unknown_command(line: str) -> str | None:
    """:func:`unknown_command_line`'s ``name``."""
    found = _match(ERROR_SIGIL, UNKNOWN_COMMAND_PATTERN, line)
    return found[1] if found else None


MSG_USAGE_LINE = error_line("Usage: /msg NICK TEXT")  # a /msg without a nick or a text
ACTION_USAGE_LINE = error_line("Usage: /me TEXT")  # a /me without a text


def nobody_called_line(target: str) -> str:
    """``!!! Nobody called "bob" is online. Try /online.``: a /msg to nobody."""
    return error_line(f'Nobody called "{target}" is online. Try /online.')


NOBODY_CALLED_PATTERN = re.compile(r'Nobody called "(.*)" is online\. Try /online\.')


def parse_nobody_called(line: str) -> str | None:
    """:func:`nobody_called_line`'s ``target``."""
    found = _match(ERROR_SIGIL, NOBODY_CALLED_PATTERN, line)
    return found[1] if found else None


def slow_down_line(rate: float, burst: int) -> str:
    """``!!! Slow down: at most 5 lines per second ...``: once, when flood control starts
    holding a client's lines."""
    return error_line(
        f"Slow down: at most {rate:g} lines per second (bursts of {burst}). "
        "Your lines are held and passed on at that pace."
    )


SLOW_DOWN_PATTERN = re.compile(  # (older servers dropped the lines instead, and said so)
    r"Slow down: at most (\S+) lines per second \(bursts of (\d+)\)\. "
    r"(?:Your lines are held and passed on at that pace|Lines are being dropped)\."
)


def parse_slow_down(line: str) -> tuple[float, int] | None:
    """:func:`slow_down_line`'s ``(rate, burst)`` (the rate as ``{:g}`` rounded it)."""
    found = _match(ERROR_SIGIL, SLOW_DOWN_PATTERN, line)
    rate = _number(found[1]) if found else None
    return (rate, int(found[2])) if found and rate is not None else None


FLOOD_KICK_LINE = error_line("Disconnected for flooding.")  # more lines held than the server holds


def disconnected_line(reason: str) -> str:
    """``!!! Disconnected: too slow: ...``: the server cuts the connection (best effort)."""
    return error_line("Disconnected: " + reason)


DISCONNECTED_PATTERN = re.compile(r"Disconnected: (.*)")


def parse_disconnected(line: str) -> str | None:
    """:func:`disconnected_line`'s ``reason``."""
    found = _match(ERROR_SIGIL, DISCONNECTED_PATTERN, line)
    return found[1] if found else None
