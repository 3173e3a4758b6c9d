"""Erasing the prompt after the terminal re-wrapped it: no ghost line on a resize.

Theory of operation
-------------------
prompt_toolkit redraws its prompt when the terminal is resized: it moves the cursor
up to the first row it drew, erases from there down, and draws again.  It counts
those rows as it drew them, at the old width.  But most terminals (GNOME Terminal,
macOS Terminal and iTerm2, Windows Terminal, VS Code, kitty, tmux) *re-wrap* their
lines when they get narrower: a row of 60 characters in a terminal shrunk to 40
columns becomes two rows, and the cursor at its end moves down one.  prompt_toolkit
then goes up one row too few, and the first 40 characters of the line being typed
stay on the screen above the new prompt: a ghost copy.

So before prompt_toolkit erases (or redraws) at a new width, we count the rows the
terminal made of what was drawn (:func:`rows_added_by_rewrapping`, no I/O) and tell
the renderer the cursor is that much further down.  A terminal that cuts long rows
short instead of re-wrapping them (xterm, the Linux console) keeps the cursor where it
was: there the correction would erase that many rows too high and take lines of chat
off the screen, which is worse than a ghost.  Nothing the client can read says how a
terminal resizes, so the correction is made only where the terminal says what it is
and is known to re-wrap (:func:`terminal_rewraps`); elsewhere a ghost may stay, and
no chat line is lost.

The renderer keeps what it drew, its size and the cursor in attributes of its own
(``_last_screen``, ``_last_size``, ``_cursor_pos``, prompt_toolkit 3.0): this module
reads and moves them, and tests/test_terminal_resize.py holds it to a real terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.data_structures import Point
from prompt_toolkit.layout import Layout
from prompt_toolkit.renderer import Renderer


def rows_of(width: int, columns: int) -> int:
    """How many rows a drawn row ``width`` cells wide takes in ``columns`` columns."""
    return max(1, -(-width // columns))


def rows_added_by_rewrapping(widths: list[int], cursor: Point, columns: int) -> int:
    """How many rows further down the cursor is once the terminal re-wraps, at
    ``columns``, the rows drawn with these ``widths`` (the cursor's row and those above).

    Each row above the cursor's grows to :func:`rows_of` rows.  On its own row the
    cursor follows the characters before it, unless that row still fits (then the
    terminal leaves it, and the cursor, as they were).
    """
    *above, own = widths
    added = sum(rows_of(width, columns) - 1 for width in above)
    if own > columns:
        added += cursor.x // columns
    return added


def drawn_width(row: dict) -> int:
    """The cells a drawn row takes on the terminal: up to its last character that is not
    a space.  prompt_toolkit leaves out the blank cells at the end of a row unless they
    are styled (a highlighted cursor line); the chat's input line has no styled blanks."""
    return max((x + cell.width for x, cell in row.items() if cell.char != " "), default=0)


class ReflowingRenderer(Renderer):
    """prompt_toolkit's renderer, told where the cursor went when the terminal re-wrapped."""

    def erase(self, leave_alternate_screen: bool = True) -> None:
        self._follow_rewrapping()
        super().erase(leave_alternate_screen)

    def render(self, app: Application[Any], layout: Layout, is_done: bool = False) -> None:
        self._follow_rewrapping()  # a redraw can come before the resize's own erase
        super().render(app, layout, is_done)

    def _follow_rewrapping(self) -> None:
        """If the terminal got narrower since the last drawing, move our idea of the
        cursor down by the rows the terminal added.  Then forget the drawing: it is
        counted once, and the next one is drawn whole (as at any new size)."""
        drawn, size = self._last_screen, self._last_size
        if drawn is None or size is None:
            return
        columns = self.output.get_size().columns
        if columns >= size.columns:
            return
        cursor = self._cursor_pos
        widths = [drawn_width(drawn.data_buffer[y]) for y in range(cursor.y + 1)]
        self._cursor_pos = Point(cursor.x, cursor.y + rows_added_by_rewrapping(widths, cursor, columns))
        self._last_screen = None


#: Environment variables set by terminals that re-wrap their rows when they narrow.
REWRAPPING_MARKERS = ("TMUX", "VTE_VERSION", "WT_SESSION", "KONSOLE_VERSION", "KITTY_WINDOW_ID",
                      "ALACRITTY_WINDOW_ID", "WEZTERM_PANE")
#: TERM_PROGRAM values of terminals that re-wrap (macOS Terminal, iTerm2, VS Code, ...).
REWRAPPING_PROGRAMS = ("Apple_Terminal", "iTerm.app", "vscode", "WezTerm", "Hyper", "ghostty", "tmux")


#: Set to 1 or 0 to say whether your terminal re-wraps, when the guess is wrong.
OVERRIDE = "TCPCHATX_REWRAP"


def terminal_rewraps(environ: Mapping[str, str]) -> bool:
    """Does the terminal we run in say it is one that re-wraps its rows when it narrows?

    Unknown terminals, xterm among them: no, and then nothing is corrected.  The markers
    are inherited by programs started inside, so an xterm opened from GNOME Terminal
    still carries VTE_VERSION; GNU screen (STY) truncates, so inside it: no, unless tmux
    runs inside screen.  ``TCPCHATX_REWRAP=0`` or ``=1`` settles it by hand.
    """
    if environ.get(OVERRIDE) in ("0", "1"):
        return environ[OVERRIDE] == "1"
    if environ.get("STY") and not environ.get("TMUX"):
        return False
    return (any(environ.get(name) for name in REWRAPPING_MARKERS)
            or environ.get("TERM_PROGRAM", "") in REWRAPPING_PROGRAMS)


def follow_rewrapping(app: Application[Any]) -> None:
    """Give ``app`` a :class:`ReflowingRenderer` in place of its own (same settings)."""
    old = app.renderer
    app.renderer = ReflowingRenderer(
        old.style, old.output, full_screen=old.full_screen, mouse_support=old.mouse_support,
        cpr_not_supported_callback=old.cpr_not_supported_callback,
    )
