"""Step 3: what each distinct text means, as a server line and as a client line.

Each distinct text is parsed once; server texts, most of them ``<nick> text``, are
read as bytes with numpy, so that only their distinct nicks and payloads become strings.

Mirrors the parsing in :func:`tcpchatx.analysis.plain.chat.interpret` and
:func:`tcpchatx.analysis.plain.chat.fan_out` (the version to read first).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcpchatx import protocol as proto

from .lines import KEEP_LOW_BYTES, AsciiTexts, line_ids, pick
from .model import (
    ACTION,
    ACTION_MESSAGE,
    CHAT,
    CHAT_MESSAGE,
    ERROR,
    LINE_KIND_CODE,
    NONE,
    NOTICE,
    PRIVATE,
    PRIVATE_MESSAGE,
    REPLY,
    Ids,
)
from .reassembly import WORD, every_word

# The protocol's own patterns (tcpchatx.protocol), anchored for a line's text after its sigil.
_WELCOME_START = "Welcome, "  # how proto.WELCOME_NICK_PATTERN begins: a cheap test first
_WELCOME = re.compile("^" + proto.WELCOME_NICK_PATTERN.pattern)
_RENAMED = re.compile("^" + proto.RENAMED_PATTERN.pattern + "$")


@dataclass
class TextFacts:
    """What each distinct text means, as a server line and as a client line (by text id)."""

    server_kind: np.ndarray
    server_nick: np.ndarray  # chat/private/action: the sender's nick id
    server_payload: np.ndarray  # chat/private/action: the id of the text after the nick
    welcome: np.ndarray  # reply "Welcome, X! ...": X's nick id
    rename_from: np.ndarray  # notice "X is now known as Y": X and Y's nick ids
    rename_to: np.ndarray
    slash: np.ndarray  # bool: starts with "/"
    client_kind: np.ndarray
    client_command: np.ndarray
    message_kind: np.ndarray  # client line as a message: -1 none, else a model.MESSAGE_KINDS code
    message_payload: np.ndarray  # its sanitised text's id
    message_to: list  # private: the addressee
    payloads: Ids  # the texts compared by the fan-out


def kinds_of_texts(texts, line_text, direction, nicks: Ids, commands: Ids) -> TextFacts:
    """Parse each distinct text once, in the direction(s) it was seen."""
    m = len(texts)
    seen_as = np.zeros((m, 2), dtype=bool)
    valid = line_text >= 0
    seen_as[line_text[valid], direction[valid]] = True
    # One entry more than texts: text id -1 (an invalid line) picks that "nothing" entry.
    f = TextFacts(*(np.full(m + 1, NONE, dtype=np.int32) for _ in range(6)),
                   slash=np.zeros(m + 1, dtype=bool), client_kind=np.full(m + 1, NONE, dtype=np.int8),
                   client_command=np.full(m + 1, NONE, dtype=np.int16),
                   message_kind=np.full(m + 1, NONE, dtype=np.int8),
                   message_payload=np.full(m + 1, NONE, dtype=np.int32), message_to=[None] * (m + 1),
                   payloads=Ids())
    server_ids = np.flatnonzero(seen_as[:, 1])
    _server_facts(f, texts, server_ids, nicks)
    client_ids = np.flatnonzero(seen_as[:, 0])
    _client_facts(f, pick(texts, client_ids), client_ids, commands)
    return f


def _columns(rows: list[tuple], width: int) -> np.ndarray:
    """findall's tuples as ``width`` object arrays, one per group (for numpy comparisons)."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=object, count=width * len(rows))
    return flat.reshape(-1, width).T


# proto.parse_server_line as one regular expression over many lines at once: a
# sigil, or "<nick> " (chat), "*nick* " (private) or "* nick " (action), then the
# rest of the line.
_SERVER_LINES = re.compile(
    "^(?:(" + "|".join(re.escape(s) for s in (proto.NOTICE_SIGIL, proto.REPLY_SIGIL, proto.ERROR_SIGIL))
    + ")|" + proto.FROM_NICK + "|" + proto.ACTION_FROM_NICK + ")?(.*)$",
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


def _server_facts(f: TextFacts, texts: Sequence[str], ids: np.ndarray, nicks: Ids) -> None:
    """:func:`tcpchatx.protocol.parse_server_line` for texts ``ids``, all at once.

    A busy chat has a distinct ``<nick> text`` per message: hundreds of thousands
    of texts, made of a few thousand nicks and payloads.  So the texts are read
    as bytes, all at once (numpy): each one's sigil, or where its ``<nick> `` or
    ``*nick* `` ends.  Nicks and payloads are numbered by their bytes
    (:func:`line_ids`), and only the distinct ones become Python strings.  The
    few texts the byte scan cannot settle (a non-ASCII byte, or a run longer than
    any nick, where a nick would be) go to the regular expression, and so do
    actions (``* nick text``: a ``*`` and a space), which are few.  A test checks
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
    unsure |= (which == 1) & (data[start[maybe] + 1] == ord(" "))  # "* nick ": an action
    closed = ~unsure & (stop == _NICK_CLOSERS[which]) & (at > start[maybe] + 1) & (data[at + 1] == ord(" "))
    by_bytes, at, which = maybe[closed], at[closed], which[closed]
    kind[by_bytes] = np.where(which == 1, PRIVATE, CHAT)
    nick_of = np.empty(n, dtype=object)
    payload_of = np.empty(n, dtype=object)
    nick_of[by_bytes] = _distinct_strings(data, start[by_bytes] + 1, at)
    payload_of[by_bytes] = _distinct_strings(data, at + 2, end[by_bytes])
    by_regex = maybe[unsure]
    if len(by_regex):
        found = _SERVER_LINES.findall("\n".join(pick(texts, ids[by_regex])))
        _, chat_nick, private_nick, action_nick, rest = _columns(found, 5)
        is_chat, is_private, is_action = chat_nick != "", private_nick != "", action_nick != ""
        kind[by_regex[is_chat]], kind[by_regex[is_private]], kind[by_regex[is_action]] = CHAT, PRIVATE, ACTION
        nick_of[by_regex] = np.where(is_chat, chat_nick, np.where(is_private, private_nick, action_nick))
        payload_of[by_regex] = rest
    f.server_kind[ids] = kind
    said = np.flatnonzero((kind == CHAT) | (kind == PRIVATE) | (kind == ACTION))
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
        low = KEEP_LOW_BYTES[len(part)]
        found &= (every_word(data)[offsets + k] & low) == np.uint64(int.from_bytes(part, "little"))
    return found


def _distinct_strings(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``data[a:b]`` decoded, for each range, as an object array: one string for each
    distinct content (:func:`line_ids`), shared by the ranges that hold it."""
    ids, firsts = line_ids(data, start, end)
    strings = [data[a:b].tobytes().decode("utf-8", "surrogatepass")
               for a, b in zip(start[firsts].tolist(), end[firsts].tolist(), strict=True)]
    return np.array(strings, dtype=object)[ids]


def _rests(texts: Sequence[str], ids: np.ndarray, skip: np.ndarray) -> list[str]:
    """What follows each text's sigil, ``skip`` characters (the whole text if it has none)."""
    return [text[s:] for text, s in zip(pick(texts, ids), skip.tolist(), strict=True)]


def _as_bytes(texts: Sequence[str], ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texts ``ids`` as bytes: one array of them, each followed by a newline, then zeros
    that the scans may read past the end (see :func:`_words`); where each text starts,
    and where its newline is.  ASCII texts are encoded whole (the others among them
    are skipped by the offsets); other texts are joined first."""
    if isinstance(texts, AsciiTexts):
        encoded, start, end = texts.decoded.encode("ascii"), texts.starts[ids], texts.ends[ids]
    else:
        encoded = ("\n".join(pick(texts, ids)) + "\n").encode("utf-8", "surrogatepass")
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


def _client_facts(f: TextFacts, texts: list[str], ids: np.ndarray, commands: Ids) -> None:
    """:func:`tcpchatx.protocol.parse_client_line` for many texts at once (see
    :func:`_server_facts`), and what each means as a message: chat, private or an
    action, the sanitised text the server will relay, and the addressee."""
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
    f.message_kind[ids[chat_rows]] = CHAT_MESSAGE
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
    f.message_kind[private] = PRIVATE_MESSAGE
    f.message_payload[private] = f.payloads.ids_of(bodies)
    for k, to in zip(private.tolist(), addressees, strict=True):
        f.message_to[k] = to
    # "/me waves": an action, to everyone else.  Sanitised, then stripped, as the room
    # does (it sanitises the whole line before it reads the command).
    rows = np.flatnonzero(command)[[x == "me" for x in names]]
    bodies = [_remove_unsafe(text).strip() for text in arg[rows].tolist()]
    acted = [body != "" for body in bodies]
    actions = ids[rows[acted]]
    f.message_kind[actions] = ACTION_MESSAGE
    f.message_payload[actions] = f.payloads.ids_of([body for body in bodies if body])
