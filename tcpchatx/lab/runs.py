"""A :class:`LabRun`: one scenario or the exercise, played and captured (or opened from a
file), with its analysis and what the server did; and the calls that make one.

:func:`run` and :func:`run_exercise` play and capture in live or rootless mode, or open
the shipped reference capture in reference mode; :func:`open_capture` opens any file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..analysis import Analysis, analyze
from ..capture import CaptureError, LiveCapture, run_rootless
from ..references import CAPTURES
from ..scenarios import DEFAULT_HOST, ROOTLESS_PORT, get_scenario
from ..scenarios.staging import StagingError, free_port
from .mode import MODES, current_mode, out_dir
from .playing import CLOSE_VARIANTS, play_and_sample
from .printing import _shown, say
from .session import current_session
from .socket_states import _sockstates_frame


@dataclass
class LabRun:
    """A played (or reference) scenario: its capture, its analysis and what the server did."""

    name: str
    mode: str  # "live", "rootless" or "reference"
    path: Path
    played: dict[str, Any]  # what tcpchatx.scenarios.play() returned (captures/NAME.json)
    analysis: Analysis
    requested: dict[str, Any] = field(default_factory=dict)  # the parameters asked for
    sockstates: Any = None  # a transitions_df()-shaped DataFrame, or None
    sockstates_source: str | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.played.get("events", [])

    @property
    def clients(self) -> list[dict[str, Any]]:
        return self.played.get("clients", [])

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the capture was really made with."""
        return self.played.get("params", {})

    @property
    def port(self) -> int | None:
        server = self.played.get("server")
        return server[1] if server else None

    @cached_property
    def packets(self):
        """``analysis.packets_df()``, computed once."""
        return self.analysis.packets_df()

    def frames(self, conn: int | None = None, direction: str | None = None, step: str | None = None,
               phase: str | None = None, flags: str | None = None, data: bool | None = None) -> list[int]:
        """Frame numbers of the packets that match every condition given.

        ``direction``: "originator" (the client) or "responder" (the server);
        ``step``: a step name as the table shows it ("SYN", "ACK of FIN", ...);
        ``flags``: letters that must all be set ("F", "SA"); ``data``: payload or not.
        """
        df = self.packets
        keep = df["conn"] >= 0
        if conn is not None:
            keep &= df["conn"] == conn
        if direction is not None:
            keep &= df["direction"] == direction
        if step is not None:
            keep &= df["step"] == step
        if phase is not None:
            keep &= df["phase"] == phase
        if flags is not None:
            for letter in flags:
                keep &= df["flags"].str.contains(letter, regex=False)
        if data is not None:
            keep &= (df["len"] > 0) == data
        return df.loc[keep, "frame"].tolist()

    def frame(self, **conditions: Any) -> int:
        """The first frame matching ``conditions`` (see :meth:`frames`); ValueError if none."""
        found = self.frames(**conditions)
        if not found:
            raise ValueError(f"no packet in {_shown(self.path)} matches {conditions}")
        return found[0]

    def row(self, frame: int):
        """Packet number ``frame`` as a row of :attr:`packets` (seq, ack, len, step, note...)."""
        return self.packets.iloc[frame - 1]

    def nick(self, conn: int) -> str | None:
        return self.analysis.chat.nick_of_conn.get(conn)

    def __repr__(self) -> str:
        a = self.analysis
        return (f"<LabRun {self.name} ({self.mode}): {_shown(self.path)}, {len(a)} packets, "
                f"{len(a.connections)} connection(s)>")


def run(name: str, *, mode: str | None = None, sample_sockets: bool = False,
        backend: str | None = None, port: int = 0, **params: Any) -> LabRun:
    """Play scenario ``name`` (see ``tcpchatx.scenarios.SCENARIOS``) and analyse its capture.

    Live and rootless modes capture into :func:`out_dir`; reference mode opens
    ``captures/NAME.pcapng`` and its ``NAME.json``, which were made with the default
    parameters: asking for others there prints what is shown instead.
    ``sample_sockets=True`` also records the kernel's TCP state of every socket.
    """
    scenario = get_scenario(name)
    asked = scenario.check_params(params)
    return _run(name, "scenario", asked, mode, sample_sockets, backend, port)


def run_exercise(clients: int = 3, messages: int = 2, nagle: bool = True, close_variant: str = "quit",
                 *, port: int = 0, backend: str = "auto", mode: str | None = None,
                 sample_sockets: bool = False) -> LabRun:
    """The exercise of notebook 04: ``clients`` chat ``messages`` rounds, then close.

    ``close_variant`` is one of :data:`CLOSE_VARIANTS`.  With the defaults this is
    exactly the ``chat`` scenario, whose reference capture reference mode opens.
    """
    if close_variant not in CLOSE_VARIANTS:
        raise ValueError(f"close_variant must be one of {', '.join(CLOSE_VARIANTS)}, not {close_variant!r}")
    if clients < 2:
        raise ValueError("the exercise needs at least 2 clients")
    asked = {"clients": clients, "messages": messages, "nagle": nagle, "close_variant": close_variant}
    return _run("exercise", "exercise", asked, mode, sample_sockets, backend, port)


def _run(name: str, kind: str, asked: dict[str, Any], mode: str | None, sample: bool,
         backend: str | None, port: int) -> LabRun:
    mode = mode or current_mode()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    backend = backend or current_session().backend
    if mode == "reference":
        return _reference(name, kind, asked, sample)
    try:
        return _capture(name, kind, asked, mode, sample, backend, port)
    except (StagingError, CaptureError) as error:  # rootless: the namespace reports it as text
        if "StagingError" not in f"{type(error).__name__}: {error}":
            raise
        say(f"{name}: the staging missed its timing (a busy machine?); playing it once more...")
    return _capture(name, kind, asked, mode, sample, backend, port)


def _capture(name: str, kind: str, asked: dict[str, Any], mode: str, sample: bool,
             backend: str, port: int) -> LabRun:
    out = out_dir() / f"{name}.pcapng"
    where = "live on loopback" if mode == "live" else "in a private network namespace"
    say(f"{name}: playing and capturing {where}{' (and sampling socket states)' if sample else ''}...")
    started = time.monotonic()
    if mode == "live":
        port = port or free_port(DEFAULT_HOST)
        with LiveCapture(port, out, backend=backend) as capture:
            outcome = play_and_sample(kind, name, DEFAULT_HOST, port, asked, sample)
        assert capture.result is not None
        path = capture.result.path
    else:
        port = port or ROOTLESS_PORT
        done = run_rootless("tcpchatx.lab.playing:play_and_sample", out, port=port, backend=backend,
                            kwargs={"kind": kind, "name": name, "host": DEFAULT_HOST, "port": port,
                                    "params": asked, "sample": sample})
        outcome, path = done.value, done.capture.path
    say(f"{name}: analysing {_shown(path)}...")
    lab_run = LabRun(name, mode, path, outcome["played"], analyze(path), asked)
    if sample:
        lab_run.sockstates = _sockstates_frame(outcome["sockstates"] or [])
        lab_run.sockstates_source = ("sampled from /proc/net/tcp while it played" if mode == "live" else
                                     "sampled from /proc/net/tcp inside the namespace while it played")
    say(f"{name}: {_digest(lab_run)} ({time.monotonic() - started:.1f} s)")
    return lab_run


def _reference(name: str, kind: str, asked: dict[str, Any], sample: bool) -> LabRun:
    file_name = "chat" if kind == "exercise" else name
    path = CAPTURES / f"{file_name}.pcapng"
    played_path = path.with_suffix(".json")
    if not path.exists() or not played_path.exists():
        raise FileNotFoundError(f"the reference capture {path} (or its .json) is missing; "
                                "`tcpchatx references` makes them (it needs capture rights)")
    played = json.loads(played_path.read_text())
    made_with = dict(played.get("params", {}))
    if kind == "exercise":
        made_with["close_variant"] = "quit"  # the chat story closes with /quit
    say(f"{name}: opening the reference capture {_shown(path)}...")
    different = {k: v for k, v in asked.items() if made_with.get(k, v) != v}
    if different:
        say(f"{name}: NOTE: in reference mode nothing is captured, so your parameters "
             f"({_params_text(different)}) cannot be played; showing the reference capture, made with "
             f"{_params_text(made_with)}.")
    lab_run = LabRun(name, "reference", path, played, analyze(path), asked)
    if sample:
        states = path.with_name(f"{file_name}.sockstates.json")
        if states.exists():
            lab_run.sockstates = _sockstates_frame(json.loads(states.read_text()))
            lab_run.sockstates_source = f"recorded with the reference capture ({_shown(states)})"
        else:
            say(f"{name}: no socket states were recorded with this reference capture.")
    say(f"{name}: {_digest(lab_run)}")
    return lab_run


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"


def _digest(lab_run: LabRun) -> str:
    a = lab_run.analysis
    closes = sorted({c.close_kind for c in a.connections})
    return (f"{len(a)} packets, {len(a.connections)} connection(s) ({', '.join(closes) or 'none'}), "
            f"{len(a.messages)} chat message(s)")


def reference_capture(name: str) -> Path:
    """The shipped capture of scenario ``name`` (``captures/NAME.pcapng``)."""
    get_scenario(name)
    return CAPTURES / f"{name}.pcapng"


def open_capture(path: str | os.PathLike) -> LabRun:
    """Any capture file, analysed; with what the server did if ``NAME.json`` lies beside it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such capture: {path}")
    beside = path.with_suffix(".json")
    played = json.loads(beside.read_text()) if beside.exists() else {}
    say(f"opening {_shown(path)}" + (f" and what the server did ({beside.name})" if played else "") + "...")
    mode = "reference" if path.resolve().parent == CAPTURES.resolve() else "file"
    lab_run = LabRun(path.stem, mode, path, played, analyze(path))
    say(f"{path.stem}: {_digest(lab_run)}")
    return lab_run
