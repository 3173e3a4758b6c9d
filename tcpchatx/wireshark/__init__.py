"""TCPChatX in Wireshark: a Lua dissector for the chat protocol, and a checker.

* ``tcpchatx.lua`` decodes every chat line (kind, nick, text) in Wireshark and tshark;
  :mod:`.dissector` says where it is, installs it, and runs it through tshark.
* :mod:`.verify` reads a capture through the dissector and checks what the README
  promises: 3-way handshakes, a correct broadcast, proper teardowns.

See docs/wireshark.md.
"""

from .dissector import (
    LUA_PATH,
    DissectedLine,
    Dissection,
    DissectorError,
    Segment,
    dissect,
    dissector_main,
    find_tshark,
    install_plugin,
    plugin_dir,
    tshark_command,
)
from .verify import Check, verify, verify_main

__all__ = [
    "LUA_PATH", "Check", "DissectedLine", "Dissection", "DissectorError", "Segment", "dissect",
    "dissector_main", "find_tshark", "install_plugin", "plugin_dir", "tshark_command", "verify",
    "verify_main",
]
