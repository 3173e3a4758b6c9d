"""Narrowing the terminal leaves no ghost of the line being typed (tcpchatx.reflow).

The ghost needs a terminal that re-wraps its lines when it gets narrower, as most do;
pyte (test_terminal.py's screen) cuts them short instead, so the client runs here in
tmux, a real terminal emulator that re-wraps, in its own pseudo-terminal.  Its
screen is read back with ``tmux capture-pane``.  Every wait polls with a deadline.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
from prompt_toolkit.data_structures import Point
from prompt_toolkit.layout.screen import Char
from test_terminal import client_command

from tcpchatx.protocol import Kind
from tcpchatx.reflow import drawn_width, rows_added_by_rewrapping, rows_of

TMUX = shutil.which("tmux")

# --------------------------------------------------------------------------- counting rows (no I/O)


def test_a_row_takes_as_many_rows_as_it_needs_and_at_least_one():
    assert [rows_of(width, 40) for width in (0, 1, 40, 41, 80, 81)] == [1, 1, 1, 2, 2, 3]


@pytest.mark.parametrize(("widths", "cursor", "columns", "added"), [
    ([39], Point(39, 0), 40, 0),  # "alice> " and 32 letters: still fits in 40 columns
    ([40], Point(40, 0), 40, 0),  # exactly 40: the row fits, the cursor stays on it
    ([41], Point(41, 0), 40, 1),  # one more: the cursor follows the last letter down
    ([79], Point(79, 0), 40, 1),
    ([80, 0], Point(0, 1), 40, 1),  # a full row above the cursor's: two rows now
    ([80, 80, 10], Point(10, 2), 30, 4),  # 3 rows each above; the cursor's row fits
    ([52], Point(7, 0), 40, 0),  # the cursor moved back to the line's start: it stays
    ([52], Point(52, 0), 80, 0),  # wider: nothing re-wraps
])
def test_rows_added_by_rewrapping(widths, cursor, columns, added):
    """(The cases tmux was seen to re-wrap so, in the test below and by hand.)"""
    assert rows_added_by_rewrapping(widths, cursor, columns) == added


def test_the_drawn_width_ends_at_the_last_character_that_is_not_a_space():
    row = {0: Char("a"), 1: Char(" "), 2: Char("b"), 3: Char(" "), 4: Char(" ")}
    assert drawn_width(row) == 3
    assert drawn_width({0: Char("日")}) == 2  # a wide character takes two cells
    assert drawn_width({}) == drawn_width({0: Char(" ")}) == 0


def test_only_terminals_known_to_rewrap_are_corrected():
    """Where a terminal cuts long rows short (xterm, or one that says nothing), correcting
    would erase chat lines: the client corrects only where the terminal says it re-wraps."""
    from tcpchatx.reflow import terminal_rewraps

    assert terminal_rewraps({"TMUX": "/tmp/tmux-0/default,1,0"})
    assert terminal_rewraps({"VTE_VERSION": "7600"})  # GNOME Terminal and other VTE terminals
    assert terminal_rewraps({"WT_SESSION": "a8f3"})  # Windows Terminal
    assert terminal_rewraps({"TERM_PROGRAM": "Apple_Terminal"}) and terminal_rewraps({"TERM_PROGRAM": "iTerm.app"})
    assert not terminal_rewraps({"XTERM_VERSION": "XTerm(390)", "TERM": "xterm-256color"})
    assert not terminal_rewraps({}) and not terminal_rewraps({"TMUX": ""})
    assert not terminal_rewraps({"VTE_VERSION": "7600", "STY": "1234.pts-0.host"})  # GNU screen inside
    assert terminal_rewraps({"VTE_VERSION": "7600", "STY": "1234.pts-0.host", "TMUX": "/tmp/t,1,0"})
    assert not terminal_rewraps({"VTE_VERSION": "7600", "TCPCHATX_REWRAP": "0"})  # settled by hand
    assert terminal_rewraps({"XTERM_VERSION": "XTerm(390)", "TCPCHATX_REWRAP": "1"})


# --------------------------------------------------------------------------- in a real terminal


class Tmux:
    """One tmux server of our own (its own socket, no configuration file) running the
    client in a window of ``columns`` x ``rows``."""

    def __init__(self, name: str, command: list[str], columns: int, rows: int) -> None:
        self.base = [TMUX, "-L", name, "-f", "/dev/null"]
        shell = "env -u NO_COLOR TERM=screen " + " ".join(map(shlex.quote, command))
        self.run("new-session", "-d", "-s", "chat", "-x", str(columns), "-y", str(rows), shell)
        # Clearing a screen from its top-left corner makes tmux copy the screen into its
        # history (an option of its own, on by default): off, the history holds only
        # what scrolled off the top, as in other terminals.
        self.run("set-option", "-g", "scroll-on-clear", "off")

    def run(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=True).stdout

    def rows(self, joined: bool = False) -> list[str]:
        """Every row: the history (what scrolled off the top), then the screen; rows the
        terminal wrapped joined back into their lines if ``joined``."""
        out = self.run("capture-pane", "-p", "-S", "-", *(["-J"] if joined else []), "-t", "chat")
        return [row.rstrip() for row in out.rstrip("\n").split("\n")]

    def before_cursor(self) -> str:
        """What the cursor's row holds to the left of the cursor."""
        x, y = map(int, self.run("display-message", "-p", "-t", "chat", "#{cursor_x} #{cursor_y}").split())
        return self.run("capture-pane", "-p", "-N", "-t", "chat").split("\n")[y][:x]

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "chat", "-l", text)

    def resize(self, columns: int, rows: int) -> None:
        self.run("resize-window", "-t", "chat", "-x", str(columns), "-y", str(rows))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                shown = "\n".join(self.rows())
                raise AssertionError(f"timed out waiting for {what}; the terminal shows:\n{shown}")
            time.sleep(0.02)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path):
    if TMUX is None:
        pytest.skip("needs tmux")
    started: list[Tmux] = []

    def start(command: list[str], columns: int = 80, rows: int = 12) -> Tmux:
        term = Tmux(f"tcpchatx-test-{tmp_path.name}-{len(started)}", command, columns, rows)
        started.append(term)
        return term

    yield start
    for term in started:
        term.close()


def test_narrowing_the_terminal_leaves_no_ghost_of_the_line_being_typed(server, connect, tmux):
    """The issue's case: a line typed wider than the narrower terminal.  Afterwards the
    typed line is on the screen once, bob's lines above it are all still there, and
    the prompt goes on working: Enter sends what was typed, whole."""
    bob = connect("bob")
    term = tmux(client_command(server.port, "alice"))
    term.wait_for(lambda: term.before_cursor().rstrip() == "alice>", "the prompt")
    said = [f"line {n} from bob, long enough to be cut in two at forty columns" for n in range(3)]
    for text in said:
        bob.send(text)
    term.wait_for(lambda: any(row.endswith(said[-1]) for row in term.rows()), "bob's lines")
    typed = "hello world, this line is long enough to wrap"  # 52 columns with "alice> "
    term.type(typed)
    term.wait_for(lambda: term.before_cursor() == "alice> " + typed, "the typed line")

    term.resize(40, 12)
    bob.send("after the resize")  # shown above the prompt: its redraw follows the resize's
    term.wait_for(lambda: term.before_cursor() == "ough to wrap" and any(
        row.endswith("<bob> after the resize") for row in term.rows()), "the prompt redrawn at 40 columns")
    rows = term.rows()
    assert sum(row.startswith("alice> hello world") for row in rows) == 1, "\n".join(rows)
    assert rows[-2:] == ["alice> hello world, this line is long en", "ough to wrap"]
    lines = term.rows(joined=True)  # bob's lines, each re-wrapped into two rows, whole again
    assert [sum(line.endswith(f"<bob> {text}") for line in lines) for text in said] == [1, 1, 1], "\n".join(rows)

    term.type("\r")
    heard = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
    assert (heard.nick, heard.text) == ("alice", typed)
