"""``tcpchatx demo``: a whole lab session in the terminal, then where to go next.

Three clients chat on a fresh server while the traffic is captured (live if this
user may, else in a rootless namespace, else the shipped reference capture); the
capture is annotated, a text ladder printed, and the annotated pcapng and the
figures are written to one folder.  Each step says what it is doing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .analysis import analyze, format_ladder, format_summary, write_annotated
from .capture import check_capture_mode
from .references import CAPTURES

STEPS = 6


class _Progress:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.started = time.monotonic()

    def step(self, number: int, text: str) -> None:
        self.say(f"[{number}/{STEPS}] {text}")

    def done(self, text: str) -> None:
        self.say(f"      {text} ({time.monotonic() - self.started:.1f} s so far)")


def run_demo(out_dir: str | Path = "out/demo", *, mode: str = "auto", backend: str = "auto",
             say: Callable[[str], None] = print) -> Path:
    """Run the demo; return the folder holding the capture and the figures."""
    from . import plots
    from .scenarios import run_scenario
    from .scenarios.staging import free_port
    from .sockstate import SocketStateSampler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = _Progress(say)

    progress.step(1, "Choosing how to capture...")
    check = check_capture_mode(backend)
    chosen = check.mode if mode == "auto" else mode
    progress.done(check.explain() if mode == "auto" else f"{mode} (as asked)")

    capture = out / "chat.pcapng"
    transitions = None
    if chosen == "reference":
        progress.step(2, "No capture rights here: using the shipped reference capture instead.")
        shutil.copyfile(CAPTURES / "chat.pcapng", capture)
        events = json.loads((CAPTURES / "chat.json").read_text())["events"]
        progress.done(f"copied {CAPTURES / 'chat.pcapng'}")
    else:
        progress.step(2, f"Server, three clients (alice, bob, carol) chatting, captured {chosen}...")
        port = free_port("127.0.0.1")
        sampler = SocketStateSampler([port]).start() if chosen == "live" else None
        try:
            run = run_scenario("chat", capture, mode=chosen, backend=backend, port=port)
        finally:
            if sampler is not None:
                sampler.stop()
        if sampler is not None:
            transitions = sampler.transitions_df()
        events = run.events
        progress.done(f"{run.capture.packets} packets captured, {run.capture.dropped or 0} dropped")

    progress.step(3, "Annotating: connections, close shapes, messages...")
    analysis = analyze(capture)
    say("")
    say(format_summary(analysis))
    say("")
    progress.done(f"{len(analysis.packets)} packets, {len(analysis.connections)} connections, "
                  f"{len(analysis.messages)} messages")

    progress.step(4, "The ladder: the first 40 packets (the whole one is in ladder.png):")
    say(format_ladder(analysis, max_packets=40))

    progress.step(5, "Writing the annotated capture and the figures...")
    annotated = write_annotated(analysis, out / "chat-annotated.pcapng")
    figures = {
        "ladder.png": plots.ladder(analysis, events=events, max_packets=60),
        "fanout.png": plots.fanout(analysis),
        "time-sequence.png": plots.time_sequence(analysis, analysis.connections[0]),
    }
    if transitions is not None and len(transitions):
        figures["socket-states.png"] = plots.socket_states(transitions, analysis)
    for name, figure in figures.items():
        plots.save(figure, out / name)
    progress.done(f"{annotated} and {', '.join(figures)} in {out}/")

    progress.step(6, "Where to go next:")
    say(f"""
  Notebooks:   .venv/bin/jupyter lab notebooks/        (start with 01_handshake.ipynb)
  Wireshark:   wireshark {annotated}
               (add the Comments column, or filter: frame.comment)
               with the chat dissector: tcpchatx dissector --install, then filter: tcpchatx
  Terminal:    tcpchatx annotate {capture}
               tcpchatx verify {capture}
  Chat live:   tcpchatx server   and in other terminals   tcpchatx client --nick alice
""")
    return out
