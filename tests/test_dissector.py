"""The Lua dissector, run by a real tshark: live chats, crafted segments, reference captures.

Two oracles: for the live chat, the lines the clients really sent and received; for
every capture, tcpchatx.analysis (an independent decoder written in Python).
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from analysis_helpers import C, S, Talk, merge, write_capture
from tcpchatx.analysis import analyze
from tcpchatx.client import ChatClient
from tcpchatx.protocol import Kind
from tcpchatx.server import ChatServer
from tcpchatx.wireshark import LUA_PATH, dissect, dissector_main, install_plugin, plugin_dir
from tcpchatx.wireshark.dissector import DissectorError, parse_json, run_tshark, tshark_command

TSHARK = shutil.which("tshark")
DUMPCAP = shutil.which("dumpcap")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="needs tshark")
REFERENCE_CAPTURES = sorted(glob.glob(str(Path(__file__).parent.parent / "captures" / "*.pcapng")))
WELCOME = "*** Welcome to TCPChatX! Choose a nickname (1-16 letters, digits, _ or -) and press Enter."
NO_HEURISTIC = ["--disable-heuristic", "tcpchatx_tcp"]


def tshark_fields(path, *options: str, fields=("frame.number", "tcpchatx.kind", "tcpchatx.nick",
                                                "tcpchatx.text")) -> list[list[str]]:
    """Rows of ``tshark -T fields`` for frames with our protocol; occurrences joined by '|'."""
    command = [TSHARK, "-X", f"lua_script:{LUA_PATH}", "-r", str(path), "-Y", "tcpchatx",
               "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", *options]
    for field in fields:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def decoded(path, **options) -> list[tuple]:
    """(frame, direction, kind, nick, text) of every line the dissector decoded."""
    return [(x.frame, x.direction, x.kind, x.nick, x.text) for x in dissect(path, **options).lines]


def welcome(talk: Talk, nick: str) -> None:
    """The server's side of joining, on a crafted connection."""
    talk.handshake()
    talk.send(S, (WELCOME + "\n").encode())
    talk.send(C, nick.encode() + b"\n")
    talk.send(S, f"--- Welcome, {nick}! Online (1): {nick}. Type /help for commands.\n".encode())


# --------------------------------------------------------------------------- the plugin


def test_every_field_is_registered():
    out = subprocess.run([TSHARK, "-G", "fields", "-X", f"lua_script:{LUA_PATH}"],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split("\t")[2] for line in out.splitlines() if line.startswith("F\t")}
    wanted = {"tcpchatx." + f for f in ("kind", "nick", "text", "command", "args", "line", "direction")}
    assert wanted <= names


def test_dissector_main_prints_path_and_folder(capsys):
    assert dissector_main(False) == 0
    out = capsys.readouterr().out
    assert str(LUA_PATH) in out and str(plugin_dir()) in out
    assert "~/.local/lib/wireshark/plugins/" in out and "%APPDATA%\\Wireshark\\plugins\\" in out


def test_install_copies_into_the_plugin_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData"))
    assert dissector_main(True) == 0
    target = plugin_dir() / "tcpchatx.lua"
    assert target.read_bytes() == LUA_PATH.read_bytes()
    assert str(target) in capsys.readouterr().out
    assert install_plugin(tmp_path / "elsewhere").read_bytes() == LUA_PATH.read_bytes()


# --------------------------------------------------------------------------- live


class Recorder(ChatClient):
    """A ChatClient that remembers every line it sent."""

    sent: list[str]
    port: int  # its local port, which names its TCP stream

    def send(self, text: str) -> None:
        self.__dict__.setdefault("sent", []).append(text)
        super().send(text)


@pytest.fixture(scope="module")
def live_chat(tmp_path_factory):
    """A real server and three clients on a free port, captured by dumpcap."""
    if DUMPCAP is None:
        pytest.skip("needs dumpcap")
    from tcpchatx.capture import LiveCapture, live_capture_available

    able, why = live_capture_available("dumpcap")
    if not able:
        pytest.skip(why)
    path = tmp_path_factory.mktemp("live") / "chat.pcapng"
    clients: dict[str, Recorder] = {}
    with ChatServer("127.0.0.1", 0) as server, LiveCapture(server.port, path, backend="dumpcap"):
        for nick in ("alice", "bob", "carol"):
            sock = ChatClient.open("127.0.0.1", server.port, nodelay=True).sock
            clients[nick] = Recorder(sock)
            clients[nick].port = sock.getsockname()[1]
            clients[nick].choose_nick(nick)
        alice, bob, carol = clients.values()

        def everyone_hears(text, *who):
            for c in who:
                c.receive_until(lambda line: line.text == text)

        alice.send("hello, ünïcødé ✓ <b>")
        everyone_hears("hello, ünïcødé ✓ <b>", bob, carol)
        bob.send("//shrug\tok")
        everyone_hears("/shrug\tok", alice, carol)
        alice.send("/msg bob psst")
        bob.receive_until(lambda line: line.kind is Kind.PRIVATE)
        bob.send("/me joined (3 online)")  # an action in a join's words: still bob's action
        for c in (alice, carol):
            c.receive_until(lambda line: line.kind is Kind.ACTION)
        carol.send("/nick carla")
        # carol too: the dissector learns her new nick from that notice on her own
        # connection, so "bye" must go out after it arrives, as a real client's would.
        everyone_hears("carol is now known as carla", alice, bob, carol)
        carol.send("bye")
        everyone_hears("bye", alice, bob)
        for c in clients.values():
            c.quit()
        deadline = time.monotonic() + 5
        while server.client_count() and time.monotonic() < deadline:
            time.sleep(0.01)
    return path, server.port, clients


def expected_lines(path, clients) -> Counter:
    """(stream, direction, line) of every line the clients sent and received."""
    d = dissect(path)
    stream_of_port = {}
    for s in d.segments:
        stream_of_port.setdefault(s.src_port, s.stream)
    want = Counter()
    for client in clients.values():
        stream = stream_of_port[client.port]
        for text in client.sent:
            want[(stream, "client->server", text)] += 1
        for line in client.history:
            shown = {Kind.CHAT: f"<{line.nick}> {line.text}", Kind.PRIVATE: f"*{line.nick}* {line.text}",
                     Kind.ACTION: f"* {line.nick} {line.text}", Kind.NOTICE: "*** " + line.text, Kind.REPLY: "--- " + line.text,
                     Kind.ERROR: "!!! " + line.text}[line.kind]
            want[(stream, "server->client", shown)] += 1
    return want


def test_live_chat_every_line_decoded_once(live_chat):
    path, port, clients = live_chat
    lines = dissect(path).lines
    assert Counter((x.stream, x.direction, x.line) for x in lines) == expected_lines(path, clients)
    by_line = {x.line: x for x in lines}
    assert (by_line["alice"].kind, by_line["alice"].nick) == ("nickname", "alice")
    hello = [x for x in lines if x.line == "<alice> hello, ünïcødé ✓ <b>"]
    assert [(x.kind, x.nick, x.text) for x in hello] == [("chat", "alice", "hello, ünïcødé ✓ <b>")] * 2
    assert sorted(x.client for x in hello) == ["bob", "carol"]
    shrug = by_line["//shrug\tok"]
    assert (shrug.kind, shrug.nick, shrug.text) == ("message", "bob", "/shrug\tok")
    msg = by_line["/msg bob psst"]
    assert (msg.kind, msg.command, msg.args, msg.nick) == ("command", "msg", "bob psst", "alice")
    assert (by_line["*alice* psst"].kind, by_line["*alice* psst"].text) == ("private", "psst")
    me = by_line["/me joined (3 online)"]
    assert (me.kind, me.command, me.args, me.nick) == ("command", "me", "joined (3 online)", "bob")
    acted = [x for x in lines if x.line == "* bob joined (3 online)"]
    assert [(x.kind, x.nick, x.text) for x in acted] == [("action", "bob", "joined (3 online)")] * 2
    assert sorted(x.client for x in acted) == ["alice", "carol"]
    assert (by_line["bye"].kind, by_line["bye"].nick) == ("message", "carla")  # renamed
    assert by_line["<carla> bye"].nick == "carla"
    for x in lines:
        assert x.direction == ("server->client" if x.kind in ("chat", "private", "action", "notice", "reply",
                                                              "error")
                               else "client->server")


def test_live_chat_same_through_pref_decode_as_heuristic_and_two_passes(live_chat):
    path, port, _ = live_chat
    by_heuristic = decoded(path)
    assert by_heuristic
    for extra in (["-o", f"tcpchatx.port:{port}"], ["-d", f"tcp.port=={port},tcpchatx"]):
        command = tshark_command(path, extra=[*NO_HEURISTIC, *extra, "-T", "json", "-j", "frame tcp tcpchatx"])
        lines = parse_json(run_tshark(command, path)).lines
        assert [(x.frame, x.direction, x.kind, x.nick, x.text) for x in lines] == by_heuristic
    # Without the heuristic, an unknown port is not ours...
    command = tshark_command(path, extra=[*NO_HEURISTIC, "-T", "json", "-j", "frame tcp tcpchatx"])
    assert parse_json(run_tshark(command, path)).lines == []
    # ...and a second pass (as when Wireshark re-dissects a clicked packet) agrees with the first.
    command = tshark_command(path, extra=["-2", "-T", "json", "-j", "frame tcp tcpchatx"])
    lines = parse_json(run_tshark(command, path)).lines
    assert [(x.frame, x.direction, x.kind, x.nick, x.text) for x in lines] == by_heuristic


def test_live_chat_fields_output(live_chat):
    """The tshark command line from docs/wireshark.md, as a student would type it."""
    path, port, clients = live_chat
    rows = tshark_fields(path, "-o", f"tcpchatx.port:{port}")
    kinds = Counter(k for row in rows for k in row[1].split("|"))
    assert kinds["nickname"] == 3 and kinds["chat"] == 6 and kinds["private"] == 1 and kinds["action"] == 2
    heard = Counter(line.kind.value for c in clients.values() for line in c.history)
    assert kinds["notice"] == heard["notice"] and kinds["action"] == heard["action"]  # no action as a notice
    assert any(row[1] == "message" and row[3] == "hello, ünïcødé ✓ <b>" for row in rows)


# --------------------------------------------------------------------------- crafted


def test_line_split_over_two_segments(tmp_path):
    t = Talk()
    t.handshake()
    t.send(S, (WELCOME + "\n").encode())
    t.send(C, b"al")  # the nickname in two segments
    t.send(C, b"ice\n")
    welcome_line = b"--- Welcome, alice! Online (1): alice. Type /help for commands.\n"
    t.send(S, welcome_line[:10])
    t.send(S, welcome_line[10:])
    text = "<bob> naïve ✓\n".encode()
    cut = text.index("✓".encode()) + 1  # inside the 3-byte UTF-8 sequence
    t.send(S, text[:cut])
    t.send(S, text[cut:])
    path = t.write(tmp_path / "split.pcap")
    assert decoded(path) == [
        (4, "server->client", "notice", None, WELCOME[4:]),
        (6, "client->server", "nickname", "alice", "alice"),
        (8, "server->client", "reply", None, "Welcome, alice! Online (1): alice. Type /help for commands."),
        (10, "server->client", "chat", "bob", "naïve ✓"),
    ]
    rows = tshark_fields(path)  # the first half of each split line shows no line of its own
    assert [row[0] for row in rows] == ["4", "6", "8", "10"]


def test_two_and_a_half_lines_then_the_rest(tmp_path):
    t = Talk()
    welcome(t, "alice")
    t.send(S, b"*** bob joined (2 online)\n<bob> first\n<bob> sec")
    t.send(S, "ond, ünïcødé 日本語\r\n!!! oops\n".encode())
    t.send(C, b"//not a command\n/msg  bob   hi  there \nhello\n")
    path = t.write(tmp_path / "many.pcap")
    lines = dissect(path).lines[3:]
    assert [(x.frame, x.kind, x.nick, x.text, x.line) for x in lines] == [
        (7, "notice", None, "bob joined (2 online)", "*** bob joined (2 online)"),
        (7, "chat", "bob", "first", "<bob> first"),
        (8, "chat", "bob", "second, ünïcødé 日本語", "<bob> second, ünïcødé 日本語"),
        (8, "error", None, "oops", "!!! oops"),
        (9, "message", "alice", "/not a command", "//not a command"),
        (9, "command", "alice", None, "/msg  bob   hi  there "),
        (9, "message", "alice", "hello", "hello"),
    ]
    assert (lines[5].command, lines[5].args) == ("msg", "bob   hi  there")
    rows = tshark_fields(path, fields=("frame.number", "tcpchatx.kind", "_ws.col.Info"))
    assert rows[3] == ["7", "notice|chat", "notice: bob joined (2 online) | chat <bob> first"]


def test_heuristic_finds_the_chat_on_any_port(tmp_path):
    t = Talk(client=("10.1.1.1", 50123), server=("10.1.1.2", 41999))
    welcome(t, "zoë")
    t.send(C, b"salut\n")
    path = t.write(tmp_path / "port41999.pcap")
    assert [(k, n, x) for _, _, k, n, x in decoded(path)] == [
        ("notice", None, WELCOME[4:]), ("nickname", "zoë", "zoë"),
        ("reply", None, "Welcome, zoë! Online (1): zoë. Type /help for commands."),
        ("message", "zoë", "salut"),
    ]


@pytest.mark.parametrize("server_says", [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n--- hello\n",
    b"220 mail.example.com ESMTP ready\r\n",
    b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n",  # an action's shape, but IMAP
    b"--- a diff header\n+++ b/file\n@@ -1 +1 @@\n",
    b"*** \x00\x01\x02 binary\n",
    b"*** caf\xe9 latin-1\n",
    b"<not a nick> hello\n",
])
def test_heuristic_leaves_other_protocols_alone(tmp_path, server_says):
    t = Talk(client=("10.1.1.1", 50123), server=("10.1.1.2", 41999))
    t.handshake()
    t.send(S, server_says)
    t.send(C, b"GET / HTTP/1.1\r\n\r\n")
    assert dissect(t.write(tmp_path / "other.pcap")).lines == []


def test_invalid_lines_are_shown_as_invalid(tmp_path):
    t = Talk()
    welcome(t, "alice")
    t.send(C, b"caf\xe9\n")  # Latin-1, not UTF-8
    t.send(C, b"x" * 1100 + b"\n")  # longer than 1024 bytes
    t.send(C, b"fine\n")
    lines = dissect(t.write(tmp_path / "invalid.pcap")).lines
    assert [(x.kind, x.line) for x in lines[3:]] == [("invalid", None), ("invalid", None), ("message", "fine")]


def test_several_connections_keep_their_own_state(tmp_path):
    """bob's nickname comes after alice was welcomed: it is still a nickname."""
    alice = Talk(client=("10.0.0.1", 40001))
    bob = Talk(client=("10.0.0.3", 40002), start=alice.time + 0.0005)
    welcome(alice, "alice")
    welcome(bob, "bob")
    path = tmp_path / "two.pcap"
    write_capture(path, merge(alice, bob))
    kinds = [(x.stream, x.kind, x.nick) for x in dissect(path).lines if x.direction == "client->server"]
    assert sorted(kinds) == [(0, "nickname", "alice"), (1, "nickname", "bob")]


# --------------------------------------------------------------------------- reference captures


def assert_agrees_with_analysis(path) -> None:
    """Every line the analysis finds, the dissector finds too: same frame, kind and text."""
    analysis = analyze(path)
    ours = Counter((x.frame, x.kind, x.line) for x in dissect(path).lines)
    theirs = Counter((line.frame, line.kind, line.text) for line in analysis.lines)
    assert ours == theirs


def test_live_chat_agrees_with_analysis(live_chat):
    assert_agrees_with_analysis(live_chat[0])


@pytest.mark.parametrize("path", REFERENCE_CAPTURES, ids=[Path(p).name for p in REFERENCE_CAPTURES])
def test_reference_capture(path):
    lines = dissect(path).lines
    assert all(x.kind in {k.value for k in Kind} | {"invalid"} for x in lines)
    assert_agrees_with_analysis(path)


def test_a_lua_error_is_reported_not_skipped():
    tcp = ('{"tcp.stream": "0", "tcp.srcport": "25000", "tcp.dstport": "40000", "tcp.flags": "0x0018", '
           '"tcp.seq_raw": "1", "tcp.ack_raw": "1", "tcp.len": "5"}')
    output = ('[{"_source": {"layers": {"frame": {"frame.number": "7"}, "tcp": ' + tcp + ', '
              '"Lua Error: tcpchatx.lua:1: boom": {}}}}]')
    with pytest.raises(DissectorError, match="frame 7: Lua Error"):
        parse_json(output)
