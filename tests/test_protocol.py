"""The sans-IO protocol core: framing, sanitising, nicknames, line kinds, every server
line built and parsed back, flood control."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpchatx import protocol as p
from tcpchatx.protocol import (
    MAX_LINE_BYTES,
    NICK_MAX_CHARS,
    InvalidUtf8,
    Kind,
    Line,
    LineSplitter,
    LineTooLong,
    NickProblem,
    TokenBucket,
    check_nick,
    encode_line,
    nick_key,
    nick_problem,
    parse_client_line,
    parse_server_line,
    sanitize,
)

STREAM = "hi\r\nh\u00e9llo w\u00f6rld \u2603\nd\u00e9j\u00e0 vu \U0001f600\r\n\nlast line\n".encode()
EXPECTED = [Line("hi"), Line("héllo wörld ☃"), Line("déjà vu 😀"), Line(""), Line("last line")]


def feed_in_pieces(pieces: list[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> list:
    splitter = LineSplitter(max_line_bytes)
    events = []
    for piece in pieces:
        events += splitter.feed(piece)
    return events


def test_one_stream_cut_at_every_pair_of_split_points():
    """Every way of cutting the stream into three chunks gives the same lines,
    including cuts inside multi-byte characters and between \\r and \\n."""
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            assert feed_in_pieces([STREAM[:i], STREAM[i:j], STREAM[j:]]) == EXPECTED, (i, j)


def test_byte_by_byte():
    assert feed_in_pieces([bytes([b]) for b in STREAM]) == EXPECTED


line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=60
)


@given(lines=st.lists(line_text, max_size=12), cuts=st.lists(st.integers(0, 2000), max_size=10),
       crlf=st.booleans())
def test_any_lines_any_chunking(lines, cuts, crlf):
    ending = b"\r\n" if crlf else b"\n"
    stream = b"".join(text.encode() + ending for text in lines)
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    assert feed_in_pieces(pieces) == [Line(text) for text in lines]


@given(sizes=st.lists(st.integers(0, 80), min_size=1, max_size=8), chunk=st.integers(1, 50))
def test_over_long_lines_are_refused_once_and_memory_stays_bounded(sizes, chunk):
    limit = 32
    stream = b"".join(b"x" * size + b"\n" for size in sizes)
    splitter = LineSplitter(limit)
    events = []
    for start in range(0, len(stream), chunk):
        events += splitter.feed(stream[start : start + chunk])
        assert splitter.pending <= limit + 1
    expected = [Line("x" * s) if s <= limit else LineTooLong(limit) for s in sizes]
    assert events == expected


raw_line = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),  # any bytes: invalid UTF-8, \r inside
    line_text.map(str.encode),
    st.integers(0, 40).map(lambda n: b"y" * n),  # around the limit below
    st.sampled_from([b"", b"\r", b"a\r", b"\r\r", b"plain chat"]),
)


@given(lines=st.lists(raw_line, min_size=3, max_size=20), tail=raw_line, limit=st.sampled_from([8, 32, 1024]))
def test_whole_lines_in_one_recv_read_as_one_line_at_a_time(lines, tail, limit):
    """A recv of many lines takes the fast path (an ASCII block decoded and split at
    once); byte by byte, every line goes through the rule for one line.  They agree,
    on any bytes: non-ASCII, invalid UTF-8, \\r, lines over the limit, a partial end."""
    stream = b"\n".join(lines) + b"\n" + tail
    whole = LineSplitter(limit)
    at_once = whole.feed(stream)
    one_at_a_time = feed_in_pieces([bytes([b]) for b in stream], limit)
    assert at_once == one_at_a_time
    assert len([e for e in at_once if not isinstance(e, LineTooLong)]) <= len(lines)


def test_a_line_of_exactly_the_limit_passes_with_crlf_split():
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcd\r") == []
    assert splitter.feed(b"\n") == [Line("abcd")]
    assert splitter.feed(b"abcde\n") == [LineTooLong(4)]


def test_invalid_utf8_is_refused_and_the_next_line_survives():
    events = feed_in_pieces([b"ok\n\xff\xfe bad\nfine\n"])
    assert events == [Line("ok"), InvalidUtf8(b"\xff\xfe bad"), Line("fine")]


def test_sanitize_removes_terminal_and_invisible_tricks_but_keeps_tabs_and_text():
    evil = "a\x1b[2J\x07b\x7f\x85c\u202eevil\u200bd\tz \u00e9\U0001f600"
    clean, removed = sanitize(evil)
    assert clean == "a[2Jbcevild\tz é😀"
    assert removed == 6  # ESC, BEL, DEL, NEL (C1), RLO, ZWSP


def test_nickname_rules():
    assert check_nick("alice") == ("alice", None)
    assert check_nick("  Bob_2 ")[0] == "Bob_2"
    assert check_nick("Ａｌｉｃｅ")[0] == "Alice"  # NFKC: full-width letters fold
    for bad in ["", "1abc", "a b", "x" * 17, "server", "SERVER", "al!ce", "<bob>"]:
        nick, reason = check_nick(bad)
        assert nick is None and reason, bad
    assert nick_key("Ａｌｉｃｅ") == nick_key("ALICE") == "alice"
    assert nick_key("Straße") == nick_key("STRASSE")


def test_check_nick_says_the_problem_that_nick_problem_finds():
    cases = {"": NickProblem.EMPTY, "x" * 17: NickProblem.TOO_LONG, "1abc": NickProblem.NO_LETTER_FIRST,
             "al!ce": NickProblem.BAD_CHARACTER, "SERVER": NickProblem.RESERVED, "alice": None}
    for raw, problem in cases.items():
        nick, found = nick_problem(raw)
        assert found is problem, raw
        assert check_nick(raw) == ((nick, None) if problem is None else (None, problem.says(nick)))
    assert check_nick("SERVER") == (None, 'The nickname "SERVER" is reserved.')


@given(st.text(alphabet="ab_-1 .\u00e9\u0663\u00b2\u200b\u2160\u0301\U0001d7d8", max_size=15))
def test_a_nickname_is_letters_digits_underscores_and_dashes(tail):
    """Character by character, as the rule says (checked in bulk by the code)."""
    raw = "a" + tail
    nick = unicodedata.normalize("NFKC", raw.strip())
    allowed = all(ch.isalnum() or ch in "_-" for ch in nick) and len(nick) <= NICK_MAX_CHARS
    assert (check_nick(raw)[0] is not None) == allowed, raw


def test_server_line_kinds_round_trip():
    cases = {
        "<alice> hi <there>": (Kind.CHAT, "alice", "hi <there>"),
        "*bob* psst": (Kind.PRIVATE, "bob", "psst"),
        "* dave waves": (Kind.ACTION, "dave", "waves"),
        "*** carol joined (3 online)": (Kind.NOTICE, None, "carol joined (3 online)"),
        "--- Online (1): dave": (Kind.REPLY, None, "Online (1): dave"),
        "!!! Nickname taken": (Kind.ERROR, None, "Nickname taken"),
    }
    for line, (kind, nick, text) in cases.items():
        parsed = parse_server_line(line)
        assert (parsed.kind, parsed.nick, parsed.text) == (kind, nick, text), line


# --------------------------------------------------------------------------- server lines

# What the protocol allows where a line has a field: valid nicknames (as check_nick
# returns them), relayed texts (sanitised: no control characters, hence no newline),
# words (a command name or a /msg target: no space), counts and {:g} numbers.
nicks = st.text(st.characters(categories=("L", "Nd"), include_characters="_-"),
                min_size=1, max_size=NICK_MAX_CHARS).filter(lambda n: check_nick(n) == (n, None))
# Texts are made of any characters and of the lines' own separators, so that a text
# often looks like the words around it ("bob: a: b", "x, 2 online)").
SEPARATORS = [": ", ", ", ". ", "! ", "> ", "* ", '"', "(", ")", " online)", " and 2 more", " "]
texts = st.lists(st.sampled_from(SEPARATORS) | st.text(st.characters(exclude_categories=("Cs",))),
                 max_size=8).map(lambda parts: sanitize("".join(parts))[0])
words = texts.map(lambda t: t.replace(" ", ""))
counts = st.integers(0, 10**6)
seconds = st.floats(min_value=0, allow_nan=False)


def g(number: float) -> float:
    """What a line keeps of a number it writes with {:g} (6 significant digits)."""
    return float(f"{number:g}")


# Every server line with fields: a strategy for its builder's arguments, the builder,
# its parser, and the fields the parser must give back for those arguments.
PAIRS = {
    "chat": (st.tuples(nicks, texts), p.chat_line, p.parse_chat, lambda nick, text: (nick, text)),
    "private": (st.tuples(nicks, texts), p.private_line, p.parse_private,
                lambda nick, text: (nick, text)),
    "action": (st.tuples(nicks, texts), p.action_line, p.parse_action, lambda nick, text: (nick, text)),
    "joined": (st.tuples(nicks, counts), p.joined_line, p.parse_joined, lambda nick, n: (nick, n)),
    "left": (st.tuples(nicks, texts, counts), p.left_line, p.parse_left,
             lambda nick, how, n: (nick, how, n)),
    "renamed": (st.tuples(nicks, nicks), p.renamed_line, p.parse_renamed,
                lambda old, new: (old, new)),
    "bye": (st.tuples(nicks), p.bye_line, p.parse_bye, lambda nick: nick),
    "private_sent": (st.tuples(nicks, texts), p.private_sent_line, p.parse_private_sent,
                     lambda to, text: (to, text)),
    "server_full": (st.tuples(counts), p.server_full_line, p.parse_server_full, lambda n: n),
    "too_long": (st.tuples(counts), p.too_long_line, p.parse_too_long, lambda n: n),
    "removed": (st.tuples(counts), p.removed_line, p.parse_removed, lambda n: n),
    "nick_refused": (st.tuples(st.sampled_from(NickProblem), nicks), p.nick_refused_line,
                     p.parse_nick_refused,
                     lambda problem, nick: (problem, nick if "{nick}" in problem.value else None)),
    "nick_timeout": (st.tuples(seconds), p.nick_timeout_line, p.parse_nick_timeout, g),
    "idle_timeout": (st.tuples(seconds), p.idle_timeout_line, p.parse_idle_timeout, g),
    "unknown_command": (st.tuples(words), p.unknown_command_line, p.parse_unknown_command,
                        lambda name: name),
    "nobody_called": (st.tuples(words), p.nobody_called_line, p.parse_nobody_called,
                      lambda target: target),
    "slow_down": (st.tuples(seconds, counts), p.slow_down_line, p.parse_slow_down,
                  lambda rate, burst: (g(rate), burst)),
    "disconnected": (st.tuples(texts), p.disconnected_line, p.parse_disconnected,
                     lambda reason: reason),
}
PARSERS = {name: pair[2] for name, pair in PAIRS.items()}
PARSERS.update(welcome=p.parse_welcome, online=p.parse_online)
# Lines without fields: a constant each, recognised with ==.
CONSTANT_LINES = {
    "prompt": p.PROMPT_LINE, "shutdown": p.SHUTDOWN_LINE, "help": p.HELP_LINE,
    "not_utf8": p.NOT_UTF8_LINE, "choose_nick_first": p.CHOOSE_NICK_FIRST_LINE,
    "msg_usage": p.MSG_USAGE_LINE, "action_usage": p.ACTION_USAGE_LINE, "flood_kick": p.FLOOD_KICK_LINE,
}


def readings(line: str) -> list[str]:
    """The names of every parser (or constant) that recognises ``line``."""
    found = [name for name, parse in PARSERS.items() if parse(line) is not None]
    return found + [name for name, constant in CONSTANT_LINES.items() if line == constant]


@pytest.mark.parametrize("name", PAIRS)
@given(data=st.data())
def test_every_server_line_parses_back_to_its_fields_and_only_by_its_own_parser(name, data):
    arguments, build, parse, fields = PAIRS[name]
    args = data.draw(arguments)
    line = build(*args)
    assert parse(line) == fields(*args)
    assert readings(line) == [name]
    assert "\n" not in line


@given(nick=nicks, online=st.lists(nicks, max_size=80))
def test_welcome_and_online_list_parse_back_even_when_cut_short(nick, online):
    """Names past ONLINE_LIST_BYTES are counted, not shown: the line stays well short."""
    welcome, listed = p.welcome_line(nick, online), p.online_line(online)
    assert p.parse_welcome(welcome) == p.Welcome(nick, p.parse_online(listed))
    assert readings(welcome) == ["welcome"] and readings(listed) == ["online"]
    shown = p.parse_online(listed)
    assert shown.count == len(online) == len(shown.names) + shown.more
    assert shown.names == tuple(online[: len(shown.names)])
    if sum(len(n.encode()) + 2 for n in online) <= p.ONLINE_LIST_BYTES:
        assert shown.more == 0
    assert len(encode_line(welcome)) < MAX_LINE_BYTES


def test_the_longest_list_of_the_longest_nicknames_stays_under_the_line_limit():
    widest = "\U00020000" * NICK_MAX_CHARS  # 16 four-byte letters: the most bytes a nickname has
    assert check_nick(widest) == (widest, None)
    welcome = p.welcome_line(widest, [widest] * 1000)
    assert len(encode_line(welcome)) <= MAX_LINE_BYTES
    assert p.parse_welcome(welcome).online.more > 900


@given(nick=nicks, online=st.lists(nicks, max_size=20))
def test_welcome_nick_reads_any_welcome_and_only_welcomes(nick, online):
    """The lenient reading: this server's welcome, and another server's in other words."""
    assert p.welcome_nick(p.welcome_line(nick, online)) == nick
    assert p.welcome_nick(f"--- Welcome, {nick}! Online: {nick}.") == nick
    assert p.parse_welcome(f"--- Welcome, {nick}! Online: {nick}.") is None  # strict: not ours
    assert p.welcome_nick("--- Welcome, Mr Smith! Hello.") == "Mr Smith"  # up to the first "! "
    for line in [p.PROMPT_LINE, p.notice_line(f"Welcome, {nick}! Hi."), p.online_line(online),
                 p.bye_line(nick), p.reply_line(f"Welcome, {nick}!"), p.chat_line(nick, "Welcome, x! ")]:
        assert p.welcome_nick(line) is None, line


def test_a_list_cut_short_reads_back():
    assert p.parse_online("--- Online (3): alice and 2 more") == p.Online(3, ("alice",), 2)
    assert p.parse_online("--- Online (0): ") == p.Online(0, ())
    assert p.parse_online("--- Online (2):  and 2 more") == p.Online(2, (), 2)  # none shown


# What a client might type after /me to pass for the server: the words of notices,
# whole notices, replies and errors with their sigils, escape codes, a bidi override.
SPOOFED_ACTIONS = [
    "joined (3 online)", "is now known as bob", "left (quit, 1 online)",
    p.joined_line("bob", 3), p.renamed_line("alice", "bob"), p.left_line("bob", "quit", 1),
    p.SHUTDOWN_LINE, p.welcome_line("bob", ["bob"]), p.FLOOD_KICK_LINE, "<bob> hi", "*bob* psst",
    "\x1b[2K\r*** bob joined (2 online)", "\u202e(enilno 2) denioj bob", "\x1b]0;pwned\x07waves",
]


@pytest.mark.parametrize("typed", SPOOFED_ACTIONS)
def test_an_action_never_passes_for_another_line(typed):
    """Whatever follows /me, the line others get is the sender's action: no parser reads
    a notice, a rename, a chat line or an error in it, and it carries no escape code."""
    text, _ = sanitize(typed)
    line = p.action_line("alice", text)
    parsed = parse_server_line(line)
    assert (parsed.kind, parsed.nick, parsed.text) == (Kind.ACTION, "alice", text)
    assert readings(line) == ["action"]
    assert p.UNSAFE_CHARACTERS.search(line) is None


def test_lines_without_fields_are_constants_of_their_kind_and_no_parser_claims_them():
    kinds = {"prompt": Kind.NOTICE, "shutdown": Kind.NOTICE, "help": Kind.REPLY}
    for name, line in CONSTANT_LINES.items():
        assert parse_server_line(line).kind is kinds.get(name, Kind.ERROR), name
        assert readings(line) == [name]


@given(label=st.sampled_from([v for k, v in vars(p.HowLeft).items() if k.isupper()]),
       detail=st.none() | texts)
def test_how_a_client_left_parses_back(label, detail):
    assert p.parse_how_left(p.how_left(label, detail)) == (label, detail)


@given(waiting=counts, timeout=seconds)
def test_drop_reasons_parse_back(waiting, timeout):
    assert p.parse_too_slow_reason(p.too_slow_reason(waiting)) == waiting
    assert p.parse_no_fin_reason(p.no_fin_reason(timeout)) == g(timeout)
    assert p.parse_too_slow_reason(p.SERVER_STOPPED) is None


def test_the_bytes_on_the_wire():
    """Every line's exact text (as in captures/*.pcapng): a change here changes the wire."""
    expected = [
        (p.PROMPT_LINE,
         "*** Welcome to TCPChatX! Choose a nickname (1-16 letters, digits, _ or -) and press Enter."),
        (p.welcome_line("carol", ["alice", "bob", "carol"]),
         "--- Welcome, carol! Online (3): alice, bob, carol. Type /help for commands."),
        (p.joined_line("carol", 3), "*** carol joined (3 online)"),
        (p.left_line("alice", p.how_left(p.HowLeft.QUIT), 2), "*** alice left (quit, 2 online)"),
        (p.left_line("bob", p.how_left(p.HowLeft.DROPPED, p.too_slow_reason(7)), 1),
         "*** bob left (dropped: too slow: 7 lines were waiting to be sent, 1 online)"),
        (p.renamed_line("alice", "ally"), "*** alice is now known as ally"),
        (p.SHUTDOWN_LINE, "*** Server is shutting down. Bye!"),
        (p.chat_line("alice", "hello everyone"), "<alice> hello everyone"),
        (p.private_line("alice", "psst, just between us"), "*alice* psst, just between us"),
        (p.action_line("alice", "waves"), "* alice waves"),
        (p.private_sent_line("bob", "psst, just between us"), "--- -> bob: psst, just between us"),
        (p.online_line(["alice", "bob"]), "--- Online (2): alice, bob"),
        (p.bye_line("bob"), "--- Bye, bob!"),
        (p.HELP_LINE,
         "--- Commands: /help this text | /online who is here | /nick NEW change nickname | "
         "/msg NICK TEXT private message | /me TEXT an action (* NICK TEXT) | "
         "/quit [MESSAGE] leave. Anything else is sent to everyone."),
        (p.server_full_line(200), "!!! Server full (200 clients). Try again later."),
        (p.server_full_line(1), "!!! Server full (1 client). Try again later."),
        (p.too_long_line(1024), "!!! Line too long: at most 1024 bytes. It was dropped."),
        (p.NOT_UTF8_LINE, "!!! That line was not valid UTF-8 text. It was dropped."),
        (p.removed_line(2), "!!! Removed 2 control or invisible character(s) from your line."),
        (p.CHOOSE_NICK_FIRST_LINE, "!!! Choose a nickname first (or /quit)."),
        (p.nick_refused_line(NickProblem.TAKEN, "Bob"),
         '!!! The nickname "Bob" is taken. Try another.'),
        (p.nick_refused_line(NickProblem.TOO_LONG, "x" * 17),
         "!!! A nickname has at most 16 characters."),
        (p.nick_timeout_line(30.0), "!!! No nickname after 30 s. Bye."),
        (p.idle_timeout_line(600.0), "!!! Idle for 600 s. Bye."),
        (p.unknown_command_line("dance"), "!!! Unknown command /dance. Type /help for the list."),
        (p.MSG_USAGE_LINE, "!!! Usage: /msg NICK TEXT"),
        (p.ACTION_USAGE_LINE, "!!! Usage: /me TEXT"),
        (p.nobody_called_line("zed"), '!!! Nobody called "zed" is online. Try /online.'),
        (p.slow_down_line(5.0, 10),
         "!!! Slow down: at most 5 lines per second (bursts of 10). Your lines are held and passed on at that pace."),
        (p.FLOOD_KICK_LINE, "!!! Disconnected for flooding."),
        (p.disconnected_line(p.no_fin_reason(10.0)),
         "!!! Disconnected: no FIN from the client within 10 s of ours"),
        (p.disconnected_line(p.SERVER_STOPPED), "!!! Disconnected: server stopped"),
    ]
    for built, text in expected:
        assert built == text


def test_client_line_kinds():
    assert parse_client_line("/msg bob hi there") == parse_client_line("/MSG bob hi there")
    assert parse_client_line("/msg bob hi there").command == "msg"
    assert parse_client_line("/msg bob hi there").text == "bob hi there"
    assert parse_client_line("//not a command").kind is Kind.MESSAGE
    assert parse_client_line("//not a command").text == "/not a command"
    assert parse_client_line("hello").kind is Kind.MESSAGE


def test_encode_line():
    assert encode_line("héllo") == "héllo\n".encode()


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.4) is False  # 0.8 tokens
    assert bucket.allow(0.5) is True  # 1.0 token
    assert bucket.allow(100.0) and bucket.allow(100.0) and bucket.allow(100.0)
    assert bucket.allow(100.0) is False  # never more than the burst


# -- long lines, split by the client -------------------------------------------------

from tcpchatx.protocol import MAX_LINE_BYTES, split_long_line  # noqa: E402


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def test_a_line_that_fits_is_sent_whole():
    assert split_long_line("x" * MAX_LINE_BYTES, MAX_LINE_BYTES) == ["x" * MAX_LINE_BYTES]


def test_260_emoji_become_two_lines_cut_between_characters():
    text = "😀" * 260  # 1,040 bytes: the case
    pieces = split_long_line(text, MAX_LINE_BYTES)
    assert len(pieces) == 2 and "".join(pieces) == text
    assert all(utf8_size(piece) <= MAX_LINE_BYTES for piece in pieces)
    assert all(set(piece) == {"😀"} for piece in pieces)  # no character cut in two


def test_a_long_private_message_stays_private_in_every_piece():
    body = "é" * 1500
    pieces = split_long_line(f"/msg bob {body}", MAX_LINE_BYTES)
    assert len(pieces) == 3 and all(piece.startswith("/msg bob ") for piece in pieces)
    assert "".join(piece.removeprefix("/msg bob ") for piece in pieces) == body
    assert all(utf8_size(piece) <= MAX_LINE_BYTES for piece in pieces)


def test_a_piece_that_would_start_with_a_slash_is_escaped():
    text = "a" * (MAX_LINE_BYTES - 1) + "/quit now"
    pieces = split_long_line(text, MAX_LINE_BYTES)
    assert pieces == ["a" * (MAX_LINE_BYTES - 1), "//quit now"]  # not a /quit
    assert [p.parse_client_line(piece).kind for piece in pieces] == [Kind.MESSAGE, Kind.MESSAGE]
    escaped = split_long_line("//" + "b" * MAX_LINE_BYTES, MAX_LINE_BYTES)
    assert escaped[0].startswith("//b") and "".join(escaped).replace("//", "/", 1) == "/" + "b" * MAX_LINE_BYTES


def test_a_long_action_stays_an_action_in_every_piece():
    body = "/" + "ü" * 1500  # the body's own "/" needs no escape: it follows "/me "
    pieces = split_long_line(f"/me {body}", MAX_LINE_BYTES)
    assert len(pieces) == 3 and all(piece.startswith("/me ") for piece in pieces)
    assert [p.parse_client_line(piece).command for piece in pieces] == ["me"] * 3
    assert "".join(piece.removeprefix("/me ") for piece in pieces) == body
    assert all(utf8_size(piece) <= MAX_LINE_BYTES for piece in pieces)
    assert split_long_line("/ME " + "x" * 2000, MAX_LINE_BYTES)[1].startswith("/me x")
    spaced = split_long_line("/me waves" + " " * 2100 + "and smiles", MAX_LINE_BYTES)  # a middle piece of spaces
    assert all(piece.removeprefix("/me ").strip() for piece in spaced)  # no "/me " of spaces alone
    assert len(spaced) == 2 and spaced[0].startswith("/me waves") and spaced[-1].endswith("and smiles")


def test_other_long_commands_go_whole_for_the_server_to_refuse():
    assert split_long_line("/nick " + "n" * 2000, MAX_LINE_BYTES) == ["/nick " + "n" * 2000]
