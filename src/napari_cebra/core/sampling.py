"""Seeded, on-device samplers of reference, positive and negative indices (spec §4).

Every sampler draws all its randomness from the ``torch.Generator`` it is given and keeps its
tensors on that generator's device, so two samplers built with identically seeded generators
produce identical index sequences. Indices are centre indices into the recording (int64).

The single-session samplers share one interface::

    sampler.num_samples                        # N, the number of time steps
    sampler.sample_prior(n) -> Tensor (n,)     # references / negatives
    sampler.sample_conditional(reference)      # positives, same shape as ``reference``
    sampler.sample(batch_size) -> BatchIndex   # 2B prior draws: B references, then B negatives

``sample_conditional`` trusts its argument (no checks in the per-step path): pass indices drawn by
``sample_prior`` or, for full-batch training, valid centre indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BatchIndex",
    "DeltaNormalSampler",
    "DiscreteSampler",
    "HybridBatchIndex",
    "HybridSampler",
    "MixedSampler",
    "MultiSessionBatchIndex",
    "MultiSessionSampler",
    "TimeDeltaSampler",
    "TimeSampler",
]

# Largest number of (query, label, feature) elements one brute-force chunk materialises.
_BRUTE_FORCE_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class BatchIndex:
    """Indices of one mini-batch: each tensor has shape (B,)."""

    reference: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


@dataclass(frozen=True)
class HybridBatchIndex:
    """Indices of one hybrid mini-batch: behaviour positives and time positives, each (B,)."""

    reference: torch.Tensor
    positive: torch.Tensor
    time_positive: torch.Tensor
    negative: torch.Tensor


@dataclass(frozen=True)
class MultiSessionBatchIndex:
    """Indices of one multi-session mini-batch.

    ``reference``, ``positive`` and ``negative`` have shape (S, B); row s indexes session s.
    Positives are answers to permuted queries: after encoding positives session by session and
    concatenating to (S·B, d), ``pos[inverse_permutation]`` lines positive k up with reference k
    (references flattened the same way).
    """

    reference: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    inverse_permutation: torch.Tensor


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _check_generator(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_time_offset(time_offset: object, num_samples: int, name: str = "labels") -> int:
    time_offset = _check_int("time_offset", time_offset, 1)
    if time_offset >= num_samples:
        raise ValueError(
            f"time_offset={time_offset} must be smaller than the number of samples of {name} "
            f"({num_samples})"
        )
    return time_offset


def _as_tensor(name: str, array: object) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array.detach()
    try:
        return torch.as_tensor(np.asarray(array))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array, got {type(array).__name__}") from error


def _as_continuous(name: str, array: object, device: torch.device) -> torch.Tensor:
    """Continuous labels as a finite float32 (N, k) tensor on ``device`` (1-D becomes (N, 1))."""
    labels = _as_tensor(name, array)
    if not (labels.is_floating_point() or labels.dtype in _INTEGER_DTYPES):
        raise ValueError(f"{name} must hold real numbers, got dtype {labels.dtype}")
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[0] == 0 or labels.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (N,) or (N, k) with N, k >= 1, got {tuple(labels.shape)}"
        )
    labels = labels.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(labels).all()):
        raise ValueError(f"{name} of shape {tuple(labels.shape)} contains NaN or infinite values")
    return labels.contiguous()


def _as_discrete(name: str, array: object, device: torch.device) -> torch.Tensor:
    """Discrete labels as a non-negative int64 (N,) tensor on ``device``."""
    labels = _as_tensor(name, array)
    if labels.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name} must have an integer dtype, got {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N,) with N >= 1, got {tuple(labels.shape)}")
    labels = labels.to(device=device, dtype=torch.int64)
    minimum = int(labels.min())
    if minimum < 0:
        raise ValueError(
            f"{name} of shape {tuple(labels.shape)} must be non-negative, got the value {minimum}"
        )
    return labels.contiguous()


def _class_indices(labels: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    """Discrete labels as dense class indices: the rank of each label among ``values``.

    ``values`` (sorted, default: the distinct labels) are numbered 0 … K − 1 in increasing
    order, so memory follows the number of classes, not the largest label (a label 10¹² would
    otherwise size per-class tables). Labels that already are 0 … K − 1 are unchanged, and as
    the order of the classes is kept every draw is the same as with the original values.
    """
    if values is None:
        values = torch.unique(labels, sorted=True)
    return torch.searchsorted(values, labels)


# --------------------------------------------------------------------------------------------
# shared building blocks
# --------------------------------------------------------------------------------------------


def _uniform_integers(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high, (n,), generator=generator, device=generator.device)


def _uniform_fractions(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)


def _time_displacements(labels: torch.Tensor, time_offset: int) -> torch.Tensor:
    """D[t] = y[t] − y[t − Δt], with zero rows for the first Δt time steps."""
    displacements = torch.zeros_like(labels)
    displacements[time_offset:] = labels[time_offset:] - labels[:-time_offset]
    return displacements


class _LabelGroups:
    """Time steps grouped by a discrete label, for uniform same-label draws.

    ``order`` lists the time steps sorted by label (stable), ``start[c]`` / ``count[c]`` give the
    slice of ``order`` holding label ``c``.
    """

    def __init__(self, labels: torch.Tensor, num_values: int | None = None) -> None:
        self.labels = labels
        self.order = torch.argsort(labels, stable=True)
        minlength = num_values if num_values is not None else 0
        self.count = torch.bincount(labels, minlength=minlength)
        self.start = torch.cumsum(self.count, 0) - self.count
        self.present = torch.nonzero(self.count, as_tuple=True)[0]

    def draw_with_label(self, label: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A uniformly random time step carrying each value of ``label`` (which must occur)."""
        count = self.count[label]
        offset = (_uniform_fractions(tuple(label.shape), generator) * count).long()
        offset = torch.minimum(offset, count - 1)
        return self.order[self.start[label] + offset]

    def draw_class_balanced(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Time steps whose label is uniform over the present labels, uniform within the label."""
        choice = _uniform_integers(0, int(self.present.shape[0]), n, generator)
        return self.draw_with_label(self.present[choice], generator)


# --------------------------------------------------------------------------------------------
# exact nearest-neighbour search in label space
# --------------------------------------------------------------------------------------------


class _SortedSearch:
    """Exact nearest neighbour for 1-D labels: binary search in labels sorted within groups.

    Ties resolve to the lowest time index, as a brute-force ``argmin`` would. Works on any device
    without leaving it.
    """

    def __init__(self, labels: torch.Tensor, groups: torch.Tensor) -> None:
        values = labels[:, 0]
        # sort by (group, value), stable in time so equal values keep increasing indices
        by_value = torch.argsort(values, stable=True)
        order = by_value[torch.argsort(groups[by_value], stable=True)]
        self.values = values[order]
        sorted_groups = groups[order]
        starts_run = torch.ones_like(self.values, dtype=torch.bool)
        starts_run[1:] = (self.values[1:] != self.values[:-1]) | (
            sorted_groups[1:] != sorted_groups[:-1]
        )
        run_id = torch.cumsum(starts_run.long(), 0) - 1
        # lowest time index among the equal values each sorted position belongs to
        self.lowest_index = order[torch.nonzero(starts_run, as_tuple=True)[0]][run_id]
        count = torch.bincount(sorted_groups)
        self.group_end = torch.cumsum(count, 0)
        self.group_start = self.group_end - count
        self.single_group = count.shape[0] == 1
        self.num_steps = max(1, math.ceil(math.log2(int(count.max()) + 1)))

    def __call__(self, query: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        q = query[:, 0]
        low, high = self.group_start[group], self.group_end[group]
        lower_bound = self._first_not_below(q, low, high)
        left = torch.clamp(lower_bound - 1, min=0)
        right = torch.minimum(lower_bound, high - 1)
        has_left = lower_bound > low
        has_right = lower_bound < high
        left_distance = torch.where(has_left, q - self.values[left], torch.inf)
        right_distance = torch.where(has_right, self.values[right] - q, torch.inf)
        left_index = self.lowest_index[left]
        right_index = self.lowest_index[right]
        take_left = (left_distance < right_distance) | (
            (left_distance == right_distance) & (left_index < right_index)
        )
        return torch.where(take_left, left_index, right_index)

    def _first_not_below(
        self, q: torch.Tensor, low: torch.Tensor, high: torch.Tensor
    ) -> torch.Tensor:
        """Vectorised lower bound: first position p in [low, high) with values[p] >= q, or high."""
        if self.single_group:
            return torch.searchsorted(self.values, q)
        last = self.values.shape[0] - 1
        for _ in range(self.num_steps):
            middle = (low + high) // 2
            below = self.values[torch.clamp(middle, max=last)] < q
            active = low < high
            low = torch.where(active & below, middle + 1, low)
            high = torch.where(active & ~below, middle, high)
        return low


class _KDTreeSearch:
    """Exact nearest neighbour on the CPU with one ``scipy.spatial.cKDTree`` per group.

    Duplicated label rows are merged before building the trees and answered with their lowest time
    index, matching a brute-force ``argmin``. Distinct label vectors at exactly the same (float64)
    distance from a query are resolved by the tree, not necessarily to the lowest index.
    """

    def __init__(self, labels: torch.Tensor, groups: torch.Tensor) -> None:
        from scipy.spatial import cKDTree

        label_rows = labels.numpy().astype(np.float64)
        group_ids = groups.numpy()
        self.trees: dict[int, tuple[cKDTree, np.ndarray]] = {}
        for group in np.unique(group_ids):
            members = np.flatnonzero(group_ids == group)
            unique_rows, first = np.unique(label_rows[members], axis=0, return_index=True)
            self.trees[int(group)] = (cKDTree(unique_rows), members[first])

    def __call__(self, query: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        points = query.numpy().astype(np.float64)
        if len(self.trees) == 1:
            tree, index = next(iter(self.trees.values()))
            return torch.from_numpy(index[tree.query(points)[1]])
        query_groups = group.numpy()
        result = np.empty(points.shape[0], dtype=np.int64)
        for value in np.unique(query_groups):
            rows = np.flatnonzero(query_groups == value)
            tree, index = self.trees[int(value)]
            result[rows] = index[tree.query(points[rows])[1]]
        return torch.from_numpy(result)


class _BruteForceSearch:
    """Exact nearest neighbour on an accelerator: chunked squared distances and ``argmin``.

    Ties resolve to the lowest time index (``argmin`` returns the first minimum).
    """

    def __init__(self, labels: torch.Tensor, groups: torch.Tensor, single_group: bool) -> None:
        self.labels = labels
        self.groups = None if single_group else groups

    def __call__(self, query: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        num_labels, num_features = self.labels.shape
        chunk = max(1, _BRUTE_FORCE_CHUNK_ELEMENTS // (num_labels * num_features))
        answers = []
        for begin in range(0, query.shape[0], chunk):
            part = query[begin : begin + chunk]
            distance = (part[:, None, :] - self.labels[None, :, :]).square().sum(-1)
            if self.groups is not None:
                same = self.groups[None, :] == group[begin : begin + chunk, None]
                distance = torch.where(same, distance, torch.inf)
            answers.append(torch.argmin(distance, dim=1))
        return torch.cat(answers) if answers else query.new_empty((0,), dtype=torch.int64)


class _NearestNeighbours:
    """Index of the nearest label vector (raw Euclidean distance) over all time steps of a group.

    Picks the fastest exact method for the labels and device: binary search for 1-D labels,
    k-d trees on the CPU, chunked brute force elsewhere.
    """

    def __init__(self, labels: torch.Tensor, groups: torch.Tensor | None = None) -> None:
        single_group = groups is None
        if groups is None:
            groups = torch.zeros(labels.shape[0], dtype=torch.int64, device=labels.device)
        if labels.shape[1] == 1:
            self._search = _SortedSearch(labels, groups)
        elif labels.device.type == "cpu":
            self._search = _KDTreeSearch(labels, groups)
        else:
            self._search = _BruteForceSearch(labels, groups, single_group)

    def __call__(self, query: torch.Tensor, group: torch.Tensor | None = None) -> torch.Tensor:
        if group is None:
            group = torch.zeros(query.shape[0], dtype=torch.int64, device=query.device)
        return self._search(query, group)


# --------------------------------------------------------------------------------------------
# single-session samplers
# --------------------------------------------------------------------------------------------


class _SingleSessionSampler:
    """2B prior draws per batch (B references, then B negatives) and B conditional positives."""

    num_samples: int
    generator: torch.Generator

    def sample_prior(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, batch_size: int) -> BatchIndex:
        """Draw B references, B positives and B negatives (spec §4.2)."""
        batch_size = _check_int("batch_size", batch_size, 1)
        prior = self.sample_prior(2 * batch_size)
        reference, negative = prior[:batch_size], prior[batch_size:]
        return BatchIndex(reference, self.sample_conditional(reference), negative)


class TimeSampler(_SingleSessionSampler):
    """Time-contrastive sampling (spec §4.3): prior U[0, N − Δt), positive = reference + Δt.

    Parameters
    ----------
    num_samples : int
        Number of time steps N of the recording.
    time_offset : int
        Δt >= 1, smaller than N.
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    """

    def __init__(self, num_samples: int, time_offset: int, generator: torch.Generator) -> None:
        self.num_samples = _check_int("num_samples", num_samples, 1)
        self.time_offset = _check_time_offset(time_offset, self.num_samples, "the recording")
        self.generator = _check_generator(generator)

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps in [0, N − Δt)."""
        n = _check_int("n", n, 0)
        return _uniform_integers(0, self.num_samples - self.time_offset, n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """The time step Δt after each reference (may exceed N − 1 for references >= N − Δt)."""
        return reference + self.time_offset


class TimeDeltaSampler(_SingleSessionSampler):
    """Behaviour-contrastive ``time_delta`` sampling (spec §4.4).

    Prior U[0, N). The positive of reference i is the time step whose label is nearest (raw
    Euclidean distance, over all N time steps) to y[i] + D[t′], with t′ uniform in [0, N) and
    D[t] = y[t] − y[t − Δt] (zero for the first Δt rows). The reference itself may be returned.
    Ties go to the lowest time index, except between distinct label vectors at exactly equal
    distance on the CPU with multi-dimensional labels (see ``_KDTreeSearch``).

    Parameters
    ----------
    continuous : array of shape (N,) or (N, k)
        Continuous labels (converted to float32 on the generator's device).
    time_offset : int
        Δt >= 1, smaller than N.
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    """

    def __init__(self, continuous: object, time_offset: int, generator: torch.Generator) -> None:
        self.generator = _check_generator(generator)
        self.labels = _as_continuous("continuous", continuous, generator.device)
        self.num_samples = int(self.labels.shape[0])
        self.time_offset = _check_time_offset(time_offset, self.num_samples, "continuous")
        self.displacements = _time_displacements(self.labels, self.time_offset)
        self._nearest = _NearestNeighbours(self.labels)

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps in [0, N)."""
        n = _check_int("n", n, 0)
        return _uniform_integers(0, self.num_samples, n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """Nearest neighbours of y[reference] + D[t′]."""
        shift = _uniform_integers(0, self.num_samples, reference.numel(), self.generator)
        query = self.labels[reference.reshape(-1)] + self.displacements[shift]
        return self._nearest(query).reshape(reference.shape)


class DeltaNormalSampler(_SingleSessionSampler):
    """Behaviour-contrastive ``delta`` sampling (spec §4.5).

    Prior U[0, N). The positive of reference i is the time step whose label is nearest to a draw
    of Normal(y[i], δ² I), searched over all N time steps as in ``TimeDeltaSampler``.

    Parameters
    ----------
    continuous : array of shape (N,) or (N, k)
        Continuous labels (converted to float32 on the generator's device).
    delta : float
        Standard deviation δ > 0 of the query noise, in label units.
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    """

    def __init__(self, continuous: object, delta: float | None, generator: torch.Generator) -> None:
        self.generator = _check_generator(generator)
        self.labels = _as_continuous("continuous", continuous, generator.device)
        self.num_samples = int(self.labels.shape[0])
        self.delta = _check_delta(delta)
        self._nearest = _NearestNeighbours(self.labels)

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps in [0, N)."""
        n = _check_int("n", n, 0)
        return _uniform_integers(0, self.num_samples, n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """Nearest neighbours of y[reference] + N(0, δ² I)."""
        centre = self.labels[reference.reshape(-1)]
        noise = torch.randn(
            centre.shape, generator=self.generator, device=centre.device, dtype=centre.dtype
        )
        return self._nearest(centre + self.delta * noise).reshape(reference.shape)


def _check_delta(delta: object) -> float:
    if delta is None:
        raise ValueError("delta must be given (a positive float) for delta_normal sampling")
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)):
        raise ValueError(f"delta must be a positive float, got {delta!r}")
    if not math.isfinite(float(delta)) or float(delta) <= 0:
        raise ValueError(f"delta must be a positive finite float, got {delta!r}")
    return float(delta)


class DiscreteSampler(_SingleSessionSampler):
    """Sampling by discrete label with the empirical prior (spec §4.6).

    Prior: uniform over the N time steps (so labels appear with their empirical frequencies).
    Positive: a uniformly random time step with the reference's label (may be the reference).

    Parameters
    ----------
    discrete : integer array of shape (N,)
        Non-negative class labels (any values; ``labels`` holds them as dense class indices).
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    """

    def __init__(self, discrete: object, generator: torch.Generator) -> None:
        self.generator = _check_generator(generator)
        self.labels = _class_indices(_as_discrete("discrete", discrete, generator.device))
        self.num_samples = int(self.labels.shape[0])
        self._groups = _LabelGroups(self.labels)

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps in [0, N)."""
        n = _check_int("n", n, 0)
        return _uniform_integers(0, self.num_samples, n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """Uniform time steps sharing each reference's label."""
        return self._groups.draw_with_label(self.labels[reference], self.generator)


class MixedSampler(_SingleSessionSampler):
    """Sampling by continuous and discrete labels together (spec §4.6, mixed).

    Prior: class-balanced (every discrete label value present is equally likely, then a uniform time
    step with that value); references and negatives are two separate prior draws. Positive: the
    ``time_delta`` query y[i] + D[t′] (t′ uniform in [0, N)) answered by the nearest label vector
    among the time steps whose discrete label equals the reference's.

    Parameters
    ----------
    continuous : array of shape (N,) or (N, k)
        Continuous labels (converted to float32 on the generator's device).
    discrete : integer array of shape (N,)
        Non-negative class labels (any values; ``discrete`` holds them as dense class indices).
    time_offset : int
        Δt >= 1, smaller than N.
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    """

    def __init__(
        self,
        continuous: object,
        discrete: object,
        time_offset: int,
        generator: torch.Generator,
    ) -> None:
        self.generator = _check_generator(generator)
        self.labels = _as_continuous("continuous", continuous, generator.device)
        self.discrete = _class_indices(_as_discrete("discrete", discrete, generator.device))
        if self.labels.shape[0] != self.discrete.shape[0]:
            raise ValueError(
                f"continuous of shape {tuple(self.labels.shape)} and discrete of shape "
                f"{tuple(self.discrete.shape)} must have the same number of samples"
            )
        self.num_samples = int(self.labels.shape[0])
        self.time_offset = _check_time_offset(time_offset, self.num_samples, "continuous")
        self.displacements = _time_displacements(self.labels, self.time_offset)
        self._groups = _LabelGroups(self.discrete)
        self._nearest = _NearestNeighbours(self.labels, self.discrete)

    def sample_prior(self, n: int) -> torch.Tensor:
        """Class-balanced time steps."""
        n = _check_int("n", n, 0)
        return self._groups.draw_class_balanced(n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """Nearest same-label neighbours of y[reference] + D[t′]."""
        flat = reference.reshape(-1)
        shift = _uniform_integers(0, self.num_samples, flat.numel(), self.generator)
        query = self.labels[flat] + self.displacements[shift]
        return self._nearest(query, self.discrete[flat]).reshape(reference.shape)

    def sample(self, batch_size: int) -> BatchIndex:
        """Draw B references and B negatives (two prior draws) and B positives."""
        batch_size = _check_int("batch_size", batch_size, 1)
        reference = self.sample_prior(batch_size)
        negative = self.sample_prior(batch_size)
        return BatchIndex(reference, self.sample_conditional(reference), negative)


_HYBRID_CONDITIONALS = ("time_delta", "delta", "delta_normal")


class HybridSampler:
    """Hybrid (behaviour + time) sampling (spec §4.6, hybrid).

    Prior U[0, N − Δt) for references and negatives (2B draws: B references, then B negatives).
    Each reference gets a behaviour positive from ``conditional`` and a time positive
    reference + Δt.

    Parameters
    ----------
    continuous : array of shape (N,) or (N, k)
        Continuous labels (converted to float32 on the generator's device).
    time_offset : int
        Δt >= 1, smaller than N: the time positive's offset and the ``time_delta`` displacement.
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.
    conditional : {"time_delta", "delta", "delta_normal"}
        Behaviour positive distribution (``"delta"`` is an alias of ``"delta_normal"``).
    delta : float, optional
        δ of the ``delta_normal`` distribution (required for it).
    """

    def __init__(
        self,
        continuous: object,
        time_offset: int,
        generator: torch.Generator,
        conditional: str = "time_delta",
        delta: float | None = None,
    ) -> None:
        if conditional not in _HYBRID_CONDITIONALS:
            raise ValueError(
                f"conditional must be one of {_HYBRID_CONDITIONALS} for hybrid sampling, "
                f"got {conditional!r}"
            )
        self.generator = _check_generator(generator)
        self._behaviour: TimeDeltaSampler | DeltaNormalSampler
        if conditional == "time_delta":
            self._behaviour = TimeDeltaSampler(continuous, time_offset, generator)
        else:
            self._behaviour = DeltaNormalSampler(continuous, delta, generator)
        self.num_samples = self._behaviour.num_samples
        self.time_offset = _check_time_offset(time_offset, self.num_samples, "continuous")

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps in [0, N − Δt)."""
        n = _check_int("n", n, 0)
        return _uniform_integers(0, self.num_samples - self.time_offset, n, self.generator)

    def sample_conditional(self, reference: torch.Tensor) -> torch.Tensor:
        """Behaviour positives of ``reference``."""
        return self._behaviour.sample_conditional(reference)

    def sample_time_positive(self, reference: torch.Tensor) -> torch.Tensor:
        """Time positives: the time step Δt after each reference."""
        return reference + self.time_offset

    def sample(self, batch_size: int) -> HybridBatchIndex:
        """Draw B references, B behaviour positives, B time positives and B negatives."""
        batch_size = _check_int("batch_size", batch_size, 1)
        prior = self.sample_prior(2 * batch_size)
        reference, negative = prior[:batch_size], prior[batch_size:]
        return HybridBatchIndex(
            reference,
            self.sample_conditional(reference),
            self.sample_time_positive(reference),
            negative,
        )


# --------------------------------------------------------------------------------------------
# multi-session sampler
# --------------------------------------------------------------------------------------------


class MultiSessionSampler:
    """Multi-session sampling with random cross-session positives (spec §4.8).

    Per session s: B references and B negatives uniform in [0, N_s). Every reference forms a
    query (continuous: y_s[ref] + D[random] with D the Δt-differences of all sessions,
    concatenated, valid rows only; discrete: the reference's label). The S·B queries are randomly
    permuted over the S·B (session, slot) positions and answered in the session of their position
    (continuous: nearest label vector; discrete: uniform time step with that label).

    Parameters
    ----------
    continuous : list of arrays of shape (N_s,) or (N_s, k), optional
        Continuous labels per session (same k in every session).
    discrete : list of integer arrays of shape (N_s,), optional
        Non-negative class labels per session; every session must contain every label value
        (``labels`` holds them as dense class indices, numbered jointly over the sessions).
    time_offset : int
        Δt >= 1, smaller than every N_s (used by continuous labels).
    generator : torch.Generator
        Source of all randomness; its device is the device of the returned indices.

    Exactly one of ``continuous`` and ``discrete`` must be given.
    """

    def __init__(
        self,
        continuous: Sequence[object] | None,
        discrete: Sequence[object] | None,
        time_offset: int,
        generator: torch.Generator,
    ) -> None:
        if (continuous is None) == (discrete is None):
            raise ValueError(
                "exactly one of continuous and discrete labels must be given for multi-session "
                f"sampling, got continuous={'list' if continuous is not None else None} and "
                f"discrete={'list' if discrete is not None else None}"
            )
        self.generator = _check_generator(generator)
        sessions = continuous if continuous is not None else discrete
        if isinstance(sessions, (np.ndarray, torch.Tensor)) or len(sessions) == 0:
            raise ValueError(
                "multi-session labels must be a non-empty list with one array per session"
            )
        self.is_discrete = discrete is not None
        if self.is_discrete:
            self.time_offset = _check_int("time_offset", time_offset, 1)
            self._init_discrete(discrete)
        else:
            self._init_continuous(continuous, time_offset)
        self.num_sessions = len(self.num_samples)

    def _init_continuous(self, continuous: Sequence[object], time_offset: int) -> None:
        device = self.generator.device
        self.labels = [
            _as_continuous(f"continuous[{s}]", array, device) for s, array in enumerate(continuous)
        ]
        widths = {int(labels.shape[1]) for labels in self.labels}
        if len(widths) != 1:
            shapes = [tuple(labels.shape) for labels in self.labels]
            raise ValueError(f"continuous labels of all sessions need the same width, got {shapes}")
        self.num_samples = tuple(int(labels.shape[0]) for labels in self.labels)
        for s, size in enumerate(self.num_samples):
            _check_time_offset(time_offset, size, f"continuous[{s}]")
        self.time_offset = int(time_offset)
        self.displacements = torch.cat(
            [labels[self.time_offset :] - labels[: -self.time_offset] for labels in self.labels]
        )
        self._nearest = [_NearestNeighbours(labels) for labels in self.labels]

    def _init_discrete(self, discrete: Sequence[object]) -> None:
        device = self.generator.device
        raw = [_as_discrete(f"discrete[{s}]", array, device) for s, array in enumerate(discrete)]
        values = torch.unique(torch.cat(raw), sorted=True)  # one numbering for all sessions
        self.labels = [_class_indices(labels, values) for labels in raw]
        self.num_samples = tuple(int(labels.shape[0]) for labels in self.labels)
        self._groups = [_LabelGroups(labels, int(values.shape[0])) for labels in self.labels]
        present = [set(groups.present.tolist()) for groups in self._groups]
        every_class = set().union(*present)
        for s, classes in enumerate(present):
            if classes != every_class:
                missing = values[sorted(every_class - classes)].tolist()
                raise ValueError(
                    f"discrete[{s}] lacks the label values {missing} that other sessions "
                    "contain; every session must contain every label value"
                )

    def sample_prior(self, n: int) -> torch.Tensor:
        """Uniform time steps per session: shape (S, n), row s in [0, N_s)."""
        n = _check_int("n", n, 0)
        return torch.stack(
            [_uniform_integers(0, size, n, self.generator) for size in self.num_samples]
        )

    def sample_conditional(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positives (S, B) for references (S, B) and the inverse permutation (S·B,)."""
        batch_size = reference.shape[1]
        queries = torch.cat([self._query(s, reference[s]) for s in range(self.num_sessions)])
        permutation = torch.randperm(
            queries.shape[0], generator=self.generator, device=self.generator.device
        )
        assigned = queries[permutation]
        positive = torch.stack(
            [
                self._answer(s, assigned[s * batch_size : (s + 1) * batch_size])
                for s in range(self.num_sessions)
            ]
        )
        inverse_permutation = torch.empty_like(permutation)
        inverse_permutation[permutation] = torch.arange(
            permutation.shape[0], device=permutation.device
        )
        return positive, inverse_permutation

    def sample(self, batch_size: int) -> MultiSessionBatchIndex:
        """Draw (S, B) references, positives and negatives and the inverse permutation."""
        batch_size = _check_int("batch_size", batch_size, 1)
        reference = self.sample_prior(batch_size)
        negative = self.sample_prior(batch_size)
        positive, inverse_permutation = self.sample_conditional(reference)
        return MultiSessionBatchIndex(reference, positive, negative, inverse_permutation)

    def _query(self, session: int, reference: torch.Tensor) -> torch.Tensor:
        labels = self.labels[session][reference]
        if self.is_discrete:
            return labels
        shift = _uniform_integers(
            0, self.displacements.shape[0], reference.shape[0], self.generator
        )
        return labels + self.displacements[shift]

    def _answer(self, session: int, query: torch.Tensor) -> torch.Tensor:
        if self.is_discrete:
            return self._groups[session].draw_with_label(query, self.generator)
        return self._nearest[session](query)
