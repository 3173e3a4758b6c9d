"""Where the Wireshark dissector is, how to install it, and how to run it with tshark.

``tcpchatx.lua`` (next to this file) teaches Wireshark the chat protocol: every line
becomes a ``tcpchatx`` subtree with its kind, nick and text (docs/wireshark.md).

    from tcpchatx.wireshark import dissect
    d = dissect("captures/chat.pcapng")
    for line in d.lines:                  # what the dissector decoded, line by line
        print(line.frame, line.kind, line.nick, line.text)

:func:`dissect` runs ``tshark -T json`` once and returns both the dissector's lines
and each frame's TCP header fields (for :mod:`tcpchatx.wireshark.verify`). tshark
runs with a private, empty home folder, so neither a personal Wireshark profile (a
changed preference, an older installed copy of this plugin) nor anything else of
the user's changes the answer.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..capture.tools import find_wireshark_tool

LUA_PATH = Path(__file__).with_name("tcpchatx.lua")
TSHARK_ENV = "TCPCHATX_TSHARK"
INSTALL_TSHARK = "sudo apt-get install tshark"


class DissectorError(RuntimeError):
    """tshark is missing or cannot read the capture; the message says what to do."""


# --------------------------------------------------------------------------- where it goes


def plugin_dir() -> Path:
    """Wireshark's personal Lua plugin folder on this operating system."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "Wireshark" / "plugins"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def install_plugin(destination: str | os.PathLike[str] | None = None) -> Path:
    """Copy the dissector into the personal plugin folder (made if missing)."""
    folder = Path(destination) if destination is not None else plugin_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / LUA_PATH.name
    shutil.copyfile(LUA_PATH, target)
    return target


def dissector_main(install: bool = False) -> int:
    """``tcpchatx dissector [--install]``: say where the dissector is; maybe install it."""
    folder = plugin_dir()
    print(f"The TCPChatX Wireshark dissector: {LUA_PATH}")
    if install:
        try:
            target = install_plugin(folder)
        except OSError as exc:
            print(f"tcpchatx dissector: could not copy it into {folder}: {exc}", file=sys.stderr)
            return 1
        print(f"Installed: {target}")
        print("Restart Wireshark (or Analyze > Reload Lua Plugins, Ctrl+Shift+L); then filter on `tcpchatx`.")
        return 0
    print(f"""
To install it, copy it into Wireshark's personal Lua plugin folder:
  this machine:   {folder}
  Linux/macOS:    ~/.local/lib/wireshark/plugins/
  Windows:        %APPDATA%\\Wireshark\\plugins\\
or let `tcpchatx dissector --install` copy it there. Then restart Wireshark (or
Analyze > Reload Lua Plugins) and filter on `tcpchatx`.

To use it once without installing:
  tshark -X lua_script:{LUA_PATH} -r CAPTURE -Y tcpchatx
  wireshark -X lua_script:{LUA_PATH} CAPTURE

It decodes port 25000 (Edit > Preferences > Protocols > TCPCHATX to change it) and
recognises the chat on any other port by its lines.""")
    return 0


# --------------------------------------------------------------------------- tshark


def find_tshark() -> str | None:
    """Path of the tshark binary, or None if Wireshark's command-line tools are missing."""
    return find_wireshark_tool("tshark", TSHARK_ENV)


@functools.cache
def _has_lua(tshark: str) -> bool:
    """Does ``tshark -v`` say "with Lua"?  (Assume yes if it cannot tell.)"""
    try:
        version = subprocess.run([tshark, "-v"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True  # run_tshark will report the real problem
    return "without Lua" not in version


def tshark_command(capture: str | os.PathLike[str], *, port: int | None = None,
                   decode_as: int | None = None, extra: list[str] | None = None) -> list[str]:
    """The tshark command line that reads *capture* through our dissector.

    ``port`` sets the dissector's port preference; ``decode_as`` adds a Decode As
    rule (``-d tcp.port==P,tcpchatx``).  Neither is needed for the heuristic.
    """
    tshark = find_tshark()
    if tshark is None:
        raise DissectorError(f"tshark is not installed. Install it with `{INSTALL_TSHARK}` "
                             "(Debian/Ubuntu), or Wireshark from https://www.wireshark.org.")
    if not _has_lua(tshark):
        raise DissectorError(f"{tshark} was built without Lua, so it cannot load the dissector. "
                             "Install a Wireshark build with Lua (Debian/Ubuntu's `tshark` package has it).")
    command = [tshark, "-n", "-X", f"lua_script:{LUA_PATH}", "-r", os.fspath(capture),
               "-o", "tcp.desegment_tcp_streams:TRUE"]
    if port is not None:
        command += ["-o", f"tcpchatx.port:{port}"]
    if decode_as is not None:
        command += ["-d", f"tcp.port=={decode_as},tcpchatx"]
    return command + (extra or [])


def run_tshark(command: list[str], capture: str | os.PathLike[str]) -> str:
    """Run tshark with a private home folder; return its standard output.

    Raises DissectorError with a readable reason when the capture cannot be read.
    """
    path = Path(capture)
    if not path.is_file():
        raise DissectorError(f"no such file: {path}")
    with tempfile.TemporaryDirectory(prefix="tcpchatx-tshark-") as home:
        env = {**os.environ, "HOME": home, "APPDATA": home, "XDG_CONFIG_HOME": home}
        try:
            done = subprocess.run(command, capture_output=True, env=env, timeout=300, check=False)
        except FileNotFoundError as exc:
            raise DissectorError(f"cannot run tshark ({exc}). Install it with `{INSTALL_TSHARK}`.") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    for line in stderr.splitlines():  # tshark goes on without a script it cannot load
        if line.startswith("tshark: Lua:") or (str(LUA_PATH) in line and "exist" in line):
            raise DissectorError(f"tshark could not load the dissector {LUA_PATH}: {line}")
    if done.returncode != 0:
        if "isn't a capture file" in stderr or "unknown file format" in stderr.lower():
            raise DissectorError(f"{path} is not a capture file (pcap or pcapng) that tshark can read.")
        if "appears to have been cut short" in stderr or "truncated" in stderr.lower():
            # tshark still printed every packet before the cut: keep them.
            return done.stdout.decode("utf-8", "replace")
        raise DissectorError(f"tshark failed on {path}: {_first_line(stderr)}")
    return done.stdout.decode("utf-8", "replace")


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines()
             if line.strip() and not line.startswith("Running as user")]
    return lines[0] if lines else "no message"


# --------------------------------------------------------------------------- reading its answer


@dataclass(frozen=True)
class Segment:
    """One frame's TCP header, as tshark decoded it (sequence numbers absolute)."""

    frame: int
    stream: int
    src_port: int
    dst_port: int
    flags: int
    seq: int
    ack: int
    length: int


@dataclass(frozen=True)
class DissectedLine:
    """One protocol line as the Lua dissector decoded it: its ``tcpchatx.*`` fields."""

    frame: int  # the frame that completed the line (carried its "\n")
    stream: int  # tcp.stream
    direction: str  # "server->client" or "client->server"
    kind: str  # protocol.Kind value, or "invalid"
    line: str | None  # the whole line (None for invalid lines)
    nick: str | None = None  # chat/private/action: from whom; client lines: the sender
    text: str | None = None
    command: str | None = None
    args: str | None = None
    client: str | None = None  # the nickname of this connection's client, if known


@dataclass
class Dissection:
    """Every TCP frame and every decoded line of one capture."""

    segments: list[Segment]
    lines: list[DissectedLine]


def dissect(capture: str | os.PathLike[str], *, port: int | None = None,
            decode_as: int | None = None) -> Dissection:
    """Read *capture* with tshark and the Lua dissector (see :func:`tshark_command`)."""
    command = tshark_command(capture, port=port, decode_as=decode_as,
                             extra=["-T", "json", "-j", "frame tcp tcpchatx"])
    return parse_json(run_tshark(command, capture))


def parse_json(output: str) -> Dissection:
    """tshark's ``-T json`` output -> a Dissection.

    A frame carrying several lines has several ``"tcpchatx"`` keys in one JSON
    object; ``object_pairs_hook`` keeps them all, in order.
    """
    if not output.strip():
        return Dissection([], [])
    frames = json.loads(output, object_pairs_hook=lambda pairs: pairs)
    segments: list[Segment] = []
    lines: list[DissectedLine] = []
    for packet in frames:
        layers = _get(_get(packet, "_source"), "layers")
        frame_layer = _get(layers, "frame")
        frame = int(_get(frame_layer, "frame.number"))
        tcp = _get(layers, "tcp")
        if tcp is None:
            continue
        stream = int(_get(tcp, "tcp.stream"))
        segments.append(Segment(
            frame=frame, stream=stream,
            src_port=int(_get(tcp, "tcp.srcport")), dst_port=int(_get(tcp, "tcp.dstport")),
            flags=int(_get(tcp, "tcp.flags"), 16), seq=int(_get(tcp, "tcp.seq_raw")),
            ack=int(_get(tcp, "tcp.ack_raw") or 0), length=int(_get(tcp, "tcp.len")),
        ))
        for key, subtree in layers:
            if key.startswith("Lua Error"):  # the dissector failed on this frame: a bug to fix
                raise DissectorError(f"the dissector failed on frame {frame}: {key}")
            if key != "tcpchatx":
                continue
            lines.append(DissectedLine(
                frame=frame, stream=stream,
                direction=_get(subtree, "tcpchatx.direction"), kind=_get(subtree, "tcpchatx.kind"),
                line=_get(subtree, "tcpchatx.line"), nick=_get(subtree, "tcpchatx.nick"),
                text=_get(subtree, "tcpchatx.text"), command=_get(subtree, "tcpchatx.command"),
                args=_get(subtree, "tcpchatx.args"), client=_get(subtree, "tcpchatx.client"),
            ))
    return Dissection(segments, lines)


def _get(pairs, key):
    """The first value of *key* in a list of (key, value) pairs, or None."""
    if pairs is None:
        return None
    for k, value in pairs:
        if k == key:
            return value
    return None
