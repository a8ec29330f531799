"""npe2 reader of TIFF movie stacks that opens them lazily (napari's own reader loads them whole).

napari's built-in reader reads a ``.tif`` into memory with imageio, so a movie larger than the
machine's memory cannot be opened. This reader claims only 3-D single-channel stacks (2-D images,
RGB and hyperstacks are left to napari) and gives the Image layer a
:class:`~napari_cebra.io.movies.LazyMovie`: napari reads the frames it shows, trace extraction
reads chunks. No Qt and no napari import here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from napari_cebra.io.movies import open_movie, sampled_contrast_limits
from napari_cebra.io.napari_contributions import (
    KIND_KEY,
    LayerData,
    ReaderFunction,
    single_path,
)

TIFF_SUFFIXES = (".tif", ".tiff")


def get_movie_reader(
    path: str | os.PathLike | Sequence[str | os.PathLike],
) -> ReaderFunction | None:
    """npe2 ``get_reader``: :func:`read_movie` for one TIFF holding a 3-D stack, else ``None``."""
    path = single_path(path)
    if path is None or path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        return None
    try:
        open_movie(path).close()
    except ValueError:  # not a 3-D numeric stack: napari's own reader may still open it
        return None
    return read_movie


def read_movie(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[LayerData]:
    """One Image layer holding the lazily read movie of a TIFF stack.

    Returns
    -------
    list of (data, kwargs, "image")
        ``data`` a :class:`~napari_cebra.io.movies.LazyMovie`; ``kwargs`` the layer name (the
        file's stem), contrast limits from a few frames, and ``metadata`` marking it a movie.
    """
    path = single_path(path)
    movie = open_movie(path)
    kwargs: dict[str, Any] = {
        "name": path.stem,
        "contrast_limits": sampled_contrast_limits(movie),
        "metadata": {KIND_KEY: "movie", "path": str(path)},
    }
    return [(movie, kwargs, "image")]
