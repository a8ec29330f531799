"""Selections of an embedding: frames in a lasso / box / range, selective cells, labels."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.io.synthetic import calcium_imaging_session
from napari_cebra.workflows.selection import (
    CellSelectivity,
    cell_selectivity,
    frames_in_box,
    frames_in_polygon,
    frames_in_range,
    selection_labels,
    selection_mask,
    trace_rises,
)

RIGHT, LEFT = 0, 1

# --- frames from a selection -------------------------------------------------------------------

# the centres of a 5×5 grid of unit squares
GRID = np.array([[x, y] for y in range(5) for x in range(5)], dtype=float) + 0.5


def _rows(points: np.ndarray, wanted: list[tuple[float, float]]) -> np.ndarray:
    return np.sort([int(np.flatnonzero((points == w).all(axis=1))[0]) for w in wanted])


def test_polygon_selects_points_inside_a_concave_lasso():
    # a U shape: the notch x in (2, 3), y > 1 is outside
    u_shape = np.array([[0, 0], [5, 0], [5, 5], [3, 5], [3, 1], [2, 1], [2, 5], [0, 5]])
    inside = frames_in_polygon(GRID, u_shape)
    expected = [tuple(p) for p in GRID if not (2 < p[0] < 3 and p[1] > 1)]
    np.testing.assert_array_equal(inside, _rows(GRID, expected))
    assert inside.dtype == np.int64
    assert len(inside) == 25 - 4  # the notch holds (2.5, 1.5) … (2.5, 4.5)


def test_polygon_never_selects_nan_rows_and_checks_shapes():
    points = np.array([[1.0, 1.0], [np.nan, 1.0], [9.0, 9.0]])
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    np.testing.assert_array_equal(frames_in_polygon(points, square), [0])
    with pytest.raises(ValueError, match="polygon"):
        frames_in_polygon(points, square[:2])
    with pytest.raises(ValueError, match=r"points must have shape \(n, 2\)"):
        frames_in_polygon(np.zeros((4, 3)), square)
    assert frames_in_polygon(np.empty((0, 2)), square).size == 0


def test_polygon_handles_100k_points():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (100_000, 2))
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = 0.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    inside = frames_in_polygon(points, circle)
    radius = np.hypot(*points.T)
    assert np.all(radius[inside] <= 0.5 + 1e-9)
    # the 64-gon misses only a thin rim of the circle
    assert abs(len(inside) - (radius <= 0.5).sum()) < 0.01 * len(inside)


def test_box_corners_in_any_order_with_edges_included():
    a = frames_in_box(GRID, (3.5, 0.5), (1.5, 1.5))
    b = frames_in_box(GRID, (1.5, 1.5), (3.5, 0.5))
    expected = [(x, y) for y in (0.5, 1.5) for x in (1.5, 2.5, 3.5)]
    np.testing.assert_array_equal(a, _rows(GRID, expected))
    np.testing.assert_array_equal(a, b)
    points = np.vstack([GRID, [[np.nan, 1.0]]])
    assert len(points) - 1 not in frames_in_box(points, (-10, -10), (10, 10))
    with pytest.raises(ValueError, match="corner_b"):
        frames_in_box(GRID, (0, 0), (1, 2, 3))


def test_range_is_inclusive_and_skips_nan():
    values = np.array([0.0, 0.2, 0.3, np.nan, 0.4, 0.5])
    np.testing.assert_array_equal(frames_in_range(values, 0.2, 0.4), [1, 2, 4])
    assert frames_in_range(values, 2.0, 3.0).size == 0
    with pytest.raises(ValueError, match="low must not exceed high"):
        frames_in_range(values, 0.5, 0.1)
    with pytest.raises(ValueError, match="1-D"):
        frames_in_range(values[:, None], 0.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        frames_in_range(values, np.nan, 1.0)


def test_selection_mask_from_indices_or_mask():
    np.testing.assert_array_equal(selection_mask([3, 1, 3], 5), [0, 1, 0, 1, 0])
    assert not selection_mask([], 4).any()
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        selection_mask([5], 5)
    with pytest.raises(ValueError, match="length 3, expected 5"):
        selection_mask(np.ones(3, dtype=bool), 5)
    with pytest.raises(ValueError, match="dtype float"):
        selection_mask([0.5], 5)


# --- selection -> cells ------------------------------------------------------------------------


def _toy_traces() -> tuple[np.ndarray, np.ndarray]:
    """Cell 0 active in frames 0-9 (+2), cell 1 weakly (+0.5), cell 2 silent there, cell 3 flat."""
    rng = np.random.default_rng(1)
    traces = rng.normal(0.0, 0.1, (100, 4))
    traces[:10, 0] += 2.0
    traces[:10, 1] += 0.5
    traces[:10, 2] -= 1.0
    traces[:, 3] = 0.7
    return traces, np.arange(10)


def test_selectivity_ranks_cells_active_in_the_selection_first():
    traces, selected = _toy_traces()
    for method in ("zscore", "difference"):
        result = cell_selectivity(traces, selected, method=method)
        assert isinstance(result, CellSelectivity)
        np.testing.assert_array_equal(result.order, [0, 1, 3, 2])
        np.testing.assert_array_equal(result.top(2), [0, 1])
        assert (result.n_selected, result.n_other, result.method) == (10, 90, method)
        assert result.scores[3] == 0.0 and np.isfinite(result.scores).all()
    difference = cell_selectivity(traces, selected, method="difference").scores
    assert difference[0] == pytest.approx(2.0, abs=0.1)
    zscore = cell_selectivity(traces, selected).scores
    assert zscore[0] == pytest.approx(difference[0] / traces[:, 0].std())


def test_selectivity_bool_mask_equals_indices_and_scale_invariance():
    traces, selected = _toy_traces()
    mask = np.zeros(100, dtype=bool)
    mask[selected] = True
    a = cell_selectivity(traces, selected).scores
    np.testing.assert_allclose(cell_selectivity(traces, mask).scores, a)
    np.testing.assert_allclose(cell_selectivity(traces * 5.0 + 3.0, mask).scores, a)


def test_selectivity_refuses_empty_or_full_selection_and_bad_input():
    traces, _ = _toy_traces()
    with pytest.raises(ValueError, match="empty"):
        cell_selectivity(traces, [])
    with pytest.raises(ValueError, match="every frame"):
        cell_selectivity(traces, np.ones(100, dtype=bool))
    with pytest.raises(ValueError, match="method"):
        cell_selectivity(traces, [0], method="t-test")
    with pytest.raises(ValueError, match="activity"):
        cell_selectivity(traces, [0], activity="spikes")
    with pytest.raises(ValueError, match=r"\(T, N\)"):
        cell_selectivity(traces[:, 0], [0])
    traces[5, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        cell_selectivity(traces, [0])


def test_constant_cells_score_zero_with_every_method():
    traces = np.zeros((50, 3))
    traces[:, 1] = 0.1  # constant, not exactly representable: rounding must not leak a score
    traces[1:5, 2] = 1.0  # rises at frame 1, inside the selection
    for method in ("zscore", "difference"):
        for activity in ("trace", "rise"):
            scores = cell_selectivity(traces, np.arange(5), method=method, activity=activity).scores
            assert scores[0] == 0.0 and scores[1] == 0.0 and scores[2] > 0.0


def test_trace_rises_keep_only_increases():
    traces = np.array([[0.0], [1.0], [0.5], [0.7], [0.7]])
    np.testing.assert_allclose(trace_rises(traces)[:, 0], [0.0, 1.0, 0.0, 0.2, 0.0])


# --- ground truth: the calcium sample ----------------------------------------------------------


@pytest.fixture(scope="module")
def session():
    # 100 s at 30 Hz; 200 cells (in a 192×192 field of view) so that a 0.4 m stretch of the track
    # holds ~20 cells tuned to each direction. The movie stays lazy (never rendered): only the
    # ground-truth ΔF/F and the fields are used.
    return calcium_imaging_session(n_frames=3000, shape=(192, 192), n_cells=200, seed=0, lazy=True)


def _stretch_frames(session, low: float, high: float, direction: int) -> np.ndarray:
    in_stretch = frames_in_range(session.position, low, high)
    return np.intersect1d(in_stretch, np.flatnonzero(session.direction == direction))


def _true_hits(fields, cells: np.ndarray, low: float, high: float, direction: int) -> int:
    """Cells whose true field centre lies in ``[low, high]`` and that fire in ``direction``
    (preference ``direction`` or both, and not untuned: :meth:`PlaceFields.fires_in`)."""
    centres = fields.centres[cells]
    in_stretch = (centres >= low) & (centres <= high)
    return int((in_stretch & fields.fires_in(direction)[cells]).sum())


@pytest.mark.parametrize(
    ("low", "high", "direction"), [(0.2, 0.6, RIGHT), (1.0, 1.4, LEFT), (0.6, 1.0, RIGHT)]
)
def test_selected_stretch_finds_the_cells_with_fields_there(session, low, high, direction):
    """Issue 16: selecting the frames of one stretch of track in one running direction ranks,
    among the top 10 cells, at least 8 whose true place field lies in that stretch and direction.

    Strict criterion (centre inside the stretch, no margin). The cells are ranked by the rises of
    their ΔF/F (``activity="rise"``): the level of ΔF/F lags the firing by the ~0.7 s GCaMP decay
    (0.1–0.4 m of running), see the next test.
    """
    selected = _stretch_frames(session, low, high, direction)
    assert len(selected) > 100
    result = cell_selectivity(session.traces, selected, activity="rise")
    assert _true_hits(session.fields, result.top(10), low, high, direction) >= 8


def test_trace_level_finds_the_direction_but_lags_behind_the_firing(session):
    """The ΔF/F level ranks cells of the right direction, but shifted back along the run: the
    transients of cells that fired just before the stretch still decay in it."""
    fields = session.fields
    for low, high, direction in [(0.2, 0.6, RIGHT), (1.0, 1.4, LEFT)]:
        selected = _stretch_frames(session, low, high, direction)
        level = cell_selectivity(session.traces, selected).top(10)
        rise = cell_selectivity(session.traces, selected, activity="rise").top(10)
        assert fields.fires_in(direction)[level].all()
        backwards = -1.0 if direction == RIGHT else 1.0  # running right, "before" is smaller x
        shift = backwards * (fields.centres[level].mean() - fields.centres[rise].mean())
        assert shift > 0.02


# --- selections -> labels ----------------------------------------------------------------------


def test_labels_from_two_selections_and_the_rest():
    mask = np.zeros(10, dtype=bool)
    mask[[7, 8]] = True
    labels, names = selection_labels(10, {"start": [0, 1, 2], "end": mask}, rest="elsewhere")
    np.testing.assert_array_equal(labels, [0, 0, 0, 2, 2, 2, 2, 1, 1, 2])
    assert labels.dtype == np.int64
    assert names == ["start", "end", "elsewhere"]


def test_overlapping_selections_name_both_and_the_shared_count():
    with pytest.raises(ValueError, match=r"'a' and 'b' share 2 frames"):
        selection_labels(10, {"a": [0, 1, 2], "b": [1, 2, 3], "c": [9]})
    with pytest.raises(ValueError, match="rest='a'"):
        selection_labels(10, {"a": [0]}, rest="a")
    with pytest.raises(ValueError, match="selection 'b'"):
        selection_labels(10, {"a": [0], "b": [10]})
    with pytest.raises(ValueError, match="empty"):
        selection_labels(10, {})
