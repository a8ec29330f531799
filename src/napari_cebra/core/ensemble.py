"""Several seeds of one CEBRA configuration trained together as one batched model.

Consistency runs train the same configuration with K seeds. Instead of K sequential runs, the K
encoders are stacked: every parameter gets a leading member axis, the K input batches are laid side
by side along the channel axis and each layer runs once for all members as a grouped convolution
(``groups=K``). The first convolution of a convolutional encoder is applied to the whole recording
at once when that is cheaper than applying it to every window: one ``(N, n) @ (n, K·k·h)`` product
for all members, whose rows are then gathered per window.

Each member is a normal :class:`~napari_cebra.core.estimator.CEBRA` built with its own seed: its
initial weights, its sampler and its random stream are exactly those of
``CEBRA(**params, seed=seed).fit(X, *y)``, so each member sees the same batches in the same order as
that single run. Only the floating-point rounding of the batched kernels differs from the single
run, so the trajectories agree closely at first and then drift apart like any two runs on different
hardware: members equal single runs *in distribution*, not bit for bit. Adam over the stacked
parameters is K independent Adams (Adam is element-wise and all members share the step count).

The batched path supports mini-batch, single-session training with the ``time``, ``time_delta``,
``delta_normal``, discrete and mixed samplers, constant or learnable temperature, and encoders made
of ``Conv1d``/``Linear`` layers, GELU/Tanh/Hardtanh activations, residual blocks and the unit-norm
output (every ``offset*-model`` and ``offset1-model*`` architecture without dropout, subsampling or
output clipping). Other configurations — full batch (``batch_size=None``), hybrid, multi-session,
dropout, subsampling and clipped encoders — are trained one member after the other, each with its
own training session (``CEBRA.begin``; the records then have ``batched=False``). So, by default,
are encoders with a channels-last program (``core.fast``) on the CPU: that program makes a single run so efficient that
five members cost less one after the other (5× one run) than as one grouped model (6.3× in float32
and about 8× in bfloat16, 500 steps at the recipe's settings on the benchmark CPU); there each
member equals its single run bit for bit. ``batched=True`` still asks for the grouped model.

Members that are not batched and have a channels-last program train ``workers`` at a time in
threads (``core.run_pool``; default: one per torch thread, at most K), each with its share of the
torch threads. A single run does not use several cores well (its products are small), so K
members side by side finish sooner than K runs in a row that each use every core
(benchmarks/README.md has the figures). The threads share the runs and keep them level (a free thread advances the run with the
most steps left), so K members on P threads take about K / P runs' time, not ⌈K / P⌉. Each member
still equals its single run trained with the same number of torch threads.

This module imports torch at import time; it is imported only when models are trained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_cebra.core.estimator import CEBRA
from napari_cebra.core.loss import dot_similarity, euclidean_similarity, infonce_from_similarities
from napari_cebra.core.models import DropTimeAxis, Encoder, LinearResidual, Residual, UnitNorm
from napari_cebra.core.run_pool import RunFinished, train_side_by_side
from napari_cebra.core.session import TrainingSession
from napari_cebra.core.training import (
    ContrastiveObjective,
    TrainingProgress,
    adam,
    optimizer_step,
)
from napari_cebra.core.validation import check_positive_int

_SIMILARITIES = {"cosine": dot_similarity, "euclidean": euclidean_similarity}
_ELEMENTWISE = (nn.GELU, nn.Tanh, nn.Hardtanh, nn.Identity)


@dataclass(frozen=True)
class EnsembleProgress:
    """Where an ensemble training stands; yielded by :func:`iter_fit_ensemble`.

    Attributes
    ----------
    step : int
        Steps done so far: per member when ``batched``, summed over members otherwise.
    total_steps : int
        Steps the run will do when not stopped (``max_iterations``, times K when not batched).
    losses : tuple of float
        Latest InfoNCE loss of each member (``nan`` before its first step).
    elapsed : float
        Seconds since training started.
    batched : bool
        Whether the members are trained as one batched model.
    """

    step: int
    total_steps: int
    losses: tuple[float, ...]
    elapsed: float
    batched: bool


def make_ensemble(params: Mapping[str, Any], seeds: Sequence[int]) -> list[CEBRA]:
    """One unfitted estimator per seed, all with the parameters ``params``.

    Parameters
    ----------
    params : mapping
        ``CEBRA`` constructor parameters, without ``seed``.
    seeds : sequence of int
        One seed per member (at least one; repeated seeds give identical members).

    Returns
    -------
    list of CEBRA

    Raises
    ------
    ValueError
        If ``params`` holds ``seed``, or ``seeds`` is empty or holds something else than integers.
    """
    if "seed" in params:
        raise ValueError(
            f"params must not contain 'seed' (got seed={params['seed']!r}): the members' seeds are "
            "given by the seeds argument."
        )
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed.")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seeds must be integers, got {seed!r} in {seeds!r}.")
    return [CEBRA(**dict(params), seed=int(seed)) for seed in seeds]


def fit_ensemble(
    params: Mapping[str, Any],
    X: Any,
    *y: Any,
    seeds: Sequence[int],
    progress: Callable[[EnsembleProgress], None] | None = None,
    yield_every: int = 10,
    batched: bool | None = None,
    workers: int | None = None,
) -> list[CEBRA]:
    """Train one estimator per seed, as one batched model where possible.

    Parameters
    ----------
    params : mapping
        ``CEBRA`` constructor parameters, without ``seed``.
    X, *y
        Data and labels, as for ``CEBRA.fit``.
    seeds : sequence of int
        One seed per member.
    progress : callable, optional
        Called with an :class:`EnsembleProgress` every ``yield_every`` steps.
    yield_every : int
        Steps between progress records.
    batched : bool, optional
        ``None`` (default): the faster way for the device (see :func:`iter_fit_ensemble`).
        ``True``: one grouped model; ``False``: one member after the other.
    workers : int, optional
        Members trained at the same time when they are not batched (see
        :func:`iter_fit_ensemble`).

    Returns
    -------
    list of CEBRA
        The fitted members, in the order of ``seeds``; member k equals, in distribution,
        ``CEBRA(**params, seed=seeds[k]).fit(X, *y)``.
    """
    members = make_ensemble(params, seeds)
    records = iter_fit_ensemble(
        members, X, *y, yield_every=yield_every, batched=batched, workers=workers
    )
    for record in records:
        if progress is not None:
            progress(record)
    return members


def iter_fit_ensemble(
    members: Sequence[CEBRA],
    X: Any,
    *y: Any,
    yield_every: int = 10,
    batched: bool | None = None,
    workers: int | None = None,
) -> Iterator[EnsembleProgress]:
    """Train the estimators ``members`` together, yielding progress records.

    The members must share every parameter except ``seed`` (see :func:`make_ensemble`). After the
    first record every member is fitted (``transform``, ``save`` and ``state_dict_`` work) and stays
    consistent between records; closing the generator keeps the steps done, with each member's
    loss history holding exactly those steps.

    Parameters
    ----------
    members : sequence of CEBRA
        Unfitted or fitted estimators; they are (re)trained from scratch.
    X, *y
        Data and labels, as for ``CEBRA.fit``.
    yield_every : int
        Steps between records (the last step is always reported).
    batched : bool, optional
        ``None`` (default) picks the faster way: on the CPU, members whose encoder has a
        channels-last program (``core.fast``: every plain ``offset*-model``) train as their own
        single runs (side by side, see ``workers``) — each then equals its single run bit for
        bit — because that program makes one run so efficient that a grouped model of five
        members costs more than five runs (6.3× against 5× one run at the recipe's settings);
        elsewhere (GPUs, other encoders) the grouped model. ``True`` asks for the grouped model
        and ``False`` for the members' own runs.
    workers : int, optional
        How many members train at the same time when they are not batched and their encoder has
        a channels-last program: each in its own thread with ``torch.get_num_threads() //
        min(workers, K)`` torch threads (at least one). ``None`` (default): one member per torch thread,
        at most K. ``1``: strictly one after the other. Other configurations train one after
        the other.

    Yields
    ------
    EnsembleProgress
    """
    _check_members(members)
    check_positive_int("yield_every", yield_every)
    if batched not in (None, True, False):
        raise ValueError(f"batched must be None, True or False, got {batched!r}.")
    if workers is not None:
        check_positive_int("workers", workers, "or None for one per torch thread")
    first = members[0].begin(X, *y)
    sessions: list[TrainingSession | None] = [first, *([None] * (len(members) - 1))]
    try:
        if batched and not _batchable(first):
            raise ValueError(
                "batched=True, but this configuration cannot be trained as one grouped model "
                "(full batch, hybrid, multi-session, dropout, subsampling or clipped encoders); "
                "leave batched=None to train the members one after the other."
            )
        if batched is None:
            batched = _batchable(first) and not first.uses_channels_last_program
        if batched:
            sessions = [first, *(member.begin(X, *y) for member in members[1:])]
            yield from _BatchedTraining(sessions, members[0].precision_).run(yield_every)
            return
        workers = min(len(members), torch.get_num_threads()) if workers is None else int(workers)
        if workers > 1 and len(members) > 1 and first.uses_channels_last_program:
            sessions = [first, *(member.begin(X, *y) for member in members[1:])]
            yield from _train_side_by_side(sessions, yield_every, workers)
        else:
            yield from _train_one_after_another(members, sessions, X, y, yield_every)
    finally:
        for session in sessions:
            if session is not None:
                session.close(release=True)


def _check_members(members: Sequence[CEBRA]) -> None:
    """All members are CEBRA estimators with equal parameters apart from the seed."""
    if not members:
        raise ValueError("members is empty: give at least one CEBRA estimator.")
    reference = None
    for index, member in enumerate(members):
        if not isinstance(member, CEBRA):
            raise ValueError(f"members[{index}] is a {type(member).__name__}, not a CEBRA.")
        params = {key: value for key, value in member.get_params().items() if key != "seed"}
        if reference is None:
            reference = params
        elif params != reference:
            differing = sorted(key for key in params if params[key] != reference.get(key))
            raise ValueError(
                f"members[{index}] differs from members[0] in {differing}: an ensemble shares "
                "every parameter except seed."
            )


def _batchable(session: TrainingSession) -> bool:
    """Whether the session's run can be part of the batched model."""
    return isinstance(session.objective, ContrastiveObjective) and _supported_encoder(
        session.estimator.model_
    )


def _supported_encoder(encoder: nn.Module) -> bool:
    return type(encoder) is Encoder and all(_supported_module(m) for m in encoder.net)


def _supported_module(module: nn.Module) -> bool:
    if isinstance(module, nn.Conv1d):
        return module.groups == 1 and module.padding_mode == "zeros"
    if isinstance(module, Residual):
        return all(_supported_module(m) for m in module.module)
    supported = (*_ELEMENTWISE, nn.Linear, nn.Flatten, LinearResidual, UnitNorm, DropTimeAxis)
    return isinstance(module, supported)


def _train_one_after_another(
    members: Sequence[CEBRA],
    sessions: list[TrainingSession | None],
    X: Any,
    y: tuple[Any, ...],
    yield_every: int,
) -> Iterator[EnsembleProgress]:
    """Each member's own run, one after the other; ``sessions[k]`` is set when member k begins
    (``sessions[0]`` already has)."""
    start = time.perf_counter()
    per_member = members[0].max_iterations
    losses = [math.nan] * len(members)
    for index, member in enumerate(members):
        session = sessions[index] or member.begin(X, *y)
        sessions[index] = session
        for record in session.run(yield_every=yield_every):
            losses[index] = record.total
            yield EnsembleProgress(
                step=index * per_member + record.step,
                total_steps=per_member * len(members),
                losses=tuple(losses),
                elapsed=time.perf_counter() - start,
                batched=False,
            )
        session.close(release=True)


def _member_run(session: TrainingSession, yield_every: int) -> Iterator[TrainingProgress]:
    """A member's whole run; its data is released as soon as it ends."""
    yield from session.run(yield_every=yield_every)
    session.close(release=True)


def _train_side_by_side(
    sessions: Sequence[TrainingSession], yield_every: int, workers: int
) -> Iterator[EnsembleProgress]:
    """Members' own runs, ``workers`` at a time in threads (``core.run_pool``), each thread with
    its share of the torch threads; records are yielded in the calling thread.

    All members are begun in the calling thread first, one after the other. Initialisation and
    training draw only from the members' own generators, never from torch's process-wide one, so
    the threads do not disturb each other's random streams. A free thread advances the run with
    the most steps left, so the members stay level and finish together: K members on P threads
    take about K / P runs' time instead of ⌈K / P⌉ runs (5 on 2: 2.5 instead of 3), and each
    member still equals its single run trained with the same number of torch threads. Closing
    the generator stops every thread after its current record and keeps the steps done.
    """
    start = time.perf_counter()
    per_member = sessions[0].total_steps
    steps = [0] * len(sessions)
    losses = [math.nan] * len(sessions)
    runs = [_member_run(session, yield_every) for session in sessions]
    left = [session.steps_left for session in sessions]
    for index, record in train_side_by_side(runs, workers, left):
        if isinstance(record, RunFinished):
            continue
        steps[index] = record.step
        losses[index] = record.total
        yield EnsembleProgress(
            step=sum(steps),
            total_steps=per_member * len(sessions),
            losses=tuple(losses),
            elapsed=time.perf_counter() - start,
            batched=False,
        )


class _BatchedTraining:
    """K begun training sessions trained as one model with stacked parameters.

    What it shares with a single run: the sessions' samplers (each member draws its own batches),
    the gradient step (``training.optimizer_step``), Adam (``training.adam``, over the stacked
    parameters: K independent Adams) and the solvers' bookkeeping (``Solver.record``). What stays
    its own: the grouped encoder and stacked criterion (K models at once) and the copy of the
    stacked weights and Adam state back into the members' models and optimizers at every record.
    """

    def __init__(self, sessions: Sequence[TrainingSession], precision: str) -> None:
        self.sessions = list(sessions)
        self.size = len(sessions)
        objective = sessions[0].objective
        device = objective.windows.data.device
        self.batch_size = objective.batch_size
        self.samplers = [session.objective.sampler for session in sessions]
        models = [session.estimator.model_ for session in sessions]
        self.encoder = _GroupedEncoder(models[0], objective.windows.data, models)
        self.criterion = _StackedCriterion(
            [session.solver.criterion for session in sessions], device
        )
        leaves = [*self.encoder.parameters, *self.criterion.parameters]
        first = sessions[0].estimator
        self.optimizer = adam(leaves, first.learning_rate, dict(first.optimizer_kwargs), device)
        self.autocast = torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
        )

    def run(self, yield_every: int) -> Iterator[EnsembleProgress]:
        total_steps = self.sessions[0].total_steps
        start = time.perf_counter()
        pending: list[torch.Tensor] = []
        try:
            for step in range(1, total_steps + 1):
                pending.append(self._step())
                if step % yield_every == 0 or step == total_steps:
                    self._record(pending)
                    pending = []
                    self._write_back()
                    yield EnsembleProgress(
                        step=step,
                        total_steps=total_steps,
                        losses=tuple(s.solver.history[-1] for s in self.sessions),
                        elapsed=time.perf_counter() - start,
                        batched=True,
                    )
        finally:
            self._record(pending)
            self._write_back()

    def _step(self) -> torch.Tensor:
        """One optimizer step of every member; returns the (K, 4) statistics on the device."""
        terms = optimizer_step(self.optimizer, self._loss)
        _, total, pos, neg = terms
        with torch.no_grad():
            return torch.stack([pos, neg, total, self.criterion.temperatures()], dim=1).detach()

    def _loss(self) -> tuple[torch.Tensor, ...]:
        """``(sum of the members' losses, total, pos, neg)``, the last three of shape ``(K,)``."""
        batches = [sampler.sample(self.batch_size) for sampler in self.samplers]
        sizes = (
            batches[0].reference.shape[0],
            batches[0].positive.shape[0],
            batches[0].negative.shape[0],
        )
        centres = torch.stack([torch.cat([b.reference, b.positive, b.negative]) for b in batches])
        with self.autocast:
            embedded = self.encoder(centres)
        reference, positive, negative = embedded.float().split(sizes, dim=1)
        total, pos, neg = self.criterion(reference, positive, negative)
        return total.sum(), total, pos, neg

    def _record(self, pending: list[torch.Tensor]) -> None:
        """Append the pending per-step statistics to every member's history and log."""
        if not pending:
            return
        stats = torch.stack(pending).cpu()  # (steps, K, 4), one transfer
        for index, session in enumerate(self.sessions):
            session.solver.record(list(stats[:, index]))

    def _write_back(self) -> None:
        """Copy the stacked weights and Adam state into every member's model and optimizer."""
        with torch.no_grad():
            for index, session in enumerate(self.sessions):
                solver = session.solver
                targets = [*solver.model.parameters(), *solver.criterion.parameters()]
                sources = [*self.encoder.parameters, *self.criterion.parameters]
                for target, stacked in zip(targets, sources, strict=True):
                    target.copy_(stacked[index])
                    self._copy_adam_state(solver.optimizer, target, stacked, index)

    def _copy_adam_state(
        self,
        optimizer: torch.optim.Optimizer,
        target: torch.Tensor,
        stacked: torch.Tensor,
        index: int,
    ) -> None:
        state = self.optimizer.state.get(stacked)
        if not state:
            return
        optimizer.state[target] = {
            key: value.clone() if value.dim() == 0 else value[index].clone()
            for key, value in state.items()
        }


class _StackedCriterion:
    """The K members' InfoNCE criteria evaluated at once on ``(K, B, d)`` embeddings."""

    def __init__(self, criteria: Sequence[nn.Module], device: torch.device) -> None:
        first = criteria[0]
        self.similarity = torch.vmap(_SIMILARITIES[first.distance])
        self.infonce = torch.vmap(infonce_from_similarities)
        self.learnable = first.learnable
        self.max_inverse = first.max_inverse_temperature
        if self.learnable:
            stacked = torch.stack([c.log_inverse_temperature.detach() for c in criteria])
            self.log_inverse = stacked.clone().requires_grad_(True)
            self.parameters = [self.log_inverse]
        else:
            self.fixed_inverse = torch.full(
                (len(criteria),), 1.0 / first.temperature, device=device
            )
            self.parameters = []

    def inverse_temperatures(self) -> torch.Tensor:
        """``(K,)`` inverse temperatures (with gradient when learnable)."""
        if not self.learnable:
            return self.fixed_inverse
        inverse = self.log_inverse.exp()
        if self.max_inverse is not None:
            inverse = inverse.clamp(max=self.max_inverse)
        return inverse

    def temperatures(self) -> torch.Tensor:
        return 1.0 / self.inverse_temperatures().detach()

    def __call__(
        self, reference: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-member ``(total, pos, neg)``, each of shape ``(K,)``."""
        pos_sim, neg_sim = self.similarity(reference, positive, negative)
        inverse = self.inverse_temperatures().to(pos_sim.device)
        return self.infonce(pos_sim * inverse[:, None], neg_sim * inverse[:, None, None])


class _GroupedEncoder:
    """K encoders of one architecture with stacked parameters, run as one grouped network.

    Activations have the layout ``(M, K·C, T)`` (or ``(M, K·C)`` for dense layers): member k's
    channels are the k-th block of C, so every ``Conv1d``/``Linear`` becomes one grouped convolution
    with ``groups=K``.

    Parameters
    ----------
    template : Encoder
        One of the members (defines the layers).
    data : torch.Tensor
        ``(N, n)`` recording on the training device.
    encoders : sequence of Encoder
        The members; their parameters are stacked into new leaf tensors of shape ``(K, *shape)``.
    """

    def __init__(self, template: Encoder, data: torch.Tensor, encoders: Sequence[Encoder]) -> None:
        self.size = len(encoders)
        self.data = data
        self.convolutional = template.is_convolutional
        offset = template.get_offset()
        self.left, self.right = offset.left, offset.right
        self.window = torch.arange(-offset.left, offset.right, device=data.device)
        names = [name for name, _ in template.named_parameters()]
        per_member = [dict(encoder.named_parameters()) for encoder in encoders]
        self.stacked = {
            name: torch.stack([params[name].detach() for params in per_member])
            .clone()
            .requires_grad_(True)
            for name in names
        }
        self.parameters = list(self.stacked.values())
        self.layers = [(f"net.{name}", module) for name, module in template.net.named_children()]
        self.first_name, first = self.layers[0]
        self.project_first = (
            self.convolutional
            and isinstance(first, nn.Conv1d)
            and first.stride == (1,)
            and first.dilation == (1,)
            and first.padding == (0,)
        )

    def _projection_is_cheaper(self, num_windows: int) -> bool:
        """Whether the first layer over the whole recording costs less than over every window."""
        kernel = self.layers[0][1].kernel_size[0]
        return self.data.shape[0] < num_windows * (len(self.window) - kernel + 1)

    def __call__(self, centres: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(K, M, d)`` of the windows around ``centres`` ``(K, M)``."""
        clamped = centres.clamp(self.left, self.data.shape[0] - self.right)
        if self.project_first and self._projection_is_cheaper(clamped.shape[1]):
            x = self._projected_first_layer(clamped)
            layers = self.layers[1:]
        else:
            x = self._inputs(clamped)
            layers = self.layers
        for name, module in layers:
            x = self._apply(module, name, x)
        num_windows = x.shape[0]
        return x.reshape(num_windows, self.size, -1).transpose(0, 1)

    def _inputs(self, clamped: torch.Tensor) -> torch.Tensor:
        """Input windows ``(M, K·n, L)`` (``(M, K·n)`` for dense encoders)."""
        if not self.convolutional:
            return self.data[clamped.T].reshape(clamped.shape[1], -1)
        rows = clamped.T[:, :, None] + self.window  # (M, K, L)
        windows = self.data[rows].transpose(2, 3)  # (M, K, n, L)
        return windows.reshape(rows.shape[0], -1, rows.shape[2])

    def _projected_first_layer(self, clamped: torch.Tensor) -> torch.Tensor:
        """First convolution for all members as one product over the whole recording.

        With kernel taps ``W_j``, the output at row t is ``Σ_j x[t + j] W_j + b``: the recording is
        multiplied once by every member's taps, the taps are summed with shifts, and the rows of
        each window are gathered.
        """
        weight = self.stacked[f"{self.first_name}.weight"]  # (K, h, n, k)
        bias = self.stacked[f"{self.first_name}.bias"]  # (K, h)
        size, hidden, width, kernel = weight.shape
        taps = weight.permute(2, 3, 0, 1).reshape(width, kernel * size * hidden)
        products = (self.data @ taps).reshape(-1, kernel, size * hidden)
        length = products.shape[0] - kernel + 1
        summed = sum(products[j : j + length, j] for j in range(kernel))  # (N', K·h)
        outputs = len(self.window) - kernel + 1
        rows = (clamped - self.left).T[:, :, None] + torch.arange(
            outputs, device=clamped.device
        )  # (M, K, T)
        member = torch.arange(size, device=clamped.device)[None, :, None]
        flat = summed.reshape(length * size, hidden).index_select(
            0, (rows * size + member).reshape(-1)
        )
        gathered = flat.reshape(*rows.shape, hidden) + bias[None, :, None, :]
        return gathered.permute(0, 1, 3, 2).reshape(rows.shape[0], size * hidden, outputs)

    def _apply(self, module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
        """One layer of every member on the grouped activations."""
        if isinstance(module, nn.Conv1d):
            weight, bias = self._grouped(name)
            return F.conv1d(
                x,
                weight,
                bias,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=self.size,
            )
        if isinstance(module, nn.Linear):
            weight, bias = self._grouped(name)
            return F.conv1d(x[..., None], weight[..., None], bias, groups=self.size)[..., 0]
        if isinstance(module, Residual):
            branch = x
            for index, inner in enumerate(module.module):
                branch = self._apply(inner, f"{name}.module.{index}", branch)
            shortcut = x[..., module.crop : -module.crop] if module.crop else x
            return shortcut + branch
        if isinstance(module, LinearResidual):
            return self._linear_residual(module, name, x)
        if isinstance(module, UnitNorm):
            per_member = x.reshape(x.shape[0], self.size, -1, *x.shape[2:])
            norm = torch.linalg.vector_norm(per_member, dim=2, keepdim=True)
            return (per_member / norm).reshape(x.shape)
        if isinstance(module, DropTimeAxis):
            return x.squeeze(2) if x.dim() > 2 else x
        if isinstance(module, nn.Flatten):
            return x
        return module(x)

    def _grouped(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight ``(K·out, in, …)`` and bias ``(K·out,)`` of layer ``name``."""
        weight = self.stacked[f"{name}.weight"]
        bias = self.stacked.get(f"{name}.bias")
        weight = weight.reshape(-1, *weight.shape[2:])
        return weight, None if bias is None else bias.reshape(-1)

    def _linear_residual(self, module: LinearResidual, name: str, x: torch.Tensor) -> torch.Tensor:
        branch = self._apply(module.module, f"{name}.module", x)
        per_member = x.reshape(x.shape[0], self.size, -1)
        if module.width_change > 0:
            per_member = F.pad(per_member, (0, module.width_change))
        elif module.width_change < 0:
            per_member = per_member[..., : module.width_change]
        return per_member.reshape(x.shape[0], -1) + branch
