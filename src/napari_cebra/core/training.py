"""The training loop: objectives (one per solver kind) and the step generator.

An *objective* knows the data, the sampler and how one batch becomes a loss; the :class:`Solver`
owns the encoder(s), the criterion, the optimizer and the history, and runs steps as a generator of
:class:`TrainingProgress` records. Per-step statistics stay on the training device and are copied to
the host once per yielded record, so a CUDA run does not synchronise at every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from napari_cebra.core.fast import FusedCriterion
from napari_cebra.core.loss import InfoNCE
from napari_cebra.core.windows import WindowEncoder

STAT_KEYS = ("pos", "neg", "total", "temperature")
HYBRID_STAT_KEYS = (
    *STAT_KEYS,
    "behavior_pos",
    "behavior_neg",
    "behavior_total",
    "time_pos",
    "time_neg",
    "time_total",
)
HYBRID_DISPLAY_KEYS = HYBRID_STAT_KEYS[4:]
HYBRID_BEHAVIOUR_DIMENSIONS = 3
SOLVER_VERSION = "0.6.1"


@dataclass(frozen=True)
class TrainingProgress:
    """Where a training run stands; yielded by ``CEBRA.iter_fit``.

    Attributes
    ----------
    step : int
        Optimizer steps done in this run so far (1 … ``total_steps``).
    total_steps : int
        Steps this run will do when not stopped.
    pos, neg, total : float
        Alignment term, uniformity term and InfoNCE loss of the last step.
    temperature : float
        Temperature after the last step.
    elapsed : float
        Seconds since the run started.
    """

    step: int
    total_steps: int
    pos: float
    neg: float
    total: float
    temperature: float
    elapsed: float


def format_stats(stats: dict[str, float]) -> str:
    """The progress-bar text of the reference: ``"pos: -0.9923 neg:  5.1508 …"``."""
    return " ".join(f"{key}: {value: .4f}" for key, value in stats.items())


class Objective(Protocol):
    """One kind of contrastive batch (single session, full batch, hybrid, multi-session)."""

    stat_keys: tuple[str, ...]

    def loss(self, model: torch.nn.Module, criterion: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        """Sample a batch and return ``(total, pos, neg, *extra)`` scalar tensors."""


class ContrastiveObjective:
    """Mini-batches of one recording: references, positives and negatives from a sampler.

    Parameters
    ----------
    windows : WindowEncoder
        Gathers the encoder's input windows of the recording.
    sampler : object
        A single-session sampler of ``core.sampling`` (``sample(batch_size) -> BatchIndex``).
    batch_size : int
        B.
    """

    stat_keys = STAT_KEYS

    def __init__(self, windows: WindowEncoder, sampler: Any, batch_size: int) -> None:
        self.windows = windows
        self.sampler = sampler
        self.batch_size = batch_size

    def loss(self, model: torch.nn.Module, criterion: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        batch = self.sampler.sample(self.batch_size)
        centres = torch.cat([batch.reference, batch.positive, batch.negative])
        embedded = self.windows(model, centres)
        sizes = (batch.reference.shape[0], batch.positive.shape[0], batch.negative.shape[0])
        reference, positive, negative = embedded.split(sizes)
        return criterion(reference, positive, negative)


class FullBatchObjective:
    """Full-batch gradient descent over one recording (spec §4.7).

    Every step embeds the whole recording once; the references are the centres ``left … N − L − 2``
    in order, the negatives a random permutation of them and the positives the sampler's
    conditional draws (positives without an embedding row are replaced by their reference).

    Parameters
    ----------
    data : torch.Tensor
        ``(N, n)`` recording on the training device.
    sampler : object
        A single-session sampler providing ``sample_conditional``.
    offset : Offset
        The encoder's receptive field.
    generator : torch.Generator
        Draws the negative permutation.
    precision : {"float32", "bfloat16"}
        Arithmetic of the encoder pass (see :class:`~napari_cebra.core.windows.WindowEncoder`).
    """

    stat_keys = STAT_KEYS

    def __init__(
        self,
        data: torch.Tensor,
        sampler: Any,
        offset: Any,
        generator: torch.Generator,
        precision: str = "float32",
    ):
        num_samples = int(data.shape[0])
        last = num_samples - len(offset) - 2
        if last < offset.left:
            raise ValueError(
                f"Full-batch training needs more than {len(offset) + 1 + offset.left} samples "
                f"for this encoder, got {num_samples}."
            )
        self.data = data
        self.windows = WindowEncoder(data, offset, len(offset) > 1, precision)
        self.sampler = sampler
        self.generator = generator
        self.left = offset.left
        self.reference = torch.arange(offset.left, last + 1, device=data.device)
        self._highest_centre = num_samples - offset.right

    def loss(self, model: torch.nn.Module, criterion: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        embedded = self.windows.embed_sequence(model)
        reference = self.reference
        order = torch.randperm(
            reference.shape[0], generator=self.generator, device=self.generator.device
        )
        negative = reference[order.to(reference.device)]
        positive = self.sampler.sample_conditional(reference)
        valid = (positive >= self.left) & (positive <= self._highest_centre)
        positive = torch.where(valid, positive, reference)
        return criterion(
            embedded[reference - self.left],
            embedded[positive - self.left],
            embedded[negative - self.left],
        )


class HybridObjective:
    """CEBRA-Hybrid (spec §4.6): a behaviour InfoNCE on the first 3 output dimensions plus a time
    InfoNCE on all of them, with shared references and negatives.

    The per-step statistics are the sums of the two objectives (``pos``, ``neg``, ``total``) and
    each objective's own terms (``behavior_*``, ``time_*``); the reference leaves its log empty.
    """

    stat_keys = HYBRID_STAT_KEYS

    def __init__(self, windows: WindowEncoder, sampler: Any, batch_size: int) -> None:
        self.windows = windows
        self.sampler = sampler
        self.batch_size = batch_size

    def loss(self, model: torch.nn.Module, criterion: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        batch = self.sampler.sample(self.batch_size)
        parts = (batch.reference, batch.positive, batch.time_positive, batch.negative)
        embedded = self.windows(model, torch.cat(parts))
        reference, positive, time_positive, negative = embedded.split([p.shape[0] for p in parts])
        dims = HYBRID_BEHAVIOUR_DIMENSIONS
        behaviour = criterion(reference[:, :dims], positive[:, :dims], negative[:, :dims])
        time_terms = criterion(reference, time_positive, negative)
        total = behaviour[0] + time_terms[0]
        return (
            total,
            behaviour[1] + time_terms[1],
            behaviour[2] + time_terms[2],
            *behaviour[1:],
            behaviour[0],
            *time_terms[1:],
            time_terms[0],
        )


class MultiSessionObjective:
    """Multi-session batches (spec §4.8): one encoder per session, positives drawn across sessions.

    Parameters
    ----------
    windows : list of WindowEncoder
        One per session.
    sampler : MultiSessionSampler
    batch_size : int
        B per session.
    """

    stat_keys = STAT_KEYS

    def __init__(self, windows: list[WindowEncoder], sampler: Any, batch_size: int) -> None:
        self.windows = windows
        self.sampler = sampler
        self.batch_size = batch_size

    def loss(self, model: torch.nn.Module, criterion: torch.nn.Module) -> tuple[torch.Tensor, ...]:
        batch = self.sampler.sample(self.batch_size)
        references, positives, negatives = [], [], []
        for session, windows in enumerate(self.windows):
            centres = torch.cat(
                [batch.reference[session], batch.positive[session], batch.negative[session]]
            )
            reference, positive, negative = windows(model[session], centres).chunk(3)
            references.append(reference)
            positives.append(positive)
            negatives.append(negative)
        positive = torch.cat(positives)[batch.inverse_permutation]
        return criterion(torch.cat(references), positive, torch.cat(negatives))


def adam(
    parameters: list[torch.nn.Parameter],
    learning_rate: float,
    options: dict[str, Any],
    device: torch.device | str,
) -> torch.optim.Adam:
    """Adam with ``options`` (``torch.optim.Adam`` keywords), fused on CPU and CUDA.

    The fused implementation updates all tensors in one kernel per step (about 0.3 ms less per
    step than the default on the benchmark CPU); ``options`` may set ``fused`` explicitly.
    """
    fused = {"fused": True} if torch.device(device).type in ("cpu", "cuda") else {}
    return torch.optim.Adam(parameters, lr=learning_rate, **{**fused, **options})


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss: Callable[[], Sequence[torch.Tensor]]
) -> Sequence[torch.Tensor]:
    """One gradient step: clear the gradients, evaluate ``loss()``, backpropagate its first term
    (a scalar: the objective) and update the parameters; returns the terms ``loss()`` gave.

    The step of every training run (:meth:`Solver.step`, and the grouped ensemble model of
    ``core.ensemble``).
    """
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = None  # ``zero_grad(set_to_none=True)`` without its overhead
    terms = loss()
    terms[0].backward()
    adam_update(optimizer)
    return terms


def adam_update(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, with less overhead for the fused Adam of :func:`adam`.

    ``torch.optim.Adam.step`` spends 0.1–0.2 ms per call in Python (decorators, checks, lazy
    state initialisation) around one fused kernel, a few per cent of a training step on a
    CPU. Once the state exists this calls torch's functional Adam (``torch.optim.adam.adam``:
    the same kernel, arithmetic and state) directly; the first step, any other optimizer and
    any other Adam setting (not fused, capturable, differentiable, gradient scaling) go
    through ``optimizer.step()``.
    """
    updates = _fused_adam_updates(optimizer)
    if updates is None:
        optimizer.step()
        return
    from torch.optim.adam import adam as adam_kernel

    with torch.no_grad():
        for group, lists in updates:
            beta1, beta2 = group["betas"]
            # torch < 2.6 has no decoupled weight decay (nor the group key)
            decoupled = {key: group[key] for key in ("decoupled_weight_decay",) if key in group}
            adam_kernel(
                *lists,
                foreach=group["foreach"],
                capturable=False,
                differentiable=False,
                fused=True,
                grad_scale=None,
                found_inf=None,
                has_complex=False,
                **decoupled,
                amsgrad=group["amsgrad"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
            )


def _fused_adam_updates(
    optimizer: torch.optim.Optimizer,
) -> list[tuple[dict[str, Any], tuple[list[torch.Tensor], ...]]] | None:
    """Per parameter group, the tensor lists of a fused Adam update (parameters with a
    gradient, gradients, both moments, maximum second moments, step counts), or ``None``
    where ``optimizer.step()`` must do the step (see :func:`adam_update`)."""
    if type(optimizer) is not torch.optim.Adam:
        return None
    if getattr(optimizer, "grad_scale", None) is not None:
        return None
    if getattr(optimizer, "found_inf", None) is not None:
        return None
    updates = []
    for group in optimizer.param_groups:
        if not group["fused"] or group["capturable"] or group["differentiable"]:
            return None
        lists: tuple[list[torch.Tensor], ...] = ([], [], [], [], [], [])
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = lists
        for parameter in group["params"]:
            if parameter.grad is None:
                continue
            state = optimizer.state.get(parameter)
            if not state or parameter.grad.is_sparse or torch.is_complex(parameter):
                return None
            params.append(parameter)
            grads.append(parameter.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if group["amsgrad"]:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
            steps.append(state["step"])
        updates.append((group, lists))
    return updates


class Solver:
    """Encoder(s), criterion, optimizer and history of one training run.

    Parameters
    ----------
    name : str
        ``"single-session"``, ``"single-session-full"``, ``"single-session-hybrid"`` or
        ``"multi-session"`` (the reference's solver names).
    model : torch.nn.Module
        An ``Encoder`` or, for multi-session, an ``nn.ModuleList`` of encoders.
    criterion : torch.nn.Module
        The InfoNCE criterion.
    optimizer : torch.optim.Optimizer
        Adam over the model's and the criterion's parameters.
    stat_keys : tuple of str
        Keys of the per-step log.
    n_features : int or list of int
        Input width(s), stored in the state dict like the reference.

    Training draws no random numbers from torch's process-wide generator: the objective's
    sampler has its own generator and dropout layers theirs (``models.seed_dropout``), so runs
    in several threads do not disturb each other.
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        criterion: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        stat_keys: tuple[str, ...],
        n_features: int | list[int],
    ) -> None:
        self.name = name
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.stat_keys = stat_keys
        self.n_features = n_features
        self.history: list[float] = []
        self.log: dict[str, list[float]] = {key: [] for key in stat_keys}
        self._constant_temperature: torch.Tensor | None = None
        self._loss_function = (
            FusedCriterion(criterion) if isinstance(criterion, InfoNCE) else criterion
        )

    @property
    def num_sessions(self) -> int | None:
        """Number of sessions of a multi-session solver, else ``None``."""
        return len(self.model) if self.name == "multi-session" else None

    def state_dict(self) -> dict[str, Any]:
        """The solver state with the reference's keys (spec §5.2)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss": torch.tensor(self.history, dtype=torch.float32),
            "decode": [],
            "criterion": self.criterion.state_dict(),
            "version": SOLVER_VERSION,
            "log": {key: list(values) for key, values in self.log.items()},
            "n_features": self.n_features,
        }
        if self.num_sessions is not None:
            state["num_sessions"] = self.num_sessions
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer state and history from :meth:`state_dict` output."""
        self.model.load_state_dict(state["model"])
        self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = [float(value) for value in torch.as_tensor(state["loss"]).reshape(-1)]
        log = state.get("log") or {}
        self.log = {key: [float(v) for v in log.get(key, [])] for key in self.stat_keys}
        for key, values in log.items():
            if key not in self.log:
                self.log[key] = [float(v) for v in values]

    def run(
        self,
        objective: Objective,
        num_steps: int,
        yield_every: int,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
        max_interval: float | None = None,
        first_step: int = 0,
        total_steps: int | None = None,
    ) -> Iterator[TrainingProgress]:
        """Train ``num_steps`` steps, yielding a :class:`TrainingProgress` every ``yield_every``
        steps, after the last one, and whenever ``max_interval`` seconds passed since the last
        yield (so that a GUI can stop a slow run promptly).

        Between yields the history and log hold every finished step. ``callback(step, solver)``
        (0-based step) is called after steps where ``step % callback_frequency == 0``.

        ``first_step`` steps of the run were done before (by earlier calls): steps are counted
        from there, and the records report ``total_steps`` (default ``first_step + num_steps``).
        """
        end = first_step + num_steps
        total_steps = end if total_steps is None else total_steps
        start = last_yield = time.perf_counter()
        pending: list[torch.Tensor] = []
        self.model.train()
        for step in range(first_step, end):
            pending.append(self.step(objective))
            calls_back = bool(callback and callback_frequency and step % callback_frequency == 0)
            reports = (
                (step + 1) % yield_every == 0
                or step + 1 == end
                or (max_interval is not None and time.perf_counter() - last_yield >= max_interval)
            )
            if calls_back or reports:
                self.record(pending)
                pending = []
            if calls_back:
                callback(step, self)
            if reports:
                yield self._progress(step + 1, total_steps, time.perf_counter() - start)
                last_yield = time.perf_counter()
            if calls_back or reports:
                # the caller may have switched the encoder to eval mode (e.g. by transforming)
                self.model.train()

    def step(self, objective: Objective) -> torch.Tensor:
        """One optimizer step on a batch of ``objective``; returns the step's statistics
        (``stat_keys`` order) as a device tensor, to be passed to :meth:`record`."""
        terms = optimizer_step(
            self.optimizer, lambda: objective.loss(self.model, self._loss_function)
        )
        with torch.no_grad():
            temperature = self._temperature(terms[0].device)
            stats = torch.stack([terms[1], terms[2], terms[0], temperature, *terms[3:]])
        return stats.detach()

    def _temperature(self, device: torch.device) -> torch.Tensor:
        """Current temperature as a device tensor (no host transfer in constant mode)."""
        if self.criterion.learnable:
            return 1.0 / self.criterion.inverse_temperature()
        if self._constant_temperature is None or self._constant_temperature.device != device:
            self._constant_temperature = torch.tensor(
                self.criterion.temperature, dtype=torch.float32, device=device
            )
        return self._constant_temperature

    def record(self, pending: list[torch.Tensor]) -> None:
        """Append per-step statistics (one ``stat_keys``-ordered tensor per step, oldest first)
        to the history and log, copying them to the host in one transfer."""
        if not pending:
            return
        rows = torch.stack(pending).cpu().tolist()
        for row in rows:
            pos, neg, total, temperature, *extra = row
            self.history.append(total)
            for key, value in zip(
                self.stat_keys, (pos, neg, total, temperature, *extra), strict=True
            ):
                self.log[key].append(value)

    def _progress(self, step: int, total_steps: int, elapsed: float) -> TrainingProgress:
        return TrainingProgress(
            step=step,
            total_steps=total_steps,
            pos=self.log["pos"][-1],
            neg=self.log["neg"][-1],
            total=self.log["total"][-1],
            temperature=self.log["temperature"][-1],
            elapsed=elapsed,
        )

    def last_stats(self) -> dict[str, float]:
        """The last step's statistics as shown in the progress bar."""
        keys = HYBRID_DISPLAY_KEYS if self.name == "single-session-hybrid" else STAT_KEYS
        return {key: self.log[key][-1] for key in keys if self.log.get(key)}
