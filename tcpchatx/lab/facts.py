"""The facts a notebook's questions are about, read from a run: ISNs and TCP options,
which packet acknowledges a segment, FINs and RSTs and the sequence numbers they use,
payload bytes against chat-line bytes, broadcast copies, Nagle's bursts.

Each takes a run and returns plain values (packet numbers included) or a small table,
so a cell can ask its question first and check the answer after.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.labels import CloseKind
from .printing import say
from .runs import LabRun
from .tables import packet_table


def tcp_options(lab_run: LabRun, frame: int) -> dict[str, object]:
    """The TCP options of packet number ``frame`` (MSS, window scale, SACK, timestamps)."""
    return lab_run.analysis.packets.tcp_options(frame - 1)


def isn(lab_run: LabRun, frame: int) -> int:
    """The raw sequence number of packet number ``frame``: for a SYN, the sender's ISN."""
    return int(lab_run.analysis.packets.seq[frame - 1])


def nagle_bursts(lab_run: LabRun):
    """The nagle scenario's bursts: per client, Nagle on or off, lines sent, and the data
    segments that carried them (counted in the capture, and by the kernel's TCP_INFO)."""
    import pandas as pd

    bursts = lab_run.played.get("result", {}).get("bursts", {})
    lines = lab_run.analysis.lines_df()
    rows = []
    for nick, burst in bursts.items():
        mine = lines[(lines["direction"] == "to server") & lines["text"].isin(burst["lines"])]
        frames = sorted(set(mine["frame"]))
        rows.append({"nick": nick, "nagle": "on" if burst["nagle"] else "off (TCP_NODELAY)",
                     "lines": len(burst["lines"]), "segments": len(frames), "frames": frames,
                     "segments (TCP_INFO)": burst.get("segments")})
    return pd.DataFrame(rows)


def handshake_numbers(lab_run: LabRun, conn: int = 0):
    """The handshake of connection ``conn``: raw and relative seq/ack of its packets."""
    df = lab_run.packets
    rows = df[(df["conn"] == conn) & (df["phase"] == "handshake")]
    return rows[["frame", "step", "raw_seq", "raw_ack", "seq", "ack"]].reset_index(drop=True)


def options_table(lab_run: LabRun, frames: list[int]):
    """The TCP options of each packet in ``frames``: MSS, window scale, SACK, timestamps."""
    import pandas as pd

    rows = []
    for frame in frames:
        options = tcp_options(lab_run, frame)
        rows.append({"frame": frame, "step": lab_run.row(frame)["step"],
                     "mss": options.get("mss"), "wscale": options.get("wscale"),
                     "sack_permitted": options.get("sack_permitted", False),
                     "tsval": options.get("tsval"), "tsecr": options.get("tsecr")})
    table = pd.DataFrame(rows)
    for column in ("mss", "wscale", "tsval", "tsecr"):  # whole numbers, <NA> where absent
        table[column] = table[column].astype("Int64")
    return table


@dataclass(frozen=True)
class Acked:
    """A segment and the first packet from its peer that acknowledges it."""

    frame: int  # the segment
    seq: int  # its relative sequence number
    len: int  # its payload length
    ack_frame: int | None  # the first peer packet acknowledging past seq
    ack: int | None  # that packet's relative acknowledgement number
    who: str  # "alice → server"

    @property
    def text(self) -> str:
        if self.ack_frame is None:
            return f"packet {self.frame} ({self.who}, seq {self.seq}, len {self.len}) is never acknowledged"
        return (f"packet {self.frame} ({self.who}) seq {self.seq} len {self.len}; "
                f"packet {self.ack_frame} acknowledges {self.ack}")


def _acked(lab_run: LabRun, frame: int) -> Acked:
    df = lab_run.packets
    row = df.iloc[frame - 1]
    later = df[(df["frame"] > frame) & (df["conn"] == row["conn"]) & (df["direction"] != row["direction"])
               & df["flags"].str.contains("A", regex=False) & (df["ack"] > row["seq"])]
    who = packet_table(lab_run, frames=[frame])["who"].iloc[0]
    if later.empty:
        return Acked(frame, int(row["seq"]), int(row["len"]), None, None, who)
    first = later.iloc[0]
    return Acked(frame, int(row["seq"]), int(row["len"]), int(first["frame"]), int(first["ack"]), who)


def first_data(lab_run: LabRun, conn: int = 0) -> Acked:
    """The first data segment of connection ``conn`` and the ACK that answers it."""
    return _acked(lab_run, lab_run.frame(conn=conn, data=True))


def fins(lab_run: LabRun) -> list[Acked]:
    """Every connection's FINs (first transmissions) with the ACK that answers each."""
    return [_acked(lab_run, f) for f in lab_run.frames(flags="F")
            if "retransmission" not in lab_run.row(f)["step"]]


@dataclass(frozen=True)
class Reset:
    frame: int
    seq: int  # the RST's relative sequence number
    next_seq: int  # the next sequence number its sender had not used yet
    who: str

    @property
    def text(self) -> str:
        return (f"packet {self.frame} ({self.who}) RST at seq {self.seq}; "
                f"the sender's next unused seq was {self.next_seq}")


def resets(lab_run: LabRun) -> list[Reset]:
    """Every RST of an established connection, with its sender's next unused sequence number."""
    df = lab_run.packets
    refused = {c.id for c in lab_run.analysis.connections if c.close_kind == CloseKind.REFUSED}
    out = []
    for frame in lab_run.frames(flags="R"):
        row = df.iloc[frame - 1]
        if row["conn"] in refused:
            continue  # a refused connect: there was no connection to reset
        before = df[(df["frame"] < frame) & (df["conn"] == row["conn"]) & (df["direction"] == row["direction"])]
        used = (before["seq"] + before["len"] + before["flags"].str.contains("[SF]").astype(int)).max()
        who = packet_table(lab_run, frames=[frame])["who"].iloc[0]
        out.append(Reset(frame, int(row["seq"]), int(used) if before.size else 0, who))
    return out


def why_reset(lab_run: LabRun) -> None:
    """Say what the client's program did when it closed, which the packets cannot show.

    A RST after ``SO_LINGER`` 0 and a RST after a plain ``close()`` with unread bytes
    look the same on the wire: in both, the RST's ACK covers every byte the server sent,
    because the *kernel* had received them all.  Whether the *program* had read them is
    kept in the socket's receive buffer, which the scenario measured just before close().
    """
    done = lab_run.played.get("result", {})
    if "unread_at_close" not in done:
        say(f"{lab_run.name}: this capture does not say what the client's program did at close.")
        return
    unread = done["unread_at_close"]
    nick = lab_run.clients[0]["nick"] if lab_run.clients else "the client"
    left = ("every byte the server had sent was read" if unread == 0 else
            f"{unread} byte(s) the server had sent were still unread in its receive buffer")
    say(f"{lab_run.name}: {nick}'s program called {done['close']}; {left}.")
    if "SO_LINGER" in done["close"]:
        say("    SO_LINGER with 0 s tells the kernel to throw the connection away at close(): "
             "it sends a RST instead of a FIN, whatever was read.")
    elif unread:
        say("    Those bytes can never be delivered now, so the kernel tells the server with a RST "
             "instead of a FIN (RFC 2525, \"data lost\"), although the program only called close().")
    else:
        say("    Nothing was left unread, so close() sends a FIN.")


def byte_counts(lab_run: LabRun):
    """Per connection and direction: TCP payload bytes (retransmissions left out) next to
    the bytes of the chat lines they carried (UTF-8 text plus its newline)."""
    import pandas as pd

    df = lab_run.packets
    sent = df[(df["conn"] >= 0) & (df["len"] > 0) & ~df["step"].str.contains("retransmission")]
    payload = sent.groupby(["conn", "direction"])["len"].sum()
    lines = lab_run.analysis.lines_df()
    rows = []
    for (conn, direction), total in payload.items():
        towards = "to server" if direction == "originator" else "to client"
        mine = lines[(lines["conn"] == conn) & (lines["direction"] == towards)]
        chat_bytes = int(sum(len((text or "").encode("utf-8")) + 1 for text in mine["text"]))
        rows.append({"conn": conn, "nick": lab_run.nick(conn), "direction": towards,
                     "tcp_payload_bytes": int(total), "chat_line_bytes": chat_bytes,
                     "lines": len(mine)})
    return pd.DataFrame(rows)


def broadcasts(lab_run: LabRun):
    """Each chat message a client sent: its frame, and how many clients it reached."""
    import pandas as pd

    rows = [{"message": m.id, "frame": m.frame, "sender": m.sender, "text": m.text,
             "copies": len(m.deliveries), "recipients": ", ".join(str(d.recipient) for d in m.deliveries),
             "delivery_frames": [d.frame for d in m.deliveries]}
            for m in lab_run.analysis.messages if m.kind == "chat"]
    return pd.DataFrame(rows, columns=["message", "frame", "sender", "text", "copies", "recipients",
                                       "delivery_frames"])
