"""DeepLabCut keypoints (``.csv`` and ``.h5``) as per-frame coordinates.

DeepLabCut stores a table with one row per video frame and a column header of three levels,
``scorer`` / ``bodyparts`` / ``coords`` (four with ``individuals`` for multi-animal projects), where
``coords`` is ``x``, ``y`` and ``likelihood``. The ``.h5`` file is the same table written by
``pandas.to_hdf``. pandas needs PyTables to read it back; when PyTables is missing the HDF5 layout
pandas writes (``fixed`` or ``table`` format) is decoded here with h5py, reading pickled attributes
with :func:`napari_cebra.io.datasets.restricted_load`.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.datasets import restricted_load

HEADER_NAMES = ("scorer", "individuals", "bodyparts", "coords")
COORDS = ("x", "y", "likelihood")


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
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.readline().split(",", 1)[0].strip().lower() == "scorer"
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                return any("pandas_type" in node.attrs for node in handle.values())
    except OSError:
        return False
    return False


def read_deeplabcut(path: str | os.PathLike) -> Keypoints:
    """Read DeepLabCut keypoints from a ``.csv`` or ``.h5`` file.

    Raises
    ------
    ValueError
        The file is not a DeepLabCut table (the message says what is missing), or an ``.h5`` whose
        layout cannot be decoded without PyTables (the message says to install ``tables`` or use
        the ``.csv``).
    """
    path = Path(path)
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


def _read_h5_table(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray]:
    if importlib.util.find_spec("tables") is not None:
        import pandas as pd

        frame = pd.read_hdf(path)
        columns = [c if isinstance(c, tuple) else (str(c),) for c in frame.columns]
        return columns, frame.to_numpy(dtype=np.float64)
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path.name!r} is not a readable HDF5 file: {error}") from error
    with handle:
        groups = {name: node for name, node in handle.items() if "pandas_type" in node.attrs}
        if not groups:
            raise ValueError(f"{path.name!r} holds no pandas table (no DeepLabCut output).")
        group = groups.get("df_with_missing", next(iter(groups.values())))
        kind = _attribute(group.attrs["pandas_type"])
        try:
            if kind == "frame":
                return _read_fixed_frame(group)
            if kind == "frame_table":
                return _read_table_frame(group)
        except (KeyError, TypeError, ValueError) as error:
            raise _needs_pytables(path, f"unexpected {kind!r} layout ({error})") from error
        raise _needs_pytables(path, f"pandas storage {kind!r} is not supported")


def _needs_pytables(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"Cannot read {path.name!r} without PyTables: {reason}. Install it (pip install tables) "
        "or open the .csv DeepLabCut writes next to the .h5 (save_as_csv=True)."
    )


def _attribute(value: Any) -> Any:
    """Decode an attribute PyTables wrote: text as str, pickled objects restricted-unpickled."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        raw = bytes(value)
        if raw.endswith(b".") and raw[:1] in (b"(", b"\x80", b"]", b"I", b"V", b"c", b"}"):
            try:
                return restricted_load(io.BytesIO(raw))
            except ValueError as error:
                if "refused to load" in str(error):
                    raise
        return raw.decode("utf-8", errors="replace")
    return value


def _decode_strings(values: np.ndarray) -> list[Any]:
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.tolist()]


def _read_index(group: Any, key: str) -> list[Any]:
    """Labels of an index pandas wrote in fixed format (regular or multi-level)."""
    variety = _attribute(group.attrs[f"{key}_variety"])
    if variety == "regular":
        return _decode_strings(group[key][()])
    if variety != "multi":
        raise ValueError(f"index variety {variety!r}")
    levels = int(_attribute(group.attrs[f"{key}_nlevels"]))
    per_level = []
    for i in range(levels):
        names = _decode_strings(group[f"{key}_level{i}"][()])
        codes = group[f"{key}_label{i}"][()]
        per_level.append([names[c] for c in codes])
    return list(zip(*per_level, strict=True))


def _read_fixed_frame(group: Any) -> tuple[list[tuple[str, ...]], np.ndarray]:
    columns, blocks = [], []
    for i in range(int(_attribute(group.attrs["nblocks"]))):
        dataset = group[f"block{i}_values"]
        values = dataset[()]
        # pandas stores each block transposed, i.e. as rows × columns, and flags it
        if not bool(_attribute(dataset.attrs.get("transposed", False))):
            values = values.T
        blocks.append(values)
        columns.extend(_as_tuple(c) for c in _read_index(group, f"block{i}_items"))
    return columns, np.concatenate(blocks, axis=1).astype(np.float64)


def _read_table_frame(group: Any) -> tuple[list[tuple[str, ...]], np.ndarray]:
    table = group["table"]
    rows = table[()]
    block_names = sorted(
        (name for name in rows.dtype.names if name.startswith("values_block_")),
        key=lambda name: int(name.rsplit("_", 1)[1]),
    )
    columns, blocks = [], []
    for name in block_names:
        labels = _attribute(table.attrs[f"{name}_kind"])
        values = rows[name].reshape(len(rows), -1)
        if len(labels) != values.shape[1]:
            raise ValueError(f"{name} has {values.shape[1]} columns but {len(labels)} labels")
        columns.extend(_as_tuple(c) for c in labels)
        blocks.append(values)
    return columns, np.concatenate(blocks, axis=1).astype(np.float64)


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
