"""``cebra.grid_search``: parameter sweeps with saved models and a results table."""

from napari_cebra.workflows.grid_search import GridSearch

__all__ = ["GridSearch"]
