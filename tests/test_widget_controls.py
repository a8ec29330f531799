"""Shuffle-controls widget with a real viewer on the plugin's place-cell sample data."""

from __future__ import annotations

import html

import numpy as np
import pytest

from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK
from napari_cebra._widgets.session import session_models

pytestmark = pytest.mark.gui

WAIT_MS = 240_000
QUICK = {
    "max_iterations": 80,
    "batch_size": 128,
    "num_hidden_units": 16,
    "learning_rate": 3e-3,
    "gof_batches": 10,
}


@pytest.fixture
def controls_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-cebra", "place_cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA shuffle controls")
    for name, value in QUICK.items():
        getattr(widget if name == "gof_batches" else widget.params, name).value = value
    yield viewer, widget
    for entry in list(session_models()):
        if entry.name.startswith("CEBRA-Behavior (controls)"):
            session_models().remove(entry.name)


def test_controls_on_the_place_cell_sample_give_a_passing_verdict(qtbot, controls_widget):
    viewer, widget = controls_widget
    assert widget.data.neural.value == "neural" and widget.data.behaviour.value == "behaviour"
    assert widget.data.variables.value == ["position", "right", "left"]
    assert widget.estimator_params()["conditional"] == "time_delta"
    widget.run_button.click()
    assert not widget.run_button.isEnabled() and not widget.params.enabled
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)

    outcome = widget.outcome
    assert outcome is not None, widget.status.value
    label, neural = outcome.label, outcome.neural
    assert label.real is neural.real  # one real model, two controls
    assert label.verdict == "pass", label.reason
    assert neural.verdict == "pass", neural.reason
    assert label.control.gof_train < 0.1 < label.real.gof_train
    assert "PASS" in widget.verdicts.text() and html.escape(label.reason) in widget.verdicts.text()
    # comparison plots hold every step of each model
    n_steps = QUICK["max_iterations"]
    for run in ("real model", "label shuffle", "neural shuffle"):
        assert widget.loss_plot.curve(run).shape == (n_steps, 2)
        assert widget.gof_plot.curve(run).shape == (n_steps, 2)
    np.testing.assert_allclose(
        widget.gof_plot.curve("label shuffle")[:, 1], label.control.gof_history
    )
    # the three embeddings are layers of the embedding view, one point per frame
    view = viewer.window.dock_widgets[EMBEDDING_DOCK]
    n_frames = viewer.layers["neural"].data.shape[0]
    name = widget.real_entry.name
    for layer_name in (name, f"{name} label shuffle", f"{name} neural shuffle"):
        points = view.layer(layer_name)
        assert points.data.shape == (n_frames, 3)
        assert (points.features["split"] == "validation").sum() == n_frames - outcome.n_train
    assert session_models().get(name).model is label.real.model
    assert widget.run_button.isEnabled()


def test_controls_need_behaviour_labels(controls_widget, monkeypatch):
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    _, widget = controls_widget
    widget.data.variables.value = []
    widget.run_button.click()
    assert not widget.runner.running
    assert shown and "at least one label column" in shown[0]


def test_stop_and_closing_mid_run(qtbot, controls_widget, stop_mid_run, close_mid_run):
    viewer, widget = controls_widget
    # the controls yield every 1 % of training (10 steps here): Stop acts at the next yield
    widget.params.max_iterations.value = 1000
    widget.run_button.click()
    qtbot.waitUntil(
        lambda: len(widget.loss_plot.names) and widget.runner.bar_value >= 20, timeout=WAIT_MS
    )
    assert stop_mid_run(widget, WAIT_MS) < 1.0
    assert widget.outcome is None and widget.status.value.startswith("Stopped")
    assert widget.run_button.isEnabled()

    widget.run_button.click()
    worker = widget.runner.worker
    qtbot.waitUntil(lambda: widget.runner.bar_value >= 20, timeout=WAIT_MS)
    close_mid_run(viewer, widget, worker, WAIT_MS)
    assert widget.outcome is None
    assert EMBEDDING_DOCK not in viewer.window.dock_widgets
