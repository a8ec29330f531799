"""Movies on disk opened lazily: ``(T, Y, X)`` arrays that read only the frames asked for.

:func:`open_movie` opens a multi-page TIFF stack, an ``.npy`` file or an HDF5 dataset (``.h5``,
``.hdf5``, ``.nwb``, e.g. the ``data`` of an NWB ``TwoPhotonSeries``) without reading its frames.
The :class:`LazyMovie` it returns has ``shape``, ``dtype`` and numpy-style indexing along time, so
:func:`napari_cebra.io.traces.extract_traces` reads it chunk by chunk and napari shows it frame by
frame; a movie larger than the machine's memory never has to fit in it.

Frames stored as one uncompressed block (a C-ordered ``.npy``, a contiguous uncompressed TIFF) are
memory-mapped one read at a time, after checking the file size: a chunk of frames costs that
chunk of memory and address space, never the whole file's (which a memory cap would refuse). Other TIFFs
are read page by page by tifffile, HDF5 datasets by h5py after the checks of
:func:`napari_cebra.io.matrices.check_h5_dataset` (nothing from another file, nothing unwritten).
Nothing read can run code.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.matrices import check_h5_dataset, h5_node, open_h5
from napari_cebra.io.npy import read_npy_layout

MOVIE_SUFFIXES = (".tif", ".tiff", ".npy", ".h5", ".hdf5", ".nwb")
_H5_SUFFIXES = (".h5", ".hdf5", ".nwb")
_NUMERIC_KINDS = "uif"

FrameReader = Callable[[int, int], np.ndarray]
"""``read(start, stop)`` → the frames ``start:stop`` as a ``(stop - start, Y, X)`` array."""


class LazyMovie:
    """A ``(T, Y, X)`` movie in a file; indexing reads only the frames it selects.

    Indexing along time accepts an integer, a slice (any step) or a sequence of integers, followed
    by any numpy index of the frames (``movie[10:20]``, ``movie[5, 100:200, :]``, ``movie[...]``).
    ``np.asarray(movie)`` reads the whole movie.

    Parameters
    ----------
    read : callable
        ``read(start, stop)`` returns frames ``start:stop`` (``0 <= start < stop <= T``).
    shape : tuple of int
        ``(T, Y, X)``.
    dtype : np.dtype
        Dtype of the arrays ``read`` returns.
    source : str
        What the movie is, for ``repr`` and error messages (file name, dataset).
    close : callable, optional
        Releases the file handle ``read`` uses (called by :meth:`close`).
    """

    def __init__(
        self,
        read: FrameReader,
        shape: tuple[int, int, int],
        dtype: np.dtype,
        source: str,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._read, self._close = read, close
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.source = source

    ndim = 3

    @property
    def size(self) -> int:
        """Number of values."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole movie once read."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyMovie({self.source}, shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        time, rest = _split_time_index(key)
        n_frames = self.shape[0]
        if isinstance(time, slice):
            start, stop, step = time.indices(n_frames)
            if step == 1:
                return self.read_frames(start, max(start, stop))[(slice(None), *rest)]
            frames = range(start, stop, step)
        elif isinstance(time, (int, np.integer)):
            t = int(time)
            if not -n_frames <= t < n_frames:
                raise IndexError(f"frame {t} is out of range for {self!r}.")
            return self.read_frames(t % n_frames, t % n_frames + 1)[(0, *rest)]
        else:
            if any(not -n_frames <= t < n_frames for t in time):
                raise IndexError(f"frame indices {time} are out of range for {self!r}.")
            frames = [t % n_frames for t in time]
        stacked = np.empty((len(frames), *self.shape[1:]), dtype=self.dtype)
        for i, t in enumerate(frames):
            stacked[i] = self.read_frames(t, t + 1)[0]
        return stacked[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        frames = self.read_frames(0, self.shape[0])
        return frames if dtype is None else frames.astype(dtype, copy=False)

    def read_frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (``0 <= start <= stop <= T``) as an ``(n, Y, X)`` array.

        A read-only view of the file for ``.npy`` and contiguous TIFF movies, a new array
        otherwise.
        """
        if not 0 <= start <= stop <= self.shape[0]:
            raise IndexError(f"frames {start}:{stop} are out of range for {self!r}.")
        if start == stop:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return self._read(start, stop)

    def close(self) -> None:
        """Release the open file, if any; later reads fail."""
        if self._close is not None:
            self._close()

    def __enter__(self) -> LazyMovie:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_movie(path: str | os.PathLike, key: str | None = None) -> LazyMovie:
    """Open a ``(T, Y, X)`` movie file without reading its frames.

    Parameters
    ----------
    path : str or os.PathLike
        A multi-page TIFF (``.tif``, ``.tiff``: its first series), an ``.npy`` file, or an HDF5
        file (``.h5``, ``.hdf5``, ``.nwb``). ``~`` is expanded.
    key : str, optional
        HDF5 only: the dataset, e.g. ``"acquisition/TwoPhotonSeries/data"``. By default the only
        3-D numeric dataset of the file.

    Returns
    -------
    LazyMovie
        TIFF and HDF5 movies keep their file open until :meth:`LazyMovie.close` (or garbage
        collection); ``.npy`` and contiguous TIFF movies open the file for each read.

    Raises
    ------
    ValueError
        A path that does not exist or has another suffix, a file that cannot be read as its
        suffix says, data that are not a 3-D stack of at least one frame, a dtype that is not
        integer or floating point, data the file does not hold, or an HDF5 dataset refused by
        :func:`~napari_cebra.io.matrices.check_h5_dataset`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"Movie file {str(path)!r} does not exist (or is not a file).")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _open_tiff(path)
    if suffix == ".npy":
        return _open_npy(path)
    if suffix in _H5_SUFFIXES:
        return _open_h5_movie(path, key)
    raise ValueError(
        f"{path.name!r} is not a movie file this reader opens; expected one of {MOVIE_SUFFIXES}."
    )


def _raw_frames_reader(
    path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype
) -> FrameReader:
    """``read(start, stop)`` of C-ordered frames stored from byte ``offset`` of ``path``.

    Each call maps just the bytes of the frames asked for (read-only) and returns a view of them:
    no copy, and address space and memory for one window only, released with the array. The
    kernel is first asked to read the whole window ahead (``POSIX_FADV_WILLNEED``: large reads
    from a cold disk) and one byte of each page is touched, so the reading happens in the
    calling thread (the read-ahead thread of trace extraction) rather than in whoever uses the
    frames. Faster than copying the bytes into a new array from the page cache and as fast from
    a cold file (``benchmarks/README.md``, "Trace extraction from large movies").

    Raises
    ------
    ValueError
        If the file is shorter than ``offset`` plus the bytes of ``shape`` (checked now, and
        again at every read, since a mapped file that shrinks would crash the process).
    """
    frame_bytes = math.prod(shape[1:]) * dtype.itemsize
    _check_file_holds(path, path.stat().st_size, offset, shape, dtype)

    def read(start: int, stop: int) -> np.ndarray:
        first, n_bytes = offset + start * frame_bytes, (stop - start) * frame_bytes
        aligned = first - first % mmap.ALLOCATIONGRANULARITY
        with open(path, "rb") as handle:
            _check_file_holds(path, os.fstat(handle.fileno()).st_size, offset, shape, dtype)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(handle.fileno(), first, n_bytes, os.POSIX_FADV_WILLNEED)
            window = mmap.mmap(
                handle.fileno(), first - aligned + n_bytes, offset=aligned, access=mmap.ACCESS_READ
            )
        np.frombuffer(window, dtype=np.uint8)[:: mmap.PAGESIZE].max()  # fault the pages in here
        frames = np.frombuffer(
            window, dtype=dtype, count=n_bytes // dtype.itemsize, offset=first - aligned
        )
        return frames.reshape(stop - start, *shape[1:])

    return read


def _check_file_holds(
    path: Path, size: int, offset: int, shape: tuple[int, ...], dtype: np.dtype
) -> None:
    n_bytes = math.prod(shape) * dtype.itemsize
    if size < offset + n_bytes:
        raise ValueError(
            f"{path.name!r} declares a {shape} {dtype} movie ({n_bytes} bytes from byte "
            f"{offset}) but holds only {max(size - offset, 0)} bytes of data."
        )


def _checked_shape_and_dtype(shape: Sequence[int], dtype: Any, source: str) -> None:
    shape, dtype = tuple(shape), np.dtype(dtype)
    if len(shape) != 3:
        raise ValueError(
            f"{source} has shape {shape}; a movie must be a 3-D (time, y, x) stack of "
            "single-channel frames."
        )
    if min(shape) < 1:
        raise ValueError(f"{source} of shape {shape} holds no frames or empty frames.")
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise ValueError(
            f"{source} of shape {shape} has dtype {dtype}; a movie must hold integers or "
            "floating-point numbers."
        )


def _open_npy(path: Path) -> LazyMovie:
    with open(path, "rb") as handle:
        shape, fortran_order, dtype = read_npy_layout(handle, path.name)
        offset = handle.tell()
    source = f"{path.name!r}"
    if dtype.hasobject:
        raise ValueError(f"{source} holds Python objects (dtype {dtype}); never unpickled.")
    _checked_shape_and_dtype(shape, dtype, source)
    if fortran_order and shape[0] > 1:
        raise ValueError(
            f"{source} of shape {shape} is stored in Fortran order, so its frames are not "
            "contiguous; save it with np.save(path, np.ascontiguousarray(movie))."
        )
    return LazyMovie(_raw_frames_reader(path, offset, shape, dtype), shape, dtype, source)


def _open_tiff(path: Path) -> LazyMovie:
    import tifffile

    try:
        tiff = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError) as error:
        raise ValueError(f"{path.name!r} is not a readable TIFF file: {error}") from error
    try:
        if not tiff.series:
            raise ValueError(f"{path.name!r} holds no image series.")
        series = tiff.series[0]
        shape, dtype = tuple(series.shape), series.dtype
        source = f"{path.name!r}"
        if "S" in series.axes:  # samples per pixel: RGB(A) or other multi-channel pixels
            raise ValueError(
                f"{source} holds multi-channel (e.g. RGB) images of shape {shape} (axes "
                f"{series.axes!r}); a movie must be a stack of single-channel frames."
            )
        _checked_shape_and_dtype(shape, dtype, source)
        offset = series.dataoffset
        if offset is not None:  # one uncompressed block: plain reads, no tifffile per frame
            stored = np.dtype(dtype).newbyteorder(tiff.byteorder)
            read = _raw_frames_reader(path, offset, shape, stored)
            tiff.close()
            return LazyMovie(read, shape, stored, source)
    except Exception:
        tiff.close()
        raise
    return LazyMovie(_tiff_pages_reader(tiff, series), shape, dtype, source, tiff.close)


def _tiff_pages_reader(tiff: Any, series: Any) -> FrameReader:
    """Frames of a TIFF series decoded page by page (one thread at a time per file)."""
    lock = threading.Lock()

    def read(start: int, stop: int) -> np.ndarray:
        with lock:
            frames = series.asarray(key=range(start, stop), maxworkers=1)
        return frames.reshape(stop - start, *series.shape[1:])

    return read


def _open_h5_movie(path: Path, key: str | None) -> LazyMovie:
    import h5py

    handle = open_h5(path)
    try:
        if key is None:
            key = _the_only_movie_dataset(handle, path)
        dataset = h5_node(handle, key, path)
        if not isinstance(dataset, h5py.Dataset):
            raise ValueError(
                f"{path.name!r} has no dataset {key!r}; its 3-D datasets are "
                f"{_movie_datasets(handle)}."
            )
        source = f"{path.name!r}: dataset {dataset.name!r}"
        _checked_shape_and_dtype(dataset.shape, dataset.dtype, source)
        check_h5_dataset(dataset, path)
    except Exception:
        handle.close()
        raise
    lock = threading.Lock()

    def read(start: int, stop: int) -> np.ndarray:
        with lock:
            return dataset[start:stop]

    return LazyMovie(read, dataset.shape, dataset.dtype, source, handle.close)


def _movie_datasets(handle: Any) -> dict[str, tuple[int, ...]]:
    """Path → shape of every 3-D numeric dataset of an open HDF5 file (hard links only)."""
    import h5py

    found: dict[str, tuple[int, ...]] = {}

    def visit(name: str, node: Any) -> None:
        if (
            isinstance(node, h5py.Dataset)
            and len(node.shape) == 3
            and np.dtype(node.dtype).kind in _NUMERIC_KINDS
        ):
            found[name] = node.shape

    handle.visititems(visit)
    return found


def _the_only_movie_dataset(handle: Any, path: Path) -> str:
    found = _movie_datasets(handle)
    if len(found) != 1:
        raise ValueError(
            f"{path.name!r} holds {len(found)} 3-D numeric datasets {found}; choose the movie "
            "with key=."
        )
    return next(iter(found))


def _split_time_index(key: Any) -> tuple[Any, tuple[Any, ...]]:
    """The time part of a numpy index of a 3-D array and the index of the frames after it."""
    key = key if isinstance(key, tuple) else (key,)
    if any(part is Ellipsis for part in key):
        at = next(i for i, part in enumerate(key) if part is Ellipsis)
        fill = (slice(None),) * (3 - (len(key) - 1))
        key = key[:at] + fill + key[at + 1 :]
    if not key:
        return slice(None), ()
    time, rest = key[0], key[1:]
    if isinstance(time, (slice, int, np.integer)):
        return time, rest
    if isinstance(time, np.ndarray) and time.dtype == bool:
        raise IndexError("boolean indexing along time is not supported by a LazyMovie.")
    return np.asarray(time, dtype=np.int64).reshape(-1).tolist(), rest


CONTRAST_SAMPLE_FRAMES = 8
"""Frames (evenly spaced) whose values set a movie's initial contrast limits."""


def sampled_contrast_limits(movie: Any) -> list[float]:
    """Contrast limits of a movie from :data:`CONTRAST_SAMPLE_FRAMES` evenly spaced frames (read
    alone, so a lazy movie is never loaded whole): their 0.5th to 99.9th percentile."""
    frames = np.unique(np.linspace(0, movie.shape[0] - 1, CONTRAST_SAMPLE_FRAMES).astype(int))
    values = np.asarray(movie[frames.tolist()], dtype=np.float64)
    low, high = np.percentile(values, [0.5, 99.9])
    return [float(low), float(max(high, low + 1e-6))]
