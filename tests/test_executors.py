"""Executors: local in-process runs and a real dask LocalCluster give the same results."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from napari_cebra.core.training import TrainingProgress
from napari_cebra.io.synthetic import place_cell_recording
from napari_cebra.workflows import executors
from napari_cebra.workflows.consistency_runs import consistency_runs
from napari_cebra.workflows.executors import (
    DaskExecutor,
    LocalExecutor,
    TaskDone,
    TaskProgress,
    resolve_executor,
)
from napari_cebra.workflows.grid_search import GridSearch


def _counting(task, shared):
    """A task function: yields its progress, returns task * shared."""
    yield from range(task)
    return task * shared


@pytest.fixture()
def sweep_params(small_sweep_params):
    """A sweep over two architectures and two output dimensions."""
    return {
        **small_sweep_params,
        "max_iterations": 5,
        "seed": 2,
        "model_architecture": ["offset1-model", "offset5-model"],
        "output_dimension": [2, 3],
    }


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=300, n_neurons=12, seed=6)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    with distributed.Client(cluster) as dask_client:
        yield dask_client
    cluster.close()


def test_local_executor_relays_progress_then_result():
    events = list(LocalExecutor().run(_counting, [2, 0, 1], 10))
    assert events == [
        TaskProgress(0, 0),
        TaskProgress(0, 1),
        TaskDone(0, 20),
        TaskDone(1, 0),
        TaskProgress(2, 0),
        TaskDone(2, 10),
    ]


def test_closing_local_run_stops_before_next_task():
    run = LocalExecutor().run(_counting, [3, 3], 1)
    assert next(run) == TaskProgress(0, 0)
    run.close()
    with pytest.raises(StopIteration):
        next(run)


def _stepping(task, shared):
    """A task function with training-like records: ``task`` steps, returns task * shared."""
    for step in range(1, task + 1):
        yield TrainingProgress(step, task, 0.0, 0.0, float(task), 1.0, 0.0)
    return task * shared


def test_local_executor_side_by_side_relays_every_task():
    executor = LocalExecutor(workers=2)
    assert repr(executor) == "LocalExecutor(workers=2)"
    events = list(executor.run(_stepping, [3, 5, 1, 4], 10))
    for index, task in enumerate([3, 5, 1, 4]):
        own = [event for event in events if event.index == index]
        assert [event.record.step for event in own[:-1]] == list(range(1, task + 1))
        assert all(event.record.total == task for event in own[:-1])
        assert own[-1] == TaskDone(index, task * 10)
    assert len(events) == 3 + 5 + 1 + 4 + 4


def test_closing_side_by_side_run_stops_every_task():
    run = LocalExecutor(workers=2).run(_stepping, [10**6, 10**6], 1)
    assert isinstance(next(run), TaskProgress)
    run.close()
    with pytest.raises(StopIteration):
        next(run)


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2"])
def test_local_executor_refuses_bad_workers(workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        LocalExecutor(workers=workers)


def test_resolve_executor_choices(client):
    assert isinstance(resolve_executor(None), LocalExecutor)
    assert isinstance(resolve_executor("local"), LocalExecutor)
    local = LocalExecutor()
    assert resolve_executor(local) is local
    wrapped = resolve_executor(client)
    assert isinstance(wrapped, DaskExecutor) and wrapped.client is client
    with pytest.raises(ValueError, match="executor must be None, 'local'"):
        resolve_executor(42)


def test_missing_dask_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'napari-cebra\[dask\]'"):
        resolve_executor("tcp://127.0.0.1:8786")


def test_dask_executor_returns_every_result(client):
    events = list(DaskExecutor(client).run(_counting, [1, 2, 3], 5))
    assert all(isinstance(event, TaskDone) for event in events)
    assert sorted((e.index, e.result) for e in events) == [(0, 5), (1, 10), (2, 15)]


def test_grid_search_on_dask_equals_local(recording, sweep_params, tmp_path, client):
    datasets = {"place_cells": (recording.neural, recording.position)}
    params = {**sweep_params, "output_dimension": 3}
    local = GridSearch(gof_batches=3).fit_models(datasets, params, tmp_path / "local")
    records = []
    remote = GridSearch(gof_batches=3).fit_models(
        datasets, params, tmp_path / "dask", executor=client, progress=records.append
    )
    columns = ["name", "model_architecture", "loss", "gof", "dataset_name"]
    by_name = {"by": "name", "ignore_index": True}
    pd.testing.assert_frame_equal(
        local.get_df_results()[columns].sort_values(**by_name),
        remote.get_df_results()[columns].sort_values(**by_name),
    )
    assert [r.status for r in records] == ["done"] * 2
    assert len(list((tmp_path / "dask").glob("*.pt"))) == 2
    # the workers' files are complete models
    model, _ = remote.get_best_model()
    assert model.transform(recording.neural).shape[0] == 300


def test_grid_search_with_scheduler_address(recording, sweep_params, tmp_path, client):
    datasets = {"d": recording.neural}
    params = {**sweep_params, "model_architecture": "offset1-model"}
    grid = GridSearch(gof_batches=2).fit_models(
        datasets, params, tmp_path, executor=client.scheduler.address
    )
    assert len(grid.get_df_results()) == 2


def test_consistency_runs_on_dask_match_local(recording, sweep_params, client):
    params = {key: value for key, value in sweep_params.items() if key != "seed"}
    params.update(model_architecture="offset5-model", output_dimension=3, max_iterations=8)
    local = consistency_runs(params, recording.neural, n_runs=2)
    remote = consistency_runs(params, recording.neural, n_runs=2, executor=client)
    for ours, theirs in zip(local.models, remote.models, strict=True):
        np.testing.assert_allclose(
            ours.state_dict_["loss"].numpy(), theirs.state_dict_["loss"].numpy(), atol=1e-4
        )
    np.testing.assert_allclose(local.train_matrix, remote.train_matrix, atol=1e-3)
    assert executors.DASK_INSTALL_HINT.startswith("Running on a dask cluster")
