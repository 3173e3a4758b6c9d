"""Step through a capture in the terminal: one packet (or one phase) at a time.

    tcpchatx replay captures/three-way.pcapng              # Enter/space/n next, p back, q quit
    tcpchatx replay captures/chat.pcapng --by phase        # a connection's handshake, data, ...
    tcpchatx replay captures/chat.pcapng --auto --delay 0.5
    tcpchatx replay captures/chat.pcapng --redrive         # play the session again, compare

Theory of operation
-------------------
* The capture is analysed (:func:`tcpchatx.analysis.analyze`), so any pcap or pcapng of
  the chat works, annotated or not.  :func:`stops` cuts it into the places the replay
  halts: one per frame (``by="packet"``), or one per *phase run* of a connection
  (``by="phase"``): the consecutive packets of one connection in the same phase
  (handshake, data, teardown, reset), in the order each run begins.
* At each stop we show the ladder so far (:func:`ladder_row`: one compact row per
  packet, the client named by its nick on the left, the server on the right) and,
  for each packet of the stop, its step, its note and the chat lines it completed.
* On a terminal the screen is redrawn at each stop (the last :data:`LADDER_ROWS`
  rows of the ladder); otherwise each stop is printed below the previous one, so the
  output can be saved or tested.
* Keys (:class:`Keys`): on a terminal, single key presses (``termios`` raw mode on
  POSIX, ``msvcrt`` on Windows); otherwise one command per line of stdin (an empty
  line is "next"), so the replay can be scripted.  ``--auto`` reads nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from .tcp_flags import ACK, FIN, LETTERS, PSH, RST, SYN, URG

LADDER_ROWS = 15  # ladder rows shown on a redrawn screen
ARROW_WIDTH = 40  # characters between the two lanes
CLEAR = "\x1b[H\x1b[2J"
FLAG_LETTERS = tuple((bit, LETTERS[bit]) for bit in (SYN, FIN, RST, PSH, ACK, URG))  # in this order
HELP = "keys: Enter/space/n next, p previous, q quit"


# --------------------------------------------------------------------------- stops


@dataclass
class Stop:
    """One place where the replay halts: a title and the rows (frame - 1) it shows."""

    title: str
    rows: list[int]
    phase: str
    conn: int | None


def _conn_name(a, conn: int | None) -> str:
    if conn is None or conn < 0:
        return "no connection"
    nick = a.chat.nick_of_conn.get(conn)
    return f"connection {conn}" + (f" ({nick})" if nick else "")


def stops(a, by: str = "packet") -> list[Stop]:
    """Where to halt: every frame (``packet``) or every phase run of a connection (``phase``)."""
    conn_of = a.tracking.conn.tolist()
    phase_of = a.phase.tolist()
    n = len(conn_of)
    if by == "packet":
        return [Stop(f"packet {i + 1}/{n}, phase {phase_of[i]}", [i], phase_of[i],
                     conn_of[i] if conn_of[i] >= 0 else None) for i in range(n)]
    if by != "phase":
        raise ValueError(f"by must be 'packet' or 'phase', not {by!r}")
    runs: list[Stop] = []
    current: dict[int, Stop] = {}  # each connection's run in progress (untracked frames: -1)
    for i in range(n):
        conn, phase = conn_of[i], phase_of[i]
        run = current.get(conn)
        if run is None or run.phase != phase:
            run = Stop("", [], phase, conn if conn >= 0 else None)
            current[conn] = run
            runs.append(run)
        run.rows.append(i)
    for k, run in enumerate(runs, 1):
        frames = [r + 1 for r in run.rows]
        span = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"
        run.title = (f"phase {k}/{len(runs)}: {run.phase} of {_conn_name(a, run.conn)}, "
                     f"{len(frames)} packet(s), {span}")
    return runs


# --------------------------------------------------------------------------- drawing


def _flags(value: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if value & bit) or "."


def _client_label(a, i: int) -> str:
    """The client end of row i's connection: its nick, else address:port."""
    conn = int(a.tracking.conn[i])
    if conn < 0:
        return "-"
    nick = a.chat.nick_of_conn.get(conn)
    if nick:
        return nick
    host, port = a.connections[conn].client
    return f"{host}:{port}"


def ladder_row(a, i: int, width: int | None = None) -> str:
    """Row i as one ladder line: ``frame  time  client |--- flags seq ack len --->| server  step``.

    ``width`` cuts the line to fit a terminal; None keeps it whole.
    """
    p, t = a.packets, a.tracking
    head = f"{int(p.frame[i]):5d} {float(p.time[i]) - float(p.time[0]):10.6f}  "
    if int(t.conn[i]) < 0:
        return head + "(not a tracked TCP segment)"
    label = (f" {_flags(int(p.flags[i]))} seq={int(t.rel_seq[i])} ack={int(t.rel_ack[i])} "
             f"len={int(p.payload_len[i])} ")
    step = a.step(i)
    body = label.center(max(len(label) + 2, ARROW_WIDTH), "-")
    arrow = f"|{body}->|" if int(t.direction[i]) == 0 else f"|<-{body}|"
    row = f"{head}{_client_label(a, i)[:14]:>14} {arrow} server  {step.name if step else ''}"
    return row if width is None else row[:width]


def _chat_lines(a, i: int) -> list[str]:
    out = []
    for line in a.lines_of_frame(int(a.packets.frame[i])):
        name = a.chat.nick_of_conn.get(line.conn) or f"connection {line.conn}"
        arrow = f"{name} -> server" if line.direction == 0 else f"server -> {name}"
        text = line.text if line.text is not None else "(invalid line)"
        out.append(f"  chat: {arrow}, {line.kind}: {text!r}")
    return out


def describe(a, i: int) -> list[str]:
    """What to say about row i: where it goes, its step, its note, its chat lines."""
    p, t = a.packets, a.tracking
    frame = int(p.frame[i])
    conn = int(t.conn[i])
    if conn < 0:
        return [f"frame {frame}: {a.note(i)}"]
    step = a.step(i)
    who = _client_label(a, i)
    route = f"{who} -> server" if int(t.direction[i]) == 0 else f"server -> {who}"
    return [
        f"frame {frame}: {route}, connection {conn}, phase {a.phase[i]}",
        f"  step: {step.name if step else '-'}",
        f"  note: {a.note(i)}",
        *_chat_lines(a, i),
    ]


# --------------------------------------------------------------------------- keys


class Keys:
    """Where the replay's commands come from: single keys on a terminal, lines otherwise.

    :meth:`read` returns ``"next"``, ``"previous"`` or ``"quit"`` (end of input is quit).
    """

    NEXT, PREVIOUS, QUIT = "next", "previous", "quit"
    KEYMAP = {"": NEXT, " ": NEXT, "\r": NEXT, "\n": NEXT, "n": NEXT, "j": NEXT,
              "p": PREVIOUS, "b": PREVIOUS, "k": PREVIOUS,
              "q": QUIT, "\x03": QUIT, "\x04": QUIT, "\x1b": QUIT}

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._saved = None

    def __enter__(self) -> Keys:
        if self.tty and os.name != "nt":
            import termios
            import tty

            fd = self.stream.fileno()
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # one key at a time, no echo; Ctrl-C still interrupts
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> str:
        while True:
            if self.tty:
                key = self._read_key()
            else:
                line = self.stream.readline()
                if not line:
                    return self.QUIT  # end of input
                key = line.strip().lower()[:1]
            command = self.KEYMAP.get(key.lower())
            if command:
                return command

    def _read_key(self) -> str:
        if os.name == "nt":
            import msvcrt

            return msvcrt.getwch()
        data = os.read(self.stream.fileno(), 1)
        return data.decode("latin-1") if data else "\x04"


# --------------------------------------------------------------------------- the replay


def replay(a, *, by: str = "packet", auto: bool = False, delay: float = 0.0,
           keys: Keys | None = None, out: TextIO | None = None, screen: bool | None = None) -> int:
    """Step through analysis ``a``; returns how many stops were shown before the end or quit.

    ``screen`` (default: ``out`` is a terminal) redraws the screen at each stop;
    otherwise each stop is printed after the previous one.
    """
    from .analysis import format_summary

    out = out if out is not None else sys.stdout
    if screen is None:
        screen = hasattr(out, "isatty") and out.isatty()
    plan = stops(a, by)
    width = shutil.get_terminal_size((100, 24)).columns if screen else None
    if not plan:
        print(f"{a.path}: no packets", file=out)
        return 0
    if not auto and keys is not None and not keys.tty and not screen:
        print(f"{HELP} (one per line)", file=out)
    shown = 0
    k = 0
    while True:
        stop = plan[k]
        shown += 1
        if screen:
            rows = [r for s in plan[: k + 1] for r in s.rows]
            rows.sort()
            print(CLEAR + f"{a.path}   {stop.title}", file=out)
            for r in rows[-LADDER_ROWS:]:
                print(ladder_row(a, r, width), file=out)
            print("", file=out)
            for r in stop.rows[-6:]:  # a long phase: its last packets in detail
                print("\n".join(describe(a, r)), file=out)
            if not auto:
                print(f"\n[{HELP}]", file=out, end="", flush=True)
        else:
            print(f"\n== {stop.title}", file=out)
            for r in stop.rows:
                print(ladder_row(a, r, width), file=out)
                print("\n".join(describe(a, r)), file=out)
        out.flush()
        last = k == len(plan) - 1
        if auto:
            if last:
                break
            if delay > 0:
                time.sleep(delay)  # pacing for the reader, not synchronisation
            k += 1
            continue
        assert keys is not None
        command = keys.read()
        if command == Keys.QUIT:
            print(f"\nstopped at {stop.title}", file=out)
            return shown
        if command == Keys.PREVIOUS:
            k = max(0, k - 1)
        elif last:
            break
        else:
            k += 1
    print("\n" + format_summary(a), file=out)
    return shown


def replay_main(capture: str, *, auto: bool = False, delay: float = 0.0, by: str = "packet",
                redrive: bool = False, backend: str = "auto", out: str | None = None) -> int:
    """``tcpchatx replay``: 0 on success (and for a re-drive that reproduced the session),
    1 for a re-drive that differs, 2 for an error (said in one line on stderr)."""
    from .analysis import CaptureFormatError, analyze

    def fail(message: str) -> int:
        print(f"tcpchatx replay: error: {message}", file=sys.stderr)
        return 2

    if delay < 0:
        return fail(f"--delay must be 0 or more seconds, not {delay:g}")
    if by not in ("packet", "phase"):
        return fail(f"--by must be 'packet' or 'phase', not {by!r}")
    if not os.path.exists(capture):
        return fail(f"{capture}: no such file. The reference captures are in captures/ "
                    "(tcpchatx references rebuilds them).")
    if os.path.isdir(capture):
        return fail(f"{capture} is a directory; give a .pcap or .pcapng file")
    try:
        analysis = analyze(capture)
    except CaptureFormatError as error:
        return fail(f"{capture}: not a capture this lab can read: {error}")
    except OSError as error:
        return fail(f"{capture}: {error.strerror or error}")
    try:
        if redrive:
            return _redrive(capture, analysis, backend, out)
        if auto:
            replay(analysis, by=by, auto=True, delay=delay)
        else:
            with Keys() as keys:
                replay(analysis, by=by, keys=keys)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into head
        return 0
    return 0


def _redrive(capture: str, analysis, backend: str, out: str | None) -> int:
    from .capture import CaptureError
    from .redrive import RedriveError, default_out, format_result, redrive

    out = out or default_out(capture)
    print(f"Re-driving {capture} against a fresh server, capturing into {out} ...")
    try:
        result = redrive(capture, out, backend=backend, analysis=analysis)
    except (RedriveError, CaptureError, ValueError) as error:
        print(f"tcpchatx replay: error: {error}", file=sys.stderr)
        return 2
    for note in result.original.notes:
        print(f"note: {note}")
    print(f"new capture: {result.path}")
    print(format_result(result.original, result.new, result.differences))
    return 0 if not result.differences else 1


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``replay`` sub-command's options (cli.py wires them in)."""
    parser.add_argument("capture", help="a .pcap or .pcapng file of chat traffic")
    parser.add_argument("--by", choices=["packet", "phase"], default="packet",
                        help="halt at every packet (default) or at every phase of a connection")
    parser.add_argument("--auto", action="store_true", help="play without waiting for keys")
    parser.add_argument("--delay", type=float, default=1.0,
                        help="with --auto: seconds between steps (default: 1; 0 for no pause)")
    parser.add_argument("--redrive", action="store_true",
                        help="play the captured session again against a fresh server, capture "
                        "it and compare (needs capture rights)")
    parser.add_argument("--backend", choices=["auto", "dumpcap", "scapy"], default="auto",
                        help="capture backend for --redrive")
    parser.add_argument("--out", help="with --redrive: the new capture "
                        "(default: out/redrive/NAME.redrive.pcapng)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tcpchatx replay", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return replay_main(args.capture, auto=args.auto, delay=args.delay, by=args.by,
                       redrive=args.redrive, backend=args.backend, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
