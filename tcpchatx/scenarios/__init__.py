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

from .catalog import SCENARIOS, Expect, Scenario, get_scenario
from .run import (
    DEFAULT_HOST,
    ROOTLESS_PORT,
    CaptureUnavailableError,
    ScenarioRun,
    play,
    play_for_rootless,
    reference_capture,
    run_scenario,
)
from .staging import StagingError

__all__ = [
    "DEFAULT_HOST", "ROOTLESS_PORT", "SCENARIOS", "CaptureUnavailableError", "Expect", "Scenario",
    "ScenarioRun", "StagingError", "get_scenario", "play", "play_for_rootless", "reference_capture",
    "run_scenario",
]
