"""Training on long recordings: a step's work does not grow with the recording (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from napari_cebra import CEBRA
from napari_cebra.core.training import Solver

BATCH_SIZE = 512
WINDOW = 10  # offset10-model


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return _tensors(list(value.values()))
    return []


class _AllocationRecorder(TorchDispatchMode):
    """The largest tensor an operator allocates (an output whose storage no argument has)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.seen = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        given = {tensor.untyped_storage().data_ptr() for tensor in _tensors((args, kwargs))}
        for tensor in _tensors(output):
            self.seen += 1
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in given:
                self.largest = max(self.largest, storage.nbytes())
        return output


def test_the_allocation_recorder_sees_new_tensors_only():
    recorder = _AllocationRecorder()
    data, buffer = torch.zeros(1000), torch.zeros(1000)
    with recorder:
        data.add_(1.0)
        data[10:]  # a view
        torch.index_select(data, 0, torch.arange(100), out=buffer[:100])
    assert recorder.largest == 100 * 8  # the index tensor, int64
    with recorder:
        data.clone()
    assert recorder.largest == 1000 * 4


@pytest.mark.parametrize("frames", [5_000, 20_000])
def test_training_steps_allocate_nothing_the_size_of_the_windows(frames, monkeypatch):
    """After the first step (which may build caches), a step on a 1,000-neuron recording
    allocates no tensor near the size of the batch's input windows (``3 B · L · n``). Per-step
    copies of that size (gathered windows, their column matrix, a column matrix of the whole
    recording recomputed every step) made training 6.5× slower at 20,000 frames than at 5,000:
    large fresh allocations cost page faults at every step."""
    neurons = 1000
    data = np.random.default_rng(0).standard_normal((frames, neurons), dtype=np.float32)
    recorder = _AllocationRecorder()
    steps = []
    original = Solver.step

    def recorded_step(self, objective):
        steps.append(None)
        if len(steps) == 1:
            return original(self, objective)
        with recorder:
            return original(self, objective)

    monkeypatch.setattr(Solver, "step", recorded_step)
    CEBRA(
        model_architecture="offset10-model",
        batch_size=BATCH_SIZE,
        conditional="time",
        max_iterations=3,
        device="cpu",
        verbose=False,
    ).fit(data)
    assert len(steps) == 3
    assert recorder.seen > 100
    windows_bytes = 3 * BATCH_SIZE * WINDOW * neurons * 4
    assert recorder.largest < windows_bytes / 8


def test_seeded_training_on_a_long_recording_is_reproducible():
    """The frames path (per-frame sums of gradients, a reused buffer) gives the same model for
    the same seed and settings."""
    data = np.random.default_rng(1).standard_normal((30_000, 40), dtype=np.float32)

    def fit() -> CEBRA:
        return CEBRA(
            model_architecture="offset10-model",
            batch_size=BATCH_SIZE,
            conditional="time",
            max_iterations=5,
            device="cpu",
            seed=0,
            verbose=False,
        ).fit(data)

    first, second = fit(), fit()
    assert first.state_dict_["loss"].tolist() == second.state_dict_["loss"].tolist()
    np.testing.assert_array_equal(first.transform(data[:500]), second.transform(data[:500]))
