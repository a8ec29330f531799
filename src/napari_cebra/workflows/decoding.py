"""Decoding behaviour from embeddings (spec §8).

:class:`KNNDecoder` and :class:`L1LinearRegressor` have the interface of ``cebra.KNNDecoder`` and
``cebra.L1LinearRegressor``. :func:`decode_behaviour` follows the CEBRA authors' hippocampus
protocol: the recording is split in time, CEBRA is fitted on the first part only, both parts are
embedded, and a cosine k-nearest-neighbour decoder (k = 36) trained on the training embedding
predicts the position on the validation embedding; the headline number is the median absolute
position error in label units (metres for the hippocampus data).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn.base
import sklearn.linear_model
import sklearn.metrics
import sklearn.neighbors
import sklearn.utils.validation

_MAX_DIRECTION_CLASSES = 16


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _check_features(X: Any, name: str = "X") -> np.ndarray:
    features = _to_numpy(X)
    if features.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (samples, dimensions) array, got shape {features.shape}."
        )
    return features


def _check_targets(X: np.ndarray, y: Any) -> np.ndarray:
    targets = _to_numpy(y)
    if len(targets) != len(X):
        raise ValueError(
            f"Invalid shape: y and X must have the same number of samples, got y of shape "
            f"{targets.shape} and X of shape {X.shape}."
        )
    if not (np.issubdtype(targets.dtype, np.floating) or np.issubdtype(targets.dtype, np.integer)):
        raise NotImplementedError(
            f"Invalid type: targets must be either floats or integers, got dtype {targets.dtype}."
        )
    return targets


class Decoder(sklearn.base.BaseEstimator):
    """Shared ``predict``/``score`` of the decoders; subclasses build ``self.model_`` in ``fit``."""

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets for the embedding ``X`` of shape (samples, dimensions)."""
        sklearn.utils.validation.check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(_check_features(X)))

    def score(self, X: Any, y: Any) -> float:
        """R² of the predictions (also for classification, like the reference)."""
        targets = _check_targets(_check_features(X), y)
        return float(sklearn.metrics.r2_score(targets, self.predict(X)))


class KNNDecoder(Decoder):
    """k-nearest-neighbour decoder: regression for float targets, classification for integers.

    Parameters
    ----------
    n_neighbors : int
        Number of neighbours.
    metric : str
        Distance of :class:`sklearn.neighbors.KNeighborsRegressor`; ``"cosine"`` suits CEBRA's
        hypersphere embeddings.
    """

    def __init__(self, n_neighbors: int = 3, metric: str = "cosine"):
        self.n_neighbors = n_neighbors
        self.metric = metric

    def fit(self, X: Any, y: Any) -> KNNDecoder:
        """Fit on an embedding ``X`` (samples, dimensions) and targets ``y`` (samples[, k])."""
        features = _check_features(X)
        targets = _check_targets(features, y)
        if np.issubdtype(targets.dtype, np.floating):
            estimator = sklearn.neighbors.KNeighborsRegressor
        else:
            estimator = sklearn.neighbors.KNeighborsClassifier
        self.model_ = estimator(n_neighbors=self.n_neighbors, metric=self.metric)
        self.model_.fit(features, targets)
        return self

    @staticmethod
    def iter_hyperparams() -> Iterator[dict[str, Any]]:
        """Parameter sets of the reference's decoder sweep (k = 1, 4, 9, 16, 25)."""
        for n_neighbors in (1, 4, 9, 16, 25):
            yield {"n_neighbors": n_neighbors, "metric": "cosine"}


class L1LinearRegressor(Decoder):
    """Linear decoder with an L1 penalty (:class:`sklearn.linear_model.Lasso`).

    Parameters
    ----------
    alpha : float
        Strength of the L1 penalty.
    """

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> L1LinearRegressor:
        """Fit on an embedding ``X`` (samples, dimensions) and targets ``y`` (samples[, k])."""
        features = _check_features(X)
        targets = _check_targets(features, y)
        self.model_ = sklearn.linear_model.Lasso(alpha=self.alpha).fit(features, targets)
        return self

    @staticmethod
    def iter_hyperparams() -> Iterator[dict[str, Any]]:
        """Parameter sets of the reference's decoder sweep (alpha = 0.001 … 100)."""
        for alpha in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0):
            yield {"alpha": alpha}


@dataclass
class DecodingResult:
    """Decoding of behaviour from a validation embedding.

    Attributes
    ----------
    position_median_abs_error : float
        Median of ``|predicted - true|`` position on the validation part, in label units.
    position_r2 : float
        R² of the position prediction on the validation part.
    direction_accuracy : float or None
        Fraction of validation samples whose direction class is predicted correctly; None when
        the labels have no direction column.
    position_prediction, direction_prediction : np.ndarray
        Decoded values for each validation sample (``direction_prediction`` empty without a
        direction column).
    n_neighbors : int
    metric : str
    position_column : int
    direction_column : int or None
    """

    position_median_abs_error: float
    position_r2: float
    direction_accuracy: float | None
    position_prediction: np.ndarray
    direction_prediction: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    n_neighbors: int = 36
    metric: str = "cosine"
    position_column: int = 0
    direction_column: int | None = None

    def summary(self) -> dict[str, Any]:
        """The scalar results as a JSON-able dict (no per-sample arrays)."""
        return {
            "position_median_abs_error": self.position_median_abs_error,
            "position_r2": self.position_r2,
            "direction_accuracy": self.direction_accuracy,
            "n_neighbors": self.n_neighbors,
            "metric": self.metric,
            "position_column": self.position_column,
            "direction_column": self.direction_column,
        }


def _as_label_table(labels: Any, name: str) -> np.ndarray:
    table = _to_numpy(labels)
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (samples, columns), got shape {table.shape}.")
    if not np.issubdtype(table.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {table.dtype}.")
    return table


def _is_class_column(values: np.ndarray) -> bool:
    """Whether a column holds a few integer classes (e.g. 0 = right, 1 = left)."""
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    return (
        finite.size > 0
        and bool(np.all(np.round(finite) == finite))
        and len(np.unique(finite)) <= _MAX_DIRECTION_CLASSES
    )


def _resolve_direction_column(
    train: np.ndarray, valid: np.ndarray, position_column: int, direction_column: int | str | None
) -> int | None:
    if direction_column is None:
        return None
    if direction_column == "auto":
        for column in range(train.shape[1]):
            if column != position_column and _is_class_column(
                np.concatenate([train[:, column], valid[:, column]])
            ):
                return column
        return None
    column = int(direction_column)
    if not 0 <= column < train.shape[1]:
        raise ValueError(
            f"direction_column={column} is out of range for labels with {train.shape[1]} columns."
        )
    return column


def decode_behaviour(
    train_embedding: Any,
    valid_embedding: Any,
    train_labels: Any,
    valid_labels: Any,
    n_neighbors: int = 36,
    metric: str = "cosine",
    position_column: int = 0,
    direction_column: int | str | None = "auto",
) -> DecodingResult:
    """Decode position (and running direction) from embeddings, as in the authors' demos.

    Parameters
    ----------
    train_embedding, valid_embedding : array-like, (samples, dimensions)
        Embeddings of the training and the validation part of the recording (the model is fitted
        on the training part only).
    train_labels, valid_labels : array-like, (samples,) or (samples, columns)
        Behaviour of the two parts, e.g. the achilles layout ``[position, right, left]``.
    n_neighbors : int
        k of the kNN decoders (36 in the authors' demo).
    metric : str
        kNN distance (cosine in the demo).
    position_column : int
        Column decoded by kNN regression.
    direction_column : int, "auto" or None
        Column decoded by kNN classification. ``"auto"`` picks the first other column holding a
        few integer classes (the ``right`` indicator of the achilles layout); None skips it.

    Returns
    -------
    DecodingResult
    """
    train_x = _check_features(train_embedding, "train_embedding")
    valid_x = _check_features(valid_embedding, "valid_embedding")
    train_y = _as_label_table(train_labels, "train_labels")
    valid_y = _as_label_table(valid_labels, "valid_labels")
    for name, x, y in (("train", train_x, train_y), ("valid", valid_x, valid_y)):
        if len(x) != len(y):
            raise ValueError(
                f"{name}_labels has {len(y)} samples but {name}_embedding has {len(x)} "
                f"(shapes {y.shape} and {x.shape})."
            )
    if train_y.shape[1] != valid_y.shape[1]:
        raise ValueError(
            f"train_labels and valid_labels have different columns: {train_y.shape} vs "
            f"{valid_y.shape}."
        )
    if not 0 <= position_column < train_y.shape[1]:
        raise ValueError(
            f"position_column={position_column} is out of range for labels with "
            f"{train_y.shape[1]} columns."
        )
    if len(train_x) < n_neighbors:
        raise ValueError(
            f"train_embedding has {len(train_x)} samples, fewer than n_neighbors={n_neighbors}."
        )

    position = KNNDecoder(n_neighbors=n_neighbors, metric=metric)
    position.fit(train_x, train_y[:, position_column].astype(np.float64))
    true_position = valid_y[:, position_column].astype(np.float64)
    predicted_position = position.predict(valid_x)

    column = _resolve_direction_column(train_y, valid_y, position_column, direction_column)
    accuracy, predicted_direction = None, np.empty(0, np.int64)
    if column is not None:
        direction = KNNDecoder(n_neighbors=n_neighbors, metric=metric)
        direction.fit(train_x, train_y[:, column].astype(np.int64))
        predicted_direction = direction.predict(valid_x)
        accuracy = float(np.mean(predicted_direction == valid_y[:, column].astype(np.int64)))

    return DecodingResult(
        position_median_abs_error=float(np.median(np.abs(predicted_position - true_position))),
        position_r2=float(sklearn.metrics.r2_score(true_position, predicted_position)),
        direction_accuracy=accuracy,
        position_prediction=predicted_position,
        direction_prediction=predicted_direction,
        n_neighbors=n_neighbors,
        metric=metric,
        position_column=position_column,
        direction_column=column,
    )
