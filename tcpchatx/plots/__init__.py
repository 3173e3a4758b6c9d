"""Figures of an analysis: ladder, time-sequence graph, fan-out, socket states, congestion.

    from tcpchatx.analysis import analyze
    from tcpchatx import plots
    a = analyze("captures/chat.pcapng")
    fig = plots.ladder(a, events=server.timeline_events())
    plots.save(fig, "ladder.svg")

Every function takes an :class:`~tcpchatx.analysis.Analysis` (and options) and
returns a matplotlib ``Figure``; none touches a socket or pyplot's global state, so
they work with any backend (Agg included) and a notebook shows each figure once.
Each figure also carries ``fig.tcpchatx``: a dict of what was drawn (arrows, lanes,
bars...), for tests and for the curious.
"""

from ._common import save
from .congestion import congestion
from .fanout import fanout
from .ladder import ladder
from .sequence import time_sequence
from .sockets import socket_states

__all__ = ["congestion", "fanout", "ladder", "save", "socket_states", "time_sequence"]
