"""Play a story, and capture it: ``play`` and ``run_scenario``.

``play`` starts a fresh ChatServer, plays the story, closes everything (even when
the story fails), waits until every close has finished on the wire, and returns a
JSON-able dict: the server's timeline, the clients, the parameters, staging notes.
``run_scenario`` wraps ``play`` in a capture: live on this machine's loopback, or
rootless inside a private network namespace (where ``play_for_rootless`` is called).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..capture import CaptureError, CaptureResult, LiveCapture, check_capture_mode, run_rootless
from ..room import RoomConfig
from ..server import ChatServer
from ..timeline import TimelineEvent
from .catalog import get_scenario
from .staging import Gates, StagingError, free_port, wait_settled
from .stories import Stage

DEFAULT_HOST = "127.0.0.1"
ROOTLESS_PORT = 25000  # every port is free in a private namespace
REFERENCE_DIR = Path("captures")
MODES = ("auto", "live", "rootless")
#: Stories send several lines at once; flood control is not what they are about.
SCENARIO_ROOM = RoomConfig(flood_burst=1000, flood_rate=1000.0)


class CaptureUnavailableError(CaptureError):
    """Nothing can be captured here: neither live nor in a rootless namespace."""


def reference_capture(name: str) -> Path:
    """Where the shipped reference capture of a scenario lives."""
    return REFERENCE_DIR / f"{name}.pcapng"


def _plain(event: TimelineEvent) -> dict[str, Any]:
    """A timeline event as JSON-able data (tuples become lists)."""
    data = event.as_dict()
    data["peer"] = list(event.peer) if event.peer is not None else None
    data["recipients"] = list(event.recipients)
    return data


def play(name: str, host: str = DEFAULT_HOST, port: int = 0, **params: Any) -> dict[str, Any]:
    """Play scenario ``name`` against a fresh ChatServer on ``host:port`` (0: any free port).

    Returns ``{"scenario", "params", "server", "clients", "events", "notes", "result",
    "started", "finished"}``; ``events`` is the server's timeline (wall-clock times,
    to line up with packet timestamps), ``clients`` each client's ``nick`` and
    ``address`` in the order they connected.
    """
    scenario = get_scenario(name)
    return play_story(scenario.story, name, host, port, scenario.check_params(params),
                      needs_server=scenario.needs_server)


def play_story(story, name: str, host: str, port: int, params: dict[str, Any], *,
               needs_server: bool = True) -> dict[str, Any]:
    """Play any story function ``story(stage, **params)`` as :func:`play` plays a scenario
    (the lab's exercises are stories outside the catalogue)."""
    gates = Gates()
    server = None
    if needs_server:
        server = ChatServer(host, port, config=SCENARIO_ROOM, on_event=gates).start()
        port = server.port
    elif port == 0:
        port = free_port(host)
    stage = Stage(host, port, server, gates)
    started = time.time()
    try:
        result = story(stage, **params)
        if gates.errors:
            raise StagingError("; ".join(gates.errors))
        if gates.unused():
            raise StagingError(f"these gates were never reached: {'; '.join(gates.unused())}")
    except BaseException:
        gates.cancel()
        raise
    finally:
        for client in stage.clients:
            if client.sock.fileno() != -1:
                client.close()
        if server is not None:
            server.stop()
    wait_settled((address, (host, port)) for address in stage.addresses)
    return {
        "scenario": name,
        "params": params,
        "server": [host, port],
        "clients": [{"nick": nick, "address": list(address)}
                    for nick, address in zip(stage.nicks, stage.addresses)],
        "events": [_plain(event) for event in server.timeline_events()] if server else [],
        "notes": stage.notes,
        "result": result,
        "started": started,
        "finished": time.time(),
    }


def play_for_rootless(name: str, host: str = DEFAULT_HOST, port: int = ROOTLESS_PORT,
                      params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``play`` with its parameters in one dict: the target ``run_rootless`` calls by path."""
    return play(name, host, port, **(params or {}))


@dataclass(frozen=True)
class ScenarioRun:
    """A captured scenario: the pcapng file, and what the server did meanwhile."""

    name: str
    mode: str  # "live" or "rootless"
    capture: CaptureResult
    played: dict[str, Any]  # what play() returned

    @property
    def path(self) -> Path:
        return self.capture.path

    @property
    def port(self) -> int:
        return self.played["server"][1]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.played["events"]

    @property
    def clients(self) -> list[dict[str, Any]]:
        return self.played["clients"]

    def analyze(self):
        """The capture analysed (:func:`tcpchatx.analysis.analyze`)."""
        from ..analysis import analyze

        return analyze(self.path)


def run_scenario(name: str, out_path: str | os.PathLike[str], *, mode: str = "auto",
                 backend: str = "auto", host: str = DEFAULT_HOST, port: int = 0,
                 **params: Any) -> ScenarioRun:
    """Capture scenario ``name`` into ``out_path`` (pcapng; a bare name goes into captures/).

    ``mode="auto"`` captures live if this user may, else in a rootless namespace;
    if neither works it raises :class:`CaptureUnavailableError`, naming the reference
    capture to open instead.  ``port=0`` picks a free port (live) or 25000 (rootless).
    """
    scenario = get_scenario(name)
    params = scenario.check_params(params)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "auto":
        check = check_capture_mode(backend)
        if check.mode == "reference":
            raise CaptureUnavailableError(
                f"{check.explain()}\nOpen the reference capture {reference_capture(name)} instead."
            )
        mode = check.mode
    if mode == "live":
        port = port or free_port(host)
        with LiveCapture(port, out_path, backend=backend) as capture:
            played = play(name, host, port, **params)
        assert capture.result is not None
        return ScenarioRun(name, "live", capture.result, played)
    port = port or ROOTLESS_PORT
    outcome = run_rootless("tcpchatx.scenarios:play_for_rootless", out_path, port=port,
                           kwargs={"name": name, "host": host, "port": port, "params": params},
                           backend=backend)
    return ScenarioRun(name, "rootless", outcome.capture, outcome.value)
