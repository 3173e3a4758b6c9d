"""Scripted stories for the TCP lab: one call plays a scene and captures it.

    from tcpchatx.scenarios import SCENARIOS, run_scenario
    run = run_scenario("three-way", "three-way.pcapng")   # live, or rootless
    run.path, run.events                                  # the capture, the server's timeline
    run.analyze().connections[0].close_kind               # "three-way"

Each story starts a fresh ChatServer, connects programmatic clients, plays its
scene and closes everything; the server's timeline (what the application did, with
wall-clock times) is recorded beside the capture, so packets and events line up.

Theory of operation
-------------------
A close's shape often depends on timing: Linux delays the ACK of a FIN by ~40 ms,
and on loopback a segment arrives within microseconds.  Every story is *staged* so
its shape cannot vary: it waits (a poll with a deadline, never a sleep) for the
kernel state that makes the shape certain - ``/proc/net/tcp`` says when a FIN has
been acknowledged - and holds the server's thread at a timeline event when the
server must wait (:class:`~.staging.Gates`, through ``ChatServer(on_event=...)``).
The simultaneous close plays the network's part with a socket filter that hides
one FIN from the receiving TCP until both FINs are out.  ``SCENARIOS[name].expect``
is the shape each story produces; the tests check it with both capture backends.

Modules: ``staging`` (kernel states, gates, the filter) -> ``stories`` (the scenes)
-> ``catalog`` (names, descriptions, expected shapes) -> ``run`` (play, capture).
"""

from __future__ import annotations

import importlib

from .catalog import SCENARIOS, Expect, Scenario, get_scenario

# Every ``tcpchatx`` command lists the catalogue (``scenario --help``); playing a
# story needs the server and the capture code.  So those names are imported on
# first use (a module-level __getattr__, PEP 562): ``from tcpchatx.scenarios
# import run_scenario`` works as usual.
_PLAYERS = {
    "DEFAULT_HOST": "run", "ROOTLESS_PORT": "run", "CaptureUnavailableError": "run",
    "ScenarioRun": "run", "play": "run", "play_for_rootless": "run",
    "reference_capture": "run", "run_scenario": "run", "StagingError": "staging",
}


def __getattr__(name: str):
    if name not in _PLAYERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PLAYERS[name]}", __name__), name)


__all__ = ["SCENARIOS", "Expect", "Scenario", "get_scenario", *_PLAYERS]
