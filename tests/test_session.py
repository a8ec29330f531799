"""core.session: the training session every way of training goes through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cebra import CEBRA
from napari_cebra.core.session import TrainingSession


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(300, 2)).astype(
        np.float32
    )


def _params(**changes):
    return dict(
        model_architecture="offset5-model",
        batch_size=32,
        max_iterations=12,
        output_dimension=3,
        device="cpu",
        seed=4,
        **changes,
    )


def test_session_in_chunks_equals_fit(data):
    X, y = data
    fitted = CEBRA(**_params()).fit(X, y)
    model = CEBRA(**_params())
    with model.begin(X, y) as session:
        assert isinstance(session, TrainingSession)
        assert model.transform(X).shape == (300, 3)  # fitted from the start
        records = list(session.run(steps=5, yield_every=2, max_interval=None))
        assert [r.step for r in records] == [2, 4, 5]
        assert session.steps_done == 5 and len(model.state_dict_["loss"]) == 5
        assert session.advance(3).step == 8
        rest = list(session.run(yield_every=100))
        assert rest[-1].step == rest[-1].total_steps == session.total_steps == 12
        assert session.steps_left == 0 and list(session.run()) == []
        assert [r.step for r in session.records] == [2, 4, 5, 6, 8, 12]
        assert session.records[:3] == records and session.records[-1:] == rest
    assert session.closed
    for key, tensor in fitted.state_dict_["model"].items():
        assert torch.equal(tensor, model.state_dict_["model"][key])
    assert fitted.state_dict_["loss"].tolist() == model.state_dict_["loss"].tolist()


def test_a_closed_session_does_no_more_steps(data):
    X, y = data
    model = CEBRA(**_params())
    session = model.begin(X, y)
    session.advance(2)
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        next(session.run())
    assert session.steps_left == 0
    # the estimator keeps the run for partial_fit unless the session released it
    model.partial_fit(X, y)
    assert len(model.state_dict_["loss"]) == 2 + 12
    released = model.begin(X, y)
    released.advance(3)
    released.close(release=True)
    model.partial_fit(X, y)
    assert len(model.state_dict_["loss"]) == 12  # a new run


def test_begin_checks_its_arguments(data):
    X, _ = data
    with pytest.raises(ValueError, match="callback_frequency requires"):
        CEBRA(**_params()).begin(X, callback_frequency=2)
    session = CEBRA(**_params()).begin(X)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        next(session.run(steps=0))


def test_state_round_trip_builds_an_equal_estimator(data):
    X, y = data
    model = CEBRA(**_params()).fit(X, y)
    state = model.to_state()
    rebuilt = CEBRA.from_state(state)
    np.testing.assert_array_equal(rebuilt.transform(X), model.transform(X))
    assert rebuilt.get_params() == model.get_params()
    broken = type(state)(**{**state.__dict__, "n_features": 9})
    with pytest.raises(ValueError, match="the state does not contain a usable"):
        CEBRA.from_state(broken)
