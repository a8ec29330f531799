"""Writing files so that nothing is ever half-written: the one way the package writes a file.

Every file the package writes (model files, the report, grid-search indexes, downloads) goes
through :func:`replace_file_atomically` or :func:`write_texts_atomically`:

* the content is written to a hidden temporary file in the target's folder, flushed to disk and
  moved into place with :func:`os.replace`, so readers see the old file or the complete new one;
* ``~`` is expanded; a symbolic link is written *through* (its target is replaced, the link stays);
* a replaced file keeps its permission bits; a new file gets the usual ``0o666`` minus the umask
  (not the ``0o600`` of :func:`tempfile.mkstemp`);
* when writing fails (full disk, no permission, missing folder) the temporary file is removed, the
  old file is left untouched and the error names the target, not the temporary file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = ["replace_file_atomically", "target_path", "write_texts_atomically"]


def target_path(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` changes: ``~`` expanded, symbolic links followed."""
    path = Path(path).expanduser()
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def _process_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_process_umask()


def _named_error(error: OSError, target: Path) -> OSError:
    """The same kind of error, naming ``target`` instead of a temporary file."""
    reason = error.strerror or str(error)
    return type(error)(error.errno, f"could not write {target}: {reason}", str(target))


def _check_folder(target: Path) -> None:
    if not target.parent.is_dir():
        raise FileNotFoundError(
            2, f"could not write {target}: the folder {target.parent} does not exist", str(target)
        )


def replace_file_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Let ``write`` fill a temporary file next to ``path``, then move it into place.

    Parameters
    ----------
    path : path-like
        The file to create or replace (``~`` expanded, a symbolic link written through).
    write : callable
        Called with the temporary file, opened for writing in binary mode.

    Returns
    -------
    Path
        The file that was written (the link's target when ``path`` is a symbolic link).

    Raises
    ------
    OSError
        Writing failed; the message names the target and ``path`` is left as it was.
    """
    target = target_path(path)
    _check_folder(target)
    mode = _mode_for(target)
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as error:
        raise _named_error(error, target) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _named_error(error, target) from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_texts_atomically(contents: Mapping[str | os.PathLike, str]) -> list[Path]:
    """Write several UTF-8 text files; none is moved into place until all are written.

    Parameters
    ----------
    contents : mapping of path-like to str
        The files and their texts.

    Returns
    -------
    list of Path
        The files written, in the order given.

    Raises
    ------
    OSError
        Writing failed; the message names the file, and no file was changed.
    """
    targets = [target_path(path) for path in contents]
    temporaries: list[Path] = []
    try:
        for target, text in zip(targets, contents.values(), strict=True):
            _check_folder(target)
            mode = _mode_for(target)
            try:
                descriptor, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
                )
                temporaries.append(Path(name))
                with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                    stream.write(text)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.chmod(name, mode)
            except OSError as error:
                raise _named_error(error, target) from error
        for target, temporary in zip(targets, temporaries, strict=True):
            try:
                os.replace(temporary, target)
            except OSError as error:
                raise _named_error(error, target) from error
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
    return targets
