"""Driving the ``iter_*`` generators of the library to their end.

Long computations are written once, as generators that yield small progress records and return
their result (``StopIteration.value``); the plain functions run them to the end with
:func:`run_to_end`, optionally passing every record to a ``progress`` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

Result = TypeVar("Result")


def run_to_end(
    steps: Generator[Any, Any, Result], progress: Callable[[Any], None] | None = None
) -> Result:
    """Exhaust ``steps`` and return its return value.

    Parameters
    ----------
    steps : generator
        Yields progress records and returns the result.
    progress : callable, optional
        Called with every yielded record.

    Returns
    -------
    object
        The generator's return value.
    """
    while True:
        try:
            record = next(steps)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(record)
