"""Nicknames: what makes one valid, and when two are the same.

The room asks :func:`nick_problem` before it accepts a nickname, and the error
line it sends is the :class:`NickProblem`'s own words, so the rule and its
explanation cannot drift apart.  Uniqueness is the room's business.
"""

from __future__ import annotations

import unicodedata
from enum import Enum

NICK_MAX_CHARS = 16
RESERVED_NICKS = frozenset(
    {"server", "admin", "root", "system", "everyone", "all", "nobody", "tcpchatx"}
)


def nick_key(nick: str) -> str:
    """The identity of a nickname: ``Alice``, ``ALICE`` and ``Ａｌｉｃｅ`` are one."""
    return unicodedata.normalize("NFKC", nick).casefold()


class NickProblem(str, Enum):
    """Why a nickname is refused.  The value is the error text; ``{nick}`` is the nickname."""

    EMPTY = "A nickname cannot be empty."
    TOO_LONG = f"A nickname has at most {NICK_MAX_CHARS} characters."
    NO_LETTER_FIRST = "A nickname starts with a letter."
    BAD_CHARACTER = "A nickname may use letters, digits, '_' and '-' only."
    RESERVED = 'The nickname "{nick}" is reserved.'
    TAKEN = 'The nickname "{nick}" is taken. Try another.'  # the room's rule, not check_nick's

    def says(self, nick: str) -> str:
        """The words a client reads: the value with the nickname filled in."""
        return self.value.format(nick=nick)


def nick_problem(raw: str) -> tuple[str, NickProblem | None]:
    """A proposed nickname, NFKC-normalised, and what is wrong with it (None: nothing).

    Uniqueness is the room's business (:attr:`NickProblem.TAKEN`), not this function's.
    """
    nick = unicodedata.normalize("NFKC", raw.strip())
    if not nick:
        return nick, NickProblem.EMPTY
    if len(nick) > NICK_MAX_CHARS:
        return nick, NickProblem.TOO_LONG
    if not nick[0].isalpha():
        return nick, NickProblem.NO_LETTER_FIRST
    if not nick.replace("_", "").replace("-", "").isalnum():  # each character, at C speed
        return nick, NickProblem.BAD_CHARACTER
    if nick.casefold() in RESERVED_NICKS:
        return nick, NickProblem.RESERVED
    return nick, None


def check_nick(raw: str) -> tuple[str | None, str | None]:
    """Validate a proposed nickname.

    Returns ``(nick, None)`` with the NFKC-normalised nickname, or
    ``(None, reason)`` saying what is wrong in words a student understands.
    Uniqueness is the room's business, not this function's.
    """
    nick, problem = nick_problem(raw)
    if problem is None:
        return nick, None
    return None, problem.says(nick)
