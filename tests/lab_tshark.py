"""tshark as the oracle of the lab helpers' tests: every TCP packet of a capture as tshark
dissects it, the fields a test names read as numbers, flags or text."""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace


def tshark_packets(path, fields: dict[str, str], flags=frozenset(), texts=frozenset(), floats=frozenset()
                   ) -> tuple[SimpleNamespace, ...]:
    """Every TCP packet of ``path`` (one pass, two-pass analysis off, as the Wireshark GUI):
    each of ``fields`` (name -> tshark field) as an int, a float (``floats``), a boolean
    (``flags``: expert findings, flag bits) or text (``texts``: the Info column, SACK
    edges as tshark's comma-separated text); None where absent."""
    command = ["tshark", "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=,"]
    for field in fields.values():
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def value(name: str, text: str):
        if name in texts:
            return text
        if name in flags:
            return text not in ("", "0")
        if not text:
            return None
        return float(text) if name in floats else int(text)

    return tuple(SimpleNamespace(**{name: value(name, text) for name, text in zip(fields, line.split("\t"))})
                 for line in out.splitlines())


def marks(info: str) -> str:
    """The bracketed marks that tshark's Info column starts with ("[TCP Dup ACK 33#1]")."""
    return re.match(r"((?:\[[^]]*\] ?)*)", info).group(1).strip()


def sack_blocks(p: SimpleNamespace) -> str:
    """tshark's SACK blocks of an ACK (relative), written as the helpers write them."""
    return " ".join(f"{left}-{right}" for left, right in zip(p.sack_le.split(","), p.sack_re.split(",")) if left)
