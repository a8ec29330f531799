"""The docked embedding canvas: time link in both directions, axes choice, colours."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK, embedding_view

pytestmark = pytest.mark.gui

N_FRAMES = 60


@pytest.fixture
def viewer(make_napari_viewer):
    """A movie and a unit-sphere embedding in the docked canvas.

    Only the viewer is returned: a fixture value that holds the embedding view's QtViewer
    would outlive the viewer and fail napari's leak check.
    """
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_FRAMES, 8, 8), dtype=np.uint16), name="movie")
    view = embedding_view(viewer)
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(N_FRAMES, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    features = pd.DataFrame({"position": np.linspace(0, 1.6, N_FRAMES)})
    view.add_embedding(sphere, name="emb", features=features, time_layer="movie")
    return viewer


def _click(pane, position, view_direction, dims_displayed, moves=()):
    """Drive a pane's drag callback like a press, optional moves, release."""
    event = SimpleNamespace(
        type="mouse_press",
        pos=np.array([100.0, 100.0]),
        position=np.asarray(position, dtype=float),
        view_direction=view_direction,
        dims_displayed=dims_displayed,
    )
    steps = pane._on_mouse_drag(pane.viewer, event)
    next(steps)
    for offset in moves:
        event.type, event.pos = "mouse_move", event.pos + offset
        next(steps)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(steps)


def test_embedding_is_docked_once_and_kept_apart_from_the_movie_dims(viewer):
    view = embedding_view(viewer)
    assert embedding_view(viewer) is view
    assert viewer.window.dock_widgets[EMBEDDING_DOCK] is view
    assert "emb" not in viewer.layers and viewer.dims.ndim == 3
    assert view.viewer.dims.ndisplay == 3
    layer = view.layer("emb")
    assert layer.data.shape == (N_FRAMES, 3)
    assert list(layer.features.columns) == ["frame", "position"]
    assert 0.02 <= layer.size[0] <= 0.05


def test_moving_the_time_slider_highlights_the_frame_and_its_trail(viewer):
    view = embedding_view(viewer)
    view.trail.value = 5
    viewer.dims.current_step = (20, 0, 0)
    np.testing.assert_array_equal(view.highlighted_frames(), np.arange(15, 21))
    highlight = view.viewer.layers["current frame"]
    np.testing.assert_allclose(highlight.data[-1], view.layer("emb").data[20])
    assert highlight.size[-1] > highlight.size[0]
    viewer.dims.current_step = (2, 0, 0)
    np.testing.assert_array_equal(view.highlighted_frames(), [0, 1, 2])


def test_the_canvas_redraws_the_highlight_on_every_move(viewer, qtbot):
    """The highlight skips the viewer's dims bookkeeping on a move (it stays inside the
    embedding's extent), but the canvas must still show the new place, and the view's range
    must still cover the embedding."""
    view = embedding_view(viewer)
    view.trail.value = 0
    viewer.window.show()
    qtbot.wait(300)  # the first paint of a newly shown window
    shots = []
    for frame in (5, 45):
        viewer.dims.current_step = (frame, 0, 0)
        qtbot.wait(50)
        shots.append(view.qt_viewer.screenshot(flash=False)[..., :3].astype(int))
    magenta = [np.argwhere((s[..., 0] > 200) & (s[..., 1] < 120) & (s[..., 2] > 90)) for s in shots]
    assert all(len(m) for m in magenta)
    assert np.abs(magenta[0].mean(axis=0) - magenta[1].mean(axis=0)).max() > 3
    ranges = view.viewer.dims.range
    data = view.layer("emb").data
    for axis in (0, 1, 2):
        assert (
            ranges[axis].start <= data[:, axis].min() and ranges[axis].stop >= data[:, axis].max()
        )


def test_selecting_or_clicking_a_point_moves_the_movie(viewer):
    view = embedding_view(viewer)
    view.layer("emb").selected_data = {33}
    assert viewer.dims.current_step[0] == 33
    assert view.highlighted_frames()[-1] == 33

    flat = view.add_embedding(
        np.column_stack([np.arange(N_FRAMES), np.zeros(N_FRAMES)]) / N_FRAMES,
        name="flat",
        time_layer="movie",
    )
    assert view.viewer.dims.ndisplay == 2
    _click(view.pane, flat.data[12], None, [0, 1])
    assert viewer.dims.current_step[0] == 12
    # a drag (rotating/panning the camera) is not a click
    _click(view.pane, flat.data[40], None, [0, 1], moves=[np.array([30.0, 0.0])])
    assert viewer.dims.current_step[0] == 12


def test_clicking_in_3d_picks_a_point_on_the_ray(viewer):
    view = embedding_view(viewer)
    layer = view.layer("emb")
    target = layer.data[45]
    _click(view.pane, target, np.array([1.0, 0.0, 0.0]), [0, 1, 2])
    frame = viewer.dims.current_step[0]
    hit = layer.data[frame]
    # the picked point lies on the clicked ray (within its marker size)
    assert np.abs(hit[1:] - target[1:]).max() <= layer.size[0]


def test_axes_choice_for_higher_dimensional_embeddings(viewer):
    view = embedding_view(viewer)
    embedding = np.random.default_rng(1).normal(size=(N_FRAMES, 5)).astype(np.float32)
    layer = view.add_embedding(embedding, name="five", time_layer="movie")
    assert [spin.max for spin in view.axis_spins] == [4, 4, 4]
    view.axis_spins[0].value = 3
    view.axis_spins[1].value = 4
    np.testing.assert_allclose(layer.data, embedding[:, [3, 4, 2]])
    view.remove_button.clicked()
    assert "five" not in view.viewer.layers and view.choice.value == "emb"


def test_long_recordings_draw_every_kth_frame_and_link_every_frame(make_napari_viewer):
    """45,000 frames: 15,000 points are drawn (one in 3), the colours and features follow the
    drawn rows, the highlight marks frames that are not drawn at their exact place, a click on
    drawn point i goes to frame 3·i, and the readout says what is drawn."""
    from napari_cebra._widgets.embedding_view import HIGHLIGHT_LAYER, MAX_SHOWN_POINTS

    n_frames = 45_000
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((n_frames, 4, 4), dtype=np.uint8), name="movie")
    view = embedding_view(viewer)
    rng = np.random.default_rng(1)
    embedding = rng.normal(size=(n_frames, 3)).astype(np.float32)
    position = np.linspace(0.0, 1.6, n_frames)
    view.add_embedding(
        embedding, name="long", features=pd.DataFrame({"position": position}), time_layer="movie"
    )
    layer = view.layer("long")
    assert len(layer.data) == n_frames // 3 <= MAX_SHOWN_POINTS
    np.testing.assert_array_equal(layer.data, embedding[::3])
    np.testing.assert_allclose(layer.features["position"], position[::3])
    np.testing.assert_array_equal(layer.features["frame"], np.arange(0, n_frames, 3))
    assert "one frame in 3 of 45,000" in view.readout.text()
    viewer.dims.set_current_step(0, 1001)  # not a drawn frame
    highlight = view.viewer.layers[HIGHLIGHT_LAYER]
    np.testing.assert_allclose(highlight.data[-1], embedding[1001])
    assert view.highlighted_frames()[-1] == 1001
    view.jump_to_point(500)
    assert viewer.dims.current_step[0] == 1500
    view.color_by.value = "frame"
    first, last = layer.face_color[0], layer.face_color[-1]
    assert not np.allclose(first, last) and view.current.legend.high == n_frames - 1


def test_closing_the_embedding_dock_says_what_is_kept(viewer, qtbot, monkeypatch):
    """Closing the dock discards its embeddings with a word: the notice names them and says
    that the models stay in the session; the next embedding opens a fresh dock."""
    from napari.utils import notifications

    said = []
    monkeypatch.setattr(notifications, "show_info", said.append)
    view = embedding_view(viewer)
    viewer.window.remove_dock_widget(view.parent())
    qtbot.wait(50)
    assert len(said) == 1 and "(emb)" in said[0] and "CEBRA models" in said[0]
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets
    viewer.dims.set_current_step(0, 5)  # the closed view no longer follows the time slider
    fresh = embedding_view(viewer)
    assert fresh is not view and fresh.entries == {}


def test_the_highlight_stays_on_top_of_a_new_embedding_without_being_made_again(viewer):
    from napari_cebra._widgets.embedding_view import HIGHLIGHT_LAYER

    view = embedding_view(viewer)
    viewer.dims.set_current_step(0, 10)
    highlight = view.viewer.layers[HIGHLIGHT_LAYER]
    view.add_embedding(
        np.random.default_rng(2).normal(size=(N_FRAMES, 3)), name="second", time_layer="movie"
    )
    assert view.viewer.layers[-1] is highlight  # drawn on top, the same layer
    np.testing.assert_allclose(highlight.data[-1], view.layer("second").data[10])


def test_a_feature_added_later_colours_the_points_and_names_its_classes(viewer, qtbot):
    view = embedding_view(viewer)
    changes = []
    view.embeddings_changed.connect(lambda: changes.append(len(view.entries)))
    classes = pd.Categorical.from_codes(np.arange(N_FRAMES) % 3, categories=["a", "b", "c"])
    view.set_feature("emb", "state", classes, colour=True)
    layer = view.layer("emb")
    assert view.color_by.value == "state" and "state" in view.color_by.choices
    assert list(layer.features["state"][:4].astype(str)) == ["a", "b", "c", "a"]
    assert set(view.legend.legend.categories) == {"a", "b", "c"}
    assert np.allclose(layer.face_color[0], layer.face_color[3])
    assert not np.allclose(layer.face_color[0], layer.face_color[1])
    with pytest.raises(ValueError, match="has 5 values but embedding 'emb' has 60 frames"):
        view.set_feature("emb", "short", np.zeros(5))
    view.add_embedding(np.ones((N_FRAMES, 2)), name="flat", time_layer="movie")
    view.remove_button.changed.emit(True)
    assert changes == [2, 1]


def test_compare_with_a_second_embedding_shares_the_time_link(viewer, qtbot):
    """A second pane shows the compared embedding with its own highlight of the same frame;
    a click in it moves the time; unchoosing it closes it (the fixture checks no canvas
    leaks)."""
    from napari_cebra._widgets.embedding_view import HIGHLIGHT_LAYER

    view = embedding_view(viewer)
    control = np.random.default_rng(3).normal(size=(N_FRAMES, 2)).astype(np.float32)
    view.add_embedding(control, name="shuffled", time_layer="movie")
    view.choice.value = "emb"
    assert view.compare.choices == ("shuffled",) and list(view.compare.value) == []
    assert view.viewers() == [view.viewer] and not view.compare_row.isVisible()
    view.compare.value = ["shuffled"]
    pane = view.compare_panes["shuffled"]
    assert view.viewers() == [view.viewer, pane.viewer]
    assert "emb" not in pane.viewer.layers and pane.viewer.dims.ndisplay == 2
    np.testing.assert_allclose(pane.layer("shuffled").data, control)
    # coloured by its default column: it has no "position"; its caption says so
    assert pane.layer().metadata["cebra_colour_by"] == "frame"
    assert "shuffled" in pane.caption.text() and "colour: frame" in pane.caption.text()

    viewer.dims.set_current_step(0, 20)
    for shown, data in ((view.viewer, view.layer("emb").data), (pane.viewer, control)):
        np.testing.assert_allclose(shown.layers[HIGHLIGHT_LAYER].data[-1], data[20])
    _click(pane, control[42], None, [0, 1])
    assert viewer.dims.current_step[0] == 42
    np.testing.assert_allclose(pane.viewer.layers[HIGHLIGHT_LAYER].data[-1], control[42])
    assert view.highlighted_frames()[-1] == 42

    view.compare.value = []
    assert view.compare_panes == {} and view.viewers() == [view.viewer]
    qtbot.wait(10)


def test_compare_with_several_embeddings_side_by_side(viewer, qtbot):
    """Three embeddings beside the chosen one: a canvas each, in one row, all following the
    time slider; choosing one of them as the shown embedding takes it out of the row; removing
    a compared embedding closes its canvas."""
    from napari_cebra._widgets.embedding_view import HIGHLIGHT_LAYER, MAX_COMPARED

    view = embedding_view(viewer)
    rng = np.random.default_rng(5)
    others = {f"run {k}": rng.normal(size=(N_FRAMES, 2)).astype(np.float32) for k in range(4)}
    for name, data in others.items():
        view.add_embedding(data, name=name, time_layer="movie")
    view.choice.value = "emb"
    view.compare.value = list(others)  # four asked, three shown
    assert list(view.compare_panes) == list(others)[:MAX_COMPARED]
    assert list(view.compare.value) == list(others)[:MAX_COMPARED]
    assert f"At most {MAX_COMPARED}" in view.readout.text()
    assert view.compare_row.layout().count() == MAX_COMPARED
    viewer.dims.set_current_step(0, 33)
    for name, pane in view.compare_panes.items():
        np.testing.assert_allclose(pane.viewer.layers[HIGHLIGHT_LAYER].data[-1], others[name][33])
    view.choice.value = "run 1"
    assert "run 1" not in view.compare_panes and "run 1" not in view.compare.choices
    assert list(view.compare_panes) == ["run 0", "run 2"]
    view.compare.value = ["run 0", "run 2", "emb"]
    view.choice.value = "run 0"
    view.remove_button.changed.emit(True)  # removes "run 0", shows another one
    assert "run 0" not in view.entries and "run 0" not in view.compare_panes
    assert all(name in view.entries for name in view.compare_panes)
    view.compare.value = []
    assert view.viewers() == [view.viewer]
    qtbot.wait(10)
