"""``cebra.integrations.sklearn.cebra``: the estimator."""

from napari_cebra.core.estimator import CEBRA

__all__ = ["CEBRA"]
