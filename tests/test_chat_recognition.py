"""Only TCPChatX is read as chat: the chat layer's test is the Wireshark dissector's.

A student's own capture holds web traffic too.  An HTTP server's ``HTTP/1.1 200 OK``
must not become a chat line, and a busy web server must not be taken for the chat
server because it answered more connections.  The rule (``chat.recognise``) is the
dissector's heuristic, and the dissector itself is the oracle: tshark with our Lua
plugin must claim exactly the connections the analysis reads as chat.
"""

from __future__ import annotations

import pytest

from analysis_helpers import T0, TSHARK, WELCOME, C, S, Talk, merge, write_capture
from tcpchatx.analysis import analyze, analyze_plainly, format_summary
from tcpchatx.analysis.chat.recognise import looks_like_server

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


@pytest.mark.parametrize("payload, chat", [
    (WELCOME, True),
    (b"*** Welcome to TCPChatX! Choose a nickname.", True),  # the welcome needs no newline
    (b"<alice> hi\n*bob* psst\n--- 2 online\n!!! no such nick\n", True),
    (b"<alice> hi\r\n", True),
    (b"<alice> hi\n<bo", True),  # a line cut at the segment's end is not judged
    (b"<alice> hi", False),  # no complete line
    (HTTP_RESPONSE, False),
    (b"220 mail.example.org ESMTP\r\n", False),
    (b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n", False),  # an action's shape, but IMAP
    (b"<alice> hi\x07\n", False),  # a control character
    (b"<alice> \xff\xfe\n", False),  # not UTF-8
    (b"<alice> " + b"x" * 1025 + b"\n", False),  # longer than a line may be
    (b"<al ice> hi\n", False),
    (b"*** notice\n" + b"plain text\n", False),  # every complete line needs its sigil
])
def test_looks_like_a_server(payload, chat):
    assert looks_like_server(payload) is chat


def chat_talk(client_port: int, server=("10.0.0.2", 31337), start: float = T0) -> Talk:
    t = Talk(client=("10.0.0.1", client_port), server=server, start=start)
    t.handshake()
    t.send(S, WELCOME)
    t.send(C, b"alice\n")
    t.send(S, b"--- Welcome, alice! Online: alice. Type /help for commands.\n")
    t.send(C, b"hello web\n")
    return t


def web_talk(client_port: int, start: float) -> Talk:
    t = Talk(client=("10.0.0.1", client_port), server=("93.184.216.34", 80), start=start)
    t.handshake()
    t.send(C, HTTP_REQUEST)
    t.send(S, HTTP_RESPONSE)
    t.fin(S)
    t.fin(C)
    t.ack(S)
    return t


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """One chat connection on port 31337 (a port no other dissector claims, so the
    dissector's heuristic decides) and three web connections: the web server answered
    more, but only the chat is chat."""
    talks = [web_talk(41000 + k, T0 + k) for k in range(3)] + [chat_talk(42000, start=T0 + 0.5)]
    return write_capture(tmp_path_factory.mktemp("mixed") / "mixed.pcap", merge(*talks))


@pytest.mark.parametrize("read", [analyze, analyze_plainly])
def test_http_is_not_read_as_chat(tmp_path, read):
    path = write_capture(tmp_path / "web.pcap", merge(*(web_talk(41000 + k, T0 + k) for k in range(2))))
    a = read(path)
    assert a.chat.server is None and a.lines == [] and a.messages == []
    assert len(a.connections) == 2 and {c.conn_state for c in a.connections} == {"SF"}
    assert "read as chat: none" in format_summary(a)


@pytest.mark.parametrize("read", [analyze, analyze_plainly])
def test_the_chat_server_is_the_one_that_speaks_tcpchatx(mixed, read):
    a = read(mixed)
    assert a.chat.server == ("10.0.0.2", 31337)
    chat_conns = {c.id for c in a.connections if c.server == a.chat.server}
    assert {line.conn for line in a.lines} == chat_conns and len(chat_conns) == 1
    assert [line.text for line in a.lines if line.direction == 0] == ["alice", "hello web"]
    assert f"read as chat: 1 of 4 connection(s): {chat_conns.pop()}" in format_summary(a)


@pytest.mark.skipif(TSHARK is None, reason="the dissector runs in tshark")
def test_the_dissector_claims_the_same_connections(mixed):
    from tcpchatx.wireshark.dissector import run_tshark, tshark_command

    out = run_tshark(tshark_command(mixed, extra=["-Y", "tcpchatx", "-T", "fields", "-e", "tcp.srcport",
                                                  "-e", "tcp.dstport"]), mixed)
    claimed = {tuple(sorted(map(int, line.split("\t")))) for line in out.splitlines() if line}
    a = analyze(mixed)
    read = {tuple(sorted(c.client[1:] + c.server[1:])) for c in a.connections if c.server == a.chat.server}
    assert claimed == read == {(31337, 42000)}
