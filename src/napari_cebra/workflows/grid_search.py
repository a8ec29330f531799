"""Grid search over CEBRA parameters, compatible with ``cebra.grid_search.GridSearch`` (spec §7).

Beyond the reference:

* string parameters (``model_architecture``, ``conditional``, …) can be varied;
* every model is written to ``models_dir`` as soon as it is trained, with an index of results
  (``grid_results.json``); both writes are atomic (temporary file + ``os.replace``), so an
  interrupted sweep leaves only complete files behind, and a rerun trains only the models that are
  missing (a model counts as present when the index records the same configuration and the same
  data and its file exists);
* one folder can hold many sweeps: a model file's name carries a hash of its configuration (all
  parameters and the dataset name) and a hash of its data (the training and validation arrays),
  so the same dataset name with other data or another grid gets new files; the index is merged
  (entries keyed by file name, entries whose file is gone are dropped), never rewritten from one
  sweep alone, and every read-merge-write holds the folder's lock (``fcntl.flock`` on
  ``grid_results.json.lock``; where there is no ``fcntl``, as on Windows, an exclusively created
  ``grid_results.json.lock.held``), so sweeps running into one folder at the same time keep each
  other's entries;
* index entries that are malformed or whose ``file`` resolves outside the folder (``../``,
  absolute paths, symbolic links out) are refused: :meth:`GridSearch.load` skips them with a
  :class:`GridIndexWarning`; a sweep moves the index aside (``grid_results.json.broken-<time>``)
  and rewrites it without them. An index that is not valid JSON of a known format raises
  :class:`GridIndexError` when read, and a sweep moves it aside and starts a new one (the model
  files stay); both say where the old file went;
* a model's name is its file's stem, ``"{varied parameters}_{dataset}@{hash}"`` (16 hex digits:
  8 of the configuration's hash, 8 of the data's), so names are unique in a folder however many
  sweeps share it, and ``CEBRA.load(Path(models_dir) / f"{name}.pt")`` (as cebra's notebooks do
  with :meth:`GridSearch.get_best_model`'s name) opens the model;
* the table has the goodness of fit in bits on the training data (``gof``) and, when validation data
  are given (a dict or ``valid_fraction``), on the validation data (``gof_valid``); dataset names
  are kept intact;
* models can be trained on a dask cluster (``executor=``), see ``docs/cluster.md``;
* :meth:`GridSearch.iter_fit_models` yields progress records and can be stopped between them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import math
import numbers
import os
import re
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.core.files import replace_file_atomically
from napari_cebra.core.progress import run_to_end
from napari_cebra.core.validation import check_positive_int
from napari_cebra.workflows.executors import (
    LocalExecutor,
    TaskDone,
    TaskProgress,
    close_executor,
    resolve_executor,
)
from napari_cebra.workflows.splits import split_arrays

try:
    import fcntl
except ImportError:  # Windows: the index lock is an exclusively created file
    fcntl = None

RESULTS_FILE = "grid_results.json"
LOCK_FILE = "grid_results.json.lock"
HELD_LOCK_FILE = "grid_results.json.lock.held"
LOCK_TIMEOUT = 60.0
RESULTS_FORMAT = 2
READABLE_FORMATS = (1, 2)
SCORINGS = ("infonce_loss", "gof", "gof_valid")
_MAX_STEM = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NUMBER = (int, float, type(None))
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "dataset_name": str,
    "params": dict,
    "file": str,
    "fingerprint": str,
    "data_fingerprint": str,
    "iterations": int,
    "loss": _NUMBER,
    "gof": _NUMBER,
    "gof_valid": _NUMBER,
    "train_time": _NUMBER,
}


class GridIndexError(ValueError):
    """A ``grid_results.json`` that is not a grid-search index this package can read.

    Attributes
    ----------
    path : pathlib.Path
        The index file.
    reason : str
        What is wrong with it.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} is not a readable grid-search index ({reason}). Move or delete it; a sweep "
            "into this folder moves it aside by itself."
        )
        self.path = path
        self.reason = reason


class GridIndexWarning(UserWarning):
    """Index entries were refused, or a broken index was moved aside."""


@dataclass(frozen=True)
class GridProgress:
    """Where a grid search stands; yielded by :meth:`GridSearch.iter_fit_models`.

    Attributes
    ----------
    name : str
        Name of the model the record is about (its file's stem,
        ``"{model_name}_{dataset_name}@{hash}"``).
    key : str
        Its grid point in this sweep, ``"{model_name}_{dataset_name}"`` (``model_name`` from
        :meth:`GridSearch.generate_models`); a model found in the folder may carry the name
        an earlier sweep gave it, but its key is this sweep's.
    dataset_name : str
        Its dataset.
    status : {"training", "done", "present"}
        ``"training"``: a step record of the model being trained (in-process only); ``"done"``: the
        model was trained and saved; ``"present"``: it was found in ``models_dir`` and not
        retrained.
    step, total_steps : int
        Training steps of this model done and planned.
    loss : float
        Latest (or final) training loss of this model.
    models_done : int
        Models finished or found so far.
    n_models : int
        Models in the sweep (configurations × datasets).
    elapsed : float
        Seconds since the sweep started.
    """

    name: str
    key: str
    dataset_name: str
    status: str
    step: int
    total_steps: int
    loss: float
    models_done: int
    n_models: int
    elapsed: float


@dataclass(frozen=True)
class _GridTask:
    """One model to train: everything a worker needs besides the data."""

    name: str
    model_name: str
    dataset_name: str
    params: dict[str, Any]
    varied: dict[str, Any]
    path: str
    fingerprint: str
    data_fingerprint: str
    gof_batches: int
    yield_every: int


@dataclass
class _Datasets:
    """Training and optional validation data per dataset name (shipped to workers once)."""

    train: dict[str, tuple[Any, ...]]
    valid: dict[str, tuple[Any, ...]] = field(default_factory=dict)


class GridSearch:
    """Train every combination of the varied parameters on every dataset and compare the models.

    Parameters
    ----------
    gof_batches : int
        Batches used for each goodness-of-fit score (``goodness_of_fit_score(num_batches=...)``).
    yield_every : int
        Training steps between progress records of :meth:`iter_fit_models`.

    Attributes
    ----------
    models : dict
        Fitted models (``CEBRA``) by name ``"{model_name}_{dataset_name}"``; models found in
        ``models_dir`` are loaded when first needed.
    parameter_grid : list of dict
        The varied parameters of every configuration.
    models_dir : pathlib.Path or None
        Directory of the last sweep.
    """

    def __init__(self, gof_batches: int = 500, yield_every: int = 50) -> None:
        for label, value in (("gof_batches", gof_batches), ("yield_every", yield_every)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}.")
        self.gof_batches = int(gof_batches)
        self.yield_every = int(yield_every)
        self.models: dict[str, Any] = {}
        self.parameter_grid: list[dict[str, Any]] = []
        self.models_dir: Path | None = None
        self._records: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------------------------------
    # the grid
    # ------------------------------------------------------------------------------------------

    def generate_models(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict]]:
        """Build one unfitted ``CEBRA`` per combination of the varied parameters.

        Parameters
        ----------
        params : mapping
            ``CEBRA`` parameters. A scalar, string, tuple or one-element list is a fixed value; a
            list of two or more values (numbers, strings, booleans, ``None`` or tuples) is varied.

        Returns
        -------
        models : dict
            ``CEBRA`` estimators by model name (``"{param}_{value}"`` joined by ``_`` over the
            varied parameters in sorted order; ``""`` when nothing is varied).
        parameter_grid : list of dict
            The varied parameters of each model, in the same order.

        Raises
        ------
        ValueError
            For dicts, arrays or tensors as values, or nested lists.
        """
        from napari_cebra.core.estimator import CEBRA

        fixed, varied = split_parameters(params)
        grid = _parameter_grid(varied)
        models = {}
        for point in grid:
            models[_model_name(point)] = CEBRA(**fixed, **point)
        return models, grid

    # ------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------

    def fit_models(
        self,
        datasets: Mapping[str, Any],
        params: Mapping[str, Any],
        models_dir: str | os.PathLike = "saved_models",
        *,
        valid_datasets: Mapping[str, Any] | None = None,
        valid_fraction: float | None = None,
        executor: Any = None,
        workers: int | None = None,
        progress: Callable[[GridProgress], None] | None = None,
    ) -> GridSearch:
        """Train (or find) every model of the grid on every dataset.

        Parameters
        ----------
        datasets : mapping
            Dataset name → ``X`` or ``(X, *labels)``.
        params : mapping
            Parameters as for :meth:`generate_models`.
        models_dir : str or path
            Where models and ``grid_results.json`` are written (and looked up to resume). The
            folder may hold other sweeps (other grids, datasets or data): their models and index
            entries are kept.
        valid_datasets : mapping, optional
            Dataset name → ``X_valid`` or ``(X_valid, *labels_valid)``: scored as ``gof_valid``.
        valid_fraction : float, optional
            Instead of ``valid_datasets``: hold out the last fraction of each dataset (in time).
        executor : None, "local", str or distributed.Client
            Where to train, see ``workflows.executors.resolve_executor``.
        workers : int, optional
            Models trained at the same time in this process (``executor`` None or ``"local"``),
            each in its own thread with ``torch.get_num_threads() // workers`` torch threads;
            every model equals the one a one-after-another sweep trains with that many torch
            threads. ``None`` (default): one per torch thread (at most one per model) when every
            model trains on the CPU with a channels-last program (``core.fast``: every plain
            ``offset*-model``), whose single runs do not use several cores well; else ``1``, one
            after the other.
        progress : callable, optional
            Called with every :class:`GridProgress` record.

        Returns
        -------
        GridSearch
            ``self``.

        Raises
        ------
        TimeoutError
            Only without ``fcntl`` (Windows): the folder's lock file stayed taken for
            :data:`LOCK_TIMEOUT` seconds (the message names it).

        Warns
        -----
        GridIndexWarning
            The folder's index was unreadable or held refused entries; it was moved aside (the
            message says where).
        """
        steps = self.iter_fit_models(
            datasets,
            params,
            models_dir,
            valid_datasets=valid_datasets,
            valid_fraction=valid_fraction,
            executor=executor,
            workers=workers,
        )
        run_to_end(steps, progress)
        return self

    def iter_fit_models(
        self,
        datasets: Mapping[str, Any],
        params: Mapping[str, Any],
        models_dir: str | os.PathLike = "saved_models",
        *,
        valid_datasets: Mapping[str, Any] | None = None,
        valid_fraction: float | None = None,
        executor: Any = None,
        workers: int | None = None,
    ) -> Generator[GridProgress, None, None]:
        """Generator form of :meth:`fit_models`.

        Closing the generator stops the sweep; every model finished so far stays in
        ``models_dir`` and in the index, and a rerun continues with the missing ones. Models
        trained side by side (``workers``) report their records interleaved, each under its own
        ``name``.
        """
        if workers is not None:
            check_positive_int("workers", workers, "or None to choose")
        local = executor is None or executor == "local"
        if not local and workers is not None:
            raise ValueError(
                f"workers={workers!r} applies to training in this process; leave it None with "
                f"executor={executor!r}."
            )
        data = _prepare_datasets(datasets, valid_datasets, valid_fraction)
        directory = Path(models_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.models_dir = directory
        models, self.parameter_grid = self.generate_models(params)
        with _index_lock(directory):
            entries = _entries_for_update(directory)
            tasks, present, order = self._plan(models, data, directory, entries)
            _write_merged_index(directory, entries, present)
        self._records = {record["name"]: record for record in present}
        self.models = dict.fromkeys(self._records)
        start = time.perf_counter()
        n_models = len(tasks) + len(present)
        done = len(present)
        for record in present:
            yield self._progress(record, "present", done, n_models, start)
        if local:
            resolved = LocalExecutor(_local_workers(tasks, data) if workers is None else workers)
        else:
            resolved = resolve_executor(executor)
        try:
            for event in resolved.run(_train_task, tasks, data):
                task = tasks[event.index]
                if isinstance(event, TaskProgress):
                    step = event.record
                    yield GridProgress(
                        name=task.name,
                        key=f"{task.model_name}_{task.dataset_name}",
                        dataset_name=task.dataset_name,
                        status="training",
                        step=step.step,
                        total_steps=step.total_steps,
                        loss=step.total,
                        models_done=done,
                        n_models=n_models,
                        elapsed=time.perf_counter() - start,
                    )
                elif isinstance(event, TaskDone):
                    done += 1
                    self._records[task.name] = event.result
                    self._records = {n: self._records[n] for n in order if n in self._records}
                    self.models[task.name] = None
                    self._write_index()
                    yield self._progress(event.result, "done", done, n_models, start)
        finally:
            if resolved is not executor:
                close_executor(resolved)

    def _plan(
        self,
        models: dict[str, Any],
        data: _Datasets,
        directory: Path,
        entries: dict[str, dict[str, Any]],
    ) -> tuple[list[_GridTask], list[dict[str, Any]], list[str]]:
        """Tasks still to train, records of the models already present in ``directory`` (named
        as in this sweep), and all names in grid order."""
        found = {
            (entry["fingerprint"], entry["data_fingerprint"]): entry
            for entry in entries.values()
            if (directory / entry["file"]).is_file()
        }
        tasks, present, names = [], [], []
        readables: set[str] = set()
        for dataset_name, arrays in data.train.items():
            data_fingerprint = _data_fingerprint(arrays, data.valid.get(dataset_name))
            for (model_name, model), point in zip(models.items(), self.parameter_grid, strict=True):
                readable = f"{model_name}_{dataset_name}"
                if readable in readables:
                    raise ValueError(
                        f"Two models of the sweep are both named {readable!r}; rename dataset "
                        f"{dataset_name!r}."
                    )
                readables.add(readable)
                model_params = model.get_params()
                fingerprint = _fingerprint(model_params, dataset_name)
                entry = found.get((fingerprint, data_fingerprint))
                if entry is not None:
                    name = Path(entry["file"]).stem
                    names.append(name)
                    renamed = {"name": name, "model_name": model_name, "params": dict(point)}
                    present.append({**entry, **renamed})
                    continue
                path = directory / _file_name(
                    model_name, dataset_name, fingerprint, data_fingerprint
                )
                name = path.stem
                names.append(name)
                tasks.append(
                    _GridTask(
                        name=name,
                        model_name=model_name,
                        dataset_name=dataset_name,
                        params=model_params,
                        varied=dict(point),
                        path=str(path),
                        fingerprint=fingerprint,
                        data_fingerprint=data_fingerprint,
                        gof_batches=self.gof_batches,
                        yield_every=self.yield_every,
                    )
                )
        return tasks, present, names

    def _progress(
        self, record: dict[str, Any], status: str, done: int, n_models: int, start: float
    ) -> GridProgress:
        return GridProgress(
            name=record["name"],
            key=f"{record['model_name']}_{record['dataset_name']}",
            dataset_name=record["dataset_name"],
            status=status,
            step=record["iterations"],
            total_steps=record["iterations"],
            loss=record["loss"],
            models_done=done,
            n_models=n_models,
            elapsed=time.perf_counter() - start,
        )

    def _write_index(self) -> None:
        """Merge this sweep's records (models found or trained so far) into the folder's index."""
        assert self.models_dir is not None
        with _index_lock(self.models_dir):
            entries = _entries_for_update(self.models_dir)
            _write_merged_index(self.models_dir, entries, self._records.values())

    # ------------------------------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------------------------------

    def load(self, dir: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read a sweep from ``dir`` (its ``grid_results.json`` and model files).

        Entries the index refuses (malformed, or a ``file`` outside ``dir``) are skipped with a
        :class:`GridIndexWarning`. Models are named by their file's stem (sweeps of one dataset
        name on different data, or with other fixed parameters, differ in the hash).

        Returns
        -------
        models : dict
            Fitted ``CEBRA`` by name.
        parameter_grid : list of dict
            The varied parameters of each model, in the order of ``models`` (as cebra's).

        Raises
        ------
        GridIndexError
            If the index is not valid JSON of a known format (a ``ValueError``).
        ValueError
            If ``dir`` has no results index or a listed model file is missing.
        """
        directory = Path(dir)
        if not (directory / RESULTS_FILE).is_file():
            raise ValueError(
                f"{directory} holds no {RESULTS_FILE}: it is not a grid-search folder."
            )
        entries, refused = _read_index(directory)
        if refused:
            warnings.warn(
                f"{directory / RESULTS_FILE}: ignored {_refusals(refused)}.",
                GridIndexWarning,
                stacklevel=2,
            )
        self.models_dir = directory
        self._records = {
            Path(entry["file"]).stem: {**entry, "name": Path(entry["file"]).stem}
            for entry in entries.values()
        }
        self.parameter_grid = [dict(record["params"]) for record in self._records.values()]
        self.models = {name: None for name in self._records}
        for name in self._records:
            self._model(name)
        return dict(self.models), self.parameter_grid

    def _model(self, name: str) -> Any:
        """The fitted model ``name``, loaded from its file on first use."""
        from napari_cebra.core.estimator import CEBRA

        if self.models.get(name) is None:
            path = self._directory() / self._records[name]["file"]
            if not path.is_file():
                raise ValueError(f"The model file {path} of {name!r} is missing.")
            self.models[name] = CEBRA.load(path)
        return self.models[name]

    def _directory(self, models_dir: str | os.PathLike | None = None) -> Path:
        if models_dir is not None:
            if self.models_dir is None or Path(models_dir) != self.models_dir:
                self.load(models_dir)
            return Path(models_dir)
        if self.models_dir is None:
            raise ValueError(
                "No grid search has been fitted or loaded yet: call fit_models or load."
            )
        return self.models_dir

    def get_df_results(self, models_dir: str | os.PathLike | None = None) -> Any:
        """One row per model: the varied parameters, ``loss``, ``gof``, ``gof_valid`` (when
        validation data were given), ``dataset_name`` and ``train_time`` (seconds).

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        self._directory(models_dir)
        varied = sorted({key for record in self._records.values() for key in record["params"]})
        with_valid = any(r.get("gof_valid") is not None for r in self._records.values())
        rows = []
        for record in self._records.values():
            row = {"name": record["name"]}
            row.update({key: record["params"].get(key) for key in varied})
            row["loss"] = record["loss"]
            row["gof"] = record["gof"]
            if with_valid:
                row["gof_valid"] = record.get("gof_valid")
            row["dataset_name"] = record["dataset_name"]
            row["train_time"] = record["train_time"]
            rows.append(row)
        columns = ["name", *varied, "loss", "gof", *(["gof_valid"] if with_valid else [])]
        return pd.DataFrame(rows, columns=[*columns, "dataset_name", "train_time"])

    def get_best_model(
        self,
        scoring: str = "infonce_loss",
        dataset_name: str | None = None,
        models_dir: str | os.PathLike | None = None,
    ) -> tuple[Any, str]:
        """The best model by ``scoring``.

        Parameters
        ----------
        scoring : {"infonce_loss", "gof", "gof_valid"}
            Lowest final training loss (the reference's choice), highest goodness of fit on the
            training data, or highest goodness of fit on the validation data.
        dataset_name : str, optional
            Only models of this dataset (exact name).
        models_dir : str or path, optional
            Read the sweep from this folder first.

        Returns
        -------
        model : CEBRA
        name : str

        Raises
        ------
        NotImplementedError
            For another scoring.
        ValueError
            If no model matches, or ``gof_valid`` is asked for without validation scores.
        """
        if scoring not in SCORINGS:
            raise NotImplementedError(
                f"scoring={scoring!r} is not supported; use one of {SCORINGS}."
            )
        self._directory(models_dir)
        records = [
            r
            for r in self._records.values()
            if dataset_name is None or r["dataset_name"] == dataset_name
        ]
        if not records:
            known = sorted({r["dataset_name"] for r in self._records.values()})
            raise ValueError(f"No model of dataset {dataset_name!r}; datasets: {known}.")
        key, sign = {"infonce_loss": ("loss", 1.0), "gof": ("gof", -1.0)}.get(
            scoring, ("gof_valid", -1.0)
        )
        scored = [r for r in records if _is_number(r.get(key))]
        if not scored:
            raise ValueError(
                f"No model has a {key!r} score; gof_valid needs validation data "
                "(valid_datasets or valid_fraction in fit_models)."
            )
        best = min(scored, key=lambda r: sign * r[key])
        return self._model(best["name"]), best["name"]

    def plot_loss_comparison(self, **kwargs: Any) -> Any:
        """Loss curves of all models (``compare_models``); keyword arguments are passed on."""
        from napari_cebra.workflows.plotting import compare_models

        names = list(self._records)
        models = [self._model(name) for name in names]
        kwargs.setdefault("labels", names)
        return compare_models(models, **kwargs)


# ----------------------------------------------------------------------------------------------
# training one grid point (runs in this process or on a dask worker)
# ----------------------------------------------------------------------------------------------


def _local_workers(tasks: list[_GridTask], data: _Datasets) -> int:
    """Models to train side by side in this process: one per torch thread (at most one per
    model) when every model trains on the CPU with a channels-last program, else one."""
    if len(tasks) < 2:
        return 1
    import torch

    if all(_channels_last_on_cpu(task, data) for task in tasks):
        return min(len(tasks), torch.get_num_threads())
    return 1


def _channels_last_on_cpu(task: _GridTask, data: _Datasets) -> bool:
    """Whether ``task``'s model trains on the CPU with a channels-last program (``core.fast``);
    decided on a storage-free encoder (nothing is allocated or drawn)."""
    from napari_cebra.core.device import resolve_device
    from napari_cebra.core.estimator import CEBRA
    from napari_cebra.core.fast import compile_encoder
    from napari_cebra.core.models import init_empty

    params = {**CEBRA().get_params(), **task.params}
    X = data.train[task.dataset_name][0]
    try:
        if isinstance(X, (list, tuple)) or resolve_device(params["device"]) != "cpu":
            return False  # multi-session data, or another device
        encoder = init_empty(
            params["model_architecture"],
            int(np.shape(X)[1]),
            params["num_hidden_units"],
            params["output_dimension"],
        )
    except (ValueError, KeyError, TypeError):  # left to the task to report
        return False
    return compile_encoder(encoder) is not None


def _train_task(task: _GridTask, data: _Datasets) -> Generator[Any, None, dict[str, Any]]:
    """Train one model, save it, score it and return its index record."""
    from napari_cebra.core.estimator import CEBRA

    arrays = data.train[task.dataset_name]
    model = CEBRA(**task.params)
    began = time.perf_counter()
    yield from model.iter_fit(*arrays, yield_every=task.yield_every)
    train_time = time.perf_counter() - began
    model.save(task.path)
    loss = model.state_dict_["loss"]
    record = {
        "name": task.name,
        "model_name": task.model_name,
        "dataset_name": task.dataset_name,
        "params": task.varied,
        "file": Path(task.path).name,
        "fingerprint": task.fingerprint,
        "data_fingerprint": task.data_fingerprint,
        "iterations": int(loss.shape[0]),
        "loss": float(loss[-1]),
        "gof": _gof(model, arrays, task.gof_batches),
        "gof_valid": None,
        "train_time": train_time,
    }
    valid = data.valid.get(task.dataset_name)
    if valid is not None:
        record["gof_valid"] = _gof(model, valid, task.gof_batches)
    return record


def _gof(model: Any, arrays: tuple[Any, ...], batches: int) -> float:
    """Goodness of fit in bits of ``model`` on ``arrays``, over ``batches`` scoring batches; a
    full-batch model (where cebra defines none) over all frames at once."""
    from napari_cebra.core.goodness_of_fit import full_batch_goodness_of_fit_score
    from napari_cebra.metrics import goodness_of_fit_score

    if model.batch_size is None:
        return full_batch_goodness_of_fit_score(model, *arrays)
    return float(goodness_of_fit_score(model, *arrays, num_batches=batches))


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def split_parameters(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    """Fixed and varied parameters of a grid (spec §7, with strings and tuples allowed as
    values): a list of several values is varied, a single value or a one-value list fixed.

    Raises
    ------
    ValueError
        For a value that is not a number, string, bool, None or tuple, or an empty list.
    """
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of CEBRA parameters, got {type(params).__name__}.")
    fixed, varied = {}, {}
    for name, value in params.items():
        if isinstance(value, list):
            for element in value:
                _check_value(name, element)
            if not value:
                raise ValueError(f"Invalid parameter {name}: the list of values is empty.")
            if len(value) == 1:
                fixed[name] = value[0]
            else:
                varied[name] = list(value)
        else:
            _check_value(name, value)
            fixed[name] = value
    return fixed, varied


def _check_value(name: str, value: Any) -> None:
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return
    if isinstance(value, tuple):
        return
    raise ValueError(
        f"Invalid parameter {name}: {value!r} ({type(value).__name__}); use a number, a string, a "
        "tuple or a list of those."
    )


def _parameter_grid(varied: Mapping[str, list]) -> list[dict[str, Any]]:
    """Every combination, keys in sorted order, the last key varying fastest (as sklearn)."""
    grid: list[dict[str, Any]] = [{}]
    for name in sorted(varied):
        grid = [{**point, name: value} for point in grid for value in varied[name]]
    return grid


def _model_name(point: Mapping[str, Any]) -> str:
    return "_".join(f"{key}_{value}" for key, value in point.items())


def _fingerprint(params: Mapping[str, Any], dataset_name: str) -> str:
    """Hash of every constructor parameter and the dataset name."""
    text = json.dumps({"params": params, "dataset": dataset_name}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _data_fingerprint(train: tuple[Any, ...], valid: tuple[Any, ...] | None) -> str:
    """Hash of the training (and validation) arrays' shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for array in (*train, *(valid or ())):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _file_name(model_name: str, dataset_name: str, fingerprint: str, data_fingerprint: str) -> str:
    """A filesystem-safe, unambiguous file name: the readable name (varied parameters and
    dataset), then ``@`` and 8 hex digits each of the configuration's and the data's hashes."""
    stem = _UNSAFE.sub("-", f"{model_name or 'model'}_{dataset_name}").strip(".-")
    return f"{stem[:_MAX_STEM]}@{fingerprint[:8]}{data_fingerprint[:8]}.pt"


def _prepare_datasets(
    datasets: Mapping[str, Any],
    valid_datasets: Mapping[str, Any] | None,
    valid_fraction: float | None,
) -> _Datasets:
    """Check the datasets and build training/validation arrays per name."""
    if not isinstance(datasets, Mapping) or not datasets:
        raise ValueError("datasets must be a non-empty dict: dataset name -> X or (X, *labels).")
    if valid_datasets is not None and valid_fraction is not None:
        raise ValueError("Give either valid_datasets or valid_fraction, not both.")
    train, valid = {}, {}
    for name, value in datasets.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Dataset names must be non-empty strings, got {name!r}.")
        arrays = _as_arrays(value)
        if valid_fraction is not None:
            train[name], valid[name] = split_arrays(*arrays, valid_fraction=valid_fraction)
        else:
            train[name] = arrays
    for name, value in (valid_datasets or {}).items():
        if name not in train:
            raise ValueError(
                f"valid_datasets has {name!r}, which is not a training dataset ({sorted(train)})."
            )
        valid[name] = _as_arrays(value)
    return _Datasets(train, valid)


def _as_arrays(value: Any) -> tuple[Any, ...]:
    arrays = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return tuple(np.asarray(array) for array in arrays)


# ----------------------------------------------------------------------------------------------
# the index file
# ----------------------------------------------------------------------------------------------


def _read_index(directory: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The index entries of ``directory`` by file name (none without an index), and why entries
    were refused.

    Raises
    ------
    GridIndexError
        If the index is not JSON of a known format.
    """
    path = directory / RESULTS_FILE
    if not path.is_file():
        return {}, []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise GridIndexError(path, f"not valid JSON: {error}") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("models"), list):
        raise GridIndexError(path, 'not an object with a "models" list')
    if payload.get("format") not in READABLE_FORMATS:
        raise GridIndexError(path, f"unknown format {payload.get('format')!r}")
    root = directory.resolve()
    entries, refused = {}, []
    for position, entry in enumerate(payload["models"]):
        problem = _entry_problem(entry, root)
        if problem is None:
            entries[entry["file"]] = entry
        else:
            refused.append(f"entry {position}: {problem}")
    return entries, refused


def _entry_problem(entry: Any, root: Path) -> str | None:
    """Why an index entry is refused (``None`` when it is usable)."""
    if not isinstance(entry, dict):
        return "not an object"
    bad = [
        key
        for key, kind in _ENTRY_FIELDS.items()
        if key not in entry or not isinstance(entry[key], kind)
    ]
    if bad:
        return f"missing or invalid {', '.join(bad)}"
    try:
        inside = (root / entry["file"]).resolve().parent == root
    except (OSError, ValueError):
        inside = False
    return None if inside else f"its file {entry['file']!r} is not in the folder"


def _refusals(refused: list[str]) -> str:
    return f"{len(refused)} index entr{'y' if len(refused) == 1 else 'ies'} ({'; '.join(refused)})"


def _entries_for_update(directory: Path) -> dict[str, dict[str, Any]]:
    """The entries a sweep merges into (call with the folder's lock held).

    An index with refused entries, or one that cannot be read, is moved aside first (with a
    :class:`GridIndexWarning` saying where), so that nothing it held is lost.
    """
    path = directory / RESULTS_FILE
    try:
        entries, refused = _read_index(directory)
    except GridIndexError as error:
        aside = _set_aside(path)
        warnings.warn(
            f"{path} was not a readable grid-search index ({error.reason}); it was moved to "
            f"{aside.name} and a new index is started (the model files stay).",
            GridIndexWarning,
            stacklevel=3,
        )
        return {}
    if refused:
        aside = _set_aside(path)
        warnings.warn(
            f"{path}: dropped {_refusals(refused)}; the index as it was is kept as {aside.name}.",
            GridIndexWarning,
            stacklevel=3,
        )
    return entries


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.broken-<UTC time>`` in its folder; return the new path."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    path.rename(aside)
    return aside


def _write_merged_index(
    directory: Path, entries: dict[str, dict[str, Any]], records: Iterable[dict[str, Any]]
) -> None:
    """Write the index: ``entries`` whose file still exists, updated with ``records`` (by file)."""
    merged = {file: entry for file, entry in entries.items() if (directory / file).is_file()}
    merged.update({record["file"]: record for record in records})
    payload = {"format": RESULTS_FORMAT, "models": list(merged.values())}
    _write_json_atomically(directory / RESULTS_FILE, payload)


@contextlib.contextmanager
def _index_lock(directory: Path) -> Iterator[None]:
    """Hold the lock of ``directory``'s index for a read-merge-write."""
    if fcntl is None:
        with _held_lock_file(directory / HELD_LOCK_FILE):
            yield
        return
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextlib.contextmanager
def _held_lock_file(path: Path) -> Iterator[None]:
    """A lock without ``fcntl``: the file ``path``, created exclusively, removed on release.

    Raises ``TimeoutError`` naming the file when it stays taken for :data:`LOCK_TIMEOUT` seconds
    (a sweep killed while holding it leaves it behind).
    """
    timeout = LOCK_TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    errno.ETIMEDOUT,
                    f"another sweep has held {path} for over {timeout:g} s; delete the file if "
                    "no sweep is running into this folder",
                    str(path),
                ) from None
            time.sleep(0.05)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _write_json_atomically(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    text = json.dumps(_jsonable(payload), indent=1)
    replace_file_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
