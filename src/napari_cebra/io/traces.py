"""ROI fluorescence traces from a movie and a label image, with an optional ΔF/F.

The movie is read ``chunk_frames`` frames at a time, so a dask, zarr or memory-mapped array is never
loaded whole. Column ``j`` of the result belongs to the ``j``-th smallest positive label
(:func:`roi_labels`), so labels need not be contiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from napari_cebra.core.progress import run_to_end

DEFAULT_CHUNK_FRAMES = 256
DEFAULT_BASELINE_WINDOW = 900  # frames: 30 s at 30 Hz
DEFAULT_PERCENTILE = 8.0


def roi_labels(rois: np.ndarray) -> np.ndarray:
    """Sorted positive labels of a ROI label image; column order of :func:`extract_traces`.

    Raises
    ------
    ValueError
        If ``rois`` is not an integer array, holds negative labels or no positive label.
    """
    rois = np.asarray(rois)
    if not (np.issubdtype(rois.dtype, np.integer) or rois.dtype == bool):
        raise ValueError(
            f"rois must be an integer label image, got dtype {rois.dtype} (shape {rois.shape})."
        )
    if rois.size and rois.min() < 0:
        raise ValueError(f"rois must not hold negative labels, found {rois.min()}.")
    labels = np.unique(rois)
    labels = labels[labels > 0]
    if labels.size == 0:
        raise ValueError(f"rois of shape {rois.shape} holds no ROI: every pixel is 0 (background).")
    return labels.astype(np.int64)


def iter_extract_traces(
    movie: Any,
    rois: np.ndarray,
    *,
    dff: bool = False,
    baseline_window: int = DEFAULT_BASELINE_WINDOW,
    percentile: float = DEFAULT_PERCENTILE,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
) -> Generator[float, None, np.ndarray]:
    """Generator form of :func:`extract_traces` for GUI workers.

    The arguments are checked when this function is called, so bad input raises at once. The
    returned generator yields the fraction of frames processed (in ``(0, 1]``) after each chunk,
    so a worker can report progress and stop between chunks; the traces are its return value
    (``StopIteration.value``, the ``returned`` signal of a napari ``thread_worker``).

    Parameters
    ----------
    movie, rois, dff, baseline_window, percentile, chunk_frames
        As in :func:`extract_traces`.
    """
    n_frames = _check_movie_and_rois(movie, rois)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}.")
    if dff:
        _check_baseline_arguments(baseline_window, percentile)
    baseline = (baseline_window, percentile) if dff else None
    return _trace_steps(movie, np.asarray(rois), n_frames, chunk_frames, baseline)


def _trace_steps(
    movie: Any,
    rois: np.ndarray,
    n_frames: int,
    chunk_frames: int,
    baseline: tuple[int, float] | None,
) -> Generator[float, None, np.ndarray]:
    order, starts, counts = _pixel_groups(rois)
    traces = np.empty((n_frames, counts.size), dtype=np.float32)
    for start in range(0, n_frames, chunk_frames):
        stop = min(start + chunk_frames, n_frames)
        frames = np.asarray(movie[start:stop]).reshape(stop - start, -1)
        sums = np.add.reduceat(frames[:, order].astype(np.float64), starts, axis=1)
        traces[start:stop] = sums / counts
        yield stop / n_frames
    if baseline is not None:
        window, percentile = baseline
        traces = delta_f_over_f(traces, baseline_window=window, percentile=percentile)
    return traces


def extract_traces(
    movie: Any,
    rois: np.ndarray,
    *,
    dff: bool = False,
    baseline_window: int = DEFAULT_BASELINE_WINDOW,
    percentile: float = DEFAULT_PERCENTILE,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Mean fluorescence of each ROI in each frame, optionally as ΔF/F.

    Parameters
    ----------
    movie : array-like
        ``(T, Y, X)`` movie; anything sliceable along time that gives numpy-convertible chunks
        (numpy, memmap, dask, zarr).
    rois : np.ndarray
        ``(Y, X)`` integer label image: 0 is background, each positive label one ROI.
    dff : bool
        Return ``(F - F0) / F0`` with ``F0`` a running percentile of ``F``
        (see :func:`delta_f_over_f`) instead of raw mean fluorescence.
    baseline_window : int
        Length in frames of the running window of the baseline.
    percentile : float
        Percentile (0–100) of the window taken as the baseline.
    chunk_frames : int
        Frames read from ``movie`` at once.
    progress : callable, optional
        Called with the fraction of frames processed after each chunk.

    Returns
    -------
    np.ndarray
        ``(T, n_rois)`` float32; column ``j`` is ROI ``roi_labels(rois)[j]``.
    """
    steps = iter_extract_traces(
        movie,
        rois,
        dff=dff,
        baseline_window=baseline_window,
        percentile=percentile,
        chunk_frames=chunk_frames,
    )
    return run_to_end(steps, progress)


def running_percentile(
    traces: np.ndarray, window: int, percentile: float = DEFAULT_PERCENTILE
) -> np.ndarray:
    """Running percentile of each column over a centred window of ``window`` frames.

    The percentile is evaluated exactly every ``max(1, window // 20)`` frames (the window is cut at
    the ends of the recording) and interpolated linearly in between, which keeps the cost
    independent of the window length while following drifts slower than the window.

    Parameters
    ----------
    traces : np.ndarray
        ``(T, n)`` traces.
    window : int
        Window length in frames (clipped to ``T``).
    percentile : float
        Percentile in ``[0, 100]``.

    Returns
    -------
    np.ndarray
        ``(T, n)`` float64 baseline.
    """
    traces = np.asarray(traces, dtype=np.float64)
    if traces.ndim != 2:
        raise ValueError(f"traces must be 2-D (time, rois), got shape {traces.shape}.")
    _check_baseline_arguments(window, percentile)
    n_frames = traces.shape[0]
    window = min(window, n_frames)
    stride = max(1, window // 20)
    centres = np.unique(np.append(np.arange(0, n_frames, stride), n_frames - 1))
    half = window // 2
    samples = np.stack(
        [
            np.percentile(traces[max(0, c - half) : c - half + window], percentile, axis=0)
            for c in centres
        ]
    )
    frames = np.arange(n_frames)
    return np.stack(
        [np.interp(frames, centres, samples[:, j]) for j in range(traces.shape[1])], axis=1
    ).reshape(traces.shape)


def delta_f_over_f(
    traces: np.ndarray,
    *,
    baseline_window: int = DEFAULT_BASELINE_WINDOW,
    percentile: float = DEFAULT_PERCENTILE,
) -> np.ndarray:
    """``(F - F0) / F0`` with ``F0`` the running percentile of each trace.

    Parameters
    ----------
    traces : np.ndarray
        ``(T, n)`` fluorescence traces (positive).
    baseline_window : int
        Running window in frames.
    percentile : float
        Percentile of the window taken as ``F0``.

    Returns
    -------
    np.ndarray
        ``(T, n)`` float32 ΔF/F.

    Raises
    ------
    ValueError
        If the baseline of some trace is not positive (e.g. neuropil-subtracted traces), since
        dividing by it has no meaning.
    """
    traces = np.asarray(traces)
    baseline = running_percentile(traces, baseline_window, percentile)
    bad = np.flatnonzero((baseline <= 0).any(axis=0))
    if bad.size:
        raise ValueError(
            f"ΔF/F needs a positive baseline, but the {percentile}th-percentile baseline of "
            f"traces columns {bad[:10].tolist()} (of shape {traces.shape}) reaches "
            f"{baseline[:, bad].min():.3g}; add an offset or use raw traces."
        )
    return ((traces - baseline) / baseline).astype(np.float32)


def _check_movie_and_rois(movie: Any, rois: np.ndarray) -> int:
    shape = tuple(getattr(movie, "shape", ()))
    if len(shape) != 3:
        raise ValueError(f"movie must be 3-D (time, y, x), got shape {shape}.")
    rois_shape = np.shape(rois)
    if rois_shape != shape[1:]:
        raise ValueError(
            f"rois shape {rois_shape} does not match the movie frame shape {shape[1:]} "
            f"(movie shape {shape})."
        )
    roi_labels(rois)
    if shape[0] < 1:
        raise ValueError(f"movie has no frames (shape {shape}).")
    return int(shape[0])


def _check_baseline_arguments(window: int, percentile: float) -> None:
    if int(window) != window or window < 1:
        raise ValueError(f"baseline_window must be a positive number of frames, got {window}.")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}.")


def _pixel_groups(rois: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat pixel indices sorted by label, the start of each label's run, and pixel counts."""
    flat = rois.reshape(-1)
    inside = np.flatnonzero(flat > 0)
    order = inside[np.argsort(flat[inside], kind="stable")]
    _, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    return order, starts, counts.astype(np.float64)
