"""Consistency runs: one configuration trained with several seeds, compared run against run.

The CEBRA authors' recipe trains 5–10 runs of a configuration on the training part of the recording
and checks that their embeddings agree up to a linear map (``consistency_score(between="runs")``,
R² of a linear regression from one run's embedding to another's) on the training data and on the
held-out validation data. Train consistency in the 90s (%) indicates a stable configuration.

In this process the runs go through ``core.ensemble``, which picks the faster way for the device
(one grouped model on GPUs; on the CPU the channels-last single runs side by side in threads, one
per torch thread); with a dask executor every run is one task on the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cebra.core.progress import run_to_end
from napari_cebra.workflows.executors import TaskDone, close_executor, resolve_executor
from napari_cebra.workflows.splits import split_arrays, train_valid_split


@dataclass
class ConsistencyRuns:
    """Models, embeddings and between-run consistency of one configuration.

    Attributes
    ----------
    models : list of CEBRA
        One fitted model per seed, trained on the training part.
    seeds : list of int
    train_slice, valid_slice : slice
        Frames used for training and validation.
    train_embeddings, valid_embeddings : list of np.ndarray
        Each model's embedding of the training and validation frames (``valid_embeddings`` is
        empty when ``valid_fraction`` is 0).
    train_scores, valid_scores : np.ndarray
        ``consistency_score`` results: one R² per ordered pair of runs.
    pairs : np.ndarray
        ``(k(k-1), 2)`` source and target run of every score.
    train_matrix, valid_matrix : np.ndarray
        ``(k, k)`` R² from run i (row) to run j (column); NaN on the diagonal (and everywhere for
        ``valid_matrix`` without validation data).
    mean_train, mean_valid : float
        Means of the off-diagonal scores (``mean_valid`` is NaN without validation data). A
        collapsed run makes its scores, and so the mean, NaN.
    collapsed : list of int
        Seeds of the runs whose embedding of the training or validation frames is collapsed
        (``core.consistency.is_collapsed``: every frame maps to the same point).
    """

    models: list[Any]
    seeds: list[int]
    train_slice: slice
    valid_slice: slice
    train_embeddings: list[np.ndarray]
    valid_embeddings: list[np.ndarray]
    train_scores: np.ndarray
    valid_scores: np.ndarray
    pairs: np.ndarray
    train_matrix: np.ndarray
    valid_matrix: np.ndarray
    mean_train: float
    mean_valid: float
    collapsed: list[int]


def consistency_runs(
    params: Mapping[str, Any],
    X: Any,
    *y: Any,
    n_runs: int = 5,
    seeds: Sequence[int] | None = None,
    valid_fraction: float = 0.2,
    executor: Any = None,
    progress: Callable[[Any], None] | None = None,
    yield_every: int = 10,
) -> ConsistencyRuns:
    """Train ``n_runs`` seeds of ``params`` on the first part of ``X`` and compare their embeddings.

    Parameters
    ----------
    params : mapping
        ``CEBRA`` parameters without ``seed``.
    X, *y
        Data and labels of one recording (time along the first axis).
    n_runs : int
        Number of runs (at least 2) when ``seeds`` is not given.
    seeds : sequence of int, optional
        The runs' seeds (default ``0 … n_runs - 1``); when given, there is one run per seed.
    valid_fraction : float
        Fraction of frames held out at the end for the validation consistency, in ``[0, 1)``.
    executor : None, "local", str or distributed.Client
        ``None``/``"local"``: one batched ensemble in this process. A dask client or scheduler
        address: one dask task per run.
    progress : callable, optional
        Called with each ``core.ensemble.EnsembleProgress`` record.
    yield_every : int
        Training steps between two progress records of the in-process ensemble (the last step
        is always reported); on an executor there is one record per finished run.

    Returns
    -------
    ConsistencyRuns
    """
    runs = iter_consistency_runs(
        params,
        X,
        *y,
        n_runs=n_runs,
        seeds=seeds,
        valid_fraction=valid_fraction,
        executor=executor,
        yield_every=yield_every,
    )
    return run_to_end(runs, progress)


def iter_consistency_runs(
    params: Mapping[str, Any],
    X: Any,
    *y: Any,
    n_runs: int = 5,
    seeds: Sequence[int] | None = None,
    valid_fraction: float = 0.2,
    executor: Any = None,
    yield_every: int = 10,
) -> Generator[Any, None, ConsistencyRuns]:
    """Generator form of :func:`consistency_runs`: yields ``EnsembleProgress`` records and
    returns the :class:`ConsistencyRuns` (closing it early stops training).

    A GUI that stops the runs between two records passes a small ``yield_every`` (1–5) so that
    a record, and with it the chance to stop, comes several times per second.
    """
    seeds = _resolve_seeds(n_runs, seeds)
    train_arrays, valid_arrays = split_arrays(X, *y, valid_fraction=valid_fraction)
    n_frames = train_arrays[0].shape[0] + valid_arrays[0].shape[0]
    train, valid = train_valid_split(n_frames, valid_fraction)
    resolved = resolve_executor(executor)
    try:
        if resolved.in_process:
            models = yield from _train_in_process(params, train_arrays, seeds, yield_every)
        else:
            models = yield from _train_on_executor(resolved, params, train_arrays, seeds)
    finally:
        if resolved is not executor:
            close_executor(resolved)
    return _compare(models, seeds, train, valid, train_arrays[0], valid_arrays[0])


def _resolve_seeds(n_runs: int, seeds: Sequence[int] | None) -> list[int]:
    if seeds is None:
        if isinstance(n_runs, bool) or not isinstance(n_runs, (int, np.integer)) or n_runs < 2:
            raise ValueError(f"n_runs must be an integer >= 2 to compare runs, got {n_runs!r}.")
        return list(range(int(n_runs)))
    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"Give at least 2 seeds to compare runs, got {seeds!r}.")
    return seeds


def _train_in_process(
    params: Mapping[str, Any],
    arrays: tuple[np.ndarray, ...],
    seeds: list[int],
    yield_every: int,
) -> Generator[Any, None, list[Any]]:
    from napari_cebra.core.ensemble import iter_fit_ensemble, make_ensemble

    models = make_ensemble(params, seeds)
    yield from iter_fit_ensemble(models, *arrays, yield_every=yield_every)
    return models


def _train_on_executor(
    executor: Any, params: Mapping[str, Any], arrays: tuple[np.ndarray, ...], seeds: list[int]
) -> Generator[Any, None, list[Any]]:
    """One task per seed on the executor; yields a record whenever a run finishes."""
    from napari_cebra.core.ensemble import EnsembleProgress, make_ensemble

    make_ensemble(params, seeds)  # checks params and seeds before anything is submitted
    tasks = [{**params, "seed": int(seed)} for seed in seeds]
    models: list[Any] = [None] * len(seeds)
    losses = [float("nan")] * len(seeds)
    per_run = int(params.get("max_iterations", 10000))
    start = time.perf_counter()
    done = 0
    for event in executor.run(_train_run, tasks, arrays):
        if not isinstance(event, TaskDone):
            continue
        done += 1
        models[event.index] = event.result
        losses[event.index] = float(event.result.state_dict_["loss"][-1])
        yield EnsembleProgress(
            step=done * per_run,
            total_steps=len(seeds) * per_run,
            losses=tuple(losses),
            elapsed=time.perf_counter() - start,
            batched=False,
        )
    return models


def _train_run(task: dict[str, Any], arrays: tuple[np.ndarray, ...]) -> Generator[Any, None, Any]:
    """Train ``CEBRA(**task)`` on ``arrays`` (a task function for the executors)."""
    from napari_cebra.core.estimator import CEBRA

    model = CEBRA(**task)
    yield from model.iter_fit(*arrays)
    return model


def _compare(
    models: list[Any],
    seeds: list[int],
    train: slice,
    valid: slice,
    X_train: np.ndarray,
    X_valid: np.ndarray,
) -> ConsistencyRuns:
    from napari_cebra.core.consistency import is_collapsed
    from napari_cebra.metrics import consistency_score

    size = len(models)
    train_embeddings = [model.transform(X_train) for model in models]
    train_scores, pairs, _ = consistency_score(train_embeddings, between="runs")
    has_valid = X_valid.shape[0] > 0
    valid_embeddings = [model.transform(X_valid) for model in models] if has_valid else []
    if has_valid:
        valid_scores, _, _ = consistency_score(valid_embeddings, between="runs")
    else:
        valid_scores = np.full_like(train_scores, np.nan)
    pairs = np.asarray(pairs).reshape(-1, 2)
    return ConsistencyRuns(
        models=models,
        seeds=list(seeds),
        train_slice=train,
        valid_slice=valid,
        train_embeddings=train_embeddings,
        valid_embeddings=valid_embeddings,
        train_scores=np.atleast_1d(train_scores),
        valid_scores=np.atleast_1d(valid_scores),
        pairs=pairs,
        train_matrix=_matrix(train_scores, pairs, size),
        valid_matrix=_matrix(valid_scores, pairs, size),
        mean_train=float(np.mean(train_scores)),
        mean_valid=float(np.mean(valid_scores)) if has_valid else float("nan"),
        collapsed=[
            seed
            for index, seed in enumerate(seeds)
            if is_collapsed(train_embeddings[index])
            or (has_valid and is_collapsed(valid_embeddings[index]))
        ],
    )


def _matrix(scores: np.ndarray, pairs: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` matrix with ``scores`` at ``pairs`` and NaN elsewhere."""
    matrix = np.full((size, size), np.nan)
    matrix[pairs[:, 0].astype(int), pairs[:, 1].astype(int)] = np.atleast_1d(scores)
    return matrix
