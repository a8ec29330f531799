"""``cebra.integrations.plotly``: the interactive embedding plot (needs the ``plotly`` extra)."""

from napari_cebra.workflows.interactive_plots import colorscale, plot_embedding_interactive

# cebra's private name for the colour-scale conversion, which its tests and some notebooks call
_convert_cmap2colorscale = colorscale

__all__ = ["plot_embedding_interactive"]
