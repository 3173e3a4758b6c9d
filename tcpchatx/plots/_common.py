"""What every figure shares: colours, names of endpoints, flag words, saving."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from ..tcp_flags import NAMES as FLAG_NAMES

#: Background colour of each phase band (labels.PHASES names the phases).
PHASE_COLOURS = {
    "handshake": "#dbeafe",  # light blue
    "data": "#f2f4f7",  # light grey: most of a chat
    "teardown": "#ffe8cc",  # light orange
    "reset": "#fdd8d8",  # light red
}

#: One colour per connection (cycled): a connection's arrows, lane header and rows match.
CONNECTION_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                      "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e", "#d62728"]
SERVER_COLOUR = "#333333"
EVENT_COLOUR = "#6a3d9a"
RETRANSMISSION_COLOUR = "#d62728"

def flag_words(flags: int) -> str:
    """0x18 -> "PSH,ACK", 0x12 -> "SYN,ACK": named in Wireshark's order (lowest bit first)."""
    return ",".join(name for bit, name in FLAG_NAMES.items() if flags & bit) or "(none)"


def connection_colour(conn_id: int) -> str:
    return CONNECTION_COLOURS[conn_id % len(CONNECTION_COLOURS)]


def endpoint_text(endpoint: tuple[str, int]) -> str:
    address, port = endpoint
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_connection(analysis, connection):
    """A Connection from an id or the Connection itself; a clear error otherwise."""
    if hasattr(connection, "client") and hasattr(connection, "id"):
        return connection
    ids = [c.id for c in analysis.connections]
    if connection not in ids:
        raise ValueError(f"no connection {connection!r} in {analysis.path}; connections are {ids}")
    return analysis.connections[ids.index(connection)]


def save(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG or SVG, chosen by the file's suffix; return the path."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise ValueError(f"save() writes .png or .svg files, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=kind, dpi=dpi, bbox_inches="tight")
    return path
