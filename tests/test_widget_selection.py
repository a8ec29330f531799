"""The selection dock: select frames on the embedding, show and play them, save them as a label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import DataPicker
from napari_cebra._widgets.selection_widget import (
    LABEL_COLUMN,
    LABEL_LAYER,
    SELECTED_LAYER,
    SHAPE_LAYER,
    SelectionWidget,
    count_stretches,
)

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
