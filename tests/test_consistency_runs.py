"""Time splits (workflows.splits) and consistency runs (workflows.consistency_runs)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.io.synthetic import place_cell_recording
from napari_cebra.workflows.consistency_runs import (
    ConsistencyRuns,
    consistency_runs,
    iter_consistency_runs,
)
from napari_cebra.workflows.splits import split_arrays, train_valid_split

PARAMS = dict(
    model_architecture="offset10-model",
    batch_size=32,
    max_iterations=15,
    output_dimension=3,
    num_hidden_units=16,
    device="cpu",
    time_offsets=5,
)


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=500, n_neurons=20, seed=4)


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_frames", "fraction", "train", "valid"),
    [(100, 0.2, slice(0, 80), slice(80, 100)), (10, 0.25, slice(0, 8), slice(8, 10))],
)
def test_split_keeps_validation_at_the_end(n_frames, fraction, train, valid):
    assert train_valid_split(n_frames, fraction) == (train, valid)


def test_split_without_validation():
    assert train_valid_split(50, 0) == (slice(0, 50), slice(50, 50))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, "0.2", True])
def test_split_rejects_fractions_outside_unit_interval(fraction):
    with pytest.raises(ValueError, match=r"valid_fraction must be a number in \[0, 1\)"):
        train_valid_split(100, fraction)


def test_split_rejects_too_short_parts():
    with pytest.raises(ValueError, match="9 training and 1 validation frames"):
        train_valid_split(10, 0.1)
    with pytest.raises(ValueError, match="n_frames must be a positive integer"):
        train_valid_split(0)


def test_split_arrays_splits_data_and_labels_alike():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    (X_train, y_train), (X_valid, y_valid) = split_arrays(X, y, valid_fraction=0.3)
    np.testing.assert_array_equal(X_train, X[:7])
    np.testing.assert_array_equal(y_valid, [7, 8, 9])
    assert X_valid.shape == (3, 2) and y_train.shape == (7,)
    with pytest.raises(ValueError, match=r"y\[0\] has shape \(9,\) but X has 10 frames"):
        split_arrays(X, y[:9])


# ----------------------------------------------------------------------------------------------
# consistency runs
# ----------------------------------------------------------------------------------------------


def test_identical_seeds_are_perfectly_consistent(recording):
    runs = consistency_runs(PARAMS, recording.neural, seeds=[3, 3, 3])
    assert runs.mean_train == pytest.approx(1.0, abs=1e-6)
    assert runs.mean_valid == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(runs.train_scores, 1.0, atol=1e-6)


def test_runs_hold_models_embeddings_and_matrices(recording):
    records = []
    runs = consistency_runs(
        PARAMS, recording.neural, recording.position, n_runs=3, progress=records.append
    )
    assert isinstance(runs, ConsistencyRuns)
    assert runs.seeds == [0, 1, 2] and [m.seed for m in runs.models] == [0, 1, 2]
    assert runs.train_slice == slice(0, 400) and runs.valid_slice == slice(400, 500)
    assert [e.shape for e in runs.train_embeddings] == [(400, 3)] * 3
    assert [e.shape for e in runs.valid_embeddings] == [(100, 3)] * 3
    assert runs.train_scores.shape == (6,) and runs.pairs.shape == (6, 2)
    for matrix, scores in (
        (runs.train_matrix, runs.train_scores),
        (runs.valid_matrix, runs.valid_scores),
    ):
        assert matrix.shape == (3, 3)
        assert np.isnan(np.diag(matrix)).all()
        i, j = runs.pairs[0]
        assert matrix[i, j] == scores[0]
    assert runs.mean_train == pytest.approx(np.nanmean(runs.train_matrix))
    # different seeds after a few steps: related but not identical embeddings
    assert runs.mean_train < 0.999
    assert records[-1].step == records[-1].total_steps == 3 * PARAMS["max_iterations"]


def test_without_validation_part(recording):
    runs = consistency_runs(PARAMS, recording.neural, n_runs=2, valid_fraction=0)
    assert runs.valid_embeddings == []
    assert np.isnan(runs.mean_valid) and np.isnan(runs.valid_matrix).all()
    assert runs.train_embeddings[0].shape == (500, 3)


def test_generator_returns_the_result(recording):
    steps = iter_consistency_runs(PARAMS, recording.neural, n_runs=2)
    records = []
    while True:
        try:
            records.append(next(steps))
        except StopIteration as stop:
            result = stop.value
            break
    assert len(result.models) == 2
    assert records[-1].step == records[-1].total_steps == 2 * PARAMS["max_iterations"]


@pytest.mark.parametrize(
    ("yield_every", "steps"),
    [(1, list(range(1, 31))), (4, [4, 8, 12, 15, 19, 23, 27, 30])],
)
def test_yield_every_sets_the_record_spacing(recording, yield_every, steps):
    """Two runs one after the other on the CPU: steps count over both runs."""
    records = []
    consistency_runs(
        PARAMS, recording.neural, n_runs=2, yield_every=yield_every, progress=records.append
    )
    assert [r.step for r in records] == steps


def test_bad_yield_every_raises(recording):
    with pytest.raises(ValueError, match="yield_every must be a positive integer, got 0"):
        consistency_runs(PARAMS, recording.neural, n_runs=2, yield_every=0)


def test_bad_run_counts_raise(recording):
    with pytest.raises(ValueError, match="n_runs must be an integer >= 2"):
        consistency_runs(PARAMS, recording.neural, n_runs=1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        consistency_runs(PARAMS, recording.neural, seeds=[1])
