"""Step 3, continued: each connection's nickname over time.

Nicknames change only on a few lines (a client's first line, the server's
``Welcome, nick!`` and ``X is now known as Y``): a loop over those lines records each
change, and every line then looks up its connection's nick at its own position.

Mirrors :func:`tcpchatx.analysis.plain.chat.interpret` (the version to read first).
"""

from __future__ import annotations

import numpy as np

from tcpchatx import protocol as proto

from .model import NONE, Ids
from .parsing import TextFacts


def follow_nicks(event_lines, line_text, conn, direction, kinds: TextFacts, texts, nicks: Ids):
    """Replay the lines that change nicknames; return the changes and the final nicks.

    The changes are ``(keys, nick ids)`` sorted by key ``conn * (n + 1) + line``.
    """
    nick: dict[int, int] = {}  # conn -> nick id (NONE: no valid nick)
    holders: dict[int, set[int]] = {}  # nick id -> connections using it
    change_conn: list[int] = []
    change_line: list[int] = []
    change_nick: list[int] = []
    checked: dict[str, int] = {}

    def set_nick(c: int, name: int, line: int) -> None:
        if c in nick:
            holders[nick[c]].discard(c)
        nick[c] = name
        holders.setdefault(name, set()).add(c)
        change_conn.append(c)
        change_line.append(line)
        change_nick.append(name)

    text = line_text[event_lines]
    for i, c, d, k, welcome, old, new in zip(
            event_lines, conn[event_lines].tolist(), direction[event_lines].tolist(), text.tolist(),
            kinds.welcome[text].tolist(), kinds.rename_from[text].tolist(), kinds.rename_to[text].tolist(),
            strict=True):
        if d == 0:  # a client's line before its welcome: a nickname
            if k not in checked:
                checked[k] = nicks.get_id(proto.check_nick(texts[k])[0])
            set_nick(c, checked[k], i)
        elif welcome >= 0:
            set_nick(c, welcome, i)
        else:
            for other in sorted(holders.get(old, ())):
                set_nick(other, new, i)
    n = len(line_text)
    keys = np.array(change_conn, dtype=np.int64) * (n + 1) + np.array(change_line, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    final = {c: nicks.names[x] for c, x in nick.items() if x != NONE}
    return (keys[order], np.array(change_nick, dtype=np.int32)[order]), final


def nick_at(changes, conn: np.ndarray, line: np.ndarray, n: int, after: bool) -> np.ndarray:
    """Each connection's nick id just before (or just after) the given line."""
    keys, values = changes
    want = conn.astype(np.int64) * (n + 1) + line
    pos = np.searchsorted(keys, want, "right" if after else "left") - 1
    ok = pos >= 0
    pos = np.maximum(pos, 0)
    if len(keys):
        ok &= keys[pos] // (n + 1) == conn
        return np.where(ok, values[pos], NONE).astype(np.int32)
    return np.full(len(conn), NONE, dtype=np.int32)
