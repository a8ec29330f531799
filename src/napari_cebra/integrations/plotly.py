"""``cebra.integrations.plotly``: the interactive embedding plot (needs the ``plotly`` extra)."""

from napari_cebra.workflows.interactive_plots import plot_embedding_interactive

__all__ = ["plot_embedding_interactive"]
