"""Metrics with the names of ``cebra.integrations.sklearn.metrics``."""

from napari_cebra.core.consistency import align_embeddings, consistency_score
from napari_cebra.core.goodness_of_fit import (
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
