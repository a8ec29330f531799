"""From napari layers to the arrays CEBRA trains on (no Qt here).

Neural data is a 2-D Image layer (time × neurons) or a movie Image layer (time × y × x) with a
Labels layer of ROIs. Behaviour is a table with one row per frame, built from a 2-D Image layer
(time × variables), a Points or Tracks layer with a time axis (per-frame coordinates and numeric
features become variables), or the ``features`` table of any other layer (one row per frame).
Integer columns of the table are discrete labels; float columns are continuous variables.

Neural data and behaviour are paired by frame index (same length, or the common prefix) or by
time (:func:`pair_by_time`): a layer may carry ``metadata["timestamps"]`` (seconds, one per frame
or table row) and a behaviour layer ``metadata["circular_columns"]`` (columns holding angles in
radians).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from napari_cebra.io.alignment import (
    AlignedBehaviour,
    align_behaviour,
    behaviour_at,
    check_timestamps,
)

# numeric features columns that identify a point rather than measure something
_IDENTITY_COLUMNS = ("id", "track_id")
_AXIS_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
DISCRETE_SUFFIX = " (discrete)"  # marks the discrete column in the display list of labels
TIMESTAMPS_KEY = "timestamps"  # layer.metadata: seconds, one per frame (or behaviour table row)
CIRCULAR_KEY = "circular_columns"  # layer.metadata: behaviour columns that are angles in radians
FRAME_INDEX = "frame"  # index name of a paired behaviour table: the neural frame of each row


@dataclass(frozen=True)
class NeuralSource:
    """What the neural layer choice amounts to.

    Attributes
    ----------
    kind : str
        ``"matrix"`` (the layer is time × neurons) or ``"movie"`` (traces must be extracted).
    n_frames : int
        Number of time points.
    name : str
        Name of the neural layer.
    """

    kind: str
    n_frames: int
    name: str


def layer_kind(layer: Any) -> str:
    """Lower-case napari layer type name (``"image"``, ``"labels"``, ``"points"``, ...).

    ``__class__`` (not ``type()``) sees through the proxy napari hands to plugin widgets.
    """
    return layer.__class__.__name__.lower()


def neural_source(layer: Any, rois: Any | None = None) -> NeuralSource:
    """Check that ``layer`` (and ``rois``) can give a time × neurons matrix.

    Parameters
    ----------
    layer : napari.layers.Image
        A 2-D image (time × neurons) or a 3-D movie (time × y × x).
    rois : napari.layers.Labels, optional
        ROI labels ``(y, x)``; required for a movie, ignored for a matrix.

    Raises
    ------
    ValueError
        If the layer is not an Image, is RGB, is not 2-D or 3-D, or is a movie without matching
        ROI labels.
    """
    if layer is None:
        raise ValueError("Choose a neural layer: a time × neurons image or a movie with ROIs.")
    if layer_kind(layer) != "image":
        raise ValueError(
            f"Neural layer {layer.name!r} is a {layer_kind(layer)} layer; it must be an Image "
            "layer (time × neurons, or a time × y × x movie)."
        )
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False):
        raise ValueError(f"Neural layer {layer.name!r} is an RGB image of shape {shape}.")
    if len(shape) == 2:
        if min(shape) < 2:
            raise ValueError(
                f"Neural layer {layer.name!r} of shape {shape} needs at least 2 frames and 2 "
                "neurons."
            )
        return NeuralSource("matrix", int(shape[0]), layer.name)
    if len(shape) != 3:
        raise ValueError(
            f"Neural layer {layer.name!r} has shape {shape}; expected a 2-D time × neurons matrix "
            "or a 3-D time × y × x movie."
        )
    if rois is None:
        raise ValueError(
            f"Neural layer {layer.name!r} is a movie of shape {shape}: choose the Labels layer of "
            "its ROIs so that one fluorescence trace per ROI can be extracted."
        )
    rois_shape = tuple(rois.data.shape)
    if rois_shape != shape[1:]:
        raise ValueError(
            f"ROI layer {rois.name!r} has shape {rois_shape} but the frames of movie "
            f"{layer.name!r} have shape {shape[1:]} (movie shape {shape})."
        )
    return NeuralSource("movie", int(shape[0]), layer.name)


def neural_matrix(layer: Any) -> np.ndarray:
    """The ``(T, n)`` float32 matrix of a 2-D neural Image layer."""
    source = neural_source(layer)
    if source.kind != "matrix":  # pragma: no cover - neural_source raised already
        raise ValueError(f"Neural layer {layer.name!r} is not a time × neurons matrix.")
    matrix = np.asarray(layer.data, dtype=np.float32)
    if not np.isfinite(matrix).all():
        bad = np.argwhere(~np.isfinite(matrix))[0]
        raise ValueError(
            f"Neural layer {layer.name!r} of shape {matrix.shape} holds a non-finite value "
            f"{matrix[tuple(bad)]} at frame {bad[0]}, neuron {bad[1]}."
        )
    return matrix


def behaviour_table(layer: Any) -> pd.DataFrame:
    """One row per frame, one column per behaviour variable, from any supported layer.

    Parameters
    ----------
    layer : napari layer
        A 2-D Image (time × variables; column names from ``layer.metadata["columns"]`` when
        given, integral columns named in ``layer.metadata["discrete_columns"]`` become integer
        labels), a Points layer whose first coordinate is time (only the columns named in
        ``layer.metadata["columns"]`` when given), a Tracks layer, or any layer with
        a ``features`` table holding one row per frame.

    Returns
    -------
    pandas.DataFrame
        Index = frame (0 … T−1); float columns are continuous variables, integer columns discrete.

    Raises
    ------
    ValueError
        If the layer holds no usable variable (1-D data, RGB, no time axis, no numeric feature).
    """
    kind = layer_kind(layer)
    if kind == "image":
        return _image_table(layer)
    if kind == "points":
        table = _timed_points_table(layer, np.asarray(layer.data), None)
        named = [c for c in layer.metadata.get("columns", []) if c in table.columns]
        return table[named] if named else table
    if kind == "tracks":
        data = np.asarray(layer.data)
        return _timed_points_table(layer, data[:, 1:], data[:, 0].astype(np.int64))
    features = getattr(layer, "features", None)
    if features is None or len(features) == 0:
        raise ValueError(
            f"Behaviour layer {layer.name!r} ({kind}) has no time axis and no features table."
        )
    table = _numeric_columns(pd.DataFrame(features).reset_index(drop=True))
    if table.shape[1] == 0:
        raise ValueError(f"The features of behaviour layer {layer.name!r} have no numeric column.")
    return table


def continuous_columns(table: pd.DataFrame) -> list[str]:
    """Names of the columns usable as continuous labels (every numeric column)."""
    return [str(c) for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]


def discrete_columns(table: pd.DataFrame) -> list[str]:
    """Names of the integer columns with non-negative values (usable as discrete labels)."""
    return [
        str(c)
        for c in table.columns
        if pd.api.types.is_integer_dtype(table[c]) and (table[c].min() >= 0)
    ]


def common_length(
    neural_frames: int,
    behaviour_frames: int | None,
    *,
    neural_name: str,
    behaviour_name: str,
    allow_prefix: bool,
) -> int:
    """Number of frames to train on, checking that neural data and behaviour agree.

    Raises
    ------
    ValueError
        If the lengths differ and ``allow_prefix`` is False; the message names both layers and
        lengths and says how to train on the common prefix.
    """
    if behaviour_frames is None or behaviour_frames == neural_frames:
        return neural_frames
    if not allow_prefix:
        raise ValueError(
            f"Neural layer {neural_name!r} has {neural_frames} frames but behaviour layer "
            f"{behaviour_name!r} has {behaviour_frames}. If they were recorded at different "
            "rates, align them by 'timestamps' or 'sampling rates'; to pair them frame by frame "
            f"anyway, tick 'use common prefix' (the first {min(neural_frames, behaviour_frames)} "
            "frames)."
        )
    return min(neural_frames, behaviour_frames)


@dataclass(frozen=True)
class FramePairing:
    """Which neural frames are used, and the behaviour at each of them.

    Attributes
    ----------
    n_frames : int
        Neural frames used.
    frames : np.ndarray or None
        ``(n_frames,)`` int64 indices of the neural frames used (increasing); ``None`` when they
        are the first ``n_frames``.
    table : pandas.DataFrame or None
        One behaviour row per frame used, indexed by neural frame (index name ``"frame"``).
    message : str
        For the user: frames left out and why (``""`` when every frame is used).
    """

    n_frames: int
    frames: np.ndarray | None
    table: pd.DataFrame | None
    message: str

    def head(self, n_frames: int) -> FramePairing:
        """Only the first ``n_frames`` of the frames used (e.g. those a model was trained on)."""
        return FramePairing(
            n_frames,
            None if self.frames is None else self.frames[:n_frames],
            None if self.table is None else self.table.iloc[:n_frames],
            self.message,
        )


def pair_by_index(
    n_neural: int,
    table: pd.DataFrame | None,
    *,
    neural_name: str,
    behaviour_name: str,
    allow_prefix: bool,
) -> FramePairing:
    """Frame ``i`` of the behaviour table goes with neural frame ``i`` (:func:`common_length`).

    Raises
    ------
    ValueError
        If the lengths differ and ``allow_prefix`` is False.
    """
    n_table = None if table is None else len(table)
    n_frames = common_length(
        n_neural,
        n_table,
        neural_name=neural_name,
        behaviour_name=behaviour_name,
        allow_prefix=allow_prefix,
    )
    if table is None:
        return FramePairing(n_frames, None, None, "")
    message = (
        ""
        if n_table == n_neural
        else f"Paired by frame index: the first {n_frames:,} frames (neural data has "
        f"{n_neural:,}, behaviour {n_table:,})."
    )
    paired = table.iloc[:n_frames].reset_index(drop=True).rename_axis(FRAME_INDEX)
    return FramePairing(n_frames, None, paired, message)


def pair_by_time(
    table: pd.DataFrame,
    neural_times: np.ndarray,
    behaviour_times: np.ndarray,
    label_columns: list[str],
    circular: list[str] | tuple[str, ...] = (),
) -> FramePairing:
    """Behaviour at the neural frames by time (:func:`napari_cebra.io.alignment.align_behaviour`).

    The label columns decide which neural frames are kept (without label columns, the span and
    gaps of the behaviour's clock do); the other columns are given at the kept frames too, NaN
    where they are not known. Integer columns are states (the previous sample holds), columns in
    ``circular`` angles in radians, the others are interpolated linearly.

    Parameters
    ----------
    table : pandas.DataFrame
        Behaviour table (:func:`behaviour_table`), one row per behaviour sample.
    neural_times, behaviour_times : np.ndarray
        Timestamps (s) of the neural frames and of the table's rows, on one clock.
    label_columns : list of str
        Columns trained on.
    circular : sequence of str
        Columns holding angles in radians.

    Raises
    ------
    ValueError
        For a circular column that is not in the table, a label column without any valid value,
        and every problem :func:`~napari_cebra.io.alignment.align_behaviour` finds.
    """
    unknown = [c for c in circular if c not in table.columns]
    if unknown:
        raise ValueError(
            f"metadata['{CIRCULAR_KEY}'] names {unknown}, which are not behaviour columns "
            f"({[str(c) for c in table.columns]})."
        )
    kinds = {c: _column_kind(table, c, circular) for c in table.columns}
    for column in label_columns:
        if not np.isfinite(table[column].to_numpy(dtype=np.float64)).any():
            raise ValueError(f"Behaviour column {column!r} has no valid (finite) value.")
    aligned = align_behaviour(
        neural_times,
        table[list(label_columns)].to_numpy(dtype=np.float64),
        behaviour_times,
        [kinds[c] for c in label_columns],
    )
    kept_times = neural_times[aligned.frames]
    others = [c for c in table.columns if c not in label_columns]
    shown = behaviour_at(
        kept_times,
        table[others].to_numpy(dtype=np.float64),
        behaviour_times,
        [kinds[c] for c in others],
    )
    values = dict(zip(label_columns, aligned.values.T, strict=True))
    values.update(zip(others, shown.T, strict=True))
    paired = pd.DataFrame(
        {c: _as_column_type(values[c], table[c]) for c in table.columns},
        index=pd.Index(aligned.frames, name=FRAME_INDEX),
    )
    return FramePairing(len(aligned.frames), aligned.frames, paired, _kept_text(aligned))


def layer_timestamps(layer: Any, n_samples: int) -> np.ndarray | None:
    """The checked ``metadata["timestamps"]`` of ``layer`` (``None`` if it carries none).

    Raises
    ------
    ValueError
        Naming the layer, for timestamps that are not one finite, increasing time per sample.
    """
    metadata = getattr(layer, "metadata", None)
    if not isinstance(metadata, dict) or metadata.get(TIMESTAMPS_KEY) is None:
        return None
    return check_timestamps(
        metadata[TIMESTAMPS_KEY], n_samples, f"metadata['{TIMESTAMPS_KEY}'] of layer {layer.name!r}"
    )


def circular_columns(layer: Any) -> list[str]:
    """Behaviour columns that ``layer`` marks as angles in radians
    (``metadata["circular_columns"]``)."""
    metadata = getattr(layer, "metadata", None)
    return list(metadata.get(CIRCULAR_KEY, [])) if isinstance(metadata, dict) else []


def _column_kind(table: pd.DataFrame, column: str, circular: list[str] | tuple[str, ...]) -> str:
    if pd.api.types.is_integer_dtype(table[column]):
        return "discrete"
    return "circular" if column in circular else "continuous"


def _as_column_type(values: np.ndarray, original: pd.Series) -> np.ndarray:
    """Integer columns stay integer where every value is known; the others become float32."""
    if pd.api.types.is_integer_dtype(original) and np.isfinite(values).all():
        return values.astype(np.int64)
    return values.astype(np.float32)


def _kept_text(aligned: AlignedBehaviour) -> str:
    n_kept = len(aligned.frames)
    if not aligned.n_excluded:
        return f"Aligned by time: all {n_kept:,} neural frames have behaviour."
    return f"Aligned by time: {n_kept:,} neural frames kept. {aligned.message}"


def label_arrays(
    table: pd.DataFrame | None,
    continuous: list[str],
    discrete: str | None,
    n_frames: int,
) -> list[np.ndarray]:
    """The label arrays passed to ``CEBRA.fit`` after ``X``: continuous float32, discrete int64.

    Parameters
    ----------
    table : pandas.DataFrame or None
        Behaviour table (:func:`behaviour_table`).
    continuous : list of str
        Columns used as the continuous label (stacked into ``(n_frames, k)``).
    discrete : str or None
        Column used as the discrete label.
    n_frames : int
        Frames kept (a prefix of the table).
    """
    if table is None:
        if continuous or discrete:
            raise ValueError("Behaviour variables were chosen but no behaviour layer is selected.")
        return []
    arrays: list[np.ndarray] = []
    if continuous:
        values = table[list(continuous)].to_numpy(dtype=np.float32)[:n_frames]
        if not np.isfinite(values).all():
            raise ValueError(
                f"Behaviour columns {continuous} hold non-finite values in the first {n_frames} "
                "frames."
            )
        arrays.append(values)
    if discrete:
        arrays.append(table[discrete].to_numpy(dtype=np.int64)[:n_frames])
    return arrays


def label_description(continuous: list[str], discrete: str | None) -> dict[str, Any]:
    """How the label columns of a model are recorded in its ``trained_on`` description.

    Parameters
    ----------
    continuous : list of str
        Columns of the continuous label, in order.
    discrete : str or None
        Column of the discrete label.

    Returns
    -------
    dict
        ``"continuous"`` (the column names), ``"discrete"`` (the name or ``None``) and
        ``"labels"`` (all of them for display, the discrete one marked " (discrete)").
    """
    display = list(continuous) + ([f"{discrete}{DISCRETE_SUFFIX}"] if discrete else [])
    return {"labels": display, "continuous": list(continuous), "discrete": discrete or None}


def _image_table(layer: Any) -> pd.DataFrame:
    shape = tuple(layer.data.shape)
    if getattr(layer, "rgb", False) or len(shape) != 2:
        raise ValueError(
            f"Behaviour image {layer.name!r} has shape {shape}; expected a 2-D time × variables "
            "matrix."
        )
    values = np.asarray(layer.data)
    names = list(layer.metadata.get("columns", [])) or [
        f"{layer.name}[{j}]" for j in range(shape[1])
    ]
    if len(names) != shape[1]:
        raise ValueError(
            f"Behaviour image {layer.name!r} has {shape[1]} columns but metadata['columns'] "
            f"names {len(names)}: {names}."
        )
    if np.issubdtype(values.dtype, np.integer):
        return pd.DataFrame(values.astype(np.int64), columns=names)
    table = pd.DataFrame(values.astype(np.float32), columns=names)
    for name in layer.metadata.get("discrete_columns", []):
        column = table[name].to_numpy()
        if np.array_equal(column, np.round(column)) and column.min() >= 0:
            table[name] = column.astype(np.int64)
    return table


def _numeric_columns(features: pd.DataFrame) -> pd.DataFrame:
    keep = [
        c
        for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]
    return features[keep]


def _identity_labels(features: pd.DataFrame, n_points: int) -> pd.Series:
    """Which keypoint/animal each point is: its non-numeric feature values joined ("mouse1 nose").

    Columns with a single value (e.g. the DeepLabCut scorer) are left out; without any varying
    non-numeric column every point gets the identity ``""``.
    """
    if len(features) != n_points:
        return pd.Series(np.full(n_points, ""))
    varying = [
        c
        for c in features.columns
        if (
            not pd.api.types.is_numeric_dtype(features[c])
            or isinstance(features[c].dtype, pd.CategoricalDtype)
        )
        and features[c].nunique() > 1
    ]
    if not varying:
        return pd.Series(np.full(n_points, ""))
    return features[varying].astype(str).agg(" ".join, axis=1)


def _timed_points_table(layer: Any, data: np.ndarray, track_ids: np.ndarray | None) -> pd.DataFrame:
    """Per-frame table from points whose first coordinate is time.

    Each identity (track id, or the non-numeric features such as a DeepLabCut bodypart)
    contributes its coordinates and its numeric features as columns ``"<identity> <name>"``.
    Frames where an identity has no point are filled by linear interpolation (nearest value at the
    ends; nearest for integer columns).
    """
    if data.ndim != 2 or data.shape[1] < 2 or len(data) == 0:
        raise ValueError(
            f"Behaviour layer {layer.name!r} has data of shape {data.shape}; it needs a time axis "
            "followed by at least one coordinate."
        )
    frames = np.rint(data[:, 0]).astype(np.int64)
    if frames.min() < 0:
        raise ValueError(
            f"Behaviour layer {layer.name!r} has a point at negative time {frames.min()}."
        )
    features = pd.DataFrame(getattr(layer, "features", pd.DataFrame())).reset_index(drop=True)
    coords = data[:, 1:]
    axes = _AXIS_NAMES.get(coords.shape[1], tuple(f"d{j}" for j in range(coords.shape[1])))
    values = pd.DataFrame(coords.astype(np.float32), columns=list(axes))
    numeric = _numeric_columns(features) if len(features) == len(data) else pd.DataFrame()
    numeric = numeric.drop(columns=[c for c in _IDENTITY_COLUMNS if c in numeric.columns])
    values = pd.concat([values, numeric.reset_index(drop=True)], axis=1)

    if track_ids is not None:
        identity = pd.Series(track_ids).map(lambda i: f"track {i}")
    else:
        identity = _identity_labels(features, len(data))
    n_frames = int(frames.max()) + 1
    columns: dict[str, np.ndarray] = {}
    for name in pd.unique(identity):
        mask = (identity == name).to_numpy()
        if np.unique(frames[mask]).size != mask.sum():
            where = f" for {name!r}" if name else ""
            raise ValueError(
                f"Behaviour layer {layer.name!r} has several points in one frame{where}; "
                "add a features column (e.g. 'bodypart') that tells them apart."
            )
        for column_name in values.columns:
            series = values[column_name][mask]
            full_name = f"{name} {column_name}".strip()
            columns[full_name] = _fill_frames(frames[mask], series.to_numpy(), n_frames)
    return pd.DataFrame(columns)


def _fill_frames(frames: np.ndarray, values: np.ndarray, n_frames: int) -> np.ndarray:
    """Values at every frame 0 … n_frames−1 from values at some frames."""
    order = np.argsort(frames)
    frames, values = frames[order], values[order]
    every = np.arange(n_frames)
    if np.issubdtype(values.dtype, np.integer):
        nearest = np.clip(np.searchsorted(frames, every, side="right") - 1, 0, len(frames) - 1)
        return values[nearest].astype(np.int64)
    return np.interp(every, frames, values.astype(np.float64)).astype(np.float32)


def embedding_features(
    table: pd.DataFrame | None, n_frames: int, n_train: int | None = None
) -> pd.DataFrame:
    """Point features of an embedding of ``n_frames`` frames.

    Parameters
    ----------
    table : pandas.DataFrame or None
        Behaviour table; every column becomes a feature (rows past the end of a shorter table
        are missing values).
    n_frames : int
        Frames of the embedding.
    n_train : int, optional
        Frames of the training part: adds a ``split`` feature (``train``/``validation``).

    Returns
    -------
    pandas.DataFrame
        ``frame`` (the neural frame of each point: the table's index when it is a paired table
        holding every point, index name ``"frame"``, else 0 … n_frames − 1), the behaviour
        columns and, with ``n_train``, ``split``.
    """
    frames = np.arange(n_frames)
    if table is not None and table.index.name == FRAME_INDEX and len(table) >= n_frames:
        frames = table.index.to_numpy(dtype=np.int64)[:n_frames]
    features = pd.DataFrame({"frame": frames})
    if table is not None:
        features = pd.concat([features, table.iloc[:n_frames].reset_index(drop=True)], axis=1)
    if n_train is not None:
        split = np.where(np.arange(n_frames) < n_train, "train", "validation")
        features["split"] = pd.Categorical(split, categories=["train", "validation"])
    return features
