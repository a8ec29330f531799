"""The public rat-hippocampus recording ("achilles") and code-free reading of numpy pickles.

The CEBRA authors publish the recording as a gzipped joblib file (a pickle with the array bytes
written after each array's header). A pickle can run arbitrary code when it is loaded, so this
module never calls :func:`pickle.load` or :func:`joblib.load` on it: :func:`restricted_load` admits
only numpy arrays, dtypes, numpy scalars and plain containers, and reads joblib's array records
itself. Downloads are checked against the published MD5 checksums before anything is opened.
"""

from __future__ import annotations

import codecs
import collections
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

ACHILLES_URL = "https://cebra.fra1.digitaloceanspaces.com/data/rat_hippocampus/achilles.jl.gz"
ACHILLES_MD5 = ("5d7b243e07b24c387e5412cd5ff46f0b", "c52f9b55cbc23c66d57f3842214058b8")
"""MD5 of the gzipped download and of the unpacked ``achilles.jl`` (cebra 0.6.1)."""

_CHUNK_BYTES = 1 << 20


# --- restricted unpickling ----------------------------------------------------------------------


class _JoblibArrayRecord:
    """Stands in for ``joblib.numpy_pickle.NumpyArrayWrapper``: holds shape, dtype and order."""


def _numpy_core_attribute(submodule: str, name: str) -> Any:
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    return getattr(getattr(core, submodule), name)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "memmap"): np.ndarray,  # only compared against by joblib; never instantiated
        ("joblib.numpy_pickle", "NumpyArrayWrapper"): _JoblibArrayRecord,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): bytearray,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_core_attribute(
            "multiarray", "_reconstruct"
        )
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_core_attribute("multiarray", "scalar")
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_core_attribute(
            "numeric", "_frombuffer"
        )
    for name in ("Path", "PosixPath", "PurePosixPath"):  # suite2p ops hold paths: inert here
        allowed[("pathlib", name)] = pathlib.PurePosixPath
    for name in ("WindowsPath", "PureWindowsPath"):
        allowed[("pathlib", name)] = pathlib.PureWindowsPath
    return allowed


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that only builds numpy arrays, dtypes, scalars and plain containers.

    Any other global (a function or class a malicious pickle would call) raises
    :class:`pickle.UnpicklingError`. joblib array records are replaced by the arrays whose bytes
    follow them in the file, as ``joblib.load`` does.
    """

    dispatch = pickle._Unpickler.dispatch.copy()
    _allowed = _allowed_globals()

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self._raw = file

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only numpy arrays and plain containers "
                "are allowed"
            ) from None

    def _load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        if isinstance(self.stack[-1], _JoblibArrayRecord):
            self.stack.append(_read_joblib_array(self.stack.pop(), self._raw))

    dispatch[pickle.BUILD[0]] = _load_build


def _read_exactly(file: IO[bytes], n_bytes: int) -> bytes:
    chunks, remaining = [], n_bytes
    while remaining > 0:
        chunk = file.read(min(remaining, 64 * _CHUNK_BYTES))
        if not chunk:
            raise pickle.UnpicklingError(
                f"array data ends early: {n_bytes - remaining} of {n_bytes} bytes"
            )
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_joblib_array(record: _JoblibArrayRecord, file: IO[bytes]) -> np.ndarray:
    """Read the bytes of one joblib array record from the current position of ``file``."""
    state = vars(record)
    try:
        dtype, shape, order = np.dtype(state["dtype"]), tuple(state["shape"]), state["order"]
    except (KeyError, TypeError) as error:
        raise pickle.UnpicklingError(f"malformed joblib array record {state}") from error
    if dtype.hasobject:  # objects are a nested pickle stream: read it with the same restrictions
        return RestrictedUnpickler(file).load()
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = int.from_bytes(_read_exactly(file, 1), "little")
        _read_exactly(file, padding)
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(_read_exactly(file, count * dtype.itemsize), dtype=dtype, count=count)
    if order == "F":
        return flat.reshape(shape[::-1]).T.copy()
    return flat.reshape(shape).copy()


def _open_maybe_compressed(handle: IO[bytes]) -> IO[bytes]:
    """The decompressed stream of a gzip- or zlib-compressed joblib file, else ``handle``."""
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle)
    if magic[:1] == b"\x78":  # zlib header; a pickle starts with 0x80 (PROTO)
        return io.BytesIO(zlib.decompress(handle.read()))
    return handle


def restricted_load(file: str | os.PathLike | IO[bytes]) -> Any:
    """Load a pickle, joblib file or object ``.npy`` payload without executing code.

    Parameters
    ----------
    file : path-like or binary file
        A pickle or a (possibly gzip/zlib-compressed) joblib file, or an open binary file
        positioned at the start of a pickle stream.

    Returns
    -------
    object
        The unpickled object (numpy arrays, dicts, lists, tuples, numbers, strings).

    Raises
    ------
    ValueError
        The file references anything else (e.g. a function, as malicious pickles do) or is broken.
    """
    name = getattr(file, "name", file)
    if isinstance(file, (str, os.PathLike)) and not Path(file).is_file():
        raise FileNotFoundError(f"No such file: {os.fspath(file)}")
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:
                return RestrictedUnpickler(_open_maybe_compressed(handle)).load()
        return RestrictedUnpickler(file).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError) as error:
        raise ValueError(f"cannot load {name!s} safely: {error}") from error


_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy_header(handle: IO[bytes], name: str = "file") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of an open ``.npy`` file, leaving it at the payload.

    Raises
    ------
    ValueError
        Not an ``.npy`` file, or a format version other than 1.0 / 2.0.
    """
    try:
        version = np.lib.format.read_magic(handle)
        read_header = _NPY_HEADER_READERS.get(version)
        if read_header is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _, dtype = read_header(handle)
    except ValueError as error:
        raise ValueError(f"{name!r} is not a readable .npy file: {error}") from error
    return tuple(shape), dtype


def load_object_npy(path: str | os.PathLike) -> Any:
    """Read an ``.npy`` file whose array holds Python objects (e.g. suite2p ``stat.npy``).

    The header is parsed by numpy; the pickled payload goes through :func:`restricted_load`.
    0-d object arrays (``np.save`` of a dict) are unwrapped to the object.
    """
    with open(path, "rb") as handle:
        _, dtype = read_npy_header(handle, os.fspath(path))
        if not dtype.hasobject:
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        array = restricted_load(handle)
    if isinstance(array, np.ndarray) and array.ndim == 0:
        return array.item()
    return array


# --- the achilles recording ---------------------------------------------------------------------


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_to(
    url: str, target: Path, timeout: float, progress: Callable[[int, int | None], None] | None
) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(total) if total else None
            done = 0
            for chunk in iter(lambda: response.read(_CHUNK_BYTES), b""):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ConnectionError(
            f"could not download {url}: {getattr(error, 'reason', error)}. Download the file by "
            "hand and open it with load_achilles(path)."
        ) from error


def _gunzip_to(source: Path, target: Path) -> None:
    try:
        with gzip.open(source, "rb") as packed, open(target, "wb") as out:
            for chunk in iter(lambda: packed.read(_CHUNK_BYTES), b""):
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{source.name} is not a valid gzip file: {error}") from error


def _temporary_path(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, prefix=".achilles-", suffix=suffix)
    os.close(handle)
    return Path(name)


def download_achilles(
    dest_dir: str | os.PathLike,
    url: str = ACHILLES_URL,
    md5: tuple[str, str] = ACHILLES_MD5,
    *,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download and unpack the public rat-hippocampus recording of rat "achilles".

    The gzipped file is checked against ``md5[0]``, unpacked and checked against ``md5[1]``; only
    then is it moved (atomically) to ``dest_dir/achilles.jl``. On any failure nothing is left
    behind. An existing ``achilles.jl`` with the right checksum is reused without downloading.

    Parameters
    ----------
    dest_dir : path-like
        Folder for ``achilles.jl`` (created if needed).
    url : str
        Source of ``achilles.jl.gz`` (the authors' published URL by default).
    md5 : tuple of str
        MD5 hex digests of the gzipped and of the unpacked file.
    timeout : float
        Network timeout in seconds.
    progress : callable, optional
        Called with ``(bytes_downloaded, total_bytes_or_None)`` while downloading.

    Returns
    -------
    Path
        The unpacked ``achilles.jl``; open it with :func:`load_achilles`.

    Raises
    ------
    ConnectionError
        The URL cannot be reached.
    ValueError
        A checksum does not match (the message gives both digests) or the file is not gzip.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / "achilles.jl"
    packed_md5, unpacked_md5 = (value.lower() for value in md5)
    if final.is_file() and _md5_of(final) == unpacked_md5:
        return final
    packed, unpacked = _temporary_path(dest_dir, ".jl.gz"), _temporary_path(dest_dir, ".jl")
    try:
        _download_to(url, packed, timeout, progress)
        _check_md5(packed, packed_md5, f"the download from {url}")
        _gunzip_to(packed, unpacked)
        _check_md5(unpacked, unpacked_md5, f"the unpacked file from {url}")
        os.replace(unpacked, final)
    finally:
        packed.unlink(missing_ok=True)
        unpacked.unlink(missing_ok=True)
    return final


def _check_md5(path: Path, expected: str, what: str) -> None:
    actual = _md5_of(path)
    if actual != expected:
        raise ValueError(f"MD5 checksum mismatch for {what}: expected {expected}, got {actual}.")


def load_achilles(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Open ``achilles.jl`` (or another rat of the same dataset) without executing code.

    Parameters
    ----------
    path : path-like
        The unpacked joblib file: a dict with ``spikes`` (time × neurons) and ``position``
        (time × 3: position in metres, right-running flag, left-running flag).

    Returns
    -------
    neural : np.ndarray
        ``(T, n)`` float32 spike counts in 25 ms bins.
    position : np.ndarray
        ``(T, 3)`` float32 behaviour labels.
    """
    content = restricted_load(path)
    if not isinstance(content, dict) or not {"spikes", "position"} <= content.keys():
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(
            f"{os.fspath(path)!r} is not a rat-hippocampus file: expected a dict with 'spikes' "
            f"and 'position', got {keys}."
        )
    neural = np.asarray(content["spikes"], dtype=np.float32)
    position = np.asarray(content["position"], dtype=np.float32)
    if neural.ndim != 2 or position.ndim != 2 or len(neural) != len(position):
        raise ValueError(
            f"{os.fspath(path)!r}: 'spikes' must be (T, n) and 'position' (T, k) with the same T, "
            f"got shapes {neural.shape} and {position.shape}."
        )
    return neural, position
