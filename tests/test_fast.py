"""Equivalence tests of the fast training path (core.fast) with the generic modules.

Meant for ``tests/`` (the lead moves it there); runs as ``python -m pytest benchmarks/test_fast.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_cebra.core import fast
from napari_cebra.core.fast import ChannelsLastEncoder, FusedCriterion, compile_encoder
from napari_cebra.core.loss import InfoNCE
from napari_cebra.core.models import init
from napari_cebra.core.windows import WindowEncoder, embed_recording

ARCHITECTURES = [
    "offset5-model",
    "offset10-model",
    "offset10-model-mse",
    "offset10-model-mse-tanh",
    "offset15-model",
    "offset36-model",
]


def _gradients(encoder, embed, centres):
    encoder.zero_grad()
    reference, positive, negative = embed(encoder, centres).chunk(3)
    InfoNCE()(reference, positive, negative)[0].backward()
    return [parameter.grad.clone() for parameter in encoder.parameters()]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize(
    ("frames", "path"), [(150, "recording"), (3000, "frames"), (3000, "windows")]
)
def test_channels_last_program_equals_the_modules(architecture, frames, path, monkeypatch):
    """Embeddings and gradients equal the Conv1d modules', with the first layers shared over the
    recording (150 frames, chosen), from the covered frames (3000, the path of CPUs for long,
    wide recordings) or per window (3000, the path of other devices and of CPUs for long,
    narrow recordings)."""
    torch.manual_seed(0)
    data = torch.randn(frames, 12)
    encoder = init(architecture, 12, 16, 4)
    offset = encoder.get_offset()
    program = ChannelsLastEncoder(data, offset)
    if path == "recording":
        assert program.first_layer_path(compile_encoder(encoder), 3 * 40) == path
    else:
        monkeypatch.setattr(ChannelsLastEncoder, "first_layer_path", lambda *_: path)
    centres = torch.randint(0, frames, (3 * 40,))
    expected = encoder(WindowEncoder(data, offset, True).windows(centres))
    np.testing.assert_allclose(
        program(encoder, centres).detach(), expected.detach(), rtol=0, atol=2e-6
    )
    generic = _gradients(
        encoder, lambda e, c: e(WindowEncoder(data, offset, True).windows(c)), centres
    )
    channels_last = _gradients(encoder, program, centres)
    for a, b in zip(generic, channels_last, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_program_shares_first_layers_only_when_cheaper():
    encoder = init("offset10-model", 5, 8, 3)
    program = compile_encoder(encoder)
    small = ChannelsLastEncoder(torch.zeros(100, 5), encoder.get_offset())
    large = ChannelsLastEncoder(torch.zeros(100_000, 5), encoder.get_offset())
    assert small._shared_prefix(program, 300) == len(program.layers)
    assert large._shared_prefix(program, 300) == 0


@pytest.mark.parametrize(
    ("neurons", "long_path"), [(12, "windows"), (120, "windows"), (1000, "frames")]
)
def test_first_layer_path_stays_off_the_recording_once_it_is_long(neurons, long_path):
    """On CPUs the first layer runs over the whole recording only while that is cheaper; past
    that, narrow recordings take one product per window (a small column matrix) and wide ones
    the covered frames (their column matrix would be fresh pages at every step), whatever the
    length."""
    encoder = init("offset10-model", neurons, 32, 3)
    program = compile_encoder(encoder)
    paths = {
        frames: ChannelsLastEncoder(
            torch.empty(frames, neurons), encoder.get_offset()
        ).first_layer_path(program, 3 * 512)
        for frames in (2_000, 5_000, 20_000, 100_000, 1_000_000)
    }
    assert paths[2_000] == "recording"
    assert paths[20_000] == paths[100_000] == paths[1_000_000] == long_path


def test_per_window_path_is_left_where_its_columns_would_be_fresh_pages():
    """The same 500-neuron recording: its float32 column matrix (55 MB) rules the per-window
    path out, its bfloat16 one (28 MB) does not."""
    encoder = init("offset10-model", 500, 32, 3)
    program = compile_encoder(encoder)
    data = torch.empty(100_000, 500)
    paths = {
        dtype: ChannelsLastEncoder(data, encoder.get_offset(), dtype).first_layer_path(
            program, 3 * 512
        )
        for dtype in (torch.float32, torch.bfloat16)
    }
    assert paths == {torch.float32: "frames", torch.bfloat16: "windows"}


def test_frames_path_gradients_with_two_passes_before_backward(monkeypatch):
    """The frames path reuses one buffer from step to step; two passes whose graphs are both
    alive do not share it, so their gradients are those of the modules."""
    monkeypatch.setattr(fast, "_FRESH_ALLOCATION_BYTES", 0)  # no per-window path: frames
    torch.manual_seed(3)
    data = torch.randn(4000, 10)
    encoder = init("offset10-model", 10, 16, 3)
    offset = encoder.get_offset()
    program = ChannelsLastEncoder(data, offset)
    first, second = torch.randint(0, 4000, (2, 3 * 40))
    assert program.first_layer_path(compile_encoder(encoder), 3 * 40) == "frames"

    def embed_twice(embed):
        encoder.zero_grad()
        losses = [InfoNCE()(*embed(centres).chunk(3))[0] for centres in (first, second)]
        (losses[0] + losses[1]).backward()
        return [parameter.grad.clone() for parameter in encoder.parameters()]

    windows = WindowEncoder(data, offset, True)
    expected = embed_twice(lambda centres: encoder(windows.windows(centres)))
    for a, b in zip(expected, embed_twice(lambda c: program(encoder, c)), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    repeated = embed_twice(lambda c: program(encoder, c))
    again = embed_twice(lambda c: program(encoder, c))
    assert all(torch.equal(a, b) for a, b in zip(repeated, again, strict=True))


def test_sequence_embedding_equals_embed_sequence():
    torch.manual_seed(1)
    data = torch.randn(400, 7)
    encoder = init("offset10-model", 7, 16, 3)
    windows = WindowEncoder(data, encoder.get_offset(), True)
    np.testing.assert_allclose(
        windows.embed_sequence(encoder).detach(),
        encoder.embed_sequence(data).detach(),
        atol=2e-6,
    )


@pytest.mark.parametrize("architecture", ["offset1-model", "offset36-model-dropout"])
def test_unsupported_encoders_have_no_program(architecture):
    assert compile_encoder(init(architecture, 6, 8, 3)) is None


@pytest.mark.parametrize("frames", [2000, 50_000])
def test_bfloat16_program_is_close_and_deterministic(frames):
    torch.manual_seed(2)
    data = torch.poisson(torch.full((frames, 20), 1.5))
    encoder = init("offset10-model", 20, 32, 3)
    offset = encoder.get_offset()
    centres = torch.randint(0, frames, (300,))
    low = ChannelsLastEncoder(data, offset, torch.bfloat16)
    first, second = low(encoder, centres), low(encoder, centres)
    assert torch.equal(first, second)
    assert first.dtype == torch.float32
    reference = ChannelsLastEncoder(data, offset)(encoder, centres)
    assert (first - reference).abs().max() < 0.05


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="Unknown precision 'float16'"):
        fast.compute_dtype("float16")


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("mode", ["constant", "auto"])
@pytest.mark.parametrize("chunk_elements", [1 << 18, 500])
def test_fused_infonce_equals_the_criterion(distance, mode, chunk_elements, monkeypatch):
    """Values and gradients (also of the learnable temperature), in one chunk or in many."""
    monkeypatch.setattr(fast, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(fast, "_MIN_CHUNK_ROWS", 3)
    torch.manual_seed(3)
    criterion = InfoNCE(distance, temperature=0.5, temperature_mode=mode).double()
    start = torch.nn.functional.normalize(torch.randn(250, 3, dtype=torch.float64), dim=1)
    results = []
    for loss in (criterion, FusedCriterion(criterion)):
        criterion.zero_grad()
        embedding = start.clone().requires_grad_()
        terms = loss(embedding[:80], embedding[80:160], embedding[160:])
        (terms[0] + 0.3 * terms[1] - 0.7 * terms[2]).backward()
        gradients = [embedding.grad] + [p.grad for p in criterion.parameters()]
        results.append((torch.stack(terms).detach(), gradients))
    (expected, expected_grads), (actual, actual_grads) = results
    np.testing.assert_allclose(actual, expected, atol=1e-12)
    for a, b in zip(actual_grads, expected_grads, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_chunked_inference_equals_one_call(monkeypatch):
    """Long recordings are embedded in chunks without padding copies; the rows are unchanged."""
    from napari_cebra.core import windows

    torch.manual_seed(4)
    data = torch.randn(1000, 6)
    encoder = init("offset10-model", 6, 8, 3).eval()
    with torch.no_grad():
        whole = embed_recording(encoder, data)
        monkeypatch.setattr(windows, "INFERENCE_CHUNK_ROWS", 97)
        chunked = embed_recording(encoder, data)
        unpadded = embed_recording(encoder, data, pad=False)
    assert chunked.shape == (1000, 3)
    assert unpadded.shape == (991, 3)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    np.testing.assert_allclose(unpadded, whole[5:996], atol=1e-6)
