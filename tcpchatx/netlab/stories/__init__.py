"""Stories on the lab network: each makes one thing of TCP happen, every run.

A story sets the router up, plays the chat (or a transfer) across it with captures at
both ends and the kernel's TCP_INFO sampled, checks that its event really happened
(raising :class:`StoryError` if not: a run that missed its event saves nothing to
study), and returns what it recorded.  Run one with
:func:`tcpchatx.netlab.run_in_lab` (``"tcpchatx.netlab.stories:rto"``), or
``tcpchatx scenario NAME`` (:data:`STORIES` names them).  Every story writes the
client's view and the server's; with ``router_view=True`` it also captures the
router's end of the client's link (``NAME-router-view.pcapng``): what reached the
router, including what it then dropped.

- :mod:`.timeouts`: ``rto`` and ``backoff``, the retransmission timer;
- :mod:`.dupacks`: ``fast_retransmit`` and ``reorder``, duplicate ACKs and SACK;
- :mod:`.windows`: ``zero_window``, a reader that stops;
- :mod:`.congestion`: ``bottleneck``, the congestion window at a slow link;
- :mod:`.lossy`: ``random_loss``, a path that loses a share of the frames at random;
- :mod:`.limits`: ``limits``, what holds a transfer back: cwnd, rwnd or the application;
- :mod:`.delay`: ``rtt``, what a round trip costs the handshake, Nagle and ACKs;
- :mod:`.bunched`: ``bunched``, a stall bunches a client's lines; flood control holds, loses none;
- :mod:`.common`: what they share.
"""

from __future__ import annotations

from .bunched import bunched
from .common import StoryError
from .congestion import bottleneck
from .delay import rtt
from .dupacks import fast_retransmit, reorder
from .limits import limits
from .lossy import random_loss
from .timeouts import backoff, rto
from .windows import zero_window

STORIES = {
    "rto": rto,
    "backoff": backoff,
    "fast-retransmit": fast_retransmit,
    "reorder": reorder,
    "zero-window": zero_window,
    "bottleneck": bottleneck,
    "rtt": rtt,
    "bunched": bunched,
    "limits": limits,
    "random-loss": random_loss,
}

__all__ = ["STORIES", "StoryError", "backoff", "bunched", "bottleneck", "fast_retransmit", "limits", "random_loss", "reorder", "rto", "rtt",
           "zero_window"]
