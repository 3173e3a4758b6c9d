"""The terminal client, run as a student runs it: in a real pseudo-terminal or a pipe.

The interactive tests spawn the client in a pty (pexpect) and feed everything it
writes into a ``pyte`` screen, so they assert what a student would *see*, not
which bytes went by.  Servers are real: our ChatServer on a free port, or a tiny
hostile server of our own that sends raw escape codes.  Nothing sleeps to
synchronise: every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pexpect
import pyte
import pytest

from tcpchatx.protocol import Kind, ServerLine, action_line, parse_server_line
from tcpchatx.terminal import (
    NickTracker,
    nick_style,
    render,
    use_color,
)

HOST = "127.0.0.1"
STAMP = r"\[\d\d:\d\d:\d\d\]"
NOON = datetime(2024, 1, 1, 12, 34, 56)

# Control characters, a cursor move, a screen clear, a window title (OSC), a C1 CSI,
# a right-to-left override and a zero-width space: what a hostile server might send.
EVIL_LINE = "<mallory> \x1b[2J\x1b[H\x1b]0;pwned\x07hi \u202eolleh\u202c \x1b[31mred\u009b2J \u200bzero"
EVIL_SHOWN = "<mallory> [2J[H]0;pwnedhi olleh [31mred2J zero"
INJECTED = [b"\x1b[2J", b"\x1b]0;", b"\x1b[31m", "\u202e".encode(), "\u009b".encode(), "\u200b".encode()]


def client_command(port: int, nick: str | None = None) -> list[str]:
    code = (
        "import sys; from tcpchatx.terminal import run_terminal_client; "
        f"sys.exit(run_terminal_client({HOST!r}, {port}, {nick!r}))"
    )
    return [sys.executable, "-c", code]


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    # pyte does not answer "where is the cursor?" (CPR); without this prompt_toolkit
    # would wait for an answer and then warn on screen.
    env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    return env


# --------------------------------------------------------------------------- a real pty


class Terminal:
    """The client in a pseudo-terminal; what it draws is kept in a 24x80 pyte screen."""

    def __init__(self, port: int, nick: str | None) -> None:
        command = client_command(port, nick)
        self.child = pexpect.spawn(command[0], command[1:], env=client_env(), dimensions=(24, 80))
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()  # every byte the client wrote, escape codes included

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def prompt_line(self) -> str:
        return self.lines[self.screen.cursor.y]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Read the client's output into the screen until ``condition()`` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                screen = "\n".join(self.lines).rstrip()
                raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{screen}")
            try:
                data = self.child.read_nonblocking(4096, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if not condition():
                    raise AssertionError(f"client exited before {what}:\n" + "\n".join(self.lines)) from None
                return
            self.raw += data
            self.stream.feed(data)

    def wait_for_exit(self, timeout: float = 20.0) -> int:
        """Read to the end of the output; the exit status.  (A deadline, not a sleep: a
        loaded 2-core CI runner once needed more than 5 s for the client to exit.)"""
        self.wait_for(lambda: not self.child.isalive() and not self._more(), "exit", timeout)
        self.child.close()
        return self.child.exitstatus

    def _more(self) -> bool:
        try:
            data = self.child.read_nonblocking(4096, timeout=0.05)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return False
        self.raw += data
        self.stream.feed(data)
        return True


@pytest.fixture
def terminal():
    """Factory: ``terminal(port, nick)`` spawns the client in a pty; killed afterwards."""
    spawned: list[Terminal] = []

    def spawn(port: int, nick: str | None = "alice") -> Terminal:
        term = Terminal(port, nick)
        spawned.append(term)
        return term

    yield spawn
    for term in spawned:
        if term.child.isalive():
            term.child.terminate(force=True)


# --------------------------------------------------------------------------- a hostile server


class HostileServer:
    """A real TCP server of our own that sends raw bytes the real server would never send.

    It accepts one client, sends ``script``, then records the client's lines until
    ``/quit`` (or EOF) and closes first, as a polite server would.
    """

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.received: list[str] = []
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(self.script)
            buffer = b""
            while b"/quit\n" not in buffer:
                data = conn.recv(4096)
                if not data:
                    break
                buffer += data
            self.received = buffer.decode().splitlines()
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(4096):  # until the client's FIN: close() then sends no RST
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def hostile_server():
    servers: list[HostileServer] = []

    def start(*lines: str) -> HostileServer:
        server = HostileServer("".join(line + "\n" for line in lines).encode())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# --------------------------------------------------------------------------- rendering (no I/O)


def test_render_plain_adds_a_timestamp_and_keeps_the_sigil():
    assert render("<bob> hi", color=False, now=NOON) == "[12:34:56] <bob> hi"
    assert render("--- Online (1): bob", color=False, now=NOON) == "[12:34:56] --- Online (1): bob"


def test_render_colours_each_kind():
    assert render("<bob> hi", True, NOON) == f"\x1b[2m[12:34:56]\x1b[0m {nick_style('bob')}<bob>\x1b[0m hi"
    assert "\x1b[35m*bob* psst\x1b[0m" in render("*bob* psst", True, NOON)
    assert "\x1b[2;33m*** bob joined\x1b[0m" in render("*** bob joined", True, NOON)
    assert "\x1b[36m--- Bye!\x1b[0m" in render("--- Bye!", True, NOON)
    assert "\x1b[1;31m!!! No.\x1b[0m" in render("!!! No.", True, NOON)


def test_render_shows_an_action_in_the_nicks_colour_never_a_notices():
    shown = render("* bob joined (3 online)", True, NOON)
    assert shown == f"\x1b[2m[12:34:56]\x1b[0m {nick_style('bob')}* bob\x1b[0m \x1b[3mjoined (3 online)\x1b[0m"
    assert render("*** bob joined (3 online)", True, NOON).endswith("\x1b[2;33m*** bob joined (3 online)\x1b[0m")
    assert render("* bob waves", False, NOON) == "[12:34:56] * bob waves"


def test_a_nick_keeps_its_colour_and_nicks_differ():
    assert nick_style("Alice") == nick_style("alice") == nick_style("ALICE")
    assert len({nick_style(n) for n in ("alice", "bob", "carol", "dave", "erin", "frank")}) > 1


def test_render_strips_what_could_paint_the_terminal():
    assert render(EVIL_LINE, color=False, now=NOON) == f"[12:34:56] {EVIL_SHOWN}"
    coloured = render(EVIL_LINE, color=True, now=NOON)
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == f"[12:34:56] {EVIL_SHOWN}"
    assert not any(code.decode() in coloured for code in INJECTED)


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch, tmp_path):
    with open(tmp_path / "out.txt", "w") as not_a_tty:
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert use_color(None, not_a_tty) is False
        assert use_color(True, not_a_tty) is True
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert use_color(None, tty) is True
        monkeypatch.setenv("NO_COLOR", "1")
        assert use_color(None, tty) is False
        assert use_color(False, tty) is False
    os.close(master)


def test_the_tracker_learns_the_nick_from_the_servers_answers():
    tracker = NickTracker()
    tracker.sent("server")
    tracker.received(ServerLine(Kind.ERROR, 'The nickname "server" is reserved.'))
    assert tracker.nick is None
    tracker.sent("Ａlice")  # the server keeps the NFKC form
    tracker.received(ServerLine(Kind.REPLY, "Welcome, Alice!"))
    assert tracker.nick == "Alice"
    tracker.received(ServerLine(Kind.NOTICE, "bob is now known as carol"))
    assert tracker.nick == "Alice"
    tracker.received(ServerLine(Kind.NOTICE, "Alice is now known as Ally"))
    assert tracker.nick == "Ally"
    tracker.received(parse_server_line(action_line("Ally", "is now known as Bob")))  # /me, no rename
    assert tracker.nick == "Ally"


# --------------------------------------------------------------------------- interactive, in a pty


def test_a_message_arriving_mid_typing_leaves_the_half_typed_line_intact(server, connect, terminal):
    bob = connect("bob")
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt with alice's nick")
    term.child.send("hel")
    term.wait_for(lambda: term.prompt_line() == "alice> hel", "the half-typed 'hel'")

    bob.send("hi alice, how are you?")
    term.wait_for(
        lambda: any(line.endswith("<bob> hi alice, how are you?") for line in term.lines)
        and term.prompt_line() == "alice> hel",
        "bob's message above an intact prompt",
    )
    [shown] = [n for n, line in enumerate(term.lines) if "<bob>" in line]
    assert shown < term.screen.cursor.y
    assert re.fullmatch(STAMP + r" <bob> hi alice, how are you\?", term.lines[shown])
    assert term.screen.cursor.x == len("alice> hel")

    term.child.send("lo\r")
    said = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
    assert (said.nick, said.text) == ("alice", "hello")  # exactly what was typed, in one piece

    # Colours are on in a terminal: the welcome reply in cyan, bob's nick in his colour.
    assert b"\x1b[36m--- Welcome, alice!" in term.raw
    assert (nick_style("bob") + "<bob>").encode() in term.raw


def looks(style: str) -> tuple:
    """What pyte makes of ``style``: the (colour, bold, italics) of a cell drawn in it."""
    screen = pyte.Screen(4, 1)
    pyte.Stream(screen).feed(style + "x")
    cell = screen.buffer[0][0]
    return cell.fg, cell.bold, cell.italics


def test_me_at_the_prompt_and_an_action_on_screen_in_the_senders_colour(server, connect, terminal):
    """An action in a join's words is drawn as bob's (his colour), not as the notice
    of his real join above it; and /me typed at the prompt reaches bob as an action."""
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt with alice's nick")
    bob = connect("bob")
    bob.send("/me joined (3 online)")
    term.wait_for(lambda: any(line.endswith("* bob joined (3 online)") for line in term.lines), "bob's action")
    [joined] = [n for n, line in enumerate(term.lines) if line.endswith("*** bob joined (2 online)")]
    [acted] = [n for n, line in enumerate(term.lines) if line.endswith(" * bob joined (3 online)")]
    assert re.fullmatch(STAMP + r" \* bob joined \(3 online\)", term.lines[acted])

    def cell(row: int, text: str, offset: int = 0) -> tuple:
        c = term.screen.buffer[row][term.lines[row].index(text) + offset]
        return c.fg, c.bold, c.italics

    assert cell(acted, "* bob") == looks(nick_style("bob"))
    assert cell(acted, "joined") == ("default", False, True)  # what bob did, in italics
    assert cell(joined, "*** bob") == looks("\x1b[2;33m") != cell(acted, "* bob")  # a notice looks apart
    term.child.send("/me waves back\r")
    heard = bob.receive_until(lambda line: line.kind is Kind.ACTION)[-1]
    assert (heard.nick, heard.text) == ("alice", "waves back")


def test_with_nick_the_client_does_not_ask_for_one(server, terminal):
    term = terminal(server.port, "alice")
    term.wait_for(lambda: any("--- Welcome, alice!" in line for line in term.lines), "the welcome")
    assert not any("Choose a nickname" in line for line in term.lines)
    asked = run_piped(server.port, "bob\n")  # without --nick the question is the first line
    assert "*** Welcome to TCPChatX! Choose a nickname" in asked.stdout.splitlines()[0]


def test_pasted_lines_all_arrive_in_order_with_flood_control_on(server, connect, terminal):
    """25 lines at once: 10 go at once, the server holds 15 and passes them on at 5 a
    second (issue 24), and alice is told once.  Nothing pasted is lost."""
    bob = connect("bob")
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt with alice's nick")
    term.child.send("".join(f"pasted {n}\r" for n in range(25)))
    said = []
    while len(said) < 25:
        line = bob.receive(10)
        if line.kind is Kind.CHAT:
            said.append(line.text)
    assert said == [f"pasted {n}" for n in range(25)]
    term.wait_for(lambda: sum("Slow down" in line for line in term.lines) == 1, "one slow-down notice")


def test_ctrl_c_leaves_cleanly(server, connect, terminal):
    connect("bob")
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt")
    term.child.sendintr()
    assert term.wait_for_exit() == 0
    left = server.timeline.wait_for(lambda e: e.kind == "left" and e.nick == "alice")
    assert left.detail == "quit"  # it said /quit rather than vanishing
    assert "Traceback" not in bytes(term.raw).decode(errors="replace")


def test_choosing_a_nick_at_the_prompt_after_a_refusal(server, terminal):
    term = terminal(server.port, nick=None)
    term.wait_for(lambda: term.prompt_line() == "nickname>", "the nickname prompt")
    term.child.send("root\r")
    term.wait_for(lambda: any('!!! The nickname "root" is reserved.' in ln for ln in term.lines), "refusal")
    term.child.send("alice\r")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt with the accepted nick")
    term.child.sendeof()  # Ctrl-D leaves too
    assert term.wait_for_exit() == 0


def test_when_the_server_closes_the_prompt_ends(server, terminal):
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt")
    term.child.send("half")
    server.stop()
    term.wait_for(lambda: any("The server shut down." in ln for ln in term.lines), "the news")
    assert term.wait_for_exit() == 1
    assert any("*** Server is shutting down. Bye!" in line for line in term.lines)


def test_the_terminal_sanitises_a_hostile_server_itself(hostile_server, terminal):
    evil = hostile_server("*** Choose a nickname.", "--- Welcome, alice!", EVIL_LINE)
    term = terminal(evil.port, "alice")
    term.wait_for(lambda: any("<mallory>" in line for line in term.lines), "mallory's line")
    [shown] = [line for line in term.lines if "<mallory>" in line]
    assert re.fullmatch(STAMP + " " + re.escape(EVIL_SHOWN), shown)
    assert any(line.endswith("*** Choose a nickname.") for line in term.lines)  # no screen clear
    assert term.screen.title == ""  # no window title set
    for code in INJECTED:
        assert code not in term.raw
    # Ctrl-D is a key only once prompt_toolkit reads the terminal raw: before its
    # prompt is up, the terminal driver swallows it (a clean-clone CI run hung there once).
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt")
    term.child.sendeof()
    assert term.wait_for_exit() == 0
    assert evil.received == ["alice", "/quit"]


# --------------------------------------------------------------------------- piped


def run_piped(port: int, stdin: str, nick: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        client_command(port, nick), input=stdin, capture_output=True, text=True,
        env=client_env(), timeout=15,
    )


def test_piped_lines_are_sent_and_replies_printed_until_the_server_closes(server, connect):
    bob = connect("bob")
    done = run_piped(server.port, "alice\nhello\n/online\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    said = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
    assert (said.nick, said.text) == ("alice", "hello")
    lines = done.stdout.splitlines()
    assert any(re.fullmatch(STAMP + r" --- Online \(2\): bob, alice", line) for line in lines)
    assert re.fullmatch(STAMP + r" --- Bye, alice!", lines[-1])  # read until the server's FIN
    assert "\x1b" not in done.stdout  # no colour into a pipe
    assert server.timeline.wait_for(lambda e: e.kind == "left" and e.nick == "alice").detail == "quit"


def test_piped_long_line_arrives_as_lines_that_fit(server, connect):
    """260 emoji are 1,040 bytes, over the server's 1,024: the client splits the line
    between characters instead of losing it."""
    bob = connect("bob")
    text = "😀" * 260
    done = run_piped(server.port, f"alice\n{text}\n")
    assert done.returncode == 0, done.stderr
    assert "too long" not in done.stdout + done.stderr
    said = [line for line in bob.receive_until(lambda line: "alice left" in line.text) if line.kind is Kind.CHAT]
    assert len(said) == 2 and "".join(line.text for line in said) == text


def test_a_long_line_typed_at_the_prompt_arrives_whole_in_pieces(server, connect, terminal):
    bob = connect("bob")
    term = terminal(server.port, "alice")
    term.wait_for(lambda: term.prompt_line() == "alice>", "the prompt with alice's nick")
    text = "".join(f"{n:04d} " for n in range(300))  # 1,500 bytes
    term.child.send(text + "\r")
    said = []
    while "".join(said) != text:
        line = bob.receive(10)
        assert line.kind is Kind.CHAT or "joined" in line.text, line
        if line.kind is Kind.CHAT:
            said.append(line.text)
            assert len("".join(said)) <= len(text), said
    assert len(said) == 2
    assert "Line too long" not in "\n".join(term.lines)


def test_piped_long_action_arrives_as_actions_that_fit(server, connect):
    """A /me over the server's 1,024 bytes is cut into lines that each start with /me:
    bob reads actions all through, no piece of it as chat."""
    bob = connect("bob")
    text = "".join(f"{n:04d} " for n in range(300)).strip()  # 1,499 bytes
    done = run_piped(server.port, f"alice\n/me {text}\n")
    assert done.returncode == 0, done.stderr
    heard = bob.receive_until(lambda line: "alice left" in line.text)
    said = [line for line in heard if line.nick == "alice"]
    assert [line.kind for line in said] == [Kind.ACTION, Kind.ACTION]
    assert " ".join(line.text for line in said) == text  # (the room strips the space at the cut)


def test_piped_quit_with_a_message_reaches_the_others(server, connect):
    bob = connect("bob")
    done = run_piped(server.port, "alice\n/quit see you tomorrow\n")
    assert done.returncode == 0 and done.stderr == ""
    assert bob.receive_until(lambda line: "alice left" in line.text)[-1].text == \
        "alice left (quit: see you tomorrow, 1 online)"


def test_piped_nick_from_the_option_and_a_retry_after_refusal(server):
    done = run_piped(server.port, "alice\n/online\n", nick="admin")
    assert done.returncode == 0, done.stderr
    assert '!!! The nickname "admin" is reserved.' in done.stdout
    assert "--- Online (1): alice" in done.stdout


def test_piped_client_reports_the_server_closing_first(server):
    process = subprocess.Popen(
        client_command(server.port, "alice"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=client_env(),
    )
    try:
        server.timeline.wait_for(lambda e: e.kind == "nick-set" and e.nick == "alice")
        server.stop()
        # stdin stays open until the client has exited: it must notice the server
        # leaving by itself (communicate() would close stdin first, and race it).
        process.wait(timeout=10)
        out, err = process.communicate()
    finally:
        process.kill()
    assert process.returncode == 1  # not what the student asked for
    assert "*** Server is shutting down. Bye!" in out
    assert err == "The server shut down.\n"


def test_a_callback_given_after_the_server_closed_still_runs():
    """The piped client waits for "the server closed" from the receiver thread.  A
    server that closes at once can end the stream before the client asks to be told
    (it did, under load, and the client waited forever): then it is told at once."""
    from tcpchatx.terminal import NickTracker, Receiver

    ours, server_end = socket.socketpair()
    try:
        receiver = Receiver(ours, lambda text: None, NickTracker(None))
        told_in = []
        receiver.when_closed(lambda: told_in.append(threading.current_thread().name))
        receiver.start()
        server_end.close()  # the server's FIN
        receiver.join(timeout=10)
        assert not receiver.is_alive() and receiver.closed.is_set()
        receiver.when_closed(lambda: told_in.append(threading.current_thread().name))
        assert told_in == ["terminal-receiver", threading.current_thread().name]
    finally:
        ours.close()
        server_end.close()


def test_piped_client_sanitises_a_hostile_server(hostile_server):
    evil = hostile_server("--- Welcome, alice!", EVIL_LINE)
    done = run_piped(evil.port, "alice\n")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(STAMP + " " + re.escape(EVIL_SHOWN), done.stdout.splitlines()[-1])
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert evil.received == ["alice", "/quit"]


# --------------------------------------------------------------------------- failures


def test_connection_refused_is_one_clear_line_and_exit_code_1():
    with socket.socket() as bound_not_listening:  # the kernel answers SYN with RST
        bound_not_listening.bind((HOST, 0))
        port = bound_not_listening.getsockname()[1]
        done = run_piped(port, "")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"Cannot connect to {HOST}:{port}: connection refused. Is the server running, on port {port}? "
        f"Start one with: tcpchatx server --port {port}\n"
    )
