"""Self-checks: a notebook states a fact, the lab prints PASS, FAIL or SKIP and why, and
keeps the count for :func:`check_summary`.

The verdicts are kept on the lab's session (see ``session.py``), not in this module.
"""

from __future__ import annotations

from .session import current_session


def check(name: str, condition: bool | None, explanation: str) -> None:
    """Print one self-check: ``PASS``, ``FAIL`` or (``condition`` None) ``SKIP``, and why."""
    verdict = "SKIP" if condition is None else "PASS" if condition else "FAIL"
    current_session().checks.append((name, verdict))
    mark = {"PASS": "✔", "FAIL": "✘", "SKIP": "–"}[verdict]
    print(f"{mark} {verdict}: {name}\n    {explanation}", flush=True)


def check_counts() -> dict[str, int]:
    """How many self-checks passed, failed and were skipped so far."""
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for _, verdict in current_session().checks:
        counts[verdict] += 1
    return counts


def check_summary() -> None:
    """Print how many self-checks passed, failed and were skipped so far."""
    counts = check_counts()
    print(f"Self-checks: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped.")
