"""Wireshark's own view of a packet, through pyshark, safe inside Jupyter.

Our analysis explains packets in the lab's words; sometimes the point is to see
what *Wireshark* says, field by field.  pyshark runs tshark and talks to it with
asyncio, which clashes with the event loop a Jupyter kernel is already running
("This event loop is already running").  So :func:`packet_fields` runs pyshark in
a short-lived worker thread with an event loop of its own, closes the capture
(which ends tshark) before the thread returns, and hands back plain data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    layer: str  # eth, ip, tcp, ...
    name: str  # tcp.seq
    value: str  # 1
    showname: str  # Sequence Number: 1    (relative sequence number)


def packet_fields(
    capture: str | os.PathLike, frame: int, layers: tuple[str, ...] | None = None,
    decode_as: dict[str, str] | None = None,
) -> list[Field]:
    """Every field tshark decodes in packet number ``frame`` (1-based, as in Wireshark).

    ``layers`` keeps only those layers (e.g. ``("tcp",)``).  Raises ValueError if the
    capture has no such frame, FileNotFoundError if the file is missing.
    """
    if not os.path.exists(capture):
        raise FileNotFoundError(f"no such capture: {capture}")
    outcome: dict[str, object] = {}

    def work() -> None:
        import pyshark  # imported here: it is slow to import and only this needs it

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        reader = pyshark.FileCapture(  # -2: two passes, so fields that sum up the whole
            str(capture), display_filter=f"frame.number == {int(frame)}", eventloop=loop,  # connection
            decode_as=decode_as, keep_packets=False, custom_parameters=["-2"],  # are final
        )
        try:
            packets = list(reader)
            outcome["fields"] = [] if not packets else _fields_of(packets[0], layers)
            outcome["found"] = bool(packets)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error
        finally:
            try:
                reader.close()  # ends the tshark process
            except pyshark.capture.capture.TSharkCrashException:
                # In Jupyter the kernel's child watcher may reap tshark first: it is gone.
                # Forget it, or pyshark's __del__ tries to close it again on a closed loop.
                reader._running_processes.clear()
            loop.close()

    quiet = _DropUnknownChild()
    logging.getLogger("asyncio").addFilter(quiet)
    try:
        worker = threading.Thread(target=work, name="pyshark-worker")
        worker.start()
        worker.join()
    finally:
        logging.getLogger("asyncio").removeFilter(quiet)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    if not outcome.get("found"):
        raise ValueError(f"{capture} has no frame {frame}")
    return outcome["fields"]  # type: ignore[return-value]


class _DropUnknownChild(logging.Filter):
    """Hide asyncio's warning about a child that someone else (Jupyter) already reaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unknown child process pid")


def _fields_of(packet, layers: tuple[str, ...] | None) -> list[Field]:
    fields = []
    for layer in packet.layers:
        if layers and layer.layer_name not in layers:
            continue
        for name, value in layer._all_fields.items():
            if not name or name.startswith("_"):
                continue
            showname = getattr(value, "showname", None) or f"{name}: {value}"
            fields.append(Field(layer.layer_name, name, str(getattr(value, "show", value)), showname))
    return fields


def format_fields(fields: list[Field]) -> str:
    """The fields as an indented tree, one layer after another, like Wireshark's middle pane.

    A field sits under the one its name extends (``tcp.flags.ack`` under ``tcp.flags``,
    ``tcp.options.timestamp.tsval`` under ``tcp.options.timestamp``), as Wireshark nests them.
    """
    out, current = [], None
    for field in fields:
        if field.layer != current:
            current = field.layer
            out.append(current.upper())
        depth = max(field.name.count(".") - 1, 0) if field.name.startswith(f"{field.layer}.") else 0
        out.append("    " * (1 + depth) + field.showname)
    return "\n".join(out)


def tshark_children() -> list[int]:
    """PIDs of tshark processes this Python process started and has not reaped (Linux)."""
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parts = stat.read().rsplit(")", 1)
            command = parts[0].split("(", 1)[1]
            parent = parts[1].split()[1]
        except (OSError, IndexError):
            continue
        if parent == me and command.startswith("tshark"):
            found.append(int(pid))
    return found
