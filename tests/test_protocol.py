"""The sans-IO protocol core: framing, sanitising, nicknames, line kinds, flood control."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from tcpchatx.protocol import (
    MAX_LINE_BYTES,
    NICK_MAX_CHARS,
    InvalidUtf8,
    Kind,
    Line,
    LineSplitter,
    LineTooLong,
    TokenBucket,
    check_nick,
    encode_line,
    nick_key,
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
        "*** carol joined (3 online)": (Kind.NOTICE, None, "carol joined (3 online)"),
        "--- Online (1): dave": (Kind.REPLY, None, "Online (1): dave"),
        "!!! Nickname taken": (Kind.ERROR, None, "Nickname taken"),
    }
    for line, (kind, nick, text) in cases.items():
        parsed = parse_server_line(line)
        assert (parsed.kind, parsed.nick, parsed.text) == (kind, nick, text), line


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
