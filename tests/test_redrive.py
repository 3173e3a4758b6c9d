"""Re-drive: extract a captured session, play it against a live server, compare.

Real server, real clients, real captures (dumpcap); the session is the one
test_replay.py records: alice, bob and carol chat, bob /quits, carol closes, alice aborts.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
from test_replay import record_chat_session

from tcpchatx.analysis import analyze
from tcpchatx.capture.tools import find_dumpcap
from tcpchatx.redrive import (
    RedriveError,
    Session,
    compare,
    extract_session,
    format_result,
    play_session,
)
from tcpchatx.replay import replay_main
from tcpchatx.server import ChatServer

pytestmark = pytest.mark.skipif(find_dumpcap() is None, reason="needs dumpcap (Wireshark)")
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return record_chat_session(tmp_path_factory.mktemp("redrive") / "session.pcapng")


@pytest.fixture(scope="module")
def session(capture) -> Session:
    return extract_session(analyze(capture))


@pytest.fixture(scope="module")
def redriven(capture, tmp_path_factory):
    """`tcpchatx replay CAPTURE --redrive --out NEW`: its exit code, output and new capture."""
    out = tmp_path_factory.mktemp("redriven") / "new.pcapng"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = replay_main(str(capture), redrive=True, backend="dumpcap", out=str(out))
    return code, buffer.getvalue(), out


def test_extract_who_joined_said_what_and_left_how(session):
    assert [p.nick for p in session.participants] == ["alice", "bob", "carol"]
    assert {p.nick: p.leave for p in session.participants} == {
        "alice": "abort", "bob": "quit", "carol": "close"}
    assert {p.nick: p.close_kind for p in session.participants}["alice"] == "reset"
    said = [(session.name(e.who), e.text) for e in session.events if e.kind == "line"]
    assert said == [
        ("alice", "alice"), ("bob", "bob"), ("carol", "carol"),
        ("alice", "hello everyone"), ("bob", "hi alice"),
        ("carol", "/msg alice psst, just between us"), ("alice", "see you"), ("bob", "/quit"),
    ]
    opens = [session.name(e.who) for e in session.events if e.kind == "open"]
    leaves = [session.name(e.who) for e in session.events if e.kind == "leave"]
    assert opens == ["alice", "bob", "carol"] and leaves == ["bob", "carol", "alice"]
    assert [(m.sender, m.text, m.recipients) for m in session.messages] == [
        ("alice", "hello everyone", ["bob", "carol"]),
        ("bob", "hi alice", ["alice", "carol"]),
        ("carol", "psst, just between us", ["alice"]),
        ("alice", "see you", ["bob", "carol"]),
    ]
    # After carol's message to alice, alice has one more line than before.
    msg = next(k for k, e in enumerate(session.events) if e.text and e.text.startswith("/msg"))
    before, after = session.events[msg - 1].expect, session.events[msg].expect
    assert after[0] == before[0] + 1 and after[1] == before[1]


def test_session_is_json(session):
    data = json.loads(json.dumps(session.to_json()))
    assert Session.from_json(data) == session


def test_redrive_reproduces_messages_and_close_kinds(redriven, session):
    code, output, out = redriven
    assert code == 0, output
    assert "Re-drive reproduced the session: 3 connections, 4 messages" in output
    new = extract_session(analyze(out))
    assert compare(session, new) == []
    assert [(p.nick, p.leave) for p in new.participants] == [
        ("alice", "abort"), ("bob", "quit"), ("carol", "close")]
    assert new.participants[0].close_kind == "reset"


def test_dropping_a_message_is_reported(redriven, session):
    new = extract_session(analyze(redriven[2]))
    altered = copy.deepcopy(session)
    del altered.messages[1]  # bob's "hi alice"
    diffs = compare(altered, new)
    assert diffs == ["message only in the re-drive: chat from bob: 'hi alice' -> alice, carol"]
    assert "differs from the original in 1 way(s)" in format_result(altered, new, diffs)


def test_a_different_leave_is_reported(redriven, session):
    new = extract_session(analyze(redriven[2]))
    altered = copy.deepcopy(session)
    altered.participants[2].leave = "abort"
    altered.participants[2].close_kind = "reset"
    diffs = compare(altered, new)
    assert diffs[0] == "carol: left by abort in the original, by close in the re-drive"
    assert diffs[1].startswith("carol: close kind reset in the original, ")
    assert len(diffs) == 2


def test_play_reports_an_effect_that_never_comes(session):
    impossible = copy.deepcopy(session)
    first_line = next(e for e in impossible.events if e.kind == "line")
    first_line.expect = [n + 5 for n in first_line.expect]  # five lines the server never sends
    with ChatServer(HOST, 0) as server, pytest.raises(RedriveError, match="received 2 of the 7"):
        play_session(impossible, HOST, server.port, timeout=0.3)
