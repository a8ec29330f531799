"""Exploring an embedding: which frames a selection holds, and which cells those frames recruit.

A selection is a region of a 2-D view of the embedding (a lasso polygon or a box) or a value
range of a feature (e.g. position 0–0.4 m). The functions here turn it into frame indices
(:func:`frames_in_polygon`, :func:`frames_in_box`, :func:`frames_in_range`), rank the cells by how
much more active they are in the selected frames than in the rest (:func:`cell_selectivity`;
for calcium imaging compare the rises of ΔF/F, ``activity="rise"``, since the slow decay of the
indicator makes the ΔF/F level lag the firing), and turn named selections into discrete labels, one class per selection plus one for the rest
(:func:`selection_labels`).

Frame selections are passed either as a boolean mask of length ``T`` or as integer frame indices.
Plain numpy (and ``matplotlib.path`` for the point-in-polygon test); no Qt or napari.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

SelectivityMethod = Literal["zscore", "difference"]
Activity = Literal["trace", "rise"]
_METHODS: tuple[str, ...] = ("zscore", "difference")
_ACTIVITIES: tuple[str, ...] = ("trace", "rise")


# --- frames from a selection -------------------------------------------------------------------


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}.")
    return points


def _check_corner(corner: np.ndarray, name: str) -> np.ndarray:
    corner = np.asarray(corner, dtype=np.float64)
    if corner.shape != (2,):
        raise ValueError(f"{name} must be 2 coordinates, got shape {corner.shape}.")
    if not np.isfinite(corner).all():
        raise ValueError(f"{name} must be finite, got {corner.tolist()}.")
    return corner


def frames_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the points inside a polygon (a lasso selection; concave polygons work).

    Parameters
    ----------
    points : np.ndarray
        ``(n, 2)`` coordinates, one row per frame (e.g. two embedding dimensions).
    polygon : np.ndarray
        ``(k, 2)`` vertices in order, ``k >= 3``; the polygon closes itself (the last vertex
        joins the first). Points exactly on an edge may fall on either side.

    Returns
    -------
    np.ndarray
        ``(m,)`` int64 sorted row indices of the points inside. Rows with NaN are never inside.
    """
    from matplotlib.path import Path

    points = _check_points(points)
    polygon = np.asarray(polygon, dtype=np.float64)
    if polygon.ndim != 2 or polygon.shape[1] != 2 or polygon.shape[0] < 3:
        raise ValueError(
            f"polygon must have shape (k, 2) with k >= 3 vertices, got {polygon.shape}."
        )
    if not np.isfinite(polygon).all():
        raise ValueError("polygon vertices must be finite (no NaN or inf).")
    finite = np.isfinite(points).all(axis=1)
    inside = np.zeros(len(points), dtype=bool)
    inside[finite] = Path(polygon).contains_points(points[finite])
    return np.flatnonzero(inside).astype(np.int64)


def frames_in_box(points: np.ndarray, corner_a: np.ndarray, corner_b: np.ndarray) -> np.ndarray:
    """Indices of the points inside an axis-aligned box given by two opposite corners.

    Parameters
    ----------
    points : np.ndarray
        ``(n, 2)`` coordinates, one row per frame.
    corner_a, corner_b : array-like
        Two opposite corners ``(x, y)``, in any order; the edges are included.

    Returns
    -------
    np.ndarray
        ``(m,)`` int64 sorted row indices inside the box. Rows with NaN are never inside.
    """
    points = _check_points(points)
    a, b = _check_corner(corner_a, "corner_a"), _check_corner(corner_b, "corner_b")
    low, high = np.minimum(a, b), np.maximum(a, b)
    inside = ((points >= low) & (points <= high)).all(axis=1)
    return np.flatnonzero(inside).astype(np.int64)


def frames_in_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Indices of the frames whose value lies in ``[low, high]`` (both ends included).

    Parameters
    ----------
    values : np.ndarray
        ``(T,)`` one value per frame (e.g. position in metres).
    low, high : float
        The range, ``low <= high``. NaN values are never selected.

    Returns
    -------
    np.ndarray
        ``(m,)`` int64 sorted frame indices.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D (one value per frame), got shape {values.shape}.")
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"low and high must be finite, got low={low}, high={high}.")
    if low > high:
        raise ValueError(f"low must not exceed high, got low={low} > high={high}.")
    return np.flatnonzero((values >= low) & (values <= high)).astype(np.int64)


# --- frame selections as masks -----------------------------------------------------------------


def selection_mask(selected: np.ndarray, n_frames: int, name: str = "selected") -> np.ndarray:
    """A ``(n_frames,)`` bool mask from a boolean mask or from integer frame indices.

    Parameters
    ----------
    selected : np.ndarray
        A bool mask of length ``n_frames`` or integer indices in ``[0, n_frames)`` (duplicates
        are allowed; an empty list selects nothing).
    n_frames : int
        Number of frames of the recording.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    np.ndarray
        ``(n_frames,)`` bool.
    """
    selected = np.asarray(selected)
    if selected.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D bool mask or frame indices, got shape {selected.shape}."
        )
    if selected.dtype == bool:
        if selected.shape[0] != n_frames:
            raise ValueError(
                f"{name} is a bool mask of length {selected.shape[0]}, expected {n_frames} "
                "(one entry per frame)."
            )
        return selected.copy()
    if selected.size == 0:
        return np.zeros(n_frames, dtype=bool)
    if not np.issubdtype(selected.dtype, np.integer):
        raise ValueError(
            f"{name} must be a bool mask or integer frame indices, got dtype {selected.dtype}."
        )
    if selected.min() < 0 or selected.max() >= n_frames:
        raise ValueError(
            f"{name} has frame indices outside [0, {n_frames}): "
            f"min {selected.min()}, max {selected.max()}."
        )
    mask = np.zeros(n_frames, dtype=bool)
    mask[selected] = True
    return mask


# --- selection -> cells ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CellSelectivity:
    """How much more active each cell is in the selected frames than in the other frames.

    Attributes
    ----------
    scores : np.ndarray
        ``(N,)`` float64 score per cell (see :func:`cell_selectivity`); always finite.
    order : np.ndarray
        ``(N,)`` int64 cell indices sorted by decreasing score (ties keep the cell order).
    method : str
        ``"zscore"`` or ``"difference"``.
    n_selected, n_other : int
        Number of selected and of other frames.
    activity : str
        What was compared: ``"trace"`` (the traces as given) or ``"rise"`` (:func:`trace_rises`).
    """

    scores: np.ndarray
    order: np.ndarray
    method: str
    n_selected: int
    n_other: int
    activity: str = "trace"

    @property
    def n_cells(self) -> int:
        return int(self.scores.shape[0])

    def top(self, k: int) -> np.ndarray:
        """The ``k`` most selective cells (column indices), best first."""
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}.")
        return self.order[:k]


def _check_traces(traces: np.ndarray) -> np.ndarray:
    traces = np.asarray(traces, dtype=np.float64)
    if traces.ndim != 2:
        raise ValueError(f"traces must have shape (T, N) (frames × cells), got {traces.shape}.")
    if not np.isfinite(traces).all():
        raise ValueError("traces must be finite (no NaN or inf).")
    return traces


def trace_rises(traces: np.ndarray) -> np.ndarray:
    """Frame-to-frame increases of each trace, ``max(y[t] − y[t−1], 0)`` (0 at the first frame).

    A parameter-free proxy of when calcium-imaged cells fire: GCaMP ΔF/F rises within ~70 ms of
    the spikes but decays over ~0.7 s, so the *level* of ΔF/F in a stretch of track still holds
    the transients of cells that fired 0.1–0.4 m earlier (at running speed), while the rises are
    time-locked to the firing.

    Parameters
    ----------
    traces : np.ndarray
        ``(T, N)`` activity, e.g. ΔF/F.

    Returns
    -------
    np.ndarray
        ``(T, N)`` float64, non-negative.
    """
    traces = _check_traces(traces)
    rises = np.zeros_like(traces)
    np.clip(np.diff(traces, axis=0), 0.0, None, out=rises[1:])
    return rises


def cell_selectivity(
    traces: np.ndarray,
    selected: np.ndarray,
    *,
    method: SelectivityMethod = "zscore",
    activity: Activity = "trace",
) -> CellSelectivity:
    """Rank the cells by how much more active they are in the selected frames than in the rest.

    Parameters
    ----------
    traces : np.ndarray
        ``(T, N)`` activity (e.g. ΔF/F) of ``N`` cells over ``T`` frames; must be finite.
    selected : np.ndarray
        The selected frames: a ``(T,)`` bool mask or integer frame indices. At least one frame
        must be selected and at least one left out.
    method : {"zscore", "difference"}
        ``"difference"``: ``mean_selected − mean_other`` in the units of ``traces`` (ΔF/F).
        ``"zscore"``: that difference divided by the standard deviation of the cell's whole
        trace (all ``T`` frames, ``ddof=0``), i.e. an effect size in units of the cell's own
        variability, which does not grow with the number of selected frames and lets cells of
        different brightness compete. A cell with a constant trace scores 0.
    activity : {"trace", "rise"}
        Compare the traces themselves, or their rises (:func:`trace_rises`). For calcium
        imaging, ``"rise"`` finds the cells that *fire* in the selected frames; ``"trace"``
        also ranks high the cells that fired shortly before (their slow transients still
        decay in the selected frames).

    Returns
    -------
    CellSelectivity
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    if activity not in _ACTIVITIES:
        raise ValueError(f"activity must be one of {_ACTIVITIES}, got {activity!r}.")
    traces = trace_rises(traces) if activity == "rise" else _check_traces(traces)
    mask = selection_mask(selected, traces.shape[0])
    n_selected = int(mask.sum())
    n_other = traces.shape[0] - n_selected
    if n_selected == 0:
        raise ValueError("The selection is empty: select at least one frame.")
    if n_other == 0:
        raise ValueError(
            "The selection holds every frame: leave some frames out to compare against."
        )
    difference = traces[mask].mean(axis=0) - traces[~mask].mean(axis=0)
    std = traces.std(axis=0)
    # constant up to rounding: the difference of means is rounding noise, the score is 0
    constant = std <= 1e-12 * np.abs(traces).max(axis=0)
    if method == "zscore":
        scores = np.divide(difference, std, out=np.zeros_like(difference), where=~constant)
    else:
        scores = np.where(constant, 0.0, difference)
    order = np.argsort(-scores, kind="stable").astype(np.int64)
    return CellSelectivity(scores, order, method, n_selected, n_other, activity)


# --- selections -> labels ----------------------------------------------------------------------


def selection_labels(
    n_frames: int, selections: Mapping[str, np.ndarray], *, rest: str = "other"
) -> tuple[np.ndarray, list[str]]:
    """Discrete labels from named selections: one class per selection and one for the rest.

    Parameters
    ----------
    n_frames : int
        Number of frames ``T``.
    selections : Mapping[str, array-like]
        Name → selected frames (a ``(T,)`` bool mask or frame indices). The selections must not
        share frames.
    rest : str
        Name of the class of the frames in no selection (always the last class, possibly empty).

    Returns
    -------
    labels : np.ndarray
        ``(T,)`` int64: ``i`` for the frames of the ``i``-th selection (in the mapping's order),
        ``len(selections)`` for the rest.
    names : list of str
        Class names, ``names[i]`` for label ``i``; the last one is ``rest``.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}.")
    if len(selections) == 0:
        raise ValueError("selections is empty: give at least one named selection.")
    if rest in selections:
        raise ValueError(f"rest={rest!r} is also the name of a selection; choose another name.")
    masks = {
        name: selection_mask(sel, n_frames, f"selection {name!r}")
        for name, sel in selections.items()
    }
    _check_no_overlap(masks)
    labels = np.full(n_frames, len(masks), dtype=np.int64)
    for label, mask in enumerate(masks.values()):
        labels[mask] = label
    return labels, [*masks, rest]


def _check_no_overlap(masks: Mapping[str, np.ndarray]) -> None:
    """Raise a ValueError listing every pair of selections that share frames."""
    names = list(masks)
    clashes = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = int((masks[first] & masks[second]).sum())
            if shared:
                clashes.append(f"{first!r} and {second!r} share {shared} frames")
    if clashes:
        raise ValueError(
            "Selections overlap (each frame can belong to one class only): "
            + "; ".join(clashes)
            + "."
        )
