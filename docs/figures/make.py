"""Make the figures in this folder from the lab's reference captures (captures/lab/).

    .venv/bin/python docs/figures/make.py

Each figure is one call of :mod:`tcpchatx.plots` on a reference story, opened with
``lab.story(NAME, mode="reference")``, or on a reference scenario (``lab.run``); run it
again after ``tcpchatx references --lab``.  ``notebook-03-socket-states-before.png`` is
not made here: it is the old socket-state figure (states drawn when sampled), kept to
compare with ``notebook-03-socket-states-after.png``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from tcpchatx import lab, plots
from tcpchatx.netlab.stories import bottleneck

HERE = Path(__file__).resolve().parent
#: The router's queue in the bottleneck story, in bytes (its default ``buffer_bytes``).
QUEUE_LIMIT = inspect.signature(bottleneck).parameters["buffer_bytes"].default


def conn_of(analysis, nick: str) -> int:
    """The connection id of the chat client called ``nick``."""
    return next(conn for conn, name in analysis.chat.nick_of_conn.items() if name == nick)


def time_sequence_fast_retransmit():
    """alice's ten lines, the third lost: duplicate ACKs with SACK blocks, one fast resend."""
    a = lab.story("fast-retransmit", mode="reference").analysis("client", part="sack")
    return plots.time_sequence(a, conn_of(a, "alice"), "originator", window=True)


def time_sequence_zero_window():
    """The server's lines to alice, who stopped reading: her window closes, the
    server probes it, it opens again."""
    a = lab.story("zero-window", mode="reference").analysis("server")
    return plots.time_sequence(a, conn_of(a, "alice"), "responder", window=True)


def tcp_state_bottleneck_cubic():
    """cubic through a 4 Mbit/s link and a 30 KB queue: slow start, a burst of tail
    drops, recovery, a second loss."""
    story = lab.story("bottleneck", mode="reference")
    run, sender_view = story.part("cubic"), story.analysis("client", part="cubic")
    return plots.tcp_state(run["tcp_info"], sender_view, name="sender")


def buffers_bottleneck_cubic():
    """The same transfer: the bytes waiting at the sender, the router and the receiver."""
    story = lab.story("bottleneck", mode="reference")
    run = story.part("cubic")
    by_name = {name: [s for s in run["tcp_info"] if s["name"] == name] for name in ("sender", "receiver")}
    return plots.buffers(by_name["sender"], run["queue"], by_name["receiver"] or None,
                         analysis=story.analysis("client", part="cubic"), queue_limit=QUEUE_LIMIT)


def notebook_06_backoff():
    """Notebook 06: the path breaks, and alice's kernel resends her line after 0.2, 0.4,
    0.8, 1.7 s: the RTO doubles each time, and cwnd falls to one segment."""
    story = lab.story("backoff", mode="reference")
    return plots.tcp_state(story.outcome["tcp_info"], story.analysis("client"), name="alice")


def notebook_07_time_sequence_rwnd():
    """Notebook 07: a receiver with a 16 KB buffer; each round trip the sender fills the
    window (ACK + window, the dashed line) and waits for the next ACK."""
    transfer = lab.flow(lab.story("limits", mode="reference"), "rwnd", view="client")
    return plots.time_sequence(transfer.analysis, transfer.conn, transfer.direction, window=True)


def notebook_08_algorithms():
    """Notebook 08: cubic, reno and bbr through the same 4 Mbit/s link: each one's window,
    and the router's queue it kept (bbr's probes overflow it every eight round trips)."""
    return lab.algorithms_figure(lab.story("bottleneck", mode="reference"))


def notebook_03_socket_states():
    """Notebook 03: alice closes first.  Each socket's states from the packets, every change
    at the packet that caused it; the kernel's sampled states as tags that confirm them."""
    return lab.socket_states_figure(lab.run("client-close", mode="reference", sample_sockets=True))


def ladder_router_rto():
    """alice's line dropped at the router, resent when her timer runs out."""
    story = lab.story("rto", mode="reference")
    return plots.ladder_through_router(story.analysis("client"), story.analysis("server"))


def ladder_router_reorder():
    """Four lines at once, the third held at the router: it arrives after the fourth."""
    story = lab.story("reorder", mode="reference")
    client = story.analysis("client")
    first = next(int(client.packets.frame[row]) for row in range(len(client.packets))
                 if b"line 1 of" in client.packets.payload(row))
    return plots.ladder_through_router(client, story.analysis("server"), frames=(first - 1, first + 11))


FIGURES = {
    "time-sequence-fast-retransmit.png": time_sequence_fast_retransmit,
    "time-sequence-zero-window.png": time_sequence_zero_window,
    "tcp-state-bottleneck-cubic.png": tcp_state_bottleneck_cubic,
    "buffers-bottleneck-cubic.png": buffers_bottleneck_cubic,
    "ladder-router-rto.png": ladder_router_rto,
    "ladder-router-reorder.png": ladder_router_reorder,
    "notebook-03-socket-states-after.png": notebook_03_socket_states,
    "notebook-06-backoff.png": notebook_06_backoff,
    "notebook-07-time-sequence-rwnd.png": notebook_07_time_sequence_rwnd,
    "notebook-08-algorithms.png": notebook_08_algorithms,
}


def main() -> None:
    for name, make in FIGURES.items():
        print("wrote", plots.save(make(), HERE / name).relative_to(HERE.parents[1]))


if __name__ == "__main__":
    main()
