"""Tests of the encoder registry (`core.models`) and `core.offset` against spec §2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_cebra.core import models
from napari_cebra.core.offset import Offset

SUPPORTED = models.supported_model_architectures()
SUBSAMPLING = (
    "offset40-model-4x-subsample",
    "resample-model",
    "offset20-model-4x-subsample",
    "resample5-model",
    "offset4-model-2x-subsample",
    "resample1-model",
)

# name: (offset, parameters at n=120, h=32, d=3, parameters at d=8 or None, normalised) (§2.2/2.3)
REFERENCE_TABLE = {
    "offset1-model": ((0, 1), 5_507, 5_592, True),
    "offset1-model-mse": ((0, 1), 21_903, None, False),
    "offset1-model-v2": ((0, 1), 6_083, None, True),
    "offset1-model-v3": ((0, 1), 6_083, None, True),
    "offset1-model-v4": ((0, 1), 8_195, None, True),
    "offset1-model-v5": ((0, 1), 8_195, None, True),
    "offset5-model": ((2, 3), 11_011, None, True),
    "offset10-model": ((5, 5), 17_315, 17_800, True),
    "offset10-model-mse": ((5, 5), 17_315, None, False),
    "offset10-model-mse-tanh": ((5, 5), 17_315, None, False),
    "offset15-model": ((7, 8), 26_531, None, True),
    "offset20-model": ((10, 10), 32_835, None, True),
    "offset36-model": ((18, 18), 57_667, None, True),
    "offset36-model-dropout": ((18, 18), 57_667, None, True),
    "offset36-model-more-dropout": ((18, 18), 57_667, None, True),
    "offset40-model": ((20, 20), 63_875, None, True),
    "offset50-model": ((25, 25), 79_395, None, True),
    "offset1-model-mse-tanh": ((0, 1), 21_903, None, False),
    "offset40-model-4x-subsample": ((20, 20), 39_619, None, True),
    "offset20-model-4x-subsample": ((10, 10), 33_315, None, True),
}


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# ---------------------------------------------------------------------------------------- Offset


def test_offset_length_and_window():
    offset = Offset(5, 5)
    assert len(offset) == 10
    assert list(offset.window(7)) == list(range(2, 12))
    assert len(Offset(0, 1)) == 1


def test_offset_is_frozen_and_hashable():
    offset = Offset(2, 3)
    with pytest.raises(AttributeError):
        offset.left = 4
    assert {offset: 1}[Offset(2, 3)] == 1


def test_offset_accepts_numpy_integers_as_ints():
    offset = Offset(np.int64(3), np.int32(4))
    assert type(offset.left) is int and type(offset.right) is int
    assert len(offset) == 7


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        (-1, 1, "left must be >= 0, got left=-1"),
        (0, 0, "right must be >= 1"),
        (1.5, 1, "left must be an integer, got 1.5"),
        (0, True, "right must be an integer"),
    ],
)
def test_offset_rejects_invalid_values(left, right, message):
    with pytest.raises(ValueError, match=message):
        Offset(left, right)


# -------------------------------------------------------------------------------------- Registry


def test_supported_list_has_139_names_without_subsampling_models():
    assert len(SUPPORTED) == 139
    assert len(set(SUPPORTED)) == 139
    assert SUPPORTED[0] == "offset10-model"
    assert not [name for name in SUPPORTED if "subsample" in name or "resample" in name]
    assert set(REFERENCE_TABLE) - set(SUBSAMPLING) <= set(SUPPORTED)
    assert "offset40-model-mse" not in SUPPORTED and "offset36-model-mse" not in SUPPORTED


def test_supported_list_counts_the_parametrized_families():
    assert len(models.supported_model_architectures("offset1-model-mse-clip-*")) == 81
    assert len(models.supported_model_architectures("offset1-model-mse-v2-*")) == 20
    assert len(models.supported_model_architectures("offset1-model-mse-resnet-*")) == 20
    assert models.supported_model_architectures("offset3?-*") == [
        "offset36-model",
        "offset36-model-dropout",
        "offset36-model-more-dropout",
    ]
    assert models.supported_model_architectures("no-such-*") == []


def test_supported_list_equals_cebra():
    cebra_models = pytest.importorskip("cebra.models")
    expected = [
        name
        for name in cebra_models.get_options()
        if not any(word in name for word in ("subsample", "resample", "supervised"))
    ]
    assert SUPPORTED == expected


@pytest.mark.parametrize("name", sorted(REFERENCE_TABLE))
def test_parameter_counts_offsets_and_normalisation_match_reference_table(name):
    offset, params_d3, params_d8, normalised = REFERENCE_TABLE[name]
    encoder = models.init(name, 120, 32, 3)
    assert count_parameters(encoder) == params_d3
    assert encoder.get_offset() == Offset(*offset)
    assert encoder.normalize is normalised
    assert encoder.num_input == 120 and encoder.num_output == 3
    if params_d8 is not None:
        assert count_parameters(models.init(name, 120, 32, 8)) == params_d8


def test_offset10_state_dict_keys_and_shapes():
    shapes = {
        key: tuple(value.shape)
        for key, value in models.init("offset10-model", 120, 32, 3).state_dict().items()
    }
    assert shapes == {
        "net.0.weight": (32, 120, 2),
        "net.0.bias": (32,),
        "net.2.module.0.weight": (32, 32, 3),
        "net.2.module.0.bias": (32,),
        "net.3.module.0.weight": (32, 32, 3),
        "net.3.module.0.bias": (32,),
        "net.4.module.0.weight": (32, 32, 3),
        "net.4.module.0.bias": (32,),
        "net.5.weight": (3, 32, 3),
        "net.5.bias": (3,),
    }


def test_offset1_state_dict_keys_and_shapes():
    shapes = {
        key: tuple(value.shape)
        for key, value in models.init("offset1-model", 120, 32, 3).state_dict().items()
    }
    assert shapes == {
        "net.1.weight": (32, 120),
        "net.1.bias": (32,),
        "net.3.weight": (32, 32),
        "net.3.bias": (32,),
        "net.5.weight": (16, 32),
        "net.5.bias": (16,),
        "net.7.weight": (3, 16),
        "net.7.bias": (3,),
    }


def test_family_intermediate_layers_share_weights_like_the_reference():
    one = models.init("offset1-model-mse-v2-1layers", 20, 8, 3)
    five = models.init("offset1-model-mse-v2-5layers", 20, 8, 3)
    assert count_parameters(one) == count_parameters(five)
    assert len(five.state_dict()) == len(one.state_dict()) + 8
    assert five.net[3] is five.net[5]


def test_subsampling_models_are_buildable_with_their_aliases():
    for name, alias in zip(SUBSAMPLING[::2], SUBSAMPLING[1::2], strict=True):
        encoder = models.init(name, 10, 8, 3)
        aliased = models.init(alias, 10, 8, 3)
        assert encoder.get_offset() == aliased.get_offset()
        assert encoder.resample_factor == aliased.resample_factor > 1
    assert models.init("offset40-model-4x-subsample", 10, 8, 3).is_convolutional
    assert not models.init("offset4-model-2x-subsample", 10, 8, 3).is_convolutional
    assert models.init("offset10-model", 10, 8, 3).resample_factor == 1


def test_activations_are_exact_gelu():
    encoder = models.init("offset10-model", 10, 8, 3)
    gelus = [module for module in encoder.modules() if isinstance(module, torch.nn.GELU)]
    assert len(gelus) == 4
    assert all(gelu.approximate == "none" for gelu in gelus)


# ---------------------------------------------------------------------------------------- Shapes


@pytest.mark.parametrize("name", SUPPORTED)
def test_window_and_sequence_shapes(name):
    torch.manual_seed(0)
    encoder = models.init(name, 5, 4, 3).eval()
    window = len(encoder.get_offset())
    with torch.no_grad():
        for batch in (1, 2, 7):
            output = encoder(torch.randn(batch, 5, window))
            assert output.shape == (batch, 3)
            assert torch.isfinite(output).all()
        for length in (window, 100, 430):
            assert encoder.embed_sequence(torch.randn(length, 5)).shape == (length - window + 1, 3)
    assert encoder.is_convolutional is (window > 1)


@pytest.mark.parametrize("name", ["offset40-model-4x-subsample", "offset20-model-4x-subsample"])
def test_resampling_model_shapes(name):
    encoder = models.init(name, 5, 4, 3).eval()
    window = len(encoder.get_offset())
    with torch.no_grad():
        assert encoder(torch.randn(7, 5, window)).shape == (7, 3)
        for length in (100, 430, 1000):
            expected = (length - window) // 4 + 1
            assert encoder.embed_sequence(torch.randn(length, 5)).shape == (expected, 3)


def test_offset4_subsample_embeds_strided_windows():
    encoder = models.init("offset4-model-2x-subsample", 5, 4, 3).eval()
    sequence = torch.randn(11, 5)
    with torch.no_grad():
        embedded = encoder.embed_sequence(sequence)
        windows = torch.stack([sequence[start : start + 4].T for start in (0, 2, 4, 6)])
        torch.testing.assert_close(embedded, encoder(windows))


def test_conv_sequence_embedding_equals_sliding_windows():
    torch.manual_seed(1)
    encoder = models.init("offset10-model", 6, 8, 3).eval()
    sequence = torch.randn(25, 6)
    with torch.no_grad():
        embedded = encoder.embed_sequence(sequence)
        windows = sequence.unfold(0, 10, 1)
        torch.testing.assert_close(embedded, encoder(windows), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [name for name in REFERENCE_TABLE if REFERENCE_TABLE[name][3]])
def test_normalised_models_output_unit_rows(name):
    encoder = models.init(name, 5, 4, 3).eval()
    window = len(encoder.get_offset())
    with torch.no_grad():
        norms = torch.linalg.vector_norm(encoder(torch.randn(9, 5, window)), dim=1)
    torch.testing.assert_close(norms, torch.ones(9))


def test_mse_model_is_not_normalised_and_tanh_bounds_output():
    torch.manual_seed(0)
    data = 50 * torch.randn(32, 5)
    with torch.no_grad():
        plain = models.init("offset1-model-mse", 5, 4, 3)(data)
        tanh = models.init("offset1-model-mse-tanh", 5, 4, 3)(data)
    assert not torch.allclose(torch.linalg.vector_norm(plain, dim=1), torch.ones(32))
    assert tanh.abs().max() < 1


def test_clip_model_clips_to_its_bounds():
    torch.manual_seed(0)
    encoder = models.init("offset1-model-mse-clip-5-1", 5, 4, 3)
    with torch.no_grad():
        output = encoder(1e4 * torch.randn(256, 5))
    assert output.min() >= -5 and output.max() <= 1
    assert (output == 1).any() and (output == -5).any()


def test_dropout_model_is_deterministic_in_eval_mode():
    encoder = models.init("offset36-model-more-dropout", 5, 4, 3).eval()
    data = torch.randn(4, 5, 36)
    with torch.no_grad():
        torch.testing.assert_close(encoder(data), encoder(data))


# ------------------------------------------------------------------------------- Against cebra


@pytest.mark.parametrize("name", SUPPORTED + list(SUBSAMPLING))
def test_state_dict_and_forward_equal_cebra(name):
    cebra_models = pytest.importorskip("cebra.models")
    torch.manual_seed(0)
    reference = cebra_models.init(name, num_neurons=7, num_units=6, num_output=3).eval()
    ours = models.init(name, 7, 6, 3).eval()
    reference_state = reference.state_dict()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference_state.items()
    }
    assert count_parameters(ours) == count_parameters(reference)
    ours.load_state_dict(reference_state)
    window = len(ours.get_offset())
    assert window == len(reference.get_offset())
    data = torch.randn(5, 7, window)
    with torch.no_grad():
        torch.testing.assert_close(ours(data), reference(data), rtol=0, atol=1e-6)
        if ours.is_convolutional:
            sequence = torch.randn(120, 7)
            expected = reference(sequence.T[None])[0].T
            torch.testing.assert_close(ours.embed_sequence(sequence), expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ Bad input


def test_unknown_name_suggests_close_match_and_where_to_find_the_list():
    with pytest.raises(ValueError, match="Unknown model architecture 'offset10-modle'") as info:
        models.init("offset10-modle", 5, 4, 3)
    message = str(info.value)
    assert "Did you mean 'offset10-model'" in message
    assert "supported_model_architectures()" in message
    assert "offset36-model-more-dropout" in message


def test_unknown_name_without_close_match_lists_valid_names():
    with pytest.raises(ValueError, match="Valid names: offset10-model, ") as info:
        models.init("transformer", 5, 4, 3)
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "sizes", "message"),
    [
        ("offset10-model", (0, 4, 3), "num_neurons must be at least 1.*got 0"),
        ("offset10-model", (5, 4, 0), "num_output must be at least 1.*got 0"),
        ("offset10-model", (5, 0, 3), "num_units must be at least 1.*got 0"),
        ("offset1-model", (5, 1, 3), "num_units must be at least 2.*got 1"),
        ("offset1-model-mse-v2-3layers", (5, 1, 3), "num_units must be at least 2"),
        ("offset1-model", (5.0, 4, 3), "num_neurons must be an integer, got 5.0"),
        ("offset1-model", (5, 4, True), "num_output must be an integer"),
    ],
)
def test_constructor_checks(name, sizes, message):
    with pytest.raises(ValueError, match=message):
        models.init(name, *sizes)


def test_mse_model_ignores_hidden_units():
    assert count_parameters(models.init("offset1-model-mse", 120, 0, 3)) == 21_903


def test_embed_sequence_rejects_bad_shapes():
    encoder = models.init("offset10-model", 5, 4, 3)
    with pytest.raises(ValueError, match=r"shape \(T, 5\).*got \(20, 6\)"):
        encoder.embed_sequence(torch.randn(20, 6))
    with pytest.raises(ValueError, match="9 samples, fewer than the receptive field 10"):
        encoder.embed_sequence(torch.randn(9, 5))
    with pytest.raises(ValueError, match=r"got \(2, 20, 5\)"):
        encoder.embed_sequence(torch.randn(2, 20, 5))


def test_initialisation_from_a_private_generator_equals_global_seeding():
    """Every registered architecture: the weights of ``init(..., generator=g)`` are those drawn
    from the global generator in the same state, and the global generator is not touched."""
    for name in SUPPORTED + list(SUBSAMPLING):
        torch.manual_seed(3)
        expected = models.init(name, 7, 6, 3).state_dict()
        torch.manual_seed(11)
        before = torch.rand(4)
        torch.manual_seed(11)
        ours = models.init(name, 7, 6, 3, generator=torch.Generator().manual_seed(3)).state_dict()
        assert torch.equal(torch.rand(4), before), name
        assert list(ours) == list(expected), name
        assert all(torch.equal(ours[key], expected[key]) for key in expected), name


def test_init_empty_has_shapes_but_no_storage():
    encoder = models.init_empty("offset10-model", 10**9, 32, 3)
    assert encoder.net[0].weight.shape == (32, 10**9, 2)
    assert all(parameter.is_meta for parameter in encoder.parameters())
    assert encoder.get_offset() == Offset(5, 5)


@pytest.mark.parametrize("shape", [(64, 32, 9), (32, 9)])
def test_seeded_dropout_draws_torch_masks_from_its_own_generator(shape):
    data = torch.randn(*shape)
    torch.manual_seed(5)
    reference = torch.nn.Dropout1d(0.1).train()
    expected = [reference(data), reference(data)]
    dropout = models.SeededDropout1d(0.1).train()
    models.seed_dropout(torch.nn.Sequential(dropout), torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    masked = [dropout(data), dropout(data)]
    assert torch.equal(torch.rand(3), before)  # the global generator was not used
    assert all(torch.equal(a, b) for a, b in zip(masked, expected, strict=True))
    assert not torch.equal(masked[0], masked[1])
    assert torch.equal(dropout.eval()(data), data)


def test_default_initialisation_is_seedable():
    torch.manual_seed(3)
    first = models.init("offset10-model", 5, 4, 3).state_dict()
    torch.manual_seed(3)
    second = models.init("offset10-model", 5, 4, 3).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not math.isclose(float(first["net.0.weight"].std()), 0.0)
