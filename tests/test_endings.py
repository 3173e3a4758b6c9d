"""Why a connection ended, as the client tells it: the rule, then real servers."""

from __future__ import annotations

import http.server
import subprocess
import threading

import pytest
from test_terminal import client_command, client_env, run_piped

from conftest import HOST
from tcpchatx import protocol as p
from tcpchatx.client import ChatClient
from tcpchatx.protocol.endings import why_it_ended

PROMPT = p.PROMPT_LINE


@pytest.mark.parametrize(("first", "last", "asked", "error", "says", "unexpected"), [
    (PROMPT, p.bye_line("alice"), True, None, "", False),
    (PROMPT, p.SHUTDOWN_LINE, False, None, "The server shut down.", True),
    (p.server_full_line(1), p.server_full_line(1), False, None, "The server is full (1 client). Try again", True),
    (PROMPT, p.nick_timeout_line(30), False, None, "No nickname was chosen within 30 s", True),
    (PROMPT, p.idle_timeout_line(600), False, None, "Nothing was said for 600 s", True),
    (PROMPT, p.FLOOD_KICK_LINE, False, None, "The server cut you off for flooding", True),
    (PROMPT, p.disconnected_line(p.too_slow_reason(7)), False, None,
     "The server cut you off: too slow: 7 lines were waiting to be sent.", True),
    (PROMPT, "<bob> hi", False, None, "The server closed the connection (it was stopped or killed).", True),
    (None, None, False, None, "The server closed the connection without a word", True),
    ("<bob> hi", "<bob> hi", False, None, "The server closed the connection", True),  # a chat line: TCPChatX
    ("HTTP/1.0 400 Bad request", "</html>", False, None, "That is not a TCPChatX server", True),
    ("HTTP/1.0 400 Bad request", "</html>", True, None, "That is not a TCPChatX server", True),
    ("* OK IMAP4rev1 ready", "* BYE", False, None, "That is not a TCPChatX server", True),  # not an action
    (PROMPT, p.bye_line("alice"), True, "the server reset the connection (RST)", "Connection to the server lost", True),
])
def test_the_first_and_last_line_say_why(first, last, asked, error, says, unexpected):
    ending = why_it_ended(first, last, asked, error)
    assert ending.message.startswith(says) if says else ending.message == ""
    assert ending.unexpected is unexpected


def test_a_full_server_is_named_and_the_exit_status_is_1(start_server):
    server = start_server(max_clients=1)
    bob = ChatClient.connect(HOST, server.port, "bob")  # the one place
    done = run_piped(server.port, "alice\n")
    bob.close()
    assert done.returncode == 1
    assert done.stderr == "The server is full (1 client). Try again later.\n"


def test_no_nickname_in_time_is_named(start_server):
    server = start_server(nick_timeout=0.5)
    process = subprocess.Popen(client_command(server.port), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=client_env())
    try:
        process.wait(timeout=15)  # stdin stays open: the server's deadline ends it
        out, err = process.stdout.read(), process.stderr.read()
    finally:
        process.kill()
    assert process.returncode == 1
    assert err == "No nickname was chosen within 0.5 s, so the server closed the connection.\n"
    assert "!!! No nickname after 0.5 s. Bye." in out


def test_an_http_server_is_not_taken_for_a_chat_server():
    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        done = run_piped(web.server_address[1], "alice\nhello\n")
    finally:
        web.shutdown()
        web.server_close()
    assert done.returncode == 1
    # A request line of one word is HTTP/0.9 to http.server: it answers with the page alone.
    assert done.stderr.startswith("That is not a TCPChatX server: the first thing it said was '<!DOCTYPE HTML>'")
