"""npe2 readers, writers and sample data: plain functions returning napari layer-data tuples.

No Qt and no napari import here: napari calls these through the manifest (``napari.yaml``). Every
layer we create carries ``metadata["napari_cebra_kind"]`` (``"neural_matrix"``, ``"movie"``,
``"roi_labels"``, ``"behaviour"``, ``"keypoints"``, ``"mean_image"``, ``"correlation_image"``)
and, where useful, ``metadata["columns"]`` naming the variables, so the widgets can offer the
right layers. Layers read from files that time their samples (NWB, CaImAn with a frame rate) also
carry ``metadata["timestamps"]``: a 1-D float64 array, seconds of each frame/row.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.core.files import replace_file_atomically
from napari_cebra.io.caiman import is_caiman_file, read_caiman
from napari_cebra.io.deeplabcut import is_deeplabcut_file, read_deeplabcut
from napari_cebra.io.matrices import MATRIX_SUFFIXES, load_matrix
from napari_cebra.io.movies import sampled_contrast_limits
from napari_cebra.io.npy import read_npy_header
from napari_cebra.io.nwb import NwbArray, NwbTrials, read_nwb
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
    n_frames: int,
    n_rows: int,
    height: float | None = None,
    top: float = 0.0,
    width: float | None = None,
) -> dict[str, Any]:
    """Layer keywords that draw a ``(T, n)`` matrix as a raster a person can read.

    The data stay time × neurons (what the widgets read); an affine transform draws time from
    left to right over ``width`` units (default one per frame) and the ``n_rows`` columns from
    top to bottom, together ``height`` units tall (default ``width / RASTER_ASPECT``) starting at
    ``top``: 10,000 frames of 120 neurons appear as a 3:1 strip instead of a one-pixel-wide
    column. Hovering still reports ``[frame, neuron]``.
    """
    width = float(n_frames) if width is None else float(width)
    height = width / RASTER_ASPECT if height is None else height
    row_height = max(height / max(n_rows, 1), 1e-3)
    time_step = width / max(n_frames, 1)
    return {"affine": [[0.0, row_height, top], [time_step, 0.0, 0.0], [0.0, 0.0, 1.0]]}


def strip_under_raster(
    n_frames: int, n_columns: int, under: dict[str, float] | None = None
) -> dict[str, Any]:
    """Layer keywords that draw a ``(T, k)`` behaviour table as a thin strip under the raster
    of a ``T``-frame recording (:func:`raster_display`, placed by ``under`` when given: the
    keywords of :func:`under_image`), on the same time axis."""
    width = float(n_frames) if under is None else under["width"]
    top = 0.0 if under is None else under["top"]
    raster_height = width / RASTER_ASPECT
    return raster_display(
        n_frames,
        n_columns,
        height=0.15 * raster_height,
        top=top + 1.03 * raster_height,
        width=width,
    )


def under_image(image_shape: Sequence[int] | None) -> dict[str, float] | None:
    """:func:`raster_display` keywords that put a recording's raster under its image (the
    movie, the ROIs): as wide as the image, so that the image, not a long time axis, fills the
    window when napari fits the view to every layer (hidden ones included). ``None`` (one unit
    per frame) without an image."""
    if image_shape is None:
        return None
    height, width = (float(v) for v in tuple(image_shape)[-2:])
    return {"width": width, "top": 1.05 * height}


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


def single_path(path: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
    """The one path napari asks a reader about (``None`` when it passes several)."""
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(path)


# --- readers ------------------------------------------------------------------------------------


def get_table_reader(path: str | os.PathLike | Sequence[str]) -> ReaderFunction | None:
    """npe2 reader for ``.npy``/``.npz``/``.csv``/``.h5``: CaImAn results, DeepLabCut keypoints
    or a neural matrix.

    Declines (returns ``None``) for several files, other suffixes, and files that are readable but
    hold no 2-D matrix (e.g. a 3-D ``.npy`` movie, left to napari's own reader). A file that cannot
    even be inspected is accepted, so that reading it shows the error.
    """
    single = single_path(path)
    if single is None or single.suffix.lower() not in MATRIX_SUFFIXES or not single.is_file():
        return None
    if single.suffix.lower() in (".h5", ".hdf5") and is_caiman_file(single):
        return read_caiman_layers
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
    single = single_path(path)
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
    single = single_path(path)
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
    single = single_path(path)
    if single is None or not single.is_dir() or find_plane_folder(single) is None:
        return None
    return read_suite2p_layers


def read_suite2p_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """ROI Labels, the accepted cells' traces as an Image ``(T, n)`` and the mean image if any."""
    single = single_path(path)
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
                **raster_display(
                    *recording.traces.shape, **(under_image(recording.rois.shape) or {})
                ),
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


def read_caiman_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """CaImAn CNMF results: correlation image (if any), ROI Labels, ``C`` and ``F_dff`` traces.

    Traces are ``(T, n)`` Image layers drawn as rasters; label ``k`` is column ``k - 1``.
    ``F_dff`` (when the file holds it) starts hidden.
    """
    single = single_path(path)
    results = read_caiman(single)
    source = str(results.path)
    timing: dict[str, Any] = {}
    if results.frame_rate is not None:
        n_frames = len(results.traces)
        timing = {
            "frame_rate": results.frame_rate,
            "timestamps": np.arange(n_frames, dtype=np.float64) / results.frame_rate,
        }
    layers: list[LayerData] = []
    if results.correlation_image is not None:
        meta = {
            "name": "CaImAn correlation image",
            "colormap": "gray",
            "metadata": _metadata("correlation_image", source=source),
        }
        layers.append((results.correlation_image, meta, "image"))
    roi_meta = _metadata(
        "roi_labels", source=source, component_indices=results.component_indices.tolist()
    )
    layers.append(
        (results.rois, {"name": "CaImAn ROIs", "opacity": 0.5, "metadata": roi_meta}, "labels")
    )
    columns = [f"roi_{k + 1}" for k in range(results.traces.shape[1])]
    for name, traces, visible in (("C", results.traces, True), ("F_dff", results.dff, False)):
        if traces is None:
            continue
        meta = {
            "name": f"CaImAn {name}",
            "colormap": "magma",
            "visible": visible,
            "contrast_limits": matrix_contrast(traces),
            **raster_display(*traces.shape, **(under_image(results.rois.shape) or {})),
            "metadata": _metadata(
                "neural_matrix", source=source, axes=["time", "neurons"], columns=columns, **timing
            ),
        }
        layers.append((traces, meta, "image"))
    return layers


def get_nwb_reader(path: str | os.PathLike | Sequence[str]) -> ReaderFunction | None:
    """npe2 reader for one ``.nwb`` file (reading it tells when pynwb is missing)."""
    single = single_path(path)
    if single is None or single.suffix.lower() != ".nwb" or not single.is_file():
        return None
    return read_nwb_layers


def read_nwb_layers(path: str | os.PathLike | Sequence[str]) -> list[LayerData]:
    """Every series of an NWB file that napari-cebra reads, one layer each.

    One layer per series rather than a dialog: a reader cannot ask questions, layers cost little
    (the movie stays on disk, read frame by frame), and the widgets already let the user choose
    the neural and behaviour layers by their kind; unwanted layers are deleted in one click.
    Traces and spike counts are ``neural_matrix`` rasters, the movie a lazy ``movie``, ROI masks
    ``roi_labels``, behaviour series ``behaviour`` tables (time × columns, with
    ``circular_columns`` for angles), each with ``metadata["timestamps"]`` in seconds.

    The trials table becomes a ``behaviour`` layer of discrete columns (``trial`` number and one
    code per trial variable, 0 between trials; ``metadata["categories"]`` says what the codes
    mean) sampled at the timestamps of the file's first neural series (the movie's when there is
    none), so it has one row per neural frame. A file without either gets one row per trial start
    and stop, each row holding until the next.

    A series that cannot be read (e.g. empty data, timestamps that do not fit) is skipped with a
    warning naming the file and the series; the other layers open. A file pynwb cannot read at
    all, or one that links to other files, raises a ValueError naming the file (and the broken
    part when pynwb names it); so does a file with nothing readable.
    """
    single = single_path(path)
    data = read_nwb(single)
    skipped = "; ".join(f"{name}: {reason}" for name, reason in data.problems.items())
    arrays = list(data.series.values())
    if not arrays:
        raise ValueError(
            f"{single.name!r} holds no series napari-cebra reads"
            + (f" (skipped {skipped})." if skipped else ".")
        )
    if skipped:
        warnings.warn(f"{single.name!r}: skipped {skipped}", UserWarning, stacklevel=2)
    has_movie = any(array.kind == "movie" for array in arrays)
    images = [a.data.shape for a in arrays if a.kind in ("movie", "roi_masks")]
    place = under_image(images[0] if images else None)
    first_neural = next((a for a in arrays if a.kind in ("traces", "units")), None)
    reference = first_neural or next((a for a in arrays if a.kind == "movie"), None)
    layers = []
    for array in arrays:
        common = _metadata(
            _NWB_LAYER_KINDS[array.kind], source=str(data.path), series=array.name, unit=array.unit
        )
        if array.kind in ("traces", "units"):
            visible = array is first_neural and not has_movie
            layers.append(_nwb_neural_layer(array, common, visible, place))
        elif array.kind == "movie":
            layers.append(_nwb_movie_layer(array, common))
        elif array.kind == "roi_masks":
            layers.append(
                (
                    array.data,
                    {"name": _short(array.name), "opacity": 0.5, "metadata": common},
                    "labels",
                )
            )
        elif isinstance(array, NwbTrials):
            layers.append(_nwb_trials_layer(array, common, reference, place))
        else:
            layers.append(_nwb_behaviour_layer(array, common, array.data, array.timestamps, place))
    return layers


_NWB_LAYER_KINDS = {
    "traces": "neural_matrix",
    "units": "neural_matrix",
    "movie": "movie",
    "roi_masks": "roi_labels",
    "behaviour": "behaviour",
    "trials": "behaviour",
}


def _short(name: str) -> str:
    """Layer name of an NWB series: its path without the leading ``processing/``."""
    return name.removeprefix("processing/")


def _nwb_neural_layer(
    array: NwbArray, metadata: dict[str, Any], visible: bool, place: dict[str, float] | None
) -> LayerData:
    extra: dict[str, Any] = {"axes": ["time", "neurons"], "columns": list(array.columns)}
    if array.kind == "units":
        extra["bin_size"] = 1.0 / array.rate
    if array.roi_table is not None:
        extra.update(roi_table=array.roi_table, roi_labels=list(array.roi_labels))
    meta = {
        "name": _short(array.name),
        "colormap": "magma",
        "visible": visible,
        "contrast_limits": matrix_contrast(array.data),
        **raster_display(*array.data.shape, **(place or {})),
        "metadata": {**metadata, **extra, "timestamps": array.timestamps},
    }
    return (array.data, meta, "image")


def _nwb_movie_layer(array: NwbArray, metadata: dict[str, Any]) -> LayerData:
    movie = array.data
    extra = {"timestamps": array.timestamps}
    if array.rate is not None:
        extra["frame_rate"] = array.rate
    meta = {
        "name": _short(array.name),
        "colormap": "gray",
        "contrast_limits": sampled_contrast_limits(movie),
        "metadata": {**metadata, **extra},
    }
    return (movie, meta, "image")


def _nwb_behaviour_layer(
    array: NwbArray,
    metadata: dict[str, Any],
    values: np.ndarray,
    timestamps: np.ndarray,
    place: dict[str, float] | None,
) -> LayerData:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    meta = {
        "name": _short(array.name),
        "visible": False,
        "colormap": "viridis",
        "contrast_limits": [low, max(high, low + 1e-6)],
        **strip_under_raster(*values.shape, under=place),
        "metadata": {
            **metadata,
            "columns": list(array.columns),
            "discrete_columns": list(array.discrete_columns),
            "circular_columns": list(array.circular_columns),
            "timestamps": timestamps,
        },
    }
    return (values, meta, "image")


def _nwb_trials_layer(
    trials: NwbTrials,
    metadata: dict[str, Any],
    reference: NwbArray | None,
    place: dict[str, float] | None,
) -> LayerData:
    if reference is not None:
        times = reference.timestamps
        metadata = {**metadata, "sampled_at": reference.name}
    else:
        times = np.unique(np.concatenate([trials.timestamps, trials.stop_times]))
    metadata = {**metadata, "categories": {k: list(v) for k, v in trials.categories.items()}}
    return _nwb_behaviour_layer(trials, metadata, trials.labels_at(times), times, place)


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
    text = table.to_csv(index=False)
    written = replace_file_atomically(
        _with_suffix(path, ".csv"), lambda handle: handle.write(text.encode("utf-8"))
    )
    return [str(written)]


def write_points_npy(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write the coordinates of a Points layer (an embedding) as a float32 ``.npy`` array."""
    coordinates = np.asarray(data, dtype=np.float32)
    written = replace_file_atomically(
        _with_suffix(path, ".npy"), lambda handle: np.save(handle, coordinates)
    )
    return [str(written)]


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
