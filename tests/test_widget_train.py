"""The Train CEBRA widget with a real viewer: train, stop, errors, closing mid-run."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK
from napari_cebra._widgets.session import session_models
from napari_cebra.io.synthetic import calcium_imaging_session

pytestmark = pytest.mark.gui

N_FRAMES = 160
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def session():
    return calcium_imaging_session(n_frames=N_FRAMES, shape=(32, 32), n_cells=6, seed=1)


@pytest.fixture
def viewer_and_widget(make_napari_viewer, session):
    viewer = make_napari_viewer()
    viewer.add_image(session.movie, name="movie")
    viewer.add_labels(session.rois, name="rois")
    viewer.add_image(
        session.behaviour,
        name="behaviour",
        metadata={"columns": ["position", "right", "left"]},
        visible=False,
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "Train CEBRA")
    widget.data.neural.value = "movie"
    widget.data.rois.value = "rois"
    widget.data.behaviour.value = "behaviour"
    widget.params.preset.value = "CEBRA-Behavior"
    widget.params.batch_size.value = 32
    widget.params.num_hidden_units.value = 8
    widget.data.valid_fraction.value = 0.25
    return viewer, widget


def _wait_until_idle(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def test_training_through_the_widget_adds_a_linked_embedding(qtbot, viewer_and_widget):
    viewer, widget = viewer_and_widget
    assert widget.data.variables.value == ["position", "right", "left"]
    widget.params.max_iterations.value = 6
    n_models = len(session_models())
    widget.train_button.click()
    assert not widget.train_button.isEnabled() and not widget.data.enabled
    _wait_until_idle(qtbot, widget)

    assert widget.train_button.isEnabled() and widget.data.enabled
    assert widget.loss_plot.n_points == 6
    total = widget.loss_plot.curve("total")[:, 1]
    np.testing.assert_allclose(
        total, widget.loss_plot.curve("pos")[:, 1] + widget.loss_plot.curve("neg")[:, 1], rtol=1e-4
    )
    assert not widget.loss_plot.curve_visible("pos")
    widget.loss_plot.show_terms.setChecked(True)
    assert widget.loss_plot.curve_visible("pos") and widget.loss_plot.curve_visible("neg")
    entry = list(session_models())[-1]
    assert len(session_models()) == n_models + 1
    assert entry.trained_on["labels"] == ["position", "right", "left"]
    assert entry.trained_on["continuous"] == ["position", "right", "left"]
    assert entry.trained_on["discrete"] is None
    assert entry.trained_on["steps_done"] == 6
    assert np.isfinite(entry.trained_on["goodness_of_fit_bits"])
    assert "bits" in widget.status.value
    view = viewer.window.dock_widgets[EMBEDDING_DOCK]
    points = view.layer(entry.name)
    assert points.data.shape == (N_FRAMES, 3)
    assert list(points.features.columns) == ["frame", "position", "right", "left", "split"]
    np.testing.assert_array_equal(points.features["frame"], np.arange(N_FRAMES))
    assert (points.features["split"] == "validation").sum() == N_FRAMES // 4
    # unit-sphere embedding (cosine distance)
    np.testing.assert_allclose(np.linalg.norm(points.data, axis=1), 1.0, atol=1e-4)
    # colour by a behaviour variable, then by the split
    view.color_by.value = "position"
    position = points.features["position"].to_numpy()
    lowest, highest = points.face_color[position.argmin()], points.face_color[position.argmax()]
    assert not np.allclose(lowest, highest)
    assert view.legend.legend.colormap == "viridis"
    assert view.legend.legend.high == pytest.approx(position.max())
    view.color_by.value = "split"
    assert len({tuple(c) for c in np.round(points.face_color, 3)}) == 2
    assert list(view.legend.legend.categories) == ["train", "validation"]


def test_final_status_survives_records_queued_behind_the_result(qtbot, viewer_and_widget):
    """All records, the result and the end arrive at once (a busy GUI thread): no record
    queued behind the result may overwrite the final status."""
    from qtpy.QtCore import Qt

    _, widget = viewer_and_widget
    widget.params.max_iterations.value = 4
    widget.train_button.click()
    ended = threading.Event()
    widget.worker.finished.connect(ended.set, Qt.DirectConnection)
    assert ended.wait(WAIT_MS / 1000)  # the GUI thread handles nothing meanwhile
    _wait_until_idle(qtbot, widget)
    assert widget.status.value.endswith("bits (last steps).")
    assert widget.loss_plot.n_points == 4


def test_stop_ends_training_within_a_second_and_keeps_the_model(qtbot, viewer_and_widget):
    _, widget = viewer_and_widget
    widget.params.max_iterations.value = 100_000
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.loss_plot.n_points >= 3, timeout=WAIT_MS)
    started = time.perf_counter()
    with qtbot.waitSignal(widget.worker.finished, timeout=WAIT_MS):
        widget.stop_button.click()
    result = widget.last_result
    assert result.ended - started < 1.0  # training ended; embedding the frames comes after
    assert result.stopped and 3 <= result.steps_done < 100_000
    assert result.embedding.shape == (N_FRAMES, 3)
    assert list(session_models())[-1].trained_on["stopped"] is True


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda v, w: v.layers.remove("rois"), "choose the Labels layer of its ROIs"),
        (
            lambda v, w: v.layers["behaviour"].__setattr__("data", np.zeros((N_FRAMES - 10, 3))),
            f"has {N_FRAMES} frames but behaviour layer 'behaviour' has {N_FRAMES - 10}",
        ),
        (
            lambda v, w: (
                v.add_image(np.zeros((N_FRAMES, 1)), name="one trace"),
                setattr(w.data.neural, "value", "one trace"),
            ),
            "needs at least 2 frames and 2 neurons",
        ),
        (
            lambda v, w: setattr(w.data.variables, "value", []),
            "choose a behaviour layer and at least one continuous label",
        ),
    ],
    ids=["movie-without-rois", "length-mismatch", "single-trace", "behavior-without-labels"],
)
def test_bad_layer_combinations_show_an_error_and_add_nothing(
    qtbot, viewer_and_widget, monkeypatch, setup, message
):
    viewer, widget = viewer_and_widget
    setup(viewer, widget)
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    n_layers, n_models = len(viewer.layers), len(session_models())
    widget.train_button.click()
    assert widget.worker is None
    assert len(errors) == 1 and message in errors[0]
    assert len(viewer.layers) == n_layers and len(session_models()) == n_models
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets


def test_common_prefix_option_trains_on_the_shorter_length(viewer_and_widget):
    viewer, widget = viewer_and_widget
    viewer.layers["behaviour"].data = np.random.default_rng(0).random((N_FRAMES - 10, 3))
    widget.data.common_prefix.value = True
    request, description = widget.build_request()
    assert request.n_frames == N_FRAMES - 10
    assert request.labels[0].shape == (N_FRAMES - 10, 3)
    assert description["time_layer"] == "movie"


def test_presets_set_the_authors_parameters(viewer_and_widget):
    _, widget = viewer_and_widget
    widget.params.preset.value = "CEBRA-Time"
    widget.params.reset_button.native.click()  # the fixture changed the batch size
    params = widget.params.estimator_params()
    assert params["model_architecture"] == "offset10-model"
    assert (params["batch_size"], params["learning_rate"], params["temperature"]) == (
        512,
        3e-4,
        1.12,
    )
    assert (params["output_dimension"], params["time_offsets"], params["conditional"]) == (
        3,
        10,
        "time",
    )
    assert params["max_iterations"] == 5000
    assert widget.training_labels() == {"labels": [], "continuous": [], "discrete": None}
    widget.params.preset.value = "CEBRA-Behavior"
    params = widget.params.estimator_params()
    assert (params["temperature"], params["conditional"]) == (1.0, "time_delta")
    widget.params.betas.value = "0.8, oops"
    with pytest.raises(ValueError, match="Adam betas: cannot read"):
        widget.params.estimator_params()


def test_every_estimator_parameter_is_reachable(viewer_and_widget):
    from napari_cebra import CEBRA

    _, widget = viewer_and_widget
    params = widget.params.estimator_params()
    assert set(params) == set(CEBRA._get_param_names())
    assert params["precision"] == "auto"  # the estimator's default
    widget.params.precision.value = "bfloat16"
    model = CEBRA(**widget.params.estimator_params())
    assert model.precision == "bfloat16"


def test_closing_the_widget_mid_run_keeps_the_model(qtbot, viewer_and_widget, close_mid_run):
    viewer, widget = viewer_and_widget
    widget.params.max_iterations.value = 100_000
    widget.train_button.click()
    worker = widget.worker
    qtbot.waitUntil(lambda: widget.loss_plot.n_points >= 2, timeout=WAIT_MS)
    n_models = len(session_models())
    # training stops at its next update, then 160 frames are embedded
    assert close_mid_run(viewer, widget, worker, WAIT_MS) < 1.0
    assert not any(k.startswith("Train CEBRA") for k in viewer.window.dock_widgets)
    assert len(session_models()) == n_models + 1
    entry = list(session_models())[-1]
    assert entry.trained_on["stopped"] and 2 <= entry.trained_on["steps_done"] < 100_000
    view = viewer.window.dock_widgets[EMBEDDING_DOCK]
    assert view.layer(entry.name).data.shape == (N_FRAMES, 3)


def test_the_demo_sample_trains_end_to_end(qtbot, make_napari_viewer):
    from napari_cebra._widgets.demo import open_demo

    viewer = make_napari_viewer()
    widget = open_demo(viewer)
    assert (widget.data.neural.value, widget.data.rois.value, widget.data.behaviour.value) == (
        "calcium movie",
        "ROIs",
        "behaviour",
    )
    assert widget.data.variables.value == ["position", "right", "left"]
    assert set(widget.data.discrete.choices) >= {"right", "left"}
    widget.params.preset.value = "CEBRA-Behavior"
    widget.params.max_iterations.value = 3
    widget.params.batch_size.value = 32
    widget.train_button.click()
    _wait_until_idle(qtbot, widget)
    n_frames = viewer.layers["calcium movie"].data.shape[0]
    points = viewer.window.dock_widgets[EMBEDDING_DOCK].layer(list(session_models())[-1].name)
    assert points.data.shape == (n_frames, 3)
    assert list(points.features.columns) == ["frame", "position", "right", "left", "split"]


def test_docks_fit_a_laptop_window(qtbot, viewer_and_widget):
    """With Train CEBRA and the embedding docked, a 1,366 × 768 window stays that size (the
    forms scroll instead of pushing the window past the screen), the plugin's column follows
    the window's width and the main canvas keeps almost half of the width for the movie."""
    from napari_cebra._widgets.dock import column_width

    viewer, widget = viewer_and_widget
    widget.params.max_iterations.value = 4
    widget.train_button.click()
    _wait_until_idle(qtbot, widget)
    assert EMBEDDING_DOCK in viewer.window.dock_widgets
    window = viewer.window._qt_window  # noqa: SLF001 - the test sizes napari's own window
    window.showNormal()
    window.resize(1700, 1050)
    qtbot.wait(300)
    column = viewer.window.dock_widgets[EMBEDDING_DOCK].parent()
    assert abs(column.width() - column_width(1700)) < 30  # re-fitted to the window
    window.resize(1366, 768)
    qtbot.wait(300)
    assert abs(column.width() - column_width(1366)) < 30
    assert window.minimumSizeHint().height() <= 768
    assert window.height() <= 768 and window.width() <= 1366
    canvas = viewer.window._qt_viewer.canvas.native  # noqa: SLF001
    assert canvas.width() >= 0.4 * window.width()
