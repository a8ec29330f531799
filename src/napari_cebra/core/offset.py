"""Receptive-field bookkeeping of an encoder.

An encoder with offset ``(left, right)`` maps an input window of ``left + right`` consecutive
samples to one output sample. The window that produces the output for centre index ``c`` covers the
rows ``c - left … c + right - 1``; on a sequence of ``T`` samples the encoder therefore returns
``T - len(offset) + 1`` samples when no padding is applied.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass


@dataclass(frozen=True)
class Offset:
    """Number of samples an encoder needs to the left and to the right of a centre sample.

    Parameters
    ----------
    left : int
        Samples strictly before the centre sample, ``left >= 0``.
    right : int
        Samples from the centre sample onwards (the centre included), ``right >= 1``.

    Raises
    ------
    ValueError
        If ``left`` is negative, ``right`` is smaller than one, or either is not an integer.
    """

    left: int
    right: int

    def __post_init__(self) -> None:
        for name in ("left", "right"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        if self.left < 0:
            raise ValueError(f"Offset left must be >= 0, got left={self.left}.")
        if self.right < 1:
            raise ValueError(
                f"Offset right must be >= 1 (it includes the centre sample), got right={self.right}."
            )

    def __len__(self) -> int:
        """Return the receptive field ``L = left + right``."""
        return self.left + self.right

    def window(self, centre: int) -> range:
        """Return the row indices covered by the window around ``centre``.

        Parameters
        ----------
        centre : int
            Index of the centre sample.

        Returns
        -------
        range
            ``range(centre - left, centre + right)``.
        """
        return range(centre - self.left, centre + self.right)


def _as_int(name: str, value: object) -> int:
    """Return ``value`` as a Python int (numpy integers accepted), rejecting bools and floats."""
    if isinstance(value, bool):
        raise ValueError(f"Offset {name} must be an integer, got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(
            f"Offset {name} must be an integer, got {value!r} of type {type(value).__name__}."
        ) from None
