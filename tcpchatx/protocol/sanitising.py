"""Sanitising: the characters no line may carry to another person's terminal.

Control characters can repaint a terminal, and bidirectional and zero-width
characters can hide text (Trojan Source); the server removes them from every
line it relays, and the terminal client from every line it shows.
"""

from __future__ import annotations

import re

# Bidirectional embeddings, overrides and isolates (Trojan Source, CVE-2021-42574),
# the implicit direction marks, and invisible zero-width characters.
_INVISIBLE = (
    "\u061c\u200e\u200f"  # ALM, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # LRE RLE PDF LRO RLO
    "\u2066\u2067\u2068\u2069"  # LRI RLI FSI PDI
    "\u200b\u200c\u200d\u2060\ufeff\u180e"  # zero-width space/joiners, word joiner, BOM
)
# C0 controls except TAB, DEL, C1 controls, and the invisible characters above.
# Public: the analysis removes them from many texts at once (UNSAFE_CHARACTERS.sub).
UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f" + _INVISIBLE + "]")


def sanitize(text: str) -> tuple[str, int]:
    """Remove characters that could repaint a terminal or hide text.

    Returns the clean text and how many characters were removed.
    """
    clean, removed = UNSAFE_CHARACTERS.subn("", text)
    return clean, removed
