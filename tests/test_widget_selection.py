"""The selection dock: select frames on the embedding, show and play them, save them as a label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.utils.colormaps import ensure_colormap

from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import DataPicker
from napari_cebra._widgets.selection_widget import (
    LABEL_COLUMN,
    LABEL_LAYER,
    SCORE_COLORMAP,
    SCORES_LAYER,
    SELECTED_LAYER,
    SHAPE_LAYER,
    SelectionWidget,
    cells_title,
    count_stretches,
    score_colours,
)
from napari_cebra.io.synthetic import calcium_imaging_session
from napari_cebra.io.traces import extract_traces

pytestmark = pytest.mark.gui

N_FRAMES = 60


@pytest.fixture
def widget(make_napari_viewer):
    """A movie, a 2-D embedding on a grid of known points, and the selection widget.

    Point ``t`` of the embedding is at ``(t % 10, t // 10)``; ``position`` is ``t / 10`` and
    ``direction`` alternates in blocks of 10 frames.
    """
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_FRAMES, 8, 8), dtype=np.uint16), name="movie")
    frames = np.arange(N_FRAMES)
    embedding = np.column_stack([frames % 10, frames // 10]).astype(np.float32)
    features = pd.DataFrame(
        {"position": frames / 10.0, "direction": ((frames // 10) % 2).astype(np.int64)}
    )
    embedding_view(viewer).add_embedding(
        embedding, name="emb", features=features, time_layer="movie"
    )
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="selection")
    return widget


def test_count_stretches():
    assert count_stretches(np.array([], dtype=np.int64)) == 0
    assert count_stretches(np.array([1, 2, 3, 7, 9, 10])) == 3


def test_range_selection_selects_the_frames_and_draws_them(widget):
    assert widget.column.choices == ("frame", "position", "direction")
    widget.column.value = "position"
    assert (widget.low.value, widget.high.value) == (0.0, 5.9)
    widget.low.value, widget.high.value = 1.0, 3.45
    widget.viewer.dims.current_step = (0, 0, 0)
    rows = widget.select_range()
    np.testing.assert_array_equal(rows, np.arange(10, 35))
    layer = widget.view.viewer.layers[SELECTED_LAYER]
    np.testing.assert_allclose(layer.data, widget.view.layer("emb").data[10:35])
    assert "25 of 60 frames selected (41.7 %) in 1 stretch." in widget.readout.text()
    assert "current frame (0) is not in it" in widget.readout.text()

    widget.equal_column.value = "direction"
    widget.equal_value.value = 0
    np.testing.assert_array_equal(widget.select_range(), np.arange(20, 30))
    widget.viewer.dims.current_step = (25, 0, 0)
    assert "current frame (25) is in it" in widget.readout.text()

    widget.clear_button.changed.emit(True)
    assert len(widget.rows) == 0 and not layer.visible
    assert widget.readout.text() == "No frames selected."


def test_a_large_selection_is_drawn_with_a_stride_but_counted_whole(widget, monkeypatch):
    from napari_cebra._widgets import selection_widget

    monkeypatch.setattr(selection_widget, "MAX_SELECTION_MARKERS", 8)
    widget.set_selection(np.arange(5, 45))  # 40 rows: every 5th is drawn
    layer = widget.view.viewer.layers[SELECTED_LAYER]
    np.testing.assert_allclose(layer.data, widget.view.layer("emb").data[5:45:5])
    assert "40 of 60 frames selected" in widget.readout.text()
    np.testing.assert_array_equal(widget.selected_frames(), np.arange(5, 45))


def test_shape_selects_the_points_inside(widget):
    shapes = widget.draw_shape()
    view = widget.view.viewer
    assert view.dims.ndisplay == 2 and shapes.name == SHAPE_LAYER and shapes.mode == "add_polygon"
    # napari's 2-D data order is (row, column) = (embedding axis 0, embedding axis 1)
    shapes.add_rectangles(np.array([[1.5, 0.5], [1.5, 2.5], [3.5, 2.5], [3.5, 0.5]]))
    rows = widget.select_inside_shape()
    # axis 0 in {2, 3} and axis 1 in {1, 2}: frames 12, 13, 22, 23
    np.testing.assert_array_equal(rows, [12, 13, 22, 23])
    assert widget.draw_shape() is shapes  # reused
    shapes.add_polygons(np.array([[-0.5, -0.5], [-0.5, 0.5], [9.5, 0.5]]))  # the last one counts
    np.testing.assert_array_equal(widget.select_inside_shape(), [0, 1, 2, 3, 4])


def test_play_steps_through_the_selected_frames_only(widget, qtbot):
    widget.set_selection(np.array([3, 4, 40]))
    widget.play_button.setChecked(True)
    assert widget.timer.isActive()
    seen = []
    for _ in range(4):
        widget.play_step()
        seen.append(widget.viewer.dims.current_step[0])
    assert seen == [3, 4, 40, 3]
    qtbot.waitUntil(lambda: widget.viewer.dims.current_step[0] != 3, timeout=2000)
    assert widget.viewer.dims.current_step[0] in (3, 4, 40)
    widget.play_button.setChecked(False)
    assert not widget.timer.isActive()
    widget.clear()
    widget.play_button.setChecked(True)  # nothing to play
    assert not widget.timer.isActive() and not widget.play_button.isChecked()


def test_save_as_label_adds_classes_to_the_embedding_and_the_behaviour(widget):
    widget.set_selection(np.arange(0, 10))
    widget.name.value = "start"
    assert widget.save_as_label() == ["start", "other"]
    widget.set_selection(np.arange(50, 60))
    widget.name.value = "end"
    assert widget.save_as_label() == ["start", "end", "other"]
    expected = np.full(N_FRAMES, 2)
    expected[:10], expected[50:] = 0, 1

    view = widget.view
    names = np.array(["start", "end", "other"])[expected]  # the embedding shows class names
    np.testing.assert_array_equal(view.current.features[LABEL_COLUMN].astype(str), names)
    np.testing.assert_array_equal(view.layer("emb").features[LABEL_COLUMN].astype(str), names)
    assert LABEL_COLUMN in view.color_by.choices and view.color_by.value == LABEL_COLUMN
    assert set(view.legend.legend.categories) == {"start", "end", "other"}
    assert "0 = start, 1 = end, 2 = other" in widget.saved_readout.text()

    picker = DataPicker(widget.viewer)
    assert LABEL_LAYER in picker.behaviour.choices
    picker.behaviour.value = LABEL_LAYER
    assert LABEL_COLUMN in picker.discrete.choices
    np.testing.assert_array_equal(picker.behaviour_table()[LABEL_COLUMN], expected)
    assert not widget.viewer.layers[LABEL_LAYER].visible

    widget.set_selection(np.arange(5, 15))  # overlaps "start": refused, nothing changes
    widget.name.value = "again"
    assert widget.save_as_label() is None
    assert "overlap" in widget.saved_readout.text()
    assert list(widget.saved) == ["start", "end"]


# --- which cells? --------------------------------------------------------------------------------

RIGHT = 0
EXTRACT_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def calcium():
    """The calcium sample as in the ground-truth test of tests/test_selection.py (200 cells, so a
    0.4 m stretch holds ~20 cells per direction), rendered once, with its ΔF/F-free traces."""
    session = calcium_imaging_session(
        n_frames=3000, shape=(192, 192), n_cells=200, seed=0, lazy=False
    )
    return session, extract_traces(session.movie, session.rois, dff=False)


@pytest.fixture
def cells_widget(make_napari_viewer, calcium):
    """Movie + ROIs in the main viewer; an embedding (not trained: position and direction) of
    every other frame, so that embedding rows and recording frames differ."""
    session, _ = calcium
    viewer = make_napari_viewer()
    viewer.add_image(session.movie, name="calcium movie")
    viewer.add_labels(session.rois, name="ROIs", opacity=0.4)
    frames = np.arange(0, len(session.position), 2)
    features = pd.DataFrame(
        {
            "frame": frames,
            "position": session.position[frames],
            "direction": session.direction[frames],
        }
    )
    embedding = np.column_stack([session.position[frames], session.direction[frames]])
    embedding_view(viewer).add_embedding(
        embedding, name="emb", features=features, time_layer="calcium movie"
    )
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="selection")
    return widget


def _true_hits(fields, cells: np.ndarray, low: float, high: float, direction: int) -> int:
    centres = fields.centres[cells]
    return int((((centres >= low) & (centres <= high)) & fields.fires_in(direction)[cells]).sum())


def _rank_and_wait(widget, qtbot) -> None:
    ranking = widget.ranking
    widget.rank_button.click()
    qtbot.waitUntil(
        lambda: widget.ranking is not ranking and not widget.runner.running,
        timeout=EXTRACT_TIMEOUT_MS,
    )


def test_score_colours_and_titles():
    colours, limit = score_colours(np.array([-1.0, 0.0, 2.0]))
    assert limit == 2.0 and colours.shape == (3, 4)
    assert colours[2, 0] > colours[2, 2] and colours[0, 2] > colours[0, 0]  # red high, blue low
    assert cells_title([7]) == "cell 7" and cells_title([3, 7]) == "mean of cells 3, 7"


def test_rank_cells_of_a_stretch_paints_the_rois_and_colours_the_embedding(
    cells_widget, calcium, qtbot
):
    widget, (session, traces) = cells_widget, calcium
    low, high = 0.2, 0.6
    assert widget.picker.neural.value == "calcium movie" and widget.picker.rois.value == "ROIs"
    assert widget.rises.value  # a movie with ROIs: rises by default
    widget.column.value = "position"
    widget.low.value, widget.high.value = low, high
    widget.equal_column.value = "direction"
    widget.equal_value.value = RIGHT
    widget.select_range()

    _rank_and_wait(widget, qtbot)  # traces extracted from the movie in a worker
    ranking = widget.ranking
    np.testing.assert_allclose(widget.traces, traces, rtol=1e-5, atol=1e-3)
    top = ranking.top(10)
    assert _true_hits(session.fields, top, low, high, RIGHT) >= 8
    listed = widget.top_readout.text()
    best = int(top[0])
    assert f"cell {best + 1} (ROI {best + 1}): z = {ranking.scores[best]:.2f}" in listed
    assert listed.count("cell ") == 10

    layer = widget.viewer.layers[SCORES_LAYER]
    np.testing.assert_array_equal(layer.data, session.rois)
    colours = layer.colormap.map(np.arange(1, ranking.n_cells + 1))
    limit = np.abs(ranking.scores).max()  # the colour is the score's place on the colormap
    expected = ensure_colormap(SCORE_COLORMAP).map(0.5 + 0.5 * ranking.scores / limit)
    np.testing.assert_allclose(colours, expected, atol=1e-5)
    high_end = ensure_colormap(SCORE_COLORMAP).map(np.array([1.0]))[0]
    np.testing.assert_allclose(colours[best], high_end, atol=1e-5)  # the best cell: high end
    np.testing.assert_allclose(layer.colormap.map(np.array([0]))[0], 0.0)  # background
    assert not widget.score_legend.isHidden()
    assert widget.score_legend.legend.high == pytest.approx(np.abs(ranking.scores).max())

    # a second ranking is instant (cached traces) and reuses the layer
    widget.method.value = "difference"
    assert widget.rank_cells() is not None
    assert widget.viewer.layers[SCORES_LAYER] is layer
    assert sum(lay.name == SCORES_LAYER for lay in widget.viewer.layers) == 1
    assert "Δ = " in widget.top_readout.text()

    # cells -> embedding: the "cell" box ...
    view, entry = widget.view, widget.view.current
    widget.cell.value = 5
    widget.cell_button.changed.emit(True)
    assert view.color_by.value == "cell 5"
    np.testing.assert_allclose(entry.features["cell 5"], traces[entry.frames, 4])

    # ... a click on an ROI of the scores layer, shift-click for the mean
    def click(label: int, shift: bool = False) -> None:
        y, x = np.argwhere(session.rois == label)[0]
        event = type(
            "Event",
            (),
            {
                "position": (0.0, float(y), float(x)),
                "view_direction": None,
                "dims_displayed": [1, 2],
                "modifiers": ("Shift",) if shift else (),
            },
        )()
        for callback in layer.mouse_drag_callbacks:
            callback(layer, event)

    click(12)
    assert view.color_by.value == "cell 12" and widget.cell.value == 12
    np.testing.assert_allclose(entry.features["cell 12"], traces[entry.frames, 11])
    click(3, shift=True)
    click(30, shift=True)
    assert view.color_by.value == "mean of cells 12, 3, 30"
    np.testing.assert_allclose(
        entry.features["mean of cells 12, 3, 30"],
        traces[entry.frames][:, [11, 2, 29]].mean(axis=1),
        rtol=1e-5,
    )

    def ours(target) -> int:
        return sum(getattr(cb, "__self__", None) is widget for cb in target.mouse_drag_callbacks)

    rois = widget.viewer.layers["ROIs"]
    assert ours(layer) == 1 and ours(rois) == 1  # once, though ranked twice
    widget.viewer.window.remove_dock_widget(widget.parent())  # the callbacks go with the dock
    assert ours(layer) == 0 and ours(rois) == 0


def test_rank_cells_of_a_matrix_lists_without_painting(make_napari_viewer, calcium):
    session, traces = calcium
    viewer = make_napari_viewer()
    viewer.add_image(traces, name="neural")
    embedding_view(viewer).add_embedding(
        np.column_stack([session.position, session.direction]).astype(np.float32),
        name="emb",
        features=pd.DataFrame({"position": session.position}),
    )
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="selection")
    assert widget.picker.neural.value == "neural" and not widget.rises.value
    widget.set_selection(np.arange(100, 400))
    ranking = widget.rank_cells()  # a matrix: no worker
    assert ranking is not None and SCORES_LAYER not in viewer.layers
    assert f"cell {int(ranking.order[0]) + 1}: z = " in widget.top_readout.text()
    assert "ROI" not in widget.top_readout.text()
    widget.cell.value = 2
    assert widget.colour_by_cell() == "cell 2"
    np.testing.assert_allclose(widget.view.current.features["cell 2"], traces[:, 1])


def test_a_selection_is_drawn_in_the_compared_embedding_too(widget):
    """Each pane draws the selected frames at its own embedding's coordinates; a compared
    embedding of other frames marks only the frames it has."""
    view = widget.view
    other = np.random.default_rng(4).normal(size=(30, 2)).astype(np.float32)
    features = pd.DataFrame({"frame": np.arange(0, N_FRAMES, 2)})  # every other frame
    view.add_embedding(other, name="half", features=features, time_layer="movie")
    view.choice.value = "emb"
    view.compare.value = ["half"]
    widget.set_selection(np.arange(10, 20))
    first = view.viewer.layers[SELECTED_LAYER]
    np.testing.assert_allclose(first.data, view.layer("emb").data[10:20])
    second = view.compare_panes["half"].viewer.layers[SELECTED_LAYER]
    np.testing.assert_allclose(second.data, other[5:10])  # frames 10, 12, ..., 18
    view.compare.value = []
    assert view.viewers() == [view.viewer]
    view.compare.value = ["half"]  # a new pane shows the selection at once
    pane = view.compare_panes["half"]
    np.testing.assert_allclose(pane.viewer.layers[SELECTED_LAYER].data, other[5:10])


def test_the_selection_stays_when_another_embedding_of_the_recording_is_shown(widget):
    """The selection is a set of frames: another embedding of the same movie shows the same
    frames selected (at its rows of them); an embedding of another recording starts empty."""
    view = widget.view
    other = np.random.default_rng(6).normal(size=(30, 2)).astype(np.float32)
    features = pd.DataFrame({"frame": np.arange(0, N_FRAMES, 2)})
    view.add_embedding(other, name="half", features=features, time_layer="movie")
    view.choice.value = "emb"
    widget.set_selection(np.arange(10, 20))
    view.choice.value = "half"
    np.testing.assert_array_equal(widget.rows, np.arange(5, 10))  # frames 10, 12, ..., 18
    np.testing.assert_array_equal(widget.selected_frames(), np.arange(10, 20, 2))
    np.testing.assert_allclose(view.viewer.layers[SELECTED_LAYER].data, other[5:10])
    widget.viewer.add_image(np.zeros((N_FRAMES, 4, 4)), name="another movie")
    view.add_embedding(other, name="elsewhere", time_layer="another movie")
    assert len(widget.rows) == 0 and widget.readout.text() == "No frames selected."


def test_the_selection_follows_a_change_of_axes(make_napari_viewer):
    """A 5-D embedding drawn on other axes: the selected points are drawn where their points
    now are."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_FRAMES, 8, 8), dtype=np.uint16), name="movie")
    embedding = np.random.default_rng(7).normal(size=(N_FRAMES, 5)).astype(np.float32)
    view = embedding_view(viewer)
    view.add_embedding(embedding, name="emb5", time_layer="movie")
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="selection")
    widget.set_selection(np.arange(0, 30, 3))
    np.testing.assert_allclose(view.viewer.layers[SELECTED_LAYER].data, embedding[0:30:3, :3])
    view.axis_spins[0].value = 4
    np.testing.assert_allclose(
        view.viewer.layers[SELECTED_LAYER].data, embedding[0:30:3][:, [4, 1, 2]]
    )


def test_every_cell_of_a_matrix_is_offered_in_colour_by(make_napari_viewer, calcium):
    """With a neurons × time matrix open, the embedding dock's "colour by" lists every cell;
    choosing one colours by its activity at the embedding's frames (read when chosen)."""
    session, traces = calcium
    viewer = make_napari_viewer()
    viewer.add_image(traces, name="neural")
    view = embedding_view(viewer)
    rows = np.arange(0, len(traces), 3)
    view.add_embedding(
        np.column_stack([session.position, session.direction])[rows].astype(np.float32),
        name="emb",
        features=pd.DataFrame({"frame": rows, "position": session.position[rows]}),
    )
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="selection")
    n_cells = traces.shape[1]
    assert f"cell {n_cells}" in view.color_by.choices and "position" in view.color_by.choices
    assert "cell 17" not in view.current.features
    view.color_by.value = "cell 17"
    np.testing.assert_allclose(view.current.features["cell 17"], traces[rows, 16])
    colours = view.layer().face_color
    assert len(np.unique(colours.round(4), axis=0)) > 10  # coloured by the activity
    assert view.current.coloured_by == ("cell 17", view.colormap.value)


def test_colour_by_a_cell_of_a_movie_extracts_the_traces_first(cells_widget, calcium, qtbot):
    """Without a ranking, "colour by this cell" extracts the ROI traces in a worker, then
    colours the embedding; from then on every cell is in "colour by" and ROI clicks work."""
    widget, traces = cells_widget, calcium[1]
    view = widget.view
    assert "cell 3" not in view.color_by.choices  # a movie: not read yet
    widget.cell.max = traces.shape[1]
    widget.cell.value = 3
    assert widget.colour_by_cell() is None  # the worker runs
    qtbot.waitUntil(lambda: view.color_by.value == "cell 3", timeout=60_000)
    entry = view.current
    np.testing.assert_allclose(
        entry.features["cell 3"], traces[entry.frames, 2], rtol=1e-4, atol=1e-3
    )
    assert f"cell {traces.shape[1]}" in view.color_by.choices
    assert widget.pick_roi(7) == "cell 7"


def test_a_shown_ranking_follows_the_selection(cells_widget, qtbot):
    """Once cells are ranked, a new selection ranks them again at once (the traces are
    known), so the list and the painting never describe an older selection."""
    widget = cells_widget
    widget.column.value = "position"
    widget.low.value, widget.high.value = 0.2, 0.6
    widget.select_range()
    _rank_and_wait(widget, qtbot)
    first = widget.ranking
    widget.low.value, widget.high.value = 1.0, 1.4
    widget.select_range()
    second = widget.ranking
    assert second is not first and second.n_selected == len(widget.rows)
    top = set(second.top(10).tolist())
    assert top != set(first.top(10).tolist())
    painted = widget.viewer.layers[SCORES_LAYER].colormap.map(np.array([int(second.order[0]) + 1]))
    high_end = ensure_colormap(SCORE_COLORMAP).map(np.array([1.0]))[0]
    np.testing.assert_allclose(painted[0], high_end, atol=1e-5)


def test_the_selection_dock_opens_beside_the_layer_controls(make_napari_viewer, qtbot):
    """Opened from the Plugins menu, the selection dock goes to the left, tabbed with napari's
    layer controls: the embedding dock (right) stays in sight while selecting."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_FRAMES, 8, 8), dtype=np.uint16), name="movie")
    view = embedding_view(viewer)
    view.add_embedding(np.zeros((N_FRAMES, 2), dtype=np.float32), name="e", time_layer="movie")
    dock, _widget = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA selection")
    window = dock.window()
    left = Qt.DockWidgetArea.LeftDockWidgetArea
    qtbot.waitUntil(lambda: window.dockWidgetArea(dock) == left, timeout=5_000)
    embedding_dock = view.parent()
    assert isinstance(embedding_dock, QDockWidget)
    assert window.dockWidgetArea(embedding_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert dock not in window.tabifiedDockWidgets(embedding_dock)
    neighbours = window.tabifiedDockWidgets(dock)
    assert neighbours and all(window.dockWidgetArea(d) == left for d in neighbours)
