"""A network stall bunches a client's lines; flood control holds them, and loses none (``bunched``).

alice types at the room's own pace (5 lines per second).  The router then breaks her
path for a while: her kernel keeps her lines and resends them with its timer, and
when the path heals TCP delivers them all at once, several lines in one segment.
The server's flood control sees more lines in one ``recv`` than its burst; it passes
the burst on at once and *holds* the rest, releasing them at its rate.  bob gets
every line, in order: TCP delivered every byte, and the application lost none.
alice is told nothing, because a few lines bunched by the network are no flood.
"""

from __future__ import annotations

import time

from ...protocol import Kind
from ...room import RoomConfig
from ..play import chat_across_router, views
from ..relay import Relay
from .common import StoryError, confirmed


def bunched(out_dir: str, lines: int = 16, rate: float = 5.0, break_ms: float = 2500, delay_ms: float = 25,
            router_view: bool = False) -> dict:
    """alice sends ``lines`` lines at ``rate`` per second; her path breaks for ``break_ms``
    at her first.  Returns the views, the server's held/released times and what bob got."""
    paths = views(out_dir, "bunched", router_view)
    each_way = {"delay_ms": delay_ms}
    typed = [f"line {k + 1} of {lines}" for k in range(lines)]
    events: list = []
    broken = {"to_server": {**each_way, "events": [{"do": "break", "data_segment": 1, "for_ms": break_ms}]},
              "to_client": each_way}
    with Relay({"to_server": each_way, "to_client": each_way}) as relay, \
            chat_across_router(paths, RoomConfig(), timeline=events) as (alice, bob):
        relay.set(broken)  # counted from here: alice's first line breaks the path
        for text in typed:
            alice.send(text)
            time.sleep(1 / rate)  # her typing pace, not a wait for something
        got = bob.receive_until(lambda line: line.kind is Kind.CHAT and line.text == typed[-1], 30)
        heard = [line.text for line in got if line.kind is Kind.CHAT]
        told = alice.quit()  # what the server said to alice before her bye
        bob.quit()

    def check() -> dict:
        held = [e for e in events if e.kind == "held" and e.nick == "alice"]
        released = [e for e in events if e.kind == "released" and e.nick == "alice"]
        if heard != typed:
            raise StoryError(f"bob heard {len(heard)} of alice's {lines} lines, or out of order")
        if not held:
            raise StoryError("no line of alice's was held: the stall did not bunch her lines")
        if len(released) != len(held):
            raise StoryError(f"{len(held)} held, {len(released)} released")
        return {"held": [e.detail.split(": ", 1)[1] for e in held],
                "released_after_s": [round(e.mono - held[0].mono, 3) for e in released],
                "told_alice": [line.text for line in told if line.kind is Kind.ERROR]}

    return {"views": {side: str(path) for side, path in paths.items()}, "relay": relay.final,
            **confirmed(paths, check)}
