"""How far behind a client may fall (sans-IO, a fake clock): Redis's soft and hard limits."""

from __future__ import annotations

from tcpchatx.protocol.backlog import Backlog, BacklogLimits

LIMITS = BacklogLimits(soft_lines=100, soft_bytes=1_000, hard_bytes=10_000, grace=2.0)


def test_under_the_soft_limit_a_client_may_stay_behind_forever():
    backlog = Backlog(LIMITS)
    assert not any(backlog.too_far_behind(100, 1_000, now) for now in range(0, 1_000, 10))


def test_over_the_soft_limit_for_longer_than_the_grace_is_too_far():
    backlog = Backlog(LIMITS)
    assert not backlog.too_far_behind(5, 1_001, now=10.0)  # over, from now on
    assert not backlog.too_far_behind(5, 5_000, now=12.0)  # exactly the grace: still allowed
    assert backlog.too_far_behind(5, 1_001, now=12.01)


def test_too_many_lines_count_like_too_many_bytes():
    backlog = Backlog(LIMITS)
    assert not backlog.too_far_behind(101, 500, now=0.0)
    assert backlog.too_far_behind(101, 500, now=2.5)


def test_catching_up_starts_the_grace_afresh():
    """A reader slower than each burst, but reading: over for a moment, then under."""
    backlog = Backlog(LIMITS)
    for burst in range(10):  # ten bursts, each 1.5 s over the soft limit, then caught up
        start = burst * 3.0
        assert not backlog.too_far_behind(50, 5_000, start)
        assert not backlog.too_far_behind(50, 5_000, start + 1.5)
        assert not backlog.too_far_behind(0, 0, start + 1.6)
    assert backlog.over_since is None


def test_the_hard_limit_is_never_passed_not_even_for_a_moment():
    backlog = Backlog(LIMITS)
    assert backlog.too_far_behind(1, 10_001, now=0.0)
    assert not Backlog(LIMITS).too_far_behind(1, 10_000, now=0.0)
