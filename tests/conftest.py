"""Shared fixtures: small recordings that keep engine tests fast."""

from __future__ import annotations

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
