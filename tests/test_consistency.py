"""Consistency scores, alignment and the square matrix helper (spec §6.3, §10.2 #10)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.core.consistency import (
    align_embeddings,
    consistency_matrix,
    consistency_score,
)


def _random_embeddings(rng, k=4, n=1000, d=3):
    return [rng.normal(size=(n, d)) for _ in range(k)]


def test_runs_identical_embeddings_score_one(rng):
    embedding = rng.normal(size=(500, 3))
    scores, pairs, ids = consistency_score([embedding] * 4, between="runs")
    assert scores.shape == (12,)
    assert pairs.shape == (12, 2)
    np.testing.assert_array_equal(ids, np.arange(4))
    np.testing.assert_allclose(scores, 1.0, atol=1e-9)


def test_runs_random_embeddings_score_near_zero(rng):
    scores, pairs, _ = consistency_score(_random_embeddings(rng), between="runs")
    assert np.all(np.abs(scores) < 0.05)
    expected_pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    np.testing.assert_array_equal(pairs, expected_pairs)


def test_runs_linear_transform_is_consistent_and_dims_may_differ(rng):
    base = rng.normal(size=(400, 3))
    mixed = base @ rng.normal(size=(3, 5)) + 2.0
    scores, _, _ = consistency_score([base, mixed], between="runs")
    np.testing.assert_allclose(scores, 1.0, atol=1e-9)


def test_runs_accept_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    embedding = rng.normal(size=(100, 3)).astype(np.float32)
    scores, _, _ = consistency_score(
        [torch.from_numpy(embedding), torch.from_numpy(embedding)], between="runs"
    )
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"between": None}, ValueError, "Missing between"),
        ({"between": "all"}, NotImplementedError, "Invalid comparison"),
        ({"between": "runs", "labels": [np.zeros(10)] * 2}, ValueError, "No labels"),
        ({"between": "runs", "dataset_ids": [0, 1]}, ValueError, "No dataset ID"),
        ({"between": "datasets"}, ValueError, "Missing labels"),
    ],
)
def test_argument_errors(rng, kwargs, error, match):
    embeddings = [rng.normal(size=(10, 2)), rng.normal(size=(10, 2))]
    with pytest.raises(error, match=match):
        consistency_score(embeddings, **kwargs)


def test_runs_length_mismatch_names_the_sizes(rng):
    with pytest.raises(ValueError, match=r"same number of samples.*\[10, 12\]"):
        consistency_score([rng.normal(size=(10, 2)), rng.normal(size=(12, 2))], between="runs")


def test_single_embedding_rejected(rng):
    with pytest.raises(ValueError, match="Invalid number of embeddings.*got 1"):
        consistency_score([rng.normal(size=(10, 2))], between="runs")


def test_one_dimensional_embedding_rejected(rng):
    with pytest.raises(ValueError, match=r"embeddings\[1\].*shape \(10,\)"):
        consistency_score([rng.normal(size=(10, 2)), rng.normal(size=10)], between="runs")


def _ramp_labels(rng, k=4, n=1000):
    return [np.sort(rng.uniform(0, 1, n)) for _ in range(k)]


def test_datasets_four_embeddings(rng):
    labels = _ramp_labels(rng)
    embeddings = _random_embeddings(rng)
    scores, pairs, ids = consistency_score(embeddings, between="datasets", labels=labels)
    assert scores.shape == (12,)
    assert pairs.shape == (12, 2)
    np.testing.assert_array_equal(ids, np.arange(4))


def test_datasets_identical_embeddings_score_one(rng):
    label = np.sort(rng.uniform(0, 1, 1000))
    embedding = np.stack([np.cos(3 * label), np.sin(3 * label), label], axis=1)
    scores, _, _ = consistency_score([embedding] * 3, between="datasets", labels=[label] * 3)
    np.testing.assert_allclose(scores, 1.0, atol=1e-9)


def test_datasets_duplicate_ids_are_averaged(rng):
    labels = _ramp_labels(rng, k=4)
    embeddings = _random_embeddings(rng, k=4)
    scores, pairs, ids = consistency_score(
        embeddings, between="datasets", labels=labels, dataset_ids=["a", "b", "a", "c"]
    )
    assert scores.shape == (6,)
    np.testing.assert_array_equal(
        pairs, [["a", "b"], ["a", "c"], ["b", "a"], ["b", "c"], ["c", "a"], ["c", "b"]]
    )
    np.testing.assert_array_equal(ids, ["a", "b", "a", "c"])
    full = consistency_matrix(*consistency_score(embeddings, between="datasets", labels=labels))
    # a -> b averages embedding 0 -> 1 and embedding 2 -> 1
    np.testing.assert_allclose(scores[0], (full[0, 1] + full[2, 1]) / 2)


@pytest.mark.parametrize(
    ("labels", "ids", "error", "match"),
    [
        ([np.zeros((10, 2))] * 2, None, NotImplementedError, "Invalid label dimensions"),
        ([np.array(["x"] * 10)] * 2, None, ValueError, "Invalid labels dtype"),
        ([np.linspace(0, 1, 10)] * 2, [0, 0], ValueError, "Invalid number of dataset_ids"),
        ([np.linspace(0, 1, 10)], None, ValueError, "one label array per embedding"),
        ([np.linspace(0, 1, 10), np.linspace(0, 1, 9)], None, ValueError, "9 samples"),
    ],
)
def test_datasets_errors(rng, labels, ids, error, match):
    embeddings = [rng.normal(size=(10, 2)), rng.normal(size=(10, 2))]
    with pytest.raises(error, match=match):
        consistency_score(embeddings, between="datasets", labels=labels, dataset_ids=ids)


def test_align_embeddings_bins_and_normalisation(rng):
    label = np.linspace(0, 1, 2000)
    embedding = rng.normal(size=(2000, 4))
    embedding[5] = np.nan
    (aligned,) = align_embeddings([embedding], [label], n_bins=20)
    assert aligned.shape == (19, 4)
    np.testing.assert_allclose(np.linalg.norm(aligned, axis=1), 1.0)
    (raw,) = align_embeddings([embedding], [label], normalize=False, n_bins=20)
    edges = np.linspace(0, 1, 20)
    keep = ~np.isnan(embedding).any(axis=1)
    first_bin = keep & (np.digitize(label, edges) == 1)
    np.testing.assert_allclose(raw[0], embedding[first_bin].mean(axis=0))


def test_align_embeddings_falls_back_to_neighbouring_bins():
    label = np.array([0.0, 0.0, 1.0, 1.0])
    embedding = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    (raw,) = align_embeddings([embedding], [label], normalize=False, n_bins=4)
    # bin 1 holds label 0, bin 2 is empty -> bins 1..3 within 1 (only bin 1 has samples)
    np.testing.assert_allclose(raw[0], [1.0, 0.0])
    np.testing.assert_allclose(raw[1], [1.0, 0.0])
    assert raw.shape == (3, 2)


def test_align_embeddings_errors_when_labels_too_sparse():
    label = np.array([0.0, 1.0])
    with pytest.raises(ValueError, match="within 2 bins of bin"):
        align_embeddings([np.eye(2)], [label], n_bins=10)


def test_consistency_matrix_layout(rng):
    embeddings = _random_embeddings(rng, k=3, n=200)
    scores, pairs, ids = consistency_score(embeddings, between="runs")
    matrix = consistency_matrix(scores, pairs, ids)
    assert matrix.shape == (3, 3)
    assert np.isnan(np.diag(matrix)).all()
    for score, (i, j) in zip(scores, pairs, strict=True):
        assert matrix[i, j] == score


def test_consistency_matrix_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 scores for 1 pairs"):
        consistency_matrix([0.1, 0.2], [[0, 1]], [0, 1])


def test_equals_cebra_between_runs(rng):
    cebra_metrics = pytest.importorskip("cebra.integrations.sklearn.metrics")
    embeddings = [rng.normal(size=(300, d)) for d in (3, 3, 5)]
    ours = consistency_score(embeddings, between="runs")
    theirs = cebra_metrics.consistency_score(embeddings, between="runs")
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-12)


def test_equals_cebra_between_datasets(rng):
    cebra_metrics = pytest.importorskip("cebra.integrations.sklearn.metrics")
    labels = [rng.uniform(0, 1.6, 800) for _ in range(3)]
    embeddings = [
        np.stack([np.cos(lab), np.sin(lab), lab], axis=1) + rng.normal(0, 0.3, (800, 3))
        for lab in labels
    ]
    ours = consistency_score(embeddings, between="datasets", labels=labels)
    theirs = cebra_metrics.consistency_score(
        embeddings, between="datasets", labels=[label.copy() for label in labels]
    )
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
    assert np.all(ours[0] > 0.5)
