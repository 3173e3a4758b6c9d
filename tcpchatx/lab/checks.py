"""Self-checks: a notebook states a fact, the lab prints PASS, FAIL or SKIP and why, and
keeps the count for :func:`check_summary`.

A check that follows a question must not answer it before the student has tried: with
"Run All", its explanation would sit right under the question.  So such a check is given
the student's answer (``answer=``, a variable the student fills in, None until then).
Until there is an answer it prints only its verdict and waits; once there is one, it
says whether the answer agrees with the capture (``expected=``), then explains.  The
verdict on TCP itself is counted either way, so papermill runs and ``check_summary``
see every check.

The verdicts are kept on the lab's session (see ``session.py``), not in this module.
"""

from __future__ import annotations

from typing import Any

from .say import say
from .session import current_session

#: ``answer=`` left out: the check follows no question, so its explanation is printed at once.
NO_QUESTION: Any = object()
WAITING = ("    The numbers would give the answer away, so they wait for yours: write it in the "
           "cell above, run it, then run this cell again.")


def check(name: str, condition: bool | None, explanation: str, *,
          answer: Any = NO_QUESTION, expected: Any = None) -> None:
    """Print one self-check: ``PASS``, ``FAIL`` or (``condition`` None) ``SKIP``, and why.

    ``answer``: the student's answer to the question before this check (None: not yet
    answered, and the explanation waits); ``expected``: what the capture says it is.
    """
    verdict = "SKIP" if condition is None else "PASS" if condition else "FAIL"
    current_session().checks.append((name, verdict))
    mark = {"PASS": "✔", "FAIL": "✘", "SKIP": "–"}[verdict]
    if answer is NO_QUESTION:
        why = f"    {explanation}"
    elif answer is None:
        why = WAITING
    else:
        agrees = "agrees with the capture" if answer == expected else f"the capture says {expected}"
        why = f"    Your answer, {answer}: {agrees}.\n    {explanation}"
    say(f"{mark} {verdict}: {name}\n{why}")


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
