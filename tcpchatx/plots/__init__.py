"""Figures of an analysis: ladders, time-sequence graph, fan-out, socket states, and TCP's
inner state beside the packets.

    from tcpchatx.analysis import analyze
    from tcpchatx import plots
    a = analyze("captures/chat.pcapng")
    fig = plots.ladder(a, events=server.timeline_events())
    plots.save(fig, "ladder.svg")

Every function takes an :class:`~tcpchatx.analysis.Analysis` (and options; the lab's
figures also the kernel's samples) and returns a matplotlib ``Figure``; none touches
a socket or pyplot's global state, so they work with any backend (Agg included) and a
notebook shows each figure once.  Each figure also carries ``fig.tcpchatx``: a dict
of what was drawn (arrows, lanes, bars...), for tests and for the curious.

Of one capture:

- :func:`ladder`: one arrow per segment between the endpoints' lanes;
- :func:`time_sequence`: Stevens' time-sequence graph of one direction, with the
  ACK line, the receive window, SACK blocks, resends by kind and Wireshark's expert
  events;
- :func:`fanout`: each chat message's copies to the other clients, and how long each took;
- :func:`socket_states`: every socket's TCP state over time, derived from the packets (the kernel's samples as checks).

Of the lab network (docs/netlab.md), with what the kernel said beside the packets:

- :func:`ladder_through_router`: both ends' captures as one ladder, client - router -
  server, where a dropped segment ends at the router and a delayed one slants;
- :func:`tcp_state`: the sender's congestion window, threshold, bytes in flight, RTT
  and RTO over time, with its resends (TCP_INFO samples and the capture);
- :func:`buffers`: where the bytes wait: the sender's send queue, the router's queue,
  the receiver's receive queue;
- :func:`congestion`: the short version: window, RTT and the router's queue.
"""

from ._common import save
from .buffers import buffers
from .congestion import congestion
from .fanout import fanout
from .ladder import ladder
from .router import ladder_through_router
from .sequence import time_sequence
from .sockets import socket_states
from .state import tcp_state

__all__ = ["buffers", "congestion", "fanout", "ladder", "ladder_through_router", "save", "socket_states",
           "tcp_state", "time_sequence"]
