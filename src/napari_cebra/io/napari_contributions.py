"""npe2 readers, writers and sample data: plain functions returning napari layer-data tuples.

No Qt and no napari import here: napari calls these through the manifest (``napari.yaml``). Every
layer we create carries ``metadata["napari_cebra_kind"]`` (``"neural_matrix"``, ``"movie"``,
``"roi_labels"``, ``"behaviour"``, ``"keypoints"``, ``"mean_image"``) and, where useful,
``metadata["columns"]`` naming the variables, so the widgets can offer the right layers.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.deeplabcut import is_deeplabcut_file, read_deeplabcut
from napari_cebra.io.matrices import MATRIX_SUFFIXES, load_matrix
from napari_cebra.io.npy import read_npy_header
from napari_cebra.io.suite2p import find_plane_folder, read_suite2p
from napari_cebra.io.synthetic import calcium_imaging_session, place_cell_recording

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]

BEHAVIOUR_COLUMNS = ["position", "right", "left"]
KIND_KEY = "napari_cebra_kind"


def _metadata(kind: str, **extra: Any) -> dict[str, Any]:
    return {KIND_KEY: kind, **extra}


RASTER_ASPECT = 3.0
"""Width : height of a time × neurons raster as first drawn (time left to right)."""


def raster_display(
    n_frames: int, n_rows: int, height: float | None = None, top: float = 0.0
) -> dict[str, Any]:
    """Layer keywords that draw a ``(T, n)`` matrix as a raster a person can read.

    The data stay time × neurons (what the widgets read); an affine transform draws time from
    left to right (one frame per unit) and the ``n_rows`` columns from top to bottom, together
    ``height`` units tall (default ``T / RASTER_ASPECT``) starting at ``top``: 10,000 frames of
    120 neurons appear as a 3:1 strip instead of a one-pixel-wide column. Hovering still
    reports ``[frame, neuron]``.
    """
    height = n_frames / RASTER_ASPECT if height is None else height
    row_height = max(height / max(n_rows, 1), 1e-3)
    return {"affine": [[0.0, row_height, top], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}


def strip_under_raster(n_frames: int, n_columns: int) -> dict[str, Any]:
    """Layer keywords that draw a ``(T, k)`` behaviour table as a thin strip under the raster
    of a ``T``-frame recording (:func:`raster_display`), on the same time axis."""
    raster_height = n_frames / RASTER_ASPECT
    return raster_display(
        n_frames, n_columns, height=0.15 * raster_height, top=1.03 * raster_height
    )


def matrix_contrast(matrix: np.ndarray) -> list[float]:
    """Contrast limits of a raster: 1st to 99.5th percentile of the finite values (of about a
    million evenly spaced ones: sampled first, so a large matrix is never copied whole)."""
    values = np.asarray(matrix).reshape(-1)
    sample = values[:: max(1, values.size // 1_000_000)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return [0.0, 1.0]
    low, high = np.percentile(sample, [1.0, 99.5])
    return [float(low), float(max(high, low + 1e-6))]


def _single_path(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


# --- readers ------------------------------------------------------------------------------------


def get_table_reader(path: str | os.PathLike | Sequence[str]) -> ReaderFunction | None:
    """npe2 reader for ``.npy``/``.npz``/``.csv``/``.h5``: DeepLabCut keypoints or a neural matrix.

    Declines (returns ``None``) for several files, other suffixes, and files that are readable but
    hold no 2-D matrix (e.g. a 3-D ``.npy`` movie, left to napari's own reader). A file that cannot
    even be inspected is accepted, so that reading it shows the error.
    """
    single = _single_path(path)
    if single is None or single.suffix.lower() not in MATRIX_SUFFIXES or not single.is_file():
        return None
    if single.suffix.lower() in (".csv", ".h5", ".hdf5") and is_deeplabcut_file(single):
        return read_keypoints_layers
    return read_matrix_layers if _may_hold_a_matrix(single) else None


def _may_hold_a_matrix(path: Path) -> bool:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as handle:
                shape, _ = read_npy_header(handle, path.name)
            return len(shape) == 2
        if suffix == ".npz":  # read only the member headers, not the arrays
            with zipfile.ZipFile(path) as archive:
                return any(_member_is_matrix(archive, m) for m in archive.namelist())
        if suffix in (".h5", ".hdf5"):
            return _h5_has_matrix(path)
    except (OSError, ValueError, zipfile.BadZipFile):
        return True  # broken file of a known kind: reading it raises a clear error
    return True  # csv: any table of numbers


def _h5_has_matrix(path: Path) -> bool:
    import h5py

    def is_matrix(_: str, node: Any) -> bool | None:
        return True if isinstance(node, h5py.Dataset) and node.ndim == 2 else None

    with h5py.File(path, "r") as handle:
        return bool(handle.visititems(is_matrix))  # visiting stops at the first non-None


def _member_is_matrix(archive: zipfile.ZipFile, member: str) -> bool:
    if not member.endswith(".npy"):
        return False
    with archive.open(member) as handle:
        return len(read_npy_header(handle, member)[0]) == 2


def read_matrix_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """A neural matrix file as one Image layer ``(T, n)`` named after the file."""
    single = _single_path(path)
    matrix = load_matrix(single)
    meta = {
        "name": single.stem,
        "metadata": _metadata("neural_matrix", source=str(single), axes=["time", "neurons"]),
        "colormap": "magma",
        "contrast_limits": matrix_contrast(matrix),
        **raster_display(*matrix.shape),
    }
    return [(matrix, meta, "image")]


def read_keypoints_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """DeepLabCut keypoints as a Points layer ``(t, y, x)`` with ``bodypart``/``likelihood``."""
    single = _single_path(path)
    keypoints = read_deeplabcut(single)
    data, features = keypoints.points()
    _, columns = keypoints.behaviour()
    meta = {
        "name": single.stem,
        "features": features,
        "face_color": "bodypart",
        "size": 6,
        "metadata": _metadata(
            "keypoints",
            source=str(single),
            bodyparts=list(keypoints.bodyparts),
            scorer=keypoints.scorer,
            n_frames=keypoints.n_frames,
            columns=columns,
        ),
    }
    return [(data, meta, "points")]


def get_suite2p_reader(path: str | os.PathLike | Sequence[str]) -> ReaderFunction | None:
    """npe2 reader for folders: accepts a suite2p ``plane0`` (or its parent), declines others."""
    single = _single_path(path)
    if single is None or not single.is_dir() or find_plane_folder(single) is None:
        return None
    return read_suite2p_layers


def read_suite2p_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """ROI Labels, the accepted cells' traces as an Image ``(T, n)`` and the mean image if any."""
    single = _single_path(path)
    recording = read_suite2p(single)
    source = str(recording.folder)
    layers: list[LayerData] = []
    if recording.mean_image is not None:
        layers.append(
            (
                recording.mean_image,
                {
                    "name": "suite2p mean image",
                    "colormap": "gray",
                    "metadata": _metadata("mean_image", source=source),
                },
                "image",
            )
        )
    layers.append(
        (
            recording.rois,
            {
                "name": "suite2p ROIs",
                "opacity": 0.5,
                "metadata": _metadata(
                    "roi_labels", source=source, roi_indices=recording.roi_indices.tolist()
                ),
            },
            "labels",
        )
    )
    layers.append(
        (
            recording.traces,
            {
                "name": "suite2p traces",
                "colormap": "magma",
                "visible": False,
                "contrast_limits": matrix_contrast(recording.traces),
                **raster_display(*recording.traces.shape),
                "metadata": _metadata(
                    "neural_matrix",
                    source=source,
                    axes=["time", "neurons"],
                    frame_rate=recording.frame_rate,
                ),
            },
            "image",
        )
    )
    return layers


# --- writers ------------------------------------------------------------------------------------


def _with_suffix(path: str, suffix: str) -> Path:
    path = Path(path)
    return path if path.suffix.lower() == suffix else path.with_name(path.name + suffix)


def write_points_csv(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a Points layer (an embedding) as CSV: coordinates ``dim_0…`` then every feature."""
    import pandas as pd

    coordinates = np.asarray(data)
    if coordinates.ndim != 2:
        raise ValueError(f"Points data must be 2-D (points, dims), got shape {coordinates.shape}.")
    table = pd.DataFrame(coordinates, columns=[f"dim_{i}" for i in range(coordinates.shape[1])])
    features = meta.get("features")
    if features is not None and len(features):
        features = pd.DataFrame(features).reset_index(drop=True)
        if len(features) != len(table):
            raise ValueError(
                f"Points features have {len(features)} rows but the layer has {len(table)} points."
            )
        clashes = set(features.columns) & set(table.columns)
        table = pd.concat(
            [table, features.rename(columns={c: f"feature_{c}" for c in clashes})], axis=1
        )
    target = _with_suffix(path, ".csv")
    table.to_csv(target, index=False)
    return [str(target)]


def write_points_npy(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write the coordinates of a Points layer (an embedding) as a float32 ``.npy`` array."""
    target = _with_suffix(path, ".npy")
    np.save(target, np.asarray(data, dtype=np.float32))
    return [str(target)]


# --- sample data --------------------------------------------------------------------------------


def _behaviour_layer(behaviour: np.ndarray) -> LayerData:
    """Behaviour ``(T, 3)`` as a thin strip under the neural raster, on the same time axis."""
    return (
        behaviour,
        {
            "name": "behaviour",
            "visible": False,
            **strip_under_raster(*behaviour.shape),
            "colormap": "viridis",
            "contrast_limits": [0.0, float(max(behaviour.max(), 1.0))],
            "metadata": _metadata(
                "behaviour", columns=BEHAVIOUR_COLUMNS, discrete_columns=["right", "left"]
            ),
        },
        "image",
    )


def _behaviour_track_layer(behaviour: np.ndarray, frame_shape: tuple[int, int]) -> LayerData:
    """Behaviour ``(T, 3)`` as the animal's place on the track, drawn just below the movie.

    A Points layer with one point per frame at ``(t, y, x)``: ``y`` a few pixels below the field
    of view, ``x`` the position along the track scaled to the movie's width, so the dot runs
    along under the movie while it plays. The per-frame values are its features table
    (``position``, ``right``, ``left``), which the widgets read as behaviour. Unlike a
    time × variables image it adds nothing to the movie's spatial extent worth speaking of.
    """
    n_frames = len(behaviour)
    height, width = frame_shape
    position = behaviour[:, 0]
    span = float(position.max() - position.min()) or 1.0
    x = (position - position.min()) / span * (width - 1)
    data = np.column_stack([np.arange(n_frames), np.full(n_frames, height + 3.0), x])
    features = {
        "position": position.astype(np.float32),
        "right": behaviour[:, 1].astype(np.int64),
        "left": behaviour[:, 2].astype(np.int64),
    }
    meta = {
        "name": "behaviour",
        "features": features,
        "face_color": "#ffb000",
        "border_width": 0,
        "size": 5,
        "out_of_slice_display": False,
        "metadata": _metadata("behaviour", columns=BEHAVIOUR_COLUMNS),
    }
    return (data.astype(np.float32), meta, "points")


def calcium_imaging_sample() -> list[LayerData]:
    """Synthetic calcium-imaging session: movie, ROI labels and the behaviour as the animal's
    place on the track under the movie (a Points layer whose features are the behaviour).

    The movie is rendered lazily, a block of frames when napari or a worker reads it, so the
    sample opens without rendering 3,000 frames in the GUI thread (2 s) first.
    """
    session = calcium_imaging_session(lazy=True)
    low, high = np.percentile(np.asarray(session.movie[:64]), [0.5, 99.9])
    movie_meta = {
        "name": "calcium movie",
        "colormap": "gray",
        "contrast_limits": [float(low), float(high)],
        "metadata": _metadata("movie", frame_rate=session.frame_rate),
    }
    rois_meta = {"name": "ROIs", "opacity": 0.4, "metadata": _metadata("roi_labels")}
    return [
        (session.movie, movie_meta, "image"),
        (session.rois, rois_meta, "labels"),
        _behaviour_track_layer(session.behaviour, session.movie.shape[1:]),
    ]


def place_cell_sample() -> list[LayerData]:
    """Synthetic hippocampal recording: ``neural`` ``(T, 120)`` and ``behaviour`` ``(T, 3)``."""
    recording = place_cell_recording()
    neural_meta = {
        "name": "neural",
        "colormap": "magma",
        "contrast_limits": matrix_contrast(recording.neural),
        **raster_display(*recording.neural.shape),
        "metadata": _metadata(
            "neural_matrix", axes=["time", "neurons"], bin_size=recording.bin_size
        ),
    }
    return [(recording.neural, neural_meta, "image"), _behaviour_layer(recording.behaviour)]
