"""What plays a scenario or the exercise where its sockets live, sampling their TCP states.

:func:`play_and_sample` runs in the notebook's process (live mode) or inside the private
namespace (rootless mode, called by its import path), so the socket-state sampler sees
the sockets wherever they are.  The exercise of notebook 04 is a story defined here.
"""

from __future__ import annotations

import json
from typing import Any

from ..scenarios import DEFAULT_HOST, play
from ..scenarios.run import play_story
from ..scenarios.stories import Stage, join_and_chat


def play_and_sample(kind: str, name: str, host: str, port: int, params: dict[str, Any],
                    sample: bool = False) -> dict[str, Any]:
    """Play a scenario (``kind="scenario"``) or the exercise, sampling socket states if asked.

    Called in this process (live mode) or inside the namespace (rootless mode, by
    import path), so that the sampler sees the sockets wherever they live.
    Returns ``{"played": ..., "sockstates": [records] or None}`` (JSON-able).
    """
    sampler = None
    if sample:
        from ..sockstate import SocketStateSampler

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
