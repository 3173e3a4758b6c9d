"""The catalogue: every story's name, what it shows, and the TCP shape it must produce.

The names are the public API (notebooks, the CLI and the reference captures use
them).  ``expect`` is the shape every connection of the story has in the analysis
(:mod:`tcpchatx.analysis`): its close kind, who closed first, Zeek's ``conn_state``
and the order of the FIN (``f``/``F``) and RST (``r``/``R``) letters in Zeek's
history - upper case for the client, lower case for the server.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..analysis.labels import CloseKind, ConnState


@dataclass(frozen=True)
class Expect:
    close_kind: CloseKind
    active_closer: str | None  # "originator" (the client), "responder" (the server), "both"
    conn_state: ConnState  # Zeek's label
    closing: str  # the history's f/F/r/R letters in order, e.g. "fF": server FIN, then client FIN


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # one line
    look_at: str  # what to look at in the capture
    expect: Expect
    story_name: str  # the function in .stories that plays it
    needs_server: bool = True

    @property
    def story(self) -> Callable[..., dict]:
        """The function that plays the story.  Imported here, not at the top: the
        stories need the server, and every ``tcpchatx`` command lists this catalogue."""
        return getattr(importlib.import_module(".stories", __package__), self.story_name)

    @property
    def params(self) -> dict[str, Any]:
        """The story's parameters and their defaults."""
        signature = inspect.signature(self.story)
        return {name: p.default for name, p in list(signature.parameters.items())[1:]}

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """All parameters with defaults filled in; TypeError naming the valid ones."""
        signature = inspect.signature(self.story)
        try:
            bound = signature.bind(None, **params)
        except TypeError:
            valid = ", ".join(self.params) or "none"
            raise TypeError(f"scenario {self.name!r} takes the parameters: {valid}; "
                            f"got {sorted(params)}") from None
        bound.apply_defaults()
        return dict(list(bound.arguments.items())[1:])


SERVER_FIRST = Expect(CloseKind.FOUR_WAY, "responder", ConnState.SF, "fF")
CLIENT_FIRST = Expect(CloseKind.FOUR_WAY, "originator", ConnState.SF, "Ff")
CLIENT_RESET = Expect(CloseKind.RESET, "originator", ConnState.RSTO, "R")

_ALL = [
    Scenario("chat", "N clients join and chat; every message fans out to the N-1 others.",
             "Each client line <alice> ... arrives once and leaves the server N-1 times "
             "(analysis.messages: deliveries and their fan-out latency).",
             SERVER_FIRST, "chat"),
    Scenario("private", "A private /msg beside a broadcast.",
             "The /msg line goes out once, to bob; the broadcast twice, to bob and carol.",
             SERVER_FIRST, "private"),
    Scenario("quit", "The client sends /quit; the server closes first (the active closer).",
             "The server's FIN comes first; the client's ACK and FIN are separate segments: "
             "FIN, ACK, FIN, ACK. The server holds TIME_WAIT.",
             SERVER_FIRST, "quit_"),
    Scenario("client-close", "The client closes first with close(): a four-way close.",
             "Client FIN, server ACK (alone), server FIN, client ACK. The client holds TIME_WAIT.",
             CLIENT_FIRST, "client_close"),
    Scenario("three-way", "The client closes; the server's FIN carries the ACK of the client's FIN.",
             "Only three segments: FIN, FIN+ACK (step 'FIN+ACK (piggybacked ACK ...)'), ACK.",
             Expect(CloseKind.THREE_WAY, "originator", ConnState.SF, "Ff"), "three_way"),
    Scenario("simultaneous", "Both sides send a FIN before seeing the other's: the FINs cross.",
             "The client's FIN does not acknowledge the server's (step 'FIN (simultaneous close)', "
             "state CLOSING); the server's FIN is retransmitted; both sides end in TIME_WAIT.",
             Expect(CloseKind.SIMULTANEOUS, "both", ConnState.SF, "fF"), "simultaneous"),
    Scenario("abort", "The client aborts: SO_LINGER 0, close() sends RST instead of FIN.",
             "One RST from the client ends the connection: no FINs, no TIME_WAIT.",
             CLIENT_RESET, "abort"),
    Scenario("unread-data", "The client closes with server data unread: the kernel sends RST.",
             "The server's data segment, then the client's RST: close() with unread data aborts.",
             CLIENT_RESET, "unread_data"),
    Scenario("half-close", "The client shuts down its sending side and keeps reading.",
             "After the client's FIN the server still sends data (state FIN_WAIT_2), then its own FIN.",
             CLIENT_FIRST, "half_close"),
    Scenario("refused", "Connect to a port with no listener: SYN, then RST+ACK.",
             "Two segments: the SYN and the kernel's RST+ACK (Zeek: REJ).",
             Expect(CloseKind.REFUSED, "responder", ConnState.REJ, "r"), "refused", needs_server=False),
    Scenario("nagle", "Back-to-back small lines with Nagle on (alice) and off (bob).",
             "bob's burst: one segment per line. alice's: the first line alone, the rest "
             "gathered into one segment sent when the first is acknowledged.",
             SERVER_FIRST, "nagle"),
]

#: name -> Scenario, in the order a lab would play them.
SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _ALL}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
