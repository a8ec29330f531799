"""Matplotlib plots with the names and arguments of ``cebra``'s plotting helpers (spec §6.4).

Every function draws on the ``ax`` it is given or, without one, on a new
:class:`matplotlib.figure.Figure` (never through ``pyplot``, so no global figure state is created
and the plots work with any backend, including Agg on a headless machine), and returns the Axes.
``plot_loss`` and ``plot_temperature`` accept a fitted estimator or, as an extension, the history
itself (a 1-D array of values per step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.axes
import matplotlib.colors
import matplotlib.figure
import numpy as np
from sklearn.exceptions import NotFittedError

from napari_cebra.core.consistency import consistency_matrix

CEBRA_COLORS = ("#4854e9", "#6235e0", "#a045e8", "#bf1bb9", "#d4164f")


def cebra_colormap() -> matplotlib.colors.Colormap:
    """The five-stop blue → magenta → red gradient used by cebra for model comparisons."""
    return matplotlib.colors.LinearSegmentedColormap.from_list("cebra", CEBRA_COLORS)


def register_cebra_colormap() -> None:
    """Make ``"cebra"`` a matplotlib colormap name (as importing cebra's plotting does), so that
    ``cmap="cebra"`` works in any matplotlib call; an existing registration is kept."""
    if "cebra" not in matplotlib.colormaps:
        matplotlib.colormaps.register(cebra_colormap(), name="cebra")


register_cebra_colormap()


def _colormap(cmap: str | matplotlib.colors.Colormap) -> matplotlib.colors.Colormap:
    if isinstance(cmap, matplotlib.colors.Colormap):
        return cmap
    return matplotlib.colormaps[cmap]


def _new_axes(
    ax: matplotlib.axes.Axes | None, figsize: tuple[float, float], dpi: float, **subplot: Any
) -> matplotlib.axes.Axes:
    if ax is not None:
        return ax
    figure = matplotlib.figure.Figure(figsize=figsize, dpi=dpi)
    return figure.add_subplot(**subplot)


def _history(model: Any, key: str | None) -> np.ndarray:
    """A per-step history from a fitted estimator (``state_dict_``) or a given 1-D array."""
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        state = getattr(model, "state_dict_", None)
        if state is None:
            raise NotFittedError(
                f"This {type(model).__name__} instance is not fitted yet: call 'fit' before "
                "plotting its history."
            )
        values = state["loss"] if key is None else state["log"][key]
    else:
        values = model
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    history = np.asarray(values, dtype=np.float64)
    if history.ndim != 1:
        raise ValueError(f"A history must be 1-D (one value per step), got shape {history.shape}.")
    return history


def _plot_history(
    history: np.ndarray,
    ax: matplotlib.axes.Axes | None,
    *,
    label: str | None,
    color: str,
    linewidth: float,
    x_label: bool,
    y_label: str | None,
    figsize: tuple[float, float],
    dpi: float,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    ax = _new_axes(ax, figsize, dpi)
    ax.plot(
        np.arange(len(history)), history, color=color, linewidth=linewidth, label=label, **kwargs
    )
    ax.spines[["top", "right"]].set_visible(False)
    if x_label:
        ax.set_xlabel("Steps")
    if y_label:
        ax.set_ylabel(y_label)
    if label is not None:
        ax.legend(frameon=False)
    return ax


def plot_loss(
    model: Any,
    label: str | None = None,
    ax: matplotlib.axes.Axes | None = None,
    color: str = "magenta",
    linewidth: float = 1,
    x_label: bool = True,
    y_label: bool = True,
    figsize: tuple[float, float] = (7, 4),
    dpi: float = 100,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Plot the InfoNCE loss per training step.

    Parameters
    ----------
    model : fitted CEBRA or array-like
        An estimator (its ``state_dict_["loss"]`` is plotted) or a 1-D loss history.
    label : str, optional
        Legend entry; the legend is drawn only when given.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made otherwise.
    color, linewidth, **kwargs
        Line style, passed to :meth:`matplotlib.axes.Axes.plot`.
    x_label, y_label : bool
        Whether to label the axes ("Steps", "InfoNCE Loss").
    figsize, dpi
        Size of the new figure when ``ax`` is None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    return _plot_history(
        _history(model, None),
        ax,
        label=label,
        color=color,
        linewidth=linewidth,
        x_label=x_label,
        y_label="InfoNCE Loss" if y_label else None,
        figsize=figsize,
        dpi=dpi,
        **kwargs,
    )


def plot_temperature(
    model: Any,
    ax: matplotlib.axes.Axes | None = None,
    color: str = "dodgerblue",
    linewidth: float = 1,
    x_label: bool = True,
    y_label: bool = True,
    figsize: tuple[float, float] = (7, 4),
    dpi: float = 100,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Plot the temperature per training step (constant unless ``temperature_mode="auto"``).

    Parameters are those of :func:`plot_loss`; the history is ``state_dict_["log"]["temperature"]``.
    """
    return _plot_history(
        _history(model, "temperature"),
        ax,
        label=None,
        color=color,
        linewidth=linewidth,
        x_label=x_label,
        y_label="Temperature" if y_label else None,
        figsize=figsize,
        dpi=dpi,
        **kwargs,
    )


def embedding_colors(embedding_labels: Any, n_samples: int) -> tuple[Any, bool]:
    """The scatter colour argument and whether it is a vector of values for a colormap."""
    if isinstance(embedding_labels, str):
        if embedding_labels == "time":
            return np.arange(n_samples), True
        if not matplotlib.colors.is_color_like(embedding_labels):
            raise ValueError(
                "Invalid embedding labels: give a per-sample vector, 'time' or a matplotlib "
                f"colour name, got {embedding_labels!r}."
            )
        return embedding_labels, False
    values = as_numpy(embedding_labels)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim > 1:
        raise NotImplementedError(
            "Invalid embedding labels: plotting supports one label per sample, got labels of "
            f"shape {values.shape}."
        )
    if len(values) != n_samples:
        raise ValueError(
            f"Invalid embedding labels: got {len(values)} labels for an embedding with "
            f"{n_samples} samples."
        )
    return values, True


def _check_idx_order(idx_order: Sequence[int], n_dims: int) -> tuple[int, ...]:
    order = tuple(int(index) for index in idx_order)
    if len(order) not in (2, 3):
        raise ValueError(f"idx_order must hold 2 or 3 dimension indices, got {idx_order}.")
    for index in order:
        if not 0 <= index < n_dims:
            raise ValueError(
                f"idx_order {idx_order} is invalid: dimension {index} is not in 0…{n_dims - 1}."
            )
    return order


def as_numpy(values: Any) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor (any device), pandas object or list."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    elif hasattr(values, "to_numpy"):
        values = values.to_numpy()
    return np.asarray(values)


def embedding_points(
    embedding: Any, idx_order: Sequence[int] | None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The embedding as a (samples, dimensions) array and the dimensions to plot."""
    points = as_numpy(embedding)
    if points.ndim != 2 or points.shape[1] < 2:
        raise ValueError(
            f"embedding must be (samples, dimensions) with at least 2 dimensions, got shape "
            f"{points.shape}."
        )
    if idx_order is None:
        return points, (0, 1, 2) if points.shape[1] >= 3 else (0, 1)
    return points, _check_idx_order(idx_order, points.shape[1])


def plot_embedding(
    embedding: Any,
    embedding_labels: Any = "grey",
    ax: matplotlib.axes.Axes | None = None,
    idx_order: Sequence[int] | None = None,
    markersize: float = 0.05,
    alpha: float = 0.4,
    cmap: str = "cool",
    title: str = "Embedding",
    figsize: tuple[float, float] = (5, 5),
    dpi: float = 100,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Scatter an embedding in 3-D (d ≥ 3) or 2-D (d = 2, or ``idx_order`` of length 2).

    Parameters
    ----------
    embedding : array-like, (samples, dimensions)
    embedding_labels : array-like, "time" or str
        Per-sample values mapped through ``cmap``, ``"time"`` (the sample index) or a single
        matplotlib colour (then ``cmap`` is ignored).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a 3-D Axes for a 3-D plot); a new figure is made otherwise.
    idx_order : sequence of 2 or 3 int, optional
        Embedding dimensions to show; default (0, 1, 2) or (0, 1).
    markersize, alpha, cmap, title, **kwargs
        Scatter style, passed to ``scatter``.
    figsize, dpi
        Size of the new figure when ``ax`` is None.

    Returns
    -------
    matplotlib.axes.Axes
    """
    points, order = embedding_points(embedding, idx_order)
    colors, mapped = embedding_colors(embedding_labels, len(points))
    style = {"c": colors, "cmap": cmap if mapped else None, "alpha": alpha, "s": markersize}
    if len(order) == 3:
        ax = _new_axes(ax, figsize, dpi, projection="3d")
        ax.scatter(*(points[:, index] for index in order), **style, **kwargs)
        ax.grid(False)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.pane.fill = False
            axis.pane.set_edgecolor("w")
    else:
        ax = _new_axes(ax, figsize, dpi)
        ax.scatter(points[:, order[0]], points[:, order[1]], **style, **kwargs)
    ax.set_title(title)
    return ax


def _square_scores(scores: Any, pairs: Any, datasets: Any) -> tuple[np.ndarray, list[Any]]:
    """The score matrix (NaN diagonal) and the labels of its rows/columns."""
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim == 2:
        if values.shape[0] != values.shape[1]:
            raise ValueError(f"A score matrix must be square, got shape {values.shape}.")
        matrix = values.copy()
        np.fill_diagonal(matrix, np.nan)
        labels = list(range(len(matrix))) if datasets is None else list(np.asarray(datasets))
        if len(labels) != len(matrix):
            raise ValueError(f"Got {len(labels)} dataset labels for a {matrix.shape} score matrix.")
        return matrix, labels
    values = np.atleast_1d(values)
    if values.ndim != 1:
        raise ValueError(f"Invalid scores dimensions: expect 1-D scores, got shape {values.shape}.")
    if pairs is None:
        raise ValueError("Missing pairs: 1-D scores need the pairs returned by consistency_score.")
    pair_array = np.asarray(pairs).reshape(-1, 2)
    if len(pair_array) != len(values):
        raise ValueError(
            f"Shape of the scores and pairs do not match: {len(values)} scores, "
            f"{len(pair_array)} pairs."
        )
    compared = sorted(set(pair_array.ravel().tolist()), key=str)
    wanted = None if datasets is None else list(dict.fromkeys(np.asarray(datasets).tolist()))
    if wanted is not None and len(values) == len(wanted) ** 2 - len(wanted):
        labels = wanted
    elif len(values) == len(compared) ** 2 - len(compared):
        labels = compared
    else:
        raise ValueError(
            f"Shape of the scores, datasets and pairs do not match: {len(values)} scores, "
            f"{'no' if wanted is None else len(wanted)} datasets and {len(compared)} distinct ids "
            "in pairs."
        )
    return consistency_matrix(values, pair_array, labels), labels


def plot_consistency(
    scores: Any,
    pairs: Any = None,
    datasets: Any = None,
    ax: matplotlib.axes.Axes | None = None,
    cmap: str = "binary",
    text_color: str | None = "white",
    colorbar_label: str | None = "Consistency score (%)",
    title: str | None = None,
    figsize: tuple[float, float] = (5, 5),
    dpi: float = 100,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Annotated heatmap of consistency scores (in %), NaN on the diagonal.

    Parameters
    ----------
    scores : array-like
        The 1-D ``scores`` of :func:`~napari_cebra.metrics.consistency_score` (with ``pairs``), or
        a square matrix such as :func:`~napari_cebra.core.consistency.consistency_matrix` returns.
    pairs : array-like, optional
        ``(n_scores, 2)`` ids compared by each score.
    datasets : array-like, optional
        The ids to show, in order. Used when ``len(scores) == D² - D``; otherwise the distinct ids
        in ``pairs`` (sorted) are used.
    ax : matplotlib.axes.Axes, optional
    cmap : str
        Colour map of the heatmap.
    text_color : str or None
        Colour of the per-cell annotation (one decimal); None draws no annotation.
    colorbar_label : str or None
        Label of the colour bar; None draws no colour bar.
    title : str, optional
    figsize, dpi
        Size of the new figure when ``ax`` is None.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    matrix, labels = _square_scores(scores, pairs, datasets)
    percent = matrix * 100
    ax = _new_axes(ax, figsize, dpi)
    image = ax.imshow(percent, cmap=cmap, **kwargs)
    if text_color is not None:
        for (row, column), value in np.ndenumerate(percent):
            if not np.isnan(value):
                ax.text(column, row, f"{value:0.1f}", ha="center", va="center", color=text_color)
    if colorbar_label is not None:
        colorbar = ax.figure.colorbar(image, ax=ax)
        colorbar.outline.set_visible(False)
        colorbar.ax.set_ylabel(colorbar_label, rotation=-90, va="bottom")
    tick_labels = [str(label) for label in labels]
    ax.set_xticks(np.arange(len(labels)), labels=tick_labels)
    ax.set_yticks(np.arange(len(labels)), labels=tick_labels)
    ax.tick_params(left=False, bottom=False, pad=10)
    for tick in ax.get_yticklabels():
        tick.set_rotation(90)
        tick.set_horizontalalignment("center")
        tick.set_rotation_mode("anchor")
    ax.spines[:].set_visible(False)
    if title is not None:
        ax.set_title(title)
    return ax


def compare_models(
    models: list[Any],
    labels: list[str | int | float] | None = None,
    ax: matplotlib.axes.Axes | None = None,
    color: str | None = None,
    cmap: str = "cebra",
    linewidth: float = 1,
    x_label: bool = True,
    y_label: bool = True,
    figsize: tuple[float, float] = (7, 4),
    dpi: float = 100,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Loss curves of several fitted models on one Axes.

    Parameters
    ----------
    models : list of fitted CEBRA
    labels : list of str/int/float, optional
        One legend entry per model.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (cebra always makes a new figure; we use ``ax`` when given).
    color : str, optional
        One colour for all curves; otherwise colours are sampled evenly from ``cmap``.
    cmap : str
        Colour map, ``"cebra"`` by default.
    linewidth, x_label, y_label, figsize, dpi, **kwargs
        As in :func:`plot_loss`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not isinstance(models, list):
        raise ValueError(f"Invalid list of models: expect a list, got {type(models).__name__}.")
    for model in models:
        if not (hasattr(model, "fit") and hasattr(model, "get_params")):
            raise ValueError(
                f"Invalid list of models: it should only hold CEBRA models, got {type(model)}."
            )
    if labels is None:
        labels = [None] * len(models)
    elif not isinstance(labels, list):
        raise ValueError(f"Invalid list of labels: expect a list, got {type(labels).__name__}.")
    elif len(labels) != len(models):
        raise ValueError(
            f"Invalid list of labels: got {len(labels)} labels for {len(models)} models."
        )
    elif not all(isinstance(label, str | int | float) for label in labels):
        raise ValueError(f"Invalid list of labels: labels must be str, int or float, got {labels}.")
    if color is None:
        colors = [_colormap(cmap)(value) for value in np.linspace(0, 1, max(len(models), 1))]
    else:
        colors = [color] * len(models)
    ax = _new_axes(ax, figsize, dpi)
    for model, label, line_color in zip(models, labels, colors, strict=False):
        plot_loss(
            model,
            label=None if label is None else str(label),
            ax=ax,
            color=line_color,
            linewidth=linewidth,
            x_label=x_label,
            y_label=y_label,
            **kwargs,
        )
    return ax


def plot(
    model: Any,
    which: str = "loss",
    X: Any = None,
    ax: matplotlib.axes.Axes | None = None,
    **kwargs: Any,
) -> matplotlib.axes.Axes:
    """Plot one view of a fitted model: its loss, its temperature or its embedding of ``X``.

    Parameters
    ----------
    model : fitted CEBRA
    which : {"loss", "temperature", "embedding"}
        What to plot.
    X : array-like, optional
        Data to embed; needed for ``which="embedding"``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (3-D for a 3-D embedding); a new figure is made otherwise.
    **kwargs
        Passed to :func:`plot_loss`, :func:`plot_temperature` or :func:`plot_embedding`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if which == "loss":
        return plot_loss(model, ax=ax, **kwargs)
    if which == "temperature":
        return plot_temperature(model, ax=ax, **kwargs)
    if which == "embedding":
        if X is None:
            raise ValueError("No data: plot(which='embedding') needs X, the data to embed.")
        return plot_embedding(model.transform(X), ax=ax, **kwargs)
    raise ValueError(
        f"Invalid value for `which`: got {which!r}, expected 'loss', 'temperature' or 'embedding'."
    )


def plot_overview(
    model: Any,
    X: Any,
    loss_kwargs: dict[str, Any] | None = None,
    temperature_kwargs: dict[str, Any] | None = None,
    embedding_kwargs: dict[str, Any] | None = None,
    figsize: tuple[float, float] = (15, 4),
    dpi: float = 100,
    **kwargs: Any,
) -> tuple[matplotlib.figure.Figure, tuple[matplotlib.axes.Axes, ...]]:
    """Loss and temperature (left, one above the other) and the embedding of ``X`` (right).

    Parameters
    ----------
    model : fitted CEBRA
    X : array-like
        Data to embed.
    loss_kwargs, temperature_kwargs, embedding_kwargs : dict, optional
        Passed to the three plots (e.g. ``embedding_kwargs={"embedding_labels": "time"}``).
    figsize, dpi
        Size of the figure.
    **kwargs
        Passed to all three plots.

    Returns
    -------
    (Figure, (Axes, Axes, Axes))
        The figure and the loss, temperature and embedding axes.
    """
    figure = matplotlib.figure.Figure(figsize=figsize, dpi=dpi)
    grid = figure.add_gridspec(4, 2, wspace=0, hspace=0.2)
    loss_ax = figure.add_subplot(grid[:2, 0])
    plot(model, "loss", ax=loss_ax, x_label=False, **(loss_kwargs or {}), **kwargs)
    temperature_ax = figure.add_subplot(grid[2:, 0], sharex=loss_ax)
    plot(model, "temperature", ax=temperature_ax, **(temperature_kwargs or {}), **kwargs)
    for label in loss_ax.get_xticklabels():
        label.set_visible(False)
    embedding = model.transform(X)
    embedding_ax = figure.add_subplot(
        grid[:, 1], projection="3d" if np.shape(embedding)[1] >= 3 else None
    )
    options = {"markersize": 0.01, **(embedding_kwargs or {}), **kwargs}
    plot_embedding(embedding, ax=embedding_ax, **options)
    return figure, (loss_ax, temperature_ax, embedding_ax)
