"""The TCPChatX wire protocol, with no sockets and no threads (sans-IO).

Theory of operation
-------------------
The protocol is line-based UTF-8 text, so a person can speak it with
``nc localhost 25000``.  Bytes arrive in arbitrary chunks; :class:`LineSplitter`
turns them into complete lines (``\\n`` or ``\\r\\n``), refusing lines longer than
:data:`MAX_LINE_BYTES` and lines that are not valid UTF-8.  Splitting happens on
bytes *before* decoding, so a multi-byte character cut in two by TCP is never
decoded half-way (the byte ``0x0A`` cannot occur inside a UTF-8 sequence).

Every line the server sends starts with a sigil that says its kind, so that a
human, the terminal client, the analysis and the Wireshark dissector can all
tell them apart::

    <alice> hello everyone                  chat     (a broadcast from alice)
    *alice* psst                            private  (alice wrote to you alone)
    * alice waves                           action   (alice typed "/me waves")
    *** bob joined (2 online)               notice   (the server, to everyone)
    --- Online (2): alice, bob              reply    (the server, to you only)
    !!! The nickname "server" is reserved.  error    (the server, to you only)

This package owns the words too: every line the server sends is built by a
function here (``joined_line``) and read back by the parser beside it
(``parse_joined``), as h11 pairs its writers with its readers.  The room and the
server only call the builders; the analysis, the terminal client and the tests
can call the parsers, so nobody else needs to know what a line looks like.

Modules, lowest first (each imports only the ones before it): :mod:`.framing`
(bytes to lines), :mod:`.sanitising`, :mod:`.nicks`, :mod:`.kinds` (sigils,
:func:`parse_server_line`), :mod:`.server_lines` (every server line, built and
parsed), :mod:`.client_lines`, :mod:`.flood` (flood control).  Every public name is
here too: ``from tcpchatx.protocol import joined_line``.  The full description is in
``docs/protocol.md``.
"""

from .client_lines import ClientLine, parse_client_line, split_long_line
from .flood import TokenBucket
from .framing import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENCODING,
    MAX_LINE_BYTES,
    FrameEvent,
    InvalidUtf8,
    Line,
    LineSplitter,
    LineTooLong,
    encode_line,
)
from .kinds import (
    ACTION_FROM_NICK,
    ERROR_SIGIL,
    FROM_NICK,
    NOTICE_SIGIL,
    REPLY_SIGIL,
    Kind,
    ServerLine,
    error_line,
    notice_line,
    parse_server_line,
    reply_line,
)
from .nicks import (
    NICK_MAX_CHARS,
    RESERVED_NICKS,
    NickProblem,
    check_nick,
    nick_key,
    nick_problem,
)
from .sanitising import UNSAFE_CHARACTERS, sanitize
from .server_lines import (
    ACTION_USAGE_LINE,
    BYE_PATTERN,
    CHOOSE_NICK_FIRST_LINE,
    DISCONNECTED_PATTERN,
    FLOOD_KICK_LINE,
    HELP_LINE,
    IDLE_TIMEOUT_PATTERN,
    JOINED_PATTERN,
    LEFT_PATTERN,
    MSG_USAGE_LINE,
    NICK_PROBLEM_PATTERNS,
    NICK_TIMEOUT_PATTERN,
    NO_FIN_PATTERN,
    NOBODY_CALLED_PATTERN,
    NOT_UTF8_LINE,
    ONLINE_LIST_BYTES,
    ONLINE_PATTERN,
    PRIVATE_SENT_PATTERN,
    PROMPT_LINE,
    REMOVED_PATTERN,
    RENAMED_PATTERN,
    SERVER_FULL_PATTERN,
    SERVER_STOPPED,
    SHUTDOWN_LINE,
    SLOW_DOWN_PATTERN,
    TOO_LONG_PATTERN,
    TOO_SLOW_PATTERN,
    UNKNOWN_COMMAND_PATTERN,
    WELCOME_NICK_PATTERN,
    WELCOME_PATTERN,
    HowLeft,
    Online,
    Welcome,
    action_line,
    bye_line,
    chat_line,
    disconnected_line,
    how_left,
    idle_timeout_line,
    joined_line,
    left_line,
    nick_refused_line,
    nick_timeout_line,
    no_fin_reason,
    nobody_called_line,
    online_line,
    parse_action,
    parse_bye,
    parse_chat,
    parse_disconnected,
    parse_how_left,
    parse_idle_timeout,
    parse_joined,
    parse_left,
    parse_nick_refused,
    parse_nick_timeout,
    parse_no_fin_reason,
    parse_nobody_called,
    parse_online,
    parse_private,
    parse_private_sent,
    parse_removed,
    parse_renamed,
    parse_server_full,
    parse_slow_down,
    parse_too_long,
    parse_too_slow_reason,
    parse_unknown_command,
    parse_welcome,
    private_line,
    private_sent_line,
    removed_line,
    renamed_line,
    server_full_line,
    slow_down_line,
    too_long_line,
    too_slow_reason,
    unknown_command_line,
    welcome_line,
    welcome_nick,
)

__all__ = [
    # framing
    "DEFAULT_HOST", "DEFAULT_PORT", "ENCODING", "MAX_LINE_BYTES", "FrameEvent", "InvalidUtf8",
    "Line", "LineSplitter", "LineTooLong", "encode_line",
    # sanitising
    "UNSAFE_CHARACTERS", "sanitize",
    # nicks
    "NICK_MAX_CHARS", "RESERVED_NICKS", "NickProblem", "check_nick", "nick_key", "nick_problem",
    # kinds
    "ACTION_FROM_NICK", "ERROR_SIGIL", "FROM_NICK", "NOTICE_SIGIL", "REPLY_SIGIL", "Kind", "ServerLine",
    "error_line", "notice_line", "parse_server_line", "reply_line",
    # server_lines: lines without fields
    "ACTION_USAGE_LINE", "CHOOSE_NICK_FIRST_LINE", "FLOOD_KICK_LINE", "HELP_LINE", "MSG_USAGE_LINE",
    "NOT_UTF8_LINE", "PROMPT_LINE", "SHUTDOWN_LINE",
    # server_lines: builders and their parsers
    "chat_line", "parse_chat", "private_line", "parse_private", "action_line", "parse_action",
    "joined_line", "parse_joined", "left_line", "parse_left", "renamed_line", "parse_renamed",
    "welcome_line", "parse_welcome", "welcome_nick", "online_line", "parse_online",
    "bye_line", "parse_bye", "private_sent_line", "parse_private_sent",
    "server_full_line", "parse_server_full", "too_long_line", "parse_too_long",
    "removed_line", "parse_removed", "nick_refused_line", "parse_nick_refused",
    "nick_timeout_line", "parse_nick_timeout", "idle_timeout_line", "parse_idle_timeout",
    "unknown_command_line", "parse_unknown_command", "nobody_called_line", "parse_nobody_called",
    "slow_down_line", "parse_slow_down", "disconnected_line", "parse_disconnected",
    # server_lines: how a client left, why the server cut it, who is online
    "HowLeft", "how_left", "parse_how_left", "SERVER_STOPPED", "too_slow_reason",
    "parse_too_slow_reason", "no_fin_reason", "parse_no_fin_reason",
    "ONLINE_LIST_BYTES", "Online", "Welcome",
    # server_lines: the patterns the parsers match
    "BYE_PATTERN", "DISCONNECTED_PATTERN", "IDLE_TIMEOUT_PATTERN", "JOINED_PATTERN",
    "LEFT_PATTERN", "NICK_PROBLEM_PATTERNS", "NICK_TIMEOUT_PATTERN", "NO_FIN_PATTERN",
    "NOBODY_CALLED_PATTERN", "ONLINE_PATTERN", "PRIVATE_SENT_PATTERN", "REMOVED_PATTERN",
    "RENAMED_PATTERN", "SERVER_FULL_PATTERN", "SLOW_DOWN_PATTERN", "TOO_LONG_PATTERN",
    "TOO_SLOW_PATTERN", "UNKNOWN_COMMAND_PATTERN", "WELCOME_NICK_PATTERN", "WELCOME_PATTERN",
    # client_lines
    "ClientLine", "parse_client_line", "split_long_line",
    # flood
    "TokenBucket",
]
