"""Neural activity matrices (time × neurons) from ``.npy``, ``.npz``, ``.csv`` and ``.h5`` files.

:func:`load_matrix` is shared by the command line and the napari reader. Rows are time points and
columns neurons; files stored neurons × time are read with ``transpose=True``. Nothing in a file can
make the readers run code, read other files or allocate much more memory than the file holds:
``.npy`` headers are checked against the data that follows them, ``.npz`` members against what
deflate can expand to, and HDF5 datasets go through :func:`read_h5_dataset`, which the DeepLabCut
reader uses too.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.npy import load_npy, read_npy_array, read_npy_header

MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".h5", ".hdf5")
H5_UNWRITTEN_ALLOWANCE_BYTES = 16 << 20
"""Bytes of an HDF5 dataset that may lack storage (HDF5 reads them as the fill value)."""
DEFLATE_MAX_RATIO = 1032
"""The most deflate (``np.savez_compressed``) shrinks data; an ``.npz`` member claiming more is
refused before anything is allocated."""
MISSING_CELLS = frozenset(
    {"", "na", "n/a", "nan", "-nan", "+nan", "null", "none", "<na>", "#n/a", "nat"}
)
"""CSV cells (compared in lower case) that mean a missing value; any of them is an error."""
_MAX_SOFT_LINKS = 16  # HDF5's own limit on chained soft links


def load_matrix(
    path: str | os.PathLike, key: str | None = None, transpose: bool = False
) -> np.ndarray:
    """Read a 2-D neural matrix as float32, rows = time points, columns = neurons.

    Parameters
    ----------
    path : path-like
        A ``.npy``, ``.npz``, ``.csv`` or ``.h5``/``.hdf5`` file (``~`` is expanded). A CSV's
        first row is a header only if it is clearly text (column names, as pandas writes them);
        every other cell must be a number.
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
        Unsupported suffix, an empty or unreadable file, no or several candidate arrays, a missing
        key, non-numeric, missing (CSV), complex or non-2-D content, a declared size the file
        cannot hold, or HDF5 data outside the file or never written (:func:`read_h5_dataset`).
        ``FileNotFoundError`` if the file does not exist.
    """
    path = Path(path).expanduser()
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
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name!r} is empty (0 bytes).")
    matrix = readers[suffix](path, key)
    return _as_time_by_neurons(matrix, path, transpose)


def _as_time_by_neurons(matrix: np.ndarray, path: Path, transpose: bool) -> np.ndarray:
    if matrix.ndim != 2:
        raise ValueError(
            f"The matrix in {path.name!r} must be 2-D (time × neurons), got shape {matrix.shape}."
        )
    if np.iscomplexobj(matrix):
        raise ValueError(
            f"The matrix in {path.name!r} is complex (dtype {matrix.dtype}); only real numbers "
            "are read (save its real part or magnitude instead)."
        )
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise ValueError(f"The matrix in {path.name!r} is not numeric (dtype {matrix.dtype}).")
    if 0 in matrix.shape:
        raise ValueError(f"The matrix in {path.name!r} is empty (shape {matrix.shape}).")
    matrix = matrix.T if transpose else matrix
    return np.ascontiguousarray(matrix, dtype=np.float32)


def _the_only_matrix(shapes: dict[str, tuple[int, ...]], path: Path) -> str:
    """Name of the only 2-D array among ``shapes`` (name → shape)."""
    matrices = {name: shape for name, shape in shapes.items() if len(shape) == 2}
    if len(matrices) == 1:
        return next(iter(matrices))
    if not matrices:
        raise ValueError(f"{path.name!r} holds no 2-D array (it holds {list(shapes)}).")
    raise ValueError(f"{path.name!r} holds several 2-D arrays {matrices}: choose one with key=...")


# --- npy / npz ----------------------------------------------------------------------------------


def _read_npy(path: Path, key: str | None) -> np.ndarray:
    return load_npy(path)


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError)


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as error:
        raise ValueError(_not_a_zip(path, error)) from error
    with archive:
        members = {_array_name(info.filename): info for info in archive.infolist()}
        if key is None:  # np.savez writes only .npy members; anything else is not a candidate
            arrays = {
                name: info for name, info in members.items() if info.filename.endswith(".npy")
            }
            shapes = {name: _member_shape(archive, info, path) for name, info in arrays.items()}
            key = _the_only_matrix(shapes, path)
        elif key not in members:
            raise ValueError(f"{path.name!r} has no array {key!r}; it holds {list(members)}.")
        return _read_member(archive, members[key], path)


def _array_name(member: str) -> str:
    return member[: -len(".npy")] if member.endswith(".npy") else member


def _not_a_zip(path: Path, error: Exception) -> str:
    with open(path, "rb") as handle:
        is_npy = handle.read(6) == b"\x93NUMPY"
    hint = "; it is a .npy file: rename it to .npy" if is_npy else ""
    return f"{path.name!r} is not a .npz (zip) archive{hint} ({error})."


def _member_shape(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[int, ...]:
    name = f"{info.filename} in {path.name}"
    try:
        with archive.open(info) as handle:
            return read_npy_header(handle, name)[0]
    except _ZIP_ERRORS as error:
        raise ValueError(f"{name!r} cannot be read: {error}") from error


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    name = f"{info.filename} in {path.name}"
    archive_bytes = path.stat().st_size
    if (
        info.compress_size > archive_bytes
        or info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024
    ):
        raise ValueError(
            f"{name!r} claims {info.file_size} bytes from {info.compress_size} compressed bytes "
            f"of a {archive_bytes}-byte archive: refused (deflate expands at most "
            f"{DEFLATE_MAX_RATIO}-fold)."
        )
    try:
        with archive.open(info) as handle:
            return read_npy_array(handle, name, info.file_size)
    except _ZIP_ERRORS as error:
        raise ValueError(f"{name!r} cannot be read: {error}") from error


# --- csv ----------------------------------------------------------------------------------------


def _read_csv(path: Path, key: str | None) -> np.ndarray:
    import pandas as pd

    try:
        table = pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path.name!r} is not a readable CSV table: {error}") from error
    cells = table.fillna("").apply(lambda column: column.str.strip())  # short rows give NaN
    has_header = _is_header(cells.iloc[0].tolist())
    if has_header:
        first = cells.iat[0, 0]
        cells = cells.iloc[1:]
        if first == "" or first.startswith("Unnamed"):  # pandas' unnamed row-index column
            cells = cells.iloc[:, 1:]
    return _numbers(cells, path, has_header)


def _is_header(cells: list[str]) -> bool:
    """Whether the first CSV row is a header: only when it is clearly text.

    Every cell must be a name (it has a letter and is neither a number nor a missing-value marker),
    except that the first cell may be empty (pandas' unnamed row index), and the cells after the
    first may be the column numbers 0, 1, 2, ... pandas writes for unnamed columns. A row with a
    number, an empty or ``nan`` cell anywhere else is data.
    """
    first, rest = cells[0], cells[1:]
    if not rest:
        return _is_name(first)
    if first != "" and not _is_name(first):
        return False
    return all(map(_is_name, rest)) or rest == [str(i) for i in range(len(rest))]


def _is_name(cell: str) -> bool:
    if cell.lower() in MISSING_CELLS or not any(character.isalpha() for character in cell):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False  # inf, nan, 1e5


def _numbers(cells: Any, path: Path, has_header: bool) -> np.ndarray:
    """The cells as float64, or a ValueError naming the first missing or non-numeric cell."""
    import pandas as pd

    values = cells.apply(pd.to_numeric, errors="coerce")
    missing = cells.apply(lambda column: column.str.lower().isin(MISSING_CELLS)).to_numpy()
    problems = missing | values.isna().to_numpy()
    if problems.any():
        row, column = np.argwhere(problems)[0]
        cell = cells.iat[row, column]
        if missing[row, column]:
            what = f"a missing value ({cell!r})"
        else:
            what = f"a non-numeric entry {cell!r}"
        below = " below the header" if has_header else ""
        raise ValueError(
            f"{path.name!r} has {what} in data row {row}, column {column} (counted from 0"
            f"{below}); every cell must be a number."
        )
    return values.to_numpy(dtype=np.float64)


# --- hdf5 ---------------------------------------------------------------------------------------


def open_h5(path: Path) -> Any:
    """``h5py.File`` opened read-only, or a ValueError naming the file."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path.name!r} is not a readable HDF5 file: {error}") from error


def h5_node(group: Any, key: str, path: Path, _depth: int = 0) -> Any:
    """The group or dataset at ``key`` below ``group``, following only links inside the file.

    Parameters
    ----------
    group : h5py.Group
        Where a relative ``key`` starts (an absolute one starts at the file's root).
    key : str
        Slash-separated path.
    path : Path
        The file, for error messages.

    Returns
    -------
    h5py.Group or h5py.Dataset or None
        ``None`` when nothing is there.

    Raises
    ------
    ValueError
        A link on the way leads to another file (external link) or is of a user-defined kind, or
        soft links chain deeper than HDF5's limit of 16.
    """
    import h5py

    node = group.file["/"] if key.startswith("/") else group
    for part in (part for part in key.split("/") if part):
        if not isinstance(node, h5py.Group):
            return None
        where = f"{path.name!r}: {node.name.rstrip('/') + '/' + part!r}"
        try:
            link = node.get(part, getlink=True)
        except TypeError as error:  # h5py's "Unknown link type": a user-defined link
            raise ValueError(f"{where} is a user-defined link, which is not followed.") from error
        if link is None:
            return None
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(
                f"{where} is a link to {link.path!r} in another file ({link.filename!r}); links "
                "to other files are not followed."
            )
        if isinstance(link, h5py.SoftLink):
            if _depth >= _MAX_SOFT_LINKS:
                raise ValueError(f"{where} ends a chain of more than {_MAX_SOFT_LINKS} soft links.")
            node = h5_node(node, link.path, path, _depth + 1)
        else:
            node = node[part]
    return node


def read_h5_dataset(dataset: Any, path: Path) -> np.ndarray:
    """All values of an HDF5 dataset that passes :func:`check_h5_dataset`."""
    check_h5_dataset(dataset, path)
    return dataset[()]


def check_h5_dataset(dataset: Any, path: Path) -> None:
    """Refuse an HDF5 dataset whose data lie outside the file or were never written.

    Refused, with a ValueError naming the file and the dataset:

    - external storage (the raw data kept in other files) and virtual datasets (mapped from
      other datasets or files);
    - datasets of which more than :data:`H5_UNWRITTEN_ALLOWANCE_BYTES` (16 MiB) have no storage
      allocated. HDF5 returns the fill value there, so a file of a few kilobytes could otherwise
      ask for gigabytes. A contiguous dataset is stored whole or not at all; a chunked one,
      compressed or not, counts its missing chunks (a partly written file is refused only if the
      unwritten part is large). Stored compressed chunks are read: they expand only as far as
      their codec allows (gzip about 1000-fold).
    """
    where = f"{path.name!r}: dataset {dataset.name!r}"
    if dataset.is_virtual:
        raise ValueError(f"{where} is a virtual dataset mapped from other data; refused.")
    if dataset.external:
        files = [entry[0] for entry in dataset.external]
        raise ValueError(f"{where} keeps its data in other files {files}; refused.")
    unwritten = _unwritten_bytes(dataset)
    if unwritten > H5_UNWRITTEN_ALLOWANCE_BYTES:
        raise ValueError(
            f"{where} of shape {dataset.shape} ({dataset.dtype}) holds {dataset.nbytes} bytes, of "
            f"which {unwritten} were never written (only {dataset.id.get_storage_size()} bytes "
            f"are stored) and would read as the fill value; refused (at most "
            f"{H5_UNWRITTEN_ALLOWANCE_BYTES} bytes may be unwritten)."
        )


def _unwritten_bytes(dataset: Any) -> int:
    """Bytes of ``dataset`` with no storage allocated (an upper bound for chunked datasets)."""
    if dataset.chunks is None:  # contiguous or compact
        return max(0, dataset.nbytes - dataset.id.get_storage_size())
    n_chunks = math.prod(
        -(-size // chunk) for size, chunk in zip(dataset.shape, dataset.chunks, strict=True)
    )
    missing = n_chunks - dataset.id.get_num_chunks()
    return min(dataset.nbytes, missing * math.prod(dataset.chunks) * dataset.dtype.itemsize)


def _read_h5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    with open_h5(path) as handle:
        if key is None:
            node = handle[_the_only_matrix(_h5_datasets(handle), path)]
        else:
            node = h5_node(handle, key, path)
            if not isinstance(node, h5py.Dataset):
                raise ValueError(
                    f"{path.name!r} has no dataset {key!r}; it holds {_h5_datasets(handle)}."
                )
        return read_h5_dataset(node, path)


def _h5_datasets(handle: Any) -> dict[str, tuple[int, ...]]:
    """Path → shape of every numeric dataset in an open HDF5 file (hard links only)."""
    import h5py

    found: dict[str, tuple[int, ...]] = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset) and np.issubdtype(node.dtype, np.number):
            found[name] = node.shape

    handle.visititems(visit)  # visits objects through hard links: no soft or external links
    return found
