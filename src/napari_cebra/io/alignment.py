"""Align behaviour to neural frames by time (numpy only).

Neural data and behaviour are often recorded on different clocks: a 30 Hz imaging recording and
a 120 Hz camera that starts a little later and drops frames. Each input carries timestamps in
seconds (read from its file, or built from a rate and a start time with
:func:`timestamps_from_rate`), and :func:`align_behaviour` gives the behaviour at every neural
frame where it is known:

* ``"continuous"`` columns are interpolated linearly between the two samples around the frame;
* ``"circular"`` columns are angles in radians (e.g. head direction): they are unwrapped, then
  interpolated linearly (the short way round the circle), and the result is wrapped to
  ``(-pi, pi]``;
* ``"discrete"`` columns (states, trial labels) take the value of the previous sample: a state
  holds until the next sample says otherwise;
* ``"nearest"`` columns (discrete too) take the value of the nearest sample in time (the earlier
  one on a tie).

A neural frame is kept only where every column is known. Frames before the first or after the
last behaviour sample are excluded, and so are frames that fall in a gap of the behaviour longer
than ``max_gap_s`` (by default :data:`DEFAULT_GAP_PERIODS` times the median behaviour sample
interval): a few dropped samples are interpolated over, a long dropout is not. A NaN behaviour
value is a dropped sample of its column. The result says how many frames were excluded and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("continuous", "circular", "discrete", "nearest")
"""How a behaviour column is brought to the neural frames (see the module docstring)."""
DEFAULT_GAP_PERIODS = 5.0
"""Default ``max_gap_s``: this many median behaviour sample intervals."""

_OK, _BEFORE, _AFTER, _GAP = 0, 1, 2, 3


@dataclass(frozen=True)
class AlignedBehaviour:
    """Behaviour at the neural frames where it is known.

    Attributes
    ----------
    values : np.ndarray
        ``(n_kept, k)`` float64 behaviour at the kept neural frames (discrete columns hold whole
        numbers; circular ones angles in ``(-pi, pi]``).
    frames : np.ndarray
        ``(n_kept,)`` int64 indices of the kept neural frames, increasing.
    n_excluded : int
        Neural frames without behaviour.
    message : str
        ``""`` when every frame is kept, else how many frames were excluded and why (before the
        behaviour starts, after it ends, in gaps of the behaviour).
    """

    values: np.ndarray
    frames: np.ndarray
    n_excluded: int
    message: str


def timestamps_from_rate(n_samples: int, rate_hz: float, start_s: float = 0.0) -> np.ndarray:
    """Timestamps (s) of ``n_samples`` samples taken at ``rate_hz`` from ``start_s`` on.

    Parameters
    ----------
    n_samples : int
        Number of samples (≥ 0).
    rate_hz : float
        Sampling rate in Hz (> 0).
    start_s : float
        Time of the first sample in seconds.

    Returns
    -------
    np.ndarray
        ``(n_samples,)`` float64 ``start_s + i / rate_hz``.

    Raises
    ------
    ValueError
        For a negative ``n_samples``, a rate that is not a positive finite number, or a
        non-finite start time.
    """
    if int(n_samples) != n_samples or n_samples < 0:
        raise ValueError(f"n_samples must be a whole number ≥ 0, got {n_samples!r}.")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"The sampling rate must be a positive number of Hz, got {rate_hz!r}.")
    if not math.isfinite(start_s):
        raise ValueError(f"The start time must be a finite number of seconds, got {start_s!r}.")
    return float(start_s) + np.arange(int(n_samples), dtype=np.float64) / float(rate_hz)


def check_timestamps(times: Any, n_samples: int, name: str) -> np.ndarray:
    """Check timestamps in seconds: 1-D, one per sample, finite, strictly increasing.

    Parameters
    ----------
    times : array-like
        Timestamps in seconds.
    n_samples : int
        Number of samples they must time.
    name : str
        What the timestamps belong to, for error messages (e.g. ``"timestamps of layer 'dlc'"``).

    Returns
    -------
    np.ndarray
        ``(n_samples,)`` float64 copy of ``times``.

    Raises
    ------
    ValueError
        Naming ``name``: non-numeric values, not 1-D, a length other than ``n_samples``, a
        non-finite value (with its index) or a value not after the previous one (with both
        indices and values).
    """
    array = np.asarray(times)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numbers of seconds, got values of type {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one time per sample), got shape {array.shape}.")
    if len(array) != n_samples:
        raise ValueError(
            f"{name} hold {len(array)} times but there are {n_samples} samples to time."
        )
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} hold a non-finite time {array[index]} at index {index}.")
    backwards = np.flatnonzero(np.diff(array) <= 0)
    if backwards.size:
        index = int(backwards[0]) + 1
        raise ValueError(
            f"{name} must be strictly increasing, but time {float(array[index])!r} s at index "
            f"{index} is not after {float(array[index - 1])!r} s at index {index - 1}."
        )
    return array


def align_behaviour(
    neural_times: Any,
    behaviour: Any,
    behaviour_times: Any,
    kinds: str | Sequence[str],
    *,
    max_gap_s: float | None = None,
) -> AlignedBehaviour:
    """Behaviour at each neural frame, by time; frames without behaviour are excluded.

    Parameters
    ----------
    neural_times : array-like
        ``(T,)`` timestamps (s) of the neural frames.
    behaviour : array-like
        ``(M,)`` or ``(M, k)`` behaviour samples (``k`` may be 0: only the behaviour's clock
        decides which frames are kept). NaN marks a dropped sample of its column.
    behaviour_times : array-like
        ``(M,)`` timestamps (s) of the behaviour samples, on the same clock as ``neural_times``.
    kinds : str or sequence of str
        One of :data:`KINDS` per column, or one for every column.
    max_gap_s : float, optional
        Longest interval between two valid samples of a column that is interpolated over; frames
        inside a longer gap are excluded. Default: :data:`DEFAULT_GAP_PERIODS` times the median
        interval of ``behaviour_times``. ``numpy.inf`` never excludes for gaps.

    Returns
    -------
    AlignedBehaviour

    Raises
    ------
    ValueError
        Bad timestamps (:func:`check_timestamps`), behaviour that is not a 1-D or 2-D numeric
        array, a wrong number of kinds or an unknown kind, a non-positive ``max_gap_s``, a column
        without any valid sample, neural and behaviour time spans that do not overlap (both
        spans in seconds), or no neural frame left.
    """
    neural_times = check_timestamps(neural_times, _length(neural_times), "neural timestamps")
    values = _behaviour_matrix(behaviour)
    behaviour_times = check_timestamps(behaviour_times, len(values), "behaviour timestamps")
    kinds = _column_kinds(kinds, values.shape[1])
    gap = _max_gap(behaviour_times, max_gap_s)
    samples = _valid_samples(values, behaviour_times)
    first = max(float(times[0]) for times, _ in samples)
    last = min(float(times[-1]) for times, _ in samples)
    if first > last:
        raise ValueError(
            f"The behaviour columns are never all known at once: one has its last valid sample at "
            f"{last:.3f} s, before another's first valid sample at {first:.3f} s."
        )
    if len(neural_times) == 0 or neural_times[-1] < first or neural_times[0] > last:
        raise ValueError(
            f"The neural timestamps span {_span(neural_times)} but the behaviour is known from "
            f"{first:.3f} s to {last:.3f} s: the recordings do not overlap in time. Check the "
            "start times and that both are in seconds."
        )
    status = np.full(len(neural_times), _OK, dtype=np.int8)
    for times, _ in samples:
        status = np.maximum(status, _availability(neural_times, times, gap))
    status[neural_times < first] = _BEFORE
    status[neural_times > last] = _AFTER
    frames = np.flatnonzero(status == _OK).astype(np.int64)
    message = _exclusion_message(status, first, last, gap)
    if frames.size == 0:
        raise ValueError(f"No neural frame has behaviour. {message}")
    kept_times = neural_times[frames]
    columns = [
        _interpolate(kept_times, times, column, kind)
        for (times, column), kind in zip(samples[1:], kinds, strict=True)
    ]
    aligned = np.stack(columns, axis=1) if columns else np.zeros((frames.size, 0))
    return AlignedBehaviour(aligned, frames, len(neural_times) - frames.size, message)


def behaviour_at(
    times: Any,
    behaviour: Any,
    behaviour_times: Any,
    kinds: str | Sequence[str],
    *,
    max_gap_s: float | None = None,
) -> np.ndarray:
    """Behaviour at ``times``, NaN where a column is not known (no exclusion, no error for that).

    For columns shown next to the aligned ones (e.g. to colour an embedding) without deciding
    which frames are kept. Same parameters and rules as :func:`align_behaviour`.

    Returns
    -------
    np.ndarray
        ``(len(times), k)`` float64; NaN before a column's first valid sample, after its last,
        and inside its gaps longer than ``max_gap_s``.
    """
    times = check_timestamps(times, _length(times), "times")
    values = _behaviour_matrix(behaviour)
    behaviour_times = check_timestamps(behaviour_times, len(values), "behaviour timestamps")
    kinds = _column_kinds(kinds, values.shape[1])
    gap = _max_gap(behaviour_times, max_gap_s)
    out = np.full((len(times), values.shape[1]), np.nan)
    for j, kind in enumerate(kinds):
        valid = np.isfinite(values[:, j])
        if not valid.any():
            continue
        sample_times, column = behaviour_times[valid], values[valid, j]
        known = _availability(times, sample_times, gap) == _OK
        out[known, j] = _interpolate(times[known], sample_times, column, kind)
    return out


def wrap_angle(angles: np.ndarray) -> np.ndarray:
    """Angles (radians) wrapped to ``(-pi, pi]``."""
    return np.pi - np.mod(np.pi - np.asarray(angles, dtype=np.float64), 2 * np.pi)


def _length(times: Any) -> int:
    """Number of entries along the first axis (1 for a scalar, which then fails the 1-D check)."""
    return int(np.shape(times)[0]) if np.ndim(times) else 1


def _behaviour_matrix(behaviour: Any) -> np.ndarray:
    array = np.asarray(behaviour)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"behaviour must be numeric, got values of type {array.dtype}.")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(
            f"behaviour must be 1-D or 2-D (samples × variables), got shape {array.shape}."
        )
    if len(array) == 0:
        raise ValueError(f"behaviour has no samples (shape {array.shape}).")
    return array.astype(np.float64)


def _column_kinds(kinds: str | Sequence[str], n_columns: int) -> list[str]:
    listed = [kinds] * n_columns if isinstance(kinds, str) else list(kinds)
    if len(listed) != n_columns:
        raise ValueError(
            f"kinds names {len(listed)} column kinds {listed} but the behaviour has {n_columns} "
            "columns."
        )
    unknown = [kind for kind in listed if kind not in KINDS]
    if unknown:
        raise ValueError(f"Unknown column kind {unknown[0]!r}; expected one of {KINDS}.")
    return listed


def _max_gap(behaviour_times: np.ndarray, max_gap_s: float | None) -> float:
    if max_gap_s is not None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be a positive number of seconds, got {max_gap_s!r}.")
        return float(max_gap_s)
    if len(behaviour_times) < 2:
        return math.inf
    return DEFAULT_GAP_PERIODS * float(np.median(np.diff(behaviour_times)))


def _valid_samples(
    values: np.ndarray, behaviour_times: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The behaviour clock, then each column's finite samples (times, values)."""
    samples = [(behaviour_times, np.zeros(len(behaviour_times)))]
    for j in range(values.shape[1]):
        valid = np.isfinite(values[:, j])
        if not valid.any():
            raise ValueError(
                f"Behaviour column {j} has no valid sample: all its {len(valid)} values are NaN "
                "or infinite."
            )
        samples.append((behaviour_times[valid], values[valid, j]))
    return samples


def _availability(times: np.ndarray, sample_times: np.ndarray, max_gap: float) -> np.ndarray:
    """Per time: known (0), before the first sample (1), after the last (2), in a gap (3)."""
    status = np.full(len(times), _OK, dtype=np.int8)
    previous = np.searchsorted(sample_times, times, side="right") - 1
    inside = (previous >= 0) & (previous < len(sample_times) - 1)
    left = sample_times[np.clip(previous, 0, len(sample_times) - 1)]
    right = sample_times[np.clip(previous + 1, 0, len(sample_times) - 1)]
    in_gap = inside & (times > left) & (right - left > max_gap)
    status[in_gap] = _GAP
    status[previous < 0] = _BEFORE
    status[times > sample_times[-1]] = _AFTER
    return status


def _interpolate(
    times: np.ndarray, sample_times: np.ndarray, values: np.ndarray, kind: str
) -> np.ndarray:
    """Values at ``times`` (all within ``sample_times``' span) by ``kind``."""
    if kind == "continuous":
        return np.interp(times, sample_times, values)
    if kind == "circular":
        return wrap_angle(np.interp(times, sample_times, np.unwrap(values)))
    last = len(sample_times) - 1
    previous = np.clip(np.searchsorted(sample_times, times, side="right") - 1, 0, last)
    if kind == "discrete":
        return values[previous]
    following = np.clip(previous + 1, 0, last)
    closer_after = (sample_times[following] - times) < (times - sample_times[previous])
    return values[np.where(closer_after, following, previous)]


def _span(times: np.ndarray) -> str:
    if len(times) == 0:
        return "nothing (no frames)"
    return f"{times[0]:.3f} s to {times[-1]:.3f} s"


def _exclusion_message(status: np.ndarray, first: float, last: float, max_gap: float) -> str:
    counts = np.bincount(status, minlength=4)
    excluded = len(status) - int(counts[_OK])
    if excluded == 0:
        return ""
    reasons = []
    if counts[_BEFORE]:
        reasons.append(f"{counts[_BEFORE]:,} before the behaviour starts ({first:.3f} s)")
    if counts[_AFTER]:
        reasons.append(f"{counts[_AFTER]:,} after it ends ({last:.3f} s)")
    if counts[_GAP]:
        reasons.append(
            f"{counts[_GAP]:,} in gaps of the behaviour longer than {max_gap:.3g} s "
            "(dropped or NaN samples)"
        )
    return (
        f"Excluded {excluded:,} of {len(status):,} neural frames without behaviour: "
        + "; ".join(reasons)
        + "."
    )
