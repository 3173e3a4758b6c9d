"""tcpchatx.lab.rtt: RFC 6298's estimator step by step, and Linux's RTO, against values
computed by hand (in the comments)."""

from __future__ import annotations

import pytest

from tcpchatx.lab.rtt import Estimate, linux_rto, rfc6298

# Three samples, G = 1 ms, no floor, to see the formula:
#   R1 = 0.100: SRTT = 0.100, RTTVAR = 0.050, RTO = 0.100 + max(0.001, 0.200) = 0.300
#   R2 = 0.200: RTTVAR = 3/4 * 0.050 + 1/4 * |0.100 - 0.200| = 0.0375 + 0.025 = 0.0625
#               SRTT = 7/8 * 0.100 + 1/8 * 0.200 = 0.0875 + 0.025 = 0.1125
#               RTO = 0.1125 + 4 * 0.0625 = 0.3625
#   R3 = 0.050: RTTVAR = 3/4 * 0.0625 + 1/4 * |0.1125 - 0.050| = 0.046875 + 0.015625 = 0.0625
#               SRTT = 7/8 * 0.1125 + 1/8 * 0.050 = 0.0984375 + 0.00625 = 0.1046875
#               RTO = 0.1046875 + 0.25 = 0.3546875
BY_HAND = [
    Estimate(0.100, 0.100, 0.050, 0.300, 0.300),
    Estimate(0.200, 0.1125, 0.0625, 0.3625, 0.3625),
    Estimate(0.050, 0.1046875, 0.0625, 0.3546875, 0.3546875),
]


def _approx(steps: list[Estimate]) -> list[tuple[float, ...]]:
    return [tuple(pytest.approx(value, abs=1e-12) for value in vars(step).values()) for step in steps]


def test_each_step_as_computed_by_hand():
    steps = rfc6298([0.100, 0.200, 0.050], granularity=0.001, min_rto=0)
    assert [tuple(vars(step).values()) for step in steps] == _approx(BY_HAND)


def test_rttvar_is_updated_with_the_old_srtt():
    # With the new SRTT (0.1125) instead, RTTVAR after R2 would be 0.0375 + 0.021875 = 0.059375.
    second = rfc6298([0.100, 0.200], min_rto=0)[1]
    assert second.rttvar == pytest.approx(0.0625) and second.rttvar != pytest.approx(0.059375)


def test_the_one_second_floor_and_the_granularity():
    # Loopback-like round trips: R1 = 37 us, R2 = 23 us.
    #   SRTT = 37 us, RTTVAR = 18.5 us; then RTTVAR = 13.875 + 3.5 = 17.375 us, SRTT = 32.375 + 2.875 = 35.25 us
    #   K * RTTVAR = 69.5 us < G = 1 ms: the formula gives 35.25 us + 1 ms = 1.03525 ms; RFC 6298 says 1 s.
    steps = rfc6298([37e-6, 23e-6], granularity=0.001)
    last = steps[-1]
    assert (last.srtt, last.rttvar) == (pytest.approx(35.25e-6), pytest.approx(17.375e-6))
    assert last.formula == pytest.approx(1.03525e-3)
    assert [step.rto for step in steps] == [1.0, 1.0]


def test_k_rttvar_wins_over_a_fine_clock():
    # R = 0.1 s, G = 1 us: RTO = 0.1 + 4 * 0.05 = 0.3, below the floor: 1 s; with a 0.2 s floor: 0.3 s
    assert rfc6298([0.1], granularity=1e-6)[0].rto == 1.0
    assert rfc6298([0.1], granularity=1e-6, min_rto=0.2)[0].rto == pytest.approx(0.3)


def test_an_optional_ceiling():
    # R = 30 s: RTO = 30 + 4 * 15 = 90 s, at most 60 s (RFC 6298 2.5 allows a ceiling of 60 s or more)
    assert rfc6298([30.0], max_rto=60.0)[0].rto == 60.0
    assert rfc6298([30.0])[0].rto == pytest.approx(90.0)


def test_no_samples_no_steps_and_no_negative_samples():
    assert rfc6298([]) == []
    with pytest.raises(ValueError, match="cannot be negative"):
        rfc6298([0.1, -0.001])


def test_linux_floors_the_variance_term_not_the_whole():
    # A short path: 35 us + max(4 * 17.5 us, 200 ms) = 200.035 ms (RFC 6298: 1 s)
    assert linux_rto(35e-6, 17.5e-6) == pytest.approx(0.200035)
    # A 50 ms path, RTTVAR 20 ms: 50 + max(80, 200) = 250 ms
    assert linux_rto(0.050, 0.020) == pytest.approx(0.250)
    # A variable one, RTTVAR 60 ms: 100 + max(240, 200) = 340 ms, above the floor
    assert linux_rto(0.100, 0.060) == pytest.approx(0.340)
    # Linux's own ceiling, TCP_RTO_MAX: 120 s
    assert linux_rto(100.0, 10.0) == 120.0


def test_linux_keeps_whole_ticks_rounded_up():
    # 200.035 ms at HZ=250 (4 ms ticks): 50.009 ticks -> 51 ticks = 204 ms, as TCP_INFO says here
    assert linux_rto(35e-6, 17.5e-6, tick=0.004) == 0.204
    # at HZ=1000: 201 ms; at HZ=100: 210 ms
    assert linux_rto(35e-6, 17.5e-6, tick=0.001) == 0.201
    assert linux_rto(35e-6, 17.5e-6, tick=0.010) == 0.210
    # exactly 200 ms stays 200 ms (0.2 / 0.004 is 50.000000000000004 in floats: counted in microseconds)
    assert linux_rto(0.0, 0.0, tick=0.004) == 0.200
    # the kernel's own numbers after the backoff story's ACK: SRTT 5.552 ms, RTTVAR 11.009 ms:
    # 5.552 + max(44.036, 200) = 205.552 ms -> 52 ticks of 4 ms = 208 ms, as TCP_INFO said
    assert linux_rto(0.005552, 0.011009, tick=0.004) == 0.208
