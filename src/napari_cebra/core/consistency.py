"""Consistency of embeddings: how well one embedding linearly predicts another (spec §6.3).

The score for an ordered pair ``(i, j)`` is the in-sample R² of an ordinary least-squares fit
(with intercept) from embedding ``i`` to embedding ``j``, averaged uniformly over the output
dimensions of ``j``. ``between="runs"`` compares models trained on the same recording row by row;
``between="datasets"`` first aligns embeddings of different recordings on a shared behaviour label
(:func:`align_embeddings`) and then compares the aligned bin means.

A *collapsed* embedding (:func:`is_collapsed`: every sample maps to the same point, up to float
rounding) has no structure to compare: R² would be meaningless (a constant target is "predicted
perfectly", R² = 1, by sklearn's convention). Unlike ``cebra`` 0.6.1, which reports those numbers,
every score of a pair involving a collapsed embedding is NaN, with a
:class:`CollapsedEmbeddingWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

COLLAPSE_RELATIVE_SPREAD = 1e-4
"""An embedding is collapsed when the RMS distance of its rows from their mean is at most this
fraction of their RMS norm: the samples differ only at the level of float32 rounding (~1e-7)."""


class CollapsedEmbeddingWarning(UserWarning):
    """Consistency scores involving a collapsed embedding were set to NaN."""


def _to_numpy(array: Any) -> np.ndarray:
    """Convert a numpy array, list or (CPU or GPU) torch tensor to a numpy array."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _as_embedding(array: Any, name: str) -> np.ndarray:
    embedding = _to_numpy(array)
    if embedding.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (samples, dimensions) array, got shape {embedding.shape}."
        )
    if not np.issubdtype(embedding.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {embedding.dtype}.")
    return embedding


def _as_label_vector(array: Any, name: str) -> np.ndarray:
    label = _to_numpy(array)
    if label.dtype.kind in "USO" and any(isinstance(value, str) for value in label.ravel()):
        raise ValueError(
            f"Invalid labels dtype, expect floats or integers, got strings in {name} "
            f"(dtype {label.dtype})."
        )
    if label.ndim > 1:
        raise NotImplementedError(
            f"Invalid label dimensions, expect 1D labels only, got {label.ndim}D for {name} "
            f"(shape {label.shape})."
        )
    return label.astype(np.float64)


def is_collapsed(embedding: Any) -> bool:
    """Whether an embedding is collapsed: all its samples (nearly) the same point.

    Collapsed means that the spread of the rows (RMS distance from their mean) is at most
    :data:`COLLAPSE_RELATIVE_SPREAD` times their magnitude (RMS row norm), e.g. an all-zero
    embedding, or the embedding of a recording without activity, whose rows differ only by float
    rounding. Rows with NaN or infinite values are ignored; fewer than two finite rows count as
    collapsed.

    Parameters
    ----------
    embedding : array-like of shape (samples, dimensions)

    Returns
    -------
    bool
    """
    array = _as_embedding(embedding, "embedding").astype(np.float64)
    rows = array[np.isfinite(array).all(axis=1)]
    if len(rows) < 2:
        return True
    spread = np.sqrt(np.mean(np.sum((rows - rows.mean(axis=0)) ** 2, axis=1)))
    scale = np.sqrt(np.mean(np.sum(rows**2, axis=1)))
    return bool(spread <= COLLAPSE_RELATIVE_SPREAD * scale)


def _collapsed_flags(embeddings: Sequence[np.ndarray]) -> list[bool]:
    """:func:`is_collapsed` of every embedding, with one warning naming the collapsed ones."""
    flags = [is_collapsed(embedding) for embedding in embeddings]
    collapsed = [index for index, flag in enumerate(flags) if flag]
    if collapsed:
        warnings.warn(
            f"embeddings {collapsed} are collapsed (their samples differ by at most "
            f"{COLLAPSE_RELATIVE_SPREAD:g} of their magnitude: every sample maps to the same "
            "point), so their consistency is undefined: the scores of pairs involving them are "
            "NaN.",
            CollapsedEmbeddingWarning,
            stacklevel=4,
        )
    return flags


def linear_consistency(source: np.ndarray, target: np.ndarray) -> float:
    """In-sample R² of a linear regression (with intercept) from ``source`` to ``target``."""
    regression = LinearRegression().fit(source, target)
    return float(regression.score(source, target))


def _pairwise_scores(
    embeddings: Sequence[np.ndarray], ids: Sequence[Any], collapsed: Sequence[bool]
) -> tuple[list[float], list[tuple[Any, Any]]]:
    """Scores and id pairs for all ordered pairs ``(i, j)``, ``i != j``, in row-major order;
    NaN for pairs with a collapsed embedding."""
    scores, pairs = [], []
    for i, source in enumerate(embeddings):
        for j, target in enumerate(embeddings):
            if i != j:
                undefined = collapsed[i] or collapsed[j]
                scores.append(np.nan if undefined else linear_consistency(source, target))
                pairs.append((ids[i], ids[j]))
    return scores, pairs


def _average_by_pair(
    scores: Sequence[float], pairs: Sequence[tuple[Any, Any]]
) -> tuple[np.ndarray, np.ndarray]:
    """Average scores sharing the same ordered id pair, keeping first-appearance order."""
    grouped: dict[tuple[Any, Any], list[float]] = {}
    for score, pair in zip(scores, pairs, strict=True):
        grouped.setdefault(tuple(pair), []).append(score)
    unique_pairs = np.array(list(grouped), dtype=np.asarray(pairs).dtype)
    means = np.array([np.mean(values) for values in grouped.values()], dtype=np.float64)
    return means, unique_pairs.reshape(len(grouped), 2)


def _consistency_between_runs(
    embeddings: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows = [len(embedding) for embedding in embeddings]
    if len(set(n_rows)) != 1:
        raise ValueError(
            "Invalid embeddings: between-runs consistency needs embeddings of the same recording "
            f"with the same number of samples, got {n_rows} samples. Use between='datasets' "
            "(with labels) for embeddings of different recordings."
        )
    ids = np.arange(len(embeddings))
    scores, pairs = _pairwise_scores(embeddings, list(ids), _collapsed_flags(embeddings))
    return np.asarray(scores, dtype=np.float64), np.asarray(pairs, dtype=np.int64), ids


def _consistency_between_datasets(
    embeddings: list[np.ndarray],
    labels: Sequence[Any] | None,
    dataset_ids: Sequence[Any] | None,
    num_discretization_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if labels is None:
        raise ValueError(
            "Missing labels: between-datasets consistency aligns embeddings on a behaviour label, "
            "provide one 1-D label array per embedding."
        )
    if len(labels) != len(embeddings):
        raise ValueError(
            f"Invalid set of labels: expect one label array per embedding, got "
            f"{len(embeddings)} embeddings and {len(labels)} label arrays."
        )
    ids = list(range(len(embeddings))) if dataset_ids is None else list(dataset_ids)
    if len(ids) != len(embeddings):
        raise ValueError(
            f"Invalid dataset_ids: expect one id per embedding, got {len(ids)} ids for "
            f"{len(embeddings)} embeddings."
        )
    if len(set(ids)) < 2:
        raise ValueError(
            "Invalid number of dataset_ids: comparing datasets needs at least 2 distinct ids, "
            f"got {sorted(set(ids), key=str)}."
        )
    collapsed = _collapsed_flags(embeddings)
    aligned = align_embeddings(embeddings, labels, normalize=True, n_bins=num_discretization_bins)
    scores, pairs = _pairwise_scores(aligned, ids, collapsed)
    kept = [(score, pair) for score, pair in zip(scores, pairs, strict=True) if pair[0] != pair[1]]
    mean_scores, unique_pairs = _average_by_pair(
        [score for score, _ in kept], [pair for _, pair in kept]
    )
    return mean_scores, unique_pairs, np.array(ids)


def consistency_score(
    embeddings: Sequence[Any],
    between: str | None = None,
    labels: Sequence[Any] | None = None,
    dataset_ids: Sequence[Any] | None = None,
    num_discretization_bins: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consistency (linear-identifiability R²) between embeddings, as ``cebra.sklearn.metrics``.

    Parameters
    ----------
    embeddings : sequence of array-like, each (samples, dimensions)
        At least two embeddings. For ``between="runs"`` they must have the same number of rows
        (the output dimensions may differ).
    between : {"runs", "datasets"}
        ``"runs"``: several models trained on the same recording. ``"datasets"``: embeddings of
        different recordings, aligned on ``labels`` first.
    labels : sequence of 1-D array-like, optional
        Only for ``between="datasets"``: one label vector per embedding, used for alignment.
    dataset_ids : sequence, optional
        Only for ``between="datasets"``: the dataset each embedding comes from (default: each
        embedding is its own dataset). Scores between embeddings of the same dataset are dropped
        and scores with the same ``(id_a, id_b)`` are averaged.
    num_discretization_bins : int
        Number of bin edges for the label alignment (``between="datasets"``).

    Returns
    -------
    scores : np.ndarray
        One R² per compared ordered pair (squeezed); NaN for pairs involving a collapsed
        embedding (:func:`is_collapsed`, with a :class:`CollapsedEmbeddingWarning`).
    pairs : np.ndarray
        ``(n_scores, 2)`` ids of the source and target embedding of each score (squeezed).
    ids : np.ndarray
        ``arange(k)`` for runs, the ``dataset_ids`` for datasets.

    Raises
    ------
    ValueError
        Fewer than two embeddings, ``between`` missing, labels or ids given for runs, labels
        missing for datasets, string labels, fewer than two distinct dataset ids, mismatched
        lengths.
    NotImplementedError
        Unknown ``between`` or 2-D labels.
    """
    if len(embeddings) < 2:
        raise ValueError(
            "Invalid number of embeddings: at least 2 embeddings are needed to compare them, "
            f"got {len(embeddings)}."
        )
    if between is None:
        raise ValueError(
            'Missing between parameter: provide the type of comparison, "runs" or "datasets".'
        )
    arrays = [_as_embedding(e, f"embeddings[{i}]") for i, e in enumerate(embeddings)]
    if between == "runs":
        if labels is not None:
            raise ValueError("No labels should be provided for between-runs consistency.")
        if dataset_ids is not None:
            raise ValueError(
                "No dataset ID should be provided for between-runs consistency: all embeddings "
                "come from the same recording."
            )
        scores, pairs, ids = _consistency_between_runs(arrays)
    elif between == "datasets":
        scores, pairs, ids = _consistency_between_datasets(
            arrays, labels, dataset_ids, num_discretization_bins
        )
    else:
        raise NotImplementedError(
            f'Invalid comparison: between={between!r}, expected "runs" or "datasets".'
        )
    return scores.squeeze(), pairs.squeeze(), ids


def _bin_mean(
    embedding: np.ndarray, digitized: np.ndarray, bin_index: int, name: str
) -> np.ndarray:
    """Mean embedding of the samples in bin ``bin_index``, widening to ±1 and ±2 bins if empty."""
    for tolerance in (0, 1, 2):
        members = np.abs(digitized - bin_index) <= tolerance
        if members.any():
            return embedding[members].mean(axis=0)
    raise ValueError(
        f"Cannot align {name}: no sample has a label within 2 bins of bin {bin_index}; the labels "
        "do not cover the common label range densely enough (use fewer bins)."
    )


def align_embeddings(
    embeddings: Sequence[Any],
    labels: Sequence[Any],
    normalize: bool = True,
    n_bins: int = 100,
) -> list[np.ndarray]:
    """Align embeddings of different recordings on a common discretisation of their labels.

    The label range (global minimum to maximum over all label arrays) is cut at ``n_bins``
    evenly spaced edges; for each of the bins ``1 … n_bins - 1`` the mean embedding of the samples
    in that bin (or, if it is empty, within one and then two bins of it) is taken. Rows with NaN
    are dropped first.

    Parameters
    ----------
    embeddings : sequence of array-like, each (samples, dimensions)
    labels : sequence of 1-D array-like
        One label vector per embedding, same number of samples as the embedding.
    normalize : bool
        Scale each bin mean to unit L2 norm.
    n_bins : int
        Number of bin edges (at least 2).

    Returns
    -------
    list of np.ndarray
        One ``(n_bins - 1, dimensions)`` array per embedding.
    """
    if n_bins < 2:
        raise ValueError(f"Invalid value for n_bins: expect at least 2 bin edges, got {n_bins}.")
    if len(labels) != len(embeddings):
        raise ValueError(
            f"Invalid set of labels: expect one label array per embedding, got "
            f"{len(embeddings)} embeddings and {len(labels)} label arrays."
        )
    label_arrays = [_as_label_vector(label, f"labels[{i}]") for i, label in enumerate(labels)]
    arrays = [_as_embedding(e, f"embeddings[{i}]") for i, e in enumerate(embeddings)]
    for index, (embedding, label) in enumerate(zip(arrays, label_arrays, strict=True)):
        if len(embedding) != len(label):
            raise ValueError(
                f"Labels invalid: labels[{index}] has {len(label)} samples but "
                f"embeddings[{index}] has {len(embedding)}."
            )
    low = min(float(np.min(label)) for label in label_arrays)
    high = max(float(np.max(label)) for label in label_arrays)
    edges = np.linspace(low, high, n_bins)

    aligned = []
    for index, (embedding, label) in enumerate(zip(arrays, label_arrays, strict=True)):
        name = f"embeddings[{index}]"
        embedding = embedding.astype(np.float64)
        finite_rows = ~np.isnan(embedding).any(axis=1)
        embedding, label = embedding[finite_rows], label[finite_rows]
        digitized = np.digitize(label, edges)
        means = np.stack([_bin_mean(embedding, digitized, b, name) for b in range(1, n_bins)])
        if normalize:
            means = means / np.linalg.norm(means, axis=1, keepdims=True)
        aligned.append(means)
    return aligned


def consistency_matrix(scores: Any, pairs: Any, ids: Any) -> np.ndarray:
    """Arrange the output of :func:`consistency_score` as a square matrix.

    Parameters
    ----------
    scores, pairs, ids
        The three return values of :func:`consistency_score`.

    Returns
    -------
    np.ndarray
        ``(k, k)`` float64 matrix over the distinct ``ids`` (in order of first appearance):
        entry ``[a, b]`` is the score from embedding/dataset ``a`` to ``b``; the diagonal and pairs
        that were not compared are NaN.
    """
    score_values = np.atleast_1d(np.asarray(scores, dtype=np.float64))
    pair_array = np.asarray(pairs).reshape(-1, 2)
    if len(pair_array) != len(score_values):
        raise ValueError(
            f"scores and pairs do not match: {len(score_values)} scores for "
            f"{len(pair_array)} pairs (pairs shape {np.asarray(pairs).shape})."
        )
    distinct = list(dict.fromkeys(np.asarray(ids).tolist()))
    position = {value: index for index, value in enumerate(distinct)}
    matrix = np.full((len(distinct), len(distinct)), np.nan)
    for score, (source, target) in zip(score_values, pair_array.tolist(), strict=True):
        if source not in position or target not in position:
            raise ValueError(f"pair ({source!r}, {target!r}) names an id not in ids {distinct}.")
        matrix[position[source], position[target]] = score
    return matrix
