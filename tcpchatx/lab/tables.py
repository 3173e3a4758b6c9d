"""The packets and connections of a run as tables: plain DataFrames to compute with, and
coloured views (one background per phase) for a notebook cell to display.
"""

from __future__ import annotations

from .printing import say
from .runs import LabRun
from .watch import Watch

PHASE_BACKGROUNDS = {"handshake": "#dbeafe", "data": "#f8fafc", "teardown": "#ffe8cc",
                     "reset": "#fdd8d8", "other": "#ffffff"}
PACKET_COLUMNS = ["frame", "who", "flags", "seq", "ack", "len", "phase", "step", "note"]


def packet_table(lab_run: LabRun | Watch, frames: list[int] | None = None, conn: int | None = None,
                 phase: str | tuple[str, ...] | None = None, chat: bool = False):
    """The packets as a plain DataFrame: frame, who sends to whom, flags, relative seq/ack,
    payload length, phase, step and the note (plus the chat text with ``chat=True``)."""
    lab_run = lab_run.run if isinstance(lab_run, Watch) else lab_run
    df = lab_run.packets
    keep = df["conn"] >= 0
    if frames is not None:
        keep &= df["frame"].isin(list(frames))
    if conn is not None:
        keep &= df["conn"] == conn
    if phase is not None:
        keep &= df["phase"].isin([phase] if isinstance(phase, str) else list(phase))
    df = df[keep].copy()
    names = {c.id: lab_run.nick(c.id) or f"client {c.id}" for c in lab_run.analysis.connections}
    df["who"] = [f"{names[c]} → server" if d == "originator" else f"server → {names[c]}"
                 for c, d in zip(df["conn"], df["direction"])]
    columns = PACKET_COLUMNS + (["chat"] if chat else [])
    return df[columns].reset_index(drop=True)


def show_packets(lab_run: LabRun | Watch, frames: list[int] | None = None, conn: int | None = None,
                 phase: str | tuple[str, ...] | None = None, chat: bool = False):
    """:func:`packet_table`, coloured by phase, for a notebook cell to display."""
    if isinstance(lab_run, Watch) and lab_run.run is None:
        say(f"{lab_run.label}: nothing was captured in this mode, so there is nothing to show.")
        return None
    table = packet_table(lab_run, frames, conn, phase, chat)

    def colour(row):
        return [f"background-color: {PHASE_BACKGROUNDS.get(row['phase'], '#ffffff')}"] * len(row)

    return table.style.apply(colour, axis=1)  # the rest of the look: display.table_html


def show_connections(lab_run: LabRun):
    """One row per connection: who, how it closed, who closed first, Zeek's labels."""
    df = lab_run.analysis.connections_df()
    columns = ["conn", "nick", "client_port", "first_frame", "last_frame", "close_kind",
               "active_closer", "conn_state", "history"]
    return df[columns]


def compare_closes(*runs: LabRun):
    """One row per connection of each run: how it closed, who closed first, Zeek's labels."""
    import pandas as pd

    rows = []
    for lab_run in runs:
        for c in lab_run.analysis.connections:
            rows.append({"scenario": lab_run.name, "conn": c.id, "close_kind": c.close_kind,
                         "active_closer": c.active_closer, "conn_state": c.conn_state,
                         "history": c.history, "close_frames": c.close_frames})
    return pd.DataFrame(rows)
