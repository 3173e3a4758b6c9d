"""Helpers for the notebooks: one call per thing a lab cell does.

    from tcpchatx import lab
    mode = lab.capture_mode()            # live, rootless or reference, and why
    run = lab.run("three-way")           # play + capture (or open the reference capture)
    lab.show_packets(run, phase="teardown")
    lab.check("a FIN consumes one sequence number", ack == seq + 1, "packet 10 ...")

Where things are
----------------
Every name is used as ``lab.NAME``; each lives in the module that has its job:

* ``mode.py``: the capture mode, why it was chosen, and where new captures go;
* ``runs.py``: :class:`LabRun`, and :func:`run`, :func:`run_exercise`, :func:`open_capture`;
* ``playing.py``: what plays a scenario or the exercise where its sockets live;
* ``stories.py``: the lab network's stories (loss, windows, congestion), played or opened;
* ``loss.py``: a story's two views side by side, its resends and why, what arrived out
  of order, the ACKs' RTT samples, and what TCP_INFO said meanwhile;
* ``lossy.py``: a path that loses at random: each resend, what Wireshark calls it, and a tally;
* ``rtt.py``: the retransmission timeout from RTT samples, as RFC 6298 and as Linux compute it;
* ``congestion.py``: a bulk transfer's slow start, tail drops and recoveries, congestion
  controls side by side, and what limited a transfer, as the kernel counts it;
* ``windows.py``: flow control in a story: each ACK's window, scaled; a window that closes,
  its probes and its update; where the bytes of a transfer wait;
* ``watch.py``: capturing what your own sockets do in a ``with lab.watch(...)`` block;
* ``tables.py``: the packets and connections as tables, coloured by phase;
* ``facts.py``: the facts a question is about (ACKs, FINs, RSTs, byte counts, copies);
* ``socket_states.py``: the kernel's TCP states, TIME_WAIT, their figure;
* ``checks.py``: the self-checks and their summary;
* ``wireshark.py``: what Wireshark itself says (packet comments, field trees);
* ``session.py``: what this notebook has chosen and done so far (mode, self-checks);
* ``figures.py``, ``display.py``: Figures shown as images; tables in one plain look;
* ``printing.py``: one printed line per step, long lines wrapped between words.

Importing the lab changes nothing: no state is made and the kernel is not touched
until a helper needs it (:func:`capture_mode`, a notebook's first call, is the one
that makes the kernel show Figures as images and tables plainly).

Theory of operation
-------------------
*Modes.*  A notebook works the same in three modes (:func:`capture_mode` picks one
and says why): **live** captures this machine's loopback; **rootless** plays each
scenario inside a private user + network namespace, where an ordinary user may
capture (:func:`tcpchatx.capture.run_rootless`), and makes the sockets of a
:func:`watch` block in another one (:class:`tcpchatx.capture.NamespaceSockets`, one
per session); **reference** opens the captures
shipped in ``captures/``, made with each scenario's default parameters.  The
environment variable ``TCPCHATX_CAPTURE_MODE`` (or ``capture_mode(mode)``) forces
one, which is how the tests play every notebook in every mode.

*Where files go.*  New captures go to ``out/`` under the notebook's directory (or
``TCPCHATX_OUT``), never into ``captures/``: the reference files stay as shipped.

*Quiet threads.*  The chat server prints nothing; the capture backend and the
socket-state sampler run threads that are stopped and joined before any function
here returns, so nothing prints into a later cell.  Progress is one line per step.

*Socket states.*  With ``sample_sockets=True`` a :class:`~tcpchatx.sockstate.
SocketStateSampler` watches the kernel's TCP states while the scenario plays: in
live mode in this process, in rootless mode *inside* the namespace (the only place
those sockets exist), and in reference mode the states come from the
``NAME.sockstates.json`` shipped beside the capture, when there is one.
"""

from __future__ import annotations

from .checks import check, check_counts, check_summary
from .congestion import (
    BETAS,
    SlowStart,
    algorithms_figure,
    bdp_bytes,
    bits_per_second,
    bulk_connection,
    compare_algorithms,
    limits_figure,
    marked_frames,
    queue_delay_ms,
    recoveries,
    round_trips,
    router_refused,
    slow_start,
    slow_start_rounds,
    tail_drops,
    transfer_packets,
    used_parameters,
    what_limited,
)
from .facts import (
    Acked,
    Reset,
    broadcasts,
    byte_counts,
    fins,
    first_data,
    handshake_numbers,
    isn,
    nagle_bursts,
    options_table,
    resets,
    tcp_options,
    why_reset,
)
from .loss import (
    TICK_MS,
    TIMER_SLACK,
    ack_rtts,
    both_views,
    connection_of,
    fired_on_time,
    kernel_after,
    kernel_before,
    lost_copies,
    out_of_order,
    resends,
    rfc6298_table,
    rtt_samples,
)
from .lossy import handshake_rtt_ms, loss_tally, lost_segments, random_resends
from .mode import MODE_ENV, MODE_MEANINGS, MODES, OUT_ENV, capture_mode, current_mode, out_dir
from .playing import CLOSE_VARIANTS, exercise_story, play_and_sample, play_exercise
from .printing import say
from .rtt import linux_rto, rfc6298
from .runs import LabRun, open_capture, reference_capture, run, run_exercise
from .session import Session, current_session, reset_session
from .socket_states import socket_states_figure, time_wait, time_wait_holders
from .stories import StoryRun, reference_story, story
from .tables import (
    PACKET_COLUMNS,
    PHASE_BACKGROUNDS,
    compare_closes,
    packet_table,
    show_connections,
    show_packets,
)
from .watch import Watch, handshake_run, pick_port, watch
from .windows import (
    INVALID_RATELIMIT_MS,
    CutOff,
    FirstWindow,
    Flow,
    WindowUse,
    ZeroWindow,
    announced_windows,
    answered_as_linux_limits,
    cut_off,
    first_window,
    flow,
    handshake_windows,
    kernel_while_closed,
    kernel_windows,
    past_the_edge,
    ratios,
    read_again_ms,
    where_bytes_wait,
    window_full,
    window_shift,
    window_table,
    window_use,
    zero_window,
)
from .wireshark import packet_comments, wireshark_fields

__all__ = [
    # the mode and where captures go
    "MODE_ENV", "MODE_MEANINGS", "MODES", "OUT_ENV", "capture_mode", "current_mode", "out_dir",
    # runs, and what plays them
    "CLOSE_VARIANTS", "LabRun", "exercise_story", "open_capture", "play_and_sample", "play_exercise",
    "reference_capture", "run", "run_exercise",
    # the lab network's stories (across a router)
    "StoryRun", "reference_story", "story",
    # loss and retransmission in a story, and the RTO from RTT samples
    "TICK_MS", "TIMER_SLACK", "ack_rtts", "both_views", "connection_of", "fired_on_time", "kernel_after",
    "kernel_before", "linux_rto", "lost_copies", "out_of_order", "resends", "rfc6298", "rfc6298_table",
    "rtt_samples",
    # a path that loses at random: what was lost, resent, and what Wireshark called it
    "handshake_rtt_ms", "loss_tally", "lost_segments", "random_resends",
    # congestion control in a story: slow start, tail drops, recovery, algorithms, limits
    "BETAS", "SlowStart", "algorithms_figure", "bdp_bytes", "bits_per_second", "bulk_connection",
    "compare_algorithms", "limits_figure", "marked_frames", "queue_delay_ms", "recoveries", "round_trips",
    "router_refused", "slow_start", "slow_start_rounds", "tail_drops", "transfer_packets", "used_parameters",
    "what_limited",
    # flow control in a story: windows, a zero window and its probes, where the bytes wait
    "INVALID_RATELIMIT_MS", "CutOff", "FirstWindow", "Flow", "WindowUse", "ZeroWindow", "announced_windows",
    "answered_as_linux_limits", "cut_off", "first_window", "flow", "handshake_windows", "kernel_while_closed",
    "kernel_windows", "past_the_edge", "ratios", "read_again_ms", "where_bytes_wait", "window_full",
    "window_shift", "window_table", "window_use", "zero_window",
    # your own sockets
    "Watch", "handshake_run", "pick_port", "watch",
    # tables
    "PACKET_COLUMNS", "PHASE_BACKGROUNDS", "compare_closes", "packet_table", "show_connections",
    "show_packets",
    # facts
    "Acked", "Reset", "broadcasts", "byte_counts", "first_data", "fins", "handshake_numbers", "isn",
    "nagle_bursts", "options_table", "resets", "tcp_options", "why_reset",
    # socket states
    "socket_states_figure", "time_wait", "time_wait_holders",
    # printing for a notebook (long lines wrapped between words)
    "say",
    # self-checks and the session they are counted in
    "Session", "check", "check_counts", "check_summary", "current_session", "reset_session",
    # Wireshark's view
    "packet_comments", "wireshark_fields",
]
