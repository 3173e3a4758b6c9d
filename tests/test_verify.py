"""tcpchatx verify: the README's claims checked on live and crafted captures."""

from __future__ import annotations

import shutil
import time

import pytest

from analysis_helpers import C, S, Talk, write_capture
from tcpchatx.client import ChatClient
from tcpchatx.protocol import Kind
from tcpchatx.server import ChatServer
from tcpchatx.wireshark import Check, verify, verify_main
from tcpchatx.wireshark.dissector import TSHARK_ENV
from tcpchatx.wireshark.verify import format_checks

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
WELCOME = "*** Welcome to TCPChatX! Choose a nickname (1-16 letters, digits, _ or -) and press Enter.\n"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


class Room:
    """Several crafted connections to one server, on one clock (packets in time order)."""

    def __init__(self, *nicks: str) -> None:
        self.clock = 1_700_000_000.0
        self.talks = {nick: Talk(client=("10.0.0.1", 40000 + i)) for i, nick in enumerate(nicks)}

    def do(self, nick: str, move: str, *args, **kw):
        talk = self.talks[nick]
        talk.time = self.clock
        result = getattr(talk, move)(*args, **kw)
        self.clock = talk.time
        return result

    def join(self, nick: str) -> None:
        self.do(nick, "handshake")
        self.do(nick, "send", S, WELCOME.encode())
        self.do(nick, "send", C, nick.encode() + b"\n")
        self.do(nick, "send", S, f"--- Welcome, {nick}! Online: {nick}.\n".encode())
        self.do(nick, "ack", C)

    def say(self, nick: str, text: str, to: list[str]) -> None:
        """``nick`` sends a message; the server copies it to the clients in ``to``."""
        self.do(nick, "send", C, text.encode() + b"\n")
        self.do(nick, "ack", S)
        relayed = text[1:] if text.startswith("//") else text
        for other in to:
            self.do(other, "send", S, f"<{nick}> {relayed}\n".encode())
            self.do(other, "ack", C)

    def quit(self, nick: str) -> None:
        """Four-way close, client first."""
        self.do(nick, "fin", C)
        self.do(nick, "ack", S)
        self.do(nick, "fin", S)
        self.do(nick, "ack", C)

    def write(self, path):
        packets = sorted((p for t in self.talks.values() for p in t.packets), key=lambda p: float(p.time))
        return write_capture(path, packets)


# --------------------------------------------------------------------------- live


@pytest.fixture(scope="module")
def live_session(tmp_path_factory):
    """Three clients chat; two quit (the server closes first), one aborts (RST)."""
    from tcpchatx.capture import LiveCapture, live_capture_available

    able, why = live_capture_available("dumpcap") if shutil.which("dumpcap") else (False, "no dumpcap")
    if not able:
        pytest.skip(why)
    path = tmp_path_factory.mktemp("verify") / "session.pcapng"
    with ChatServer("127.0.0.1", 0) as server, LiveCapture(server.port, path, backend="dumpcap"):
        alice, bob, carol = (ChatClient.connect("127.0.0.1", server.port, n, nodelay=True)
                             for n in ("alice", "bob", "carol"))
        for sender, text, others in ((alice, "hello everyone", (bob, carol)),
                                     (bob, "hi alice ✓", (alice, carol)),
                                     (carol, "hey, both", (alice, bob))):
            sender.send(text)
            for other in others:
                other.receive_until(lambda line, text=text: line.kind is Kind.CHAT and line.text == text)
        carol.abort()
        alice.receive_until(lambda line: "carol left" in line.text)
        bob.receive_until(lambda line: "carol left" in line.text)
        alice.quit()
        bob.quit()
        deadline = time.monotonic() + 5
        while server.client_count() and time.monotonic() < deadline:
            time.sleep(0.01)
    return path


def test_live_session_passes_every_check(live_session):
    checks = verify(live_session)
    assert [c.name for c in checks] == ["successful 3-way handshake", "correct broadcast",
                                        "proper teardown", "agrees with tcpchatx.analysis"]
    assert all(c.status == "pass" for c in checks), format_checks(checks)
    c = by_name(checks)
    assert c["successful 3-way handshake"].explanation.startswith("3 of 3 connections")
    assert "3 message(s), 6 copies" in c["correct broadcast"].explanation
    teardown = c["proper teardown"]
    assert "1 reset" in teardown.explanation
    assert sum("reset: the client sent a RST" in d for d in teardown.details) == 1
    assert all(c.frames for c in checks[:3])


def test_verify_main_prints_an_aligned_table(live_session, capsys):
    assert verify_main(live_session) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if " PASS " in line or " FAIL " in line]
    assert len(rows) == 4
    assert len({row.index(" PASS ") for row in rows}) == 1  # one column
    assert "All checks passed." in out


# --------------------------------------------------------------------------- crafted


def test_good_crafted_room_passes(tmp_path):
    room = Room("alice", "bob", "carol")
    for nick in ("alice", "bob", "carol"):
        room.join(nick)
    room.say("alice", "hi both", ["bob", "carol"])
    room.say("bob", "//shrug", ["alice", "carol"])  # relayed as "<bob> /shrug"
    for nick in ("alice", "bob", "carol"):
        room.quit(nick)
    checks = by_name(verify(room.write(tmp_path / "good.pcap")))
    assert all(c.passed for c in checks.values()), format_checks(list(checks.values()))
    assert "3 four-way" in checks["proper teardown"].explanation


def test_message_delivered_to_only_one_of_two_others_fails(tmp_path):
    room = Room("alice", "bob", "carol")
    for nick in ("alice", "bob", "carol"):
        room.join(nick)
    room.say("alice", "only bob hears this", ["bob"])
    path = room.write(tmp_path / "broken.pcap")
    broadcast = by_name(verify(path))["correct broadcast"]
    assert broadcast.status == "fail"
    assert len(broadcast.details) == 1
    assert "'only bob hears this' from alice" in broadcast.details[0]
    assert "never reached stream 2" in broadcast.details[0]
    assert verify_main(path) == 1


def test_duplicate_and_echo_fail(tmp_path):
    room = Room("alice", "bob")
    room.join("alice")
    room.join("bob")
    room.say("alice", "twice", ["bob", "bob", "alice"])
    broadcast = by_name(verify(room.write(tmp_path / "dup.pcap")))["correct broadcast"]
    assert broadcast.status == "fail"
    assert any("echoed back to its sender" in d for d in broadcast.details)
    assert any("matches no message" in d for d in broadcast.details)


def test_rst_teardown_is_reported_as_reset(tmp_path):
    room = Room("alice", "bob")
    room.join("alice")
    room.join("bob")
    room.say("alice", "bye", ["bob"])
    room.do("alice", "seg", C, "R")  # alice aborts
    room.quit("bob")
    teardown = by_name(verify(room.write(tmp_path / "rst.pcap")))["proper teardown"]
    assert teardown.status == "pass"
    assert "1 four-way, 1 reset" in teardown.explanation
    assert any(d.startswith("stream 0: ok: reset: the client sent a RST") for d in teardown.details)


@pytest.mark.parametrize("shape", ["three-way", "simultaneous"])
def test_close_shapes_are_named(tmp_path, shape):
    t = Talk()
    t.handshake()
    if shape == "three-way":
        t.fin(S)
        t.fin(C)  # FIN+ACK: acknowledges the server's FIN too
        t.ack(S)
    else:
        client_ack = t.next[S]
        t.fin(S)
        t.seg(C, "FA", ack=client_ack)  # sent before the server's FIN arrived
        t.ack(S)
        t.ack(C)
    teardown = by_name(verify(t.write(tmp_path / f"{shape}.pcap")))["proper teardown"]
    assert teardown.status == "pass"
    assert teardown.explanation == f"1 of 1 closed connections: 1 {shape}"


def test_unacknowledged_fin_and_half_close_fail(tmp_path):
    t = Talk()
    t.handshake()
    t.fin(C)
    t.ack(S, ack=t.next[C] - 1)  # acknowledges the bytes, not the FIN (it needs + 1)
    teardown = by_name(verify(t.write(tmp_path / "half.pcap")))["proper teardown"]
    assert teardown.status == "fail"
    assert "client's FIN (frame 4) was never acknowledged" in teardown.details[0]
    assert "only the client sent a FIN" in teardown.details[0]


def test_wrong_handshake_ack_fails(tmp_path):
    t = Talk()
    t.seg(C, "S")
    t.seg(S, "SA", ack=t.next[C] + 5)
    t.seg(C, "A")
    check = by_name(verify(t.write(tmp_path / "bad-syn-ack.pcap")))["successful 3-way handshake"]
    assert check.status == "fail"
    assert "not the client's ISN + 1" in check.details[0]


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path, capsys):
    assert verify_main(tmp_path / "nope.pcapng") == 1
    assert "no such file" in capsys.readouterr().err


def test_not_a_capture(tmp_path, capsys):
    path = tmp_path / "notes.pcapng"
    path.write_text("these are my notes, not packets\n")
    assert verify_main(path) == 1
    err = capsys.readouterr().err
    assert "not a capture file" in err and "Traceback" not in err


def test_tshark_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(TSHARK_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("tcpchatx.capture.tools._WIRESHARK_ELSEWHERE", {})
    t = Talk()
    t.handshake()
    assert verify_main(t.write(tmp_path / "ok.pcap")) == 1
    assert "sudo apt-get install tshark" in capsys.readouterr().err
