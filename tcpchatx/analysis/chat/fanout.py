"""Step 4: each chat message matched with the copies the server sent because of it.

A chat message comes back as ``<nick> text``, a private one (``/msg``) as ``*nick* text``,
an action (``/me``) as ``* nick text``.

Mirrors :func:`tcpchatx.analysis.plain.chat.fan_out` (the version to read first).
"""

from __future__ import annotations

import numpy as np

from tcpchatx import protocol as proto

from ..capture_file import take
from ..packets import exact_ratio
from ..sorting import stable_argsort
from ..workers import for_each
from .model import MESSAGE_KINDS, NONE, PRIVATE_MESSAGE, RELAYED_AS, Chat
from .parsing import TextFacts
from .windows import ranges

FAN_OUT_SLICES = 8


def fan_out(chat: Chat, kinds: TextFacts, after_welcome: np.ndarray) -> None:
    """Match each client message with the lines the server sent because of it."""
    n = chat.n_lines
    n_nicks = len(chat.nicks) + 1
    # A key per (kind, nick, text): a message's and the server lines it should cause.
    def key(message_kind, nick, payload):
        return (payload.astype(np.int64) * n_nicks + nick + 1) * len(MESSAGE_KINDS) + message_kind

    line_text = chat.line_text  # -1 picks the facts' "nothing" entry
    relayed = RELAYED_AS[chat.line_kind]  # the kind of message each line relays, if any
    outbound = np.flatnonzero((chat.line_direction == 1) & (relayed != NONE))
    out_key = key(relayed[outbound], chat.line_nick[outbound], kinds.server_payload[line_text[outbound]])
    del relayed
    by_key = stable_argsort(out_key)  # line order within a key
    outbound, out_key = outbound[by_key], out_key[by_key]

    sent = after_welcome & (kinds.message_kind[line_text] >= 0)
    msg_line = np.flatnonzero(sent)
    msg_kind = kinds.message_kind[line_text[msg_line]]
    msg_private = msg_kind == PRIVATE_MESSAGE
    msg_key = key(msg_kind.astype(np.int64), chat.line_nick[msg_line],
                  kinds.message_payload[line_text[msg_line]])
    # Each message's lines: out_key[lo:hi].  (Looked up in key order, each search
    # starts where the one before ended, not anywhere in the keys as in line order.)
    by_msg_key = stable_argsort(msg_key)
    sorted_keys = msg_key[by_msg_key]
    lo, hi = np.empty_like(msg_key), np.empty_like(msg_key)
    lo[by_msg_key] = np.searchsorted(out_key, sorted_keys, "left")
    hi[by_msg_key] = np.searchsorted(out_key, sorted_keys, "right")
    chat.msg_line, chat.msg_kind, chat.msg_text_id = msg_line, msg_kind, line_text[msg_line]
    chat.msg_payload = kinds.message_payload[chat.msg_text_id]
    chat.payloads, chat.addressee_of_text = kinds.payloads.names, kinds.message_to

    # Messages that share a key compete for its lines: those go through a loop below.
    same_as_next = sorted_keys[1:] == sorted_keys[:-1]
    shared = np.zeros(len(msg_line), dtype=bool)
    shared[by_msg_key] = np.r_[False, same_as_next] | np.r_[same_as_next, False]
    del sorted_keys, same_as_next
    if msg_private.any():
        # Nicks compare as the server compares them (proto.nick_key): ids of those keys.
        keys_of: dict[str, int] = {}
        nick_key_id = np.array([keys_of.setdefault(k, len(keys_of)) for k in map(proto.nick_key, chat.nicks)]
                               + [NONE], dtype=np.int64)
        sent_privately = np.zeros(len(kinds.message_to), dtype=bool)  # the private messages' texts
        sent_privately[chat.msg_text_id[msg_private]] = True
        texts_to = np.flatnonzero(sent_privately)
        key_of_text = np.full(len(kinds.message_to), NONE, dtype=np.int64)  # each addressee's key id
        key_of_text[texts_to] = [keys_of.setdefault(proto.nick_key(kinds.message_to[k]), len(keys_of))
                                 for k in texts_to.tolist()]

    def acceptable(msg: np.ndarray, line: np.ndarray) -> np.ndarray:
        """Whether each outbound ``line`` may be a copy of message ``msg``: sent on another
        connection, not before the message, and a private one to its addressee."""
        m_line = msg_line[msg]
        good = chat.line_conn[line] != chat.line_conn[m_line]
        t_out, t_msg = chat.line_time[line], chat.line_time[m_line]
        good &= ~((t_out < t_msg) | ((t_out == t_msg) & (chat.line_frame[line] < chat.line_frame[m_line])))
        del t_out, t_msg, m_line
        rows = np.flatnonzero(msg_private[msg])  # a private message's line must go to its addressee
        if len(rows):
            recipient = nick_key_id[chat.line_recipient[line[rows]]]  # NONE -> last entry (NONE)
            addressee = key_of_text[chat.msg_text_id[msg[rows]]]
            good[rows] &= (recipient == NONE) | (addressee == NONE) | (recipient == addressee)
        return good

    # Messages that stand alone: candidate pairs (message, outbound line), message by
    # message, in line order, each message's first acceptable line per connection.
    # (int32 where it fits: these arrays are the fan-out's peak of memory)
    count = np.where(shared, 0, hi - lo)  # shared keys' messages are matched below
    pair_start = np.r_[0, np.cumsum(count)]
    pair_msg = np.repeat(np.arange(len(msg_line), dtype=np.int32), count)
    out_line = np.empty(len(pair_msg), dtype=np.int32)
    chosen = np.zeros(len(pair_msg), dtype=bool)
    outbound = outbound.astype(np.int32)
    width = int(chat.line_conn.max()) + 2 if n else 2  # connections, and one for "any"

    def check_pairs(messages: slice) -> None:
        """The pairs of some messages that stand alone: which are ``chosen``."""
        pairs = slice(int(pair_start[messages.start]), int(pair_start[messages.stop]))
        msg, line = pair_msg[pairs], outbound[ranges(lo[messages], count[messages])]
        out_line[pairs] = line
        cand = np.flatnonzero(acceptable(msg, line))
        # The first acceptable line per (message, connection); private: only the first.
        private = msg_private[msg[cand]]
        group = msg[cand].astype(np.int64) * width + np.where(private, width - 1, chat.line_conn[line[cand]])
        _, first = np.unique(group, return_index=True)
        chosen[pairs.start + cand[first]] = True

    # The messages a slice at a time, two at once (.workers): each slice's temporaries
    # are a few times its pairs, so eight slices keep that peak low.
    cuts = np.linspace(0, len(msg_line), FAN_OUT_SLICES + 1).astype(np.int64).tolist()
    for_each(check_pairs, (slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])))
    picked = np.flatnonzero(chosen)
    d_msg, d_line = pair_msg[picked].astype(np.int64), out_line[picked].astype(np.int64)
    del picked, by_key, out_key
    pair_msg = out_line = chosen = None  # freed before the delivery columns: a lower peak

    # Shared keys: in message order, each message takes the lines of its key that the
    # earlier ones left (one pass over the key's lines per message, no pairs kept).
    used: set[int] = set()
    shared_msg, shared_line = [], []
    for j in np.flatnonzero(shared).tolist():
        lines = outbound[lo[j] : hi[j]]
        lines = lines[acceptable(np.full(len(lines), j), lines)]
        seen: set[int] = set()
        for line, c in zip(lines.tolist(), chat.line_conn[lines].tolist(), strict=True):
            if line in used or c in seen:
                continue
            used.add(line)
            seen.add(c)
            shared_msg.append(j)
            shared_line.append(line)
            if msg_private[j]:
                break
    if shared_msg:  # each message's deliveries stay in line order: a stable sort by message
        d_msg = np.r_[d_msg, np.array(shared_msg, dtype=np.int64)]
        d_line = np.r_[d_line, np.array(shared_line, dtype=np.int64)]
        order = np.argsort(d_msg, kind="stable")
        d_msg, d_line = d_msg[order], d_line[order]
    chat.delivery_line = d_line
    chat.delivery_start = np.searchsorted(d_msg, np.arange(len(msg_line) + 1))
    chat.delivery_latency = latencies(chat, msg_line[d_msg], d_line)


def latencies(chat: Chat, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
    """Seconds from each line in ``earlier`` to its line in ``later``.

    Exact when both timestamps have the same resolution: the tick difference
    divided by the ticks per second, correctly rounded (:func:`.packets.exact_ratio`).
    Computed in place where it can: this runs at the chat layer's peak of memory.
    """
    per_second = take(chat.line_per_second, later)  # one resolution: no memory per line
    ticks = chat.line_ticks[later]
    ticks -= chat.line_ticks[earlier]
    seconds = exact_ratio(ticks, per_second)
    del ticks
    other = np.flatnonzero(take(chat.line_per_second, earlier) != per_second)  # mixed resolutions
    seconds[other] = chat.line_time[later[other]] - chat.line_time[earlier[other]]
    return seconds
