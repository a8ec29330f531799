"""Shuffle controls for CEBRA-Behavior (the authors' best-practice recipe).

A behaviour-conditioned embedding is only trustworthy when the same training on data whose link
between neurons and behaviour has been destroyed finds (almost) nothing. Two controls:

* **label shuffle** — the behaviour labels are shuffled in time (the neural data is untouched);
* **neural shuffle** — each neuron's activity is shuffled in time independently (the labels are
  untouched).

Each control trains the real model and the control with the same parameters and seed on the
training part of a train/validation split in time, and compares their goodness of fit (bits). The
verdict follows the recipe (``workflows.verdicts.control_verdict``): the control should stay below
:data:`CONTROL_GOF_LIMIT_BITS` while the real model is clearly above it, and the control's loss
should not keep dropping late in training (that would mean the model memorises the shuffled
labels).

``iter_label_shuffle_control`` / ``iter_neural_shuffle_control`` are generators yielding
:class:`ControlProgress` records (a Qt worker can stop between two yields); their return value is
the :class:`ControlResult`. The plain functions run them to the end, passing each record to
``progress``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from napari_cebra.core.progress import run_to_end
from napari_cebra.workflows.splits import train_valid_split
from napari_cebra.workflows.verdicts import (  # re-exported: the controls' limit
    CONTROL_GOF_LIMIT_BITS as CONTROL_GOF_LIMIT_BITS,
)
from napari_cebra.workflows.verdicts import (
    Verdict,
    control_verdict,
    late_gof_rise,
)

LabelShuffle = Literal["block", "circular", "permutation"]
NeuralShuffle = Literal["permutation", "circular"]


@dataclass(frozen=True)
class ControlProgress:
    """Progress of a control run.

    Attributes
    ----------
    stage : str
        ``"real"`` (the model on the real data), ``"control"`` (on the shuffled data) or
        ``"scoring"`` (goodness of fit and embeddings of both models).
    step, total_steps : int
        Optimizer steps done / planned in this stage.
    loss : float
        Last InfoNCE loss of this stage (NaN while scoring).
    elapsed : float
        Seconds since the control started.
    """

    stage: str
    step: int
    total_steps: int
    loss: float
    elapsed: float


@dataclass
class TrainedModel:
    """A model fitted on the training part, with its scores and embeddings.

    Attributes
    ----------
    model : CEBRA
        The fitted estimator.
    loss : np.ndarray
        InfoNCE loss per step.
    gof_history : np.ndarray
        Goodness of fit (bits) per step, from the loss history.
    gof_train, gof_valid : float
        Goodness of fit (bits) on the training and validation part (with the labels the model
        was trained with: shuffled ones for a label-shuffle control).
    train_embedding, valid_embedding : np.ndarray
        Embeddings of both parts.
    seconds : float
        Training time.
    """

    model: Any
    loss: np.ndarray
    gof_history: np.ndarray
    gof_train: float
    gof_valid: float
    train_embedding: np.ndarray
    valid_embedding: np.ndarray
    seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers (loss and GoF histories as lists, no embeddings)."""
        return {
            "gof_train": self.gof_train,
            "gof_valid": self.gof_valid,
            "final_loss": float(self.loss[-1]) if len(self.loss) else None,
            "loss": self.loss.tolist(),
            "gof_history": self.gof_history.tolist(),
            "seconds": self.seconds,
        }


@dataclass
class ControlResult:
    """The real CEBRA-Behavior model next to its shuffle control, with a verdict.

    Attributes
    ----------
    kind : str
        ``"label_shuffle"`` or ``"neural_shuffle"``.
    method : str
        How the data were shuffled.
    real, control : TrainedModel
    verdict : {"pass", "warn", "fail"}
    reason : str
        The verdict in plain words.
    late_drop_bits : float
        How much the control's goodness of fit rose over the last fifth of training.
    """

    kind: str
    method: str
    real: TrainedModel
    control: TrainedModel
    verdict: Verdict
    reason: str
    late_drop_bits: float
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able result: verdict, reason, both models' numbers and loss curves."""
        return {
            "kind": self.kind,
            "method": self.method,
            "verdict": self.verdict,
            "reason": self.reason,
            "late_drop_bits": self.late_drop_bits,
            "real": self.real.summary(),
            "control": self.control.summary(),
        }


def shuffle_labels(
    labels: np.ndarray,
    rng: np.random.Generator,
    method: LabelShuffle = "block",
    block: int = 40,
) -> np.ndarray:
    """Shuffle behaviour labels in time, keeping their distribution.

    Parameters
    ----------
    labels : np.ndarray, (T,) or (T, k)
    rng : np.random.Generator
    method : {"block", "permutation", "circular"}
        ``"block"`` (default): the recording is cut into blocks of ``block`` frames that are put
        in random order; this keeps the labels' distribution and short-term smoothness, so
        behaviour-based sampling draws positives much as with the real labels.
        ``"permutation"``: every frame gets the label of a random other frame (the label changes
        over the time offset become large and positives concentrate on a few frames at the edge
        of the label range). ``"circular"``: the labels are rotated by a random lag between 10 %
        and 90 % of the length (keeps all temporal structure; for periodic behaviour the
        rotated labels may still partly match the real ones).
    block : int
        Block length in frames for ``"block"`` (40 frames = 1 s at 25 ms bins).

    Returns
    -------
    np.ndarray
        A shuffled copy, same shape and dtype.
    """
    n_frames = len(labels)
    if method == "permutation":
        order = rng.permutation(n_frames)
    elif method == "block":
        if block < 1:
            raise ValueError(f"block must be at least 1 frame, got {block}.")
        starts = np.arange(0, n_frames, block)
        order = np.concatenate(
            [np.arange(start, min(start + block, n_frames)) for start in rng.permutation(starts)]
        )
    elif method == "circular":
        lag = int(rng.integers(int(0.1 * n_frames), max(int(0.9 * n_frames), 1) + 1))
        order = np.roll(np.arange(n_frames), lag)
    else:
        raise ValueError(
            f"Unknown label shuffle method {method!r}; use 'permutation', 'block' or 'circular'."
        )
    return labels[order].copy()


def shuffle_neurons(
    neural: np.ndarray, rng: np.random.Generator, method: NeuralShuffle = "permutation"
) -> np.ndarray:
    """Shuffle each neuron's activity in time independently of the other neurons.

    Parameters
    ----------
    neural : np.ndarray, (T, n)
    rng : np.random.Generator
    method : {"permutation", "circular"}
        ``"permutation"``: each column gets its own random frame order (keeps each neuron's rate
        distribution). ``"circular"``: each column is rotated by its own random lag (also keeps
        each neuron's autocorrelation, breaks co-activity and the link to behaviour).

    Returns
    -------
    np.ndarray
        A shuffled copy, same shape and dtype.
    """
    n_frames, n_neurons = neural.shape
    if method == "permutation":
        rows = np.argsort(rng.random((n_frames, n_neurons)), axis=0)
    elif method == "circular":
        lags = rng.integers(0, n_frames, n_neurons)
        rows = (np.arange(n_frames)[:, None] - lags[None, :]) % n_frames
    else:
        raise ValueError(
            f"Unknown neural shuffle method {method!r}; use 'permutation' or 'circular'."
        )
    return np.take_along_axis(neural, rows, axis=0)


def _check_inputs(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    neural = np.asarray(X)
    labels = np.asarray(y)
    if neural.ndim != 2:
        raise ValueError(f"X must be a 2-D (time, neurons) array, got shape {neural.shape}.")
    if labels.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D (time[, columns]), got shape {labels.shape}.")
    if len(labels) != len(neural):
        raise ValueError(
            f"y has {len(labels)} frames but X has {len(neural)} (shapes {labels.shape} and "
            f"{neural.shape})."
        )
    return neural, labels


def iter_train_and_score(
    params: dict[str, Any],
    X: np.ndarray,
    *y: np.ndarray,
    seed: int,
    valid_fraction: float,
    stage: str,
    start: float,
    gof_batches: int = 100,
) -> Generator[ControlProgress, None, TrainedModel]:
    """Fit ``CEBRA(**params, seed=seed)`` on the training part and score it on both parts.

    ``y`` holds the label arrays (none for CEBRA-Time). Yields :class:`ControlProgress` records
    with the given ``stage`` name while training, one ``"scoring"`` record, and returns the
    :class:`TrainedModel`.
    """
    from napari_cebra.core.estimator import CEBRA
    from napari_cebra.metrics import goodness_of_fit_history, goodness_of_fit_score

    train, valid = train_valid_split(len(X), valid_fraction)
    model = CEBRA(**{**params, "seed": seed})
    began = time.perf_counter()
    yield_every = max(1, int(params.get("max_iterations", 10000)) // 100)
    train_labels = [labels[train] for labels in y]
    valid_labels = [labels[valid] for labels in y]
    for record in model.iter_fit(X[train], *train_labels, yield_every=yield_every):
        yield ControlProgress(
            stage, record.step, record.total_steps, record.total, time.perf_counter() - start
        )
    seconds = time.perf_counter() - began
    yield ControlProgress("scoring", 0, 0, float("nan"), time.perf_counter() - start)
    return TrainedModel(
        model=model,
        loss=np.asarray(model.state_dict_["loss"], dtype=np.float64),
        gof_history=np.asarray(goodness_of_fit_history(model), dtype=np.float64),
        gof_train=float(
            goodness_of_fit_score(model, X[train], *train_labels, num_batches=gof_batches)
        ),
        gof_valid=float(
            goodness_of_fit_score(model, X[valid], *valid_labels, num_batches=gof_batches)
        ),
        train_embedding=np.asarray(model.transform(X[train])),
        valid_embedding=np.asarray(model.transform(X[valid])),
        seconds=seconds,
    )


def _iter_control(
    kind: str,
    method: str,
    what: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    shuffled_X: np.ndarray,
    shuffled_y: np.ndarray,
    *,
    seed: int,
    valid_fraction: float,
    real: TrainedModel | None,
    gof_batches: int,
) -> Generator[ControlProgress, None, ControlResult]:
    start = time.perf_counter()
    common = {"seed": seed, "valid_fraction": valid_fraction, "start": start}
    if real is None:
        real = yield from iter_train_and_score(
            params, X, y, stage="real", gof_batches=gof_batches, **common
        )
    control = yield from iter_train_and_score(
        params, shuffled_X, shuffled_y, stage="control", gof_batches=gof_batches, **common
    )
    late = late_gof_rise(control.gof_history)
    verdict, reason = control_verdict(real.gof_train, control.gof_train, late, what)
    return ControlResult(kind, method, real, control, verdict, reason, late, dict(params))


def iter_label_shuffle_control(
    params: dict[str, Any],
    X: Any,
    y: Any,
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    method: LabelShuffle = "block",
    real: TrainedModel | None = None,
    gof_batches: int = 100,
) -> Generator[ControlProgress, None, ControlResult]:
    """Generator form of :func:`label_shuffle_control`; returns the :class:`ControlResult`."""
    neural, labels = _check_inputs(X, y)
    shuffled = shuffle_labels(labels, np.random.default_rng(seed), method)
    return (
        yield from _iter_control(
            "label_shuffle",
            method,
            "labels",
            params,
            neural,
            labels,
            neural,
            shuffled,
            seed=seed,
            valid_fraction=valid_fraction,
            real=real,
            gof_batches=gof_batches,
        )
    )


def iter_neural_shuffle_control(
    params: dict[str, Any],
    X: Any,
    y: Any,
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    method: NeuralShuffle = "permutation",
    real: TrainedModel | None = None,
    gof_batches: int = 100,
) -> Generator[ControlProgress, None, ControlResult]:
    """Generator form of :func:`neural_shuffle_control`; returns the :class:`ControlResult`."""
    neural, labels = _check_inputs(X, y)
    shuffled = shuffle_neurons(neural, np.random.default_rng(seed), method)
    return (
        yield from _iter_control(
            "neural_shuffle",
            method,
            "neural data",
            params,
            neural,
            labels,
            shuffled,
            labels,
            seed=seed,
            valid_fraction=valid_fraction,
            real=real,
            gof_batches=gof_batches,
        )
    )


def label_shuffle_control(
    params: dict[str, Any],
    X: Any,
    y: Any,
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    method: LabelShuffle = "block",
    real: TrainedModel | None = None,
    gof_batches: int = 100,
    progress: Callable[[ControlProgress], None] | None = None,
) -> ControlResult:
    """Train CEBRA-Behavior on the real data and on labels shuffled in time; compare them.

    Parameters
    ----------
    params : dict
        ``CEBRA`` constructor parameters (``seed`` is set from ``seed``).
    X : array-like, (T, n)
        Neural data.
    y : array-like, (T,) or (T, k)
        Behaviour labels (float: continuous, int: discrete).
    seed : int
        Seed of the shuffle and of both models.
    valid_fraction : float
        Last part of the recording held out for validation.
    method : {"block", "permutation", "circular"}
        How the labels are shuffled (see :func:`shuffle_labels`).
    real : TrainedModel, optional
        An already trained real model (e.g. from the other control) to reuse.
    gof_batches : int
        Batches used for each goodness-of-fit score.
    progress : callable, optional
        Receives a :class:`ControlProgress` record every 1 % of training.

    Returns
    -------
    ControlResult
    """
    return run_to_end(
        iter_label_shuffle_control(
            params,
            X,
            y,
            seed=seed,
            valid_fraction=valid_fraction,
            method=method,
            real=real,
            gof_batches=gof_batches,
        ),
        progress,
    )


def neural_shuffle_control(
    params: dict[str, Any],
    X: Any,
    y: Any,
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    method: NeuralShuffle = "permutation",
    real: TrainedModel | None = None,
    gof_batches: int = 100,
    progress: Callable[[ControlProgress], None] | None = None,
) -> ControlResult:
    """Train CEBRA-Behavior on the real data and on neural data shuffled per neuron; compare.

    Parameters are those of :func:`label_shuffle_control`; ``method`` is
    ``"permutation"`` or ``"circular"`` (see :func:`shuffle_neurons`).

    Returns
    -------
    ControlResult
    """
    return run_to_end(
        iter_neural_shuffle_control(
            params,
            X,
            y,
            seed=seed,
            valid_fraction=valid_fraction,
            method=method,
            real=real,
            gof_batches=gof_batches,
        ),
        progress,
    )
