"""The chat rules as a state machine: events in, actions out, no sockets (sans-IO).

Theory of operation
-------------------
The server tells the :class:`ChatRoom` what happened (a client connected, sent a
line, went away, time passed) and the room answers with *actions*: ``Send`` a line
to some recipients, ``SetNick`` (for the event timeline), or ``Disconnect`` a client
once what was queued for it has been sent.  The room never touches a socket or a
clock, so every rule here is tested by feeding it events and a fake ``now``.  Nor
does it write any text: every line it sends is built in :mod:`tcpchatx.protocol`.

Flood control holds, it never drops: a line over the client's rate waits in the
client's own backlog, in order, and :meth:`ChatRoom.tick` passes it on when the
client's token bucket allows (:mod:`tcpchatx.protocol.flood`).  The server asks
:meth:`ChatRoom.next_release` when to call ``tick`` next.

A client is in one of two states::

    CHOOSING_NICK --(valid, unique nickname)--> CHATTING
    either        --(/quit, timeout, EOF)-----> gone

The room is not thread-safe: the server calls it under one lock, which also keeps
every client's view of the conversation in the same order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from . import protocol as p
from .protocol import FrameEvent, InvalidUtf8, Kind, Line, LineTooLong


@dataclass(frozen=True)
class RoomConfig:
    """Limits and timers; the defaults suit a classroom."""

    max_clients: int = 200
    nick_timeout: float = 30.0  # seconds to choose a nickname
    idle_timeout: float = 600.0  # seconds of silence before a chatting client is dropped
    flood_rate: float = 5.0  # lines per second, sustained
    flood_burst: int = 10  # lines at once
    flood_control: bool = True
    flood_hold_lines: int = 500  # lines held for one client before it is disconnected for flooding
    flood_hold_bytes: int = 64 * 1024  # ... or bytes (at 5 lines per second, 500 lines wait 100 s)


@dataclass(frozen=True)
class Send:
    """Queue ``line`` for every client in ``to``."""

    to: tuple[int, ...]
    line: str
    kind: Kind
    sender: int | None = None  # the client whose line caused it, if any


@dataclass(frozen=True)
class SendLines:
    """Queue ``lines``, in order, for every client in ``to``: a run of one sender's chat
    lines, gathered by :meth:`ChatRoom.receive_all` (one action, not one per line)."""

    to: tuple[int, ...]
    lines: list[str]
    kind: Kind
    sender: int | None = None

    def sends(self) -> list[Send]:
        """The same as one ``Send`` per line."""
        return [Send(self.to, line, self.kind, self.sender) for line in self.lines]


@dataclass(frozen=True)
class SetNick:
    client: int
    nick: str
    old: str | None = None


@dataclass(frozen=True)
class Disconnect:
    """Close this client's connection once its queued lines are sent."""

    client: int
    how: str  # a protocol.HowLeft label: quit, nick-timeout, idle-timeout, ...


@dataclass(frozen=True)
class Held:
    """Flood control held a line of ``client``'s (for the event timeline)."""

    client: int
    text: str
    waiting: int  # the client's lines held now, this one included


@dataclass(frozen=True)
class Released:
    """A held line of ``client``'s goes on now (the actions it causes follow)."""

    client: int
    text: str
    waiting: int  # the client's lines still held after it


Action = Send | SendLines | SetNick | Disconnect | Held | Released


@dataclass
class _Member:
    joined_at: float
    last_heard: float
    bucket: p.TokenBucket
    nick: str | None = None  # None while choosing a nickname
    held: deque[FrameEvent] = field(default_factory=deque)  # lines waiting for flood control, in order
    held_bytes: int = 0
    told: bool = False  # the client was told its lines are held (once per backlog, when it reaches a burst)


@dataclass
class ChatRoom:
    config: RoomConfig = field(default_factory=RoomConfig)
    _members: dict[int, _Member] = field(default_factory=dict)
    _by_key: dict[str, int] = field(default_factory=dict)  # nick_key -> client id
    # client id -> everyone else chatting; a broadcast asks for it on every line, so it
    # is kept until someone joins or leaves (a 99-client tuple per line was the server's
    # biggest cost under load).
    _others_cache: dict[int, tuple[int, ...]] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries

    def nick_of(self, client: int) -> str | None:
        member = self._members.get(client)
        return member.nick if member else None

    def online(self) -> list[str]:
        """Nicknames of chatting clients, in joining order."""
        return [m.nick for m in self._members.values() if m.nick]

    def __len__(self) -> int:
        return len(self._members)

    # ------------------------------------------------------------------ events

    def connect(self, client: int, now: float) -> list[Action]:
        """A TCP connection was accepted: ask for a nickname, or refuse if full."""
        if len(self._members) >= self.config.max_clients:
            return [
                self._error(client, p.server_full_line(self.config.max_clients)),
                Disconnect(client, p.HowLeft.SERVER_FULL),
            ]
        bucket = p.TokenBucket(self.config.flood_rate, self.config.flood_burst)
        self._members[client] = _Member(joined_at=now, last_heard=now, bucket=bucket)
        return [Send((client,), p.PROMPT_LINE, Kind.NOTICE)]

    def receive(self, client: int, event: FrameEvent, now: float) -> list[Action]:
        """The client sent a line (or something that was refused as a line)."""
        member = self._members.get(client)
        if member is None:
            return []
        member.last_heard = now
        if self.config.flood_control and (member.held or (
                isinstance(event, Line) and not member.bucket.allow(now))):
            return self._hold(client, member, event)  # behind the lines already held, or over the rate
        return self._process(client, member, event)

    def receive_all(self, client: int, events: list[FrameEvent], now: float) -> list[Action]:
        """Every line one ``recv`` brought, in order: what :meth:`receive` says for each
        (read that one first), except that a run of plain chat lines comes back as one
        ``SendLines``.  Under load a ``recv`` brings hundreds of lines, and most are
        plain chat: this skips the objects :meth:`receive` makes for each of them.

        A line is plain when its client is chatting, nothing of its is held, flood
        control lets it through, and it is not a command, not blank, and has nothing
        to sanitise.  Anything else goes through :meth:`receive` itself."""
        actions: list[Action] = []
        run: list[str] = []
        member = self._members.get(client)
        for event in events:
            if member is not None and member.nick is not None and type(event) is Line:
                text = event.text
                if (not member.held and text[:1] != "/" and not text.isspace() and text
                        and not p.UNSAFE_CHARACTERS.search(text)
                        and (not self.config.flood_control or member.bucket.allow(now))):
                    member.last_heard = now
                    run.append(p.chat_line(member.nick, text))
                    continue
            if run:
                actions.append(SendLines(self._others(client), run, Kind.CHAT, client))
                run = []
            actions += self.receive(client, event, now)
            member = self._members.get(client)  # a command may have changed it (or ended it)
        if run:
            actions.append(SendLines(self._others(client), run, Kind.CHAT, client))
        return actions

    def _process(self, client: int, member: _Member, event: FrameEvent) -> list[Action]:
        """What one line (or a refused one) does, once flood control lets it through."""
        if isinstance(event, LineTooLong):
            return [self._error(client, p.too_long_line(event.limit))]
        if isinstance(event, InvalidUtf8):
            return [self._error(client, p.NOT_UTF8_LINE)]
        text, removed = p.sanitize(event.text)
        actions: list[Action] = []
        if removed:
            actions.append(self._error(client, p.removed_line(removed)))
        if member.nick is None:
            return actions + self._choose_nick(client, member, text)
        line = p.parse_client_line(text)
        if line.kind is Kind.COMMAND:
            return actions + self._command(client, member, line)
        if not line.text.strip():
            return actions  # an empty line says nothing
        others = self._others(client)
        actions.append(Send(others, p.chat_line(member.nick, line.text), Kind.CHAT, client))
        return actions

    def disconnect(self, client: int, how: str) -> list[Action]:
        """The connection is gone (EOF, reset, dropped); tell the others.  Lines still
        held for it arrived before it went: they go on first, at once."""
        member = self._members.get(client)
        actions: list[Action] = []
        if member is not None and member.held:
            drained = self._release(client, member, now=None)
            how = next((a.how for a in drained if isinstance(a, Disconnect) and a.client == client), how)
            actions = [a for a in drained if not (isinstance(a, Disconnect) and a.client == client)]
        member = self._members.pop(client, None)
        self._others_cache.clear()
        if member is None or member.nick is None:
            return actions
        del self._by_key[p.nick_key(member.nick)]
        return actions + [Send(
            self._others(client), p.left_line(member.nick, how, len(self.online())), Kind.NOTICE
        )]

    def next_release(self, now: float) -> float | None:
        """When :meth:`tick` can next pass a held line on (None: no line is held)."""
        waits = [member.bucket.wait(now) for member in self._members.values() if member.held]
        return now + min(waits) if waits else None

    def tick(self, now: float) -> list[Action]:
        """Time passed: pass held lines on as flood control allows; enforce the
        nickname deadline and the idle timeout."""
        actions: list[Action] = []
        for client, member in list(self._members.items()):
            if member.held:
                actions += self._release(client, member, now)
        for client, member in list(self._members.items()):
            if member.nick is None and now - member.joined_at > self.config.nick_timeout:
                actions += [
                    self._error(client, p.nick_timeout_line(self.config.nick_timeout)),
                    Disconnect(client, p.HowLeft.NICK_TIMEOUT),
                ]
            elif member.nick is not None and now - member.last_heard > self.config.idle_timeout:
                actions += [
                    self._error(client, p.idle_timeout_line(self.config.idle_timeout)),
                    Disconnect(client, p.HowLeft.IDLE_TIMEOUT),
                ]
        return actions

    def shutdown(self) -> list[Action]:
        """The server is stopping: pass every held line on, then say goodbye to everyone."""
        actions: list[Action] = []
        for client, member in list(self._members.items()):
            if member.held:
                actions += [a for a in self._release(client, member, now=None) if not isinstance(a, Disconnect)]
        everyone = tuple(self._members)
        self._others_cache.clear()
        self._members.clear()  # nobody is told that the others left: everyone is leaving
        self._by_key.clear()
        if everyone:
            actions.append(Send(everyone, p.SHUTDOWN_LINE, Kind.NOTICE))
        actions += [Disconnect(client, p.HowLeft.SERVER_STOP) for client in everyone]
        return actions

    # ------------------------------------------------------------------ rules

    def _choose_nick(self, client: int, member: _Member, text: str) -> list[Action]:
        if text.startswith("/"):
            command = p.parse_client_line(text)
            if command.command == "quit":
                return [Disconnect(client, p.HowLeft.QUIT)]
            return [self._error(client, p.CHOOSE_NICK_FIRST_LINE)]
        nick, problem = p.nick_problem(text)
        if problem is None and p.nick_key(nick) in self._by_key:
            problem = p.NickProblem.TAKEN
        if problem is not None:
            return [self._error(client, p.nick_refused_line(problem, nick))]
        member.nick = nick
        self._others_cache.clear()
        self._by_key[p.nick_key(nick)] = client
        others = self._others(client)
        online = self.online()
        return [
            SetNick(client, nick),
            self._reply(client, p.welcome_line(nick, online)),
            Send(others, p.joined_line(nick, len(online)), Kind.NOTICE),
        ]

    def _command(self, client: int, member: _Member, line: p.ClientLine) -> list[Action]:
        name, arg = line.command, line.text
        if name == "help":
            return [self._reply(client, p.HELP_LINE)]
        if name == "online":
            return [self._reply(client, p.online_line(self.online()))]
        if name == "quit":  # "/quit see you": the others read "alice left (quit: see you, ...)"
            how = p.how_left(p.HowLeft.QUIT, arg) if arg else p.HowLeft.QUIT
            return [self._reply(client, p.bye_line(member.nick)), Disconnect(client, how)]
        if name == "nick":
            return self._rename(client, member, arg)
        if name == "msg":
            target, _, text = arg.partition(" ")
            return self._private(client, member, target, text.strip())
        if name == "me":  # "/me waves": the others read "* alice waves"
            return self._action(client, member, arg)
        return [self._error(client, p.unknown_command_line(name))]

    def _rename(self, client: int, member: _Member, wanted: str) -> list[Action]:
        nick, problem = p.nick_problem(wanted)
        old = member.nick
        assert old is not None
        if problem is None and self._by_key.get(p.nick_key(nick), client) != client:
            problem = p.NickProblem.TAKEN
        if problem is not None:
            return [self._error(client, p.nick_refused_line(problem, nick))]
        if nick == old:  # (a variant that reads the same, once cleaned): nothing changes, nobody is told
            return []
        del self._by_key[p.nick_key(old)]
        self._by_key[p.nick_key(nick)] = client
        member.nick = nick
        return [
            SetNick(client, nick, old),
            Send(tuple(self._chatting()), p.renamed_line(old, nick), Kind.NOTICE),
        ]

    def _private(self, client: int, member: _Member, target: str, text: str) -> list[Action]:
        if not target or not text:
            return [self._error(client, p.MSG_USAGE_LINE)]
        to = self._by_key.get(p.nick_key(target))
        if to is None:
            return [self._error(client, p.nobody_called_line(target))]
        recipient = self._members[to].nick
        assert member.nick is not None and recipient is not None
        return [
            Send((to,), p.private_line(member.nick, text), Kind.PRIVATE, client),
            self._reply(client, p.private_sent_line(recipient, text)),
        ]

    def _action(self, client: int, member: _Member, text: str) -> list[Action]:
        """Tell the others what the client does.  ``text`` was sanitised with the rest
        of its line; the action line puts the sender's nickname first, so no text
        can pass for a notice."""
        if not text:
            return [self._error(client, p.ACTION_USAGE_LINE)]
        assert member.nick is not None
        return [Send(self._others(client), p.action_line(member.nick, text), Kind.ACTION, client)]

    def _hold(self, client: int, member: _Member, event: FrameEvent) -> list[Action]:
        """Keep a line for later (flood control).  The sender is told once, when a
        burst's worth of its lines wait (a few lines bunched by a stalled network just
        leave a moment later, unremarked); a client that has more held than the limits
        allow is disconnected for flooding."""
        member.held.append(event)
        member.held_bytes += _size(event)
        if len(member.held) > self.config.flood_hold_lines or member.held_bytes > self.config.flood_hold_bytes:
            member.held.clear()
            member.held_bytes = 0
            return [self._error(client, p.FLOOD_KICK_LINE), Disconnect(client, p.HowLeft.FLOODING)]
        actions: list[Action] = [Held(client, _text(event), len(member.held))]
        if not member.told and len(member.held) >= self.config.flood_burst:
            member.told = True
            actions.append(self._error(client, p.slow_down_line(self.config.flood_rate, self.config.flood_burst)))
        return actions

    def _release(self, client: int, member: _Member, now: float | None) -> list[Action]:
        """Pass on the held lines the bucket has tokens for at ``now`` (all of them, when
        ``now`` is None), in order; stop at one that ends the connection (``/quit``)."""
        actions: list[Action] = []
        while member.held:
            event = member.held[0]
            if now is not None and isinstance(event, Line) and not member.bucket.allow(now):
                break
            member.held.popleft()
            member.held_bytes -= _size(event)
            actions.append(Released(client, _text(event), len(member.held)))
            done = self._process(client, member, event)
            actions += done
            if any(isinstance(a, Disconnect) and a.client == client for a in done):
                member.held.clear()
                member.held_bytes = 0
        if not member.held:
            member.told = False
        return actions

    # ------------------------------------------------------------------ helpers

    def _chatting(self) -> list[int]:
        return [c for c, m in self._members.items() if m.nick]

    def _others(self, client: int) -> tuple[int, ...]:
        others = self._others_cache.get(client)
        if others is None:
            others = tuple(c for c, m in self._members.items() if m.nick and c != client)
            self._others_cache[client] = others
        return others

    @staticmethod
    def _reply(client: int, line: str) -> Send:
        """Send a reply line (built in tcpchatx.protocol) to this client alone."""
        return Send((client,), line, Kind.REPLY)

    @staticmethod
    def _error(client: int, line: str) -> Send:
        """Send an error line (built in tcpchatx.protocol) to this client alone."""
        return Send((client,), line, Kind.ERROR)


def _size(event: FrameEvent) -> int:
    """The bytes a held line keeps in memory (what the hard limit counts)."""
    if isinstance(event, Line):
        return len(event.text.encode("utf-8", "surrogatepass")) + 1
    return len(event.raw) if isinstance(event, InvalidUtf8) else 0


def _text(event: FrameEvent) -> str:
    return event.text if isinstance(event, Line) else type(event).__name__
