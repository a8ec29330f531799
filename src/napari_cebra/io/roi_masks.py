"""ROI label images from weighted pixel masks (NWB ``PlaneSegmentation``, CaImAn ``A``).

Segmentation tools store each ROI as weights over pixels, and ROIs may overlap. A label image
gives every pixel to at most one ROI: the one with the largest weight there.
"""

from __future__ import annotations

import math

import numpy as np

from napari_cebra.io.suite2p import MAX_IMAGE_PIXELS


def check_image_shape(shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """``shape`` as ints if it is a positive image size of at most ``MAX_IMAGE_PIXELS`` pixels.

    Raises
    ------
    ValueError
        Naming ``where`` (the file and the part of it) and the shape.
    """
    try:
        shape = tuple(int(size) for size in shape)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: image size {shape!r} is not a list of integers.") from error
    if not shape or min(shape) < 1 or math.prod(shape) > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{where}: image size {shape} must be positive and hold at most {MAX_IMAGE_PIXELS} "
            "pixels."
        )
    return shape


def dominant_labels(
    pixels: np.ndarray,
    owners: np.ndarray,
    weights: np.ndarray,
    shape: tuple[int, ...],
    min_fraction: float = 0.0,
) -> np.ndarray:
    """Label image in which each pixel belongs to the ROI with the largest weight there.

    Parameters
    ----------
    pixels : np.ndarray
        Flat (C-order) index into an image of ``shape`` of each weight.
    owners : np.ndarray
        Label (≥ 1) of the ROI each weight belongs to.
    weights : np.ndarray
        The weights; only positive ones count.
    shape : tuple of int
        Image size (checked by the caller, e.g. with :func:`check_image_shape`).
    min_fraction : float
        A pixel keeps its strongest ROI's label only if that weight is at least this fraction of
        the ROI's largest weight (0 keeps every pixel with a positive weight).

    Returns
    -------
    np.ndarray
        ``shape`` int32; 0 where no ROI has a positive weight (or the strongest is too weak).
    """
    labels = np.zeros(math.prod(shape), dtype=np.int32)
    pixels = np.asarray(pixels, dtype=np.int64).ravel()
    owners = np.asarray(owners, dtype=np.int64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    positive = weights > 0
    pixels, owners, weights = pixels[positive], owners[positive], weights[positive]
    if pixels.size == 0:
        return labels.reshape(shape)
    order = np.lexsort((owners, weights))[::-1]  # strongest claim first (the later ROI on ties)
    claimed, strongest = np.unique(pixels[order], return_index=True)
    winners, winning = owners[order][strongest], weights[order][strongest]
    peak = np.zeros(int(owners.max()) + 1)
    np.maximum.at(peak, owners, weights)
    kept = winning >= min_fraction * peak[winners]
    labels[claimed[kept]] = winners[kept]
    return labels.reshape(shape)
