"""The public rat-hippocampus recordings (rats achilles, buddy, cicero, gatsby): download with
checksums, read safely.

The CEBRA authors publish the recording as a gzipped joblib file (a pickle with the array bytes
written after each array's header); it is read by
:func:`napari_cebra.io.safe_pickle.restricted_load`, never unpickled. Downloads are checked
against the published MD5 checksums before anything is opened.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from napari_cebra.core.files import replace_file_atomically
from napari_cebra.io.safe_pickle import restricted_load

RAT_HIPPOCAMPUS_URL = "https://cebra.fra1.digitaloceanspaces.com/data/rat_hippocampus/{rat}.jl.gz"
"""Where the CEBRA authors publish each rat's recording (``{rat}`` is the rat's name)."""
RAT_HIPPOCAMPUS_MD5 = {
    "achilles": ("5d7b243e07b24c387e5412cd5ff46f0b", "c52f9b55cbc23c66d57f3842214058b8"),
    "buddy": ("339290585be2188f48a176f05aaf5df6", "36341322907708c466871bf04bc133c2"),
    "cicero": ("f262a87d2e59f164cb404cd410015f3a", "a83b02dbdc884fdd7e53df362499d42f"),
    "gatsby": ("564e431c19e55db2286a9d64c86a94c4", "2b889da48178b3155011c12555342813"),
}
"""MD5 of the gzipped download and of the unpacked ``{rat}.jl`` per rat (cebra 0.6.1)."""
RATS = tuple(RAT_HIPPOCAMPUS_MD5)

_CHUNK_BYTES = 1 << 20


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
            f"could not download {url}: {getattr(error, 'reason', error)}."
        ) from error


def _gunzip_checked(source: Path, out: BinaryIO, expected_md5: str, what: str) -> None:
    """Unpack ``source`` into ``out``, checking the unpacked bytes' MD5 on the way (a
    mismatch raises before the caller's atomic writer moves anything into place)."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(source, "rb") as packed:
            for chunk in iter(lambda: packed.read(_CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{source.name} is not a valid gzip file: {error}") from error
    if digest.hexdigest() != expected_md5:
        raise ValueError(
            f"MD5 checksum mismatch for {what}: expected {expected_md5}, got {digest.hexdigest()}."
        )


def _temporary_path(directory: Path, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(dir=directory, prefix=".rat-hippocampus-", suffix=suffix)
    os.close(handle)
    return Path(name)


def download_rat_hippocampus(
    rat: str,
    dest_dir: str | os.PathLike,
    *,
    url: str | None = None,
    md5: tuple[str, str] | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download and unpack the public rat-hippocampus recording of one rat.

    The gzipped file is checked against ``md5[0]``, unpacked and checked against ``md5[1]``; only
    then is it moved (atomically) to ``dest_dir/{rat}.jl``. On any failure nothing is left
    behind. An existing ``{rat}.jl`` with the right checksum is reused without downloading.

    Parameters
    ----------
    rat : {"achilles", "buddy", "cicero", "gatsby"}
        The rat.
    dest_dir : path-like
        Folder for ``{rat}.jl`` (created if needed).
    url : str, optional
        Source of ``{rat}.jl.gz`` (default: the authors' published URL,
        :data:`RAT_HIPPOCAMPUS_URL`).
    md5 : tuple of str, optional
        MD5 hex digests of the gzipped and of the unpacked file (default: the published ones).
    timeout : float
        Network timeout in seconds.
    progress : callable, optional
        Called with ``(bytes_downloaded, total_bytes_or_None)`` while downloading.

    Returns
    -------
    Path
        The unpacked ``{rat}.jl``; open it with :func:`load_rat_hippocampus`.

    Raises
    ------
    ConnectionError
        The URL cannot be reached.
    ValueError
        An unknown rat, a checksum that does not match (the message gives both digests) or a file
        that is not gzip.
    """
    if rat not in RAT_HIPPOCAMPUS_MD5:
        raise ValueError(f"unknown rat {rat!r}: the public recordings are of {', '.join(RATS)}.")
    url = url or RAT_HIPPOCAMPUS_URL.format(rat=rat)
    md5 = md5 or RAT_HIPPOCAMPUS_MD5[rat]
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / f"{rat}.jl"
    packed_md5, unpacked_md5 = (value.lower() for value in md5)
    if final.is_file() and _md5_of(final) == unpacked_md5:
        return final
    packed = _temporary_path(dest_dir, ".jl.gz")
    try:
        _download_to(url, packed, timeout, progress)
        check_md5(packed, packed_md5, f"the download from {url}")
        what = f"the unpacked file from {url}"
        return replace_file_atomically(
            final, lambda out: _gunzip_checked(packed, out, unpacked_md5, what)
        )
    finally:
        packed.unlink(missing_ok=True)


def check_md5(path: Path, expected: str, what: str) -> None:
    """Raise a ValueError naming ``what`` and both digests when ``path``'s MD5 is not ``expected``."""
    actual = _md5_of(path)
    if actual != expected:
        raise ValueError(f"MD5 checksum mismatch for {what}: expected {expected}, got {actual}.")


def load_rat_hippocampus(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Open a rat's unpacked recording (e.g. ``achilles.jl``) without executing code.

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
