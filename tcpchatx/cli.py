"""The ``tcpchatx`` command: one sub-command per job of the lab.

Each sub-command parses its arguments here and hands over to the module that does
the work, so this file reads as the lab's table of contents.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections import Counter
from datetime import datetime
from operator import itemgetter
from typing import NoReturn

from . import __version__
from .protocol import DEFAULT_HOST, DEFAULT_PORT
from .room import RoomConfig
from .timeline import TimelineEvent


def port_number(lowest: int):
    """An argparse type: a TCP port from ``lowest`` (0 lets a server pick one) to 65535.
    Anything else is a clear error, not a port the operating system makes of it."""
    def port(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
        if not lowest <= value <= 65535:
            allowed = "0 (any free port) or 1-65535" if lowest == 0 else "1-65535"
            raise argparse.ArgumentTypeError(f"{value} is not a TCP port: use {allowed}")
        return value
    return port


def _add_address(parser: argparse.ArgumentParser, host_help: str, lowest_port: int = 1) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"{host_help} (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=port_number(lowest_port), default=DEFAULT_PORT,
                        help=f"TCP port (default: {DEFAULT_PORT}" + ("; 0: any free port)" if lowest_port == 0 else ")"))


# Commands that only chat: their command line is built without the stories' catalogue,
# which imports the analysis (and numpy): 0.1 s of a client's start, and not installed
# with `pip install tcpchatx` alone.
CHAT_COMMANDS = {"server", "client"}


def build_parser(stories: bool = True) -> argparse.ArgumentParser:
    """The ``tcpchatx`` command line; ``stories=False`` leaves out the names of the
    stories ``scenario`` can play (for a chat command, which does not need them)."""
    parser = argparse.ArgumentParser(
        prog="tcpchatx",
        description="TCPChatX: a TCP chat you can run, capture and study.",
        epilog="Start a server in one terminal (tcpchatx server), then chat from others "
        "(tcpchatx client --nick alice). Try `tcpchatx COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"tcpchatx {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    server = commands.add_parser(
        "server", help="run the chat server",
        description="Run the chat server until Ctrl-C. Every event is printed with a timestamp.",
    )
    _add_address(server, "address to listen on; 0.0.0.0 lets other machines in", lowest_port=0)
    defaults = RoomConfig()
    server.add_argument("--max-clients", type=int, default=defaults.max_clients,
                        help=f"refuse connections past this many (default: {defaults.max_clients})")
    server.add_argument("--nick-timeout", type=float, default=defaults.nick_timeout,
                        help=f"seconds a new client has to choose a nickname (default: {defaults.nick_timeout:g})")
    server.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout,
                        help=f"seconds of silence before a client is dropped (default: {defaults.idle_timeout:g})")
    server.add_argument("--no-flood-control", action="store_true",
                        help="let clients send as fast as they like (for load tests)")
    server.add_argument("--quiet", action="store_true", help="print only joins, leaves and errors")
    server.set_defaults(run=_run_server)

    client = commands.add_parser(
        "client", help="chat from this terminal",
        description="Chat from this terminal. Type /help once connected. "
        "With stdin from a pipe it sends each line and prints what arrives.",
    )
    _add_address(client, "server to connect to")
    client.add_argument("--nick", help="your nickname (otherwise the server asks for one)")
    client.add_argument("--no-color", action="store_true", help="plain text, no colours")
    client.set_defaults(run=_run_client)

    capture = commands.add_parser(
        "capture", help="record a port's loopback traffic to a pcapng file",
        description="Capture 'tcp port PORT' on the loopback interface until Ctrl-C (or "
        "--duration), then report packets captured and dropped. Needs capture rights: "
        "see docs/capture.md for the ways without root.",
    )
    capture.add_argument("--port", type=port_number(1), default=DEFAULT_PORT,
                         help=f"the chat server's port (default: {DEFAULT_PORT})")
    capture.add_argument("--backend", choices=["auto", "dumpcap", "scapy"], default="auto",
                         help="dumpcap (default where installed; reports drops) or scapy")
    capture.add_argument("--out", default="capture.pcapng",
                         help="output file; a bare name goes into captures/ (default: capture.pcapng)")
    capture.add_argument("--duration", type=float, help="stop after this many seconds")
    capture.set_defaults(run=_run_capture)

    annotate = commands.add_parser(
        "annotate", help="explain a capture: connections, close shapes, a text ladder",
        description="Read a pcap or pcapng file of chat traffic and explain it: one line per "
        "TCP connection (Zeek conn_state and history, close kind, who closed first) and a "
        "ladder of every packet with its step and the chat text.",
    )
    annotate.add_argument("capture", help="a .pcap or .pcapng file")
    annotate.add_argument("--json", action="store_true",
                          help="print the machine format instead (docs/analysis-json.md)")
    annotate.add_argument("--comments", metavar="OUT.pcapng",
                          help="also write a copy whose packet comments tell the story (Wireshark shows them)")
    annotate.add_argument("--max-packets", type=int, default=200,
                          help="longest ladder to print (default: 200; 0 for all); a ladder "
                               "is drawn when its packets go between at most 24 endpoints")
    annotate.add_argument("--plain", action="store_true",
                          help="analyse the slow and obvious way, one packet and one line at a time "
                               "(tcpchatx.analysis.plain, the code to read first): the same output, "
                               "much slower on a big capture")
    annotate.add_argument("--check-checksums", action="store_true",
                          help="check every TCP checksum, as Zeek does by default: a segment with a "
                               "wrong one is written c/C in the Zeek history and otherwise ignored "
                               "there. Off by default, as in Wireshark: a capture made on the sending "
                               "host (every loopback capture) has checksums the network card fills "
                               "in later")
    annotate.add_argument("--all", action="store_true",
                          help="list every connection and message in the summary "
                               "(default: the first 50 of each; the rest are counted)")
    annotate.set_defaults(run=_run_annotate, needs_no_teardown=True)

    verify = commands.add_parser(
        "verify", help="check a capture with Wireshark's tshark: handshake, broadcast, teardown",
        description="Run tshark (with the TCPChatX dissector) on a capture and print pass/fail "
        "checks: every connection opened with a correct 3-way handshake, every chat message "
        "reached every other client exactly once, every close was proper.",
    )
    verify.add_argument("capture", help="a .pcap or .pcapng file")
    verify.add_argument("--port", type=port_number(1), help="the chat server's port, if not 25000 "
                        "(usually found by the dissector's heuristic)")
    verify.set_defaults(run=_run_verify)

    dissector = commands.add_parser(
        "dissector", help="where the Wireshark dissector is, and how to install it",
        description="Print the path of the TCPChatX Lua dissector for Wireshark and how to "
        "install it; with --install, copy it into your personal Wireshark plugins folder.",
    )
    dissector.add_argument("--install", action="store_true", help="copy it into your plugins folder")
    dissector.set_defaults(run=_run_dissector)

    SCENARIOS, LAB_STORIES = {}, {}
    if stories:
        try:  # the stories' catalogue needs the lab's libraries, which chatting does not
            from .scenarios import SCENARIOS
            from .scenarios.lab import LAB_STORIES
        except ModuleNotFoundError:
            pass  # a chat-only install: playing a story says what to install
    names = [*SCENARIOS, *LAB_STORIES] or None

    scenario = commands.add_parser(
        "scenario", help="play one scripted story and capture it",
        description="Play a scripted story (an in-process server and clients) while "
        "capturing it, then print its annotation. Stories on loopback: "
        + "; ".join(f"{name}: {s.summary}" for name, s in SCENARIOS.items())
        + ". Stories across the lab's router (Linux; both ends captured): "
        + "; ".join(f"{name}: {s.summary}" for name, s in LAB_STORIES.items()),
    )
    scenario.add_argument("name", choices=names, metavar="NAME",
                          help="one of: " + ", ".join(names or ["(install tcpchatx[analysis])"]))
    scenario.add_argument("--out", help="capture file (default: out/NAME.pcapng); a lab story "
                          "writes each of its captures (client's view, server's view) into its folder")
    scenario.add_argument("--mode", choices=["auto", "live", "rootless"], default="auto",
                          help="live capture (needs rights) or a rootless namespace (Linux)")
    scenario.add_argument("--backend", choices=["auto", "dumpcap", "scapy"], default="auto")
    scenario.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                          help="a story parameter, e.g. --param clients=4 --param nagle=false")
    scenario.set_defaults(run=_run_scenario)

    references = commands.add_parser(
        "references", help="regenerate the reference captures in captures/",
        description="Play and capture every scenario, annotate it, and write captures/ "
        "and its README index (the files students use when they cannot capture).",
    )
    references.add_argument("names", nargs="*", help="only these scenarios (default: all)")
    references.add_argument("--out", default=None, help="folder (default: the repository's captures/)")
    references.add_argument("--mode", choices=["auto", "live", "rootless"], default="auto")
    references.add_argument("--backend", choices=["auto", "dumpcap", "scapy"], default="auto")
    references.add_argument("--lab", action="store_true",
                            help="the lab stories across the router instead, into captures/lab/ (Linux)")
    references.set_defaults(run=_run_references)

    from . import replay

    replay_parser = commands.add_parser(
        "replay", help="step through a capture in the terminal, or re-drive it live",
        description="Step through a capture packet by packet (Enter/space/n next, p back, "
        "q quit) or phase by phase, with the ladder so far and each packet's note; "
        "--auto plays it by itself. --redrive plays the recorded chat session again "
        "against a live server while capturing, and compares the two captures.",
    )
    replay.add_arguments(replay_parser)
    replay_parser.set_defaults(run=_run_replay)

    demo = commands.add_parser(
        "demo", help="a whole lab session: chat, capture, annotation, figures",
        description="Start a server, let three clients chat while the traffic is captured, "
        "annotate it, print a ladder, and write the annotated capture and figures to a folder. "
        "Without capture rights it uses the shipped reference capture.",
    )
    demo.add_argument("--out", default="out/demo", help="folder for the results (default: out/demo)")
    demo.add_argument("--mode", choices=["auto", "live", "rootless", "reference"], default="auto")
    demo.add_argument("--backend", choices=["auto", "dumpcap", "scapy"], default="auto")
    demo.set_defaults(run=_run_demo)
    return parser


def _format_event(event) -> str:
    stamp = datetime.fromtimestamp(event.wall).strftime("%H:%M:%S.%f")[:-3]
    who = f"#{event.client}" if event.client is not None else ""
    if event.nick:
        who += f" {event.nick}"
    peer = f" {event.peer[0]}:{event.peer[1]}" if event.peer else ""
    recipients = ""
    if event.recipients:  # a room of 100 would print 99 numbers on every line
        many = len(event.recipients) > RECIPIENTS_LISTED
        recipients = f" -> {len(event.recipients)} clients" if many else f" -> {list(event.recipients)}"
    return f"[{stamp}] {event.kind:<13} {who}{peer} {event.detail}{recipients}".rstrip()


RECIPIENTS_LISTED = 8


class _EventPrinter:
    """Prints the server's timeline from its own thread, a screenful at a time.

    It reads the timeline as a notebook would, a few times a second
    (:meth:`tcpchatx.timeline.Timeline.since`): printing as the server records would
    let a slow terminal (or a pipe nobody reads) freeze every client, and handing each
    event over would cost the server's busiest path for every line it relays.  When
    more came than anyone can read (a flood), it prints how many lines of each kind it
    skipped, then the last few in full: the skipped ones cost nothing to format.  Who
    came, went or was cut off is always printed.  If the output stops taking lines
    for so long that the timeline lets go of events not yet printed, they are counted.
    """

    WAKE_EVERY = 0.05  # seconds: pacing the output, not waiting for anything
    SHOWN_WHEN_BUSY = 20  # events printed in full when more than SCREENFUL came at once
    SCREENFUL = 200
    PER_LINE = {"line-received", "queued", "sent", "held", "released"}  # the kinds a flood multiplies

    def __init__(self, timeline, kinds: set[str] | None = None) -> None:
        self._timeline = timeline
        self._kinds = kinds  # print only these (None: every kind)
        self._closing = threading.Event()
        self.skipped = 0  # let go of by the timeline before they were printed
        self._thread = threading.Thread(target=self._run, name="event-printer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        place = 0
        while True:
            closing = self._closing.wait(self.WAKE_EVERY)
            rows, now = self._timeline.since(place)
            self.skipped += now - place - len(rows)
            place = now
            if self._kinds is not None:
                rows = [row for row in rows if row[2] in self._kinds]
            if rows:
                _say("\n".join(self._lines(rows)))
            if closing:
                return

    def _lines(self, rows: list[tuple]) -> list[str]:
        """The lines to print for ``rows`` (TimelineEvent's fields; the kind is third)."""
        lines = []
        if len(rows) > self.SCREENFUL:  # a flood: per-line events counted, not printed
            earlier, shown = rows[: -self.SHOWN_WHEN_BUSY], rows[-self.SHOWN_WHEN_BUSY:]
            kinds = Counter(map(itemgetter(2), earlier))
            counts = [(kind, n) for kind, n in kinds.most_common() if kind in self.PER_LINE]
            skipped = sum(n for _, n in counts)
            lines.append(f"... busy: {skipped:,} events not shown "
                         f"({', '.join(f'{n:,} {kind}' for kind, n in counts)}) ...")
            if skipped < len(earlier):  # who came, went or was cut off: always shown
                shown = [row for row in earlier if row[2] not in self.PER_LINE] + shown
            rows = shown
        return lines + [_format_event(TimelineEvent(*row)) for row in rows]

    def close(self) -> None:
        """Print what the timeline holds that is not printed yet, then stop."""
        self._closing.set()
        self._thread.join()
        if self.skipped:
            _say(f"({self.skipped} events were not printed: the output could not keep up)")


def _say(text: str) -> None:
    """Print a line of the server's console in one write.  If the console went away
    (``tcpchatx server | head``), the server goes on serving without one."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        try:  # later writes, and the flush at exit, go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


def _run_server(args: argparse.Namespace) -> int:
    from .server import ChatServer

    config = RoomConfig(
        max_clients=args.max_clients,
        nick_timeout=args.nick_timeout,
        idle_timeout=args.idle_timeout,
        flood_control=not args.no_flood_control,
    )
    quiet_kinds = {"listening", "nick-set", "left", "behind", "caught-up", "dropped", "stopped"}
    server = ChatServer(args.host, args.port, config=config, record_lines=not args.quiet)
    printer = _EventPrinter(server.timeline, quiet_kinds if args.quiet else None)
    try:
        server.start()
    except OSError as error:
        printer.close()
        print(f"tcpchatx server: {error}", file=sys.stderr)
        return 1
    # One write: the event printer writes from its own thread, and print() writes the
    # text and its newline separately (the two start-up lines could merge).
    _say(_banner(server.host, server.port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    _say("\nStopping: saying goodbye to every client...")
    server.stop()
    printer.close()
    return 0


def _banner(host: str, port: int) -> str:
    """How to connect: from this machine, and, when the server listens on every
    interface, from another machine on the network (its LAN address, not 0.0.0.0)."""
    from .lan import is_every_interface, lan_addresses

    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not is_every_interface(host):
        option = "" if host == DEFAULT_HOST else f" --host {host}"
        return (f"Chat server on {where}. Connect with: tcpchatx client{option} --port {port}  "
                f"(or: nc {host} {port}). Ctrl-C stops it.")
    here = f"tcpchatx client --port {port}"
    addresses = lan_addresses(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if not addresses:
        return (f"Chat server on {where}. Connect with: {here}  (this machine has no "
                "network address for others to use). Ctrl-C stops it.")
    lan = addresses[0]
    others = f" (also: {', '.join(addresses[1:])})" if len(addresses) > 1 else ""
    return (f"Chat server on {where}. Connect with: {here} on this machine; from another "
            f"machine on your network: tcpchatx client --host {lan} --port {port}  (or: nc {lan} "
            f"{port}){others}. Ctrl-C stops it.")


def _run_client(args: argparse.Namespace) -> int:
    from .terminal import run_terminal_client

    return run_terminal_client(args.host, args.port, args.nick, color=False if args.no_color else None)


def _run_capture(args: argparse.Namespace) -> int:
    from .capture.cli import capture_main

    return capture_main(args.port, args.out, backend=args.backend, duration=args.duration)


def _run_annotate(args: argparse.Namespace) -> int:
    # This process exists for one analysis: it tunes itself for that (tcpchatx.memory).
    from .memory import release_freed_memory, tuned_for_analysis, warm_up_heap_beside

    analysing = threading.Event()
    warm_up_heap_beside(_file_size(args.capture), until=analysing)  # while numpy is imported
    from .analysis import (
        CaptureFormatError,
        analyze,
        analyze_plainly,
        format_summary,
        write_annotated,
        write_json,
    )
    from .analysis.text import SUMMARY_ITEMS, ladder_rows

    analysing.set()  # the warm-up stops here: the analysis needs both cores
    try:
        with tuned_for_analysis():
            read = analyze_plainly if args.plain else analyze
            analysis = read(args.capture, check_checksums=args.check_checksums)
    except FileNotFoundError:
        print(f"tcpchatx annotate: no such file: {args.capture}", file=sys.stderr)
        return 1
    except CaptureFormatError as error:
        print(f"tcpchatx annotate: {args.capture} is not a capture we can read: {error}", file=sys.stderr)
        return 1
    try:
        if args.json:
            # streams: a big capture needs no giant dict
            write_json(analysis, sys.stdout, after_each_list=release_freed_memory)
            print()
        else:
            print(format_summary(analysis, max_items=None if args.all else SUMMARY_ITEMS))
            print()
            for row in ladder_rows(analysis, max_packets=args.max_packets or None):
                print(row)  # --max-packets 0 on a big capture: rows go out as they are drawn
        sys.stdout.flush()  # here, not at exit, so a reader that left is noticed below
    except BrokenPipeError:
        # The reader left (``tcpchatx annotate big.pcap --json | head``): that is fine.
        # Point stdout at /dev/null so Python's exit-time flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.comments:
        written = write_annotated(analysis, args.comments)
        print(f"Annotated copy: {written} (Wireshark: View > Packet Comments, or filter frame.comment)",
              file=sys.stderr)
    return 0


def _file_size(path: str) -> int:
    """The file's size in bytes; 0 if it cannot be read (the command then says why)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _run_verify(args: argparse.Namespace) -> int:
    from .wireshark.verify import verify_main

    return verify_main(args.capture, port=args.port)


def _run_dissector(args: argparse.Namespace) -> int:
    from .wireshark.dissector import dissector_main

    return dissector_main(install=args.install)


def _parse_params(pairs: list[str]) -> dict:
    """``clients=4`` -> {"clients": 4}: numbers, true/false, else text."""
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"tcpchatx: --param wants KEY=VALUE, not {pair!r}")
        lowered = text.lower()
        if lowered in ("true", "false"):
            params[key] = lowered == "true"
        else:
            try:
                params[key] = int(text)
            except ValueError:
                try:
                    params[key] = float(text)
                except ValueError:
                    params[key] = text
    return params


def _run_scenario(args: argparse.Namespace) -> int:
    from .analysis import format_ladder, format_summary
    from .capture import CaptureError
    from .scenarios import run_scenario
    from .scenarios.lab import LAB_STORIES

    if args.name in LAB_STORIES:
        return _run_lab_story(args)

    out = args.out or f"out/{args.name}.pcapng"
    try:
        run = run_scenario(args.name, out, mode=args.mode, backend=args.backend,
                           **_parse_params(args.param))
    except (CaptureError, TypeError, ValueError) as error:
        print(f"tcpchatx scenario: {error}", file=sys.stderr)
        return 1
    analysis = run.analyze()
    print(format_summary(analysis))
    print()
    print(format_ladder(analysis, max_packets=200))
    print(f"\nCaptured ({run.mode}, {run.capture.backend}): {run.path}")
    return 0


def _run_lab_story(args: argparse.Namespace) -> int:
    """A story across the lab's router: every capture it wrote, and why each resend happened."""
    from pathlib import Path

    from .analysis.why import explain
    from .capture import CaptureError
    from .capture.errors import RootlessUnavailableError
    from .netlab import run_in_lab
    from .netlab.references import LAB_CAPTURES, view_pairs
    from .scenarios.lab import LAB_STORIES

    folder = Path(args.out).parent if args.out else Path("out")
    folder.mkdir(parents=True, exist_ok=True)
    story = LAB_STORIES[args.name]
    print(f"Playing {args.name} across the lab's router: {story.summary} ...", file=sys.stderr)
    try:
        outcome = run_in_lab(f"tcpchatx.netlab.stories:{story.function}",
                             {"out_dir": str(folder), **_parse_params(args.param)})
    except RootlessUnavailableError as error:
        print(f"tcpchatx scenario: the lab network needs namespaces, which this machine does not offer: "
              f"{error}\nIts reference captures are in {LAB_CAPTURES}/{args.name}*-view.pcapng "
              "(open them in Wireshark, or tcpchatx annotate them).", file=sys.stderr)
        return 1
    except (CaptureError, TypeError, ValueError) as error:
        print(f"tcpchatx scenario: {error}", file=sys.stderr)
        return 1
    for views in view_pairs(outcome):
        print(f"Wrote {views['client']}\n  and {views['server']}")
        for why in explain(views["client"], views["server"]):
            print(f"  - {why.sentence()}")
    print(f"\nOpen them in Wireshark, or: tcpchatx annotate {view_pairs(outcome)[0]['client']}")
    return 0


def _run_references(args: argparse.Namespace) -> int:
    from .capture import CaptureError
    from .references import CAPTURES, regenerate

    if args.lab:
        from pathlib import Path

        from .netlab.references import LAB_CAPTURES
        from .netlab.references import regenerate as regenerate_lab

        try:
            written = regenerate_lab(Path(args.out) if args.out else LAB_CAPTURES, args.names or None,
                                     progress=lambda text: print(text, file=sys.stderr))
        except (CaptureError, KeyError) as error:
            print(f"tcpchatx references: {error}", file=sys.stderr)
            return 1
        print(f"Wrote {len(written)} lab capture(s).")
        return 0
    try:
        written = regenerate(args.out or CAPTURES, args.names or None, backend=args.backend,
                             mode=args.mode)
    except (CaptureError, KeyError) as error:
        print(f"tcpchatx references: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {len(written)} reference capture(s).")
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from .replay import replay_main

    return replay_main(args.capture, auto=args.auto, delay=args.delay, by=args.by,
                       redrive=args.redrive, backend=args.backend, out=args.out)


def _run_demo(args: argparse.Namespace) -> int:
    from .capture import CaptureError
    from .demo import run_demo

    try:
        run_demo(args.out, mode=args.mode, backend=args.backend)
    except CaptureError as error:
        print(f"tcpchatx demo: {error}\nTry: tcpchatx demo --mode reference", file=sys.stderr)
        return 1
    return 0


# What `pip install tcpchatx` leaves out (pyproject's [analysis] extra).
ANALYSIS_LIBRARIES = {"numpy", "pandas", "matplotlib", "scapy", "pyshark"}


def command() -> int:
    """The ``tcpchatx`` command (pyproject's ``[project.scripts]``).

    It is a process of its own, so a command that needs no clean-up may end it
    without tearing it down (:func:`_exit_at_once`).  ``python -m tcpchatx`` and
    ``main()`` never do: they may run inside another program (``%run -m tcpchatx``
    in a notebook, a test), which must live on.
    """
    return main(exit_at_once=True)


def main(argv: list[str] | None = None, exit_at_once: bool = False) -> int:
    # No command multiplies matrices: numpy's BLAS needs no worker threads.  Started
    # with numpy, one spins on the second core while a short command runs, taking
    # the core the analysis's own threads need.
    # Only works before numpy is imported, which the commands do lazily.
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(stories=not argv or argv[0] not in CHAT_COMMANDS).parse_args(argv)
    try:
        code = args.run(args)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] not in ANALYSIS_LIBRARIES:
            raise
        print(f"tcpchatx {args.command}: needs the lab's libraries ({error.name} is not installed). "
              "Install them with: pip install \"tcpchatx[analysis]\" (or \"tcpchatx[lab]\" for the "
              "notebooks too). Chatting (server, client) needs none of them.", file=sys.stderr)
        return 1
    if exit_at_once and getattr(args, "needs_no_teardown", False):
        _exit_at_once(code)
    return code


def _exit_at_once(code: int) -> NoReturn:
    """End the process without tearing it down, once its output is out.

    After a big ``annotate``, freeing its objects one by one and finalising the
    interpreter is work no one waits for.  Only for
    commands that need no clean-up (``needs_no_teardown``): no atexit handler, no
    thread left to join, every file they wrote closed.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:  # a reader that left (BrokenPipeError) changes nothing: we are done
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
