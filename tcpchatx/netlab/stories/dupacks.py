"""Duplicate ACKs: a loss that the segments behind it reveal (``fast_retransmit``),
and a segment that only arrives late (``reorder``).

Both stories put 25 ms of delay on the path each way (the relay), so that the
receiver's ACKs take a round trip to come back: on a path without delay the
sender learns of a hole before it could count duplicate ACKs.
"""

from __future__ import annotations

from pathlib import Path

from ...protocol import Kind
from ...room import RoomConfig
from ..play import chat_across_router, views
from ..relay import Relay
from ..topology import CLIENT
from .common import StoryError, confirmed, expert_events, set_sysctl

RESENT = ("retransmission", "fast_retransmission", "spurious_retransmission")
#: Plays of the fast-retransmit story before it gives up.  On a busy machine the server
#: may answer several segments with one ACK, and alice's kernel, counting SACKed
#: segments, then resends after a single duplicate ACK: Wireshark calls that resend
#: out-of-order, not a fast retransmission, and the play is thrown away.
FAST_RETRANSMIT_PLAYS = 3


def _delayed(delay_ms: float, events: list[dict] | None = None) -> dict:
    """A script: *delay_ms* each way, and *events* on the way to the server."""
    return {"to_server": {"delay_ms": delay_ms, "events": events or []}, "to_client": {"delay_ms": delay_ms}}


def _burst(name: str, out_dir: str, lines: int, event: dict, delay_ms: float,
           router_view: bool) -> tuple[dict[str, Path], dict]:
    """alice writes *lines* lines at once while the relay does *event* to one of them;
    bob hears them all.  Returns the saved views and the relay's report."""
    paths = views(out_dir, name, router_view)
    burst = [f"line {k + 1} of {lines}, all written at once" for k in range(lines)]
    with Relay(_delayed(delay_ms)) as relay:
        with chat_across_router(paths, RoomConfig(flood_control=False)) as (alice, bob):
            relay.set(_delayed(delay_ms, [event]))  # counted from here: alice's lines only
            for line in burst:
                alice.send(line)
            bob.receive_until(lambda got: got.kind is Kind.CHAT and got.text == burst[-1], 10)
            if not relay.report()["events"]["to_server"]:
                raise StoryError(f"the relay never did {event}: alice's lines were not where the story expects")
            alice.quit()
            bob.quit()
    return paths, relay.final


def fast_retransmit(out_dir: str, lines: int = 10, lost: int = 3, delay_ms: float = 25,
                    router_view: bool = False) -> dict:
    """alice writes ``lines`` chat lines at once; the router loses line ``lost``.  Each
    line behind it reaches the server, which answers each with the same ACK again (a
    duplicate ACK: "I still miss the bytes from here"), and with SACK also says which
    bytes it did get.  alice's kernel resends the lost line at once, without waiting
    for its timer: a fast retransmission (RFC 5681; with SACK, RFC 6675 counts the
    segments SACKed past the hole).

    The story runs twice: with SACK, the fast retransmission carries the lost line
    alone; without it (``tcp_sack=0`` in the client's namespace), alice cannot tell
    which lines arrived, and resends everything from the hole on.  A play whose resend
    is not a fast retransmission is thrown away and played again, up to
    :data:`FAST_RETRANSMIT_PLAYS` times; ``plays`` says how many it took.
    """
    drop = {"do": "drop", "data_segment": lost}
    outcome = {}
    for name, sack in (("fast-retransmit", "1"), ("fast-retransmit-no-sack", "0")):
        set_sysctl(CLIENT.namespace, "tcp_sack", sack)
        set_sysctl(CLIENT.namespace, "tcp_early_retrans", "0")  # no tail-loss probe racing the dup ACKs
        for play in range(1, FAST_RETRANSMIT_PLAYS + 1):
            paths, relay = _burst(name, out_dir, lines, drop, delay_ms, router_view)
            try:
                found = confirmed(paths, lambda paths=paths: _fast_retransmission(paths["client"]))
            except StoryError:
                if play == FAST_RETRANSMIT_PLAYS:
                    raise
                continue
            outcome["sack" if sack == "1" else "no_sack"] = {
                "views": {side: str(path) for side, path in paths.items()}, "relay": relay,
                "plays": play, **found}
            break
    set_sysctl(CLIENT.namespace, "tcp_sack", "1")
    return outcome


def _fast_retransmission(client_view: Path) -> dict:
    """The fast retransmission in the sender's view, and the duplicate ACKs before it."""
    packets = expert_events(client_view)
    fast = [(frame, length) for frame, _, names, length in packets if "fast_retransmission" in names]
    if not fast:
        raise StoryError("alice's kernel did not resend the lost line on duplicate ACKs "
                         f"(what it resent: {[(f, n) for f, _, n, _ in packets if set(n) & set(RESENT)]})")
    frame, length = fast[0]
    dup_acks = [f for f, _, names, _ in packets if "duplicate_ack" in names and f < frame]
    if len(dup_acks) < 2:
        raise StoryError(f"only {len(dup_acks)} duplicate ACK(s) before the fast retransmission")
    return {"fast_retransmission": frame, "resent_bytes": length, "duplicate_acks": dup_acks}


def reorder(out_dir: str, lines: int = 4, late: int = 3, hold_ms: float = 5, delay_ms: float = 25,
            router_view: bool = False) -> dict:
    """alice writes ``lines`` lines at once; the router holds line ``late`` back for
    ``hold_ms``, so that the line behind it arrives first.  The server answers with an
    ACK that still asks for the late line's bytes, and a SACK block for the line it
    got; then the late line fills the hole and one ACK covers everything.  One such
    ACK is not enough to call a segment lost (RFC 5681 waits for three duplicate ACKs;
    Linux's RACK waits a quarter of a round trip), so nothing is resent: the server's view has the late line ``[TCP Out-Of-Order]``, and
    neither view has a retransmission.
    """
    paths, relay = _burst("reorder", out_dir, lines, {"do": "hold", "data_segment": late, "hold_ms": hold_ms},
                          delay_ms, router_view)

    def check() -> dict:
        late_frames = [f for f, _, names, _ in expert_events(paths["server"]) if "out_of_order" in names]
        if not late_frames:
            raise StoryError("no segment arrived out of order at the server")
        resent = [f for f, _, names, _ in expert_events(paths["client"]) if set(names) & set(RESENT)]
        if resent:
            raise StoryError(f"alice's kernel resent frames {resent}: the late line looked lost")
        return {"out_of_order": late_frames}

    return {"views": {side: str(path) for side, path in paths.items()}, "relay": relay, **confirmed(paths, check)}
