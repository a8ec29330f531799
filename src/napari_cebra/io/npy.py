""".npy files read without unpickling, checked against the file size before allocating."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from napari_cebra.io.safe_pickle import restricted_load

NPY_MAX_HEADER_BYTES = 10_000
"""Longest ``.npy`` header read (numpy's own default limit)."""


# --- .npy files ---------------------------------------------------------------------------------

_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_npy_header(handle: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an open ``.npy`` stream, leaving it at the payload."""
    try:
        version = np.lib.format.read_magic(handle)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy format version {version}")
        length_field = handle.read(2 if version == (1, 0) else 4)
        header_bytes = int.from_bytes(length_field, "little")
        if header_bytes > NPY_MAX_HEADER_BYTES:
            raise ValueError(
                f"its header claims {header_bytes} bytes, more than the {NPY_MAX_HEADER_BYTES} "
                "a .npy header may have"
            )
        header = length_field + handle.read(header_bytes)
        shape, fortran_order, dtype = read_header(io.BytesIO(header))
    except ValueError as error:
        raise ValueError(f"{name!r} is not a readable .npy file: {error}") from error
    return tuple(shape), bool(fortran_order), dtype


def read_npy_header(handle: IO[bytes], name: str = "file") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of an open ``.npy`` file, leaving it at the payload.

    Raises
    ------
    ValueError
        Not an ``.npy`` file, a format version other than 1.0 / 2.0, or a header longer than
        :data:`NPY_MAX_HEADER_BYTES`.
    """
    shape, _, dtype = _read_npy_header(handle, name)
    return shape, dtype


def read_npy_layout(
    handle: IO[bytes], name: str = "file"
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an open ``.npy`` file, leaving it at the payload.

    What :func:`read_npy_header` reads, plus whether the data are stored in Fortran order (which a
    reader of byte ranges needs to know); same errors.
    """
    return _read_npy_header(handle, name)


def read_npy_array(handle: IO[bytes], name: str, size: int) -> np.ndarray:
    """The array of an open ``.npy`` stream of ``size`` bytes, checked before allocating.

    Parameters
    ----------
    handle : binary file
        Positioned at the start of the ``.npy`` data (a file or an ``.npz`` member).
    name : str
        The file (or member) for error messages.
    size : int
        Bytes of the whole ``.npy`` stream; the array the header declares must fit in what
        follows the header.

    Raises
    ------
    ValueError
        A header that cannot be read, an object array (it would need unpickling), a declared
        array larger than the data in the file, or data that ends early.
    """
    shape, fortran_order, dtype = _read_npy_header(handle, name)
    if dtype.hasobject:
        raise ValueError(
            f"{name!r} is not a plain numeric .npy array: it holds Python objects "
            f"(dtype {dtype}), which are never unpickled."
        )
    count = math.prod(shape)
    n_bytes = count * dtype.itemsize
    available = size - handle.tell()
    if n_bytes > available:
        raise ValueError(
            f"{name!r} declares a {shape} {dtype} array ({n_bytes} bytes) but holds only "
            f"{max(available, 0)} bytes of data."
        )
    array = np.empty(count, dtype=dtype)
    _fill_from(handle, array.view(np.uint8), name)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _fill_from(handle: IO[bytes], buffer: np.ndarray, name: str) -> None:
    view, filled = memoryview(buffer), 0
    while filled < len(view):
        n_read = handle.readinto(view[filled:])
        if not n_read:
            raise ValueError(f"{name!r} ends early: {filled} of {len(view)} data bytes.")
        filled += n_read


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A numeric ``.npy`` file (``~`` expanded) read by :func:`read_npy_array`."""
    path = Path(path).expanduser()
    with open(path, "rb") as handle:
        return read_npy_array(handle, path.name, os.fstat(handle.fileno()).st_size)


def load_object_npy(path: str | os.PathLike) -> Any:
    """Read an ``.npy`` file whose array holds Python objects (e.g. suite2p ``stat.npy``).

    The header is parsed by numpy; the pickled payload goes through :func:`restricted_load`.
    Numeric arrays are read by :func:`read_npy_array`. 0-d object arrays (``np.save`` of a dict)
    are unwrapped to the object.
    """
    path = Path(path).expanduser()
    with open(path, "rb") as handle:
        _, dtype = read_npy_header(handle, path.name)
        if not dtype.hasobject:
            handle.seek(0)
            return read_npy_array(handle, path.name, os.fstat(handle.fileno()).st_size)
        array = restricted_load(handle)
    if isinstance(array, np.ndarray) and array.ndim == 0:
        return array.item()
    return array
