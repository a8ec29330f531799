"""kNN / Lasso decoders and the hippocampus decoding protocol (spec §8, §10.2 #22)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from napari_cebra.workflows.decoding import (
    DecodingResult,
    KNNDecoder,
    L1LinearRegressor,
    decode_behaviour,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1)


def _ring_embedding(position: np.ndarray, rng, noise=0.05) -> np.ndarray:
    """A 3-D embedding on which position is a smooth angle (cosine kNN can decode it)."""
    angle = position / 1.6 * np.pi
    points = np.stack([np.cos(angle), np.sin(angle), np.full_like(angle, 0.3)], axis=1)
    return points + rng.normal(0, noise, points.shape)


def test_knn_regression_for_float_targets(rng):
    X = rng.normal(size=(200, 3))
    y = X[:, 0].astype(np.float32)
    decoder = KNNDecoder(n_neighbors=4, metric="euclidean").fit(X, y)
    assert type(decoder.model_).__name__ == "KNeighborsRegressor"
    prediction = decoder.predict(X)
    assert isinstance(prediction, np.ndarray)
    assert prediction.shape == (200,)
    assert decoder.score(X, y) > 0.8


def test_knn_classification_for_integer_targets(rng):
    X = rng.normal(size=(200, 3))
    y = (X[:, 1] > 0).astype(np.int32)
    decoder = KNNDecoder().fit(X, y)
    assert type(decoder.model_).__name__ == "KNeighborsClassifier"
    assert set(np.unique(decoder.predict(X))) <= {0, 1}
    assert isinstance(decoder.score(X, y), float)


@pytest.mark.parametrize("params", list(KNNDecoder.iter_hyperparams()))
def test_knn_hyperparams_fit_multicolumn(rng, params):
    X = rng.normal(size=(60, 4))
    y = rng.normal(size=(60, 2))
    prediction = KNNDecoder(**params).fit(X, y).predict(X)
    assert prediction.shape == (60, 2)


def test_knn_hyperparameter_grid():
    assert [p["n_neighbors"] for p in KNNDecoder.iter_hyperparams()] == [1, 4, 9, 16, 25]
    assert [p["alpha"] for p in L1LinearRegressor.iter_hyperparams()] == [
        0.001,
        0.01,
        0.1,
        1.0,
        10.0,
        100.0,
    ]


@pytest.mark.parametrize("decoder", [KNNDecoder(), L1LinearRegressor()])
def test_decoder_errors(rng, decoder):
    X = rng.normal(size=(20, 3))
    with pytest.raises(NotImplementedError, match="Invalid.*type"):
        decoder.fit(X, np.array(["a"] * 20))
    with pytest.raises(ValueError, match=r"Invalid.*shape.*\(19,\)"):
        decoder.fit(X, np.zeros(19))
    with pytest.raises(ValueError, match=r"X must be a 2-D.*\(20,\)"):
        decoder.fit(X[:, 0], np.zeros(20))
    with pytest.raises(NotFittedError):
        type(decoder)().predict(X)


def test_lasso_recovers_linear_map(rng):
    X = rng.normal(size=(300, 3))
    y = X @ np.array([2.0, -1.0, 0.0])
    decoder = L1LinearRegressor(alpha=0.001).fit(X, y)
    np.testing.assert_allclose(decoder.model_.coef_, [2.0, -1.0, 0.0], atol=0.01)
    assert decoder.score(X, y) > 0.999


def test_knn_equals_cebra_decoder(rng):
    cebra = pytest.importorskip("cebra")
    X = rng.normal(size=(150, 3)).astype(np.float32)
    y = rng.normal(size=150).astype(np.float32)
    labels = rng.integers(0, 3, 150)
    ours = KNNDecoder(n_neighbors=5).fit(X, y)
    theirs = cebra.KNNDecoder(n_neighbors=5).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X))
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y))
    ours_cls = KNNDecoder(n_neighbors=5).fit(X, labels)
    theirs_cls = cebra.KNNDecoder(n_neighbors=5).fit(X, labels)
    np.testing.assert_array_equal(ours_cls.predict(X), theirs_cls.predict(X))


def _behaviour_split(rng, n=2000):
    position = (0.8 + 0.8 * np.sin(np.arange(n) / 40.0)).astype(np.float32)
    right = (np.gradient(position) > 0).astype(np.float32)
    labels = np.stack([position, right, 1 - right], axis=1)
    split = int(0.8 * n)
    return labels[:split], labels[split:]


def test_decode_behaviour_position_and_direction(rng):
    train_labels, valid_labels = _behaviour_split(rng)
    direction_code = lambda labels: np.where(labels[:, 1:2] > 0, 1.0, -1.0)  # noqa: E731
    train_embedding = np.hstack(
        [_ring_embedding(train_labels[:, 0], rng), direction_code(train_labels)]
    )
    valid_embedding = np.hstack(
        [_ring_embedding(valid_labels[:, 0], rng), direction_code(valid_labels)]
    )
    result = decode_behaviour(train_embedding, valid_embedding, train_labels, valid_labels)
    assert isinstance(result, DecodingResult)
    assert result.direction_column == 1
    assert result.position_prediction.shape == (len(valid_labels),)
    assert result.position_median_abs_error < 0.05
    assert result.position_r2 > 0.9
    assert result.direction_accuracy > 0.95
    expected_error = np.median(np.abs(result.position_prediction - valid_labels[:, 0]))
    assert result.position_median_abs_error == pytest.approx(expected_error)
    summary = result.summary()
    assert set(summary) >= {"position_median_abs_error", "position_r2", "direction_accuracy"}


def test_decode_behaviour_random_embedding_is_poor(rng):
    train_labels, valid_labels = _behaviour_split(rng)
    result = decode_behaviour(
        rng.normal(size=(len(train_labels), 3)),
        rng.normal(size=(len(valid_labels), 3)),
        train_labels[:, 0],
        valid_labels[:, 0],
    )
    assert result.direction_accuracy is None
    assert result.position_r2 < 0.2
    assert result.position_median_abs_error > 0.2


def test_decode_behaviour_matches_sklearn_protocol(rng):
    train_labels, valid_labels = _behaviour_split(rng, n=1000)
    train_embedding = _ring_embedding(train_labels[:, 0], rng, noise=0.3)
    valid_embedding = _ring_embedding(valid_labels[:, 0], rng, noise=0.3)
    from sklearn.neighbors import KNeighborsRegressor

    reference = KNeighborsRegressor(n_neighbors=36, metric="cosine")
    reference.fit(train_embedding, train_labels[:, 0])
    expected = np.median(np.abs(reference.predict(valid_embedding) - valid_labels[:, 0]))
    result = decode_behaviour(
        train_embedding, valid_embedding, train_labels, valid_labels, direction_column=None
    )
    assert result.position_median_abs_error == pytest.approx(expected)
    assert result.direction_accuracy is None


def test_decode_behaviour_errors(rng):
    train_labels, valid_labels = _behaviour_split(rng, n=200)
    train_embedding = rng.normal(size=(len(train_labels), 3))
    valid_embedding = rng.normal(size=(len(valid_labels), 3))
    with pytest.raises(ValueError, match="valid_labels has 39 samples but valid_embedding has 40"):
        decode_behaviour(train_embedding, valid_embedding, train_labels, valid_labels[:-1])
    with pytest.raises(ValueError, match="position_column=5"):
        decode_behaviour(
            train_embedding, valid_embedding, train_labels, valid_labels, position_column=5
        )
    with pytest.raises(ValueError, match="fewer than n_neighbors=36"):
        decode_behaviour(train_embedding[:10], valid_embedding, train_labels[:10], valid_labels)
