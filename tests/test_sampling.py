"""Tests of the seeded index samplers (spec §4)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_cebra.core.sampling import (
    BatchIndex,
    DeltaNormalSampler,
    DiscreteSampler,
    HybridBatchIndex,
    HybridSampler,
    MixedSampler,
    MultiSessionBatchIndex,
    MultiSessionSampler,
    TimeDeltaSampler,
    TimeSampler,
    _BruteForceSearch,
    _NearestNeighbours,
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def brute_force_nearest(labels: np.ndarray, queries: np.ndarray, groups=None, query_groups=None):
    """Lowest index of the minimal squared Euclidean distance, optionally within a group."""
    distance = ((queries[:, None, :] - labels[None, :, :]) ** 2).sum(-1)
    if groups is not None:
        distance = np.where(groups[None, :] == query_groups[:, None], distance, np.inf)
    return distance.argmin(axis=1)


def ramp(n: int, step: float, width: int = 1) -> np.ndarray:
    return (step * np.arange(n, dtype=np.float32))[:, None].repeat(width, axis=1)


def class_labels(n: int, probabilities: list[float], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(len(probabilities), size=n, p=probabilities).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("time_offset", [1, 5, 10])
def test_time_positive_is_reference_plus_offset(time_offset):
    n = 40
    batch = TimeSampler(n, time_offset, generator()).sample(2000)
    assert isinstance(batch, BatchIndex)
    assert batch.reference.dtype == torch.int64
    assert torch.equal(batch.positive - batch.reference, torch.full((2000,), time_offset))
    for indices in (batch.reference, batch.negative):
        assert indices.shape == (2000,)
        assert set(indices.tolist()) == set(range(n - time_offset))


# ---------------------------------------------------------------------------------------------
# time_delta and delta_normal
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("time_offset", [1, 4])
def test_time_delta_on_ramp_moves_at_most_one_displacement(width, time_offset):
    step, n = 0.5, 300
    labels = ramp(n, step, width)
    sampler = TimeDeltaSampler(labels, time_offset, generator())
    batch = sampler.sample(3000)
    move = batch.positive - batch.reference
    # every displacement is Δt steps (or zero for the first Δt rows); the end of the ramp clamps
    assert set(move.tolist()) <= set(range(time_offset + 1))
    inside = batch.reference < n - time_offset
    assert set(move[inside].tolist()) == {0, time_offset}
    assert (move[inside] == 0).float().mean() < 0.1
    distance = np.abs(labels[batch.positive.numpy()] - labels[batch.reference.numpy()])
    assert distance.max() <= step * time_offset
    assert set(batch.reference.tolist()) == set(range(n))


def test_time_delta_displacements_have_zero_rows_first():
    labels = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    sampler = TimeDeltaSampler(labels, 3, generator())
    assert torch.equal(sampler.displacements[:3], torch.zeros(3, 2))
    assert torch.allclose(sampler.displacements[3:], torch.from_numpy(labels[3:] - labels[:-3]))


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("search", ["auto", "brute_force"])
def test_nearest_neighbour_is_exact_with_lowest_index_ties(width, search):
    rng = np.random.default_rng(width)
    # a coarse grid: many duplicated rows, and (1-D) queries exactly between two values
    labels = rng.integers(0, 12, size=(800, width)).astype(np.float32)
    queries = np.concatenate(
        [
            rng.uniform(-2, 14, size=(300, width)),
            labels[rng.integers(0, 800, 100)],
            rng.integers(0, 12, size=(100, width)) + 0.5,
        ]
    ).astype(np.float32)
    label_tensor = torch.from_numpy(labels)
    groups = torch.zeros(800, dtype=torch.int64)
    nearest = (
        _NearestNeighbours(label_tensor)
        if search == "auto"
        else _BruteForceSearch(label_tensor, groups, single_group=True)
    )
    found = nearest(torch.from_numpy(queries), torch.zeros(len(queries), dtype=torch.int64))
    expected = brute_force_nearest(labels, queries)
    if width == 1 or search == "brute_force":
        assert np.array_equal(found.numpy(), expected)
        return
    # k-d tree: exact distances; duplicated rows answer with their lowest index, and only distinct
    # rows at exactly the same distance from a query may be resolved differently
    distance = ((labels[None, :, :] - queries[:, None, :]) ** 2).sum(-1)
    best = distance.min(axis=1)
    assert np.array_equal(distance[np.arange(len(queries)), found.numpy()], best)
    distinct_best_rows = [
        len(np.unique(labels[row == b], axis=0)) for row, b in zip(distance, best, strict=True)
    ]
    unambiguous = np.array(distinct_best_rows) == 1
    assert unambiguous.sum() > 300
    assert np.array_equal(found.numpy()[unambiguous], expected[unambiguous])


@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("search", ["auto", "brute_force"])
def test_grouped_nearest_neighbour_searches_only_the_group(width, search):
    rng = np.random.default_rng(3)
    labels = rng.normal(size=(600, width)).astype(np.float32)
    groups = np.array([0, 2, 5])[rng.integers(0, 3, 600)]
    queries = rng.normal(size=(400, width)).astype(np.float32)
    query_groups = np.array([0, 2, 5])[rng.integers(0, 3, 400)]
    label_tensor, group_tensor = torch.from_numpy(labels), torch.from_numpy(groups)
    nearest = (
        _NearestNeighbours(label_tensor, group_tensor)
        if search == "auto"
        else _BruteForceSearch(label_tensor, group_tensor, single_group=False)
    )
    found = nearest(torch.from_numpy(queries), torch.from_numpy(query_groups))
    assert np.array_equal(found.numpy(), brute_force_nearest(labels, queries, groups, query_groups))


def test_nearest_neighbour_of_an_existing_point_is_itself():
    labels = np.random.default_rng(4).uniform(size=(500, 3)).astype(np.float32)
    found = _NearestNeighbours(torch.from_numpy(labels))(torch.from_numpy(labels))
    assert torch.equal(found, torch.arange(500))


@pytest.mark.parametrize("delta", [0.01, 0.025])
def test_delta_normal_label_difference_has_std_delta(delta):
    labels = np.random.default_rng(5).uniform(size=(100_000, 3)).astype(np.float32)
    sampler = DeltaNormalSampler(labels, delta, generator())
    reference = sampler.sample_prior(20_000)
    positive = sampler.sample_conditional(reference)
    difference = labels[positive.numpy()] - labels[reference.numpy()]
    assert np.allclose(difference.std(axis=0), delta, rtol=0.1)


# ---------------------------------------------------------------------------------------------
# discrete and mixed
# ---------------------------------------------------------------------------------------------


def test_discrete_positives_share_the_label_and_prior_is_empirical():
    labels = class_labels(10_000, [0.3, 0.1, 0.6])
    sampler = DiscreteSampler(labels, generator())
    batch = sampler.sample(20_000)
    assert np.array_equal(labels[batch.positive.numpy()], labels[batch.reference.numpy()])
    frequencies = np.bincount(labels[batch.negative.numpy()], minlength=3) / 20_000
    assert np.allclose(frequencies, np.bincount(labels) / 10_000, atol=0.015)


def test_discrete_positive_is_uniform_within_the_class():
    labels = np.array([4, 1, 4, 4, 1], dtype=np.int64)
    sampler = DiscreteSampler(labels, generator())
    positive = sampler.sample_conditional(torch.zeros(30_000, dtype=torch.int64))
    counts = np.bincount(positive.numpy(), minlength=5)
    assert counts[1] == counts[4] == 0
    assert np.allclose(counts[[0, 2, 3]] / 30_000, 1 / 3, atol=0.015)


@pytest.mark.parametrize("width", [1, 3])
def test_mixed_prior_is_class_balanced_and_positives_share_the_label(width):
    discrete = class_labels(5000, [0.8, 0.15, 0.05])
    continuous = np.random.default_rng(6).normal(size=(5000, width)).astype(np.float32)
    sampler = MixedSampler(continuous, discrete, 2, generator())
    batch = sampler.sample(15_000)
    for indices in (batch.reference, batch.negative):
        frequencies = np.bincount(discrete[indices.numpy()], minlength=3) / 15_000
        assert np.allclose(frequencies, 1 / 3, atol=0.02)
    assert not torch.equal(batch.reference, batch.negative)
    assert np.array_equal(discrete[batch.positive.numpy()], discrete[batch.reference.numpy()])


def test_mixed_positive_is_time_delta_step_within_the_label():
    continuous = ramp(200, 1.0)
    discrete = np.repeat(np.arange(4), 50)
    batch = MixedSampler(continuous, discrete, 3, generator()).sample(2000)
    move = (batch.positive - batch.reference).numpy()
    block_end = (batch.reference.numpy() // 50 + 1) * 50 - 1
    assert np.array_equal(
        batch.positive.numpy(), np.minimum(batch.reference.numpy() + move, block_end)
    )
    assert set(move.tolist()) <= {0, 1, 2, 3}
    assert np.array_equal(discrete[batch.positive.numpy()], discrete[batch.reference.numpy()])


# ---------------------------------------------------------------------------------------------
# hybrid
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("conditional", "delta"), [("time_delta", None), ("delta", 0.05)])
def test_hybrid_returns_behaviour_and_time_positives(conditional, delta):
    n, time_offset = 120, 7
    labels = ramp(n, 0.1, 2)
    sampler = HybridSampler(labels, time_offset, generator(), conditional=conditional, delta=delta)
    batch = sampler.sample(1000)
    assert isinstance(batch, HybridBatchIndex)
    for field in dataclasses.fields(batch):
        assert getattr(batch, field.name).shape == (1000,)
    for indices in (batch.reference, batch.negative):
        assert set(indices.tolist()) == set(range(n - time_offset))
    assert torch.equal(batch.time_positive, batch.reference + time_offset)
    assert 0 <= int(batch.positive.min()) and int(batch.positive.max()) < n
    assert not torch.equal(batch.positive, batch.time_positive)


# ---------------------------------------------------------------------------------------------
# multi-session
# ---------------------------------------------------------------------------------------------


def session_of_slots(batch: MultiSessionBatchIndex) -> np.ndarray:
    """The session each reference's (re-aligned) positive was drawn in."""
    batch_size = batch.reference.shape[1]
    return batch.inverse_permutation.numpy() // batch_size


def test_multi_session_continuous_realigns_positives_with_references():
    sizes, time_offset, batch_size = (90, 150, 120), 2, 64
    # ramps with unit step: the query of reference r is r + Δt (or r on the zero-free ramp)
    sampler = MultiSessionSampler([ramp(n, 1.0, 2) for n in sizes], None, time_offset, generator())
    batch = sampler.sample(batch_size)
    assert isinstance(batch, MultiSessionBatchIndex)
    for name in ("reference", "positive", "negative"):
        assert getattr(batch, name).shape == (3, batch_size)
    for s, n in enumerate(sizes):
        assert int(batch.reference[s].max()) < n and int(batch.negative[s].max()) < n
        assert int(batch.positive[s].max()) < n
    inverse = batch.inverse_permutation
    assert torch.equal(torch.sort(inverse).values, torch.arange(3 * batch_size))
    aligned = batch.positive.reshape(-1)[inverse].numpy()
    session = session_of_slots(batch)
    expected = np.minimum(
        batch.reference.reshape(-1).numpy() + time_offset, np.array(sizes)[session] - 1
    )
    assert np.array_equal(aligned, expected)
    own_session = np.repeat(np.arange(3), batch_size)
    assert (session != own_session).mean() > 0.3


def test_multi_session_discrete_positives_carry_the_reference_label():
    sessions = [class_labels(n, [0.5, 0.3, 0.2], seed=n) for n in (300, 500)]
    sampler = MultiSessionSampler(None, sessions, 1, generator())
    batch = sampler.sample(256)
    aligned = batch.positive.reshape(-1)[batch.inverse_permutation].numpy()
    session = session_of_slots(batch)
    positive_labels = np.array([sessions[s][i] for s, i in zip(session, aligned, strict=True)])
    reference_labels = np.concatenate([sessions[s][batch.reference[s].numpy()] for s in range(2)])
    assert np.array_equal(positive_labels, reference_labels)


def test_multi_session_prior_and_conditional_shapes():
    sampler = MultiSessionSampler([ramp(30, 1.0), ramp(40, 1.0)], None, 1, generator())
    reference = sampler.sample_prior(5)
    positive, inverse = sampler.sample_conditional(reference)
    assert reference.shape == positive.shape == (2, 5)
    assert inverse.shape == (10,)
    assert sampler.num_samples == (30, 40)
    assert sampler.num_sessions == 2


# ---------------------------------------------------------------------------------------------
# reproducibility and device
# ---------------------------------------------------------------------------------------------


def build_samplers(seed: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    continuous = rng.normal(size=(400, 3)).astype(np.float32)
    discrete = class_labels(400, [0.5, 0.25, 0.25])
    return {
        "time": TimeSampler(400, 3, generator(seed)),
        "time_delta": TimeDeltaSampler(continuous, 2, generator(seed)),
        "time_delta_1d": TimeDeltaSampler(continuous[:, 0], 2, generator(seed)),
        "delta_normal": DeltaNormalSampler(continuous, 0.1, generator(seed)),
        "discrete": DiscreteSampler(discrete, generator(seed)),
        "mixed": MixedSampler(continuous, discrete, 1, generator(seed)),
        "hybrid": HybridSampler(continuous, 2, generator(seed)),
        "multi_continuous": MultiSessionSampler(
            [continuous, continuous[:300]], None, 1, generator(seed)
        ),
        "multi_discrete": MultiSessionSampler(None, [discrete, discrete[:300]], 1, generator(seed)),
    }


def batches(sampler, count: int = 3) -> list[list[torch.Tensor]]:
    return [list(dataclasses.astuple(sampler.sample(64))) for _ in range(count)]


@pytest.mark.parametrize("name", list(build_samplers(0)))
def test_identically_seeded_samplers_give_identical_batches(name):
    first, second, other = (batches(build_samplers(seed)[name]) for seed in (11, 11, 12))
    for batch_a, batch_b in zip(first, second, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(batch_a, batch_b, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first[0], other[0], strict=True))


def test_sampling_leaves_the_global_random_states_alone():
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global state is the subject)
    for sampler in build_samplers(0).values():
        sampler.sample(32)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


def test_indices_live_on_the_generator_device():
    sampler = TimeDeltaSampler(ramp(50, 1.0, 2), 1, torch.Generator(device="cpu"))
    batch = sampler.sample(8)
    assert {t.device.type for t in dataclasses.astuple(batch)} == {"cpu"}


# ---------------------------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DiscreteSampler(np.array([0, -2, 1]), generator()), "non-negative.*-2"),
        (lambda: DiscreteSampler(np.array([0.0, 1.0]), generator()), "discrete.*integer dtype"),
        (lambda: DiscreteSampler(np.zeros((4, 2), dtype=int), generator()), r"discrete.*\(4, 2\)"),
        (lambda: TimeSampler(10, 10, generator()), "time_offset=10.*smaller.*10"),
        (lambda: TimeSampler(10, 0, generator()), "time_offset must be >= 1"),
        (lambda: TimeDeltaSampler(ramp(5, 1.0), 5, generator()), "time_offset=5.*continuous.*5"),
        (lambda: TimeDeltaSampler(np.zeros((2, 3, 4)), 1, generator()), r"continuous.*\(2, 3, 4\)"),
        (lambda: TimeDeltaSampler(np.array([0.0, np.nan, 1.0]), 1, generator()), "NaN"),
        (lambda: TimeDeltaSampler(ramp(5, 1.0), 1, None), "torch.Generator"),
        (lambda: DeltaNormalSampler(ramp(5, 1.0), None, generator()), "delta must be given"),
        (lambda: DeltaNormalSampler(ramp(5, 1.0), 0.0, generator()), "delta must be a positive"),
        (lambda: HybridSampler(ramp(5, 1.0), 1, generator(), conditional="delta"), "delta must"),
        (lambda: HybridSampler(ramp(5, 1.0), 1, generator(), conditional="time"), "conditional"),
        (lambda: MixedSampler(ramp(5, 1.0), np.zeros(4, dtype=int), 1, generator()), "same number"),
        (lambda: MultiSessionSampler(None, None, 1, generator()), "exactly one"),
        (lambda: MultiSessionSampler([], None, 1, generator()), "non-empty"),
        (
            lambda: MultiSessionSampler([ramp(9, 1.0), ramp(9, 1.0, 2)], None, 1, generator()),
            "same width",
        ),
        (
            lambda: MultiSessionSampler([ramp(9, 1.0), ramp(3, 1.0)], None, 3, generator()),
            r"continuous\[1\]",
        ),
        (
            lambda: MultiSessionSampler(
                None, [np.array([0, 1, 2]), np.array([0, 1])], 1, generator()
            ),
            r"discrete\[1\] lacks the label values \[2\]",
        ),
        (lambda: TimeSampler(10, 1, generator()).sample(0), "batch_size must be >= 1"),
    ],
)
def test_bad_input_raises_a_clear_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("width", [1, 3])
def test_cuda_samplers_stay_on_device_without_synchronising(width):
    rng = np.random.default_rng(8)
    continuous = rng.integers(0, 20, size=(3000, width)).astype(np.float32)
    discrete = class_labels(3000, [0.6, 0.4])

    def cuda_generator() -> torch.Generator:
        return torch.Generator(device="cuda").manual_seed(5)

    samplers = [
        TimeSampler(3000, 2, cuda_generator()),
        TimeDeltaSampler(continuous, 2, cuda_generator()),
        DeltaNormalSampler(continuous, 0.5, cuda_generator()),
        DiscreteSampler(discrete, cuda_generator()),
        MixedSampler(continuous, discrete, 2, cuda_generator()),
        HybridSampler(continuous, 2, cuda_generator()),
        MultiSessionSampler([continuous, continuous[:2000]], None, 2, cuda_generator()),
        MultiSessionSampler(None, [discrete, discrete[:2000]], 2, cuda_generator()),
    ]
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = [dataclasses.astuple(sampler.sample(512)) for sampler in samplers]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for result in results:
        assert all(tensor.device.type == "cuda" for tensor in result)
    queries = torch.from_numpy(rng.uniform(-1, 21, size=(700, width)).astype(np.float32))
    found = _NearestNeighbours(torch.from_numpy(continuous).cuda())(queries.cuda())
    expected = brute_force_nearest(continuous, queries.numpy())
    assert np.array_equal(found.cpu().numpy(), expected)
