"""Deep copies of stored objects, made fast: every read, write and watch event of the emulator copies one.

Why not `copy.deepcopy`: it was most of the emulator's CPU under bench/scale.py (a memo entry and a dispatch
per node); a pickle round trip copies the same JSON-like trees three times faster, in C. Anything pickle
refuses (a test may store an odd value) still gets `copy.deepcopy`.
"""

from __future__ import annotations

import copy
import pickle
from typing import TypeVar

T = TypeVar("T")


def clone(value: T) -> T:
    """An independent deep copy of `value`."""
    try:
        copied: T = pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own bytes
    except (pickle.PicklingError, TypeError, AttributeError):
        return copy.deepcopy(value)
    return copied
