"""Work done off the GUI thread, as generators that yield progress records (no Qt, no viewer).

The widgets wrap these generators in ``napari.qt.threading.thread_worker``; everything they need
arrives as plain arrays, and everything they produce is returned as plain data, so results are
applied to the viewer in the main thread only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NeuralInput:
    """Neural data as the worker receives it: a matrix, or a movie with ROI labels.

    Attributes
    ----------
    matrix : np.ndarray or None
        ``(T, n)`` time × neurons.
    movie : array-like or None
        ``(T, Y, X)`` movie (numpy, dask, memmap) read in chunks by the trace extraction.
    rois : np.ndarray or None
        ``(Y, X)`` ROI labels of the movie.
    dff : bool
        Convert the extracted traces to ΔF/F.
    frames : np.ndarray or None
        Indices of the frames used (e.g. those with behaviour after aligning by time); ``None``
        uses every frame. Traces are extracted (and ΔF/F computed) on the whole movie first.
    """

    matrix: np.ndarray | None = None
    movie: Any = None
    rois: np.ndarray | None = None
    dff: bool = False
    frames: np.ndarray | None = None


@dataclass(frozen=True)
class TraceProgress:
    """Fraction (0–1] of the movie whose ROI traces are extracted."""

    fraction: float

    @property
    def message(self) -> str:
        """Status-line text, e.g. ``"Extracting ROI traces: 40%"``."""
        return f"Extracting ROI traces: {100 * self.fraction:.0f}%"


@dataclass(frozen=True)
class TrainingRequest:
    """Everything one training run needs.

    Attributes
    ----------
    params : dict
        ``CEBRA`` constructor parameters.
    neural : NeuralInput
        The neural data.
    labels : list of np.ndarray
        Label arrays for ``fit`` (continuous float32 ``(T, k)`` and/or discrete int64 ``(T,)``),
        already cut to ``n_frames``; empty for CEBRA-Time.
    n_frames : int
        Frames used (a prefix of the recording when lengths differ).
    valid_fraction : float
        Last fraction of the frames held out from training (0 = train on everything).
    """

    params: dict[str, Any]
    neural: NeuralInput
    labels: list[np.ndarray] = field(default_factory=list)
    n_frames: int = 0
    valid_fraction: float = 0.0


@dataclass
class TrainingResult:
    """What a training run returns to the GUI thread.

    Attributes
    ----------
    model : napari_cebra.CEBRA
        The fitted (possibly stopped early) estimator.
    embedding : np.ndarray
        ``(n_frames, output_dimension)`` embedding of every frame used.
    n_train : int
        Frames ``0 … n_train−1`` were trained on; the rest is validation.
    steps_done : int
        Optimizer steps done.
    stopped : bool
        True when the run was stopped before ``max_iterations``.
    seconds : float
        Wall time of the training loop.
    ended : float
        ``time.perf_counter()`` when the training loop ended (before embedding the frames).
    goodness_of_fit : float
        Goodness of fit in bits, averaged over the last tenth of the training steps.
    """

    model: Any
    embedding: np.ndarray
    n_train: int
    steps_done: int
    stopped: bool
    seconds: float
    ended: float
    goodness_of_fit: float


def neural_matrix_steps(
    neural: NeuralInput, stop: threading.Event
) -> Generator[TraceProgress, None, np.ndarray | None]:
    """Yield trace-extraction progress for a movie; return the ``(T, n)`` matrix.

    ``T`` counts the frames used (``neural.frames``). Returns ``None`` when ``stop`` is set
    during extraction.
    """
    if neural.matrix is not None:
        matrix = np.asarray(neural.matrix, dtype=np.float32)
    else:
        from napari_cebra.io.traces import iter_extract_traces

        steps = iter_extract_traces(neural.movie, neural.rois, dff=neural.dff)
        while True:
            try:
                fraction = next(steps)
            except StopIteration as done:
                matrix = np.asarray(done.value, dtype=np.float32)
                break
            yield TraceProgress(float(fraction))
            if stop.is_set():
                steps.close()
                return None
    return matrix if neural.frames is None else matrix[neural.frames]


def split_point(n_frames: int, valid_fraction: float) -> int:
    """Number of training frames when the last ``valid_fraction`` is held out."""
    if valid_fraction <= 0:
        return n_frames
    from napari_cebra.workflows.splits import train_valid_split

    train, _ = train_valid_split(n_frames, valid_fraction)
    return int(train.stop)


RECORD_INTERVAL_S = 0.2
"""Seconds between two training records sent to the GUI: a few per second is plenty for a status
line and a loss plot, and each record costs the GUI thread a slot call (at one record per step
the GUI work slowed training several-fold). Stop acts at the next record."""


@dataclass(frozen=True)
class TrainingUpdate:
    """The optimizer steps done since the previous update of a training run.

    Attributes
    ----------
    step : int
        Steps done so far (the last of ``steps``).
    total_steps : int
        Steps the run does when not stopped.
    steps : np.ndarray
        ``(k,)`` step numbers (1-based) of the new steps.
    pos, neg, total : np.ndarray
        ``(k,)`` alignment term, uniformity term and InfoNCE loss of each new step.
    temperature : float
        Temperature after the last step.
    elapsed : float
        Seconds since the run started.
    """

    step: int
    total_steps: int
    steps: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    total: np.ndarray
    temperature: float
    elapsed: float


def training_updates(
    model: Any, X: np.ndarray, labels: list[np.ndarray], stop: threading.Event
) -> Generator[TrainingUpdate, None, int]:
    """Train ``model`` on ``X, *labels``, yielding a :class:`TrainingUpdate` every
    :data:`RECORD_INTERVAL_S` seconds (and after the last step); return the steps done.

    Every step's loss terms reach the caller (read from the solver's log), but the GUI is
    called only a few times per second. Setting ``stop`` ends the run at the next update and
    keeps the partially trained model.
    """
    fitting = model.iter_fit(
        X, *labels, yield_every=max(1, int(model.max_iterations)), max_interval=RECORD_INTERVAL_S
    )
    done = 0
    for record in fitting:
        log = model.solver_.log
        new = slice(done, record.step)
        yield TrainingUpdate(
            step=record.step,
            total_steps=record.total_steps,
            steps=np.arange(done + 1, record.step + 1),
            pos=np.asarray(log["pos"][new], dtype=np.float64),
            neg=np.asarray(log["neg"][new], dtype=np.float64),
            total=np.asarray(log["total"][new], dtype=np.float64),
            temperature=record.temperature,
            elapsed=record.elapsed,
        )
        done = record.step
        if stop.is_set():
            fitting.close()
            break
    return done


def train_steps(
    request: TrainingRequest, stop: threading.Event
) -> Generator[TraceProgress | TrainingUpdate, None, TrainingResult | None]:
    """Extract traces if needed, train (:func:`training_updates`) and embed every frame.

    Yields :class:`TraceProgress` while extracting traces, then :class:`TrainingUpdate` records
    a few times per second. Setting ``stop`` ends the run at the next update and keeps the
    partially trained model. Returns ``None`` if stopped before the first step.
    """
    from napari_cebra import CEBRA
    from napari_cebra.metrics import goodness_of_fit_history

    matrix = yield from neural_matrix_steps(request.neural, stop)
    if matrix is None:
        return None
    matrix = matrix[: request.n_frames]
    n_train = split_point(len(matrix), request.valid_fraction)
    model = CEBRA(**request.params)
    start = time.perf_counter()
    steps_done = yield from training_updates(
        model, matrix[:n_train], [y[:n_train] for y in request.labels], stop
    )
    ended = time.perf_counter()
    if steps_done == 0:
        return None
    embedding = np.asarray(model.transform(matrix), dtype=np.float32)
    history = goodness_of_fit_history(model)
    return TrainingResult(
        model=model,
        embedding=embedding,
        n_train=n_train,
        steps_done=steps_done,
        stopped=steps_done < int(request.params["max_iterations"]),
        seconds=ended - start,
        ended=ended,
        goodness_of_fit=float(np.mean(history[-max(1, len(history) // 10) :])),
    )


def transform_steps(
    model: Any, neural: NeuralInput, stop: threading.Event
) -> Generator[TraceProgress, None, np.ndarray | None]:
    """Extract traces if needed and return ``model.transform`` of every frame."""
    matrix = yield from neural_matrix_steps(neural, stop)
    if matrix is None:
        return None
    return np.asarray(model.transform(matrix), dtype=np.float32)
