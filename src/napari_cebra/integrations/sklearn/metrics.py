"""``cebra.integrations.sklearn.metrics``: the same functions as :mod:`napari_cebra.metrics`."""

from napari_cebra.metrics import (
    align_embeddings,
    consistency_score,
    goodness_of_fit_history,
    goodness_of_fit_score,
    infonce_loss,
    infonce_to_goodness_of_fit,
)

__all__ = [
    "align_embeddings",
    "consistency_score",
    "goodness_of_fit_history",
    "goodness_of_fit_score",
    "infonce_loss",
    "infonce_to_goodness_of_fit",
]
