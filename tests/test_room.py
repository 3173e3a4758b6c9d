"""The chat rules, fed events with a fake clock: no sockets, no threads."""

from __future__ import annotations

from tcpchatx import protocol as p
from tcpchatx.protocol import InvalidUtf8, Kind, Line, LineTooLong
from tcpchatx.room import ChatRoom, Disconnect, Held, Released, RoomConfig, Send, SetNick


def sends(actions) -> list[tuple[tuple[int, ...], str]]:
    return [(a.to, a.line) for a in actions if isinstance(a, Send)]


def joined_room(*nicks: str, **config) -> ChatRoom:
    room = ChatRoom(RoomConfig(**config))
    for client, nick in enumerate(nicks, start=1):
        room.connect(client, 0.0)
        room.receive(client, Line(nick), 0.0)
    return room


def test_connect_asks_for_a_nickname_then_welcomes_and_announces():
    room = ChatRoom()
    assert sends(room.connect(1, 0.0))[0][1].startswith("*** Welcome")
    room.connect(2, 0.0)
    room.receive(1, Line("alice"), 0.0)
    actions = room.receive(2, Line("bob"), 0.0)
    assert SetNick(2, "bob") in actions
    assert sends(actions) == [
        ((2,), "--- Welcome, bob! Online (2): alice, bob. Type /help for commands."),
        ((1,), "*** bob joined (2 online)"),
    ]


def test_long_name_lists_stay_within_the_line_limit():
    nicks = [f"student{n:03d}" for n in range(300)]
    room = joined_room(*nicks, max_clients=400)
    [(_, reply)] = sends(room.receive(1, Line("/online"), 1))
    assert reply.startswith("--- Online (300): student000, student001,")
    assert reply.endswith(" more") and len(reply.encode()) < 1024
    room.connect(999, 1)
    welcome = sends(room.receive(999, Line("latecomer"), 1))[0][1]
    assert "Online (301)" in welcome and len(welcome.encode()) < 1024


def test_broadcast_goes_to_everyone_else_and_never_back_to_the_sender():
    room = joined_room("alice", "bob", "carol")
    assert sends(room.receive(2, Line("hi all"), 1.0)) == [((1, 3), "<bob> hi all")]


def test_duplicate_nicknames_after_casefold_and_nfkc_are_refused():
    room = joined_room("alice")
    room.connect(2, 0.0)
    for attempt in ["ALICE", "Ａｌｉｃｅ", "server"]:
        [(to, line)] = sends(room.receive(2, Line(attempt), 0.0))
        assert to == (2,) and line.startswith("!!! "), attempt
    assert room.nick_of(2) is None


def test_commands():
    room = joined_room("alice", "bob")
    assert "/msg" in sends(room.receive(1, Line("/help"), 1))[0][1]
    assert sends(room.receive(1, Line("/online"), 1)) == [((1,), "--- Online (2): alice, bob")]
    assert sends(room.receive(1, Line("/msg BOB psst"), 1)) == [
        ((2,), "*alice* psst"), ((1,), "--- -> bob: psst"),
    ]
    assert sends(room.receive(1, Line("/msg nobody1 hi"), 1))[0][1].startswith("!!! Nobody")
    assert sends(room.receive(1, Line("/nick ally"), 1)) == [((1, 2), "*** alice is now known as ally")]
    assert sends(room.receive(1, Line("/nick Bob"), 1))[0][1].startswith("!!! ")
    assert sends(room.receive(1, Line("/dance"), 1))[0][1].startswith("!!! Unknown command")
    actions = room.receive(2, Line("/quit"), 1)
    assert Disconnect(2, "quit") in actions
    assert sends(room.disconnect(2, "quit")) == [((1,), "*** bob left (quit, 1 online)")]


def test_refused_lines_get_an_error_to_the_sender_only():
    room = joined_room("alice", "bob")
    for event in [LineTooLong(1024), InvalidUtf8(b"\xff")]:
        assert [to for to, _ in sends(room.receive(1, event, 1))] == [(1,)]


def test_control_characters_are_stripped_and_the_sender_told():
    room = joined_room("alice", "bob")
    assert sends(room.receive(1, Line("hi\x1b[31m red\u202e"), 1)) == [
        ((1,), "!!! Removed 2 control or invisible character(s) from your line."),
        ((2,), "<alice> hi[31m red"),
    ]


def test_nickname_deadline_and_idle_timeout():
    room = joined_room("alice", nick_timeout=5, idle_timeout=60)
    room.connect(2, 10.0)
    assert room.tick(14.0) == []
    actions = room.tick(15.5)
    assert Disconnect(2, "nick-timeout") in actions and Disconnect(1, "idle-timeout") not in actions
    room.receive(1, Line("still here"), 30.0)
    assert Disconnect(1, "idle-timeout") not in room.tick(89.0)
    assert Disconnect(1, "idle-timeout") in room.tick(91.0)


def chat_texts(actions) -> list[str]:
    return [a.line.split("> ", 1)[1] for a in actions if isinstance(a, Send) and a.kind is Kind.CHAT]


def test_flood_control_holds_a_burst_and_passes_it_on_at_the_rate_in_order():
    """50 lines in one recv: 10 go at once (the burst), 40 are held and leave one every
    0.2 s (5 per second), in order; the sender is told once; nothing is lost."""
    room = joined_room("alice", "bob", flood_rate=5, flood_burst=10)
    burst = [f"line {k}" for k in range(50)]
    actions = [a for k, text in enumerate(burst) for a in room.receive(1, Line(text), 100.0)]
    assert chat_texts(actions) == burst[:10]
    assert [a.waiting for a in actions if isinstance(a, Held)] == list(range(1, 41))
    told = [a.line for a in actions if isinstance(a, Send) and a.kind is Kind.ERROR]
    assert told == [p.slow_down_line(5, 10)]
    assert abs(room.next_release(100.0) - 100.2) < 1e-9
    released, now = [], 100.0
    while (at := room.next_release(now)) is not None:
        now = at
        step = room.tick(now)
        released += step
        assert len(chat_texts(step)) == 1  # one at a time, at the rate
    assert chat_texts(released) == burst[10:]
    assert abs(now - 108.0) < 1e-9  # the 40th held line leaves 8 s after the burst
    assert [a.waiting for a in released if isinstance(a, Released)] == list(range(39, -1, -1))


def test_a_few_lines_bunched_by_a_stall_are_held_without_a_word():
    """A stalled network delivers 14 lines in one recv: 10 go (the burst), 4 wait a
    moment; the sender did nothing wrong and is told nothing."""
    room = joined_room("alice", "bob", flood_rate=5, flood_burst=10)
    actions = [a for k in range(14) for a in room.receive(1, Line(f"line {k}"), 100.0)]
    assert [a for a in actions if isinstance(a, Send) and a.kind is Kind.ERROR] == []
    assert len([a for a in actions if isinstance(a, Held)]) == 4
    assert chat_texts(room.tick(100.8)) == ["line 10", "line 11", "line 12", "line 13"]


def test_a_new_burst_after_the_backlog_drained_is_told_again():
    room = joined_room("alice", "bob", flood_rate=1, flood_burst=1)
    first = room.receive(1, Line("a"), 100.0) + room.receive(1, Line("b"), 100.0)
    room.tick(101.0)
    second = room.receive(1, Line("c"), 102.0) + room.receive(1, Line("d"), 102.0)
    slow = [p.slow_down_line(1, 1)]
    assert [a.line for a in first + second if isinstance(a, Send) and a.kind is Kind.ERROR] == slow * 2


def test_a_client_with_more_held_than_the_limit_is_disconnected_for_flooding():
    room = joined_room("alice", "bob", flood_rate=1, flood_burst=3, flood_hold_lines=5)
    results = [room.receive(1, Line(f"m{i}"), 100.0) for i in range(9)]
    assert chat_texts(a for r in results for a in r) == ["m0", "m1", "m2"]
    assert [a.line for a in results[-1] if isinstance(a, Send)] == [p.FLOOD_KICK_LINE]
    assert Disconnect(1, "flooding") in results[-1]
    assert room.next_release(100.0) is None  # nothing kept for it
    assert [a for r in results[:-1] for a in r if isinstance(a, Disconnect)] == []


def test_the_byte_limit_holds_too():
    room = joined_room("alice", "bob", flood_rate=1, flood_burst=1, flood_hold_bytes=2000)
    results = [room.receive(1, Line("x" * 900), 100.0) for _ in range(4)]
    assert Disconnect(1, "flooding") in results[-1]  # 3 held: 2,703 bytes


def test_lines_held_when_the_client_goes_away_still_go_on_before_it_leaves():
    room = joined_room("alice", "bob", flood_rate=1, flood_burst=1)
    for text in ("one", "two", "three"):
        room.receive(1, Line(text), 100.0)
    actions = room.disconnect(1, "connection closed")
    assert chat_texts(actions) == ["two", "three"]
    assert sends(actions)[-1] == ((2,), p.left_line("alice", "connection closed", 1))


def test_a_held_quit_ends_the_connection_in_its_turn():
    room = joined_room("alice", "bob", flood_rate=1, flood_burst=1)
    for text in ("one", "two", "/quit", "after quit"):
        room.receive(1, Line(text), 100.0)
    actions = room.tick(101.0) + room.tick(102.0)
    assert chat_texts(actions) == ["two"] and Disconnect(1, "quit") in actions
    assert room.next_release(102.0) is None  # "after quit" was never sent on
    left = room.disconnect(1, "quit")
    assert chat_texts(left) == [] and "left" in sends(left)[-1][1]


def test_flood_control_off_passes_everything_at_once():
    room = joined_room("alice", "bob", flood_control=False, flood_burst=1)
    actions = [a for k in range(30) for a in room.receive(1, Line(f"m{k}"), 0.0)]
    assert len(chat_texts(actions)) == 30 and room.next_release(0.0) is None


def test_server_full():
    room = ChatRoom(RoomConfig(max_clients=1))
    room.connect(1, 0)
    actions = room.connect(2, 0)
    assert Disconnect(2, "server-full") in actions and "full" in sends(actions)[0][1]


def test_shutdown_says_bye_once_and_no_leave_notices():
    room = joined_room("alice", "bob")
    actions = room.shutdown()
    assert sends(actions) == [((1, 2), "*** Server is shutting down. Bye!")]
    assert room.disconnect(1, "server-stop") == []


def test_every_line_the_room_sends_is_built_by_protocol_and_parses_back():
    """The room writes no text of its own: each line it sends is one that a parser in
    tcpchatx.protocol reads (or one of its constant lines), and its Send.kind is its sigil's."""
    not_one_line = {"parse_server_line", "parse_client_line",  # any line
                    "parse_how_left", "parse_too_slow_reason", "parse_no_fin_reason"}  # fields
    parsers = [f for name, f in vars(p).items() if name.startswith("parse_") and name not in not_one_line]
    constants = {v for name, v in vars(p).items() if name.endswith("_LINE") and isinstance(v, str)}
    room = joined_room("alice", "bob", max_clients=3, nick_timeout=5, idle_timeout=60,
                       flood_rate=1, flood_burst=20, flood_hold_lines=5)
    actions = room.connect(3, 0) + room.connect(4, 0)  # the second is one too many
    for text in ["/online", "ALICE", "server", "", "carol"]:
        actions += room.receive(3, Line(text), 0)
    for text in ["hi", "hi\x1b", "/help", "/online", "/msg bob psst", "/msg", "/msg zed hi",
                 "/me waves", "/me", "/nick Bob", "/nick 9", "/nick ally", "/dance", "/quit"]:
        actions += room.receive(1, Line(text), 0)
    actions += room.receive(2, LineTooLong(1024), 0) + room.receive(2, InvalidUtf8(b"\xff"), 0)
    actions += room.disconnect(1, "quit")
    actions += [a for i in range(30) for a in room.receive(2, Line(f"m{i}"), 1)]  # a flood
    room.connect(5, 1)
    actions += room.tick(7) + room.tick(100) + room.shutdown()
    lines = [a for a in actions if isinstance(a, Send)]
    assert {a.kind for a in lines} == {Kind.CHAT, Kind.PRIVATE, Kind.ACTION, Kind.NOTICE, Kind.REPLY, Kind.ERROR}
    for send in lines:
        read = [f.__name__ for f in parsers if f(send.line) not in (None, False)]
        assert len(read) + (send.line in constants) == 1, send.line
        assert p.parse_server_line(send.line).kind is send.kind, send.line


def test_me_shows_the_others_what_you_do():
    room = joined_room("alice", "bob", "carol")
    [action] = room.receive(1, Line("/me waves"), 1.0)
    assert action == Send((2, 3), "* alice waves", Kind.ACTION, 1)  # never back to alice
    assert sends(room.receive(1, Line("/ME   dances  "), 1.0)) == [((2, 3), "* alice dances")]
    assert sends(room.receive(2, Line("/me //slashes"), 1.0)) == [((1, 3), "* bob //slashes")]
    for bare in ("/me", "/me    ", "/me \u200b"):  # nothing left to show (the last after sanitising)
        assert sends(room.receive(1, Line(bare), 1.0))[-1] == ((1,), "!!! Usage: /me TEXT"), bare


def test_an_action_cannot_pass_for_a_notice_or_paint_a_terminal():
    """The nickname goes first, and the text is sanitised as chat text is: a /me that
    reads like a join, a rename or a shutdown is still alice's action to every parser."""
    room = joined_room("alice", "bob")
    for typed in ("joined (3 online)", "is now known as bob", "left (quit, 1 online)",
                  "*** Server is shutting down. Bye!"):
        [(to, line)] = sends(room.receive(1, Line("/me " + typed), 1.0))
        assert (to, line) == ((2,), "* alice " + typed)
        assert p.parse_action(line) == ("alice", typed)
        assert p.parse_joined(line) is p.parse_renamed(line) is p.parse_left(line) is None
        assert line != p.SHUTDOWN_LINE
    assert sends(room.receive(1, Line("/me \x1b[2J\x1b[Hwaves\u202e \u2066back"), 1.0)) == [
        ((1,), "!!! Removed 4 control or invisible character(s) from your line."),
        ((2,), "* alice [2J[Hwaves back"),
    ]


def test_me_before_a_nickname_is_refused():
    room = ChatRoom()
    room.connect(1, 0.0)
    assert sends(room.receive(1, Line("/me waves"), 0.0)) == [((1,), p.CHOOSE_NICK_FIRST_LINE)]


def test_a_rename_to_the_same_nick_changes_nothing_and_tells_no_one():
    """Nor does a variant that reads the same once cleaned: full-width letters (NFKC),
    a bidi mark (removed from every line)."""
    room = joined_room("alice", "bob")
    for same in ("/nick alice", "/nick \uff41\uff4c\uff49\uff43\uff45", "/nick ali\u200fce"):
        actions = room.receive(1, Line(same), 100.0)
        assert [a for a in actions if not (isinstance(a, Send) and a.to == (1,))] == [], same
        assert not any("now known as" in line for _, line in sends(actions))
    assert room.nick_of(1) == "alice"
    renamed = room.receive(1, Line("/nick Alice"), 101.0)  # a new spelling is a rename
    assert SetNick(1, "Alice", "alice") in renamed


# -- receive_all, the gathering version, against receive, the one to read first ---------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tcpchatx.room import SendLines  # noqa: E402

TEXTS = ["hi", "hello there", "", "   ", "\t", "/nick zed", "/nick alice", "/quit", "/quit bye",
         "/online", "/help", "//not a command", "/msg bob psst", "/bogus", "bell\x07", "rtl\u202eevil",
         "x" * 300, "ünïcödé", " leading space", "/me waves", "/me", "/me joined (3 online)"]
EVENTS = st.one_of(st.sampled_from(TEXTS).map(Line), st.just(LineTooLong(1024)), st.just(InvalidUtf8(b"\xff")))
BATCHES = st.lists(st.tuples(st.sampled_from([1, 2, 3, 4]), st.lists(EVENTS, max_size=12),
                             st.floats(0.0, 2.0)), max_size=12)


def one_by_one(actions):
    """SendLines as the Sends it stands for."""
    out = []
    for action in actions:
        out += action.sends() if isinstance(action, SendLines) else [action]
    return out


@settings(max_examples=300, deadline=None)
@given(batches=BATCHES, flood_control=st.booleans())
def test_receive_all_says_what_receive_says_line_by_line(batches, flood_control):
    """Same rooms, same events: the same actions in the same order, and the same room after."""
    config = {"flood_control": flood_control, "flood_burst": 3, "flood_rate": 2.0}
    plain, gathering = joined_room("alice", "bob", "carol", **config), joined_room("alice", "bob", "carol", **config)
    for room in (plain, gathering):
        room.connect(4, 0.0)  # still choosing a nickname
    now = 0.0
    for client, events, later in batches:
        now += later
        expected = [a for event in events for a in plain.receive(client, event, now)]
        assert one_by_one(gathering.receive_all(client, events, now)) == expected
        assert one_by_one(gathering.tick(now)) == plain.tick(now)
    assert gathering.online() == plain.online()
    assert [gathering.nick_of(c) for c in range(1, 5)] == [plain.nick_of(c) for c in range(1, 5)]


def test_a_run_of_plain_lines_is_one_action_and_a_command_splits_it():
    room = joined_room("alice", "bob", "carol", flood_control=False)
    actions = room.receive_all(1, [Line("one"), Line("two"), Line("/online"), Line("three")], 1.0)
    assert [type(a).__name__ for a in actions] == ["SendLines", "Send", "SendLines"]
    assert actions[0] == SendLines((2, 3), ["<alice> one", "<alice> two"], Kind.CHAT, 1)


def test_quit_with_a_message_tells_the_others_the_message():
    room = joined_room("alice", "bob")
    actions = room.receive(1, Line("/quit see you, bob"), 1.0)
    assert sends(actions) == [((1,), "--- Bye, alice!")]
    [gone] = [a for a in actions if isinstance(a, Disconnect)]
    assert p.parse_how_left(gone.how) == (p.HowLeft.QUIT, "see you, bob")
    notice = sends(room.disconnect(1, gone.how))
    assert notice == [((2,), "*** alice left (quit: see you, bob, 1 online)")]
    assert p.parse_left(notice[0][1]) == ("alice", "quit: see you, bob", 1)  # the whole line, sigil too
    plain = joined_room("alice", "bob").receive(1, Line("/quit"), 1.0)
    assert [a.how for a in plain if isinstance(a, Disconnect)] == [p.HowLeft.QUIT]
