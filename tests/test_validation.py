"""Bad input gets a clear error (issue 2 item 9, spec §1.4/§1.5, §10.2 #17 #20)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from napari_cebra import CEBRA
from napari_cebra.core.device import resolve_device
from napari_cebra.core.validation import check_data, check_labels


@pytest.fixture
def fitted(fast_params, small_data) -> CEBRA:
    return CEBRA(**fast_params).fit(small_data)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def test_nan_in_data_reports_count_and_first_row(small_data, fast_params):
    X = small_data.copy()
    X[17, 2] = np.nan
    X[40, 0] = np.nan
    X[40, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains 2 NaN and 1 infinite .* row 17"):
        CEBRA(**fast_params).fit(X)


def test_value_too_large_for_float32_is_reported(small_data, fast_params):
    X = small_data.astype(np.float64)
    X[5, 0] = 1e300
    with pytest.raises(ValueError, match=r"X contains 1 value\(s\) too large for float32.*row 5"):
        CEBRA(**fast_params).fit(X)


def test_nan_in_labels_names_the_label_array(small_data, fast_params):
    y = np.zeros(len(small_data), dtype=np.float32)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"y\[1\] contains 1 NaN .* row 3"):
        CEBRA(**fast_params).fit(small_data, np.ones(len(small_data)), y)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((100,), "2-D array .* got a 1-D array of shape \\(100,\\)"), ((10, 5, 2), "got a 3-D")],
)
def test_data_must_be_two_dimensional(shape, message, fast_params):
    with pytest.raises(ValueError, match=message):
        CEBRA(**fast_params).fit(np.zeros(shape, dtype=np.float32))


def test_zero_features(fast_params):
    with pytest.raises(ValueError, match=r"X has 0 feature\(s\) \(shape=\(100, 0\)\)"):
        CEBRA(**fast_params).fit(np.zeros((100, 0), dtype=np.float32))


def test_fewer_frames_than_receptive_field(fast_params):
    params = dict(fast_params, model_architecture="offset10-model")
    with pytest.raises(ValueError, match=r"5 sample\(s\).*minimum of 10.*offset10-model"):
        CEBRA(**params).fit(np.zeros((5, 20), dtype=np.float32))


def test_exactly_receptive_field_frames_is_accepted_by_transform(fitted, small_data):
    assert fitted.transform(small_data[:5]).shape == (5, 3)


def test_fewer_frames_than_time_offset(fast_params):
    params = dict(fast_params, model_architecture="offset1-model", time_offsets=10)
    with pytest.raises(ValueError, match=r"exceed the time offset, but got 8 <= 10"):
        CEBRA(**params).fit(np.zeros((8, 3), dtype=np.float32))


def test_text_data_is_rejected(fast_params):
    with pytest.raises(ValueError, match="X must contain numbers, got dtype <U1"):
        CEBRA(**fast_params).fit(np.array([["a", "b"]] * 20))


def test_object_data_with_a_dict_raises_type_error(small_data, fast_params):
    X = small_data.astype(object)
    X[0, 0] = {"foo": "bar"}
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        CEBRA(**fast_params).fit(X)


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------


def test_label_length_mismatch_gives_both_lengths(small_data, fast_params):
    with pytest.raises(ValueError, match=r"y\[0\] has 150 samples .* data has 200"):
        CEBRA(**fast_params).fit(small_data, np.zeros(150, dtype=np.float32))


@pytest.mark.parametrize(
    ("label", "dtype"),
    [
        (np.zeros(200, dtype=bool), "bool"),
        (np.array(["a"] * 200), "<U1"),
        (np.array([None] * 200, dtype=object), "object"),
    ],
)
def test_bool_text_and_object_labels_are_rejected(label, dtype, small_data, fast_params):
    with pytest.raises(ValueError, match=rf"y\[0\] has dtype {dtype}.*floating point .* integer"):
        CEBRA(**fast_params).fit(small_data, label)


def test_negative_discrete_labels(small_data, fast_params):
    y = np.arange(200) % 3
    y[7] = -2
    with pytest.raises(ValueError, match=r"1 negative discrete label\(s\), the first at row 7"):
        CEBRA(**fast_params).fit(small_data, y)


def test_two_discrete_label_arrays_are_rejected(small_data, fast_params):
    y = np.arange(200) % 3
    with pytest.raises(ValueError, match="only one discrete label array"):
        CEBRA(**fast_params).fit(small_data, y, y)


def test_two_dimensional_discrete_labels_are_rejected(small_data, fast_params):
    with pytest.raises(ValueError, match="discrete labels must be one-dimensional"):
        CEBRA(**fast_params).fit(small_data, np.zeros((200, 2), dtype=int))


def test_list_of_labels_for_single_recording(small_data, fast_params):
    y = np.zeros(200, dtype=np.float32)
    with pytest.raises(ValueError, match="Invalid number of sessions"):
        CEBRA(**fast_params).fit(small_data, [y, y])


def test_label_typing_rules():
    labels = check_labels(
        [np.zeros(4, np.float16), np.zeros((4, 2)), np.arange(4, dtype=np.uint8)], 4
    )
    assert labels.kind == "mixed"
    assert labels.continuous.shape == (4, 3)
    assert labels.continuous.dtype == np.float32
    assert labels.discrete.dtype == np.int64
    assert labels.discrete.shape == (4,)


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------


def test_unknown_architecture_lists_valid_names(small_data):
    with pytest.raises(
        ValueError, match="Unknown model architecture 'offset11-model'.*offset10-model"
    ):
        CEBRA(model_architecture="offset11-model", max_iterations=2).fit(small_data)


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("conditional", "timedelta", "Unknown conditional 'timedelta'"),
        ("distance", "manhattan", "Unknown distance 'manhattan'"),
        ("temperature_mode", "learned", "Unknown temperature_mode 'learned'"),
        ("criterion", "nce", "Unknown criterion 'nce'"),
        ("batch_size", 0, "batch_size must be a positive integer .*got 0"),
        ("batch_size", -4, "batch_size must be a positive integer .*got -4"),
        ("max_iterations", 0, "max_iterations must be a positive integer, got 0"),
        ("temperature", -1.0, "temperature must be a finite number > 0"),
        ("seed", -3, "seed must be a non-negative integer"),
    ],
)
def test_invalid_parameters(param, value, message, small_data, fast_params):
    with pytest.raises(ValueError, match=message):
        CEBRA(**dict(fast_params, **{param: value})).fit(small_data)


@pytest.mark.parametrize("conditional", ["delta", "delta_normal"])
def test_delta_is_required_for_delta_conditionals(conditional, small_data, fast_params):
    y = np.zeros(200, dtype=np.float32)
    with pytest.raises(ValueError, match=f"conditional='{conditional}' needs delta"):
        CEBRA(**dict(fast_params, conditional=conditional)).fit(small_data, y)


def test_optimizer_is_checked_in_constructor():
    with pytest.raises(NotImplementedError, match="Only adam optimizer"):
        CEBRA(optimizer="sgd")


def test_hybrid_without_labels(small_data, fast_params):
    with pytest.raises(ValueError, match="Invalid index combination"):
        CEBRA(**dict(fast_params, hybrid=True)).fit(small_data)


def test_masking_is_not_implemented(small_data, fast_params):
    params = dict(fast_params, masking_kwargs=(("RandomNeuronMask", 0.5),))
    with pytest.raises(NotImplementedError, match="masking_kwargs"):
        CEBRA(**params).fit(small_data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(small_data, fast_params):
    with pytest.raises(ValueError, match="CUDA is not available"):
        CEBRA(**dict(fast_params, device="cuda")).fit(small_data)


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("cuda_if_available") in ("cpu", "cuda:0", "mps")
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


# ---------------------------------------------------------------------------------------------
# transform
# ---------------------------------------------------------------------------------------------


def test_transform_before_fit(small_data):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        CEBRA().transform(small_data)


def test_transform_with_wrong_feature_count(fitted, small_data):
    with pytest.raises(ValueError, match="X has 5 features, but CEBRA is expecting 8 features"):
        fitted.transform(small_data[:, :5])


def test_session_id_on_single_session_model(fitted, small_data):
    with pytest.raises(RuntimeError, match="Invalid session_id"):
        fitted.transform(small_data, session_id=1)
    assert fitted.transform(small_data, session_id=0).shape == (200, 3)


# ---------------------------------------------------------------------------------------------
# multi-session errors (§10.2 #17)
# ---------------------------------------------------------------------------------------------


def test_multi_session_errors(rng, fast_params):
    X = [rng.normal(size=(100, 6)).astype(np.float32), rng.normal(size=(120, 4)).astype(np.float32)]
    y = [rng.normal(size=(100, 2)).astype(np.float32), rng.normal(size=(120, 2)).astype(np.float32)]
    with pytest.raises(RuntimeError, match="No.*label"):
        CEBRA(**fast_params).fit(X)
    with pytest.raises(ValueError, match="Invalid.*sessions"):
        CEBRA(**fast_params).fit(X, y[:1])
    with pytest.raises(ValueError, match="Invalid.*samples in session 1"):
        CEBRA(**fast_params).fit(X, [y[0], y[1][:50]])
    with pytest.raises(NotImplementedError, match="multiple set of index"):
        CEBRA(**fast_params).fit(X, y, y)
    with pytest.raises(NotImplementedError, match="mini-batches"):
        CEBRA(**dict(fast_params, batch_size=None)).fit(X, y)
    model = CEBRA(**fast_params).fit(X, y)
    with pytest.raises(RuntimeError, match="session_id.*provided"):
        model.transform(X[0])
    with pytest.raises(RuntimeError, match="Invalid.*session_id"):
        model.transform(X[0], session_id=2)
    with pytest.raises(ValueError, match="shape"):
        model.transform(X[0], session_id=1)


# ---------------------------------------------------------------------------------------------
# inputs are not modified; tensors, small dtypes and read-only arrays are accepted
# ---------------------------------------------------------------------------------------------


def test_inputs_are_never_modified_or_shared(small_data, fast_params):
    X = small_data.copy()
    y = np.linspace(0, 1, 200).astype(np.float32)
    X_before, y_before = X.copy(), y.copy()
    model = CEBRA(**fast_params).fit(X, y)
    embedding = model.transform(X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    assert not np.shares_memory(embedding, X)
    checked = check_data(X)
    assert not np.shares_memory(checked, X)


def test_check_data_without_copy_returns_float32_arrays_as_they_are(small_data):
    assert check_data(small_data, copy=False) is small_data
    as_float64 = check_data(small_data.astype(np.float64), copy=False)
    assert as_float64.dtype == np.float32 and as_float64.flags.c_contiguous
    fortran = np.asfortranarray(small_data)
    assert check_data(fortran, copy=False).flags.c_contiguous
    assert not np.shares_memory(check_data(fortran, copy=False), fortran)


def test_finiteness_is_checked_in_blocks_of_rows(small_data):
    from napari_cebra.core.validation import _all_finite

    assert _all_finite(small_data, chunk_bytes=64)
    X = small_data.copy()
    X[-1, -1] = np.nan  # in the last block
    assert not _all_finite(X, chunk_bytes=64)
    with pytest.raises(ValueError, match=r"1 NaN and 0 infinite .* the first is row 199"):
        check_data(X, copy=False)


def test_transform_does_not_copy_a_long_float32_recording(rng):
    """Peak NumPy memory of ``transform`` stays well below the size of its input."""
    import tracemalloc

    model = CEBRA(
        model_architecture="offset1-model",
        batch_size=32,
        max_iterations=2,
        num_hidden_units=8,
        output_dimension=3,
        device="cpu",
        seed=0,
    ).fit(rng.normal(size=(100, 50)).astype(np.float32))
    X = np.ones((400_000, 50), np.float32)  # 80 MB
    tracemalloc.start()
    try:
        embedding = model.transform(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert embedding.shape == (400_000, 3)
    assert peak < 0.3 * X.nbytes, f"transform allocated {peak / 1e6:.0f} MB for an 80 MB input"


def test_read_only_arrays_are_accepted(small_data, fast_params):
    X = small_data.copy()
    X.setflags(write=False)
    y = np.linspace(0, 1, 200).astype(np.float32)
    y.setflags(write=False)
    model = CEBRA(**fast_params).fit(X, y)
    assert model.transform(X).shape == (200, 3)


def test_torch_tensors_are_accepted(small_data, fast_params):
    y = torch.linspace(0, 1, 200)
    model = CEBRA(**fast_params).fit(torch.from_numpy(small_data), y)
    from_tensor = model.transform(torch.from_numpy(small_data))
    np.testing.assert_array_equal(from_tensor, model.transform(small_data))
    assert model.label_types_[0][0] == np.float32


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.uint8, np.float16, bool])
def test_data_dtype_robustness(dtype, small_data, fast_params):
    """§10.2 #18: transform of cast data equals transform of the float32 cast."""
    model = CEBRA(**fast_params).fit(small_data)
    X = (small_data * 3).astype(dtype)
    embedding = model.transform(X)
    assert embedding.dtype == np.float32
    np.testing.assert_allclose(embedding, model.transform(X.astype(np.float32)), atol=1e-2)
