"""The fast chat layer gives exactly what the plain one, one line at a time, gives.

``tcpchatx.analysis.plain.chat`` reads the chat the slow and obvious way (a Python
object per line, loops over lines); here both run on every reference capture, on
interleaved copies of the reference chat, and on crafted and random ones, and every
column, line, message and delivery must be equal, field by field, and so every output.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
import struct
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis_helpers import T0, WELCOME, C, S, Talk, merge, write_capture
from tcpchatx import protocol as proto
from tcpchatx.analysis import (
    analyze,
    chat,
    format_ladder,
    format_summary,
    to_json,
    write_annotated,
    write_json,
)
from tcpchatx.analysis.capture_file import at_every_offset
from tcpchatx.analysis.chat import fanout, model, parsing, reassembly, windows
from tcpchatx.analysis.chat import lines as chat_lines
from tcpchatx.analysis.packets import factorize
from tcpchatx.analysis.plain import chat as plain
from tcpchatx.analysis.sorting import stable_argsort
from tcpchatx.analysis.tracker import _endpoint_ids, connect

ROOT = Path(__file__).parent.parent
CAPTURES = sorted((ROOT / "captures").glob("*.pcapng"))


def with_plain_chat(a):
    """The same analysis, its chat read by the plain layer, one line at a time."""
    return dataclasses.replace(a, chat=plain.analyze_chat_line_by_line(a.packets, a.tracking))


# The columns of ids, and the table each one's ids are in.
ID_COLUMNS = {"line_text": "texts", "line_nick": "nicks", "line_recipient": "nicks",
              "line_command": "commands", "msg_text_id": "texts", "msg_payload": "payloads"}
TABLES = {"texts", "nicks", "commands", "payloads", "addressee_of_text"}


def named(c: chat.Chat, column: str) -> list:
    """What the ids of an id column stand for (None for -1)."""
    table = getattr(c, ID_COLUMNS[column])
    return [table[k] if k >= 0 else None for k in getattr(c, column).tolist()]


def assert_same_columns(fast: chat.Chat, slow: chat.Chat) -> None:
    """Every field of the two Chats alike: arrays of the same type and values.

    Ids may be numbered apart (the fast layer numbers raw bytes, so ``hi\\r`` and ``hi``
    are two texts there, and it numbers nicks in the order it parses them, some never
    used), so id columns are compared by what their ids stand for.
    """
    for f in dataclasses.fields(chat.Chat):
        name = f.name
        if name.startswith("_") or name in TABLES:
            continue
        mine, theirs = getattr(fast, name), getattr(slow, name)
        if isinstance(mine, np.ndarray):
            assert mine.dtype == theirs.dtype, name
            if name in ID_COLUMNS:
                assert named(fast, name) == named(slow, name), name
            else:
                assert np.array_equal(mine, theirs), name
        else:
            assert mine == theirs, name
    assert list(fast.nick_of_conn) == list(slow.nick_of_conn)  # in the same order too
    assert fast.msg_text == slow.msg_text and fast.msg_to == slow.msg_to
    assert isinstance(slow.texts, list)  # the plain layer keeps plain lists


def assert_same_chat(a) -> None:
    """The fast chat of ``a`` is the plain one: columns, objects and every output
    (JSON, summary, ladder, pcapng comments)."""
    b = with_plain_chat(a)
    fast, slow = a.chat, b.chat
    assert_same_columns(fast, slow)
    assert [asdict(x) for x in slow.lines] == [asdict(x) for x in a.lines]
    assert [asdict(x) for x in slow.messages] == [asdict(x) for x in a.messages]
    # The plain Chat keeps its own objects; its columns give them back, too.
    assert [asdict(x) for x in slow.build_lines(0, slow.n_lines)] == [asdict(x) for x in slow.lines]
    assert [asdict(x) for x in slow.build_messages(0, slow.n_messages)] == [asdict(x) for x in slow.messages]
    for frame in {line.frame for line in slow.lines}:
        assert [x.id for x in a.lines_of_frame(frame)] == [x.id for x in slow.lines if x.frame == frame]
    want = json.loads(json.dumps(to_json(a)))
    assert json.loads(json.dumps(to_json(b))) == want
    for each in (a, b):
        out = io.StringIO()
        write_json(each, out)  # written from the columns; to_json from the objects
        assert json.loads(out.getvalue()) == want
    assert format_summary(b, max_items=None) == format_summary(a, max_items=None)
    assert format_ladder(b) == format_ladder(a)
    with tempfile.TemporaryDirectory() as tmp:  # the pcapng comments
        copies = [Path(write_annotated(each, Path(tmp) / f"{k}.pcapng")).read_bytes()
                  for k, each in enumerate((a, b))]
    assert copies[0] == copies[1]


@pytest.mark.parametrize("path", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_reference_captures(path):
    assert_same_chat(analyze(path))


def test_interleaved_copies_of_the_reference_chat(tmp_path):
    """The larger capture of tests/test_golden_outputs.py: 20 copies of the chat at once.

    Their messages share (nick, text), so they compete for the same copies: the
    fan-out's shared-key path, which matches them in a loop, in order.
    """
    from benchmarks.make_capture import build_copies, write_pcapng

    reference = ROOT / "captures" / "chat.pcapng"
    tracked = int((analyze(reference).tracking.conn >= 0).sum())
    path = tmp_path / "copies.pcapng"
    write_pcapng(path, *build_copies(reference, 20 * tracked))
    a = analyze(path)
    keys = Counter((m.kind, m.sender, m.text) for m in a.messages)
    assert max(keys.values()) > 1  # messages do share their keys
    assert sum(len(m.deliveries) for m in a.messages) > len(a.messages)
    assert_same_chat(a)


def test_lines_of_frame_before_and_after_lines_are_built(tmp_path):
    a = analyze(CAPTURES[[p.stem for p in CAPTURES].index("chat")])
    frames = sorted({int(f) for f in a.chat.line_frame.tolist()})
    fresh = [asdict(x) for f in frames for x in a.lines_of_frame(f)]
    assert fresh == [asdict(x) for x in a.lines]
    assert a.lines_of_frame(0) == a.lines_of_frame(-3) == a.lines_of_frame(2**40) == []  # no such frames
    assert a.lines_of_frame(frames[0])[0] is a.lines[0]  # same objects once built


def test_message_texts_and_addressees_made_on_first_use():
    a = analyze(CAPTURES[[p.stem for p in CAPTURES].index("private")])
    chat = a.chat
    assert "msg_text" not in vars(chat) and "msg_to" not in vars(chat)  # the analysis made none
    slow = plain.analyze_chat_line_by_line(a.packets, a.tracking).messages  # one object at a time
    assert chat.msg_text == [m.text for m in slow] and chat.msg_to == [m.to for m in slow]
    assert any(chat.msg_to) and None in chat.msg_to  # both kinds of message are there


def three_clients(tmp_path, lines_by_side):
    """Three clients on one server; ``lines_by_side`` is [(client index, side, bytes)]."""
    talks = [Talk(client=(f"10.0.0.{k + 1}", 40000 + k), isn=(1000 * (k + 1), 5000 * (k + 1)),
                  start=1_700_000_000.0 + k * 0.0001) for k in range(3)]
    for t in talks:
        t.handshake()
    for k, side, data in lines_by_side:
        talks[k].send(side, data)
        talks[k].ack(1 - side)
    packets = sorted((p for t in talks for p in t.packets), key=lambda p: p.time)
    path = tmp_path / "three.pcap"
    from scapy.all import wrpcap
    wrpcap(str(path), packets)
    return path


def test_crafted_nick_changes_shared_messages_and_private(tmp_path):
    script = [
        (0, C, b"alice\n"), (0, S, b"--- Welcome, alice! Say hi.\n"),
        (1, C, b"bob\n"), (1, S, b"--- Welcome, bob! Say hi.\n"),
        (2, C, b"/quit\n"), (2, C, b"\xff\xfe\n"), (2, C, b"carol\n"), (2, S, b"--- Welcome, carol! x\n"),
        (0, C, b"hi\n"), (1, S, b"<alice> hi\n"), (2, S, b"<alice> hi\n"),
        (0, C, b"hi\n"), (1, S, b"<alice> hi\n"),  # the same message twice: they compete
        (0, C, b"/nick al\n"), (0, S, b"*** alice is now known as al\n"),
        (1, S, b"*** alice is now known as al\n"), (2, S, b"*** alice is now known as al\n"),
        (0, C, b"//slash\n"), (1, S, b"<al> /slash\n"),
        (1, C, b"/msg AL psst\n"), (0, S, b"*bob* psst\n"),
        (1, C, b"/msg nobody x\n"), (2, C, b"   \n"), (2, C, b"/msg\n"),
        (2, C, b"bad\x1b[2Jtext\r\n"), (0, S, b"<carol> bad[2Jtext\n"),
    ]
    assert_same_chat(analyze(three_clients(tmp_path, script)))


def test_crafted_actions(tmp_path):
    """/me: relayed as "* nick text" (an action, never a notice or a rename), a message
    of kind "action"; a /me with nothing to show is none."""
    script = [
        (0, C, b"alice\n"), (0, S, b"--- Welcome, alice! Say hi.\n"),
        (1, C, b"bob\n"), (1, S, b"--- Welcome, bob! Say hi.\n"),
        (2, C, b"carol\n"), (2, S, b"--- Welcome, carol! x\n"),
        (0, C, b"/me waves\n"), (1, S, b"* alice waves\n"), (2, S, b"* alice waves\n"),
        (1, C, b"/ME is now known as zed \n"), (0, S, b"* bob is now known as zed\n"),
        (2, S, b"* bob is now known as zed\n"),
        (2, C, b"/me \x1b[2Jshouts\n"), (0, S, b"* carol [2Jshouts\n"),
        (0, C, b"/me\n"), (0, C, b"/me \x07 \n"), (0, S, b"!!! Usage: /me TEXT\n"),
        (1, C, b"waves\n"), (0, S, b"<bob> waves\n"),  # chat, not the action "waves"
    ]
    a = analyze(three_clients(tmp_path, script))
    assert_same_chat(a)
    assert a.chat.nick_of_conn == {0: "alice", 1: "bob", 2: "carol"}  # nobody became zed
    assert {x.kind for x in a.lines if x.text.startswith("* ")} == {"action"}
    assert sorted((m.kind, m.sender, m.text) for m in a.messages) == [
        ("action", "alice", "waves"), ("action", "bob", "is now known as zed"),
        ("action", "carol", "[2Jshouts"), ("chat", "bob", "waves"),
    ]  # (three_clients keeps a clock per client: test_analysis_chat checks order and deliveries)


def write_cut_pcap(path: Path, packets, keep: dict[int, int]) -> Path:
    """A pcap of ``packets`` where packet ``k`` has only its first ``keep[k]`` bytes
    captured (its IP header still says how long it was): a snap length."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    for k, pkt in enumerate(packets):
        raw = bytes(pkt)
        cut = raw[: keep.get(k, len(raw))]
        usec = round(float(pkt.time) * 1_000_000)
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(cut), len(raw)) + cut
    path.write_bytes(bytes(out))
    return path


def test_crafted_holes_cut_segments_and_bytes_before_the_isn(tmp_path):
    """Where exactly a hole cuts a line, segments cut short by the snap length (one
    to nothing), and data numbered before the ISN (outside the stream)."""
    t = Talk(isn=(1000, 5000))
    t.handshake()
    t.send(C, b"alice\n")
    t.send(S, b"--- Welcome, alice! Say hi.\n")
    t.seg(C, "PA", b"early\n", seq=1000 - 10, advance=False)  # relative seq 2**32 - 9
    t.send(C, b"abc")
    t.next[C] += 2  # a hole just before the newline: "abc" is lost
    t.send(C, b"\nnext\n")
    t.next[C] += 2  # a hole at a line's first byte: the line after it stands
    t.send(C, b"two\npar")
    t.next[C] += 3  # a hole inside a line: "par...tial" is lost
    t.send(C, b"tial\nok\n")
    cut_short = len(t.packets)
    t.send(C, b"cut short\n")  # 5 bytes of its 10 captured: the rest is a hole
    t.send(C, b"more\nok again\n")
    t.next[C] += 3
    nothing = len(t.packets)
    t.send(C, b"gone\n")  # none of its bytes captured: an empty run, after a hole
    t.send(C, b"after\n")
    t.send(C, b"after\n", seq=t.next[C] - 6)  # a retransmission
    t.ack(S)
    payload_start = len(bytes(t.packets[cut_short])) - len(b"cut short\n")
    path = write_cut_pcap(tmp_path / "holes.pcap", t.packets,
                          {cut_short: payload_start + 5, nothing: payload_start})
    a = analyze(path)
    assert a.chat.gaps == 6  # the empty run has a hole before it, and one after
    client = [line.text for line in a.lines if line.direction == C]
    assert client == ["alice", "next", "two", "ok", "ok again", "after"]
    assert_same_chat(a)


# --------------------------------------------------------------------------- random scripts

NICKS = ["alice", "Alice", "bob", "BOB", "\uff42\uff4f\uff42", "carol", "al"]  # ｂｏｂ is bob too
CLIENT_LINES = [
    b"alice", b"bob", b"Alice", b"carol", b"/quit", b"", b"1x", b"hi", b"hi", b"hi", b"  ",
    b"//slash", b"/msg bob psst", b"/msg BOB psst", b"/msg \xef\xbd\x82\xef\xbd\x8f\xef\xbd\x82 psst",
    b"/msg", b"/msg bob", b"/msg nobody hi", b"/nick al", b"bad\x1b[2Jtext", b"\x1b", b"\xff\xfe",
    b"x" * 1100, b"hi\r", b"caf\xc3\xa9", b"/me hi", b"/ME  hi ", b"/me", b"/me \x1b[2Jtext",
]
TEXTS = ["hi", "/slash", "psst", "bad[2Jtext", "", "caf\u00e9"]


def server_line(rng, nick_of: dict, said: list) -> bytes:
    """A server line: often a broadcast of something a client said, sometimes noise."""
    if said and rng.random() < 0.6:  # the fan-out of a recent line (maybe under a wrong nick)
        talk, line = rng.choice(said[-6:])
        nick = nick_of.get(talk) if rng.random() < 0.9 else rng.choice(NICKS)
        if line.startswith("/msg "):
            return f"*{nick}* {line.partition(' ')[2].partition(' ')[2].strip()}".encode()
        if line.lower().startswith("/me "):
            return f"* {nick} {proto.parse_client_line(proto.sanitize(line)[0]).text}".encode()
        return f"<{nick}> {line[1:] if line.startswith('//') else line}".encode()
    nick, other, text = rng.choice(NICKS), rng.choice(NICKS), rng.choice(TEXTS)
    return rng.choice([
        f"--- Welcome, {nick}! Say hi.", f"*** {nick} is now known as {other}",
        f"<{nick}> {text}", f"*{nick}* {text}", f"* {nick} {text}", f"* {nick} is now known as {other}",
        "!!! Slow down.", "--- 3 online", "a line of no known shape",
    ]).encode()


def random_script(seed: int, tmp_path) -> Path:
    """Clients and a server saying plausible and implausible things, in random pieces.

    Each client names itself and is (usually) welcomed; then clients talk and the
    server (usually) broadcasts what they said, to a random client, in random
    order.  Lines go one per segment, several per segment, or split over two;
    some segments come twice (retransmissions), some bytes never (holes);
    several frames share a timestamp.  The same words recur, so messages compete
    for the same broadcast lines and nicknames collide.
    """
    rng = random.Random(seed)
    clock = 1_700_000_000.0
    talks = [Talk(client=(f"10.0.0.{k + 1}", 40000 + k), isn=(rng.randrange(1 << 32), rng.randrange(1 << 32)),
                  start=clock) for k in range(rng.randint(2, 5))]
    nick_of: dict = {}  # the nick the server welcomed each talk with (what a broadcast shows)
    said: list = []  # (talk, line) of client lines

    def seg(talk, side, flags, data=b"", **kw):
        nonlocal clock
        talk.time = clock
        talk.seg(side, flags, data, dt=rng.choice([0.0, 0.0, 0.000001, 0.001]), **kw)
        clock = talk.time

    for k, talk in enumerate(talks):
        for side, flags in ((C, "S"), (S, "SA"), (C, "A")):
            seg(talk, side, flags)
        nick = rng.choice(NICKS)
        seg(talk, C, "PA", nick.encode() + b"\n")
        if rng.random() < 0.85:
            nick_of[k] = nick
            seg(talk, S, "PA", f"--- Welcome, {nick}! Say hi.\n".encode())
    last: dict = {}
    for _ in range(rng.randint(40, 120)):
        k = rng.randrange(len(talks))
        talk = talks[k]
        side = rng.choice([C, C, S, S, S])
        what = rng.random()
        if what < 0.06 and (k, side) in last:  # a retransmission
            seq, data = last[k, side]
            seg(talk, side, "PA", data, seq=seq, advance=False)
        elif what < 0.08:  # a hole: bytes never captured
            talk.next[side] += rng.randint(1, 4)
        elif what < 0.15:
            seg(talk, 1 - side, "A")
        else:
            lines = [rng.choice(CLIENT_LINES) if side == C else server_line(rng, nick_of, said)
                     for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            if side == C:
                said += [(k, line.decode("utf-8", "replace")) for line in lines]
            data = b"".join(line + b"\n" for line in lines)
            pieces = [data]
            if rng.random() < 0.2 and len(data) > 1:
                cut = rng.randrange(1, len(data))
                pieces = [data[:cut], data[cut:]]
            for piece in pieces:
                last[k, side] = (talk.next[side], piece)
                seg(talk, side, "PA", piece)
    packets = sorted((p for t in talks for p in t.packets), key=lambda p: float(p.time))
    fmt = "pcapng" if seed % 2 else "pcap"
    return write_capture(tmp_path / f"random-{seed}.{fmt}", packets, fmt=fmt, nano=seed % 4 == 1)


@pytest.mark.parametrize("seed", range(40))
def test_random_scripts(seed, tmp_path):
    a = analyze(random_script(seed, tmp_path))
    assert a.lines  # the script said something
    assert_same_chat(a)


# --------------------------------------------------------------------------- numpy helpers


def test_reassembly_is_the_same_whatever_the_order_of_its_segments():
    """Rows in capture order take the one-key sort; any other order, the lexsort."""
    a = analyze(Path(__file__).parent.parent / "captures" / "chat.pcapng")
    p, t = a.packets, a.tracking
    rows = np.flatnonzero((t.conn >= 0) & (p.payload_len > 0))
    shuffled = np.random.default_rng(4).permutation(rows)

    def streams(rows):
        return chat.reassemble_all(p, rows, t.conn[rows].astype(np.int64) * 2 + t.direction[rows],
                                   t.rel_seq[rows])

    one, other = streams(rows), streams(shuffled)
    for name in ("data", "group", "begin", "run_starts", "run_rows", "gaps"):
        assert np.array_equal(getattr(one, name), getattr(other, name)), name
    assert one.data.tobytes().count(b"\n") == len(a.lines)


@pytest.mark.parametrize("longest", [50, 400])  # runs within one window, and runs cut in pieces
def test_gather_runs_is_a_join_of_slices(longest):
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, 10_000, dtype=np.uint8)
    size = rng.integers(1, longest, 300)
    src = rng.integers(0, 10_000 - longest, 300)
    src[-3:] = 10_000 - size[-3:]  # runs that end where the buffer ends: no whole window there
    want = b"".join(buf[a : a + n].tobytes() for a, n in zip(src.tolist(), size.tolist(), strict=True))
    for chunk in (1, 7, 1000, 1 << 22):  # runs in several spans, or one
        # The streams, then zeros, so any offset's next 8 bytes can be read as one word.
        assert reassembly.gather_runs(buf, src, size, chunk=chunk).tobytes() == want + bytes(reassembly.WORD)
    assert reassembly.gather_runs(buf, src[:0], size[:0]).tobytes() == bytes(reassembly.WORD)


def test_one_numpy_call_writes_overlapping_windows_in_order():
    """What :func:`windows.write_end_to_end` relies on: later items of one call win."""
    out = np.zeros(windows.WIDTH + 3, dtype=np.uint8)
    items = np.zeros(4, dtype=windows.VOID)
    items.view(np.uint8).reshape(4, windows.WIDTH)[:] = np.arange(1, 5)[:, None]
    at_every_offset(out, windows.VOID)[np.arange(4)] = items
    assert out.tolist() == [1, 2, 3] + [4] * windows.WIDTH


def test_hashes_and_comparisons_a_window_at_a_time_are_those_of_the_bytes():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 3, 5_000, dtype=np.uint8)  # few byte values: many equal ranges
    start = rng.integers(0, 5_000 - 300, 400)
    length = rng.choice([0, 1, 7, 8, 9, 127, 128, 129, 255, 256, 257, 300], 400)
    end = start + length
    ids, firsts = chat_lines.line_ids(data, start, end)
    assert (ids.tolist(), firsts.tolist()) == ids_by_dict([data[a:b].tobytes() for a, b in zip(start, end)])
    near_end = np.array([5_000 - 1, 5_000 - 130, 0])
    got = chat_lines._unequal(data, near_end, near_end[::-1], np.array([1, 130, 1]))
    assert got.tolist() == [data[-1] != data[0], False, data[0] != data[-1]]


def as_lines(blobs: list[bytes]):
    """Lines as Streams.data holds them: end to end, each with its "\\n", then WORD zeros."""
    data = np.frombuffer(b"".join(b + b"\n" for b in blobs) + bytes(reassembly.WORD), dtype=np.uint8)
    end = np.cumsum([len(b) + 1 for b in blobs], dtype=np.int64)
    return data, end - [len(b) + 1 for b in blobs], end


def test_welcomes_and_renames_found_by_one_findall_are_those_matched_one_by_one():
    texts = ["Welcome, bob! There are 2 of us", "Welcome, ! x", "Welcome, a! b! c", "", "Welcome, x!",
             "x is now known as y", "x is now known as y z", "a  is now known as b", "é is now known as ü",
             " x is now known as y", "Welcome, élan! ", "welcome, bob! no", "Welcome, a b! x",
             "a\u00a0b is now known as c"]
    found = parsing._each_line(parsing._WELCOMES, np.array(texts, dtype=object))
    assert found == [m.group(1) if m else "" for m in map(parsing._WELCOME.match, texts)]
    found = parsing._each_line(parsing._RENAMES, np.array(texts, dtype=object))
    assert found == [m.groups() if m else ("", "") for m in map(parsing._RENAMED.match, texts)]
    assert parsing._each_line(parsing._WELCOMES, np.array([], dtype=object)) == []
    # The plain layer asks the protocol's own parsers, which must read them alike.
    for text in texts:
        welcome, renamed = parsing._WELCOME.match(text), parsing._RENAMED.match(text)
        assert proto.welcome_nick(proto.reply_line(text)) == (welcome[1] if welcome else None), text
        plain_renamed = proto.RENAMED_PATTERN.fullmatch(text)
        assert (plain_renamed.groups() if plain_renamed else None) == (renamed.groups() if renamed else None)


def test_decode_all_is_decode_line_of_each():
    blobs = [b"hi", b"", b"caf\xc3\xa9", b"x\r", b"\r", b"a" * 1024, b"a" * 1025, b"a" * 1024 + b"\r",
             b"\xc3", b"\xff", b"\xed\xa0\x80", b"tab\there"]
    def joined(blobs):
        return chat_lines.joined_lines(*as_lines(blobs), chunk=5)  # in several batches

    assert joined(blobs) == b"".join(b + b"\n" for b in blobs)
    assert chat_lines.decode_all(joined(blobs)) == [chat.decode_line(b) for b in blobs]
    valid = [b for b in blobs if chat.decode_line(b) is not None]
    assert chat_lines.decode_all(joined(valid)) == [chat.decode_line(b) for b in valid]  # the one-call path
    assert chat_lines.decode_all(joined([])) == []


def test_plain_ascii_texts_stay_one_string_and_read_as_a_list_of_them():
    blobs = [b"hi", b"", b"<al> x", b"tab\there", b"\x00", b"a" * 1024]
    texts = chat_lines.decode_all(chat_lines.joined_lines(*as_lines(blobs), chunk=5))
    want = [chat.decode_line(b) for b in blobs]
    assert isinstance(texts, chat_lines.AsciiTexts)
    assert list(texts) == want and len(texts) == len(want)
    assert [texts[k] for k in range(len(texts))] == want and texts[-1] == want[-1]
    assert texts[1:4] == want[1:4]
    assert chat_lines.pick(texts, np.array([4, 0, 0, 2])) == [want[4], want[0], want[0], want[2]]
    assert None not in texts and "<al> x" in texts and "<al>" not in texts
    # Not ASCII, or a line decode_line changes (over-long, a trailing "\r"): a list.
    for odd in (b"caf\xc3\xa9", b"a" * 1025, b"x\r"):
        assert isinstance(chat_lines.decode_all(chat_lines.joined_lines(*as_lines([*blobs, odd]))), list)


def ids_by_dict(blobs: list[bytes]):
    """The plain way to number lines by content, in order of first appearance."""
    ids: dict[bytes, int] = {}
    line_ids = [ids.setdefault(b, len(ids)) for b in blobs]
    return line_ids, [line_ids.index(k) for k in range(len(ids))]


LINES = [b"<alice> hi", b"", b"<bob> hi", b"<alice> hi", b"x" * 7, b"x" * 8, b"x" * 9, b"", b"x" * 8,
         b"12345678" * 3, b"12345678" * 2 + b"12345679", b"12345678" * 3, b"\r", b"a" * 2000, b"a" * 2000,
         b"b" * 40000, b"b" * 39999 + b"c", b"b" * 40000]  # more words than multipliers: reused


@pytest.mark.parametrize("chunk", [1, 3, 1 << 16])
def test_line_ids_number_lines_by_content(chunk):
    ids, firsts = chat_lines.line_ids(*as_lines(LINES), chunk=chunk)
    assert (ids.tolist(), firsts.tolist()) == ids_by_dict(LINES)
    rng = np.random.default_rng(3)  # many lines from few texts, as a broadcast makes them
    texts = [bytes(rng.integers(97, 100, rng.integers(0, 30))) for _ in range(300)]
    blobs = [texts[k] for k in rng.integers(0, len(texts), 5000)]
    ids, firsts = chat_lines.line_ids(*as_lines(blobs), chunk=chunk)
    assert (ids.tolist(), firsts.tolist()) == ids_by_dict(blobs)


def test_line_ids_sort_out_hash_collisions(monkeypatch):
    """With every multiplier 0 all lines hash alike: the word-by-word check must split them."""
    monkeypatch.setattr(chat_lines, "_MULTIPLIERS", np.zeros(4096, dtype=np.uint64))
    ids, firsts = chat_lines.line_ids(*as_lines(LINES))
    assert (ids.tolist(), firsts.tolist()) == ids_by_dict(LINES)


@pytest.mark.parametrize("values", [
    [7, 7, 3, 9, 3, 1], [], [5], [4] * 1000, [4] * 999 + [5], list(range(100, 0, -1)) * 3,
    np.random.default_rng(2).integers(0, 1 << 40, 5000).tolist(),
])
def test_factorize_is_pandas_factorize(values):
    values = np.array(values, dtype=np.int64)
    want_codes, want_uniques = pd.factorize(values)
    for sample in (1, 3, 1 << 16):  # a sample that misses values, or holds them all
        codes, uniques = factorize(values, sample=sample)
        assert codes.tolist() == want_codes.tolist()
        assert uniques.tolist() == want_uniques.tolist()


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32, np.uint32, np.uint16, np.int8])
def test_the_radix_argsort_is_numpys_stable_argsort(dtype):
    rng = np.random.default_rng(5)
    for top in (0, 1, 300, 70_000, 2**31, 2**40, 2**62):  # one pass, two, three, four
        keys = rng.integers(0, min(top, np.iinfo(dtype).max), 20_000, endpoint=True).astype(dtype)
        assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable")), top
    if np.iinfo(dtype).bits == 64:  # few distinct high digits, many ties: stability across passes
        tied = (rng.integers(0, 3, 20_000) << 40 | rng.integers(0, 3, 20_000)).astype(dtype)
        assert np.array_equal(stable_argsort(tied), np.argsort(tied, kind="stable"))
    top_bit = np.array([2**63 + 5, 1, 2**63, 2**63 + 5, 7], dtype=np.uint64)
    assert np.array_equal(stable_argsort(top_bit), np.argsort(top_bit, kind="stable"))
    negative = rng.integers(-3, 3, 1000).astype(np.int64)  # not for the radix: numpy's own
    assert np.array_equal(stable_argsort(negative), np.argsort(negative, kind="stable"))
    assert len(stable_argsort(np.zeros(0, dtype))) == 0


def test_segments_sorted_by_stream_then_sequence_as_lexsort_does():
    """The quick path (streams already in sequence order) and the full sort agree with lexsort."""
    rng = np.random.default_rng(5)
    rows = np.arange(5000)
    group = rng.integers(0, 40, 5000)
    in_order = np.zeros(5000, dtype=np.uint32)
    for g in range(40):  # each stream's sequence numbers rise in capture order, ties included
        mine = group == g
        in_order[mine] = np.cumsum(rng.integers(0, 3, mine.sum()))
    wrapped = in_order.copy()
    wrapped[7] = 2**32 - 5  # before the ISN: sorts last in its stream
    resent = in_order.copy()
    resent[np.flatnonzero(group == group[4000])[-1]] = 0  # a retransmission of the first bytes
    for rel_seq in (in_order, wrapped, resent):
        assert np.array_equal(reassembly._by_group_then_seq(group, rel_seq), np.lexsort((rows, rel_seq, group)))


def test_endpoint_ids_number_equal_endpoints_equally():
    rng = np.random.default_rng(3)
    for top in (1 << 10, 1 << 40):  # the table, and numpy.unique
        src = rng.integers(0, top, 2000)
        dst = np.r_[src[1000:], rng.integers(0, top, 1000)]
        s_id, d_id, n = _endpoint_ids(src, dst)
        both = np.r_[src, dst]
        ids = np.r_[s_id, d_id]
        assert n == len(np.unique(both)) and ids.min() == 0 and ids.max() == n - 1
        pairs = set(zip(both.tolist(), ids.tolist(), strict=True))
        assert len(pairs) == n  # one id per endpoint, one endpoint per id


def test_latency_beyond_exact_float_ticks_is_divided_as_python_does():
    ticks = [0, (1 << 60) + 1]  # 2**60 + 1 ns: not a float
    c = SimpleNamespace(line_per_second=np.array([10**9, 10**9]), line_ticks=np.array(ticks),
                        line_time=np.array([0.0, 1.0]))
    got = fanout.latencies(c, np.array([0]), np.array([1]))
    assert got.tolist() == [((1 << 60) + 1) / 10**9]


def test_server_lines_parsed_in_bulk_as_parse_server_line_does():
    texts = ["<alice> hi", "*bob* psst", "*** alice joined", "--- Welcome, al! Online", "!!! no",
             "<a b> not a nick", "<> empty", "**x* odd", "*** ", "", "plain", "<al>no space",
             "<al>  two spaces", "*b*  x", "<al\u00a0x> nbsp", "<\u00e9> accent", "--- x\r",
             "< > sp", "<al> <bob> nested", "*** <al> hi", "\u2028<al> sep", "<al> tab\there",
             "--- carol is now known as dave", "*** carol is now known as dave",
             "* alice waves", "* alice joined (3 online)", "* carol is now known as dave", "* ", "*  two",
             "* a*b c", "* \u00e9l\u00e8ve sourit", "*alice * odd"]
    kinds = parsing.kinds_of_texts(texts, np.arange(len(texts)), np.ones(len(texts), np.int8),
                                 nicks := model.Ids(), model.Ids())
    for k, text in enumerate(texts):
        want = proto.parse_server_line(text)
        assert chat.LINE_KIND_NAMES[kinds.server_kind[k]] == want.kind.value, text
        nick = kinds.server_nick[k]
        assert (nicks.names[nick] if nick >= 0 else None) == want.nick, text
        payload = kinds.server_payload[k]
        if want.nick is not None:
            assert kinds.payloads.names[payload] == want.text, text
    renamed = texts.index("*** carol is now known as dave")
    assert nicks.names[kinds.rename_from[renamed]] == "carol"
    assert nicks.names[kinds.rename_to[renamed]] == "dave"
    assert nicks.names[kinds.welcome[texts.index("--- Welcome, al! Online")]] == "al"
    assert (kinds.welcome >= 0).sum() == 1 and (kinds.rename_from >= 0).sum() == 1
    assert kinds.rename_to[texts.index("--- carol is now known as dave")] == chat.NONE
    assert kinds.rename_from[texts.index("* carol is now known as dave")] == chat.NONE  # an action
    assert chat.LINE_KIND_NAMES[kinds.server_kind[texts.index("* alice joined (3 online)")]] == "action"


_ODD = "<>* -ab\t\x1c\x00\u00a0\u00e9\u3000!"  # delimiters, spaces ASCII and not, non-ASCII
_SERVER_TEXT = st.builds(
    lambda around, nick, space, rest: around[0] + nick + around[1] + space + rest,
    st.sampled_from([("<", ">"), ("*", "*"), ("<", "*"), ("*", ">"), ("<", ""), ("**", "*"),
                     ("", ""), ("*** ", ""), ("--- ", ""), ("!!! ", ""), ("-- ", ""), ("* ", ""),
                     ("* ", "*"), ("*  ", "")]),
    st.text(alphabet="ab-\x00\u00e9" + _ODD, max_size=20),  # where a nick would be
    st.sampled_from([" ", "", "  "]),
    st.text(alphabet=_ODD, max_size=6),
)


@given(st.lists(_SERVER_TEXT, min_size=1, max_size=40))
@settings(max_examples=300, deadline=None)
def test_server_lines_read_as_bytes_as_parse_server_line_does(texts):
    """The byte scan settles most texts and leaves the rest to the regex; either way
    each text means what parse_server_line says (and a nick or payload seen twice
    gets one id)."""
    texts = [*texts, "<" + "n" * 20 + "> longer than any nick", "*" + "m" * 17 + "* too"]
    # The same shapes in plain ASCII, as the analysis usually has them: one string
    # for all (chat_lines.AsciiTexts), whose bytes are read in place.
    ascii_texts = [text.encode("ascii", "replace").decode() for text in texts]
    table = chat_lines.decode_all("".join(text + "\n" for text in ascii_texts).encode())
    assert isinstance(table, chat_lines.AsciiTexts) and list(table) == ascii_texts
    for meant, given_as in ((texts, texts), (ascii_texts, table)):
        kinds = parsing.kinds_of_texts(given_as, np.arange(len(meant)), np.ones(len(meant), np.int8),
                                     nicks := model.Ids(), model.Ids())
        for k, text in enumerate(meant):
            want = proto.parse_server_line(text)
            assert chat.LINE_KIND_NAMES[kinds.server_kind[k]] == want.kind.value, text
            nick, payload = kinds.server_nick[k], kinds.server_payload[k]
            assert (nicks.names[nick] if nick >= 0 else None) == want.nick, text
            assert (kinds.payloads.names[payload] if payload >= 0 else None) == (want.text if want.nick else None)
        assert len(set(nicks.names)) == len(nicks.names)
        assert len(set(kinds.payloads.names)) == len(kinds.payloads.names)


def test_client_lines_parsed_in_bulk_as_parse_client_line_does():
    texts = ["hello", "/msg bob hi there", "//x", "", "/", "/ x", "a\rb", "\u2028x", "x\x0by",
             "/NICK  Bob ", "/msg  bob  x ", "/msg bob", "/msg bob \x1b[2J", "   ", "/quit",
             "hi \x07bell", "//", "/Msg Carol yo", "/msg\tbob hi", "/me waves", "/me", "/me   ",
             "/ME  dances  ", "/me \x1b[2J", "/me \x07 rings", "/me\twaves"]
    kinds = parsing.kinds_of_texts(texts, np.arange(len(texts)), np.zeros(len(texts), np.int8),
                                 model.Ids(), commands := model.Ids())
    for k, text in enumerate(texts):
        want = proto.parse_client_line(text)
        assert chat.LINE_KIND_NAMES[kinds.client_kind[k]] == want.kind.value, text
        command = kinds.client_command[k]
        assert (commands.names[command] if command >= 0 else None) == want.command, text
        assert kinds.slash[k] == text.startswith("/"), text
        relayed = (chat.NONE, None, None)  # what the original loop said each text means
        if want.kind is proto.Kind.MESSAGE and want.text.strip():
            relayed = (0, proto.sanitize(want.text)[0], None)
        elif want.command == "msg":
            to, _, body = want.text.partition(" ")
            body = proto.sanitize(body.strip())[0]
            if to and body:
                relayed = (1, body, to)
        elif want.command == "me":  # as the room reads it: the line sanitised, then parsed
            body = proto.parse_client_line(proto.sanitize(text)[0]).text
            if body:
                relayed = (2, body, None)
        payload = kinds.message_payload[k]
        got = (kinds.message_kind[k], kinds.payloads.names[payload] if payload >= 0 else None,
               kinds.message_to[k])
        assert got == relayed, text


@pytest.mark.parametrize("counts, winner", [((2, 3), "10.0.0.3"), ((3, 3), "10.0.0.2"), ((3, 2), "10.0.0.2")])
def test_the_chat_server_answered_most_connections_the_first_one_on_a_tie(tmp_path, counts, winner):
    """As the connections' summaries counted it, from the columns the chat layer starts on."""
    talks = []
    for server, count in zip(("10.0.0.2", "10.0.0.3"), counts, strict=True):
        for _ in range(count):
            talk = Talk(client=("10.0.0.1", 40000 + len(talks)), server=(server, 25000), start=T0 + len(talks))
            talk.handshake()
            talk.send(S, WELCOME)
            talk.send(C, b"hi\n")
            talks.append(talk)
    path = write_capture(tmp_path / "two-servers.pcap", merge(*talks))
    a = analyze(path)
    assert a.chat.server == (winner, 25000)
    flows = connect(a.packets)
    answered = Counter(c.server for c in a.connections).most_common(1)[0][0]  # from the summaries
    assert chat.find_server(a.packets, flows) == plain.find_server(a.packets, flows) == answered
    whole = chat.analyze_chat(a.packets, a.tracking)  # the chat layer in one call
    assert [asdict(x) for x in whole.lines] == [asdict(x) for x in a.lines]
    assert [asdict(x) for x in whole.messages] == [asdict(x) for x in a.messages]
    server, streams = chat.reassemble_chat(a.packets, a.tracking, ("10.0.0.3", 25000))
    lines = chat.find_chat_lines(a.packets, streams, server)
    assert len(lines.conn) == 2 * counts[1] and set(lines.conn.tolist()) == {  # the welcome, and hi
        c.id for c in a.connections if c.server == ("10.0.0.3", 25000)}
