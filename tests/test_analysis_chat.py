"""The chat layer: reassembly, lines and their frames, nicknames, fan-out."""

from __future__ import annotations

import pytest

from analysis_helpers import WELCOME, C, S, Talk, merge, write_capture
from tcpchatx.analysis import analyze

SERVER = ("10.0.0.9", 25000)


def client(i: int, nick: str, start: float) -> Talk:
    t = Talk(client=(f"10.0.0.{i}", 40000 + i), server=SERVER, isn=(1000 * i, 50000 + i), start=start)
    t.handshake()
    t.send(S, b"*** Welcome to TCPChatX! Choose a nickname.\n")
    t.send(C, nick.encode() + b"\n")
    t.send(S, f"--- Welcome, {nick}! Online: x. Type /help for commands.\n".encode())
    return t


@pytest.fixture
def room(tmp_path):
    """alice, bob and carol chat; returns (analysis, talks, frame numbers of interest)."""
    alice, bob, carol = (client(i, n, 1_700_000_000 + i * 0.01)
                         for i, n in ((1, "alice"), (2, "bob"), (3, "carol")))
    step = 1_700_000_001.0
    for t in (alice, bob, carol):
        t.time = step
    # alice's message arrives in two segments; the server fans it out to bob and carol
    alice.send(C, b"hello ev")
    alice.send(C, b"eryone\n")
    bob.time = carol.time = alice.time
    bob.send(S, b"<alice> hello everyone\n", dt=0.0002)
    carol.send(S, b"<alice> hello everyone\n", dt=0.0003)
    # bob sends two and a half lines in one segment, the rest in the next
    for t in (alice, bob, carol):
        t.time = 1_700_000_002.0
    bob.send(C, b"one\ntwo\nthr")
    bob.send(C, b"ee\n")
    # a private message
    for t in (alice, bob, carol):
        t.time = 1_700_000_003.0
    alice.send(C, b"/msg bob psst\n")
    bob.time = alice.time
    bob.send(S, b"*alice* psst\n", dt=0.0004)
    alice.send(S, b"--- -> bob: psst\n")
    # carol's line is retransmitted; the fan-out reaches alice out of order
    for t in (alice, bob, carol):
        t.time = 1_700_000_004.0
    carol.send(C, b"hi all\n")
    carol.send(C, b"hi all\n", seq=carol.next[C] - 7)
    alice.time = bob.time = carol.time - 0.001  # the server answered the first copy
    bob.send(S, b"<carol> hi all\n", dt=0.0005)
    first = alice.next[S]
    alice.seg(S, "PA", b"all\n", seq=first + 11, advance=False, dt=0.0006)
    alice.seg(S, "PA", b"<carol> hi ", seq=first, dt=0.0001)
    alice.next[S] = first + 15
    path = tmp_path / "room.pcap"
    write_capture(path, merge(alice, bob, carol))
    return analyze(path)


def test_server_and_nicknames(room):
    assert room.chat.server == SERVER
    assert room.chat.nick_of_conn == {0: "alice", 1: "bob", 2: "carol"}
    kinds = {(x.direction, x.kind) for x in room.lines}
    assert {(0, "nickname"), (1, "notice"), (1, "reply"), (1, "chat"), (1, "private"),
            (0, "message"), (0, "command")} <= kinds


def test_line_split_over_two_segments_maps_to_both_frames(room):
    (line,) = [x for x in room.lines if x.text == "hello everyone"]
    assert len(line.frames) == 2 and line.frame == line.frames[1]
    assert [room.packets.payload_len[f - 1] for f in line.frames] == [8, 7]
    assert line.kind == "message" and line.nick == "alice"


def test_two_and_a_half_lines_in_one_segment(room):
    one, two, three = [x for x in room.lines if x.conn == 1 and x.text in ("one", "two", "three")]
    assert one.frames == two.frames == [one.frame]
    assert three.frames == [one.frame, three.frame] and three.frame != one.frame
    assert [x.text for x in room.lines_of_frame(one.frame)] == ["one", "two"]


def test_retransmission_and_reordering(room):
    assert [x.text for x in room.lines if x.conn == 2 and x.direction == 0] == ["carol", "hi all"]
    (to_alice,) = [x for x in room.lines if x.conn == 0 and x.text == "<carol> hi all"]
    assert len(to_alice.frames) == 2
    assert to_alice.frames[0] > to_alice.frames[1]  # the later frame carried the first bytes


def test_broadcast_fan_out(room):
    hello = next(m for m in room.messages if m.text == "hello everyone")
    assert hello.kind == "chat" and hello.sender == "alice"
    assert [(d.recipient, d.conn) for d in hello.deliveries] == [("bob", 1), ("carol", 2)]
    assert [round(d.latency, 6) for d in hello.deliveries] == [0.0002, 0.0003]
    assert all(d.frame > hello.frame for d in hello.deliveries)
    lines = [m.text for m in room.messages if m.sender == "bob"]
    assert lines == ["one", "two", "three"]
    assert all(not m.deliveries for m in room.messages if m.sender == "bob")
    hi = next(m for m in room.messages if m.text == "hi all")
    assert sorted(d.recipient for d in hi.deliveries) == ["alice", "bob"]


def test_private_message(room):
    (psst,) = [m for m in room.messages if m.kind == "private"]
    assert (psst.sender, psst.to, psst.text) == ("alice", "bob", "psst")
    (delivery,) = psst.deliveries
    assert delivery.recipient == "bob" and abs(delivery.latency - 0.0004) < 1e-9


def test_actions_fan_out_and_change_no_nickname(tmp_path):
    """``/me`` comes back to the others as ``* nick text``: an action message, with a
    delivery per other client, even when its words are a rename's or a join's."""
    alice, bob, carol = (client(i, n, 1_700_000_000 + i * 0.01)
                         for i, n in ((1, "alice"), (2, "bob"), (3, "carol")))
    for t in (alice, bob, carol):
        t.time = 1_700_000_001.0
    alice.send(C, b"/me waves\n")
    bob.time = carol.time = alice.time
    bob.send(S, b"* alice waves\n", dt=0.0002)
    carol.send(S, b"* alice waves\n", dt=0.0003)
    for t in (alice, bob, carol):
        t.time = 1_700_000_002.0
    bob.send(C, b"/me is now known as zed\n")
    alice.time = carol.time = bob.time
    alice.send(S, b"* bob is now known as zed\n", dt=0.0004)
    carol.send(S, b"* bob joined (3 online)\n", dt=0.0005)  # not bob's words: no delivery
    bob.send(C, b"/me\n")
    bob.send(S, b"!!! Usage: /me TEXT\n")
    path = tmp_path / "actions.pcap"
    write_capture(path, merge(alice, bob, carol))
    a = analyze(path)
    assert a.chat.nick_of_conn == {0: "alice", 1: "bob", 2: "carol"}
    assert [(x.kind, x.nick, x.recipient) for x in a.lines if x.text.startswith("* ")] == [
        ("action", "alice", "bob"), ("action", "alice", "carol"),
        ("action", "bob", "alice"), ("action", "bob", "carol"),
    ]
    waves, renamed = a.messages
    assert (waves.kind, waves.sender, waves.text, waves.to) == ("action", "alice", "waves", None)
    assert [(d.recipient, round(d.latency, 6)) for d in waves.deliveries] == [("bob", 0.0002), ("carol", 0.0003)]
    assert (renamed.kind, renamed.text) == ("action", "is now known as zed")
    assert [d.recipient for d in renamed.deliveries] == ["alice"]


def test_messages_table(room):
    df = room.messages_df()
    hello = df[df.text == "hello everyone"]
    assert list(hello.recipient) == ["bob", "carol"]
    assert (hello.latency > 0).all()


def test_gap_drops_only_the_broken_line(tmp_path):
    t = Talk()
    t.handshake()
    t.send(S, WELCOME)  # what makes it a chat: the server speaks TCPChatX
    t.send(C, b"alice\nbro")
    t.seg(C, "PA", b"XX", advance=True)  # these two bytes are never captured...
    t.packets.pop()
    t.send(C, b"ken\nfine\n")
    a = analyze(t.write(tmp_path / "gap.pcap"))
    assert [x.text for x in a.lines if x.direction == 0] == ["alice", "fine"]
    assert a.chat.gaps == 1


def test_invalid_utf8_line(tmp_path):
    t = Talk()
    t.handshake()
    t.send(S, WELCOME)
    t.send(C, b"alice\n\xff\xfe\n")
    t.ack(S)
    a = analyze(t.write(tmp_path / "bad.pcap"))
    assert [(x.text, x.kind) for x in a.lines if x.direction == 0] == [("alice", "nickname"), (None, "invalid")]
