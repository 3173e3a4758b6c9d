"""The reference captures in ``captures/``: regenerate them, index them, compare them.

A student with no capture rights still finishes every notebook with these files.
One command rebuilds them all (``tcpchatx references``): each scenario is played
and captured live, annotated (packet comments tell the story in Wireshark), and
saved beside what the server did (``NAME.json``) and, where the kernel could be
watched, the sockets' TCP states (``NAME.sockstates.json``).  ``captures/README.md``
is written from the same analysis, so the packet numbers it cites are the files'.

Captures differ from run to run in ports, sequence numbers and times; what must
not differ is their *shape*.  :func:`fingerprint` keeps only that: each
connection's labels and its packets' directions, flags and phases, leaving out the
pure ACKs of the data phase, whose number depends on delayed-ACK timing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .analysis import Analysis, analyze, write_annotated
from .scenarios import SCENARIOS, run_scenario
from .scenarios.staging import free_port

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


UNSCALED = str.maketrans("", "", "TtWw")  # Zeek's scaled letters, out of a fingerprint


def fingerprint(analysis: Analysis) -> list[dict[str, Any]]:
    """The timing-independent shape of every connection in a capture.

    Per connection: its labels, and its packets as ``direction:flags:phase:step``
    with PSH left out (Linux sets it per send) and the data phase reduced to which
    side sent data, in turn: how lines are cut into segments and how often a pure
    ACK is sent depend on timing; the handshake and the close do not.  Zeek's history
    leaves out its scaled letters (``t``, ``w``): a loopback run may resend a segment
    now and then (a tail-loss probe), which is timing too.
    """
    table = analysis.packets_df()
    shapes = []
    for conn in analysis.connections:
        steps: list[str] = []
        for row in table[table["conn"] == conn.id].itertuples():
            if row.phase == "data":
                if row.len == 0:
                    continue  # a pure ACK
                step = f"{row.direction[0]}:data"
            else:
                flags = row.flags.replace("P", "")
                step = f"{row.direction[0]}:{flags}{'+data' if row.len else ''}:{row.phase}:{row.step}"
            if not steps or steps[-1] != step:
                steps.append(step)
        shapes.append({
            "close_kind": conn.close_kind, "conn_state": conn.conn_state,
            "history": conn.history.translate(UNSCALED), "active_closer": conn.active_closer, "steps": steps,
        })
    return shapes


def regenerate(
    out_dir: str | os.PathLike = CAPTURES, names: list[str] | None = None, *,
    backend: str = "auto", mode: str = "auto", progress: Callable[[str], None] = print,
) -> list[Path]:
    """Play and capture every scenario (or ``names``) into ``out_dir``; write the index."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = names or list(SCENARIOS)
    written = []
    for number, name in enumerate(names, start=1):
        progress(f"[{number}/{len(names)}] {name}: capturing...")
        written.append(_one(name, out, backend, mode))
    if names == list(SCENARIOS):
        from .lab.watch import OWN_SOCKETS, record_own_sockets  # the lab builds on this module

        progress("own sockets (notebook 01's socket calls): capturing...")
        written += record_own_sockets(out / OWN_SOCKETS.name, _own_sockets_mode(mode, backend), backend)
        (out / "README.md").write_text(index(out))
        progress(f"Wrote {out / 'README.md'}")
    return written


def _own_sockets_mode(mode: str, backend: str) -> str:
    """"live" or "rootless": ``mode``, or for "auto" the one the scenarios would use."""
    if mode != "auto":
        return mode
    from .capture import live_capture_available

    return "live" if live_capture_available(backend)[0] else "rootless"


def _one(name: str, out: Path, backend: str, mode: str) -> Path:
    from .sockstate import SocketStateSampler

    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / f"{name}.pcapng"
        port = free_port("127.0.0.1")
        sampler = None
        if mode != "rootless":
            sampler = SocketStateSampler([port]).start()
        try:
            run = run_scenario(name, raw, mode=mode, backend=backend, port=port)
        finally:
            if sampler is not None:
                sampler.stop()
        final = out / f"{name}.pcapng"
        write_annotated(analyze(raw), final)
        final.chmod(0o644)  # a shared lab file: readable by every student account
    (out / f"{name}.json").write_text(json.dumps(run.played, indent=1) + "\n")
    states = out / f"{name}.sockstates.json"
    if sampler is not None and run.mode == "live" and sampler.transitions:
        states.write_text(sampler.transitions_df().to_json(orient="records", indent=1) + "\n")
    else:
        states.unlink(missing_ok=True)
    return final


def index(out: Path) -> str:
    """captures/README.md: what each capture shows and which packets to look at."""
    lines = [
        "# Reference captures",
        "",
        "One annotated pcapng per scenario, made by `tcpchatx references` (which rebuilds them",
        "all). Open one in Wireshark and add the *Comments* column, or filter `frame.comment`:",
        "every packet's comment says its step and what it means. With the dissector installed",
        "(`tcpchatx dissector --install`) the chat lines are decoded too (`tcpchatx.kind`).",
        "Beside each capture: `NAME.json` (what the server did, with wall-clock times) and,",
        "where recorded, `NAME.sockstates.json` (the kernel's TCP states of each socket).",
        "`own-sockets/` holds notebook 01's own socket calls (`socket, bind, listen`, `connect`,",
        "`accept`), captured one call at a time, for notebook 01 to show in reference mode.",
        "",
        "| capture | what it shows | close | packets to look at |",
        "|---|---|---|---|",
    ]
    for name, scenario in SCENARIOS.items():
        path = out / f"{name}.pcapng"
        if not path.exists():
            continue
        analysis = analyze(path)
        closes = ", ".join(sorted({f"{c.close_kind} ({c.conn_state})" for c in analysis.connections}))
        lines.append(f"| `{path.name}` | {scenario.summary} {scenario.look_at} | {closes} "
                     f"| {_landmarks(analysis)} |")
    lines += ["", "Regenerate: `tcpchatx references` (needs capture rights: root, the wireshark",
              "group, or the rootless mode: `tcpchatx references --mode rootless`).", ""]
    return "\n".join(lines)


def _landmarks(analysis: Analysis) -> str:
    """Frame numbers of the first connection's handshake, first data and teardown."""
    if not analysis.connections:
        return ""
    table = analysis.packets_df()
    first = table[table["conn"] == analysis.connections[0].id]
    by_phase = {phase: rows["frame"].tolist() for phase, rows in first.groupby("phase")}
    parts = []
    for phase, label in (("handshake", "handshake"), ("data", "first data"),
                         ("teardown", "teardown"), ("reset", "reset")):
        frames = by_phase.get(phase)
        if frames:
            shown = frames[:1] if phase == "data" else frames
            parts.append(f"{label} {', '.join(map(str, shown))}")
    return "; ".join(parts)
