"""Helpers for the notebooks: one call per thing a lab cell does.

    from tcpchatx import lab
    mode = lab.capture_mode()            # live, rootless or reference, and why
    run = lab.run("three-way")           # play + capture (or open the reference capture)
    lab.show_packets(run, phase="teardown")
    lab.check("a FIN consumes one sequence number", ack == seq + 1, "packet 10 ...")

Theory of operation
-------------------
*Modes.*  A notebook works the same in three modes (:func:`capture_mode` picks one
and says why): **live** captures this machine's loopback; **rootless** plays each
scenario inside a private user + network namespace, where an ordinary user may
capture (:func:`tcpchatx.capture.run_rootless`); **reference** opens the captures
shipped in ``captures/``, made with each scenario's default parameters.  The
environment variable ``TCPCHATX_CAPTURE_MODE`` (or ``capture_mode(mode)``) forces
one, which is how the tests play every notebook in every mode.

*Where files go.*  New captures go to ``out/`` under the notebook's directory (or
``TCPCHATX_OUT``), never into ``captures/``: the reference files stay as shipped.

*Quiet threads.*  The chat server prints nothing; the capture backend and the
socket-state sampler run threads that are stopped and joined before any function
here returns, so nothing prints into a later cell.  Progress is one line per step.

*Socket states.*  With ``sample_sockets=True`` a :class:`~tcpchatx.sockstate.
SocketStateSampler` watches the kernel's TCP states while the scenario plays: in
live mode in this process, in rootless mode *inside* the namespace (the only place
those sockets exist), and in reference mode the states come from the
``NAME.sockstates.json`` shipped beside the capture, when there is one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .analysis import Analysis, analyze
from .capture import (
    CaptureError,
    LiveCapture,
    live_capture_available,
    rootless_available,
    run_rootless,
)
from .references import CAPTURES
from .scenarios import DEFAULT_HOST, ROOTLESS_PORT, get_scenario, play
from .scenarios.run import play_story
from .scenarios.staging import StagingError, free_port
from .scenarios.stories import Stage, join_and_chat

MODE_ENV = "TCPCHATX_CAPTURE_MODE"
OUT_ENV = "TCPCHATX_OUT"
MODES = ("live", "rootless", "reference")
#: What each mode means, in the words the first cell of every notebook prints.
MODE_MEANINGS = {
    "live": "this notebook captures its own packets on the loopback interface",
    "rootless": "each scenario runs inside a private network namespace, where you may capture "
                "without any rights; the packets are your own",
    "reference": "the notebooks open the reference captures shipped in captures/, "
                 "recorded with each scenario's default parameters",
}

_session: dict[str, Any] = {"mode": None, "backend": "auto"}


# --------------------------------------------------------------------------- the mode


def capture_mode(mode: str | None = None, backend: str = "auto", quiet: bool = False) -> str:
    """Choose how this notebook gets its packets; print which mode and why; return it.

    ``mode`` (or the environment variable ``TCPCHATX_CAPTURE_MODE``) asks for
    ``"live"``, ``"rootless"`` or ``"reference"``; without either, the best mode that
    works here is chosen.  A mode that was asked for but cannot work here is
    refused with its reason, and the best available one is used instead.
    """
    asked, source = mode, "capture_mode(mode=...)"
    if asked is None and os.environ.get(MODE_ENV):
        asked, source = os.environ[MODE_ENV].strip().lower(), f"{MODE_ENV}={os.environ[MODE_ENV]}"
    if asked is not None and asked not in MODES:
        raise ValueError(f"the capture mode must be one of {', '.join(MODES)}, not {asked!r} "
                         f"(from {source})")
    lines: list[str] = []
    if asked == "reference":  # no tools needed, nothing to probe
        chosen, why = "reference", f"you asked for it ({source})"
    else:
        live_ok, live_why = _live_check(backend)
        rootless_ok, rootless_why = rootless_available()
        possible = {"live": (live_ok, live_why), "rootless": (rootless_ok, rootless_why)}
        if asked is not None and possible[asked][0]:
            chosen, why = asked, f"you asked for it ({source}); {possible[asked][1]}"
        else:
            if asked is not None:
                lines.append(f"You asked for {asked} capture ({source}), but it cannot work here: "
                             f"{possible[asked][1]}.")
            if live_ok:
                chosen, why = "live", live_why
            elif rootless_ok:
                chosen, why = "rootless", (f"no live capture here ({live_why}), "
                                           f"but {rootless_why}")
            else:
                chosen, why = "reference", (f"no live capture ({live_why}) and no rootless "
                                            f"capture ({rootless_why}); docs/capture.md says how "
                                            "to enable one")
    _session.update(mode=chosen, backend=backend)
    lines.append(f"Capture mode: {chosen} — {MODE_MEANINGS[chosen]}.")
    lines.append(f"Why: {why}.")
    if not quiet:
        print("\n".join(lines))
    return chosen


def _live_check(backend: str) -> tuple[bool, str]:
    try:
        return live_capture_available(backend)
    except (CaptureError, OSError) as exc:
        return False, str(exc)


def current_mode() -> str:
    """The mode chosen by :func:`capture_mode` (choosing one quietly if not done yet)."""
    return _session["mode"] or capture_mode(quiet=True)


def out_dir() -> Path:
    """Where new captures go: ``TCPCHATX_OUT``, else ``out/`` here, else a temporary directory."""
    wanted = Path(os.environ.get(OUT_ENV) or "out").absolute()
    if wanted.resolve() == CAPTURES.resolve():
        raise ValueError(f"{wanted} holds the reference captures; choose another output directory")
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        if os.access(wanted, os.W_OK):
            return wanted
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"tcpchatx-lab-{os.getuid() if hasattr(os, 'getuid') else 0}"
    fallback.mkdir(exist_ok=True)
    return fallback


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if len(relative) < len(str(path)) else str(path)


def _say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- a run


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
    backend = backend or _session["backend"]
    if mode == "reference":
        return _reference(name, kind, asked, sample)
    try:
        return _capture(name, kind, asked, mode, sample, backend, port)
    except (StagingError, CaptureError) as error:  # rootless: the namespace reports it as text
        if "StagingError" not in f"{type(error).__name__}: {error}":
            raise
        _say(f"{name}: the staging missed its timing (a busy machine?); playing it once more...")
    return _capture(name, kind, asked, mode, sample, backend, port)


def _capture(name: str, kind: str, asked: dict[str, Any], mode: str, sample: bool,
             backend: str, port: int) -> LabRun:
    out = out_dir() / f"{name}.pcapng"
    where = "live on loopback" if mode == "live" else "in a private network namespace"
    _say(f"{name}: playing and capturing {where}{' (and sampling socket states)' if sample else ''}...")
    started = time.monotonic()
    if mode == "live":
        port = port or free_port(DEFAULT_HOST)
        with LiveCapture(port, out, backend=backend) as capture:
            outcome = play_and_sample(kind, name, DEFAULT_HOST, port, asked, sample)
        assert capture.result is not None
        path = capture.result.path
    else:
        port = port or ROOTLESS_PORT
        done = run_rootless("tcpchatx.lab:play_and_sample", out, port=port, backend=backend,
                            kwargs={"kind": kind, "name": name, "host": DEFAULT_HOST, "port": port,
                                    "params": asked, "sample": sample})
        outcome, path = done.value, done.capture.path
    _say(f"{name}: analysing {_shown(path)}...")
    lab_run = LabRun(name, mode, path, outcome["played"], analyze(path), asked)
    if sample:
        lab_run.sockstates = _sockstates_frame(outcome["sockstates"] or [])
        lab_run.sockstates_source = ("sampled from /proc/net/tcp while it played" if mode == "live" else
                                     "sampled from /proc/net/tcp inside the namespace while it played")
    _say(f"{name}: {_digest(lab_run)} ({time.monotonic() - started:.1f} s)")
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
    _say(f"{name}: opening the reference capture {_shown(path)}...")
    different = {k: v for k, v in asked.items() if made_with.get(k, v) != v}
    if different:
        _say(f"{name}: NOTE: in reference mode nothing is captured, so your parameters "
             f"({_params_text(different)}) cannot be played; showing the reference capture, made with "
             f"{_params_text(made_with)}.")
    lab_run = LabRun(name, "reference", path, played, analyze(path), asked)
    if sample:
        states = path.with_name(f"{file_name}.sockstates.json")
        if states.exists():
            lab_run.sockstates = _sockstates_frame(json.loads(states.read_text()))
            lab_run.sockstates_source = f"recorded with the reference capture ({_shown(states)})"
        else:
            _say(f"{name}: no socket states were recorded with this reference capture.")
    _say(f"{name}: {_digest(lab_run)}")
    return lab_run


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"


def _digest(lab_run: LabRun) -> str:
    a = lab_run.analysis
    closes = sorted({c.close_kind for c in a.connections})
    return (f"{len(a)} packets, {len(a.connections)} connection(s) ({', '.join(closes) or 'none'}), "
            f"{len(a.messages)} chat message(s)")


def _sockstates_frame(records: list[dict[str, Any]]):
    """Socket-state records as a ``transitions_df()`` table, from either shape we write:
    ``{local, local_port, remote, remote_port, time, state}`` or ``{local: [h, p], remote, wall, state}``."""
    import pandas as pd

    from .sockstate import STATE_MEANINGS

    rows = []
    for r in records:
        local, remote = r["local"], r["remote"]
        if isinstance(local, (list, tuple)):
            local, local_port = local[0], local[1]
            remote, remote_port = remote[0], remote[1]
        else:
            local_port, remote_port = r["local_port"], r["remote_port"]
        rows.append({"local": local, "local_port": int(local_port), "remote": remote,
                     "remote_port": int(remote_port), "role": r.get("role"),
                     "time": float(r.get("time", r.get("wall", 0.0))), "state": r["state"],
                     "meaning": r.get("meaning") or STATE_MEANINGS.get(r["state"], "")})
    columns = ["local", "local_port", "remote", "remote_port", "role", "time", "state", "meaning"]
    return pd.DataFrame(rows, columns=columns).sort_values("time", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- playing


def play_and_sample(kind: str, name: str, host: str, port: int, params: dict[str, Any],
                    sample: bool = False) -> dict[str, Any]:
    """Play a scenario (``kind="scenario"``) or the exercise, sampling socket states if asked.

    Called in this process (live mode) or inside the namespace (rootless mode, by
    import path), so that the sampler sees the sockets wherever they live.
    Returns ``{"played": ..., "sockstates": [records] or None}`` (JSON-able).
    """
    sampler = None
    if sample:
        from .sockstate import SocketStateSampler

        sampler = SocketStateSampler([port]).start()
    try:
        if kind == "exercise":
            played = play_exercise(host, port, **params)
        else:
            played = play(name, host, port, **params)
    finally:
        if sampler is not None:
            sampler.stop()
    states = None
    if sampler is not None:
        states = json.loads(sampler.transitions_df().to_json(orient="records"))
    return {"played": played, "sockstates": states}


#: How the exercise's clients leave, and what that looks like on the wire.
CLOSE_VARIANTS = {
    "quit": "each client sends /quit: the server closes first (four-way close; the server holds TIME_WAIT)",
    "close": "each client calls close(): the client closes first (three-way or four-way, by timing)",
    "abort": "each client aborts (SO_LINGER 0, close()): a RST, no FIN, no TIME_WAIT",
}


def exercise_story(stage: Stage, clients: int = 3, messages: int = 2, nagle: bool = True,
                   close_variant: str = "quit") -> dict:
    """The chat scenario's story, with a choice of how the clients leave.

    Like ``stories.chat``: everyone joins, each client says ``messages`` lines, each
    sent once every other client has received the previous one.  Then the clients
    leave one after the other; before leaving, each reads the ``left`` notices of
    those who went before (unread data would turn a close into a RST).
    """
    people, nicks, said = join_and_chat(stage, clients, messages, nagle)
    gone: list[str] = []
    for person, nick in zip(people, nicks):
        if close_variant == "quit":
            stage.quit_four_way(person)  # reads every notice until the server's FIN
        else:
            for leaver in gone:
                person.receive_until(lambda line, leaver=leaver: line.text.startswith(f"{leaver} left"))
            client_id = stage.client_id(person)
            if close_variant == "abort":
                person.abort()
            else:
                person.close()
            stage.gone(client_id)
        gone.append(nick)
    return {"said": said, "close_variant": close_variant}


def play_exercise(host: str = DEFAULT_HOST, port: int = 0, **params: Any) -> dict[str, Any]:
    """:func:`exercise_story` played like :func:`tcpchatx.scenarios.play` plays a scenario."""
    return play_story(exercise_story, "exercise", host, port, params)


# --------------------------------------------------------------------------- watching plain sockets


@dataclass
class Watch:
    """What a :func:`watch` block put on the wire (``run`` is None if it could not be captured)."""

    label: str
    port: int
    run: LabRun | None = None

    @property
    def packets(self) -> int | None:
        return None if self.run is None else len(self.run.analysis)


def pick_port() -> int:
    """A loopback port nobody listens on right now, for your own sockets."""
    return free_port(DEFAULT_HOST)


@contextmanager
def watch(port: int, label: str, mode: str | None = None) -> Iterator[Watch]:
    """Capture ``tcp port PORT`` while the ``with`` block runs; say how many packets it sent.

    Only in live mode: in rootless mode your notebook's sockets live outside the
    namespace, and in reference mode nothing is captured; the block still runs
    (the sockets are real), and the message says so.
    """
    mode = mode or current_mode()
    seen = Watch(label, port)
    if mode != "live":
        yield seen
        _say(f"{label}: done, but not captured (in {mode} mode only the scenarios are captured, "
             "not this notebook's own sockets).")
        return
    slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")
    with LiveCapture(port, out_dir() / f"watch-{slug}.pcapng", backend=_session["backend"]) as capture:
        yield seen
    assert capture.result is not None
    analysis = analyze(capture.result.path)
    seen.run = LabRun(label, "live", capture.result.path, {"server": [DEFAULT_HOST, port]}, analysis)
    steps = ", ".join(f"{s}" for s in seen.run.packets["step"].tolist())
    _say(f"{label}: {len(analysis)} packet(s) on the wire" + (f": {steps}" if steps else "") + ".")


def handshake_run(connect: Watch) -> LabRun:
    """The capture to study a handshake in: the one ``connect`` watched (live mode), else the
    ``chat`` scenario, whose first connection opens the same way."""
    if connect.run is not None and len(connect.run.analysis.connections):
        _say(f"Using your own handshake: packets 1-3 of {_shown(connect.run.path)}.")
        return connect.run
    _say("Your connect() was not captured here, so we look at the chat scenario instead: "
         "its first connection (alice's) opens with the same three packets.")
    return run("chat")


# --------------------------------------------------------------------------- showing


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
        _say(f"{lab_run.label}: nothing was captured in this mode, so there is nothing to show.")
        return None
    table = packet_table(lab_run, frames, conn, phase, chat)

    def colour(row):
        return [f"background-color: {PHASE_BACKGROUNDS.get(row['phase'], '#ffffff')}"] * len(row)

    return (table.style.apply(colour, axis=1).hide(axis="index")
            .set_properties(subset=["note"] + (["chat"] if chat else []), **{"text-align": "left"}))


def show_connections(lab_run: LabRun):
    """One row per connection: who, how it closed, who closed first, Zeek's labels."""
    df = lab_run.analysis.connections_df()
    columns = ["conn", "nick", "client_port", "first_frame", "last_frame", "close_kind",
               "active_closer", "conn_state", "history"]
    return df[columns]


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


def time_wait_holders(lab_run: LabRun) -> list[str]:
    """Which sockets were seen in TIME_WAIT, from the run's socket states ([] if none)."""
    if lab_run.sockstates is None:
        return []
    holders = []
    names = {tuple(c["address"]): c["nick"] for c in lab_run.clients}
    for (local, local_port, remote, remote_port), rows in lab_run.sockstates.groupby(
            ["local", "local_port", "remote", "remote_port"], sort=False):
        if "TIME_WAIT" not in set(rows["state"]):
            continue
        client = names.get((local, local_port))
        if client is not None:
            holders.append(f"the client ({client}'s socket :{local_port})")
        else:
            peer = names.get((remote, remote_port), f":{remote_port}")
            holders.append(f"the server (its socket :{local_port} to {peer})")
    return holders


def time_wait(lab_run: LabRun) -> None:
    """Print which sockets ended in TIME_WAIT, and where the socket states came from."""
    if lab_run.sockstates is None:
        _say(f"{lab_run.name}: no socket states here (run with sample_sockets=True; in reference "
             "mode they come from NAME.sockstates.json, when there is one).")
        return
    holders = time_wait_holders(lab_run)
    for who in holders:
        _say(f"{lab_run.name}: TIME_WAIT held by {who}")
    if not holders:
        _say(f"{lab_run.name}: no socket was seen in TIME_WAIT.")
    _say(f"(socket states {lab_run.sockstates_source})")


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


def socket_states_figure(lab_run: LabRun):
    """The socket-state timeline of ``lab_run`` (a Figure), or None with the reason printed."""
    if lab_run.sockstates is None or lab_run.sockstates.empty:
        _say(f"{lab_run.name}: no socket states to draw (run with sample_sockets=True; in reference "
             "mode they come from NAME.sockstates.json, when there is one).")
        return None
    from .plots import socket_states

    return socket_states(lab_run.sockstates, lab_run.analysis)


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
    _say(f"opening {_shown(path)}" + (f" and what the server did ({beside.name})" if played else "") + "...")
    mode = "reference" if path.resolve().parent == CAPTURES.resolve() else "file"
    lab_run = LabRun(path.stem, mode, path, played, analyze(path))
    _say(f"{path.stem}: {_digest(lab_run)}")
    return lab_run


def packet_comments(path: str | os.PathLike) -> dict[int, str]:
    """The packet comments stored in a pcapng file (read by tshark): frame -> comment."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    if tshark is None:
        raise FileNotFoundError("tshark is not installed (Debian/Ubuntu: apt install tshark)")
    done = subprocess.run([tshark, "-r", os.fspath(path), "-T", "fields", "-e", "frame.number",
                           "-e", "frame.comment"], capture_output=True, text=True, check=True)
    comments = {}
    for line in done.stdout.splitlines():
        number, _, comment = line.partition("\t")
        if comment:
            comments[int(number)] = comment.replace("\\n", "\n")
    return comments


# --------------------------------------------------------------------------- self-checks


_checks: list[tuple[str, str]] = []  # (name, "PASS"/"FAIL"/"SKIP"), in the order they ran


def check(name: str, condition: bool | None, explanation: str) -> None:
    """Print one self-check: ``PASS``, ``FAIL`` or (``condition`` None) ``SKIP``, and why."""
    verdict = "SKIP" if condition is None else "PASS" if condition else "FAIL"
    _checks.append((name, verdict))
    mark = {"PASS": "✔", "FAIL": "✘", "SKIP": "–"}[verdict]
    print(f"{mark} {verdict}: {name}\n    {explanation}", flush=True)


def check_counts() -> dict[str, int]:
    """How many self-checks passed, failed and were skipped so far."""
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for _, verdict in _checks:
        counts[verdict] += 1
    return counts


def check_summary() -> None:
    """Print how many self-checks passed, failed and were skipped so far."""
    counts = check_counts()
    print(f"Self-checks: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped.")


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
    refused = {c.id for c in lab_run.analysis.connections if c.close_kind == "refused"}
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


def wireshark_fields(path: str | os.PathLike, frame: int, layers: tuple[str, ...] = ("tcp",)) -> str:
    """Wireshark's own decoding of one packet (through tshark), as an indented tree.

    pyshark may leave a capture object whose ``__del__`` tries to stop tshark again on
    an event loop that is already closed; that complaint (and the coroutine it never
    awaited) is dropped here, so it cannot land in this cell's or a later cell's stderr.
    """
    import gc
    import sys
    import warnings

    from .wireshark_view import format_fields, packet_fields

    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if getattr(unraisable.object, "__qualname__", "") != "Capture.__del__":
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="coroutine 'Capture.close_async' was never awaited")
            fields = packet_fields(path, frame, layers=layers)
            gc.collect()  # pyshark's leftovers go now, while the hook is in place
    finally:
        sys.unraisablehook = previous
    return format_fields(fields)


def _figures_inline() -> None:
    """In a Jupyter kernel, show matplotlib Figures (what tcpchatx.plots returns) as images.

    The plots never touch pyplot, so nothing else registers the image formatter that
    ``%matplotlib inline`` would; this does, once, when a notebook imports the lab.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight")


_figures_inline()
