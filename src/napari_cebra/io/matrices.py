"""Neural activity matrices (time × neurons) from ``.npy``, ``.npz``, ``.csv`` and ``.h5`` files.

:func:`load_matrix` is shared by the command line and the napari reader. Rows are time points and
columns neurons; files stored neurons × time are read with ``transpose=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".h5", ".hdf5")


def load_matrix(
    path: str | os.PathLike, key: str | None = None, transpose: bool = False
) -> np.ndarray:
    """Read a 2-D neural matrix as float32, rows = time points, columns = neurons.

    Parameters
    ----------
    path : path-like
        A ``.npy``, ``.npz``, ``.csv`` (with or without a header row) or ``.h5``/``.hdf5`` file.
    key : str, optional
        Array name in an ``.npz`` or dataset path in an ``.h5`` file. Without it the file must hold
        exactly one 2-D array.
    transpose : bool
        The file stores neurons × time: return its transpose.

    Returns
    -------
    np.ndarray
        ``(T, n)`` float32.

    Raises
    ------
    ValueError
        Unsupported suffix, no or several candidate arrays, a missing key, non-numeric or non-2-D
        content. ``FileNotFoundError`` if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such matrix file: {path}")
    suffix = path.suffix.lower()
    readers = {
        ".npy": _read_npy,
        ".npz": _read_npz,
        ".csv": _read_csv,
        ".h5": _read_h5,
        ".hdf5": _read_h5,
    }
    if suffix not in readers:
        raise ValueError(
            f"Cannot read a matrix from {path.name!r}: suffix {suffix!r} is not one of "
            f"{', '.join(MATRIX_SUFFIXES)}."
        )
    if key is not None and suffix in (".npy", ".csv"):
        raise ValueError(f"key={key!r} only applies to .npz and .h5 files, not {path.name!r}.")
    matrix = readers[suffix](path, key)
    return _as_time_by_neurons(matrix, path, transpose)


def _as_time_by_neurons(matrix: np.ndarray, path: Path, transpose: bool) -> np.ndarray:
    if matrix.ndim != 2:
        raise ValueError(
            f"The matrix in {path.name!r} must be 2-D (time × neurons), got shape {matrix.shape}."
        )
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise ValueError(f"The matrix in {path.name!r} is not numeric (dtype {matrix.dtype}).")
    if 0 in matrix.shape:
        raise ValueError(f"The matrix in {path.name!r} is empty (shape {matrix.shape}).")
    matrix = matrix.T if transpose else matrix
    return np.ascontiguousarray(matrix, dtype=np.float32)


def _read_npy(path: Path, key: str | None) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays need pickle: refuse, never execute code
        raise ValueError(f"{path.name!r} is not a plain numeric .npy array: {error}") from error


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is not None:
            if key not in names:
                raise ValueError(f"{path.name!r} has no array {key!r}; it holds {names}.")
            return archive[key]
        matrices = {name: archive[name] for name in names if archive[name].ndim == 2}
    return _the_only_matrix(matrices, path, names)


def _the_only_matrix(candidates: dict[str, np.ndarray], path: Path, names: list[str]) -> np.ndarray:
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        raise ValueError(f"{path.name!r} holds no 2-D array (it holds {names}).")
    shapes = {name: array.shape for name, array in candidates.items()}
    raise ValueError(f"{path.name!r} holds several 2-D arrays {shapes}: choose one with key=...")


def _read_csv(path: Path, key: str | None) -> np.ndarray:
    import pandas as pd

    try:
        table = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path.name!r} is not a readable CSV table: {error}") from error
    first_row_numeric = pd.to_numeric(table.iloc[0], errors="coerce").notna().all()
    if not first_row_numeric:  # a header row; a first column without a name is a row index
        header, table = table.iloc[0], table.iloc[1:]
        if pd.isna(header.iloc[0]) or str(header.iloc[0]).startswith("Unnamed"):
            table = table.iloc[:, 1:]
    values = table.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & table.notna()
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise ValueError(
            f"{path.name!r} has a non-numeric entry {table.iat[row, column]!r} in data row {row}, "
            f"column {column}."
        )
    return values.to_numpy(dtype=np.float64)


def _read_h5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path.name!r} is not a readable HDF5 file: {error}") from error
    with handle:
        if key is not None:
            node = handle.get(key)
            if not isinstance(node, h5py.Dataset):
                raise ValueError(
                    f"{path.name!r} has no dataset {key!r}; it holds {_h5_datasets(handle)}."
                )
            return node[()]
        datasets = _h5_datasets(handle)
        matrices = {name: handle[name][()] for name, shape in datasets.items() if len(shape) == 2}
    return _the_only_matrix(matrices, path, list(datasets))


def _h5_datasets(handle) -> dict[str, tuple[int, ...]]:
    """Path → shape of every numeric dataset in an open HDF5 file."""
    import h5py

    found: dict[str, tuple[int, ...]] = {}

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset) and np.issubdtype(node.dtype, np.number):
            found[name] = node.shape

    handle.visititems(visit)
    return found
