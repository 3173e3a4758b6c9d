"""Self-checks: a notebook states a fact, the lab prints PASS, FAIL or SKIP and why, and
keeps the count for :func:`check_summary`.

A check that follows a question must not answer it before the student has tried: with
"Run All", its explanation would sit right under the question.  So such a check is given
the student's answer (``answer=``, a variable the student fills in, None until then).
Until there is an answer it prints only its verdict and waits; once there is one, it
says whether the answer agrees with the capture (``expected=``), then explains.  A FAIL
explains at once: the run did not show what the notebook teaches, and the student (or a
test's log) needs to see what it showed instead.  The
verdict on TCP itself is counted either way, so papermill runs and ``check_summary``
see every check.

The verdicts are kept on the lab's session (see ``session.py``), not in this module.
"""

from __future__ import annotations

from typing import Any

from .printing import say
from .session import current_session

#: ``answer=`` left out: the check follows no question, so its explanation is printed at once.
NO_QUESTION: Any = object()
WAITING = ("    The numbers would give the answer away, so they wait for yours: write it in the "
           "cell above, run it, then run this cell again.")
NOT_AS_TAUGHT = ("    This run did not show what the notebook teaches, so here is what it showed (the numbers "
                 "answer the question above, too):")


def check(name: str, condition: bool | None, explanation: str, *,
          answer: Any = NO_QUESTION, expected: Any = None, tolerance: float = 0.0) -> None:
    """Print one self-check: ``PASS``, ``FAIL`` or (``condition`` None) ``SKIP``, and why.

    ``answer``: the student's answer to the question before this check (None: not yet
    answered, and the explanation waits); ``expected``: what the capture says it is;
    ``tolerance``: how far a number may be from it and still agree.  A check with
    nothing to look at (SKIP, nothing expected) has no answer to wait for.
    """
    verdict = "SKIP" if condition is None else "PASS" if condition else "FAIL"
    current_session().checks.append((name, verdict))
    mark = {"PASS": "✔", "FAIL": "✘", "SKIP": "–"}[verdict]
    nothing_expected = expected is None or (isinstance(expected, (list, tuple)) and not expected)
    if answer is NO_QUESTION or (condition is None and nothing_expected):
        why = f"    {explanation}"
    elif answer is None and verdict == "FAIL":
        why = f"{NOT_AS_TAUGHT}\n    {explanation}"
    elif answer is None:
        why = WAITING
    else:
        agrees = "agrees with the capture" if _agrees(answer, expected, tolerance) else f"the capture says {expected}"
        why = f"    Your answer, {answer!r}: {agrees}.\n    {explanation}"
    say(f"{mark} {verdict}: {name}\n{why}")


def _agrees(answer: Any, expected: Any, tolerance: float) -> bool:
    """Does the student's answer say what the capture says?  "92" agrees with 92, a
    tuple or an array with a list of the same numbers, 0.7 with 0.70001 within ``tolerance``."""
    answer, expected = _plain(answer), _plain(expected)
    if isinstance(answer, list) and isinstance(expected, list):
        return len(answer) == len(expected) and all(_agrees(a, e, tolerance) for a, e in zip(answer, expected))
    if isinstance(answer, (int, float)) and isinstance(expected, (int, float)) and not isinstance(answer, bool):
        return abs(answer - expected) <= tolerance
    return answer == expected


def _plain(value: Any) -> Any:
    """A number written as text becomes the number; a tuple, array or Series a list."""
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return value.strip()
    if hasattr(value, "tolist"):  # numpy arrays and scalars, pandas Series
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def check_counts() -> dict[str, int]:
    """How many self-checks passed, failed and were skipped so far."""
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    for _, verdict in current_session().checks:
        counts[verdict] += 1
    return counts


def check_summary() -> None:
    """Print how many self-checks passed, failed and were skipped so far."""
    counts = check_counts()
    say(f"Self-checks: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped.")
