"""napari-cebra: CEBRA embeddings of neural recordings, as a library and a napari plugin.

``from napari_cebra import CEBRA`` gives a scikit-learn estimator with the scripting API of the
``cebra`` package, running on our own PyTorch engine. Importing this package is cheap: torch,
Qt and napari are imported only when they are needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "CEBRA": "napari_cebra.core.estimator",
    "TrainingProgress": "napari_cebra.core.training",
    "GridSearch": "napari_cebra.workflows.grid_search",
    "KNNDecoder": "napari_cebra.workflows.decoding",
    "L1LinearRegressor": "napari_cebra.workflows.decoding",
    "plot": "napari_cebra.workflows.plotting",
    "plot_overview": "napari_cebra.workflows.plotting",
    "plot_loss": "napari_cebra.workflows.plotting",
    "plot_temperature": "napari_cebra.workflows.plotting",
    "plot_embedding": "napari_cebra.workflows.plotting",
    "plot_consistency": "napari_cebra.workflows.plotting",
    "compare_models": "napari_cebra.workflows.plotting",
    "plot_embedding_interactive": "napari_cebra.workflows.interactive_plots",
}
# cebra's submodules, as attributes: ``cebra.sklearn`` is ``cebra.integrations.sklearn``
_SUBMODULES = {
    "sklearn": "napari_cebra.integrations.sklearn",
    "integrations": "napari_cebra.integrations",
    "grid_search": "napari_cebra.grid_search",
    "metrics": "napari_cebra.metrics",
    "datasets": "napari_cebra.datasets",
    "helper": "napari_cebra.helper",
}

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'napari_cebra' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
