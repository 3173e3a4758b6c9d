"""Broadcast fan-out: one message in, a copy out to every other client, and how long each took.

The latency of a delivery is the time from the frame that carried the sender's line
to the server, to the frame that carried the copy (``<nick> text``) to a recipient
(see :mod:`tcpchatx.analysis.chat`).  The server queues every copy at once, but each
recipient's writer thread sends its own, so the copies leave one after another.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ._common import CONNECTION_COLOURS, shorten

TEXT_CHARS = 40


def _find_message(analysis, message):
    """A Message from an id, its text, or the Message itself."""
    if hasattr(message, "deliveries"):
        return message
    for m in analysis.messages:
        if m.id == message or m.text == message:
            return m
    known = ", ".join(f"{m.id}: {m.text!r}" for m in analysis.messages[:10]) or "none"
    raise ValueError(f"no message {message!r} in {analysis.path}; messages are {known}")


def _recipient_colours(analysis) -> dict[str, str]:
    names = [analysis.chat.nick_of_conn.get(c.id) or f"conn {c.id}" for c in analysis.connections]
    return {name: CONNECTION_COLOURS[k % len(CONNECTION_COLOURS)] for k, name in enumerate(names)}


def _name(delivery) -> str:
    return delivery.recipient or f"conn {delivery.conn}"


def fanout(analysis, message=None, max_messages: int = 30) -> Figure:
    """Fan-out latency of one ``message`` (id, text or Message): one bar per recipient;
    or, if ``message`` is None, of every message (at most ``max_messages``), grouped."""
    if message is not None:
        return _one(analysis, _find_message(analysis, message))
    return _all(analysis, analysis.messages[:max_messages], len(analysis.messages))


def _one(analysis, m) -> Figure:
    colours = _recipient_colours(analysis)
    deliveries = sorted(m.deliveries, key=lambda d: d.latency)
    n = len(deliveries)
    fig = Figure(figsize=(10, 1.6 + 0.45 * max(n, 1)))
    ax = fig.subplots()
    names = [_name(d) for d in deliveries]
    latencies = [d.latency * 1000 for d in deliveries]
    bars = ax.barh(range(n), latencies, height=0.6,
                   color=[colours.get(name, "#7f7f7f") for name in names])
    for y, d, value in zip(range(n), deliveries, latencies):
        ax.annotate(f"{value:.3f} ms  (frame {m.frame} → {d.frame})", (value, y), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"to {name}" for name in names])
    ax.invert_yaxis()  # the first copy out on top
    ax.set_xlabel("fan-out latency: message frame to copy frame (ms)")
    if n == 0:
        ax.text(0.5, 0.5, "not delivered to anyone (nobody else online?)", ha="center",
                va="center", transform=ax.transAxes, color="#6b7280")
        ax.set_yticks([])
    else:
        ax.set_xlim(0, max(latencies) * 1.45 or 1.0)
    what = f"private to {m.to}" if m.kind == "private" else "broadcast"
    # Named by its text and frame, not its id: ids count from 0, people count lines from 1.
    ax.set_title(f"{m.sender or f'conn {m.conn}'}: \"{shorten(m.text, TEXT_CHARS)}\" (frame {m.frame}, "
                 f"{what}) → {n} cop{'y' if n == 1 else 'ies'}",
                 fontsize=10, loc="left", fontweight="bold")
    ax.grid(True, axis="x", color="#e5e7eb", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.tcpchatx = {"kind": "fanout", "messages": [m.id], "bars": len(bars),
                    "recipients": names, "latencies_ms": latencies}
    return fig


def _all(analysis, messages, total: int) -> Figure:
    colours = _recipient_colours(analysis)
    rows = max(len(messages), 1)
    fig = Figure(figsize=(10, 1.7 + 0.55 * rows))
    ax = fig.subplots()
    bar_count, recipients_seen, all_latencies = 0, [], []
    for y, m in enumerate(messages):
        k = len(m.deliveries)
        height = 0.8 / max(k, 1)
        for j, d in enumerate(sorted(m.deliveries, key=lambda d: d.conn)):
            name = _name(d)
            if name not in recipients_seen:
                recipients_seen.append(name)
            value = d.latency * 1000
            all_latencies.append(value)
            ax.barh(y - 0.4 + height * (j + 0.5), value, height=height * 0.9,
                    color=colours.get(name, "#7f7f7f"))
            bar_count += 1
        if k:
            slowest = max(d.latency for d in m.deliveries) * 1000
            ax.annotate(f"{k} cop{'y' if k == 1 else 'ies'}, slowest {slowest:.3f} ms",
                        (slowest, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7.5, color="#374151")
        else:
            ax.annotate("not delivered", (0, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=7.5, color="#6b7280")
    ax.set_yticks(range(len(messages)))
    ax.set_yticklabels([f"#{m.id} {m.sender or '?'}: {shorten(m.text, 24)}" for m in messages],
                       fontsize=8)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlim(0, max(all_latencies, default=1.0) * 1.35)
    ax.set_xlabel("fan-out latency: message frame to copy frame (ms)")
    more = f" (first {len(messages)} of {total})" if total > len(messages) else ""
    ax.set_title(f"Fan-out of {len(messages)} message(s){more}: one bar per copy the server sent",
                 fontsize=10, loc="left", fontweight="bold")
    if recipients_seen:
        ax.legend(handles=[Patch(color=colours.get(n, "#7f7f7f"), label=f"to {n}") for n in recipients_seen],
                  loc="lower right", fontsize=8, framealpha=0.9)
    if not messages:
        ax.text(0.5, 0.5, "no chat messages in this capture", ha="center", va="center",
                transform=ax.transAxes, color="#6b7280")
    ax.grid(True, axis="x", color="#e5e7eb", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.tcpchatx = {"kind": "fanout", "messages": [m.id for m in messages], "bars": bar_count,
                    "recipients": recipients_seen, "latencies_ms": all_latencies}
    return fig
