"""The CEBRA estimator end to end (issue 2 items 2, 5, 7; spec §1, §5.6, §10.2)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from napari_cebra import CEBRA, TrainingProgress
from napari_cebra.core.estimator import DEFAULT_OPTIMIZER_KWARGS
from napari_cebra.metrics import goodness_of_fit_score
from napari_cebra.models import supported_model_architectures

REFERENCE_PARAMETERS = [
    ("model_architecture", "offset1-model"),
    ("device", "cuda_if_available"),
    ("criterion", "infonce"),
    ("distance", "cosine"),
    ("conditional", None),
    ("temperature", 1.0),
    ("temperature_mode", "constant"),
    ("min_temperature", 0.1),
    ("time_offsets", 1),
    ("delta", None),
    ("max_iterations", 10000),
    ("max_adapt_iterations", 500),
    ("batch_size", None),
    ("learning_rate", 3e-4),
    ("optimizer", "adam"),
    ("output_dimension", 8),
    ("verbose", False),
    ("num_hidden_units", 32),
    ("pad_before_transform", True),
    ("hybrid", False),
    ("optimizer_kwargs", DEFAULT_OPTIMIZER_KWARGS),
    ("masking_kwargs", None),
]


def test_constructor_parameters_order_and_defaults():
    parameters = list(inspect.signature(CEBRA).parameters.values())
    assert [(p.name, p.default) for p in parameters] == [
        *REFERENCE_PARAMETERS,
        ("seed", None),
        ("precision", "auto"),
    ]
    assert DEFAULT_OPTIMIZER_KWARGS == (
        ("betas", (0.9, 0.999)),
        ("eps", 1e-08),
        ("weight_decay", 0),
        ("amsgrad", False),
    )


def test_constructor_matches_the_reference_package():
    cebra = pytest.importorskip("cebra")
    ours = [(p.name, p.default) for p in inspect.signature(CEBRA).parameters.values()]
    theirs = [(p.name, p.default) for p in inspect.signature(cebra.CEBRA).parameters.values()]
    # the reference's 22 parameters in order, then our additions: seed and precision
    assert ours[:-2] == theirs
    assert [name for name, _ in ours[-2:]] == ["seed", "precision"]


# ---------------------------------------------------------------------------------------------
# sklearn estimator checks (§10.2 #23)
# ---------------------------------------------------------------------------------------------

EXPECTED_FAILED_CHECKS = {
    # cebra raises NotImplementedError for optimizer != "adam" in the constructor; we keep that.
    "check_do_not_raise_errors_in_init_or_set_params": "optimizer is validated in __init__ "
    "like cebra",
    # fit takes labels positionally (fit(X, *y)) like cebra; these checks call fit(X, y=y).
    "check_transformer_general": "labels are positional (*y), not y=",
    "check_transformer_data_not_an_array": "labels are positional (*y), not y=",
}


@parametrize_with_checks(
    [CEBRA(max_iterations=5, batch_size=10, time_offsets=5, device="cpu", seed=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------------------
# transform shapes, padding and batching (§10.2 #1, #2, #19)
# ---------------------------------------------------------------------------------------------

PLAIN_ARCHITECTURES = [
    name
    for name in supported_model_architectures()
    if not name.startswith(
        ("offset1-model-mse-clip-", "offset1-model-mse-v2-", "offset1-model-mse-resnet-")
    )
]
FAMILY_SAMPLE = [
    "offset1-model-mse-clip-5-10",
    "offset1-model-mse-v2-3layers-tanh",
    "offset1-model-mse-resnet-2layers",
]


def _short_fit_params(architecture: str, **overrides) -> dict:
    """Parameters of a short CPU fit: one step unless overridden, batches of 16, 3-D output."""
    params = dict(
        model_architecture=architecture,
        batch_size=16,
        max_iterations=1,
        output_dimension=3,
        num_hidden_units=8,
        device="cpu",
        seed=0,
    )
    return {**params, **overrides}


@pytest.mark.parametrize("architecture", PLAIN_ARCHITECTURES + FAMILY_SAMPLE)
def test_transform_shape_for_every_architecture(architecture, rng):
    X = rng.normal(size=(120, 6)).astype(np.float32)
    params = _short_fit_params(architecture, num_hidden_units=4)
    model = CEBRA(**params).fit(X)
    embedding = model.transform(X)
    assert embedding.shape == (120, 3)
    assert embedding.dtype == np.float32
    length = len(model.offset_)
    unpadded = CEBRA(**params, pad_before_transform=False).fit(X).transform(X)
    assert unpadded.shape == (120 - length + 1, 3)


def test_multi_session_transform_shapes(rng, fast_params):
    X = [rng.normal(size=(100, 6)).astype(np.float32), rng.normal(size=(130, 4)).astype(np.float32)]
    y = [rng.normal(size=(100, 2)).astype(np.float32), rng.normal(size=(130, 2)).astype(np.float32)]
    model = CEBRA(**fast_params).fit(X, y)
    assert model.num_sessions == 2
    assert model.n_features_ == [6, 4]
    assert isinstance(model.model_, torch.nn.ModuleList)
    assert model.model_[1].num_input == 4
    assert model.transform(X[0], session_id=0).shape == (100, 3)
    assert model.transform(X[1], session_id=1).shape == (130, 3)


def test_padding_is_edge_replication(small_data, fast_params):
    model = CEBRA(**fast_params).fit(small_data)
    encoder = model.model_.eval()
    left, right = model.offset_.left, model.offset_.right
    padded = np.concatenate(
        [np.repeat(small_data[:1], left, 0), small_data, np.repeat(small_data[-1:], right - 1, 0)]
    )
    with torch.no_grad():
        manual = encoder.embed_sequence(torch.from_numpy(padded)).numpy()
    np.testing.assert_allclose(model.transform(small_data), manual, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("architecture", ["offset1-model", "offset5-model", "offset10-model"])
@pytest.mark.parametrize("batch_size", [7, 33, 64])
def test_batched_transform_equals_unbatched(architecture, batch_size, rng):
    X = rng.normal(size=(300, 5)).astype(np.float32)
    params = _short_fit_params(architecture, max_iterations=2, num_hidden_units=32, seed=1)
    model = CEBRA(**params).fit(X)
    # float32 sums in another order per batch shape: about 1e-6 on unit-length embeddings
    np.testing.assert_allclose(
        model.transform(X, batch_size=batch_size), model.transform(X), rtol=1e-5, atol=5e-6
    )


def test_batched_transform_merges_last_batches_on_long_data(rng):
    X = rng.normal(size=(20111, 100)).astype(np.float32)
    model = CEBRA(**_short_fit_params("offset36-model-more-dropout")).fit(X[:500])
    batched = model.transform(X, batch_size=300)
    assert batched.shape == (20111, 3)
    # conv kernels pick different blockings for different lengths: float32 rounding only
    np.testing.assert_allclose(batched, model.transform(X), rtol=1e-5, atol=1e-5)


def test_batched_transform_errors(small_data, fast_params):
    model = CEBRA(**dict(fast_params, model_architecture="offset10-model")).fit(small_data)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            model.transform(small_data, batch_size=bad)
    with pytest.raises(ValueError, match="required.*offset.*length"):
        model.transform(small_data, batch_size=4)


@pytest.mark.parametrize(
    "architecture", ["offset40-model-4x-subsample", "offset20-model-4x-subsample"]
)
def test_resampling_models_return_a_quarter_of_the_rows(architecture, rng):
    X = rng.normal(size=(1000, 5)).astype(np.float32)
    model = CEBRA(**_short_fit_params(architecture)).fit(X)
    assert model.transform(X).shape == (250, 3)
    assert model.transform(X, batch_size=100).shape == (250, 3)


def test_non_convolutional_models_with_large_offsets_are_rejected(small_data):
    with pytest.raises(ValueError, match="non-convolutional models"):
        CEBRA(model_architecture="offset4-model-2x-subsample", max_iterations=1).fit(small_data)


def test_normalised_models_give_unit_norm_embeddings(small_data, fast_params):
    embedding = CEBRA(**fast_params).fit(small_data).transform(small_data)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# labels → solver (§1.2, §10.2 #14)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.int64])
def test_integer_labels_are_discrete(dtype, small_data, fast_params):
    model = CEBRA(**fast_params)
    session = model.begin(small_data, (np.arange(200) % 4).astype(dtype))
    assert type(session.objective.sampler).__name__ == "DiscreteSampler"
    assert model.label_types_ == [(np.dtype(dtype), (200,))]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_labels_are_continuous(dtype, small_data, fast_params):
    model = CEBRA(**fast_params)
    session = model.begin(small_data, np.linspace(0, 1, 200).astype(dtype))
    assert type(session.objective.sampler).__name__ == "TimeDeltaSampler"


@pytest.mark.parametrize(
    ("params", "labels", "solver", "sampler"),
    [
        ({}, (), "single-session", "TimeSampler"),
        ({"batch_size": None}, (), "single-session-full", "TimeSampler"),
        ({"conditional": "time"}, ("continuous",), "single-session", "TimeSampler"),
        ({}, ("continuous",), "single-session", "TimeDeltaSampler"),
        (
            {"conditional": "delta_normal", "delta": 0.1},
            ("continuous",),
            "single-session",
            "DeltaNormalSampler",
        ),
        ({"batch_size": None}, ("continuous",), "single-session-full", "TimeDeltaSampler"),
        ({}, ("discrete",), "single-session", "DiscreteSampler"),
        ({}, ("continuous", "discrete"), "single-session", "MixedSampler"),
        ({"hybrid": True}, ("continuous",), "single-session-hybrid", "HybridSampler"),
    ],
)
def test_loader_selection_table(params, labels, solver, sampler, small_data, fast_params):
    values = {
        "continuous": np.linspace(0, 1, 200).astype(np.float32),
        "discrete": np.arange(200) % 3,
    }
    model = CEBRA(**dict(fast_params, **params))
    session = model.begin(small_data, *(values[kind] for kind in labels))
    assert model.solver_name_ == solver
    assert type(session.objective.sampler).__name__ == sampler


@pytest.mark.parametrize(
    ("params", "labels"),
    [
        ({"batch_size": None}, ("discrete",)),
        ({"hybrid": True}, ("discrete",)),
        ({"batch_size": None}, ("continuous", "discrete")),
        ({"batch_size": None, "hybrid": True}, ("continuous",)),
    ],
)
def test_unsupported_index_combinations(params, labels, small_data, fast_params):
    values = {
        "continuous": np.linspace(0, 1, 200).astype(np.float32),
        "discrete": np.arange(200) % 3,
    }
    with pytest.raises(NotImplementedError):
        CEBRA(**dict(fast_params, **params)).fit(small_data, *(values[k] for k in labels))


def test_delta_alias_warns(small_data, fast_params):
    y = np.linspace(0, 1, 200).astype(np.float32)
    with pytest.warns(DeprecationWarning, match="delta_normal"):
        CEBRA(**dict(fast_params, conditional="delta", delta=0.1)).fit(small_data, y)


# ---------------------------------------------------------------------------------------------
# training history, fit / partial_fit / adapt (§10.2 #6, #12, #13)
# ---------------------------------------------------------------------------------------------


def test_loss_at_initialisation_is_log_batch_size(rng):
    X = rng.normal(size=(2000, 20)).astype(np.float32)
    model = CEBRA(
        model_architecture="offset1-model", batch_size=64, max_iterations=1, device="cpu", seed=3
    ).fit(X)
    log = model.state_dict_["log"]
    assert log["total"][0] == pytest.approx(np.log(64), abs=0.15)
    assert log["pos"][0] + log["neg"][0] == pytest.approx(log["total"][0], abs=1e-5)


def test_fit_resets_and_partial_fit_continues(small_data, fast_params):
    model = CEBRA(**dict(fast_params, max_iterations=10))
    model.fit(small_data)
    state = model.state_dict_
    assert len(state["loss"]) == 10
    assert all(len(values) == 10 for values in state["log"].values())
    assert set(state["log"]) == {"pos", "neg", "total", "temperature"}
    model.fit(small_data)
    assert len(model.state_dict_["loss"]) == 10
    model = CEBRA(**dict(fast_params, max_iterations=5))
    model.partial_fit(small_data)
    first = model.transform(small_data)
    model.partial_fit(small_data)
    assert len(model.state_dict_["loss"]) == 10
    assert not np.array_equal(first, model.transform(small_data))


def test_partial_fit_checks_feature_count(small_data, fast_params):
    model = CEBRA(**fast_params).partial_fit(small_data)
    with pytest.raises(ValueError, match="X has 5 features, but CEBRA is expecting 8"):
        model.partial_fit(small_data[:, :5])


def test_state_dict_has_reference_keys(small_data, fast_params):
    state = CEBRA(**fast_params).fit(small_data).state_dict_
    assert {
        "model",
        "optimizer",
        "loss",
        "decode",
        "criterion",
        "version",
        "log",
        "n_features",
    } <= set(state)
    assert state["loss"].dtype == torch.float32
    assert state["loss"].ndim == 1
    assert state["n_features"] == 8
    assert state["decode"] == []
    assert "net.0.weight" in state["model"]


def test_adapt_trains_only_a_new_first_layer(small_data, fast_params, rng):
    model = CEBRA(**dict(fast_params, max_adapt_iterations=4)).fit(small_data)
    before = {key: value.clone() for key, value in model.model_.state_dict().items()}
    X_new = rng.normal(size=(150, 5)).astype(np.float32)
    model.fit(X_new, adapt=True)
    after = model.model_.state_dict()
    first_weight, first_bias, *rest = list(after)
    assert after[first_weight].shape[1] == 5
    for key in rest:
        torch.testing.assert_close(after[key], before[key])
    assert len(model.state_dict_["loss"]) == 4
    assert model.transform(X_new).shape == (150, 3)


def test_adapt_is_not_available_for_multi_session(rng, fast_params):
    X = [rng.normal(size=(100, 6)).astype(np.float32)] * 2
    y = [rng.normal(size=(100, 2)).astype(np.float32)] * 2
    model = CEBRA(**fast_params).fit(X, y)
    with pytest.raises(NotImplementedError, match="adapt"):
        model.fit(X[0], adapt=True)


def test_full_batch_training_uses_the_reference_index_range(rng):
    X = rng.normal(size=(500, 4)).astype(np.float32)
    model = CEBRA(model_architecture="offset10-model", max_iterations=2, device="cpu", seed=0)
    session = model.begin(X)
    reference = session.objective.reference
    assert reference.shape[0] == 484
    assert int(reference[0]) == 5
    assert int(reference[-1]) == 488


def test_learnable_temperature_changes_and_is_logged(small_data, fast_params):
    model = CEBRA(**dict(fast_params, temperature_mode="auto", max_iterations=20)).fit(small_data)
    temperatures = model.state_dict_["log"]["temperature"]
    assert len(temperatures) == 20
    assert temperatures[-1] != temperatures[0]
    assert "log_inverse_temperature" in model.state_dict_["criterion"]


def test_hybrid_fills_the_log_with_both_objectives(small_data, fast_params):
    y = np.linspace(0, 1, 200).astype(np.float32)
    model = CEBRA(**dict(fast_params, hybrid=True, max_iterations=4)).fit(small_data, y)
    log = model.state_dict_["log"]
    for key in ("behavior_pos", "behavior_neg", "behavior_total", "time_pos", "time_neg"):
        assert len(log[key]) == 4
    np.testing.assert_allclose(
        log["total"], np.add(log["behavior_total"], log["time_total"]), rtol=1e-5
    )
    np.testing.assert_allclose(log["total"], model.state_dict_["loss"].numpy(), rtol=1e-6)


def test_callbacks_follow_the_reference_schedule(small_data, fast_params):
    calls = []

    def callback(step, solver):
        calls.append((step, len(solver.history)))

    CEBRA(**dict(fast_params, max_iterations=10)).fit(
        small_data, callback=callback, callback_frequency=4
    )
    assert calls == [(0, 1), (4, 5), (8, 9)]
    with pytest.raises(ValueError, match="callback_frequency requires to specify a callback"):
        CEBRA(**fast_params).fit(small_data, callback_frequency=2)


def test_verbose_progress_bar_shows_the_reference_stats(small_data, fast_params, capsys):
    CEBRA(**dict(fast_params, verbose=True, max_iterations=12)).fit(small_data)
    text = capsys.readouterr().err
    assert "12/12" in text
    assert "pos: " in text and " neg: " in text and " total: " in text
    assert "temperature:  1.0000" in text


def test_to_moves_the_model(small_data, fast_params):
    model = CEBRA(**fast_params).fit(small_data)
    assert model.to("cpu") is model
    assert model.device_ == "cpu"
    assert next(model.model_.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="Unknown device"):
        model.to("gpu")


def test_adam_is_fused_on_the_cpu_and_matches_the_default_adam(small_data, fast_params):
    params = dict(fast_params, max_iterations=20)
    fused = CEBRA(**params).fit(small_data)
    assert fused.solver_.optimizer.param_groups[0]["fused"] is True
    plain = CEBRA(
        **params, optimizer_kwargs=(("betas", (0.9, 0.999)), ("eps", 1e-8), ("fused", False))
    ).fit(small_data)
    assert not plain.solver_.optimizer.param_groups[0]["fused"]
    np.testing.assert_allclose(
        fused.state_dict_["loss"], plain.state_dict_["loss"], rtol=1e-4, atol=1e-5
    )
    optimizer = fused.to("cpu").solver_.optimizer  # the moved state still steps
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    assert optimizer.state_dict()["state"][0]["step"].item() == 21


# ---------------------------------------------------------------------------------------------
# seeds: bit-reproducible training on the CPU for every conditional
# ---------------------------------------------------------------------------------------------

CONDITIONAL_CASES = {
    "time": ({}, ()),
    "time_delta": ({}, ("continuous",)),
    "delta_normal": ({"conditional": "delta_normal", "delta": 0.1}, ("continuous",)),
    "discrete": ({}, ("discrete",)),
    "mixed": ({}, ("continuous", "discrete")),
    "hybrid": ({"hybrid": True}, ("continuous",)),
    "full_batch": ({"batch_size": None}, ("continuous",)),
    "dropout": ({"model_architecture": "offset36-model-more-dropout"}, ()),
}


def _fit_case(case, seed, small_data, fast_params):
    params, kinds = CONDITIONAL_CASES[case]
    values = {
        "continuous": np.linspace(0, 1, 200).astype(np.float32),
        "discrete": np.arange(200) % 3,
    }
    model = CEBRA(**dict(fast_params, seed=seed, max_iterations=4, **params))
    return model.fit(small_data, *(values[kind] for kind in kinds)).transform(small_data)


@pytest.mark.parametrize("case", list(CONDITIONAL_CASES))
def test_same_seed_gives_identical_embeddings(case, small_data, fast_params):
    first = _fit_case(case, 11, small_data, fast_params)
    second = _fit_case(case, 11, small_data, fast_params)
    np.testing.assert_array_equal(first, second)
    different = _fit_case(case, 12, small_data, fast_params)
    assert not np.array_equal(first, different)


def test_multi_session_is_reproducible(rng, fast_params):
    X = [rng.normal(size=(100, 6)).astype(np.float32), rng.normal(size=(90, 4)).astype(np.float32)]
    y = [rng.normal(size=(100, 2)).astype(np.float32), rng.normal(size=(90, 2)).astype(np.float32)]
    runs = [
        CEBRA(**dict(fast_params, seed=seed)).fit(X, y).transform(X[1], session_id=1)
        for seed in (5, 5, 6)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_seeded_training_leaves_the_global_rng_alone(small_data, fast_params):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _fit_case("dropout", 1, small_data, fast_params)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_unseeded_fit_records_a_seed_that_repeats_it(small_data, fast_params):
    model = CEBRA(**dict(fast_params, seed=None)).fit(small_data)
    assert isinstance(model.seed_, int)
    again = CEBRA(**dict(fast_params, seed=model.seed_)).fit(small_data)
    np.testing.assert_array_equal(model.transform(small_data), again.transform(small_data))


# ---------------------------------------------------------------------------------------------
# iter_fit: the GUI entry point
# ---------------------------------------------------------------------------------------------


def test_iter_fit_yields_progress_and_is_fitted_after_first_yield(small_data, fast_params):
    model = CEBRA(**dict(fast_params, max_iterations=25))
    runs = model.iter_fit(small_data, yield_every=10)
    first = next(runs)
    assert isinstance(first, TrainingProgress)
    assert (first.step, first.total_steps) == (10, 25)
    assert first.total == pytest.approx(first.pos + first.neg, abs=1e-5)
    assert first.elapsed > 0
    assert model.transform(small_data).shape == (200, 3)
    assert len(model.state_dict_["loss"]) == 10
    rest = list(runs)
    assert [progress.step for progress in rest] == [20, 25]
    assert len(model.state_dict_["log"]["total"]) == 25
    assert rest[-1].total == model.state_dict_["log"]["total"][-1]


def test_closing_iter_fit_keeps_the_partial_model(small_data, fast_params):
    model = CEBRA(**dict(fast_params, max_iterations=100))
    runs = model.iter_fit(small_data, yield_every=3)
    for progress in runs:
        if progress.step == 6:
            break
    runs.close()
    assert len(model.state_dict_["loss"]) == 6
    assert all(len(values) == 6 for values in model.state_dict_["log"].values())
    assert model.transform(small_data).shape == (200, 3)


def test_iter_fit_training_equals_fit_training(small_data, fast_params):
    params = dict(fast_params, max_iterations=7)
    stepped = CEBRA(**params)
    for _ in stepped.iter_fit(small_data, yield_every=2):
        stepped.transform(small_data)  # switches to eval mode between yields
    fitted = CEBRA(**params).fit(small_data)
    np.testing.assert_array_equal(stepped.transform(small_data), fitted.transform(small_data))


def test_iter_fit_without_reset_continues(small_data, fast_params):
    model = CEBRA(**dict(fast_params, max_iterations=4))
    list(model.iter_fit(small_data))
    list(model.iter_fit(small_data, reset=False))
    assert len(model.state_dict_["loss"]) == 8
    list(model.iter_fit(small_data, reset=True))
    assert len(model.state_dict_["loss"]) == 4


# ---------------------------------------------------------------------------------------------
# layering and a real CEBRA-Behavior fit
# ---------------------------------------------------------------------------------------------


def test_import_does_not_load_torch_qt_or_napari():
    code = (
        "import sys, napari_cebra; from napari_cebra import CEBRA; CEBRA(); "
        "bad = [m for m in ('torch', 'qtpy', 'napari', 'vispy', 'PyQt5') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


@pytest.mark.slow
def test_cebra_behavior_on_place_cells_beats_shuffled_labels(place_cells_full):
    """CEBRA-Behavior reaches >= 0.5 bits; the same fit on time-shuffled labels <= 0.1 bits.

    Measured with seeds 0 / 1: real 0.70 / 0.71 bits after 50 steps (0.89 / 0.92 after 100),
    shuffled 0.068 / 0.065 after 50 steps (it creeps up with training: 0.093 after 250).
    """
    params = dict(
        model_architecture="offset10-model",
        batch_size=512,
        output_dimension=3,
        time_offsets=10,
        max_iterations=60,
        device="cpu",
        seed=0,
    )
    neural = place_cells_full.neural
    position = place_cells_full.position
    shuffled = position[np.random.default_rng(1).permutation(len(position))]
    real = CEBRA(**params).fit(neural, position)
    control = CEBRA(**params).fit(neural, shuffled)
    assert goodness_of_fit_score(real, neural, position, num_batches=40) >= 0.5
    assert goodness_of_fit_score(control, neural, shuffled, num_batches=40) <= 0.1


def test_bfloat16_precision_trains_deterministically_and_close_to_float32(small_data, fast_params):
    """precision="bfloat16" is reachable from the estimator, seeded-deterministic, and its
    embedding stays close to the float32 run of the same seed."""
    params = dict(fast_params, max_iterations=6)
    first = CEBRA(**params, precision="bfloat16").fit(small_data)
    second = CEBRA(**params, precision="bfloat16").fit(small_data)
    reference = CEBRA(**params).fit(small_data)
    np.testing.assert_array_equal(first.transform(small_data), second.transform(small_data))
    assert first.state_dict_["loss"].numel() == 6
    np.testing.assert_allclose(
        first.transform(small_data), reference.transform(small_data), atol=0.05
    )


@pytest.mark.parametrize(
    ("device_flags", "chosen"),
    [
        (frozenset({"avx2", "avx512f"}), "float32"),
        (frozenset({"avx2", "avx512f", "avx512_bf16"}), "bfloat16"),
        (frozenset({"avx2", "amx_bf16", "amx_tile"}), "bfloat16"),
        (frozenset(), "float32"),
    ],
)
def test_auto_precision_is_bfloat16_only_where_the_cpu_runs_it(
    small_data, fast_params, monkeypatch, tmp_path, device_flags, chosen
):
    """precision="auto" (the default) chooses from the CPU's features, records the choice in
    ``precision_`` and in the model file, and trains exactly like that precision asked for."""
    from napari_cebra.core import device

    monkeypatch.setattr(device, "cpu_flags", lambda: device_flags)
    params = dict(fast_params, max_iterations=4)
    auto = CEBRA(**params).fit(small_data)
    assert auto.precision == "auto" and auto.precision_ == chosen
    explicit = CEBRA(**params, precision=chosen).fit(small_data)
    assert explicit.precision_ == chosen
    np.testing.assert_array_equal(auto.transform(small_data), explicit.transform(small_data))
    auto.save(tmp_path / "auto.pt")
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset())  # read on another machine
    loaded = CEBRA.load(tmp_path / "auto.pt")
    assert loaded.precision == "auto" and loaded.precision_ == chosen


@pytest.mark.parametrize(
    "kind",
    [
        {"batch_size": None},
        {"hybrid": True, "conditional": "time_delta"},
        {"temperature_mode": "auto", "min_temperature": 0.1},
    ],
)
def test_auto_uses_bfloat16_for_every_measured_single_session_kind(
    small_data, fast_params, monkeypatch, kind
):
    """On a CPU with native bfloat16, "auto" trains full batch, hybrid and learnable-temperature
    runs in bfloat16 too (benchmarks/bench_precision.py: same goodness of fit), exactly as
    precision="bfloat16" does."""
    from napari_cebra.core import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    params = dict(fast_params, max_iterations=2, **kind)
    labels = (small_data[:, :1],) if kind.get("hybrid") else ()
    auto = CEBRA(**params).fit(small_data, *labels)
    explicit = CEBRA(**params, precision="bfloat16").fit(small_data, *labels)
    assert auto.precision_ == explicit.precision_ == "bfloat16"
    np.testing.assert_array_equal(auto.transform(small_data), explicit.transform(small_data))


def test_auto_keeps_float32_for_multi_session_training(small_data, fast_params, monkeypatch):
    """Multi-session training is not covered by the precision benchmark: float32 under "auto"."""
    from napari_cebra.core import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    sessions = [small_data, small_data[::-1].copy()]
    labels = [session[:, :1] for session in sessions]
    params = dict(fast_params, max_iterations=2, conditional="time_delta")
    assert CEBRA(**params).fit(sessions, labels).precision_ == "float32"
    forced = CEBRA(**params, precision="bfloat16").fit(sessions, labels)
    assert forced.precision_ == "bfloat16"


def test_this_machine_resolves_auto_from_its_own_cpu():
    from napari_cebra.core.device import BFLOAT16_CPU_FLAGS, cpu_flags, resolve_precision

    native = bool(BFLOAT16_CPU_FLAGS & cpu_flags())
    assert resolve_precision("auto", "cpu") == ("bfloat16" if native else "float32")
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert resolve_precision("auto", "mps") == "float32"


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="precision.*float16"):
        CEBRA(precision="float16", max_iterations=1, batch_size=8).fit(
            np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
        )
