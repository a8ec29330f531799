"""DeepLabCut keypoints (``.csv`` and ``.h5``) as per-frame coordinates.

DeepLabCut stores a table with one row per video frame and a column header of three levels,
``scorer`` / ``bodyparts`` / ``coords`` (four with ``individuals`` for multi-animal projects), where
``coords`` is ``x``, ``y`` and ``likelihood``. The ``.h5`` file is the same table written by
``pandas.to_hdf`` (``table`` format, or ``fixed``). It is decoded here with h5py, never through
pandas and PyTables: PyTables unpickles attributes while reading, and a pickle can run code. The
``table`` format keeps its column labels only in such pickled attributes; they are decoded by
:func:`napari_cebra.io.safe_pickle.read_literal_pickle`, which accepts text, numbers, lists and tuples
and refuses anything that would import or call. Datasets are read through
:func:`napari_cebra.io.matrices.read_h5_dataset` (no external links, external storage or
unwritten data).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.matrices import h5_node, open_h5, read_h5_dataset
from napari_cebra.io.safe_pickle import read_literal_pickle

HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")
COORDS = ("x", "y", "likelihood")
MAX_LABEL_CHARACTERS = 10_000_000
"""Most characters all column labels of an ``.h5`` may hold together (each column's scorer,
individual, body part and coordinate counted); real files hold well under a million."""


@dataclass(frozen=True)
class Keypoints:
    """Tracked body parts of one recording.

    Attributes
    ----------
    x, y : np.ndarray
        ``(T, K)`` float32 image coordinates in pixels (NaN where not tracked).
    likelihood : np.ndarray
        ``(T, K)`` float32 tracking confidence (1 when the file has none, e.g. hand labels).
    bodyparts : tuple of str
        ``K`` names; ``"individual/bodypart"`` in multi-animal files.
    scorer : str
        The DeepLabCut model (or labeller) name.
    """

    x: np.ndarray
    y: np.ndarray
    likelihood: np.ndarray
    bodyparts: tuple[str, ...]
    scorer: str

    @property
    def n_frames(self) -> int:
        return int(self.x.shape[0])

    def behaviour(self) -> tuple[np.ndarray, list[str]]:
        """``(T, 2K)`` float32 ``[x, y]`` of every body part per frame, and the column names."""
        values = np.stack([self.x, self.y], axis=2).reshape(self.n_frames, -1)
        names = [f"{part}_{axis}" for part in self.bodyparts for axis in ("x", "y")]
        return values.astype(np.float32), names

    def points(self, min_likelihood: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Points with a time axis for napari.

        Returns
        -------
        data : np.ndarray
            ``(N, 3)`` float32 ``(frame, y, x)`` of every tracked body part with
            ``likelihood >= min_likelihood`` (untracked NaN positions are left out).
        features : dict
            ``bodypart`` (str) and ``likelihood`` (float32) per point.
        """
        keep = np.isfinite(self.x) & np.isfinite(self.y) & (self.likelihood >= min_likelihood)
        frame, part = np.nonzero(keep)
        data = np.stack([frame, self.y[keep], self.x[keep]], axis=1).astype(np.float32)
        features = {
            "bodypart": np.asarray(self.bodyparts, dtype=object)[part],
            "likelihood": self.likelihood[keep].astype(np.float32),
        }
        return data, features


def is_deeplabcut_file(path: str | os.PathLike) -> bool:
    """Cheap check: a ``.csv`` whose first cell is ``scorer``, or an ``.h5`` written by pandas."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.readline().split(",", 1)[0].strip().lower() == "scorer"
        if suffix in (".h5", ".hdf5"):
            with open_h5(path) as handle:
                return bool(_pandas_groups(handle, path))
    except (OSError, ValueError):
        return False
    return False


def read_deeplabcut(path: str | os.PathLike) -> Keypoints:
    """Read DeepLabCut keypoints from a ``.csv`` or ``.h5`` file (``~`` is expanded).

    Raises
    ------
    ValueError
        The file is not a DeepLabCut table (the message says what is missing), or an ``.h5`` whose
        layout is not one pandas writes for DeepLabCut (the message suggests the ``.csv``), whose
        column labels are pickles of anything but text and numbers, or whose data lies outside
        the file (:func:`napari_cebra.io.matrices.read_h5_dataset`).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns, values = _read_csv_table(path)
    elif suffix in (".h5", ".hdf5"):
        columns, values = _read_h5_table(path)
    else:
        raise ValueError(f"{path.name!r} is not a DeepLabCut file (.csv or .h5 expected).")
    return _keypoints_from_columns(columns, values, path)


# --- csv ----------------------------------------------------------------------------------------


def _read_csv_table(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = []
    for row in rows:
        if not row or row[0].strip().lower() not in HEADER_NAMES:
            break
        header.append(row)
    if (
        not header
        or header[0][0].strip().lower() != "scorer"
        or header[-1][0].strip().lower() != "coords"
    ):
        raise ValueError(
            f"{path.name!r} is not a DeepLabCut CSV: it must start with header rows "
            "'scorer', ('individuals',) 'bodyparts', 'coords'."
        )
    coords_row = [cell.strip() for cell in header[-1]]
    first = next((i for i, cell in enumerate(coords_row) if cell in COORDS), None)
    if first is None:
        raise ValueError(f"{path.name!r}: the 'coords' row names no x/y/likelihood column.")
    columns = list(zip(*(row[first:] for row in header), strict=False))
    body = [row[first:] for row in rows[len(header) :] if row]
    try:
        values = np.array(
            [[float(cell) if cell.strip() else np.nan for cell in row] for row in body],
            dtype=np.float64,
        )
    except ValueError as error:
        raise ValueError(f"{path.name!r} has a non-numeric coordinate: {error}") from error
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(
            f"{path.name!r}: data rows have {values.shape[1:] or 'ragged'} values, the header "
            f"names {len(columns)} columns."
        )
    return columns, values


# --- h5 -----------------------------------------------------------------------------------------


def _pandas_groups(handle: Any, path: Path) -> dict[str, Any]:
    """Top-level groups written by pandas (they carry a ``pandas_type``), by name."""
    import h5py

    nodes = {name: h5_node(handle, name, path) for name in handle}
    return {
        name: node
        for name, node in nodes.items()
        if isinstance(node, h5py.Group) and "pandas_type" in node.attrs
    }


def _read_h5_table(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    with open_h5(path) as handle:
        groups = _pandas_groups(handle, path)
        if not groups:
            raise ValueError(f"{path.name!r} holds no pandas table (no DeepLabCut output).")
        group = groups.get("df_with_missing", next(iter(groups.values())))
        kind = _text(group.attrs["pandas_type"])
        try:
            if kind == "frame":
                return _read_fixed_frame(group, path)
            if kind == "frame_table":
                return _read_table_frame(group, path)
        except (KeyError, TypeError, IndexError) as error:
            raise _unsupported(path, f"unexpected {kind!r} layout ({error!r})") from error
        raise _unsupported(path, f"pandas storage {kind!r} is not supported")


def _unsupported(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"Cannot read {path.name!r}: {reason}. Open the .csv DeepLabCut writes next to the .h5 "
        "(save_as_csv=True) instead."
    )


def _text(value: Any) -> Any:
    """An attribute PyTables wrote as plain data: bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return value


def _dataset(group: Any, name: str, path: Path) -> Any:
    """The dataset ``name`` of a pandas group (links inside the file only)."""
    import h5py

    dataset = h5_node(group, name, path)
    if not isinstance(dataset, h5py.Dataset):
        raise _unsupported(path, f"{group.name!r} has no dataset {name!r}")
    return dataset


def _read(group: Any, name: str, path: Path) -> np.ndarray:
    return read_h5_dataset(_dataset(group, name, path), path)


def _decode_strings(values: np.ndarray) -> list[Any]:
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.tolist()]


def _read_index(group: Any, key: str, path: Path) -> list[Any]:
    """Labels of an index pandas wrote in fixed format (regular or multi-level)."""
    variety = _text(group.attrs[f"{key}_variety"])
    if variety == "regular":
        return _decode_strings(_read(group, key, path))
    if variety != "multi":
        raise _unsupported(path, f"index {key!r} of variety {variety!r}")
    per_level = []
    for i in range(int(group.attrs[f"{key}_nlevels"])):
        names = _decode_strings(_read(group, f"{key}_level{i}", path))
        codes = _read(group, f"{key}_label{i}", path)
        if codes.size and (codes.min() < 0 or codes.max() >= len(names)):
            raise _unsupported(path, f"{key}_label{i} refers to labels that do not exist")
        per_level.append([names[c] for c in codes])
    if len({len(level) for level in per_level}) > 1:
        raise _unsupported(path, f"the levels of {key!r} differ in length")
    return list(zip(*per_level, strict=True))


def _read_fixed_frame(group: Any, path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    columns, blocks = [], []
    for i in range(int(group.attrs["nblocks"])):
        dataset = _dataset(group, f"block{i}_values", path)
        values = read_h5_dataset(dataset, path)
        # pandas stores each block transposed, i.e. as rows × columns, and flags it
        if not bool(_text(dataset.attrs.get("transposed", False))):
            values = values.T
        labels = [_as_tuple(c) for c in _read_index(group, f"block{i}_items", path)]
        blocks.append(_coordinate_block(values, labels, f"block{i}_values", path))
        columns.extend(labels)
    return columns, _side_by_side(blocks, path)


_VALUES_BLOCK = re.compile(r"values_block_(\d+)")


def _read_table_frame(group: Any, path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    table = _dataset(group, "table", path)
    rows = read_h5_dataset(table, path)
    fields = rows.dtype.names or ()
    block_names = sorted(
        (name for name in fields if _VALUES_BLOCK.fullmatch(name)),
        key=lambda name: int(_VALUES_BLOCK.fullmatch(name).group(1)),
    )
    columns, blocks, characters = [], [], 0
    for name in block_names:
        labels = _pickled_labels(table.attrs, f"{name}_kind", path)
        characters += sum(len(part) for label in labels for part in label)
        if characters > MAX_LABEL_CHARACTERS:
            raise ValueError(
                f"{path.name!r}: the column labels hold more than {MAX_LABEL_CHARACTERS} "
                "characters; refused."
            )
        values = rows[name].reshape(len(rows), -1)
        blocks.append(_coordinate_block(values, labels, name, path))
        columns.extend(labels)
    return columns, _side_by_side(blocks, path)


def _pickled_labels(attributes: Any, name: str, path: Path) -> list[tuple[str, ...]]:
    """Column labels PyTables pickled into an attribute, decoded without unpickling."""
    raw = attributes[name]
    raw = raw[()] if isinstance(raw, np.ndarray) and raw.ndim == 0 else raw
    if not isinstance(raw, (bytes, np.bytes_)):
        raise _unsupported(path, f"attribute {name!r} is not a pickled label list")
    labels = read_literal_pickle(bytes(raw), f"{path.name!r}: {name}")
    if not isinstance(labels, list) or not all(map(_is_label, labels)):
        raise _unsupported(path, f"attribute {name!r} holds something other than column labels")
    return [_as_tuple(label) for label in labels]


def _is_label(label: Any) -> bool:
    parts = label if isinstance(label, (tuple, list)) else (label,)
    return all(isinstance(part, (str, int, float)) for part in parts)


def _coordinate_block(
    values: np.ndarray, labels: list[tuple[str, ...]], name: str, path: Path
) -> np.ndarray:
    if values.ndim != 2 or values.shape[1] != len(labels):
        raise ValueError(
            f"{path.name!r}: {name} has shape {values.shape} but {len(labels)} column labels."
        )
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise ValueError(f"{path.name!r}: {name} holds {values.dtype} values, not coordinates.")
    return values.astype(np.float64)


def _side_by_side(blocks: list[np.ndarray], path: Path) -> np.ndarray:
    if not blocks:
        raise _unsupported(path, "the table holds no value columns")
    if len({block.shape[0] for block in blocks}) > 1:
        raise ValueError(f"{path.name!r}: the value blocks differ in their number of rows.")
    return np.concatenate(blocks, axis=1)


def _as_tuple(label: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in label) if isinstance(label, (tuple, list)) else (str(label),)


# --- columns → keypoints ------------------------------------------------------------------------


def _keypoints_from_columns(
    columns: list[tuple[str, ...]], values: np.ndarray, path: Path
) -> Keypoints:
    if not columns or len({len(c) for c in columns}) != 1 or len(columns[0]) not in (3, 4):
        raise ValueError(
            f"{path.name!r}: expected 3 column levels (scorer, bodyparts, coords) or 4 (with "
            f"individuals), got {columns[:3]}..."
        )
    parts: dict[str, dict[str, int]] = {}
    for index, column in enumerate(columns):
        coord = column[-1].strip()
        if coord not in COORDS:
            raise ValueError(f"{path.name!r}: unknown coordinate {coord!r} in column {column}.")
        part = "/".join(c.strip() for c in column[1:-1])
        parts.setdefault(part, {})[coord] = index
    missing = [part for part, coords in parts.items() if not {"x", "y"} <= coords.keys()]
    if missing:
        raise ValueError(f"{path.name!r}: body parts {missing} lack an x or y column.")
    n_frames = values.shape[0]

    def gather(coord: str, default: float) -> np.ndarray:
        out = np.full((n_frames, len(parts)), default, dtype=np.float32)
        for k, coords in enumerate(parts.values()):
            if coord in coords:
                out[:, k] = values[:, coords[coord]]
        return out

    return Keypoints(
        x=gather("x", np.nan),
        y=gather("y", np.nan),
        likelihood=gather("likelihood", 1.0),
        bodyparts=tuple(parts),
        scorer=columns[0][0].strip(),
    )
