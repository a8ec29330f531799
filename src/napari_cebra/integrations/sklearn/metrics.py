"""``cebra.integrations.sklearn.metrics``: the same functions as :mod:`napari_cebra.metrics`."""

from napari_cebra import metrics as _metrics
from napari_cebra.metrics import *  # noqa: F403 - the same names, one list of them

__all__ = list(_metrics.__all__)
