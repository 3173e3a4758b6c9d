"""What the lab's stories share: a TCP setting per namespace, the story's own error,
and the check, after the captures are saved, that the story's event is in them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..namespaces import inside


class StoryError(RuntimeError):
    """The story's event did not happen; nothing was saved as if it had."""


def set_sysctl(namespace: str, name: str, value: str) -> None:
    """A TCP setting of one namespace (a /proc/sys/net file belongs to the namespace that opens it)."""
    with inside(namespace), open(f"/proc/sys/net/ipv4/{name}", "w") as setting:
        setting.write(value)


def expert_events(path: Path) -> list[tuple[int, float, list[str], int]]:
    """(frame, seconds, Wireshark's expert events, payload length) of every TCP packet
    of a capture, from the project's own analysis (which agrees with tshark's)."""
    from ...analysis import analyze

    a = analyze(path)
    p = a.packets
    return [(int(p.frame[i]), float(p.seconds(i)), a.events(i), int(p.payload_len[i]))
            for i in range(len(p)) if p.is_tcp[i]]


def confirmed(paths: dict[str, Path], check: Callable[[], object]):
    """Run *check* on the saved captures; if it raises StoryError, delete them first:
    a run that missed its event leaves nothing to study as if it had not."""
    try:
        return check()
    except StoryError:
        for path in paths.values():
            path.unlink(missing_ok=True)
        raise
