"""``cebra.integrations.matplotlib``: the matplotlib plots."""

from napari_cebra.workflows.plotting import (
    compare_models,
    plot,
    plot_consistency,
    plot_embedding,
    plot_loss,
    plot_overview,
    plot_temperature,
)

__all__ = [
    "compare_models",
    "plot",
    "plot_consistency",
    "plot_embedding",
    "plot_loss",
    "plot_overview",
    "plot_temperature",
]
