"""The retransmission timeout from RTT samples: RFC 6298 step by step, and Linux's rule.

No sockets and no captures here: numbers in, numbers out (seconds throughout), so a
test can check each step against a hand computation and a notebook can show it.

RFC 6298, section 2, with alpha = 1/8, beta = 1/4, K = 4 and G the granularity of the
sender's clock:

* before any sample, RTO = 1 s (2.1);
* the first sample R: SRTT = R, RTTVAR = R/2 (2.2);
* each later sample R': RTTVAR = (1 - beta) RTTVAR + beta |SRTT - R'|, *then*
  SRTT = (1 - alpha) SRTT + alpha R' (2.3: RTTVAR uses the old SRTT, so the order
  matters);
* after each, RTO = SRTT + max(G, K RTTVAR); an RTO under 1 s is rounded up to 1 s
  (2.4), and a maximum of at least 60 s may be placed on it (2.5).

Which samples count is the caller's choice, and Karn's rule (section 3) says which
may not: the ACK of a segment that was sent more than once, since nobody can tell
which copy it answers.

Linux computes the same averages (``tcp_rtt_estimator`` in ``net/ipv4/tcp_input.c``,
with refinements of its own) but bounds the RTO differently (``tcp_set_rto``,
``__tcp_set_rto``): the floor is on the variance term, not on the whole,

    RTO = SRTT + max(4 RTTVAR, 200 ms)        (TCP_RTO_MIN; at most 120 s, TCP_RTO_MAX)

and the result is kept in whole ticks of the kernel's timer clock (jiffies, 1/HZ s),
rounded up.  So where RFC 6298 says 1 s, Linux says about 200 ms more than the RTT.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ALPHA = 1 / 8  # the gain of SRTT (RFC 6298, 2.3)
BETA = 1 / 4  # the gain of RTTVAR
K = 4  # how many RTTVARs the RTO allows above SRTT
INITIAL_RTO = 1.0  # seconds, before any sample (2.1)
MIN_RTO = 1.0  # RFC 6298's floor (2.4)
LINUX_MIN_RTO = 0.200  # Linux's TCP_RTO_MIN: the floor of the variance term
LINUX_MAX_RTO = 120.0  # Linux's TCP_RTO_MAX


@dataclass(frozen=True)
class Estimate:
    """The estimator after one sample (seconds)."""

    sample: float  # R, the RTT measured
    srtt: float  # the smoothed RTT
    rttvar: float  # the RTT variation
    formula: float  # SRTT + max(G, K * RTTVAR), before any floor or ceiling
    rto: float  # the RTO: the formula, at least min_rto (and at most max_rto)


def rfc6298(samples: Iterable[float], granularity: float = 0.001, min_rto: float = MIN_RTO,
            max_rto: float | None = None) -> list[Estimate]:
    """SRTT, RTTVAR and RTO after each RTT sample (seconds), as RFC 6298 section 2 says.

    ``granularity`` is G, the clock granularity; ``min_rto`` the floor of 2.4 (1 s; 0
    shows the formula alone); ``max_rto`` the optional ceiling of 2.5.
    """
    steps: list[Estimate] = []
    srtt = rttvar = 0.0
    for sample in samples:
        r = float(sample)
        if r < 0:
            raise ValueError(f"an RTT sample cannot be negative: {r}")
        if not steps:
            srtt, rttvar = r, r / 2
        else:
            rttvar = (1 - BETA) * rttvar + BETA * abs(srtt - r)  # with the old SRTT
            srtt = (1 - ALPHA) * srtt + ALPHA * r
        formula = srtt + max(granularity, K * rttvar)
        rto = max(formula, min_rto)
        if max_rto is not None:
            rto = min(rto, max_rto)
        steps.append(Estimate(r, srtt, rttvar, formula, rto))
    return steps


def linux_rto(srtt: float, rttvar: float, min_rto: float = LINUX_MIN_RTO, tick: float | None = None,
              max_rto: float = LINUX_MAX_RTO) -> float:
    """Linux's RTO from its SRTT and RTTVAR (seconds): SRTT + max(4 RTTVAR, 200 ms), at most
    120 s; with ``tick`` (the kernel's 1/HZ), rounded up to whole ticks as the kernel keeps it.

    TCP_INFO's ``rtt`` and ``rttvar`` are these SRTT and RTTVAR (the kernel keeps
    4 RTTVAR, ``mdev``, and reports a quarter of it).
    """
    rto = min(srtt + max(K * rttvar, min_rto), max_rto)
    if tick is None:
        return rto
    # In whole microseconds, as the kernel counts: 0.2 / 0.004 is 50.000000000000004 in floats.
    micro, tick_micro = round(rto * 1e6), round(tick * 1e6)
    return -(-micro // tick_micro) * tick_micro / 1e6  # ceil, in integers
