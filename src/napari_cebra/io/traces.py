"""ROI fluorescence traces from a movie and a label image, with an optional ΔF/F.

The movie is read about :data:`DEFAULT_CHUNK_BYTES` at a time, the next chunk in a thread while the
current one is reduced, so a dask, zarr, memory-mapped or :class:`napari_cebra.io.movies.LazyMovie`
array is never loaded whole and memory stays near two chunks. Column ``j`` of the result belongs
to the ``j``-th smallest positive label (:func:`roi_labels`), so labels need not be contiguous.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cebra.core.progress import run_to_end

DEFAULT_CHUNK_BYTES = 64 << 20
"""Bytes of movie read at once by default (128 frames of 512 × 512 uint16)."""
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
    chunk_frames: int | None = None,
) -> Generator[float, None, np.ndarray]:
    """Generator form of :func:`extract_traces` for GUI workers.

    The arguments are checked when this function is called, so bad input raises at once. The
    returned generator yields the fraction of frames processed (in ``(0, 1]``) after each chunk,
    so a worker can report progress and stop between chunks; the traces are its return value
    (``StopIteration.value``, the ``returned`` signal of a napari ``thread_worker``). Closing it
    early waits for the one chunk being read ahead, then releases it.

    Parameters
    ----------
    movie, rois, dff, baseline_window, percentile, chunk_frames
        As in :func:`extract_traces`.
    """
    n_frames = _check_movie_and_rois(movie, rois)
    if chunk_frames is None:
        chunk_frames = frames_per_chunk(movie)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}.")
    if dff:
        _check_baseline_arguments(baseline_window, percentile)
    baseline = (baseline_window, percentile) if dff else None
    return _trace_steps(movie, np.asarray(rois), n_frames, chunk_frames, baseline)


def frames_per_chunk(movie: Any, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Frames of ``movie`` (``(T, Y, X)``, with a ``dtype``) that fill about ``chunk_bytes``.

    At least one frame; a movie without a ``dtype`` is counted as 8 bytes per value.
    """
    dtype = getattr(movie, "dtype", None)
    itemsize = np.dtype(dtype).itemsize if dtype is not None else 8
    frame_bytes = math.prod(movie.shape[1:]) * itemsize
    return max(1, chunk_bytes // max(frame_bytes, 1))


def _trace_steps(
    movie: Any,
    rois: np.ndarray,
    n_frames: int,
    chunk_frames: int,
    baseline: tuple[int, float] | None,
) -> Generator[float, None, np.ndarray]:
    pixels = _RoiPixels.of(rois)
    traces = np.empty((n_frames, pixels.counts.size), dtype=np.float32)
    with closing(_read_ahead(movie, n_frames, chunk_frames)) as chunks:
        for start, stop, frames in chunks:
            traces[start:stop] = pixels.means(frames.reshape(stop - start, -1))
            yield stop / n_frames
    if baseline is not None:
        window, percentile = baseline
        traces = delta_f_over_f(traces, baseline_window=window, percentile=percentile)
    return traces


def _read_ahead(
    movie: Any, n_frames: int, chunk_frames: int
) -> Generator[tuple[int, int, np.ndarray], None, None]:
    """``(start, stop, frames)`` of consecutive chunks; the next chunk is read in a thread while
    the caller works on the current one (file reads, decompression and dask release the GIL)."""
    bounds = [
        (start, min(start + chunk_frames, n_frames)) for start in range(0, n_frames, chunk_frames)
    ]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="movie-reader") as reader:
        pending = reader.submit(_read_chunk, movie, *bounds[0])
        for i, (start, stop) in enumerate(bounds):
            frames = pending.result()
            if i + 1 < len(bounds):
                pending = reader.submit(_read_chunk, movie, *bounds[i + 1])
            yield start, stop, frames
            del frames  # keep at most the chunk being read and the one being reduced


def _read_chunk(movie: Any, start: int, stop: int) -> np.ndarray:
    return np.asarray(movie[start:stop])


@dataclass(frozen=True)
class _RoiPixels:
    """Where the ROIs are in a flattened frame, arranged for summing each ROI of many frames.

    Attributes
    ----------
    pixels : np.ndarray
        Flat indices of the pixels inside any ROI, ascending (a gather in memory order).
    by_label : np.ndarray
        Positions in ``pixels`` sorted by label, ascending pixel index within a label.
    starts : np.ndarray
        Where each label's run starts in ``pixels[by_label]``.
    counts : np.ndarray
        Pixels of each label (float64).
    """

    pixels: np.ndarray
    by_label: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, rois: np.ndarray) -> _RoiPixels:
        flat = rois.reshape(-1)
        pixels = np.flatnonzero(flat > 0)
        by_label = np.argsort(flat[pixels], kind="stable")
        _, starts, counts = np.unique(flat[pixels[by_label]], return_index=True, return_counts=True)
        return cls(pixels, by_label, starts, counts.astype(np.float64))

    def means(self, frames: np.ndarray) -> np.ndarray:
        """``(n, n_rois)`` float64 mean of each ROI in each row of ``frames`` (``(n, Y * X)``).

        Gathering the ROI pixels in memory order first, then reordering that small array by
        label (in cache) is about three times faster than gathering by label directly; the sums
        run in float64, in the same order, so the result does not depend on the chunking.
        """
        inside = np.take(frames, self.pixels, axis=1)
        by_label = np.take(inside, self.by_label, axis=1).astype(np.float64)
        return np.add.reduceat(by_label, self.starts, axis=1) / self.counts


def extract_traces(
    movie: Any,
    rois: np.ndarray,
    *,
    dff: bool = False,
    baseline_window: int = DEFAULT_BASELINE_WINDOW,
    percentile: float = DEFAULT_PERCENTILE,
    chunk_frames: int | None = None,
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
    chunk_frames : int, optional
        Frames read from ``movie`` at once; by default as many as fill
        :data:`DEFAULT_CHUNK_BYTES` (:func:`frames_per_chunk`). One chunk is read ahead in a
        thread while the previous one is reduced, so about two chunks are held at a time.
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
