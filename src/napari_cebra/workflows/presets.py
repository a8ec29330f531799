"""The CEBRA authors' recipe settings: the CEBRA-Time and CEBRA-Behavior presets and the grid.

Plain dictionaries with no heavy import (no torch, scikit-learn or pandas), so that a widget can
offer the presets the moment it opens; :mod:`napari_cebra.workflows.recipe` trains with them.
"""

from __future__ import annotations

from typing import Any

TIME_PARAMS: dict[str, Any] = {
    "model_architecture": "offset10-model",
    "batch_size": 512,
    "learning_rate": 3e-4,
    "temperature": 1.12,
    "output_dimension": 3,
    "time_offsets": 10,
    "conditional": "time",
    "distance": "cosine",
    "device": "cuda_if_available",
}
"""CEBRA-Time settings of the authors' recipe (``max_iterations`` is set from ``iterations``)."""

BEHAVIOUR_PARAMS: dict[str, Any] = {**TIME_PARAMS, "conditional": "time_delta", "temperature": 1.0}
"""CEBRA-Behavior: the same model with positives chosen by behaviour (``time_delta``) and
temperature 1, as in the authors' hippocampus demo."""

DEFAULT_GRID: dict[str, list[Any]] = {
    "output_dimension": [3, 8],
    "learning_rate": [3e-4, 1e-3],
    "temperature": [0.6, 1.12],
    "time_offsets": [5, 10],
}
"""16-point grid around the recipe's CEBRA-Time configuration."""

SMALL_GRID: dict[str, list[Any]] = {"output_dimension": [3, 8], "time_offsets": [5, 10]}
"""4-point grid used for quick runs (``workflows.recipe.SMALL_GRID_BELOW``)."""
