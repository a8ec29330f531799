"""Shared fixtures: small recordings that keep engine tests fast."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cebra.io.synthetic import PlaceCellRecording, place_cell_recording

# The test machine has 2 cores shared by parallel jobs: with several intra-op threads per process
# small models spend most of their time waiting for each other (25 tiny steps: 6 s vs 0.3 s).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def place_cells() -> PlaceCellRecording:
    """A short synthetic place-cell recording (1,500 bins × 24 neurons)."""
    return place_cell_recording(n_frames=1500, n_neurons=24, seed=0)


@pytest.fixture(scope="session")
def place_cells_full() -> PlaceCellRecording:
    """The seed-sized synthetic recording (10,178 bins × 120 neurons, like achilles)."""
    return place_cell_recording()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small_data(rng) -> np.ndarray:
    """Structure-free data, 200 time steps × 8 features (float32)."""
    return rng.normal(size=(200, 8)).astype(np.float32)


@pytest.fixture
def fast_params() -> dict:
    """Estimator parameters for quick fits (a few steps of a small conv model)."""
    return dict(
        model_architecture="offset5-model",
        batch_size=32,
        max_iterations=3,
        output_dimension=3,
        num_hidden_units=8,
        time_offsets=2,
        device="cpu",
        seed=0,
    )


@pytest.fixture
def small_sweep_params() -> dict:
    """Fixed parameters of the small grid searches: batches of 32, 8 hidden units, on the CPU."""
    return dict(batch_size=32, num_hidden_units=8, device="cpu", time_offsets=3)


@pytest.fixture
def count_fits(monkeypatch) -> list:
    """Count the models trained (``CEBRA.iter_fit`` calls); each entry is the model's
    ``output_dimension``."""
    from napari_cebra.core.estimator import CEBRA

    calls = []
    original = CEBRA.iter_fit

    def counting(self, *args, **kwargs):
        calls.append(self.get_params()["output_dimension"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CEBRA, "iter_fit", counting)
    return calls


@pytest.fixture(autouse=True)
def empty_session_models():
    """Every test starts with an empty session-model registry and leaves none behind.

    The registry is process-wide (all widgets share it), so without this a model registered by
    one widget test would show up in the next test's model lists.
    """
    from napari_cebra._widgets.session import session_models

    registry = session_models()
    saved = dict(registry._models)
    registry._models.clear()
    yield registry
    registry._models.clear()
    registry._models.update(saved)


# ---------------------------------------------------------------------------------------------
# dock widgets under a real viewer

BEHAVIOUR_COLUMNS = ["position", "right", "left"]
RUN_TIMEOUT_MS = 240_000


@pytest.fixture
def place_cell_viewer(make_napari_viewer) -> Callable[..., object]:
    """Factory: a viewer holding a synthetic place-cell recording (20 neurons) as two Image
    layers, "neural" (time × neurons) and "behaviour" (position, right, left), drawn as the
    plugin's readers draw them (a raster, time from left to right, behaviour under it)."""
    from napari_cebra.io.napari_contributions import (
        matrix_contrast,
        raster_display,
        strip_under_raster,
    )

    def make(n_frames: int, seed: int, *, behaviour_visible: bool = False) -> object:
        recording = place_cell_recording(n_frames=n_frames, n_neurons=20, seed=seed)
        viewer = make_napari_viewer()
        viewer.add_image(
            recording.neural,
            name="neural",
            colormap="magma",
            contrast_limits=matrix_contrast(recording.neural),
            **raster_display(*recording.neural.shape),
        )
        viewer.add_image(
            recording.behaviour,
            name="behaviour",
            metadata={"columns": BEHAVIOUR_COLUMNS},
            visible=behaviour_visible,
            **strip_under_raster(*recording.behaviour.shape),
        )
        return viewer

    return make


DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SCREENSHOTS_ENV = "NAPARI_CEBRA_SCREENSHOTS"


@pytest.fixture
def screenshot_path(tmp_path) -> Callable[[str], Path]:
    """Factory: where a test saves screenshot ``name``: ``docs/images/`` when the environment
    variable ``NAPARI_CEBRA_SCREENSHOTS=1`` asks for new pictures, else a temporary folder (a
    normal test run never rewrites the documentation's pictures)."""

    def path(name: str) -> Path:
        folder = DOCS_IMAGES if os.environ.get(SCREENSHOTS_ENV) == "1" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    return path


@pytest.fixture
def stop_mid_run(qtbot) -> Callable[..., float]:
    """Factory: press a running widget's Stop button; returns the seconds until its worker ended."""

    def stop(widget, timeout_ms: int = RUN_TIMEOUT_MS) -> float:
        started = time.perf_counter()
        with qtbot.waitSignal(widget.runner.worker.finished, timeout=timeout_ms):
            widget.stop_button.click()
        return time.perf_counter() - started

    return stop


@pytest.fixture
def close_mid_run(qtbot) -> Callable[..., float]:
    """Factory: close a widget's dock while ``worker`` runs; returns the seconds until the worker
    ended (then lets queued events through)."""

    def close(viewer, widget, worker, timeout_ms: int = RUN_TIMEOUT_MS) -> float:
        started = time.perf_counter()
        with qtbot.waitSignal(worker.finished, timeout=timeout_ms):
            viewer.window.remove_dock_widget(widget.parent())
        seconds = time.perf_counter() - started
        qtbot.wait(50)
        return seconds

    return close
