"""``cebra.datasets`` for the public rat-hippocampus recordings: ``init(name)``.

``init("rat-hippocampus-single-achilles")`` (also ``buddy``, ``cicero``, ``gatsby``) returns the
recording with cebra's attributes: ``neural`` (time × neurons spike counts in 25 ms bins) and
``continuous_index`` (time × 3: position on the 1.6 m track in metres, right-running and
left-running flags), both float32 torch tensors, ``len()`` and ``input_dimension``.

The file is looked for in ``get_datapath()/rat_hippocampus/{rat}.jl`` (the folder is
``$CEBRA_DATADIR``, default ``data`` in the current folder, as in cebra), checked against the
published MD5 checksum and read without unpickling; when it is missing it is downloaded once (also
checked). Offline, the error says which URL to fetch, where to put the file and which command does
it. Other cebra datasets (synthetic, monkey, Allen) are not provided.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from napari_cebra.io.datasets import (
    RAT_HIPPOCAMPUS_MD5,
    RAT_HIPPOCAMPUS_URL,
    check_md5,
    download_rat_hippocampus,
    load_rat_hippocampus,
)

PREFIX = "rat-hippocampus-single-"
DATASETS = tuple(f"{PREFIX}{rat}" for rat in RAT_HIPPOCAMPUS_MD5)

__all__ = ["DATASETS", "RatHippocampus", "get_datapath", "get_options", "init"]


def get_datapath(path: str | os.PathLike | None = None) -> Path:
    """The data folder: ``$CEBRA_DATADIR`` (default ``data``), or ``path`` inside it.

    Parameters
    ----------
    path : path-like, optional
        A path relative to the data folder.
    """
    root = Path(os.environ.get("CEBRA_DATADIR", "data")).expanduser()
    return root if path is None else root / path


def get_options(pattern: str | None = None) -> list[str]:
    """Names :func:`init` accepts, optionally filtered by a glob ``pattern`` (e.g. ``"*achilles"``)."""
    return [name for name in DATASETS if pattern is None or fnmatch.fnmatch(name, pattern)]


class RatHippocampus:
    """One rat's recording, with the attributes of cebra's ``SingleRatDataset``.

    Attributes
    ----------
    name : str
        ``"rat-hippocampus-single-{rat}"``.
    path : Path
        The unpacked ``{rat}.jl`` file it was read from.
    neural : torch.Tensor
        ``(T, n)`` float32 spike counts in 25 ms bins.
    continuous_index : torch.Tensor
        ``(T, 3)`` float32: position (m), right-running flag, left-running flag.
    discrete_index : None
        The recording has no discrete labels.
    """

    def __init__(self, name: str, path: Path) -> None:
        import torch

        neural, position = load_rat_hippocampus(path)
        self.name = name
        self.path = path
        self.neural = torch.from_numpy(neural)
        self.continuous_index = torch.from_numpy(position)
        self.discrete_index = None

    def __len__(self) -> int:
        return len(self.neural)

    @property
    def input_dimension(self) -> int:
        """Number of neurons."""
        return int(self.neural.shape[1])

    def __repr__(self) -> str:
        return f"RatHippocampus({self.name!r}, neural={tuple(self.neural.shape)})"


def _not_available(rat: str, folder: Path, error: Exception) -> ValueError:
    url = RAT_HIPPOCAMPUS_URL.format(rat=rat)
    return ValueError(
        f"{PREFIX}{rat} is not available: {error} Download {url}, unpack it to "
        f"{folder / f'{rat}.jl'} (or set CEBRA_DATADIR to the folder above 'rat_hippocampus'), "
        f"or run: napari-cebra download {rat} --dest {folder}"
    )


def init(name: str, *, download: bool = True, **kwargs: Any) -> RatHippocampus:
    """Open a public dataset by its cebra name.

    Parameters
    ----------
    name : str
        ``"rat-hippocampus-single-{achilles,buddy,cicero,gatsby}"`` (see :func:`get_options`).
    download : bool
        Download the file when it is not in the data folder yet.
    **kwargs
        Accepted for cebra's signature; ``root`` replaces the data folder.

    Returns
    -------
    RatHippocampus

    Raises
    ------
    ValueError
        An unknown name; or the file is missing and cannot be downloaded, or does not match the
        published checksum: the message gives the URL, the place for the file and the command.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: napari-cebra provides {', '.join(DATASETS)}.")
    rat = name.removeprefix(PREFIX)
    root = kwargs.get("root")
    folder = (Path(root).expanduser() if root else get_datapath()) / "rat_hippocampus"
    path = folder / f"{rat}.jl"
    try:
        if path.is_file():
            check_md5(path, RAT_HIPPOCAMPUS_MD5[rat][1], str(path))
        elif download:
            download_rat_hippocampus(rat, folder)
        else:
            raise FileNotFoundError(f"{path} does not exist.")
    except (ConnectionError, FileNotFoundError, ValueError, OSError) as error:
        raise _not_available(rat, folder, error) from error
    return RatHippocampus(name, path)
