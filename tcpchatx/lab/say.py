"""How the lab prints: one line per step, flushed at once, with paths said short.

Every helper reports progress through :func:`_say`, so a notebook cell shows each
step the moment it happens, never a batch at the end.
"""

from __future__ import annotations

import os
from pathlib import Path


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if len(relative) < len(str(path)) else str(path)


def _say(text: str) -> None:
    print(text, flush=True)
