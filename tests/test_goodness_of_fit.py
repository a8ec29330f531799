"""InfoNCE on new data and goodness of fit (spec §6.1–6.2, §10.2 #7–#9)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from napari_cebra import CEBRA
from napari_cebra.core.goodness_of_fit import (
    ScoringProgress,
    iter_goodness_of_fit_score,
    iter_infonce_loss,
)
from napari_cebra.metrics import (
    goodness_of_fit_history,
    goodness_of_fit_score,
    infonce_loss,
    infonce_to_goodness_of_fit,
)


@pytest.fixture
def behaviour_model(fast_params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = rng.normal(size=(400, 2)).astype(np.float32)
    model = CEBRA(**dict(fast_params, max_iterations=5)).fit(X, y)
    return model, X, y


def test_conversion_formula():
    assert infonce_to_goodness_of_fit(np.log(512), batch_size=512, num_sessions=1) == 0.0
    value = infonce_to_goodness_of_fit(5.53, batch_size=512, num_sessions=1)
    assert isinstance(value, float)
    assert value == pytest.approx((np.log(512) - 5.53) / np.log(2))
    array = infonce_to_goodness_of_fit(np.array([[1.0, 2.0]]), batch_size=10, num_sessions=3)
    assert array.shape == (1, 2)
    np.testing.assert_allclose(array, (np.log(30) - np.array([[1.0, 2.0]])) * np.log2(np.e))


def test_conversion_errors(behaviour_model, small_data):
    model = behaviour_model[0]
    with pytest.raises(ValueError, match="should not be provided if model is provided"):
        infonce_to_goodness_of_fit(1.0, model, batch_size=3)
    with pytest.raises(ValueError, match="should not be provided if model is provided"):
        infonce_to_goodness_of_fit(1.0, model, num_sessions=3)
    with pytest.raises(RuntimeError, match="Fit the CEBRA model first"):
        infonce_to_goodness_of_fit(1.0, CEBRA())
    full = CEBRA(max_iterations=2, device="cpu", seed=0).fit(small_data)
    with pytest.raises(ValueError, match="full dataset"):
        infonce_to_goodness_of_fit(1.0, full)
    with pytest.raises(ValueError, match="should be provided if model is not provided"):
        infonce_to_goodness_of_fit(1.0, batch_size=12)
    assert infonce_to_goodness_of_fit(np.log(32), model) == pytest.approx(0.0)


def test_infonce_loss_is_deterministic_and_corrected(behaviour_model):
    model, X, y = behaviour_model
    loss = infonce_loss(model, X, y, num_batches=20)
    assert isinstance(loss, float)
    assert loss == infonce_loss(model, X, y, num_batches=20)
    corrected = infonce_loss(model, X, y, num_batches=20, correct_by_batchsize=True)
    assert corrected == pytest.approx(loss - np.log(32))
    assert model.model_.training  # training mode is restored


def test_infonce_loss_errors(behaviour_model, small_data):
    model, X, y = behaviour_model
    with pytest.raises(NotFittedError):
        infonce_loss(CEBRA(), X)
    with pytest.raises(NotImplementedError, match="Data invalid"):
        infonce_loss(model, [X, X], [y, y])
    with pytest.raises(NotImplementedError, match="Labels invalid"):
        infonce_loss(model, X, [y, y])
    with pytest.raises(ValueError, match="Number of index invalid"):
        infonce_loss(model, X)
    with pytest.raises(ValueError, match="Labels invalid: must have the same number of features"):
        infonce_loss(model, X, y[:, :1])
    with pytest.raises(ValueError, match="Labels invalid"):
        infonce_loss(model, X, np.arange(400))
    with pytest.raises(RuntimeError, match="Invalid session_id"):
        infonce_loss(model, X, y, session_id=2)
    full = CEBRA(max_iterations=2, device="cpu", seed=0).fit(small_data)
    with pytest.raises(ValueError, match="Batch size is None"):
        infonce_loss(full, small_data, num_batches=2, correct_by_batchsize=True)


def _drain(steps):
    records = []
    while True:
        try:
            records.append(next(steps))
        except StopIteration as finished:
            return records, finished.value


def test_iter_goodness_of_fit_score_yields_every_batch_and_returns_the_score(behaviour_model):
    model, X, y = behaviour_model
    records, value = _drain(iter_goodness_of_fit_score(model, X, y, num_batches=6))
    assert records == [ScoringProgress(step, 6) for step in range(1, 7)]
    assert value == goodness_of_fit_score(model, X, y, num_batches=6)
    records, loss = _drain(iter_infonce_loss(model, X, y, num_batches=6, correct_by_batchsize=True))
    assert len(records) == 6
    assert loss == infonce_loss(model, X, y, num_batches=6, correct_by_batchsize=True)
    assert infonce_to_goodness_of_fit(loss + np.log(32), model) == value


def test_closing_iter_infonce_loss_early_restores_training_mode(behaviour_model):
    model, X, y = behaviour_model
    steps = iter_infonce_loss(model, X, y, num_batches=1000)
    assert next(steps) == ScoringProgress(1, 1000)
    assert not model.model_.training
    steps.close()
    assert model.model_.training
    with pytest.raises(ValueError, match="Number of index invalid"):
        next(iter_goodness_of_fit_score(model, X))


@pytest.mark.parametrize("seed", [42, 24, 10])
def test_goodness_of_fit_is_zero_on_structure_free_data(seed):
    """§10.2 #7: offset1-model, 5 iterations, B = 512, uniform data and labels."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (5000, 50)).astype(np.float32)
    y = rng.uniform(0, 1, (5000, 5)).astype(np.float32)
    model = CEBRA(max_iterations=5, batch_size=512, device="cpu", seed=seed).fit(X, y)
    assert abs(goodness_of_fit_score(model, X, y, num_batches=100)) < 0.01


def test_goodness_of_fit_history_linear_labels_above_random_labels():
    """§10.2 #8: 150 iterations, B = 512, N = 1000."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 50)).astype(np.float32)
    random_labels = rng.normal(size=(1000, 5)).astype(np.float32)
    linear_labels = (X @ rng.normal(size=(50, 5))).astype(np.float32)
    params = dict(max_iterations=150, batch_size=512, device="cpu", seed=0)
    random_history = goodness_of_fit_history(CEBRA(**params).fit(X, random_labels))
    linear_history = goodness_of_fit_history(CEBRA(**params).fit(X, linear_labels))
    assert random_history.shape == (150,)
    tail = random_history[5:]
    assert np.all(np.abs(tail[tail >= 0]) < 0.075)
    assert np.all(linear_history[-20:] > random_history[-20:].max())


def test_hybrid_goodness_of_fit_sums_both_objectives(rng):
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = rng.normal(size=(300, 2)).astype(np.float32)
    model = CEBRA(
        batch_size=64, max_iterations=3, hybrid=True, output_dimension=4, device="cpu", seed=0
    ).fit(X, y)
    log = model.state_dict_["log"]
    expected = (2 * np.log(64) - np.asarray(log["total"])) / np.log(2)
    np.testing.assert_allclose(goodness_of_fit_history(model), expected)
    assert abs(goodness_of_fit_score(model, X, y, num_batches=20)) < 0.2


def test_multi_session_chance_level_uses_all_sessions(rng):
    X = [rng.normal(size=(200, 5)).astype(np.float32) for _ in range(2)]
    y = [rng.normal(size=(200, 1)).astype(np.float32) for _ in range(2)]
    model = CEBRA(batch_size=16, max_iterations=3, device="cpu", seed=0).fit(X, y)
    assert infonce_to_goodness_of_fit(np.log(32), model) == pytest.approx(0.0)
    assert np.isfinite(goodness_of_fit_score(model, X[1], y[1], session_id=1, num_batches=5))
