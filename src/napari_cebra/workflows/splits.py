"""Train/validation splits in time, as the CEBRA authors' demos do.

The first part of the recording trains the model, the last part validates it. Splitting in time
(rather than drawing random frames) keeps neighbouring, strongly correlated frames on the same side
of the split.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

MIN_PART_FRAMES = 2


def train_valid_split(n_frames: int, valid_fraction: float = 0.2) -> tuple[slice, slice]:
    """Split ``n_frames`` frames into a training part followed by a validation part.

    Parameters
    ----------
    n_frames : int
        Number of frames of the recording.
    valid_fraction : float
        Fraction of frames held out for validation, in ``[0, 1)``. The validation part has
        ``round(n_frames * valid_fraction)`` frames; ``0`` gives an empty validation part.

    Returns
    -------
    train, valid : slice
        ``slice(0, n_train)`` and ``slice(n_train, n_frames)``.

    Raises
    ------
    ValueError
        If ``n_frames`` is not a positive integer, ``valid_fraction`` is outside ``[0, 1)``, or a
        non-empty part would have fewer than 2 frames.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, numbers.Integral) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}.")
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, numbers.Real)
        or not 0 <= valid_fraction < 1
    ):
        raise ValueError(f"valid_fraction must be a number in [0, 1), got {valid_fraction!r}.")
    n_frames = int(n_frames)
    n_valid = int(round(n_frames * float(valid_fraction)))
    n_train = n_frames - n_valid
    if n_train < MIN_PART_FRAMES or (valid_fraction > 0 and n_valid < MIN_PART_FRAMES):
        raise ValueError(
            f"valid_fraction={valid_fraction} splits {n_frames} frames into {n_train} training and "
            f"{n_valid} validation frames; each part needs at least {MIN_PART_FRAMES} frames."
        )
    return slice(0, n_train), slice(n_train, n_frames)


def split_arrays(
    X: Any, *y: Any, valid_fraction: float = 0.2
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Split data and labels along time with :func:`train_valid_split`.

    Parameters
    ----------
    X : array-like of shape (N, ...)
        Neural data, time along the first axis.
    *y : array-like of shape (N, ...)
        Labels with the same number of frames.
    valid_fraction : float
        Fraction held out at the end, in ``[0, 1)``.

    Returns
    -------
    train, valid : tuple of np.ndarray
        ``(X_train, *y_train)`` and ``(X_valid, *y_valid)``.

    Raises
    ------
    ValueError
        If a label has another number of frames than ``X``, or the split is invalid.
    """
    data = np.asarray(X)
    if data.ndim < 1:
        raise ValueError(f"X must have a time axis, got an array of shape {data.shape}.")
    labels = [np.asarray(label) for label in y]
    for index, label in enumerate(labels):
        if label.ndim < 1 or label.shape[0] != data.shape[0]:
            raise ValueError(
                f"y[{index}] has shape {label.shape} but X has {data.shape[0]} frames "
                f"(shape {data.shape}); every label needs one row per frame."
            )
    train, valid = train_valid_split(data.shape[0], valid_fraction)
    arrays = [data, *labels]
    return tuple(a[train] for a in arrays), tuple(a[valid] for a in arrays)
