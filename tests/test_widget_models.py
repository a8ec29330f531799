"""The CEBRA models widget: session list, save, load (ours and cebra's files), transform."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_cebra import CEBRA
from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK
from napari_cebra._widgets.session import session_models

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


@pytest.fixture
def viewer_and_widget(make_napari_viewer, small_data):
    for name in session_models().names():  # models of earlier test files would be preselected
        session_models().remove(name)
    viewer = make_napari_viewer()
    viewer.add_image(small_data, name="recording B")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA models")
    return viewer, widget


def _transform(qtbot, widget, layer_name):
    widget.data.neural.value = layer_name
    widget.transform_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def test_save_load_and_transform_a_session_model(qtbot, viewer_and_widget, fast_params, tmp_path):
    viewer, widget = viewer_and_widget
    model = CEBRA(**fast_params).fit(viewer.layers["recording B"].data)
    entry = session_models().add(model, base_name="scripted", trained_on={"neural": "X"})
    assert widget.model.value == entry.name
    assert "offset5-model, 3-D" in widget.details.value

    widget.save_path.value = tmp_path / "model.pt"
    assert widget.save_model() == tmp_path / "model.pt"
    widget.load_path.value = tmp_path / "model.pt"
    loaded = widget.load_model()
    assert loaded.name == "model #1" and loaded.source == str(tmp_path / "model.pt")
    assert widget.model.value == loaded.name

    _transform(qtbot, widget, "recording B")
    view = viewer.window.dock_widgets[EMBEDDING_DOCK]
    layer = view.layer("model #1 on recording B")
    expected = model.transform(viewer.layers["recording B"].data)
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)
    np.testing.assert_array_equal(layer.features["frame"], np.arange(len(expected)))


def test_transform_carries_the_behaviour_columns_as_point_features(
    qtbot, viewer_and_widget, fast_params, small_data
):
    viewer, widget = viewer_and_widget
    entry = session_models().add(CEBRA(**fast_params).fit(small_data), base_name="behaviour")
    position = np.linspace(0, 1.6, len(small_data), dtype=np.float32)
    behaviour = np.stack([position, np.arange(len(small_data)) % 2], axis=1)
    viewer.add_image(behaviour, name="behaviour", metadata={"columns": ["position", "right"]})
    widget.data.behaviour.value = "behaviour"
    assert not widget.data.variables.visible  # every column is used
    _transform(qtbot, widget, "recording B")
    assert widget.status.value.startswith(f"Added {entry.name} on recording B"), widget.status.value
    layer = viewer.window.dock_widgets[EMBEDDING_DOCK].layer(f"{entry.name} on recording B")
    assert list(layer.features.columns) == ["frame", "position", "right"]
    np.testing.assert_allclose(layer.features["position"], position)
    np.testing.assert_array_equal(layer.features["right"], behaviour[:, 1])


def test_layer_features_of_a_shorter_behaviour_table_are_missing_at_the_end():
    import pandas as pd

    from napari_cebra._widgets.layer_data import embedding_features

    table = pd.DataFrame({"position": [0.5, 0.7]})
    features = embedding_features(table, 3)
    assert list(features.columns) == ["frame", "position"]
    assert features["position"].iloc[:2].tolist() == [0.5, 0.7]
    assert np.isnan(features["position"].iloc[2])
    split = embedding_features(None, 4, n_train=3)["split"]
    assert split.tolist() == ["train", "train", "train", "validation"]


def test_transform_with_the_wrong_number_of_neurons_is_refused(
    qtbot, viewer_and_widget, fast_params, monkeypatch
):
    viewer, widget = viewer_and_widget
    model = CEBRA(**fast_params).fit(viewer.layers["recording B"].data)
    session_models().add(model, base_name="eight neurons")
    viewer.add_image(np.zeros((50, 5), dtype=np.float32), name="five neurons")
    errors = []
    monkeypatch.setattr("napari.utils.notifications.show_error", errors.append)
    widget.data.neural.value = "five neurons"
    widget.transform_button.click()
    assert widget.worker is None
    assert errors and "trained on 8 neurons" in errors[0] and "(50, 5)" in errors[0]
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets


def test_a_cebra_model_file_loads_and_transforms(
    qtbot, viewer_and_widget, small_data, tmp_path, fast_params
):
    cebra = pytest.importorskip("cebra")
    without_seed = {k: v for k, v in fast_params.items() if k != "seed"}  # ours only
    reference = cebra.CEBRA(**without_seed).fit(small_data)
    reference.save(str(tmp_path / "cebra_model.pt"))
    viewer, widget = viewer_and_widget
    widget.load_path.value = tmp_path / "cebra_model.pt"
    entry = widget.load_model()
    assert entry.params["model_architecture"] == "offset5-model"
    _transform(qtbot, widget, "recording B")
    layer = viewer.window.dock_widgets[EMBEDDING_DOCK].layer(f"{entry.name} on recording B")
    np.testing.assert_allclose(layer.data, reference.transform(small_data), atol=1e-4)


def _endless_extraction(movie, rois, dff=False, **_kwargs):
    """Stands in for ``iter_extract_traces``: reports progress every 20 ms, never ends."""
    step = 0
    while True:
        step += 1
        time.sleep(0.02)
        yield 1 - 1 / (step + 1)


def _start_endless_transform(viewer, widget, fast_params, small_data, monkeypatch):
    """A session model and a movie whose trace extraction never ends; press Transform."""
    monkeypatch.setattr("napari_cebra.io.traces.iter_extract_traces", _endless_extraction)
    session_models().add(CEBRA(**fast_params).fit(small_data), base_name="endless")
    viewer.add_image(np.zeros((20, 6, 6), dtype=np.float32), name="movie")
    viewer.add_labels(np.ones((6, 6), dtype=np.int32), name="rois")
    widget.data.neural.value, widget.data.rois.value = "movie", "rois"
    widget.transform_button.click()


def test_closing_the_dock_mid_transform_stops_it(
    qtbot, viewer_and_widget, fast_params, small_data, monkeypatch, close_mid_run
):
    viewer, widget = viewer_and_widget
    _start_endless_transform(viewer, widget, fast_params, small_data, monkeypatch)
    qtbot.waitUntil(lambda: "Extracting ROI traces" in widget.status.value, timeout=WAIT_MS)
    assert not widget.transform_button.isEnabled()
    worker = widget.worker
    assert close_mid_run(viewer, widget, worker, WAIT_MS) < 1.0
    assert widget.worker is None
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets


def test_stop_ends_a_transform_mid_extraction(
    qtbot, viewer_and_widget, fast_params, small_data, monkeypatch
):
    viewer, widget = viewer_and_widget
    _start_endless_transform(viewer, widget, fast_params, small_data, monkeypatch)
    qtbot.waitUntil(lambda: widget.runner.bar_value > 0, timeout=WAIT_MS)
    assert widget.stop_button.isEnabled() and not widget.panel.bar.isHidden()
    with qtbot.waitSignal(widget.worker.finished, timeout=WAIT_MS):
        widget.stop_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert widget.status.value == "Stopped: no embedding."
    assert widget.panel.bar.isHidden() and widget.transform_button.isEnabled()
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets
