"""The Consistency runs widget with a real viewer: heatmaps, verdicts, layers, closing mid-run."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from napari_cebra._widgets.consistency_widget import consistency_reading
from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK
from napari_cebra._widgets.session import session_models
from napari_cebra.core.consistency import consistency_matrix, consistency_score
from napari_cebra.io.synthetic import place_cell_recording

pytestmark = pytest.mark.gui

WIDGET = "Consistency runs"
WAIT_MS = 120_000


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", WIDGET)
    return widget


def _wait_idle(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)


def _rotated_runs(n_runs: int, n_frames: int, noise: float, seed: int = 0) -> list[np.ndarray]:
    """One latent trajectory seen through random rotations, plus noise: consistent runs."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_frames, 3))
    runs = []
    for _ in range(n_runs):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        runs.append((latent @ rotation + noise * rng.normal(size=(n_frames, 3))).astype(np.float32))
    return runs


def test_reading_follows_the_recipe_thresholds():
    verdict, text = consistency_reading(0.95, 0.93)
    assert verdict == "pass" and "95.0 %" in text and "93.0 %" in text
    verdict, text = consistency_reading(0.80, 0.78)
    assert verdict == "warn" and "Grid search" in text
    verdict, text = consistency_reading(0.40, None)
    assert verdict == "fail" and "do not interpret" in text
    _, text = consistency_reading(0.97, 0.60)
    assert "overfitting" in text


def test_embedding_layers_heatmaps_equal_consistency_score(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    n_frames, n_train = 120, 90
    runs = _rotated_runs(3, n_frames, noise=0.3)
    split = pd.Categorical(
        np.where(np.arange(n_frames) < n_train, "train", "validation"),
        categories=["train", "validation"],
    )
    for k, run in enumerate(runs):
        viewer.add_points(run, name=f"emb {k}", features=pd.DataFrame({"split": split}))
    widget = _dock(viewer)
    widget.source.value = "embedding layers"
    assert widget.layers.choices == ("emb 0", "emb 1", "emb 2")
    widget.layers.value = ["emb 0", "emb 1", "emb 2"]
    widget.run_button.click()
    _wait_idle(qtbot, widget)

    runs = [viewer.layers[f"emb {k}"].data for k in range(3)]  # what the widget compared
    expected_train = consistency_matrix(
        *consistency_score([r[:n_train] for r in runs], between="runs")
    )
    expected_valid = consistency_matrix(
        *consistency_score([r[n_train:] for r in runs], between="runs")
    )
    np.testing.assert_array_equal(widget.heatmap_train.matrix, expected_train)
    np.testing.assert_array_equal(widget.heatmap_valid.matrix, expected_valid)
    assert widget.heatmap_train.names == ["emb 0", "emb 1", "emb 2"]
    annotations = widget.heatmap_train.annotations()
    assert annotations[0][0] == "" and annotations[1][1] == ""
    assert annotations[0][1] == f"{100 * expected_train[0, 1]:.1f}"
    mean = np.nanmean(expected_train)
    assert f"{100 * mean:.1f} %" in widget.verdict.text()


def test_between_datasets_aligns_on_a_label(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(3)
    embeddings, labels = [], []
    for n_frames in (900, 700):  # two recordings of different lengths
        position = rng.uniform(0, 1.6, n_frames)
        angle = position / 1.6 * np.pi
        embedding = np.column_stack(
            [np.cos(angle), np.sin(angle), position - 0.8 + 0.05 * rng.normal(size=n_frames)]
        )
        embeddings.append(embedding.astype(np.float32))
        labels.append(position)
    for name, embedding, position in zip(("rat A", "rat B"), embeddings, labels, strict=True):
        viewer.add_points(embedding, name=name, features=pd.DataFrame({"position": position}))
    widget = _dock(viewer)
    widget.source.value = "embedding layers"
    widget.layers.value = ["rat A", "rat B"]
    widget.between.value = "datasets"
    assert not widget.align_on.native.isHidden() and "position" in widget.align_on.choices
    widget.align_on.value = "position"
    widget.run_button.click()
    _wait_idle(qtbot, widget)

    embeddings = [viewer.layers[name].data for name in ("rat A", "rat B")]
    expected = consistency_matrix(
        *consistency_score(
            embeddings, between="datasets", labels=labels, dataset_ids=["rat A", "rat B"]
        )
    )
    np.testing.assert_array_equal(widget.heatmap_train.matrix, expected)
    assert widget.heatmap_valid.isHidden()
    assert widget.heatmap_train.names == ["rat A", "rat B"]
    assert expected[0, 1] > 0.9  # the same ring in both recordings


def test_session_models_are_compared_on_one_recording(make_napari_viewer, qtbot, fast_params):
    from napari_cebra import CEBRA

    recording = place_cell_recording(n_frames=300, n_neurons=20, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(recording.neural, name="neural")
    names = []
    for seed in (0, 1):
        model = CEBRA(**{**fast_params, "seed": seed}).fit(recording.neural)
        names.append(session_models().add(model, base_name="test model").name)
    widget = _dock(viewer)
    widget.source.value = "session models"
    widget.models.value = names
    widget.recording.neural.value = "neural"
    widget.recording.valid_fraction.value = 0.25
    widget.run_button.click()
    _wait_idle(qtbot, widget)

    embeddings = [session_models().get(n).model.transform(recording.neural) for n in names]
    n_train = 225
    expected = consistency_matrix(
        *consistency_score([e[:n_train] for e in embeddings], between="runs")
    )
    np.testing.assert_allclose(widget.heatmap_train.matrix, expected, atol=1e-5)
    assert widget.result.n_train == n_train
    layer = widget.add_embedding_layer()
    view = viewer.window.dock_widgets[EMBEDDING_DOCK]
    assert layer.name in view.entries
    assert (layer.features["split"] == "validation").sum() == 75


@pytest.fixture
def viewer_with_recording(place_cell_viewer):
    viewer = place_cell_viewer(300, seed=4)
    widget = _dock(viewer)
    widget.recording.neural.value = "neural"
    widget.recording.behaviour.value = "behaviour"
    widget.params.batch_size.value = 32
    widget.params.num_hidden_units.value = 8
    widget.n_runs.value = 3
    return viewer, widget


def test_trained_runs_show_train_and_validation_heatmaps(qtbot, viewer_with_recording):
    viewer, widget = viewer_with_recording
    widget.params.preset.value = "CEBRA-Behavior"
    widget.recording.variables.value = ["position"]
    widget.params.max_iterations.value = 20
    assert widget.run_button.text() == "Train 3 runs"
    widget.run_button.click()
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    _wait_idle(qtbot, widget)

    result = widget.result
    assert result.names == ["run 1", "run 2", "run 3"] and result.seeds == [0, 1, 2]
    assert result.n_train == 240 and all(e.shape == (300, 3) for e in result.embeddings)
    for heatmap, rows in (
        (widget.heatmap_train, slice(0, 240)),
        (widget.heatmap_valid, slice(240, None)),
    ):
        expected = consistency_matrix(
            *consistency_score([e[rows] for e in result.embeddings], between="runs")
        )
        np.testing.assert_allclose(heatmap.matrix, expected, atol=1e-6)
        assert np.isnan(np.diag(heatmap.matrix)).all()
    assert widget.verdict.text().count("%") >= 2

    n_models = len(session_models())
    entries = widget.register_models()
    assert len(session_models()) == n_models + 3
    assert entries[0].params["conditional"] == "time_delta"
    assert entries[0].trained_on["labels"] == ["position"]

    widget.run_choice.value = "run 2"
    layer = widget.add_embedding_layer()
    assert layer.name == "consistency · run 2 (seed 1)"
    np.testing.assert_array_equal(layer.features["position"], viewer.layers["behaviour"].data[:, 0])
    assert (layer.features["split"] == "validation").sum() == 60


def test_behaviour_preset_without_labels_is_a_notification(qtbot, viewer_with_recording):
    _, widget = viewer_with_recording
    widget.params.preset.value = "CEBRA-Behavior"
    widget.recording.variables.value = []
    widget.run_button.click()
    assert not widget.runner.running
    assert "choose a behaviour layer" in widget.status.value


def test_stop_and_closing_mid_run(qtbot, viewer_with_recording, stop_mid_run, close_mid_run):
    viewer, widget = viewer_with_recording
    widget.params.max_iterations.value = 100_000
    widget.run_button.click()
    arrivals = []
    widget.runner.worker.yielded.connect(lambda _: arrivals.append(time.perf_counter()))
    qtbot.waitUntil(lambda: len(arrivals) >= 3, timeout=WAIT_MS)
    latency = stop_mid_run(widget, WAIT_MS)
    # Stop acts at the next progress record, which comes every YIELD_EVERY (2) ensemble steps
    assert latency < 1.0
    assert widget.status.value.startswith("Stopped")
    assert widget.run_button.isEnabled()

    widget.run_button.click()
    qtbot.waitUntil(lambda: "step" in widget.status.value, timeout=WAIT_MS)
    worker = widget.runner.worker
    assert close_mid_run(viewer, widget, worker, WAIT_MS) < 1.0
    assert WIDGET not in "".join(viewer.window.dock_widgets)


def test_screenshot(qtbot, screenshot_path, viewer_with_recording):
    viewer, widget = viewer_with_recording
    widget.params.max_iterations.value = 60
    widget.n_runs.value = 5
    widget.run_button.click()
    _wait_idle(qtbot, widget)
    viewer.window._qt_window.resize(1500, 1700)
    viewer.window._qt_window.show()
    qtbot.wait(300)
    target = screenshot_path("widget-consistency.png")
    image = viewer.screenshot(canvas_only=False, path=str(target))
    assert image.shape[0] > 600 and target.stat().st_size > 10_000
