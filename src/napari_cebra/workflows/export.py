"""Exporting embeddings: data files, publication figures and short movies (issue 16, item 6).

Plain Python (no Qt, no napari), for the GUI's export buttons and for scripts:

* :func:`save_embedding` writes an embedding and its per-frame features as ``.csv``, ``.npz`` or
  ``.h5``;
* :func:`embedding_figure` draws a publication figure (3-D or 2-D scatter, axis labels, a colour bar
  or a legend) on a :class:`matplotlib.figure.Figure`, and :func:`save_figure` writes it as PNG,
  SVG or PDF;
* :func:`embedding_movie` renders the embedding rotating, or a trail moving through it, as a GIF
  (or an MP4 when the optional ``imageio-ffmpeg`` is installed).

Every file is written through :func:`napari_cebra.core.files.replace_file_atomically`: readers see
the old file or the complete new one, never a half-written one.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib.axes
import matplotlib.colors
import matplotlib.figure
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from napari_cebra.core.files import replace_file_atomically
from napari_cebra.io.matrices import MISSING_CELLS
from napari_cebra.workflows.plotting import (
    as_numpy,
    embedding_colors,
    embedding_points,
    plot_embedding,
)

__all__ = [
    "EMBEDDING_SUFFIXES",
    "FIGURE_SUFFIXES",
    "MOVIE_MODES",
    "MOVIE_SUFFIXES",
    "embedding_figure",
    "embedding_movie",
    "save_embedding",
    "save_figure",
]

EMBEDDING_SUFFIXES = (".csv", ".npz", ".h5")
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
MOVIE_SUFFIXES = (".gif", ".mp4")
MOVIE_MODES = ("rotate", "trail")
_RESERVED_NAMES = ("frame", "embedding")
_SINGLE_COLOUR = "#4854e9"


# --- embedding data files -----------------------------------------------------------------------


def save_embedding(
    path: str | os.PathLike,
    embedding: Any,
    features: Any | None = None,
    *,
    frames: Any | None = None,
) -> Path:
    """Write an embedding (and per-frame features) to a ``.csv``, ``.npz`` or ``.h5`` file.

    Parameters
    ----------
    path : path-like
        The file to create or replace; its suffix chooses the format (``~`` is expanded).
    embedding : array-like, (T, d)
        One row per frame (numpy array, torch tensor or pandas object).
    features : pandas.DataFrame, optional
        ``T`` rows of per-frame values (behaviour, labels, ...), matched to the embedding by
        position (the index is ignored). Column names must be unique text and not ``frame``,
        ``embedding`` or ``dim_<i>``.
    frames : array-like of int, (T,), optional
        The recording's frame of each row (e.g. when behaviour was aligned by time and some
        frames were left out), written as the ``frame`` column; default ``0 … T−1``.

    Returns
    -------
    Path
        The file written.

    Notes
    -----
    * ``.csv``: a header row ``frame, dim_0, ..., dim_{d-1}, <feature columns>`` and one row per
      frame (booleans as 0/1, text as it is, missing values empty). Without text features the
      file reads back with :func:`napari_cebra.io.matrices.load_matrix` (the header is recognised
      as text).
    * ``.npz``: arrays ``embedding`` (T, d), ``frame`` (T,) and one (T,) array per feature column;
      text columns are stored as fixed-width unicode (missing values as ``""``), so the file loads
      with ``allow_pickle=False``.
    * ``.h5``: datasets with the same names; text columns are UTF-8 string datasets.

    Raises
    ------
    ValueError
        An unsupported suffix, an embedding that is not 2-D numeric, features with another number
        of rows, or unusable column names.
    OSError
        Writing failed (the message names the file; no partial file is left).
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    writers = {".csv": _write_csv, ".npz": _write_npz, ".h5": _write_h5}
    if suffix not in writers:
        raise ValueError(
            f"Cannot save an embedding as {target.name!r}: suffix {suffix!r} is not one of "
            f"{', '.join(EMBEDDING_SUFFIXES)}."
        )
    values = _embedding_array(embedding)
    table = _feature_table(features, values)
    return writers[suffix](target, values, table, _frame_numbers(frames, len(values)))


def _frame_numbers(frames: Any | None, n_rows: int) -> np.ndarray:
    if frames is None:
        return np.arange(n_rows)
    numbers = np.asarray(frames)
    if numbers.shape != (n_rows,) or not np.issubdtype(numbers.dtype, np.integer):
        raise ValueError(
            f"frames must be {n_rows} integers (one per embedding row), got shape "
            f"{numbers.shape} of dtype {numbers.dtype}."
        )
    return numbers.astype(np.int64)


def _embedding_array(embedding: Any) -> np.ndarray:
    values = as_numpy(embedding)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(
            f"An embedding must be a non-empty 2-D (frames, dimensions) array, got shape "
            f"{values.shape}."
        )
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"An embedding must be real numbers, got dtype {values.dtype}.")
    return values


def _feature_table(features: Any | None, embedding: np.ndarray) -> Any:
    """The features as a DataFrame with a 0..T-1 index (an empty one when None)."""
    import pandas as pd

    if features is None:
        return pd.DataFrame(index=pd.RangeIndex(len(embedding)))
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame, got {type(features).__name__}.")
    if len(features) != len(embedding):
        raise ValueError(
            f"features has {len(features)} rows but the embedding has {len(embedding)} frames."
        )
    names = [str(name) for name in features.columns]
    dims = {f"dim_{index}" for index in range(embedding.shape[1])}
    for name in names:
        if name in _RESERVED_NAMES or name in dims:
            raise ValueError(f"The feature column name {name!r} is reserved; rename the column.")
        if not _is_text_name(name) or "/" in name:
            raise ValueError(
                f"The feature column name {name!r} must be text with a letter, not a number, a "
                "missing-value marker or a path with '/' (a CSV header is recognised only when "
                "it is clearly text)."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"The feature column names {names} are not unique.")
    table = features.reset_index(drop=True)
    table.columns = names
    return table


def _is_text_name(name: str) -> bool:
    """Whether ``name`` reads as a column name, not a number or missing value (see load_matrix)."""
    name = name.strip()
    if name.lower() in MISSING_CELLS or not any(character.isalpha() for character in name):
        return False
    try:
        float(name)
    except ValueError:
        return True
    return False


def _feature_arrays(table: Any) -> dict[str, np.ndarray]:
    """One plain numpy array per column: numbers and booleans as they are, the rest as text."""
    import pandas as pd

    arrays = {}
    for name in table.columns:
        column = table[name]
        dtype = column.dtype
        if pd.api.types.is_bool_dtype(dtype) and not column.isna().any():
            arrays[name] = column.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            if column.isna().any() or isinstance(dtype, pd.api.extensions.ExtensionDtype):
                arrays[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                arrays[name] = column.to_numpy()
        else:
            text = column.astype(object).where(column.notna(), "")
            arrays[name] = np.array([str(value) for value in text], dtype=str)
    return arrays


def _write_csv(target: Path, embedding: np.ndarray, table: Any, frames: np.ndarray) -> Path:
    import pandas as pd

    columns = {"frame": frames}
    columns.update({f"dim_{index}": embedding[:, index] for index in range(embedding.shape[1])})
    flags = [name for name in table.columns if table[name].dtype == bool]
    table = table.astype({name: np.int8 for name in flags})  # 0/1, so load_matrix reads them
    frame = pd.concat([pd.DataFrame(columns), table], axis=1)
    text = frame.to_csv(index=False, lineterminator="\n")
    return replace_file_atomically(target, lambda handle: handle.write(text.encode("utf-8")))


def _file_arrays(embedding: np.ndarray, table: Any, frames: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays an ``.npz`` or ``.h5`` file holds: ``embedding``, ``frame`` and the features."""
    return {"embedding": embedding, "frame": frames, **_feature_arrays(table)}


def _write_npz(target: Path, embedding: np.ndarray, table: Any, frames: np.ndarray) -> Path:
    arrays = _file_arrays(embedding, table, frames)

    def write(handle: BinaryIO) -> None:
        # np.savez would take a column called "file" or "allow_pickle" as its own argument
        with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    return replace_file_atomically(target, write)


def _write_h5(target: Path, embedding: np.ndarray, table: Any, frames: np.ndarray) -> Path:
    import h5py

    arrays = _file_arrays(embedding, table, frames)

    def write(handle: BinaryIO) -> None:
        image = io.BytesIO()  # h5py needs a readable file; the atomic writer's handle is write-only
        with h5py.File(image, "w") as file:
            for name, array in arrays.items():
                if array.dtype.kind == "U":
                    text = [value.encode("utf-8") for value in array.tolist()]
                    file.create_dataset(name, data=text, dtype=h5py.string_dtype("utf-8"))
                else:
                    file.create_dataset(name, data=array)
        handle.write(image.getbuffer())

    return replace_file_atomically(target, write)


# --- publication figures ------------------------------------------------------------------------


def embedding_figure(
    embedding: Any,
    colour_values: Any | None = None,
    *,
    axes: Sequence[int] | None = None,
    axis_labels: Sequence[str] | None = None,
    colour_label: str = "",
    cmap: str | matplotlib.colors.Colormap = "viridis",
    title: str = "",
    size: tuple[float, float] = (5, 4),
    dpi: float = 300,
    point_size: float = 2.0,
    alpha: float = 0.8,
) -> matplotlib.figure.Figure:
    """A publication figure of an embedding: a 3-D (or 2-D) scatter with labels and a colour key.

    Parameters
    ----------
    embedding : array-like, (T, d)
    colour_values : array-like of length T, optional
        Numbers (mapped through ``cmap``, with a colour bar labelled ``colour_label``) or
        categories (text, booleans or a pandas Categorical; one colour each, with a legend).
        Without it every point has one colour.
    axes : sequence of 2 or 3 int, optional
        The embedding dimensions shown; default (0, 1, 2), or (0, 1) for a 2-D embedding. Three
        give a 3-D scatter, two a 2-D one.
    axis_labels : sequence of str, optional
        One label per shown axis; default ``"latent 1"``, ``"latent 2"``, ... after the dimension.
    colour_label : str
        Label of the colour bar (numbers) or title of the legend (categories).
    cmap : str or Colormap
        Colour map for numbers; categories take evenly spaced colours from it.
    title : str
    size : (float, float)
        Width and height in inches.
    dpi : float
        Resolution: a PNG from :func:`save_figure` is ``size × dpi`` pixels.
    point_size, alpha : float
        Marker area (points²) and opacity.

    Returns
    -------
    matplotlib.figure.Figure
        A figure not registered with pyplot (save it with :func:`save_figure`).

    Raises
    ------
    ValueError
        A bad embedding shape, axes outside the embedding, axis labels of the wrong length or
        colour values of the wrong length.
    """
    points, order = embedding_points(embedding, axes)
    labels = _axis_labels(axis_labels, order)
    figure = matplotlib.figure.Figure(figsize=size, dpi=dpi, layout="constrained")
    ax = figure.add_subplot(projection="3d" if len(order) == 3 else None)
    style = {"idx_order": order, "markersize": point_size, "alpha": alpha, "title": title}
    mappable = _draw_points(ax, points, colour_values, cmap, colour_label, style)
    if mappable is not None:
        colour_bar = figure.colorbar(mappable, ax=ax, shrink=0.7)
        colour_bar.set_label(colour_label)
        colour_bar.solids.set_alpha(1)
    _label_axes(ax, labels)
    return figure


def _axis_labels(axis_labels: Sequence[str] | None, order: tuple[int, ...]) -> list[str]:
    if axis_labels is None:
        return [f"latent {index + 1}" for index in order]
    labels = [str(label) for label in axis_labels]
    if len(labels) != len(order):
        raise ValueError(f"Got {len(labels)} axis labels {labels} for {len(order)} shown axes.")
    return labels


def _label_axes(ax: matplotlib.axes.Axes, labels: list[str]) -> None:
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if len(labels) == 3:
        ax.set_zlabel(labels[2])


def _draw_points(
    ax: matplotlib.axes.Axes,
    points: np.ndarray,
    colour_values: Any | None,
    cmap: str | matplotlib.colors.Colormap,
    colour_label: str,
    style: dict[str, Any],
) -> Any | None:
    """Scatter ``points`` coloured by ``colour_values``; the scatter to make a colour bar from when
    the values are numbers (None for one colour or categories, which get a legend)."""
    if colour_values is None:
        plot_embedding(points, _SINGLE_COLOUR, ax=ax, **style)
        return None
    if _is_categorical(colour_values):
        _scatter_categories(ax, points, colour_values, cmap, colour_label, style)
        return None
    values, _ = embedding_colors(as_numpy(colour_values), len(points))
    plot_embedding(points, values, ax=ax, cmap=cmap, **style)
    return ax.collections[-1]


def _is_categorical(colour_values: Any) -> bool:
    """Text, booleans and pandas Categoricals are categories; numbers are values for a colour map."""
    import pandas as pd

    if isinstance(getattr(colour_values, "dtype", None), pd.CategoricalDtype):
        return True
    values = as_numpy(colour_values)
    return values.dtype.kind not in "iuf"


def _categories(colour_values: Any, n_points: int) -> tuple[np.ndarray, list[Any]]:
    """Per-point category codes (-1 for missing) and the categories, in order of appearance (a
    Categorical's own order)."""
    import pandas as pd

    if isinstance(colour_values, pd.Series | pd.Categorical):
        series = pd.Series(colour_values).reset_index(drop=True)
    else:
        values = as_numpy(colour_values)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise ValueError(
                f"Colour values must be 1-D (one per point), got shape {values.shape}."
            )
        series = pd.Series(values)
    if len(series) != n_points:
        raise ValueError(
            f"Got {len(series)} colour values for an embedding with {n_points} points."
        )
    codes, uniques = pd.factorize(series, sort=isinstance(series.dtype, pd.CategoricalDtype))
    return codes, list(uniques)


def _category_colours(cmap: str | matplotlib.colors.Colormap, count: int) -> list[str]:
    colormap = cmap if isinstance(cmap, matplotlib.colors.Colormap) else matplotlib.colormaps[cmap]
    return [matplotlib.colors.to_hex(colormap(value)) for value in np.linspace(0, 1, count)]


def _scatter_categories(
    ax: matplotlib.axes.Axes,
    points: np.ndarray,
    colour_values: Any,
    cmap: str | matplotlib.colors.Colormap,
    colour_label: str,
    style: dict[str, Any],
) -> None:
    codes, categories = _categories(colour_values, len(points))
    colours = _category_colours(cmap, len(categories))
    for code, (category, colour) in enumerate(zip(categories, colours, strict=True)):
        plot_embedding(points[codes == code], colour, ax=ax, label=str(category), **style)
    if (codes < 0).any():  # missing values: grey, "missing" in the legend
        plot_embedding(points[codes < 0], "lightgrey", ax=ax, label="missing", **style)
    legend = ax.legend(title=colour_label or None, frameon=False, loc="upper left")
    for handle in legend.legend_handles:
        handle.set_sizes([20.0])
        handle.set_alpha(1)


def save_figure(figure: matplotlib.figure.Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG, SVG or PDF (chosen by the suffix), atomically.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : path-like
        The file to create or replace (``~`` expanded).

    Returns
    -------
    Path
        The file written. A PNG is ``figure size × figure dpi`` pixels.

    Raises
    ------
    ValueError
        The suffix is not ``.png``, ``.svg`` or ``.pdf``.
    OSError
        Writing failed (the message names the file; no partial file is left).
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ValueError(
            f"Cannot save a figure as {target.name!r}: suffix {suffix!r} is not one of "
            f"{', '.join(FIGURE_SUFFIXES)}."
        )
    return replace_file_atomically(
        target, lambda handle: figure.savefig(handle, format=suffix[1:], dpi=figure.dpi)
    )


# --- movies -------------------------------------------------------------------------------------


def embedding_movie(
    path: str | os.PathLike,
    embedding: Any,
    colour_values: Any | None = None,
    *,
    mode: str = "rotate",
    n_frames: int = 60,
    fps: float = 20,
    size: tuple[float, float] = (4, 4),
    dpi: float = 100,
    trail: int | None = None,
    cmap: str | matplotlib.colors.Colormap = "viridis",
    point_size: float = 2.0,
) -> Path:
    """Write a short movie of the embedding rotating or of a trail moving through it.

    Parameters
    ----------
    path : path-like
        A ``.gif`` or ``.mp4`` file (MP4 needs the optional package ``imageio-ffmpeg``).
    embedding : array-like, (T, d)
        Its first three dimensions are shown (two for a 2-D embedding, ``mode="trail"`` only).
    colour_values : array-like of length T, optional
        Numbers mapped through ``cmap``, or categories (one colour each).
    mode : {"rotate", "trail"}
        ``"rotate"``: the 3-D embedding turns once around (azimuth 0° to 360°).
        ``"trail"``: the embedding is a faint background and a line follows the recording, the
        current frame marked in red; the movie's frames are spread evenly over the recording.
    n_frames : int
        Movie frames.
    fps : float
        Frames per second.
    size, dpi
        Frame size in inches and resolution: frames are ``size × dpi`` pixels.
    trail : int, optional
        ``mode="trail"``: recording frames drawn behind the current one; default a tenth of the
        recording.
    cmap : str or Colormap
    point_size : float
        Marker area (points²).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        An unknown mode or suffix, MP4 without ``imageio-ffmpeg``, ``mode="rotate"`` with fewer
        than 3 dimensions, non-positive ``n_frames``/``fps`` or a negative ``trail``.
    """
    target = Path(path).expanduser()
    suffix = target.suffix.lower()
    _check_movie_options(target, suffix, mode, n_frames, fps, trail)
    points, order = embedding_points(embedding, None)
    if mode == "rotate":
        if len(order) != 3:
            raise ValueError(
                f"mode='rotate' needs a 3-D embedding, got shape {points.shape}; use mode='trail'."
            )
        frames = _rotation_frames(
            points, order, colour_values, cmap, n_frames, size, dpi, point_size
        )
    else:
        span = max(1, len(points) // 10) if trail is None else int(trail)
        frames = _trail_frames(
            points, order, colour_values, cmap, n_frames, size, dpi, point_size, span
        )
    if suffix == ".gif":
        return _write_gif(target, frames, fps)
    return _write_mp4(target, frames, fps)


def _check_movie_options(
    target: Path, suffix: str, mode: str, n_frames: int, fps: float, trail: int | None
) -> None:
    if suffix not in MOVIE_SUFFIXES:
        raise ValueError(
            f"Cannot save a movie as {target.name!r}: suffix {suffix!r} is not one of "
            f"{', '.join(MOVIE_SUFFIXES)}."
        )
    if mode not in MOVIE_MODES:
        raise ValueError(f"Unknown movie mode {mode!r}; expected one of {', '.join(MOVIE_MODES)}.")
    if suffix == ".mp4" and not _ffmpeg_available():
        raise ValueError(
            f"Cannot write {target.name!r}: MP4 needs the optional package 'imageio-ffmpeg' "
            "(pip install imageio-ffmpeg); save a .gif instead."
        )
    if int(n_frames) < 1 or fps <= 0:
        raise ValueError(f"n_frames and fps must be positive, got {n_frames} and {fps}.")
    if trail is not None and int(trail) < 0:
        raise ValueError(f"trail must be 0 or more frames, got {trail}.")


def _ffmpeg_available() -> bool:
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def _movie_axes(
    order: tuple[int, ...], size: tuple[float, float], dpi: float
) -> tuple[FigureCanvasAgg, matplotlib.axes.Axes]:
    figure = matplotlib.figure.Figure(figsize=size, dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_subplot(projection="3d" if len(order) == 3 else None)
    return canvas, ax


def _render(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _rotation_frames(
    points: np.ndarray,
    order: tuple[int, ...],
    colour_values: Any | None,
    cmap: str | matplotlib.colors.Colormap,
    n_frames: int,
    size: tuple[float, float],
    dpi: float,
    point_size: float,
) -> list[np.ndarray]:
    canvas, ax = _movie_axes(order, size, dpi)
    style = {"idx_order": order, "markersize": point_size, "alpha": 0.8, "title": ""}
    _draw_points(ax, points, colour_values, cmap, "", style)
    _label_axes(ax, [f"latent {index + 1}" for index in order])
    frames = []
    for azimuth in np.linspace(0, 360, int(n_frames), endpoint=False):
        ax.view_init(elev=20, azim=azimuth - 60)
        frames.append(_render(canvas))
    return frames


def _trail_frames(
    points: np.ndarray,
    order: tuple[int, ...],
    colour_values: Any | None,
    cmap: str | matplotlib.colors.Colormap,
    n_frames: int,
    size: tuple[float, float],
    dpi: float,
    point_size: float,
    span: int,
) -> list[np.ndarray]:
    canvas, ax = _movie_axes(order, size, dpi)
    shown = points[:, list(order)]
    style = {"idx_order": order, "markersize": point_size, "alpha": 0.25, "title": ""}
    _draw_points(ax, points, colour_values, cmap, "", style)
    _label_axes(ax, [f"latent {index + 1}" for index in order])
    (line,) = ax.plot(*shown[:1].T, color="black", linewidth=1.0, alpha=0.8)
    (head,) = ax.plot(*shown[:1].T, "o", color="red", markersize=5)
    frames = []
    for current in np.linspace(0, len(points) - 1, int(n_frames)).round().astype(int):
        recent = shown[max(0, current - span) : current + 1]
        _move(line, recent)
        _move(head, recent[-1:])
        ax.set_title(f"frame {current}", fontsize=8)
        frames.append(_render(canvas))
    return frames


def _move(line: Any, coordinates: np.ndarray) -> None:
    if coordinates.shape[1] == 3:
        line.set_data_3d(*coordinates.T)
    else:
        line.set_data(*coordinates.T)


def _write_gif(target: Path, frames: list[np.ndarray], fps: float) -> Path:
    import imageio.v3 as iio

    data = iio.imwrite("<bytes>", np.stack(frames), extension=".gif", duration=1000 / fps, loop=0)
    return replace_file_atomically(target, lambda handle: handle.write(data))


def _even_sized(frame: np.ndarray) -> np.ndarray:
    """``frame`` with a white row and/or column added where its height or width is odd."""
    rows, columns = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, rows), (0, columns), (0, 0)), constant_values=255)


def _write_mp4(target: Path, frames: list[np.ndarray], fps: float) -> Path:
    import imageio.v2 as imageio

    with tempfile.TemporaryDirectory(prefix="napari-cebra-movie-") as folder:
        temporary = Path(folder) / "movie.mp4"
        even = [_even_sized(frame) for frame in frames]  # H.264 (yuv420p) needs even sizes
        imageio.mimwrite(temporary, even, format="FFMPEG", fps=fps, macro_block_size=1, quality=8)
        with open(temporary, "rb") as source:
            return replace_file_atomically(
                target, lambda handle: shutil.copyfileobj(source, handle)
            )
