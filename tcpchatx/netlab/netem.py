"""The path in the kernel, where it can be: Linux's netem qdisc, and which engine a
script gets.

netem (``tc qdisc ... netem delay 25ms 5ms loss 2%``) delays, jitters and loses
frames inside the kernel, at no cost in user space.  Many kernels have it
(``sch_netem``: Debian's and Ubuntu's stock kernels do); some do not, and an
unprivileged user cannot load a module.  It cannot do a script's named events
either: it picks frames at random, never "data segment 3".  So:

- :func:`engine_for` says which engine a script gets: ``"relay"``
  (:mod:`tcpchatx.netlab.relay`, every kernel, every script) or ``"netem"`` (only
  delay, jitter and loss, and only where the kernel has it), and why;
- :func:`netem_commands` is the script as ``tc`` commands, one root qdisc on the
  router's outgoing end for each direction;
- :func:`open_path` starts the engine chosen: a :class:`~tcpchatx.netlab.relay.Relay`
  or a :class:`Netem`.

The lab's stories ask for the relay by name, so that a story is the same on every
kernel; ``engine="auto"`` is for scripts of your own.  (netem's jitter reorders
frames and its loss follows the kernel's random numbers, not the script's seed.)
"""

from __future__ import annotations

import subprocess

from .relay import Relay
from .script import parse
from .topology import CLIENT, SERVER

LEAVES_BY = {"to_server": SERVER.router_link, "to_client": CLIENT.router_link}  # the router's end a direction leaves by
ENGINES = ("auto", "relay", "netem")


class NetemUnavailableError(RuntimeError):
    """This kernel has no netem (or it cannot be used here); the message has tc's words."""


def netem_available() -> tuple[bool, str]:
    """Whether netem works in this (the router's) namespace: tried for real on ``lo``."""
    added = subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"],
                           capture_output=True, text=True, check=False)
    if added.returncode != 0:
        return False, f"tc cannot add netem here: {added.stderr.strip() or added.returncode}"
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True, check=False)
    return True, "this kernel has netem"


def netem_can_follow(script: dict) -> tuple[bool, str]:
    """Whether netem can do all of *script*: delay, jitter and loss, no named events."""
    with_events = [name for name, link in parse(script).items() if link.events]
    if with_events:
        return False, f"netem cannot pick one segment (named events on {', '.join(with_events)})"
    return True, "the script has only delay, jitter and loss"


def engine_for(script: dict, engine: str = "auto") -> tuple[str, str]:
    """The engine *script* gets, and why.  ``"auto"`` prefers netem where it can do it all."""
    if engine not in ENGINES:
        raise ValueError(f"engine is one of {ENGINES}, not {engine!r}")
    if engine == "relay":
        return "relay", "asked for the relay"
    can_follow, why_not = netem_can_follow(script)
    available, because = netem_available()
    if engine == "netem":
        if not can_follow or not available:
            raise NetemUnavailableError(why_not if not can_follow else because)
        return "netem", because
    if can_follow and available:
        return "netem", f"{because}, and {why_not}"
    return "relay", why_not if not can_follow else f"{because}; the relay does it in user space"


def netem_commands(script: dict) -> list[list[str]]:
    """The ``tc`` commands that make netem follow *script* (one direction per qdisc)."""
    commands = []
    for name, link in parse(script).items():
        if not (link.delay_ms or link.jitter_ms or link.loss):
            continue
        command = ["tc", "qdisc", "add", "dev", LEAVES_BY[name], "root", "netem", "delay", f"{link.delay_ms:g}ms"]
        if link.jitter_ms:
            command.append(f"{link.jitter_ms:g}ms")
        if link.loss:
            command += ["loss", f"{link.loss * 100:g}%"]
        commands.append(command)
    return commands


class Netem:
    """netem following a script while the ``with`` block runs (the router's kernel forwards)."""

    def __init__(self, script: dict) -> None:
        self.commands = netem_commands(script)
        self.final = {"engine": "netem", "commands": [" ".join(c) for c in self.commands]}

    def __enter__(self) -> Netem:
        for command in self.commands:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self._remove()
                raise NetemUnavailableError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
        return self

    def __exit__(self, *exc_info) -> None:
        self._remove()

    def _remove(self) -> None:
        for command in self.commands:
            subprocess.run(["tc", "qdisc", "del", "dev", command[4], "root"], capture_output=True, check=False)


def open_path(script: dict, engine: str = "auto") -> Relay | Netem:
    """The engine for *script* (see :func:`engine_for`), not yet started: use it in ``with``."""
    chosen, _why = engine_for(script, engine)
    return Netem(script) if chosen == "netem" else Relay(script)

