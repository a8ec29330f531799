"""CaImAn CNMF results (``cnm.save("results.hdf5")``): traces and ROI labels.

CaImAn writes the fitted ``CNMF`` object as nested HDF5 groups:

- ``estimates/C``: denoised traces, components × frames; ``estimates/F_dff``: ΔF/F of the same
  components when it was computed (``"NoneType"`` otherwise);
- ``estimates/A``: spatial footprints, a pixels × components sparse matrix stored in CSC form as
  a group with ``data``, ``indices``, ``indptr`` and ``shape``; pixel ``p`` lies at
  ``np.unravel_index(p, dims, order="F")``;
- ``dims`` (image size) in ``estimates/dims``, at the top level or in ``params/data/dims``;
- ``estimates/Cn`` (correlation image), ``estimates/idx_components`` (the components that passed
  ``evaluate_components``) and ``params/data/fr`` (frame rate) when present.

Everything is read through :mod:`napari_cebra.io.matrices` (:func:`open_h5`, :func:`h5_node`,
:func:`read_h5_dataset`): no links to other files, no data outside the file, nothing unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.matrices import h5_node, open_h5, read_h5_dataset
from napari_cebra.io.roi_masks import check_image_shape, dominant_labels

CAIMAN_SUFFIXES = (".h5", ".hdf5")
FOOTPRINT_FRACTION = 0.2
"""A pixel is labelled with its strongest component only where that component's weight is at
least this fraction of the component's largest weight (CaImAn's footprints have long faint
tails that would otherwise cover most of the field of view)."""
_DIMS_KEYS = ("estimates/dims", "dims", "params/data/dims")


@dataclass(frozen=True)
class CaimanResults:
    """What :func:`read_caiman` returns.

    Attributes
    ----------
    traces : np.ndarray
        ``(T, n)`` float32 denoised traces ``C`` of the kept components.
    dff : np.ndarray or None
        ``(T, n)`` float32 ``F_dff`` of the same components, when the file holds it.
    rois : np.ndarray
        Label image of size ``dims`` (int32); label ``k`` is column ``k - 1`` of ``traces``.
    component_indices : np.ndarray
        ``(n,)`` int64 index of each kept component among CaImAn's components.
    correlation_image : np.ndarray or None
        ``Cn`` (float32, size ``dims``) when present.
    frame_rate : float or None
        ``params/data/fr`` when present.
    path : Path
        The file that was read.
    """

    traces: np.ndarray
    dff: np.ndarray | None
    rois: np.ndarray
    component_indices: np.ndarray
    correlation_image: np.ndarray | None
    frame_rate: float | None
    path: Path


def is_caiman_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file laid out as CaImAn's CNMF results (cheap: no data read).

    An unreadable or non-HDF5 file is not a CaImAn file.
    """
    import h5py

    path = Path(path).expanduser()
    if path.suffix.lower() not in CAIMAN_SUFFIXES or not path.is_file():
        return False
    try:
        with open_h5(path) as handle:
            estimates = h5_node(handle, "estimates", path)
            if not isinstance(estimates, h5py.Group):
                return False
            return isinstance(h5_node(estimates, "C", path), h5py.Dataset) and isinstance(
                h5_node(estimates, "A", path), h5py.Group
            )
    except ValueError:
        return False


def read_caiman(
    path: str | os.PathLike,
    only_accepted: bool = True,
    min_fraction: float = FOOTPRINT_FRACTION,
) -> CaimanResults:
    """Read traces, ROI labels and the correlation image of a CaImAn CNMF results file.

    Parameters
    ----------
    path : path-like
        The ``.hdf5``/``.h5`` file written by ``CNMF.save`` (``~`` is expanded).
    only_accepted : bool
        Keep only the components listed in ``estimates/idx_components`` when the file holds that
        list (all components otherwise).
    min_fraction : float
        See :data:`FOOTPRINT_FRACTION`.

    Returns
    -------
    CaimanResults

    Raises
    ------
    ValueError
        Not a CaImAn results file, missing or inconsistent parts (the message names the file and
        the dataset), non-finite traces, an image of more than ``MAX_IMAGE_PIXELS`` pixels, or
        data the HDF5 readers refuse (links to other files, external or unwritten data).
        ``FileNotFoundError`` if the file does not exist.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No such CaImAn file: {path}")
    with open_h5(path) as handle:
        estimates = _group(handle, "estimates", path)
        traces = _components_by_time(estimates, "C", path)
        n_components, n_frames = traces.shape
        dff = _optional_traces(estimates, "F_dff", path, traces.shape)
        dims = _dims(handle, path)
        footprints = _footprints(estimates, path, dims, n_components)
        kept = _kept_components(estimates, path, n_components) if only_accepted else None
        correlation = _optional_image(estimates, "Cn", path, dims)
        frame_rate = _frame_rate(handle, path)
    kept = np.arange(n_components) if kept is None else kept
    rois = _labels(footprints, kept, dims, min_fraction)
    return CaimanResults(
        traces=np.ascontiguousarray(traces[kept].T, dtype=np.float32),
        dff=None if dff is None else np.ascontiguousarray(dff[kept].T, dtype=np.float32),
        rois=rois,
        component_indices=kept.astype(np.int64),
        correlation_image=correlation,
        frame_rate=frame_rate,
        path=path,
    )


def _group(parent: Any, key: str, path: Path) -> Any:
    import h5py

    node = h5_node(parent, key, path)
    if not isinstance(node, h5py.Group):
        raise ValueError(f"{path.name!r} is not a CaImAn results file: it has no group {key!r}.")
    return node


def _dataset(parent: Any, key: str, path: Path) -> Any:
    """The dataset at ``key``, or ``None`` when absent or saved as CaImAn's ``"NoneType"``."""
    import h5py

    node = h5_node(parent, key, path)
    if not isinstance(node, h5py.Dataset) or node.dtype.kind in "SUO":
        return None
    return node


def _numbers(dataset: Any, path: Path) -> np.ndarray:
    values = read_h5_dataset(dataset, path)
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(
            f"{path.name!r}: {dataset.name!r} holds {values.dtype} values, not real numbers."
        )
    return values


def _components_by_time(estimates: Any, key: str, path: Path) -> np.ndarray:
    dataset = _dataset(estimates, key, path)
    if dataset is None:
        raise ValueError(f"{path.name!r}: CaImAn results without traces 'estimates/{key}'.")
    values = _numbers(dataset, path)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(
            f"{path.name!r}: 'estimates/{key}' must be components × frames, got shape "
            f"{values.shape}."
        )
    if not np.isfinite(values).all():
        component, frame = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"{path.name!r}: 'estimates/{key}' holds a non-finite value at component "
            f"{component}, frame {frame}."
        )
    return values


def _optional_traces(
    estimates: Any, key: str, path: Path, shape: tuple[int, int]
) -> np.ndarray | None:
    if _dataset(estimates, key, path) is None:
        return None
    values = _components_by_time(estimates, key, path)
    if values.shape != shape:
        raise ValueError(
            f"{path.name!r}: 'estimates/{key}' has shape {values.shape} but 'estimates/C' {shape}."
        )
    return values


def _dims(handle: Any, path: Path) -> tuple[int, ...]:
    for key in _DIMS_KEYS:
        dataset = _dataset(handle, key, path)
        if dataset is not None and dataset.ndim == 1 and dataset.size in (2, 3):
            return check_image_shape(tuple(_numbers(dataset, path)), f"{path.name!r}: {key!r}")
    raise ValueError(
        f"{path.name!r}: CaImAn results without the image size (none of {list(_DIMS_KEYS)})."
    )


def _footprints(
    estimates: Any, path: Path, dims: tuple[int, ...], n_components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(data, indices, indptr)`` of ``A`` in CSC form, checked against ``dims`` and ``C``."""
    group = _group(estimates, "A", path)
    parts = {}
    for key in ("data", "indices", "indptr", "shape"):
        dataset = _dataset(group, key, path)
        if dataset is None or dataset.ndim != 1:
            raise ValueError(
                f"{path.name!r}: 'estimates/A' needs a 1-D dataset {key!r} (a sparse CSC matrix)."
            )
        parts[key] = _numbers(dataset, path)
    data, indices, indptr, shape = (parts[k] for k in ("data", "indices", "indptr", "shape"))
    n_pixels = int(np.prod(dims))
    where = f"{path.name!r}: 'estimates/A'"
    shape = tuple(int(size) for size in shape)
    if shape != (n_pixels, n_components):
        raise ValueError(
            f"{where} has shape {shape}; expected (pixels, components) = "
            f"({n_pixels}, {n_components}) from dims {dims} and 'estimates/C'."
        )
    if (
        indptr.size != n_components + 1
        or indptr[0] != 0
        or indptr[-1] != data.size
        or indices.size != data.size
        or np.any(np.diff(indptr) < 0)
    ):
        raise ValueError(
            f"{where}: indptr ({indptr.size} entries, last {indptr[-1] if indptr.size else None})"
            f" does not fit {n_components} components and {data.size} stored weights."
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_pixels):
        raise ValueError(f"{where} has pixel indices outside the {n_pixels}-pixel image {dims}.")
    return data, indices.astype(np.int64), indptr.astype(np.int64)


def _kept_components(estimates: Any, path: Path, n_components: int) -> np.ndarray | None:
    dataset = _dataset(estimates, "idx_components", path)
    if dataset is None:
        return None
    kept = _numbers(dataset, path).ravel()
    if not np.issubdtype(kept.dtype, np.integer) or (
        kept.size and (kept.min() < 0 or kept.max() >= n_components)
    ):
        raise ValueError(
            f"{path.name!r}: 'estimates/idx_components' must index the {n_components} "
            f"components, got {kept.dtype} values {kept[:5]}…"
        )
    return np.unique(kept).astype(np.int64)


def _optional_image(estimates: Any, key: str, path: Path, dims: tuple[int, ...]) -> Any:
    dataset = _dataset(estimates, key, path)
    if dataset is None or tuple(dataset.shape) != dims:
        return None
    return _numbers(dataset, path).astype(np.float32)


def _frame_rate(handle: Any, path: Path) -> float | None:
    dataset = _dataset(handle, "params/data/fr", path)
    if dataset is None or dataset.shape != ():
        return None
    rate = float(_numbers(dataset, path))
    return rate if np.isfinite(rate) and rate > 0 else None


def _labels(
    footprints: tuple[np.ndarray, np.ndarray, np.ndarray],
    kept: np.ndarray,
    dims: tuple[int, ...],
    min_fraction: float,
) -> np.ndarray:
    data, indices, indptr = footprints
    counts = np.diff(indptr)
    owners = np.repeat(np.arange(counts.size), counts)
    label_of = np.zeros(counts.size, dtype=np.int64)
    label_of[kept] = np.arange(1, kept.size + 1)
    mine = label_of[owners] > 0
    pixels = np.ravel_multi_index(np.unravel_index(indices[mine], dims, order="F"), dims)
    return dominant_labels(pixels, label_of[owners[mine]], data[mine], dims, min_fraction)
