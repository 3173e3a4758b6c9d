"""Shared fixtures: real chat servers on free loopback ports, stopped after each test."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

# The analysis's chunk loops on two threads even where CI has one CPU, so every
# small-chunk test of the record walks and decoders covers the threaded path.
os.environ.setdefault("TCPCHATX_THREADS", "2")

from tcpchatx.client import ChatClient  # noqa: E402
from tcpchatx.room import RoomConfig  # noqa: E402
from tcpchatx.server import ChatServer  # noqa: E402

HOST = "127.0.0.1"


@pytest.fixture(autouse=True)
def lab_sentences_whole(monkeypatch):
    """The tests read what the lab says sentence by sentence; lab.say wraps long lines only
    for a notebook's output area (test_lab.py's wrapping test sets its own width)."""
    from tcpchatx.lab import printing

    monkeypatch.setattr(printing, "WIDTH", 100_000)


@pytest.fixture
def start_server():
    """Factory: ``start_server(max_clients=3, ...)`` returns a running ChatServer."""
    servers: list[ChatServer] = []

    def start(**room_options) -> ChatServer:
        server_options = {
            key: room_options.pop(key)
            for key in ("queue_lines", "queue_bytes", "queue_hard_bytes", "queue_grace", "close_timeout",
                        "record_lines")
            if key in room_options
        }
        server = ChatServer(HOST, 0, config=RoomConfig(**room_options), **server_options)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> ChatServer:
    return start_server()


@pytest.fixture
def connect(server):
    """Factory: ``connect("alice")`` returns a welcomed ChatClient; all closed afterwards."""
    clients: list[ChatClient] = []

    def open_client(nick: str, **options) -> ChatClient:
        client = ChatClient.connect(HOST, server.port, nick, **options)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        if client.sock.fileno() != -1:
            client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (or with TCPCHATX_STRICT=1) a skipped test is a failed test: every core path
    needs its tools (tshark, dumpcap, nc, user namespaces) there, and a skip would hide
    that one went missing."""
    outcome = yield
    report = outcome.get_result()
    strict = os.environ.get("CI") or os.environ.get("TCPCHATX_STRICT")
    if strict and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every path: {reason}"


@pytest.fixture(scope="session")
def story_as_root(tmp_path_factory):
    """``story_as_root("rto")``: the lab story played once per session as root, with its
    defaults; its outcome.  test_netlab_stories and test_why both read the rto and backoff
    stories' captures (and only read them), and each play waits out real retransmission
    timers, so one play serves both."""
    played: dict[str, dict] = {}

    def play(story: str) -> dict:
        from tcpchatx.netlab import run_in_lab

        if story not in played:
            out = tmp_path_factory.mktemp(f"story-{story}")
            played[story] = run_in_lab(f"tcpchatx.netlab.stories:{story}", {"out_dir": str(out)})
        return played[story]

    return play


@pytest.fixture
def shared_dir():
    """A directory the user nobody may write to (pytest's tmp_path is private to root),
    removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="tcpchatx-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def chat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("chat-")]
