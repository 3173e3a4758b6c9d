"""The terminal chat client: what a student types into and reads from.

Theory of operation
-------------------
Two things happen at once: the student types, and lines arrive from the server.
So the work is split in two:

* a **receiver** thread owns the receiving side of the socket: ``recv`` ->
  :class:`~tcpchatx.protocol.LineSplitter` -> :func:`render` -> print;
* the **main** thread owns the keyboard and the sending side of the socket.

Every line is sanitised before it is printed (:func:`~tcpchatx.protocol.sanitize`),
even though our own server already strips control characters: the client must
not trust whichever server it is connected to to keep its terminal unpainted.

There are two ways to run, chosen by :func:`run_terminal_client`:

**Interactive** (stdin and stdout are terminals).  prompt_toolkit draws the input
line; ``patch_stdout()`` makes every print from the receiver thread appear *above*
that line and then redraws it, so a message that arrives mid-typing never
overwrites what is half-typed.  When the terminal gets narrower it re-wraps what
was drawn, and :mod:`tcpchatx.reflow` tells prompt_toolkit where that left the
line being typed, so that no ghost copy of it stays behind.

**Piped** (``printf 'alice\\nhello\\n' | tcpchatx client``).  Each line of stdin is
sent as it comes; at the end of stdin we send ``/quit`` and wait for the server to
close the connection first, so a script sees every reply before we exit.

Leaving is the same in both: send ``/quit``, the server answers and sends its FIN,
the receiver reads to the end of the stream, then we close our side.
"""

from __future__ import annotations

import io
import os
import queue
import socket
import sys
import threading
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from colorama import just_fix_windows_console
from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.patch_stdout import patch_stdout

from .protocol import (
    MAX_LINE_BYTES,
    PROMPT_LINE,
    FrameEvent,
    InvalidUtf8,
    Kind,
    Line,
    LineSplitter,
    LineTooLong,
    ServerLine,
    check_nick,
    encode_line,
    nick_key,
    notice_line,
    parse_client_line,
    parse_renamed,
    parse_server_line,
    sanitize,
    split_long_line,
)
from .protocol.endings import why_it_ended
from .reflow import follow_rewrapping, terminal_rewraps

STDIN_LINE_BYTES = 64 * 1024  # a piped line longer than this is not sent (said on stderr)
CONNECT_TIMEOUT = 5.0  # seconds to wait for the 3-way handshake
QUIT_WAIT_INTERACTIVE = 2.0  # seconds to wait for the server's FIN after Ctrl-C or /quit
QUIT_WAIT_PIPED = 5.0  # a script waits longer: the server may still be answering its lines
RECEIVE_MAX_LINE = 64 * 1024  # longest server line we show; longer ones are dropped

# --------------------------------------------------------------------------- colours

RESET = "\x1b[0m"
DIM = "\x1b[2m"
ITALIC = "\x1b[3m"  # what a nick does (/me), beside what it says
STYLE_OF_KIND = {
    Kind.PRIVATE: "\x1b[35m",  # magenta
    Kind.NOTICE: "\x1b[2;33m",  # dim yellow
    Kind.REPLY: "\x1b[36m",  # cyan
    Kind.ERROR: "\x1b[1;31m",  # bold red
}
# Nick colours avoid the colours that already mean a kind of line (red, magenta, cyan, yellow).
NICK_STYLES = ("\x1b[32m", "\x1b[34m", "\x1b[92m", "\x1b[94m", "\x1b[1;32m", "\x1b[1;34m")


def nick_style(nick: str) -> str:
    """The same nick gets the same colour in every run and on every machine.

    ``hash()`` would not do: Python salts it per process.
    """
    return NICK_STYLES[zlib.crc32(nick_key(nick).encode()) % len(NICK_STYLES)]


def use_color(color: bool | None, stream: TextIO | None = None) -> bool:
    """``color`` forces it on or off; ``None`` means: only on a terminal, unless NO_COLOR is set."""
    if color is not None:
        return color
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR"):  # https://no-color.org: set and not empty
        return False
    return bool(stream is not None and stream.isatty())


def render(raw: str, color: bool, now: datetime | None = None) -> str:
    """One server line as the student sees it: ``[HH:MM:SS]``, then the line.

    The line is sanitised first, so whatever the server sent cannot move the
    cursor, clear the screen, set the window title or reverse the text.  The only
    escape codes in the result are the colours we add ourselves.
    """
    text, _ = sanitize(raw)
    stamp = f"[{(now or datetime.now()).strftime('%H:%M:%S')}]"
    if not color:
        return f"{stamp} {text}"
    line = parse_server_line(text)
    if line.kind is Kind.CHAT and line.nick is not None:
        said = f"{nick_style(line.nick)}<{line.nick}>{RESET} {line.text}"
    elif line.kind is Kind.ACTION and line.nick is not None:  # in the nick's colour, never a notice's
        said = f"{nick_style(line.nick)}* {line.nick}{RESET} {ITALIC}{line.text}{RESET}"
    else:
        said = f"{STYLE_OF_KIND[line.kind]}{text}{RESET}"
    return f"{DIM}{stamp}{RESET} {said}"


# --------------------------------------------------------------------------- nickname


class NickTracker:
    """Knows our nickname from what we sent and what the server answered (no I/O).

    While we have no nickname, every line we send that is not a command is a
    nickname attempt, and the server answers it with an error (refused) or a
    reply (welcome).  Later, ``/nick`` changes are announced to everyone as
    ``*** OLD is now known as NEW``.
    """

    def __init__(self, wanted: str | None = None) -> None:
        self.nick: str | None = None
        self._wanted = wanted

    def sent(self, text: str) -> None:
        if self.nick is None and not text.startswith("/"):
            self._wanted = text

    def received(self, line: ServerLine) -> None:
        if self.nick is None:
            if line.kind is Kind.REPLY and self._wanted is not None:
                normalised, _ = check_nick(self._wanted)  # the server keeps the NFKC form
                self.nick = normalised or self._wanted.strip()
            return
        if line.kind is Kind.NOTICE:
            renamed = parse_renamed(notice_line(line.text))  # a parser reads the whole line
            if renamed is not None and renamed[0] == self.nick:
                self.nick = renamed[1]


# --------------------------------------------------------------------------- receiving


class Receiver(threading.Thread):
    """Reads server lines until the server closes; shows each one; then says so.

    ``closed`` is set once the stream has ended, after the last line was shown;
    ``error`` says why, if it ended with an error (a reset) rather than a FIN.
    A callback given to :meth:`when_closed` runs once the stream has ended: in this
    thread, or at once if it already has.
    """

    def __init__(self, sock: socket.socket, show: Callable[[str], None], tracker: NickTracker):
        super().__init__(name="terminal-receiver", daemon=True)
        self.sock = sock
        self.show = show
        self.tracker = tracker
        self.closed = threading.Event()
        self.error: str | None = None
        self.first_line: str | None = None  # what the server said first and last: why it
        self.last_line: str | None = None  # ended (tcpchatx.protocol.endings)
        self._on_close: list[Callable[[], None]] | None = []  # None: the callbacks have run
        self._on_close_lock = threading.Lock()

    def run(self) -> None:
        splitter = LineSplitter(RECEIVE_MAX_LINE)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    break
                for event in splitter.feed(data):
                    self._handle(event)
        except ConnectionResetError:
            self.error = "the server reset the connection (RST)"
        except OSError as error:
            self.error = error.strerror or str(error)
        finally:
            self.closed.set()
            with self._on_close_lock:
                callbacks, self._on_close = self._on_close or [], None
            for callback in callbacks:
                callback()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the stream has ended.  A server that closes at once
        may end it before the caller gets here: then the callback runs now, in the
        caller's thread, rather than never."""
        with self._on_close_lock:
            if self._on_close is not None:
                self._on_close.append(callback)
                return
        callback()

    def _handle(self, event: FrameEvent) -> None:
        if isinstance(event, LineTooLong):
            self.show(f"(a line longer than {event.limit} bytes came from the server; not shown)")
            return
        if isinstance(event, InvalidUtf8):
            text = event.raw.decode("utf-8", errors="replace")
        else:
            text = event.text
        clean, _ = sanitize(text)
        if self.first_line is None:
            self.first_line = clean
        self.last_line = clean
        self.tracker.received(parse_server_line(clean))
        self.show(clean)


# --------------------------------------------------------------------------- connecting


class CannotConnect(Exception):
    """The connection could not be opened; the message says what to do."""


def open_connection(host: str, port: int) -> socket.socket:
    """The 3-way handshake, or a CannotConnect that a student can act on."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except ConnectionRefusedError:
        raise CannotConnect(
            f"Cannot connect to {where}: connection refused. Is the server running, on port {port}? "
            f"Start one with: tcpchatx server --port {port}"
        ) from None
    except socket.gaierror as error:
        raise CannotConnect(f"Cannot connect to {where}: unknown host ({error.strerror}).") from None
    except TimeoutError:
        raise CannotConnect(
            f"Cannot connect to {where}: no answer within {CONNECT_TIMEOUT:g} s. "
            "Is the address right, and does a firewall let it through?"
        ) from None
    except OSError as error:
        raise CannotConnect(f"Cannot connect to {where}: {error.strerror or error}.") from None
    sock.settimeout(None)
    return sock


def send_line(sock: socket.socket, text: str) -> bool:
    """Send one line, as several if it is too long for the server (the server would
    refuse it whole); False if the connection is already gone."""
    pieces = split_long_line(text, MAX_LINE_BYTES)
    try:
        sock.sendall(b"".join(encode_line(piece) for piece in pieces))
    except OSError:
        return False
    return True


def is_quit(text: str) -> bool:
    """Will the server take this line as ``/quit``?  (Its own parser decides.)"""
    return parse_client_line(text).command == "quit"


def leave(sock: socket.socket, receiver: Receiver, wait: float, *, quit_sent: bool = False) -> bool:
    """Say ``/quit`` and wait for the server's FIN; True if it came in time."""
    if not quit_sent:
        send_line(sock, "/quit")
    return receiver.closed.wait(wait)


def close(sock: socket.socket, receiver: Receiver) -> None:
    """Close our side; wake the receiver first if it is still reading."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already reset, or never fully open
    if receiver.is_alive():
        receiver.join(1.0)
    sock.close()


def report_end(receiver: Receiver, expected: bool) -> int:
    """Tell the student why the connection ended; 1 if they did not ask for it."""
    ending = why_it_ended(receiver.first_line, receiver.last_line, expected, receiver.error)
    if ending.message:
        print(ending.message, file=sys.stderr, flush=True)
    return 1 if ending.unexpected else 0


# --------------------------------------------------------------------------- piped mode

_STDIN_EOF = object()
_SERVER_CLOSED = object()


def _read_stdin_lines(events: queue.Queue) -> None:
    """Put each stdin line on ``events``, then ``_STDIN_EOF``.

    Reads the file descriptor with ``os.read``, not ``sys.stdin``: this thread may
    still be blocked here when the program exits, and a thread holding the lock of
    ``sys.stdin`` at interpreter shutdown is a fatal error.
    """
    splitter = LineSplitter(STDIN_LINE_BYTES)  # longer lines than the server takes: we split them
    fd = sys.stdin.fileno()
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data and splitter.pending:
            data = b"\n"  # a last line without a newline is still a line
        elif not data:
            events.put(_STDIN_EOF)
            return
        for event in splitter.feed(data):
            if isinstance(event, Line):
                events.put(event.text)
            else:
                print("(a line of input was too long or not UTF-8; not sent)", file=sys.stderr)


def run_piped(sock: socket.socket, receiver: Receiver) -> int:
    """Send stdin line by line; at its end, ``/quit`` and wait for the server's close.

    Exit code 0 once the server has closed the connection, 1 if it did not within
    QUIT_WAIT_PIPED seconds (a script should know its last lines may be unanswered).
    """
    events: queue.Queue = queue.Queue()
    receiver.when_closed(lambda: events.put(_SERVER_CLOSED))
    threading.Thread(target=_read_stdin_lines, args=(events,), name="terminal-stdin", daemon=True).start()
    quit_sent = False
    while True:
        item = events.get()
        if item is _SERVER_CLOSED:
            return report_end(receiver, expected=quit_sent)
        if item is _STDIN_EOF:
            break
        if quit_sent:
            continue  # nothing goes after /quit
        receiver.tracker.sent(item)
        send_line(sock, item)  # if the connection is gone, _SERVER_CLOSED is on its way
        quit_sent = is_quit(item)
    if leave(sock, receiver, QUIT_WAIT_PIPED, quit_sent=quit_sent):
        return report_end(receiver, expected=True)
    print(
        f"The server did not close the connection within {QUIT_WAIT_PIPED:g} s of /quit; "
        "closing it from this side.",
        file=sys.stderr,
    )
    return 1


# --------------------------------------------------------------------------- interactive mode


class ServerClosed(Exception):
    """Ends the prompt: the server closed the connection while the student was typing."""


class PromptStopper:
    """Ends a running prompt from the receiver thread when the server closes.

    ``Application.exit()`` may only run in the prompt's event loop, and only while
    a prompt is running.  The receiver sets ``closed`` *before* it looks for a
    running loop, and every prompt checks ``closed`` in ``pre_run`` *after* its
    loop is set, so whichever comes second sees the other: no prompt is left
    waiting for a server that has gone.
    """

    def __init__(self, app: Application, closed: threading.Event) -> None:
        self.app = app
        self.closed = closed

    def pre_run(self) -> None:
        if self.closed.is_set():
            self.app.exit(exception=ServerClosed())

    def on_close(self) -> None:
        loop = self.app.loop
        if loop is None:
            return  # between prompts: the next pre_run sees ``closed``
        try:
            loop.call_soon_threadsafe(self._exit_if_running)
        except RuntimeError:
            pass  # that prompt's loop has just ended: the next pre_run sees ``closed``

    def _exit_if_running(self) -> None:
        future = self.app.future
        if future is not None and not future.done():
            self.app.exit(exception=ServerClosed())


def run_interactive(sock: socket.socket, receiver: Receiver, color: bool) -> int:
    """Prompt for lines with prompt_toolkit while the receiver prints above the prompt."""
    tracker = receiver.tracker

    def prompt_text() -> ANSI | str:
        nick = tracker.nick
        if nick is None:
            return "nickname> "
        return ANSI(f"{nick_style(nick)}{nick}{RESET}> ") if color else f"{nick}> "

    session: PromptSession[str] = PromptSession()
    if terminal_rewraps(os.environ):  # no ghost of the typed line when the terminal narrows
        follow_rewrapping(session.app)
    stopper = PromptStopper(session.app, receiver.closed)
    receiver.when_closed(stopper.on_close)
    with patch_stdout(raw=True):  # raw: let our colour codes through
        receiver.start()
        while True:
            try:
                text = session.prompt(prompt_text, pre_run=stopper.pre_run)
            except ServerClosed:
                return report_end(receiver, expected=False)
            except (KeyboardInterrupt, EOFError):  # Ctrl-C, Ctrl-D
                leave(sock, receiver, QUIT_WAIT_INTERACTIVE)
                return report_end(receiver, expected=True)
            if not text.strip():
                continue
            tracker.sent(text)
            send_line(sock, text)  # if the connection is gone, the prompt stopper says so
            if is_quit(text):
                leave(sock, receiver, QUIT_WAIT_INTERACTIVE, quit_sent=True)
                return report_end(receiver, expected=True)


# --------------------------------------------------------------------------- entry point


def run_terminal_client(host: str, port: int, nick: str | None, color: bool | None = None) -> int:
    """``tcpchatx client``: chat from this terminal; returns the exit code.

    With ``nick`` it is sent as the first line; otherwise the student (or the first
    line of piped stdin) answers the server's question.  ``color`` forces colours
    on or off; by default they are on for a terminal unless NO_COLOR is set.
    Exit codes: 0 the student left, 1 could not connect, or the connection ended
    without the student asking (the message on stderr says why).
    """
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    color = use_color(color)
    if color:
        just_fix_windows_console()  # ANSI codes on old Windows consoles; no-op elsewhere
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a nick the console cannot encode is not a crash
    try:
        sock = open_connection(host, port)
    except CannotConnect as error:
        print(error, file=sys.stderr)
        return 1

    def show(text: str) -> None:
        if nick and text == PROMPT_LINE:
            return  # "Choose a nickname": --nick already did, and the answer follows
        try:
            print(render(text, color), flush=True)
        except (BrokenPipeError, ValueError):
            pass  # stdout went away (e.g. piped into `head`); keep reading until the close

    tracker = NickTracker(nick)
    receiver = Receiver(sock, show, tracker)
    try:
        if nick:
            send_line(sock, nick)
        if interactive:
            return run_interactive(sock, receiver, color)
        receiver.start()
        return run_piped(sock, receiver)
    except KeyboardInterrupt:  # Ctrl-C in piped mode
        leave(sock, receiver, QUIT_WAIT_INTERACTIVE)
        return report_end(receiver, expected=True)
    finally:
        close(sock, receiver)
