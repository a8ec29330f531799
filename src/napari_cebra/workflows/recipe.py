"""The CEBRA authors' best-practice recipe as one call.

Steps (each with the authors' defaults; spec §6, §7, §8 and issue 3):

1. **CEBRA-Time** (offset10-model, batch 512, learning rate 3e-4, temperature 1.12, 3 output
   dimensions, time offset 10) fitted on the training part of a split in time → loss curve,
   goodness of fit (GoF) on the training and the validation part, embedding.
2. **Consistency**: ``n_runs`` seeds of the same configuration; between-run consistency (R²) of
   their train and validation embeddings. The authors expect train consistency in the 90s.
3. **Grid search** over a default grid (16 points; 4 when ``iterations`` is small), ranked by
   validation GoF.
4. **CEBRA-Behavior** (same configuration, ``time_delta`` conditional, temperature 1) with a
   label-shuffle and a neural-shuffle control.
5. **Decoding**: cosine kNN (k = 36) of the behaviour from both embeddings.

Every check gets a verdict ``pass``/``warn``/``fail`` from ``workflows.verdicts`` with the
thresholds in :data:`THRESHOLDS` (defined there, importable from here too).
:func:`iter_recipe` yields :class:`RecipeProgress` records (stoppable between yields) and returns
the results dict; :func:`run_recipe` runs it to the end. The results dict is JSON-able and is what
:func:`napari_cebra.workflows.report.write_report` renders. Nothing is written to disk except the
grid-search models, which live in a temporary folder (``napari-cebra-grid-*``) removed at the end,
also when the run is stopped (the generator closed, Ctrl-C, or SIGTERM turned into an exception
as ``python -m napari_cebra`` does), unless ``models_dir`` is given.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_cebra.core.progress import run_to_end
from napari_cebra.workflows.controls import (
    ControlResult,
    TrainedModel,
    iter_label_shuffle_control,
    iter_neural_shuffle_control,
    iter_train_and_score,
)
from napari_cebra.workflows.decoding import decode_behaviour
from napari_cebra.workflows.presets import (
    BEHAVIOUR_PARAMS,
    DEFAULT_GRID,
    SMALL_GRID,
    TIME_PARAMS,
)
from napari_cebra.workflows.report import to_jsonable
from napari_cebra.workflows.verdicts import (
    THRESHOLDS,
    check,
    consistency_check,
    decoding_check,
    gof_checks,
    grid_check,
    overall_verdict,
)

SMALL_GRID_BELOW = 1000
GRID_FOLDER_PREFIX = "napari-cebra-grid-"

DECODING_NEIGHBOURS = 36
PREVIEW_POINTS = 2000


@dataclass(frozen=True)
class RecipeProgress:
    """Where a recipe run stands.

    Attributes
    ----------
    stage : str
        Name of the running stage (e.g. ``"CEBRA-Time"``).
    stage_index, n_stages : int
        1-based number of the stage and the number of stages.
    step, total_steps : int
        Progress inside the stage (0/0 when unknown).
    message : str
        One line for a status bar or a console.
    elapsed : float
        Seconds since the recipe started.
    """

    stage: str
    stage_index: int
    n_stages: int
    step: int
    total_steps: int
    message: str
    elapsed: float


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf values (first in row "
            f"{int(np.argwhere(bad)[0][0])}); shape {array.shape}."
        )


def _check_inputs(neural: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
    data = np.asarray(neural, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"neural must be a 2-D (time, neurons) matrix, got shape {data.shape}.")
    _check_finite(data, "neural")
    if labels is None:
        return data, None
    behaviour = np.asarray(labels)
    if behaviour.ndim not in (1, 2):
        raise ValueError(
            f"labels must be 1-D or 2-D (time[, columns]), got shape {behaviour.shape}."
        )
    if len(behaviour) != len(data):
        raise ValueError(
            f"labels have {len(behaviour)} frames but neural has {len(data)} (shapes "
            f"{behaviour.shape} and {data.shape})."
        )
    if not np.issubdtype(behaviour.dtype, np.floating):
        behaviour = behaviour.astype(np.float32)
    _check_finite(behaviour, "labels")
    return data, behaviour


def _preview(
    embedding: np.ndarray, colour: np.ndarray | None, frames: np.ndarray
) -> dict[str, Any]:
    """At most PREVIEW_POINTS evenly spaced embedding points (for the report's scatter plots)."""
    keep = np.unique(
        np.linspace(0, len(embedding) - 1, min(PREVIEW_POINTS, len(embedding))).astype(int)
    )
    return {
        "frames": frames[keep].tolist(),
        "embedding": np.round(embedding[keep], 4).tolist(),
        "colour": None if colour is None else np.round(colour[keep], 4).tolist(),
    }


def _first_column(labels: np.ndarray | None) -> np.ndarray | None:
    if labels is None:
        return None
    return labels if labels.ndim == 1 else labels[:, 0]


def _model_section(
    trained: TrainedModel, labels: np.ndarray | None, valid: slice, params: Mapping[str, Any]
) -> dict[str, Any]:
    frames = np.arange(valid.start, valid.stop)
    colour = None if labels is None else _first_column(labels)[valid]
    return {
        "status": "done",
        "params": dict(params),
        **trained.summary(),
        "temperature": list(map(float, trained.model.state_dict_["log"]["temperature"])),
        "embedding_preview": _preview(trained.valid_embedding, colour, frames),
    }


def _control_check(result: ControlResult) -> dict[str, Any]:
    title = "Label-shuffle control" if result.kind == "label_shuffle" else "Neural-shuffle control"
    return check(result.kind, title, result.verdict, result.reason, result.control.gof_train)


def _skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


class _Stages:
    """Numbering and timing of the recipe's stages for progress records."""

    def __init__(self, names: list[str]):
        self.names = names
        self.start = time.perf_counter()

    def record(self, stage: str, step: int = 0, total: int = 0, detail: str = "") -> RecipeProgress:
        index = self.names.index(stage) + 1
        counter = f" {step}/{total}" if total else ""
        message = f"[{index}/{len(self.names)}] {stage}{counter}{(': ' + detail) if detail else ''}"
        return RecipeProgress(
            stage, index, len(self.names), step, total, message, time.perf_counter() - self.start
        )


def _relay(
    stages: _Stages, stage: str, records: Generator[Any, None, Any]
) -> Generator[RecipeProgress, None, Any]:
    """Re-yield a sub-generator's progress records as RecipeProgress; return its value.

    Closing this generator closes the sub-generator, which stops its work."""
    try:
        while True:
            try:
                record = next(records)
            except StopIteration as finished:
                return finished.value
            step = int(getattr(record, "step", 0) or 0)
            total = int(getattr(record, "total_steps", 0) or 0)
            yield stages.record(stage, step, total, str(getattr(record, "stage", "")))
    finally:
        records.close()


def _consistency_stage(
    stages: _Stages,
    params: Mapping[str, Any],
    data: np.ndarray,
    n_runs: int,
    seed: int,
    valid_fraction: float,
) -> Generator[RecipeProgress, None, dict[str, Any]]:
    """Train ``n_runs`` seeds (``core.ensemble``) and compare their embeddings."""
    from napari_cebra.workflows.consistency_runs import iter_consistency_runs

    seeds = list(range(seed, seed + n_runs))
    runs = yield from _relay(
        stages,
        "consistency runs",
        iter_consistency_runs(params, data, seeds=seeds, valid_fraction=valid_fraction),
    )
    return {
        "status": "done",
        "n_runs": n_runs,
        "seeds": seeds,
        "train": {"matrix": runs.train_matrix, "mean": runs.mean_train},
        "valid": {"matrix": runs.valid_matrix, "mean": runs.mean_valid},
        "collapsed": list(runs.collapsed),
        "final_losses": [float(model.state_dict_["loss"][-1]) for model in runs.models],
    }


def _grid_stage(
    stages: _Stages,
    params: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    data: np.ndarray,
    valid_fraction: float,
    models_dir: str | None,
    gof_batches: int,
) -> Generator[RecipeProgress, None, dict[str, Any]]:
    """Grid search around ``params``, ranked by validation goodness of fit."""
    from napari_cebra.workflows.grid_search import GridSearch, split_parameters

    search = GridSearch(gof_batches=gof_batches, yield_every=max(1, params["max_iterations"] // 20))
    folder = models_dir or tempfile.mkdtemp(prefix=GRID_FOLDER_PREFIX)
    sweep = search.iter_fit_models(
        {"recording": data}, {**params, **grid}, folder, valid_fraction=valid_fraction
    )
    try:
        for record in sweep:
            detail = f"model {record.models_done + 1}/{record.n_models} {record.name}"
            yield stages.record("grid search", record.step, record.total_steps, detail)
        table = search.get_df_results()
    finally:
        sweep.close()
        if models_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    rows = table.drop(columns=["dataset_name"]).to_dict(orient="records")
    best = max(rows, key=lambda row: row["gof_valid"])
    fixed, varied = split_parameters(grid)
    return {
        "status": "done",
        "scoring": "gof_valid",
        "varied": varied,
        "fixed": fixed,
        "results": rows,
        "best": {
            "name": best["name"],
            "params": {key: best[key] for key in varied},
            "gof_valid": best["gof_valid"],
        },
    }


def iter_recipe(
    neural: Any,
    labels: Any = None,
    *,
    iterations: int = 5000,
    n_runs: int = 5,
    grid: Mapping[str, list[Any]] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    models_dir: str | None = None,
    gof_batches: int = 100,
    model_params: Mapping[str, Any] | None = None,
) -> Generator[RecipeProgress, None, dict[str, Any]]:
    """Generator form of :func:`run_recipe`: yields progress, returns the results dict."""
    from napari_cebra import __version__
    from napari_cebra.workflows.splits import train_valid_split

    data, behaviour = _check_inputs(neural, labels)
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}.")
    if n_runs < 2:
        raise ValueError(f"n_runs must be at least 2 to compare runs, got {n_runs}.")
    if not 0 < valid_fraction < 1:
        raise ValueError(
            f"valid_fraction must be in (0, 1): the recipe needs a validation part, got "
            f"{valid_fraction}."
        )
    grid = dict(
        grid
        if grid is not None
        else (SMALL_GRID if iterations < SMALL_GRID_BELOW else DEFAULT_GRID)
    )
    overrides = dict(model_params or {})
    time_params = {**TIME_PARAMS, **overrides, "max_iterations": iterations}
    behaviour_params = {**BEHAVIOUR_PARAMS, **overrides, "max_iterations": iterations}
    train, valid = train_valid_split(len(data), valid_fraction)
    n_train = train.stop - train.start
    for params in (time_params, behaviour_params):  # a batch cannot exceed the training part
        if params.get("batch_size") is not None and params["batch_size"] > n_train:
            params["batch_size"] = n_train

    names = ["CEBRA-Time", "consistency runs", "grid search"]
    if behaviour is not None:
        names += ["CEBRA-Behavior and label shuffle", "neural shuffle", "decoding"]
    stages = _Stages(names)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {
        "napari_cebra_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": {
            "n_frames": int(data.shape[0]),
            "n_neurons": int(data.shape[1]),
            "labels_shape": None if behaviour is None else list(behaviour.shape),
            "train_frames": [train.start, train.stop],
            "valid_frames": [valid.start, valid.stop],
        },
        "settings": {
            "iterations": iterations,
            "n_runs": n_runs,
            "valid_fraction": valid_fraction,
            "seed": seed,
            "time_params": time_params,
            "behaviour_params": behaviour_params,
            "grid": grid,
            "thresholds": THRESHOLDS,
            "gof_batches": gof_batches,
        },
    }
    checks: list[dict[str, Any]] = []

    # 1. CEBRA-Time
    began = time.perf_counter()
    time_model = yield from _relay(
        stages,
        "CEBRA-Time",
        iter_train_and_score(
            time_params,
            data,
            seed=seed,
            valid_fraction=valid_fraction,
            stage="training",
            start=stages.start,
            gof_batches=gof_batches,
        ),
    )
    results["time_model"] = _model_section(time_model, behaviour, valid, time_params)
    checks += gof_checks("time", "CEBRA-Time", results["time_model"])
    timings["time_model"] = time.perf_counter() - began

    # 2. consistency runs
    began = time.perf_counter()
    results["consistency"] = yield from _consistency_stage(
        stages, time_params, data, n_runs, seed, valid_fraction
    )
    checks.append(consistency_check("train", results["consistency"]["train"]["mean"]))
    checks.append(consistency_check("valid", results["consistency"]["valid"]["mean"]))
    timings["consistency"] = time.perf_counter() - began

    # 3. grid search
    began = time.perf_counter()
    results["grid_search"] = yield from _grid_stage(
        stages, time_params, grid, data, valid_fraction, models_dir, gof_batches
    )
    checks.append(grid_check(results["grid_search"], time_params))
    timings["grid_search"] = time.perf_counter() - began

    # 4.-6. CEBRA-Behavior, controls, decoding
    if behaviour is None:
        reason = "no behaviour labels were given"
        results["behaviour_model"] = _skipped(reason)
        results["controls"] = {
            "label_shuffle": _skipped(reason),
            "neural_shuffle": _skipped(reason),
        }
        results["decoding"] = _skipped(reason)
    else:
        began = time.perf_counter()
        common = {"seed": seed, "valid_fraction": valid_fraction, "gof_batches": gof_batches}
        label_control = yield from _relay(
            stages,
            "CEBRA-Behavior and label shuffle",
            iter_label_shuffle_control(behaviour_params, data, behaviour, **common),
        )
        neural_control = yield from _relay(
            stages,
            "neural shuffle",
            iter_neural_shuffle_control(
                behaviour_params, data, behaviour, real=label_control.real, **common
            ),
        )
        results["behaviour_model"] = _model_section(
            label_control.real, behaviour, valid, behaviour_params
        )
        results["controls"] = {
            "label_shuffle": label_control.summary(),
            "neural_shuffle": neural_control.summary(),
        }
        checks += gof_checks("behaviour", "CEBRA-Behavior", results["behaviour_model"])
        checks += [_control_check(label_control), _control_check(neural_control)]
        timings["behaviour_and_controls"] = time.perf_counter() - began

        began = time.perf_counter()
        yield stages.record("decoding")
        results["decoding"] = _decoding_stage(
            label_control.real, time_model, behaviour, train, valid
        )
        checks.append(decoding_check(results["decoding"]["behaviour_model"]))
        timings["decoding"] = time.perf_counter() - began

    timings["total"] = time.perf_counter() - stages.start
    results["checks"] = checks
    results["verdict"] = overall_verdict(c["verdict"] for c in checks)
    results["timings"] = timings
    return to_jsonable(results)


def _decoding_stage(
    behaviour_model: TrainedModel,
    time_model: TrainedModel,
    labels: np.ndarray,
    train: slice,
    valid: slice,
) -> dict[str, Any]:
    """kNN decoding (k = 36, cosine) of the labels from both models' embeddings."""
    section: dict[str, Any] = {"status": "done", "n_neighbors": DECODING_NEIGHBOURS}
    for name, trained in (("behaviour_model", behaviour_model), ("time_model", time_model)):
        decoded = decode_behaviour(
            trained.train_embedding,
            trained.valid_embedding,
            labels[train],
            labels[valid],
            n_neighbors=DECODING_NEIGHBOURS,
        )
        section[name] = decoded.summary()
    return section


def run_recipe(
    neural: Any,
    labels: Any = None,
    *,
    iterations: int = 5000,
    n_runs: int = 5,
    grid: Mapping[str, list[Any]] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    models_dir: str | None = None,
    gof_batches: int = 100,
    model_params: Mapping[str, Any] | None = None,
    progress: Callable[[RecipeProgress], None] | None = None,
) -> dict[str, Any]:
    """Run the authors' best-practice recipe and return every number as a JSON-able dict.

    Parameters
    ----------
    neural : array-like, (T, n)
        Neural activity, rows are time points.
    labels : array-like, (T,) or (T, k), optional
        Behaviour; without it the CEBRA-Behavior, control and decoding steps are skipped.
    iterations : int
        Training steps of every model (the recipe uses 5,000).
    n_runs : int
        Seeds of the consistency runs (5–10 recommended).
    grid : dict, optional
        Parameters to vary in the grid search (lists of values); default :data:`DEFAULT_GRID`,
        or :data:`SMALL_GRID` when ``iterations < SMALL_GRID_BELOW``. A single value is a
        setting of every grid point, e.g. ``"batch_size": None`` trains the grid full batch as
        cebra's grid-search example does (its models are ranked by their full-batch goodness of
        fit on the validation frames).
    valid_fraction : float
        Last part of the recording held out for validation.
    seed : int
        Seed of the first model; consistency runs use ``seed … seed + n_runs - 1``.
    models_dir : str, optional
        Keep the grid-search models there (resumable); default a temporary folder removed at
        the end.
    gof_batches : int
        Batches per goodness-of-fit score.
    model_params : dict, optional
        ``CEBRA`` parameters replacing the recipe's (:data:`TIME_PARAMS`) in every model, e.g.
        ``{"batch_size": 256, "device": "cpu"}``.
    progress : callable, optional
        Receives each :class:`RecipeProgress` record.

    Returns
    -------
    dict
        Sections ``input``, ``settings``, ``time_model``, ``consistency``, ``grid_search``,
        ``behaviour_model``, ``controls``, ``decoding``, ``checks``, ``verdict``, ``timings``.
    """
    steps = iter_recipe(
        neural,
        labels,
        iterations=iterations,
        n_runs=n_runs,
        grid=grid,
        valid_fraction=valid_fraction,
        seed=seed,
        models_dir=models_dir,
        gof_batches=gof_batches,
        model_params=model_params,
    )
    # closed at once when run_to_end raises (Ctrl-C, SIGTERM, a failing progress callable), so
    # that the temporary grid-search folder is removed now, not when the generator is collected
    with contextlib.closing(steps):
        return run_to_end(steps, progress)
