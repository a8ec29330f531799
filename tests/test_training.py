"""The step loop, window gathering and sequence embedding (spec §3, §4.1, §4.7, §5.6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from napari_cebra.core.loss import InfoNCE
from napari_cebra.core.models import init
from napari_cebra.core.offset import Offset
from napari_cebra.core.sampling import TimeSampler
from napari_cebra.core.training import (
    STAT_KEYS,
    ContrastiveObjective,
    FullBatchObjective,
    Solver,
    TrainingProgress,
    format_stats,
)
from napari_cebra.core.windows import WindowEncoder, embed_recording, replicate_pad


def test_stats_text_matches_the_reference_progress_bar():
    stats = {"pos": -0.99234, "neg": 5.15081, "total": 4.15847, "temperature": 1.0}
    assert format_stats(stats) == "pos: -0.9923 neg:  5.1508 total:  4.1585 temperature:  1.0000"


def test_windows_are_gathered_around_clamped_centres():
    data = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    windows = WindowEncoder(data, Offset(2, 3), convolutional=True)
    batch = windows.windows(torch.tensor([0, 4, 9]))
    assert batch.shape == (3, 2, 5)
    # centre 0 is clamped to 2 (rows 0..4), centre 9 to N - right = 7 (rows 5..9)
    np.testing.assert_array_equal(batch[0, 0].numpy(), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(batch[1, 1].numpy(), [5, 7, 9, 11, 13])
    np.testing.assert_array_equal(batch[2, 0].numpy(), [10, 12, 14, 16, 18])


def test_offset1_windows_are_rows():
    data = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    windows = WindowEncoder(data, Offset(0, 1), convolutional=False)
    np.testing.assert_array_equal(windows.windows(torch.tensor([5, 0])).numpy(), [[10, 11], [0, 1]])


def test_window_embeddings_equal_sequence_embeddings():
    torch.manual_seed(0)
    encoder = init("offset10-model", 4, 8, 3).eval()
    data = torch.randn(60, 4)
    windows = WindowEncoder(data, encoder.get_offset(), convolutional=True)
    centres = torch.arange(5, 56)
    with torch.no_grad():
        torch.testing.assert_close(windows(encoder, centres), encoder.embed_sequence(data))


def test_replicate_padding():
    data = torch.tensor([[1.0], [2.0], [3.0]])
    padded = replicate_pad(data, Offset(2, 3))
    np.testing.assert_array_equal(padded[:, 0].numpy(), [1, 1, 1, 2, 3, 3, 3])


@pytest.mark.parametrize("batch_size", [4, 10, 17])
def test_embed_recording_batched_equals_unbatched(batch_size):
    torch.manual_seed(0)
    encoder = init("offset5-model", 3, 8, 2).eval()
    data = torch.randn(50, 3)
    with torch.no_grad():
        full = embed_recording(encoder, data)
        batched = embed_recording(encoder, data, batch_size=batch_size)
    assert full.shape == (50, 2)
    torch.testing.assert_close(batched, full, rtol=1e-5, atol=1e-6)


def test_embed_recording_reference_batch_limits():
    """§10.2 #2 helper test: 15 samples, offset5: batch 6 and 5 work, 2 raises."""
    encoder = init("offset5-model", 3, 8, 2).eval()
    data = torch.randn(15, 3)
    with torch.no_grad():
        for batch_size in (5, 6):
            assert embed_recording(encoder, data, batch_size=batch_size).shape == (15, 2)
        with pytest.raises(ValueError, match="required.*offset.*length"):
            embed_recording(encoder, data, batch_size=2)


def _solver(data: torch.Tensor, seed: int = 0) -> tuple[Solver, ContrastiveObjective]:
    torch.manual_seed(seed)
    encoder = init("offset5-model", data.shape[1], 8, 3)
    criterion = InfoNCE()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    objective = ContrastiveObjective(
        WindowEncoder(data, encoder.get_offset(), True),
        TimeSampler(data.shape[0], 2, generator),
        batch_size=16,
    )
    return Solver("single-session", encoder, criterion, optimizer, STAT_KEYS, 4), objective


def test_solver_yields_every_k_steps_and_records_all_steps():
    solver, objective = _solver(torch.randn(100, 4))
    records = list(solver.run(objective, num_steps=7, yield_every=3))
    assert all(isinstance(record, TrainingProgress) for record in records)
    assert [record.step for record in records] == [3, 6, 7]
    assert len(solver.history) == 7
    assert {key: len(values) for key, values in solver.log.items()} == dict.fromkeys(STAT_KEYS, 7)
    assert records[-1].total == solver.history[-1]
    np.testing.assert_allclose(
        np.add(solver.log["pos"], solver.log["neg"]), solver.log["total"], rtol=1e-5
    )
    assert solver.log["temperature"] == [1.0] * 7


def test_solver_state_round_trip():
    data = torch.randn(100, 4)
    solver, objective = _solver(data)
    list(solver.run(objective, num_steps=4, yield_every=2))
    state = solver.state_dict()
    assert state["loss"].shape == (4,)
    assert state["version"] == "0.6.1"
    other, _ = _solver(data, seed=1)
    other.load_state_dict(state)
    assert other.history == solver.history
    for key, value in solver.model.state_dict().items():
        torch.testing.assert_close(other.model.state_dict()[key], value)


def test_full_batch_positives_beyond_the_output_are_replaced_by_references():
    data = torch.randn(40, 3)
    offset = Offset(5, 5)
    sampler = TimeSampler(40, 10, torch.Generator().manual_seed(0))
    objective = FullBatchObjective(data, sampler, offset, torch.Generator().manual_seed(0))
    assert objective.reference.tolist() == list(range(5, 29))
    encoder = init("offset10-model", 3, 8, 3)
    total, pos, neg = objective.loss(encoder, InfoNCE())
    assert torch.isfinite(total)
    assert total.item() == pytest.approx(pos.item() + neg.item(), abs=1e-5)


def test_iter_fit_yields_by_time_when_steps_are_slow():
    """A GUI must be able to stop within ~max_interval even if yield_every steps take long."""
    import time

    import numpy as np

    from napari_cebra import CEBRA

    X = np.random.default_rng(0).normal(size=(400, 6)).astype(np.float32)
    model = CEBRA(model_architecture="offset10-model", batch_size=64, max_iterations=40, seed=0)
    stamps, steps = [], []
    for progress in model.iter_fit(X, yield_every=1000, max_interval=0.0):
        stamps.append(time.perf_counter())
        steps.append(progress.step)
    # max_interval=0 yields after every step although yield_every is larger than the run
    assert steps == list(range(1, 41))
    quiet = list(
        CEBRA(
            model_architecture="offset10-model", batch_size=64, max_iterations=40, seed=0
        ).iter_fit(X, yield_every=1000, max_interval=None)
    )
    assert [p.step for p in quiet] == [40]
    # time-based yields do not change the training itself
    assert quiet[-1].total == progress.total


class _HostSyncRecorder(TorchDispatchMode):
    """Records the operators that make the host wait for the device (reading a value, or a
    result whose shape depends on the data)."""

    SYNCHRONISING = frozenset(
        {
            "_local_scalar_dense",  # .item(), float(), bool(), int()
            "is_nonzero",
            "equal",
            "nonzero",
            "masked_select",
            "_unique",
            "_unique2",
            "unique_dim",
            "unique_consecutive",
            "repeat_interleave",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.seen = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.seen += 1
        if name in self.SYNCHRONISING:
            self.found.append(name)
        return func(*args, **(kwargs or {}))


def test_the_sync_recorder_sees_host_reads():
    recorder = _HostSyncRecorder()
    with recorder:
        value = torch.tensor([1.0, 0.0])
        value.sum().item()
        value.nonzero()
    assert recorder.found == ["_local_scalar_dense", "nonzero"]


_SOLVERS = {
    "time": (dict(conditional="time"), ()),
    "time_delta": (dict(conditional="time_delta"), ("continuous",)),
    "delta_normal": (dict(conditional="delta_normal", delta=0.3), ("continuous",)),
    "discrete": (dict(conditional="time_delta"), ("discrete",)),
    "mixed": (dict(conditional="time_delta"), ("continuous", "discrete")),
    "hybrid": (dict(conditional="time_delta", hybrid=True), ("continuous",)),
    "full batch": (dict(conditional="time", batch_size=None), ()),
    "bfloat16": (dict(conditional="time", precision="bfloat16"), ()),
    "offset1": (dict(conditional="time", model_architecture="offset1-model"), ()),
    "learnable temperature": (dict(conditional="time", temperature_mode="auto"), ()),
    "multi-session": (dict(conditional="time_delta"), ("sessions",)),
}


@pytest.mark.parametrize("solver", list(_SOLVERS))
def test_training_steps_never_wait_for_the_device(solver, monkeypatch):
    """Item 5 of the performance issue, checked without a GPU: no training step reads a value
    back or creates a data-dependent shape, so on CUDA the host can queue steps ahead of the
    device (statistics are copied only when progress is reported)."""
    from napari_cebra import CEBRA

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 12)).astype(np.float32)
    labels = {
        "continuous": rng.normal(size=(600, 2)).astype(np.float32),
        "discrete": rng.integers(0, 3, 600),
    }
    options, label_names = _SOLVERS[solver]
    if label_names == ("sessions",):
        X, y = [X, X[:400]], ([labels["continuous"], labels["continuous"][:400]],)
    else:
        y = tuple(labels[name] for name in label_names)
    recorder = _HostSyncRecorder()
    steps = []
    original = Solver.step

    def recorded_step(self, objective):
        steps.append(None)
        with recorder:
            return original(self, objective)

    monkeypatch.setattr(Solver, "step", recorded_step)
    params = dict(model_architecture="offset10-model", batch_size=64, output_dimension=3, seed=0)
    CEBRA(**{**params, **options}, max_iterations=4).fit(X, *y)
    assert len(steps) == 4
    assert recorder.seen > 100  # the steps' operators went through the recorder
    assert recorder.found == []


def _adam_trajectory(options: dict, step, steps: int = 6) -> list[torch.Tensor]:
    """Parameters after ``steps`` updates of Adam(``options``) on a fixed cubic loss, each done
    by ``step(optimizer)``; the last parameter gets no gradient (skipped, as by Adam)."""
    generator = torch.Generator().manual_seed(0)
    parameters = [
        torch.nn.Parameter(torch.randn(shape, generator=generator))
        for shape in ((4, 3, 2), (4,), (), (5,))
    ]
    optimizer = torch.optim.Adam(parameters, lr=0.01, **options)
    targets = [torch.randn(p.shape, generator=generator) for p in parameters[:-1]]
    for _ in range(steps):
        for parameter in parameters:
            parameter.grad = None
        loss = sum(((p - t) ** 3).abs().sum() for p, t in zip(parameters, targets, strict=False))
        loss.backward()
        step(optimizer)
    assert parameters[-1].grad is None and optimizer.state.get(parameters[-1]) is None
    return [p.detach().clone() for p in parameters]


@pytest.mark.parametrize(
    "options",
    [
        {"fused": True},
        {"fused": True, "amsgrad": True, "weight_decay": 0.1},
        {"fused": True, "maximize": True, "betas": (0.8, 0.99), "eps": 1e-6},
        {},  # not fused: optimizer.step() does every update
    ],
)
def test_adam_update_equals_optimizer_step_bit_for_bit(options):
    from napari_cebra.core.training import adam_update

    expected = _adam_trajectory(options, lambda optimizer: optimizer.step())
    updated = _adam_trajectory(options, adam_update)
    for before, after in zip(expected, updated, strict=True):
        assert torch.equal(before, after)
    assert not torch.equal(expected[0], _adam_trajectory(options, lambda optimizer: None)[0])


def test_adam_update_takes_the_functional_kernel_after_the_first_step(monkeypatch):
    import torch.optim.adam as torch_adam

    from napari_cebra.core.training import adam_update

    calls = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(
        torch.optim.Adam, "step", lambda self, *a: calls.append("step") or step(self, *a)
    )
    kernel = torch_adam.adam
    monkeypatch.setattr(
        torch_adam, "adam", lambda *a, **k: calls.append("functional") or kernel(*a, **k)
    )
    _adam_trajectory({"fused": True}, adam_update, steps=3)
    # the first step initialises the state through Adam.step (which calls the functional
    # kernel itself); the later ones call the kernel directly
    assert calls == ["step", "functional", "functional", "functional"]
