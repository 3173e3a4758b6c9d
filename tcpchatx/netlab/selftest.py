"""A chat across the lab's router, captured at both ends: proof that the network works.

The server listens in the server namespace; alice and bob connect from the client
namespace, through the router; alice's line reaches bob.  dumpcap records the
client's view (on ``c1``) and the server's (on ``s1``).  Given a *script*
(:mod:`tcpchatx.netlab.script`), the relay (:mod:`tcpchatx.netlab.relay`) forwards
instead of the router's kernel, and follows it.
"""

from __future__ import annotations

from contextlib import nullcontext

from ..protocol import Kind
from .impair import bottleneck
from .play import bulk_transfer, chat_across_router, views
from .relay import Relay
from .topology import SERVER


def through(script: dict | None):
    """The relay following *script*, or (None) the router's kernel forwarding as it is."""
    return Relay(script) if script is not None else nullcontext()


def chat_through_router(out_dir: str, script: dict | None = None) -> dict:
    """Play the chat; return the two capture paths, what bob received and, with a
    *script*, the relay's report."""
    paths = views(out_dir, "chat")
    with through(script) as relay, chat_across_router(paths) as (alice, bob):
        alice.send("hello across the router")
        heard = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
        alice.quit()
        bob.quit()
    return {"views": {name: str(path) for name, path in paths.items()}, "bob_heard": heard.text,
            "from": heard.nick, "relay": relay.final if relay else None}


def bulk_through_bottleneck(out_dir: str, rate: str | None = "4mbit", buffer_bytes: int = 30_000,
                            size: int = 1_000_000, script: dict | None = None) -> dict:
    """Send ``size`` bytes from the client to the server through a bottleneck on the
    router (tbf: ``rate``, a drop-tail queue of ``buffer_bytes``), captured at both
    ends; return the captures, the bytes received and how many the router dropped
    (see :func:`tcpchatx.netlab.play.bulk_transfer`).

    A queue that small overflows while TCP's window grows: the router drops segments,
    and the capture shows the sender's retransmissions and the receiver's holes.
    ``rate=None`` leaves the link as fast as the router forwards; the transfer's
    ``seconds`` then measure the router (the relay's benchmark does so).
    """
    paths = views(out_dir, "bulk")
    if rate is not None:
        bottleneck(towards=SERVER, rate=rate, buffer_bytes=buffer_bytes)
    with through(script) as relay:
        outcome = bulk_transfer(paths, size)
    return {**outcome, "relay": relay.final if relay else None}


def which_engine(script: dict, engine: str = "auto") -> dict:
    """Which engine the lab gives *script* on this kernel, and why (see :mod:`.netem`)."""
    from .netem import engine_for, netem_available

    try:
        chosen, why = engine_for(script, engine)
    except Exception as exc:  # noqa: BLE001 - the outcome is the answer
        return {"error": f"{type(exc).__name__}: {exc}", "netem": netem_available()[0]}
    return {"engine": chosen, "why": why, "netem": netem_available()[0]}
