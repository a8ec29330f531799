"""How consistent several embeddings are: R² matrices on training and validation frames.

The science behind the Consistency runs widget, without Qt: :func:`compare_embeddings` scores
every pair of embeddings (runs of one recording, or datasets aligned on a behaviour label) on
their training rows and, when every embedding knows its train/validation split, on their
validation rows; :class:`ConsistencyView` holds what the widget shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from napari_cebra.core.consistency import consistency_matrix, consistency_score
from napari_cebra.workflows.verdicts import mean_consistency

SPLIT_COLUMN = "split"


@dataclass
class ConsistencyView:
    """What the widget shows: consistency matrices, their means and the embeddings compared.

    Attributes
    ----------
    names : list of str
        Heatmap row/column labels (runs, models, layers or datasets).
    between : str
        ``"runs"`` or ``"datasets"``.
    train : np.ndarray
        ``(k, k)`` consistency (R², NaN diagonal) on the training frames (all frames when there
        is no split).
    valid : np.ndarray or None
        The same on the validation frames.
    embeddings : list of np.ndarray
        Every frame's embedding of each run (training frames first), for adding layers.
    n_train : int
        Number of training frames at the start of each embedding.
    features : list of pandas.DataFrame or None
        Per-frame features of each embedding (for colouring its layer).
    seeds : list of int
        Seeds of trained runs (empty otherwise).
    models : list
        Fitted estimators of trained runs (empty otherwise).
    """

    names: list[str]
    between: str
    train: np.ndarray
    valid: np.ndarray | None
    embeddings: list[np.ndarray]
    n_train: int
    features: list[pd.DataFrame] | None = None
    seeds: list[int] = field(default_factory=list)
    models: list[Any] = field(default_factory=list)

    @property
    def mean_train(self) -> float:
        """Mean off-diagonal consistency on the training frames."""
        return mean_consistency(self.train)

    @property
    def mean_valid(self) -> float | None:
        """Mean off-diagonal consistency on the validation frames (``None`` without a split)."""
        return None if self.valid is None else mean_consistency(self.valid)


def consistency_between(
    embeddings: Sequence[np.ndarray],
    between: str = "runs",
    labels: Sequence[np.ndarray] | None = None,
    dataset_ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Square matrix of :func:`consistency_score` (R², NaN where not compared).

    Parameters
    ----------
    embeddings : sequence of np.ndarray
        At least two ``(T_i, d_i)`` embeddings (same ``T`` for ``between="runs"``).
    between : {"runs", "datasets"}
    labels : sequence of np.ndarray, optional
        One 1-D label per embedding to align on (``between="datasets"`` only).
    dataset_ids : sequence of str, optional
        Dataset of each embedding (``between="datasets"`` only).
    """
    if between == "runs":
        result = consistency_score(list(embeddings), between="runs")
    else:
        result = consistency_score(
            list(embeddings), between="datasets", labels=labels, dataset_ids=dataset_ids
        )
    return consistency_matrix(*result)


def running_loss_text(losses: Sequence[float]) -> str:
    """``"mean loss 1.2345"`` over the runs that report a loss yet, ``""`` while none does.

    The members of an ensemble report their loss as they go (NaN until they have one), so the
    mean covers the finite losses only and says how many runs it is of: ``"mean loss 1.2345
    (3 of 5 runs so far)"``. A running status never shows ``nan``.
    """
    values = np.asarray(losses, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return ""
    if finite.size == values.size:
        return f"mean loss {finite.mean():.4f}"
    return f"mean loss {finite.mean():.4f} ({finite.size} of {values.size} runs so far)"


def split_rows(features: pd.DataFrame | None, n_rows: int) -> np.ndarray | None:
    """Boolean ``(n_rows,)`` mask of training rows from a ``split`` feature, if there is one."""
    if features is None or SPLIT_COLUMN not in features or len(features) != n_rows:
        return None
    return (features[SPLIT_COLUMN].astype(str) == "train").to_numpy()


def compare_embeddings(
    embeddings: Sequence[np.ndarray],
    names: Sequence[str],
    *,
    between: str = "runs",
    train_masks: Sequence[np.ndarray | None] | None = None,
    labels: Sequence[np.ndarray] | None = None,
    features: Sequence[pd.DataFrame] | None = None,
) -> ConsistencyView:
    """Consistency of ``embeddings`` on their training rows and, if split, their validation rows.

    Parameters
    ----------
    embeddings : sequence of np.ndarray
        ``(T_i, d_i)`` embeddings; at least two.
    names : sequence of str
        One name per embedding (the datasets' names for ``between="datasets"``).
    between : {"runs", "datasets"}
    train_masks : sequence of (np.ndarray or None), optional
        Boolean training-row mask per embedding; validation is compared only when every
        embedding has one with both parts non-empty.
    labels : sequence of np.ndarray, optional
        1-D label per embedding to align on (``between="datasets"``).
    features : sequence of pandas.DataFrame, optional
        Per-frame features kept for adding the embeddings as layers.

    Raises
    ------
    ValueError
        Fewer than two embeddings, names or labels of the wrong length, and every error of
        :func:`consistency_score` (e.g. different lengths between runs).
    """
    arrays = [np.asarray(e) for e in embeddings]
    if len(arrays) < 2:
        raise ValueError(f"Choose at least 2 embeddings to compare, got {len(arrays)}.")
    if len(names) != len(arrays):
        raise ValueError(f"Got {len(names)} names for {len(arrays)} embeddings: {list(names)}.")
    masks = list(train_masks) if train_masks is not None else [None] * len(arrays)
    split = all(m is not None and m.any() and (~m).any() for m in masks)
    if not split:
        masks = [np.ones(len(e), dtype=bool) for e in arrays]

    def matrix(rows: str) -> np.ndarray:
        pick = [(m if rows == "train" else ~m) for m in masks]
        parts = [e[p] for e, p in zip(arrays, pick, strict=True)]
        if between == "runs":
            return consistency_between(parts, "runs")
        if labels is None:
            raise ValueError("Between-datasets consistency needs a label to align on.")
        aligned = [np.asarray(y)[p] for y, p in zip(labels, pick, strict=True)]
        return consistency_between(parts, "datasets", aligned, list(names))

    n_train = int(masks[0].sum())
    return ConsistencyView(
        names=list(names),
        between=between,
        train=matrix("train"),
        valid=matrix("valid") if split else None,
        embeddings=[np.asarray(e, dtype=np.float32) for e in embeddings],
        n_train=n_train if split else len(arrays[0]),
        features=None if features is None else list(features),
    )


def common_numeric_columns(tables: Sequence[pd.DataFrame | None]) -> list[str]:
    """Numeric feature columns present in every table (label candidates for alignment)."""
    if not tables or any(t is None for t in tables):
        return []
    names = [
        str(c)
        for c in tables[0].columns
        if c != "frame" and pd.api.types.is_numeric_dtype(tables[0][c])
    ]
    return [n for n in names if all(n in t and pd.api.types.is_numeric_dtype(t[n]) for t in tables)]
