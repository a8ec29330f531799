"""suite2p output folders (``plane0``): neuropil-corrected traces of accepted cells and ROI labels.

A ``plane0`` folder holds ``F.npy`` and ``Fneu.npy`` (ROIs × frames), ``iscell.npy`` (ROIs × 2:
accepted flag, classifier probability), ``stat.npy`` (one dict per ROI with pixel coordinates
``ypix``/``xpix`` and weights ``lam``) and ``ops.npy`` or ``ops.json`` (image size ``Ly``/``Lx``,
mean image, frame rate ``fs``). ``stat.npy`` and ``ops.npy`` are pickles: they are read with
:func:`napari_cebra.io.npy.load_object_npy`, which refuses anything but arrays and containers
and bounds the memory a pickle can ask for. The ROI label image is at most
:data:`MAX_IMAGE_PIXELS` pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.npy import load_npy, load_object_npy

REQUIRED_FILES = ("F.npy", "Fneu.npy", "stat.npy")
MAX_IMAGE_PIXELS = 1 << 28
"""Largest ROI label image built (``Ly * Lx``; 1 GiB of int32), whatever ``ops`` or ``stat`` say."""


@dataclass(frozen=True)
class Suite2pRecording:
    """What :func:`read_suite2p` returns.

    Attributes
    ----------
    traces : np.ndarray
        ``(T, n)`` float32 ``F - neuropil_coefficient * Fneu`` of the kept ROIs.
    rois : np.ndarray
        ``(Ly, Lx)`` int32 label image; label ``k`` is column ``k - 1`` of ``traces``.
    iscell : np.ndarray
        ``(n_rois,)`` bool classifier decision for every suite2p ROI.
    roi_indices : np.ndarray
        ``(n,)`` int64 index into suite2p's ROI list of each kept ROI.
    mean_image : np.ndarray or None
        ``(Ly, Lx)`` float32 ``meanImg`` from ``ops`` when present.
    frame_rate : float or None
        ``fs`` from ``ops`` when present.
    folder : Path
        The ``plane0`` folder that was read.
    """

    traces: np.ndarray
    rois: np.ndarray
    iscell: np.ndarray
    roi_indices: np.ndarray
    mean_image: np.ndarray | None
    frame_rate: float | None
    folder: Path


def find_plane_folder(folder: str | os.PathLike) -> Path | None:
    """The folder itself if it holds suite2p outputs, else its ``plane0`` (or ``suite2p/plane0``)."""
    folder = Path(folder).expanduser()
    for candidate in (folder, folder / "plane0", folder / "suite2p" / "plane0"):
        if all((candidate / name).is_file() for name in REQUIRED_FILES):
            return candidate
    return None


def read_suite2p(
    folder: str | os.PathLike, neuropil_coefficient: float = 0.7, only_cells: bool = True
) -> Suite2pRecording:
    """Read a suite2p ``plane0`` folder.

    Parameters
    ----------
    folder : path-like
        The ``plane0`` folder (or a folder holding ``plane0`` or ``suite2p/plane0``); ``~`` is
        expanded.
    neuropil_coefficient : float
        Weight of the neuropil trace subtracted from each ROI trace (suite2p's default 0.7).
    only_cells : bool
        Keep only ROIs that ``iscell.npy`` accepts (all ROIs when the file is missing).

    Returns
    -------
    Suite2pRecording

    Raises
    ------
    ValueError
        Missing files, inconsistent shapes, non-numeric or complex traces, pickles that are refused
        or ask for too much memory, an image larger than :data:`MAX_IMAGE_PIXELS`, or pixel
        coordinates outside the image.
    """
    plane = find_plane_folder(folder)
    if plane is None:
        raise ValueError(
            f"{os.fspath(folder)!r} is not a suite2p plane folder: it needs {', '.join(REQUIRED_FILES)}."
        )
    fluorescence = _load_numeric(plane / "F.npy")
    neuropil = _load_numeric(plane / "Fneu.npy")
    if fluorescence.ndim != 2 or neuropil.shape != fluorescence.shape:
        raise ValueError(
            f"F.npy must be (ROIs, frames) and Fneu.npy the same shape, got {fluorescence.shape} "
            f"and {neuropil.shape} in {plane}."
        )
    n_rois = fluorescence.shape[0]
    iscell = _read_iscell(plane, n_rois)
    stat = _read_stat(plane, n_rois)
    ops = _read_ops(plane)
    shape = _image_shape(ops, stat, plane)
    kept = np.flatnonzero(iscell) if only_cells else np.arange(n_rois)
    traces = (fluorescence[kept] - neuropil_coefficient * neuropil[kept]).T
    mean_image = ops.get("meanImg")
    frame_rate = ops.get("fs")
    return Suite2pRecording(
        traces=np.ascontiguousarray(traces, dtype=np.float32),
        rois=labels_from_stat([stat[i] for i in kept], shape),
        iscell=iscell,
        roi_indices=kept.astype(np.int64),
        mean_image=None if mean_image is None else np.asarray(mean_image, dtype=np.float32),
        frame_rate=None if frame_rate is None else float(frame_rate),
        folder=plane,
    )


def labels_from_stat(stat: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """Label image ``(Ly, Lx)`` int32 with ROI ``k`` (0-based in ``stat``) labelled ``k + 1``.

    A pixel claimed by several ROIs goes to the one with the largest weight ``lam`` there (the
    later ROI when weights are missing or equal).
    """
    labels = np.zeros(shape, dtype=np.int32)
    pixels, owners, weights = [], [], []
    for k, roi in enumerate(stat):
        y = np.asarray(roi["ypix"], dtype=np.int64).ravel()
        x = np.asarray(roi["xpix"], dtype=np.int64).ravel()
        if y.shape != x.shape:
            raise ValueError(f"ROI {k}: ypix and xpix differ in length ({y.size} vs {x.size}).")
        outside = (y < 0) | (y >= shape[0]) | (x < 0) | (x >= shape[1])
        if outside.any():
            raise ValueError(
                f"ROI {k} has pixels outside the {shape[0]}×{shape[1]} image, e.g. "
                f"(y={y[outside][0]}, x={x[outside][0]})."
            )
        lam = roi.get("lam")
        lam = np.ones(y.size) if lam is None else np.asarray(lam, dtype=np.float64).ravel()
        pixels.append(y * shape[1] + x)
        owners.append(np.full(y.size, k + 1, dtype=np.int32))
        weights.append(lam)
    if not pixels:
        return labels
    pixels, owners, weights = map(np.concatenate, (pixels, owners, weights))
    order = np.lexsort((owners, weights))[::-1]  # strongest claim first
    claimed, strongest = np.unique(pixels[order], return_index=True)
    labels.reshape(-1)[claimed] = owners[order][strongest]
    return labels


def _load_numeric(path: Path) -> np.ndarray:
    try:
        array = load_npy(path)
    except ValueError as error:
        raise ValueError(f"{error} (in {path.parent})") from error
    if np.iscomplexobj(array) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path} holds {array.dtype} values, not real numbers.")
    return array


def _read_iscell(plane: Path, n_rois: int) -> np.ndarray:
    path = plane / "iscell.npy"
    if not path.is_file():
        return np.ones(n_rois, dtype=bool)
    iscell = _load_numeric(path)
    flags = iscell[:, 0] if iscell.ndim == 2 else iscell
    if flags.shape != (n_rois,):
        raise ValueError(
            f"iscell.npy has shape {iscell.shape}, but F.npy holds {n_rois} ROIs ({plane})."
        )
    return flags.astype(bool)


def _read_stat(plane: Path, n_rois: int) -> list[dict[str, Any]]:
    stat = load_object_npy(plane / "stat.npy")
    stat = list(np.asarray(stat, dtype=object).ravel())
    if len(stat) != n_rois or not all(
        isinstance(s, dict) and {"ypix", "xpix"} <= s.keys() for s in stat
    ):
        raise ValueError(
            f"stat.npy must hold one dict with 'ypix' and 'xpix' per ROI ({n_rois} ROIs in F.npy), "
            f"got {len(stat)} entries ({plane})."
        )
    return stat


def _read_ops(plane: Path) -> dict[str, Any]:
    if (plane / "ops.npy").is_file():
        ops = load_object_npy(plane / "ops.npy")
    elif (plane / "ops.json").is_file():
        with open(plane / "ops.json", encoding="utf-8") as handle:
            try:
                ops = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"{plane / 'ops.json'} is not valid JSON: {error}") from error
    else:
        return {}
    if not isinstance(ops, dict):
        raise ValueError(f"ops in {plane} must be a dict, got {type(ops).__name__}.")
    return ops


def _image_shape(ops: dict[str, Any], stat: list[dict[str, Any]], plane: Path) -> tuple[int, int]:
    if "Ly" in ops and "Lx" in ops:
        try:
            height, width, source = int(ops["Ly"]), int(ops["Lx"]), "ops"
        except (TypeError, ValueError) as error:
            raise ValueError(f"ops Ly/Lx in {plane} are not integers: {error}") from error
    elif not stat:
        raise ValueError(f"cannot tell the image size of {plane}: no ops file and no ROIs.")
    else:
        height = max(int(np.max(roi["ypix"])) for roi in stat) + 1
        width = max(int(np.max(roi["xpix"])) for roi in stat) + 1
        source = "the largest ROI pixel coordinates"
    if height < 1 or width < 1 or height * width > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{source} give an image of {height}×{width} pixels in {plane}; expected a positive "
            f"size of at most {MAX_IMAGE_PIXELS} pixels."
        )
    return height, width
