"""What Wireshark itself says about a capture: the packet comments stored in a pcapng
file, and its own decoding of one packet as a field tree (through tshark and pyshark).
"""

from __future__ import annotations

import os


def packet_comments(path: str | os.PathLike) -> dict[int, str]:
    """The packet comments stored in a pcapng file (read by tshark): frame -> comment."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    if tshark is None:
        raise FileNotFoundError("tshark is not installed (Debian/Ubuntu: apt install tshark)")
    done = subprocess.run([tshark, "-r", os.fspath(path), "-T", "fields", "-e", "frame.number",
                           "-e", "frame.comment"], capture_output=True, text=True, check=True)
    comments = {}
    for line in done.stdout.splitlines():
        number, _, comment = line.partition("\t")
        if comment:
            comments[int(number)] = comment.replace("\\n", "\n")
    return comments


def wireshark_fields(path: str | os.PathLike, frame: int, layers: tuple[str, ...] = ("tcp",)) -> str:
    """Wireshark's own decoding of one packet (through tshark), as an indented tree.

    pyshark may leave a capture object whose ``__del__`` tries to stop tshark again on
    an event loop that is already closed; that complaint (and the coroutine it never
    awaited) is dropped here, so it cannot land in this cell's or a later cell's stderr.
    """
    import gc
    import sys
    import warnings

    from ..wireshark_view import format_fields, packet_fields

    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if getattr(unraisable.object, "__qualname__", "") != "Capture.__del__":
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="coroutine 'Capture.close_async' was never awaited")
            fields = packet_fields(path, frame, layers=layers)
            gc.collect()  # pyshark's leftovers go now, while the hook is in place
    finally:
        sys.unraisablehook = previous
    return format_fields(fields)
