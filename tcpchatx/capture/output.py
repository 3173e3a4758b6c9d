"""Where a capture file goes, and how it gets there without ever being half-written.

A capture is written to a hidden temporary file next to its destination and renamed
into place only once it is complete (``os.replace`` is atomic within one directory).
A notebook that opens the destination therefore sees either nothing or a whole file,
never a pcapng cut off in the middle of a block.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEFAULT_DIR = Path("captures")


def resolve_output_path(out_path: str | os.PathLike[str]) -> Path:
    """Turn the user's *out_path* into an absolute destination, creating its directory.

    A bare file name (``"join.pcapng"``) goes into ``captures/`` under the current
    directory, next to the reference captures; anything with a directory part
    (``"./join.pcapng"``, ``"/tmp/x.pcapng"``) is used as given.
    """
    path = Path(out_path)
    if path.parent == Path("."):
        if str(out_path).startswith(("./", ".\\")):
            path = Path.cwd() / path.name
        else:
            path = DEFAULT_DIR / path
    path = path.absolute()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give a file name such as {path / 'capture.pcapng'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def temporary_sibling(final: Path, tag: str = "part") -> Path:
    """Create an empty hidden file beside *final* to write into (``.name.XXXX.part``)."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".{tag}", dir=final.parent)
    os.close(fd)
    return Path(name)


def remove_quietly(path: Path | None) -> None:
    """Delete a temporary file if it is still there."""
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def publish(temporary: Path, final: Path) -> None:
    """Atomically move a finished capture into place, readable like any file the user saves."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    os.replace(temporary, final)
