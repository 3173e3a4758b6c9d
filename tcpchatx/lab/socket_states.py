"""The kernel's TCP state of each socket while a scenario played: the table, who held
TIME_WAIT, and the timeline figure.

The kernel's states come from the sampler (``sample_sockets=True``) or, in reference
mode, from the ``NAME.sockstates.json`` shipped beside the capture.  The figure draws
each socket's states from the packets (exact) and the kernel's samples beside them (a
cross-check), see :mod:`tcpchatx.plots.sockets`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .printing import say

if TYPE_CHECKING:
    from .runs import LabRun


def _sockstates_frame(records: list[dict[str, Any]]):
    """Socket-state records as a ``transitions_df()`` table, from either shape we write:
    ``{local, local_port, remote, remote_port, time, state}`` or ``{local: [h, p], remote, wall, state}``."""
    import pandas as pd

    from ..sockstate import STATE_MEANINGS

    rows = []
    for r in records:
        local, remote = r["local"], r["remote"]
        if isinstance(local, (list, tuple)):
            local, local_port = local[0], local[1]
            remote, remote_port = remote[0], remote[1]
        else:
            local_port, remote_port = r["local_port"], r["remote_port"]
        rows.append({"local": local, "local_port": int(local_port), "remote": remote,
                     "remote_port": int(remote_port), "role": r.get("role"),
                     "time": float(r.get("time", r.get("wall", 0.0))), "state": r["state"],
                     "meaning": r.get("meaning") or STATE_MEANINGS.get(r["state"], "")})
    columns = ["local", "local_port", "remote", "remote_port", "role", "time", "state", "meaning"]
    return pd.DataFrame(rows, columns=columns).sort_values("time", kind="stable").reset_index(drop=True)


def time_wait_holders(lab_run: LabRun) -> list[str]:
    """Which sockets were seen in TIME_WAIT, from the run's socket states ([] if none)."""
    if lab_run.sockstates is None:
        return []
    holders = []
    names = {tuple(c["address"]): c["nick"] for c in lab_run.clients}
    for (local, local_port, remote, remote_port), rows in lab_run.sockstates.groupby(
            ["local", "local_port", "remote", "remote_port"], sort=False):
        if "TIME_WAIT" not in set(rows["state"]):
            continue
        client = names.get((local, local_port))
        if client is not None:
            holders.append(f"the client ({client}'s socket :{local_port})")
        else:
            peer = names.get((remote, remote_port), f":{remote_port}")
            holders.append(f"the server (its socket :{local_port} to {peer})")
    return holders


def time_wait(lab_run: LabRun) -> None:
    """Print which sockets ended in TIME_WAIT, and where the socket states came from."""
    if lab_run.sockstates is None:
        say(f"{lab_run.name}: no socket states here (run with sample_sockets=True; in reference "
             "mode they come from NAME.sockstates.json, when there is one).")
        return
    holders = time_wait_holders(lab_run)
    for who in holders:
        say(f"{lab_run.name}: TIME_WAIT held by {who}")
    if not holders:
        say(f"{lab_run.name}: no socket was seen in TIME_WAIT.")
    say(f"(socket states {lab_run.sockstates_source})")


def socket_states_figure(lab_run: LabRun):
    """The socket-state timeline of ``lab_run`` (a Figure): each socket's states from the
    packets, with the kernel's samples beside them when the run has any."""
    from ..plots import socket_states

    samples = lab_run.sockstates
    if samples is None or samples.empty:
        say(f"{lab_run.name}: no kernel samples here (run with sample_sockets=True; in reference mode "
             "they come from NAME.sockstates.json, when there is one), so the figure shows the states "
             "the packets give, without the kernel's tags.")
        samples = None
    return socket_states(samples, lab_run.analysis)
