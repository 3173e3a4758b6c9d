"""Is this TCPChatX?  The test the Wireshark dissector's heuristic makes, in Python.

A capture of your own holds web pages, mail and DNS over TCP beside (or instead of) a
chat.  Reading an HTTP server's ``HTTP/1.1 200 OK`` as a chat line would be nonsense,
so the chat layer reads a connection only if its server speaks TCPChatX, by the same
rule as ``tcpchatx.lua``'s ``looks_like_server`` (strict on purpose):

- the server's first bytes are the welcome notice (``*** Welcome to TCPChatX!``), or
- they hold at least one complete line, and every complete line is valid UTF-8, at
  most :data:`~tcpchatx.protocol.MAX_LINE_BYTES` bytes, free of control characters,
  and starts with a server sigil: ``*** ``, ``--- ``, ``!!! ``, ``<nick> `` or ``*nick* ``.
  (Not an action's ``* nick ``: IMAP servers speak first too, with ``* OK ...``.)

The bytes tested are the first segment the server sent (Wireshark tries its heuristic
on each segment in turn; the chat's server always speaks first, with its welcome).
"""

from __future__ import annotations

import re

from ...protocol import MAX_LINE_BYTES

WELCOME = b"*** Welcome to TCPChatX!"
SIGILS = (b"*** ", b"--- ", b"!!! ")
CHAT_LINE = re.compile(rb"<[^<>\s]+> ")  # <nick> text
PRIVATE_LINE = re.compile(rb"\*[^*\s]+\* ")  # *nick* text
CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # C0 controls but TAB, and DEL
TESTED_BYTES = 16 * (MAX_LINE_BYTES + 2)  # as much as the dissector's heuristic reads


def has_sigil(line: bytes) -> bool:
    return line[:4] in SIGILS or bool(CHAT_LINE.match(line)) or bool(PRIVATE_LINE.match(line))


def looks_like_server(payload: bytes) -> bool:
    """Whether *payload*, the first bytes a server sent, are a TCPChatX server's."""
    data = payload[:TESTED_BYTES]
    if data.startswith(WELCOME):
        return True
    *complete, _rest = data.split(b"\n")
    if not complete:
        return False
    for raw in complete:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if len(line) > MAX_LINE_BYTES or CONTROL.search(line) or not has_sigil(line):
            return False
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
