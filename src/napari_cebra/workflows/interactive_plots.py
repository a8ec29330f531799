"""Interactive (plotly) embedding plots with the name and arguments of ``cebra``'s.

plotly is an optional extra: ``pip install "napari-cebra[plotly]"``. Without it,
:func:`plot_embedding_interactive` raises an ImportError that names the extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

from napari_cebra.workflows.plotting import embedding_colors, embedding_points

PLOTLY_MISSING = (
    "plot_embedding_interactive needs plotly, an optional extra of napari-cebra: "
    'pip install "napari-cebra[plotly]"'
)


def _plotly_graph_objects() -> Any:
    try:
        import plotly.graph_objects
    except ImportError as error:
        raise ImportError(PLOTLY_MISSING) from error
    return plotly.graph_objects


def colorscale(
    cmap: str | matplotlib.colors.Colormap, n_entries: int = 11, digits: int = 2
) -> list[list[Any]]:
    """A plotly colour scale, ``[[stop, "rgb(r, g, b)"], ...]``, sampled from a matplotlib
    colormap (a name or a Colormap) at ``n_entries`` evenly spaced stops."""
    colormap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    stops = np.linspace(0.0, 1.0, n_entries)
    colours = (colormap(stops)[:, :3] * 255).astype(np.uint8)
    return [
        [round(float(stop), digits), f"rgb{tuple(colour.tolist())}"]
        for stop, colour in zip(stops, colours, strict=True)
    ]


def plot_embedding_interactive(
    embedding: Any,
    embedding_labels: Any = "grey",
    axis: Any = None,
    markersize: float = 1,
    idx_order: Sequence[int] | None = None,
    alpha: float = 0.4,
    cmap: str = "cool",
    title: str = "Embedding",
    figsize: tuple[float, float] = (5, 5),
    dpi: float = 100,
    **kwargs: Any,
) -> Any:
    """An interactive 3-D (or 2-D) scatter of an embedding, as a plotly Figure.

    Parameters
    ----------
    embedding : array-like, (samples, dimensions)
        numpy array, torch tensor, DataFrame or nested list.
    embedding_labels : array-like, "time" or str
        Per-sample values mapped through ``cmap``, ``"time"`` (the sample index) or one colour.
    axis : plotly.graph_objects.Figure, optional
        Figure to add the scatter to; a new one otherwise.
    markersize, alpha, cmap, title
        Marker size and opacity, colormap name, figure title.
    idx_order : sequence of 2 or 3 int, optional
        Embedding dimensions to show; default (0, 1, 2) or (0, 1).
    figsize, dpi
        Size of a new figure (100 px per inch, like cebra; ``dpi`` is accepted for cebra's
        signature).
    **kwargs
        ``showlegend`` and ``discrete`` (one trace per label value; a legend needs discrete
        labels), ``row``/``col`` (subplot of ``axis``), ``template`` (default "plotly_white").

    Returns
    -------
    plotly.graph_objects.Figure
    """
    go = _plotly_graph_objects()
    points, order = embedding_points(embedding, idx_order)
    colors, mapped = embedding_colors(embedding_labels, len(points))
    showlegend = bool(kwargs.get("showlegend", False))
    discrete = bool(kwargs.get("discrete", False))
    if showlegend and not discrete:
        raise ValueError("Cannot show a legend with continuous labels: pass discrete=True.")
    figure = axis
    if figure is None:
        width, height = figsize
        figure = go.Figure(layout=go.Layout(width=100 * width, height=100 * height))
    scatter = go.Scatter3d if len(order) == 3 else go.Scatter
    groups = (
        [(value, colors == value) for value in np.unique(colors)]
        if discrete and mapped
        else [(None, slice(None))]
    )
    shared_range = {}
    if mapped and np.issubdtype(np.asarray(colors).dtype, np.number) and len(colors):
        # one colour scale for all traces, so a discrete label keeps its colour
        shared_range = {"cmin": float(np.min(colors)), "cmax": float(np.max(colors))}
    for value, rows in groups:
        marker: dict[str, Any] = {"size": markersize, "opacity": alpha}
        if mapped:
            marker.update(color=colors[rows], colorscale=colorscale(cmap), **shared_range)
        else:
            marker["color"] = colors
        trace = scatter(
            **dict(zip("xyz", (points[rows, index] for index in order), strict=False)),
            mode="markers",
            marker=marker,
            name="embedding" if value is None else str(value),
        )
        if "row" in kwargs and "col" in kwargs:
            figure.add_trace(trace, row=kwargs["row"], col=kwargs["col"])
        else:
            figure.add_trace(trace)
    figure.update_layout(
        template=kwargs.get("template", "plotly_white"), showlegend=showlegend, title=title
    )
    return figure
