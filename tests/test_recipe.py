"""The best-practice recipe end to end (tiny iteration counts) and the report files."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from napari_cebra.workflows import report as report_module
from napari_cebra.workflows.recipe import (
    SMALL_GRID,
    RecipeProgress,
    iter_recipe,
    run_recipe,
)
from napari_cebra.workflows.report import to_jsonable, write_report

SECTIONS = (
    "input",
    "settings",
    "time_model",
    "consistency",
    "grid_search",
    "behaviour_model",
    "controls",
    "decoding",
    "checks",
    "verdict",
    "timings",
)
TINY = {"iterations": 4, "n_runs": 2, "gof_batches": 2, "model_params": {"batch_size": 128}}


@pytest.fixture(scope="module")
def recording():
    from napari_cebra.io.synthetic import place_cell_recording

    return place_cell_recording(n_frames=1200, n_neurons=16, seed=2)


@pytest.fixture(scope="module")
def recipe_run(recording):
    records: list[RecipeProgress] = []
    results = run_recipe(
        recording.neural, recording.behaviour, seed=1, progress=records.append, **TINY
    )
    return results, records


def test_results_have_every_section(recipe_run):
    results, _ = recipe_run
    assert set(SECTIONS) <= set(results)
    assert len(results["time_model"]["loss"]) == 4
    assert results["input"]["n_frames"] == 1200
    assert results["input"]["train_frames"] == [0, 960]
    consistency = results["consistency"]
    assert np.array(consistency["train"]["matrix"], dtype=float).shape == (2, 2)
    assert 0.0 <= consistency["train"]["mean"] <= 1.0
    assert len(results["grid_search"]["results"]) == 4  # SMALL_GRID for few iterations
    assert results["grid_search"]["best"]["name"]
    for kind in ("label_shuffle", "neural_shuffle"):
        control = results["controls"][kind]
        assert control["verdict"] in {"pass", "warn", "fail"}
        assert len(control["control"]["loss"]) == 4
        assert isinstance(control["control"]["gof_train"], float)
    assert results["decoding"]["behaviour_model"]["direction_column"] == 1
    assert results["decoding"]["time_model"]["position_median_abs_error"] >= 0


def test_checks_cover_each_step_with_reasons(recipe_run):
    results, _ = recipe_run
    names = {check["name"] for check in results["checks"]}
    assert {
        "time_gof",
        "time_overfitting",
        "consistency_train",
        "consistency_valid",
        "grid_search",
        "behaviour_gof",
        "label_shuffle",
        "neural_shuffle",
        "decoding",
    } <= names
    for check in results["checks"]:
        assert check["verdict"] in {"pass", "warn", "fail"}
        assert check["reason"]
    order = {"pass": 0, "warn": 1, "fail": 2}
    assert results["verdict"] == max((c["verdict"] for c in results["checks"]), key=order.get)


def test_results_are_json_clean(recipe_run):
    results, _ = recipe_run
    text = json.dumps(results, allow_nan=False)
    assert json.loads(text) == results


def test_progress_records_cover_all_stages(recipe_run):
    _, records = recipe_run
    assert all(isinstance(record, RecipeProgress) for record in records)
    assert [r.stage_index for r in records] == sorted(r.stage_index for r in records)
    assert {record.stage_index for record in records} == set(range(1, 7))
    assert records[-1].n_stages == 6


def test_recipe_without_labels_skips_behaviour(recording):
    results = run_recipe(recording.neural, grid={"output_dimension": [3, 4]}, **TINY)
    assert results["behaviour_model"]["status"] == "skipped"
    assert results["controls"]["label_shuffle"]["status"] == "skipped"
    assert results["decoding"]["status"] == "skipped"
    assert len(results["grid_search"]["results"]) == 2
    assert "label_shuffle" not in {check["name"] for check in results["checks"]}


def test_recipe_can_be_stopped_between_yields(recording):
    generator = iter_recipe(recording.neural, recording.behaviour, **TINY)
    first = next(generator)
    assert first.stage == "CEBRA-Time" and first.stage_index == 1
    generator.close()


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.zeros(10), {}, "labels have 10 frames but neural has 1200"),
        (None, {"n_runs": 1}, "n_runs must be at least 2"),
        (np.zeros((1200, 2, 2)), {}, "1-D or 2-D"),
    ],
)
def test_recipe_input_errors(recording, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_recipe(recording.neural, labels, **{**TINY, **kwargs})


def test_recipe_rejects_non_finite_neural(recording):
    neural = recording.neural.copy()
    neural[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"neural has 1 NaN/inf values \(first in row 7\)"):
        run_recipe(neural, **TINY)


def test_write_report_files(recipe_run, tmp_path):
    results, _ = recipe_run
    report_path, results_path = write_report(results, tmp_path / "out")
    assert json.loads(results_path.read_text()) == results
    page = report_path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") >= 5
    assert 'src="http' not in page and "<script" not in page
    for heading in ("Checks", "CEBRA-Time", "Consistency across runs", "Grid search", "Decoding"):
        assert f"<h2>{heading}</h2>" in page
    assert sorted(os.listdir(tmp_path / "out")) == ["report.html", "results.json"]


def test_interrupted_write_leaves_no_files(recipe_run, tmp_path, monkeypatch):
    results, _ = recipe_run

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(results, tmp_path)
    assert os.listdir(tmp_path) == []


def test_to_jsonable_converts_numpy_and_nan():
    value = {"a": np.float32(1.5), "b": np.array([1, 2]), "c": (math.nan, np.inf), 3: None}
    assert to_jsonable(value) == {"a": 1.5, "b": [1, 2], "c": [None, None], "3": None}
    with pytest.raises(TypeError, match="Cannot store a object"):
        to_jsonable({"x": object()})


def test_small_grid_has_four_points():
    assert math.prod(len(values) for values in SMALL_GRID.values()) == 4


def test_a_short_recording_trains_with_a_batch_of_its_training_part():
    """The presets' batch of 512 is larger than 300 training frames: the recipe lowers it (the
    estimator itself refuses a batch larger than its data) and says so in the settings."""
    from napari_cebra.io.synthetic import place_cell_recording

    short = place_cell_recording(n_frames=375, n_neurons=10, seed=5)
    results = run_recipe(short.neural, None, iterations=3, n_runs=2, gof_batches=2)
    assert results["input"]["train_frames"] == [0, 300]
    assert results["settings"]["time_params"]["batch_size"] == 300
    assert results["time_model"]["gof_valid"] is not None


def test_an_all_zero_recording_is_reported_collapsed_not_consistent(tmp_path):
    """Issue 14: an all-zero recording used to get "83 % consistency" in the report."""
    import warnings

    zeros = np.zeros((400, 8), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_recipe(zeros, None, iterations=3, n_runs=2, gof_batches=2)
    assert results["consistency"]["collapsed"] == [0, 1]
    checks = {check["title"]: check for check in results["checks"]}
    consistency = [check for title, check in checks.items() if "onsisten" in title]
    assert consistency and all(check["verdict"] == "fail" for check in consistency)
    assert all("collapsed" in check["reason"] for check in consistency)
    report_path, _ = write_report(results, tmp_path)
    page = report_path.read_text()
    assert "collapsed (seeds [0, 1]: every frame maps to one point)" in page


def test_recipe_grid_can_train_full_batch(recording, tmp_path):
    """A single value in the grid is a setting of every point: full batch as in cebra's example."""
    results = run_recipe(
        recording.neural, grid={"output_dimension": [3, 4], "batch_size": None}, **TINY
    )
    section = results["grid_search"]
    assert section["varied"] == {"output_dimension": [3, 4]}
    assert section["fixed"] == {"batch_size": None}
    assert set(section["best"]["params"]) == {"output_dimension"}
    assert all(math.isfinite(row["gof_valid"]) for row in section["results"])
    grid = next(check for check in results["checks"] if check["name"] == "grid_search")
    assert "was trained with batch_size=None" in grid["reason"]
    assert results["time_model"]["params"]["batch_size"] == 128  # the grid's setting stays there
    html_path, _ = write_report(results, tmp_path / "report")
    assert "Every point: batch_size = None (full batch" in html_path.read_text()
