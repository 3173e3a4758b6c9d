"""How a connection ended: its close kind and who closed first, from its changes of state.

Both trackers (the plain one in :mod:`tcpchatx.analysis.plain.tracker`, and the fast
one) follow a connection through the state table and note each change of state and
each RST; :func:`close_kind_of` reads the close kind off that path.  The words are
:class:`~tcpchatx.analysis.labels.CloseKind`'s.
"""

from __future__ import annotations

from .labels import ORIGINATOR, RESPONDER, CloseKind
from .states import SegmentKind, State


def close_kind_of(path: list[tuple[int, int, int, int]], final: int) -> tuple[CloseKind, str | None]:
    """How the connection ended, and who closed first, from the changes of state it went
    through (``path``: state before, kind, side, and a position, of each change and
    each RST) and the state it ended in."""
    sides = (ORIGINATOR, RESPONDER)
    established = any(kind in (SegmentKind.ACK, SegmentKind.DATA) and state == State.SYN_RECEIVED
                      for state, kind, _, _ in path)
    first_fin = next((side for _, kind, side, _ in path if kind in (SegmentKind.FIN, SegmentKind.FIN_ACK)), None)
    for state, kind, side, _ in path:
        if kind in (SegmentKind.RST, SegmentKind.RST_ACK) and state == State.SYN_SENT and side == 1:
            return CloseKind.REFUSED, RESPONDER
    first_rst = next((side for state, kind, side, _ in path
                      if kind in (SegmentKind.RST, SegmentKind.RST_ACK) and state != State.RESET), None)
    if not established:
        closer = first_fin if first_fin is not None else first_rst
        return CloseKind.INCOMPLETE, None if closer is None else sides[closer]
    if final == State.RESET:
        return CloseKind.RESET, sides[first_rst]
    if State.CLOSING in {state for state, _, _, _ in path} | {final}:
        return CloseKind.SIMULTANEOUS, "both"
    closer = None if first_fin is None else sides[first_fin]
    if any(kind == SegmentKind.FIN_ACK for _, kind, _, _ in path):
        return CloseKind.THREE_WAY, closer
    if final in (State.LAST_ACK, State.TIME_WAIT):
        return CloseKind.FOUR_WAY, closer
    if final in (State.FIN_WAIT_1, State.FIN_WAIT_2):
        return CloseKind.HALF_CLOSED, closer
    return CloseKind.OPEN, None
