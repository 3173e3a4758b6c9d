"""Stable argsorts of integer keys, 16 bits at a time (a least-significant-digit radix sort).

numpy sorts 16-bit integers stably with a radix sort (linear time), not the merge
sort it uses for wider ones.  Sorting stably by each 16-bit digit in turn, lowest
first, sorts by the whole key: the classic LSD radix sort.  So 32-bit keys (frame
numbers, hashes) take two linear passes instead of ``np.argsort(kind="stable")``'s
merge sort.
"""

from __future__ import annotations

import numpy as np


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for an integer array: equal keys keep their order."""
    if not len(keys) or keys.dtype.kind not in "iu" or keys.min() < 0:
        return np.argsort(keys, kind="stable")
    order = None
    for shift in range(0, max(int(keys.max()).bit_length(), 1), 16):
        digit = (keys >> shift).astype(np.uint16)  # keeps the low 16 bits of what is left
        order = np.argsort(digit, kind="stable") if order is None else \
            order[np.argsort(digit[order], kind="stable")]
    return order
