"""pyshark through tcpchatx.wireshark_view: in a plain process and in a real Jupyter kernel."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from scapy.all import IP, TCP, Ether, wrpcap

from tcpchatx.wireshark_view import format_fields, packet_fields, tshark_children


@pytest.fixture
def handshake_pcap(tmp_path):
    """A SYN, SYN-ACK, ACK written with scapy: tshark decodes it like any capture."""
    c, s = dict(src="127.0.0.1", dst="127.0.0.1"), dict(src="127.0.0.1", dst="127.0.0.1")
    packets = [
        Ether() / IP(**c) / TCP(sport=40000, dport=25000, flags="S", seq=1000, options=[("MSS", 65495)]),
        Ether() / IP(**s) / TCP(sport=25000, dport=40000, flags="SA", seq=5000, ack=1001),
        Ether() / IP(**c) / TCP(sport=40000, dport=25000, flags="A", seq=1001, ack=5001),
    ]
    path = tmp_path / "handshake.pcap"
    wrpcap(str(path), packets)
    return path


def test_fields_of_one_packet_as_wireshark_decodes_them(handshake_pcap):
    fields = packet_fields(handshake_pcap, 2, layers=("tcp",))
    by_name = {f.name: f for f in fields}
    assert by_name["tcp.flags"].value == "0x0012"  # SYN, ACK
    assert by_name["tcp.ack"].value == "1"  # relative: the client's ISN + 1
    assert "Acknowledgment Number: 1" in format_fields(fields)
    assert {f.layer for f in fields} == {"tcp"}
    assert tshark_children() == []


def test_missing_frame_and_file_give_clear_errors(handshake_pcap, tmp_path):
    with pytest.raises(ValueError, match="no frame 9"):
        packet_fields(handshake_pcap, 9)
    with pytest.raises(FileNotFoundError):
        packet_fields(tmp_path / "nope.pcap", 1)
    assert tshark_children() == []


def test_pyshark_inside_a_running_jupyter_kernel_leaves_no_tshark(handshake_pcap):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import asyncio\n"
            "asyncio.get_event_loop().is_running()  # the kernel's own loop: pyshark's trap"
        ),
        nbformat.v4.new_code_cell(
            "from tcpchatx.wireshark_view import packet_fields, format_fields, tshark_children\n"
            f"fields = packet_fields({str(handshake_pcap)!r}, 1, layers=('tcp',))\n"
            "print(format_fields(fields))"
        ),
        nbformat.v4.new_code_cell("print('tshark children:', tshark_children())"),
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()

    def stdout(cell) -> str:
        return "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")

    loop_running = notebook.cells[0].outputs[0]["data"]["text/plain"]
    tree = stdout(notebook.cells[1])
    leftovers = stdout(notebook.cells[2])
    stderr = "".join(o["text"] for c in notebook.cells for o in c.outputs if o.get("name") == "stderr")
    assert stderr == ""  # nothing sprayed into the student's cells
    assert loop_running == "True"  # a plain pyshark call would fail here
    assert "Flags: 0x002 (SYN)" in tree and "Maximum segment size: 65495 bytes" in tree
    assert leftovers.strip() == "tshark children: []"


def test_the_tree_nests_like_wireshark_and_sums_up_the_whole_connection():
    """A FIN before the end of the file: read twice, Wireshark already knows the connection
    was complete (read once it says "Incomplete"); the flag bits sit under Flags."""
    from tcpchatx.references import CAPTURES

    tree = format_fields(packet_fields(CAPTURES / "three-way.pcapng", 9, layers=("tcp",))).splitlines()
    assert "    Conversation completeness: Complete, WITH_DATA (31)" in tree
    flags = tree.index("    Flags: 0x011 (FIN, ACK)")
    assert tree[flags + 1].startswith("        ") and "Reserved" in tree[flags + 1]
    assert "        .... .... ...1 = Fin: Set" in tree
