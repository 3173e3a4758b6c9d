"""How the lab prints: one line per step, flushed at once, with paths said short, and
long lines wrapped between words.

Every helper reports progress through :func:`say`, so a notebook cell shows each
step the moment it happens, never a batch at the end.  A notebook's output area breaks
a line that is too wide wherever the edge falls, even inside a word ("ac" at the end of
one line, "knowledged" on the next), so lines longer than :data:`WIDTH` are wrapped
here, between words, each continuation indented under its line.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

WIDTH = 100  # characters: what a notebook's output shows without breaking a line


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if len(relative) < len(str(path)) else str(path)


def wrapped(text: str, width: int | None = None) -> str:
    """``text`` with every line longer than ``width`` (default :data:`WIDTH`) wrapped
    between words; the lines it continues on are indented 4 spaces more than its own."""
    width = width or WIDTH
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(textwrap.fill(line.strip(), width, initial_indent=indent, subsequent_indent=indent + "    ",
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def say(*parts: object) -> None:
    """``print(*parts)`` for a notebook: long lines wrapped between words, flushed at once."""
    print(wrapped(" ".join(str(part) for part in parts)), flush=True)
