"""Issue 14, items 3 and 4.

``napari-cebra report`` checks its output folder before any work, keeps the results in a fallback
folder when the final write fails, and cleans up on SIGTERM as on Ctrl-C. Grid-search folders keep
every sweep: model files carry a hash of their data, the index is merged under a lock, foreign
entries are refused and a broken index is moved aside.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_cebra import GridSearch
from napari_cebra.__main__ import (
    CommandFailed,
    check_output_folder,
    main,
    write_report_or_keep,
)
from napari_cebra.core.progress import run_to_end
from napari_cebra.io.synthetic import place_cell_recording
from napari_cebra.workflows import grid_search as grid_module
from napari_cebra.workflows import report as report_module
from napari_cebra.workflows.grid_search import (
    HELD_LOCK_FILE,
    LOCK_FILE,
    RESULTS_FILE,
    GridIndexError,
    GridIndexWarning,
)
from napari_cebra.workflows.recipe import GRID_FOLDER_PREFIX, run_recipe

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals, /proc and flock")
FALLBACK = re.compile(r"written to (\S+) instead\.$")


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=300, n_neurons=12, seed=3)


@pytest.fixture(scope="module")
def neural_file(tmp_path_factory, recording):
    path = tmp_path_factory.mktemp("inputs") / "neural.npy"
    np.save(path, recording.neural)
    return path


TINY_RECIPE = dict(
    iterations=3,
    n_runs=2,
    gof_batches=1,
    grid={"output_dimension": [2, 3]},
    model_params={"batch_size": 64, "device": "cpu"},
)


@pytest.fixture(scope="module")
def recipe_results(recording):
    """Results of a real (tiny) recipe run."""
    return run_recipe(recording.neural, **TINY_RECIPE)


@pytest.fixture
def recipe_must_not_start(monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("the recipe started")

    monkeypatch.setattr("napari_cebra.workflows.recipe.run_recipe", started)


# ---------------------------------------------------------------------------------------------
# item 3: the report's output folder


def _bad_outputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    cases = {
        "existing file": (a_file, "is a file, not a folder"),
        "missing parent": (tmp_path / "missing" / "out", "parent folder"),
    }
    if sys.platform.startswith("linux"):
        cases["unwritable folder"] = (Path("/proc/self"), "cannot write files into this folder")
        cases["folder that cannot be made"] = (
            Path("/proc/napari-cebra-out"),
            "cannot write files into this folder",
        )
    return cases


@pytest.mark.parametrize(
    "case", ["existing file", "missing parent", "unwritable folder", "folder that cannot be made"]
)
def test_unusable_output_folder_exits_2_before_any_work(
    case, neural_file, tmp_path, capsys, recipe_must_not_start
):
    cases = _bad_outputs(tmp_path)
    if case not in cases:
        pytest.skip("needs Linux's /proc")
    out, reason = cases[case]
    before = sorted(tmp_path.rglob("*"))
    assert main(["report", str(neural_file), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"napari-cebra: error: report folder {str(out)!r}")
    assert reason in lines[0]
    assert sorted(tmp_path.rglob("*")) == before
    assert (tmp_path / "a_file").read_text() == "keep me"


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_read_only_output_folder_exits_2(neural_file, tmp_path, capsys, recipe_must_not_start):
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["report", str(neural_file), "--out", str(out)]) == 2
    finally:
        out.chmod(0o700)
    assert "Permission denied" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_headless_demo_checks_its_output_folder_first(tmp_path, capsys, recipe_must_not_start):
    (tmp_path / "taken").write_text("")
    assert main(["demo", "--headless", "--out", str(tmp_path / "taken")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_output_probe_leaves_no_trace(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("x")
    check_output_folder(str(existing))
    assert [path.name for path in existing.iterdir()] == ["notes.txt"]
    check_output_folder(str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Writing into ``tmp_path/out`` fails with ENOSPC; the temporary folder is ``tmp_path/tmp``."""
    out, temp = tmp_path / "out", tmp_path / "tmp"
    temp.mkdir()
    real = report_module.write_texts_atomically

    def writer(contents):
        for path in contents:
            if out in Path(path).parents:
                raise OSError(errno.ENOSPC, f"could not write {path}: No space left", str(path))
        return real(contents)

    monkeypatch.setattr(report_module, "write_texts_atomically", writer)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return out, temp


def test_failed_final_write_keeps_results_in_a_named_folder(
    full_disk, recipe_results, neural_file, monkeypatch, capsys
):
    out, temp = full_disk
    monkeypatch.setattr(
        "napari_cebra.workflows.recipe.run_recipe", lambda *args, **kwargs: recipe_results
    )
    assert main(["report", str(neural_file), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "Overall verdict" in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"could not write the report into {out}" in lines[0]
    assert "No space left" in lines[0]
    folder = Path(FALLBACK.search(lines[0]).group(1))
    assert folder.parent == temp and folder.name.startswith("napari-cebra-report-")
    assert json.loads((folder / "results.json").read_text()) == recipe_results
    assert (folder / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not (out / "results.json").exists()


def test_results_go_to_the_home_folder_when_the_temporary_folder_fails_too(
    full_disk, recipe_results, monkeypatch, tmp_path
):
    out, temp = full_disk
    temp.rmdir()  # the temporary folder cannot take them either
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    with pytest.raises(CommandFailed, match=f"written to {re.escape(str(home))}") as raised:
        write_report_or_keep(recipe_results, str(out))
    folder = Path(FALLBACK.search(str(raised.value)).group(1))
    assert json.loads((folder / "results.json").read_text()) == recipe_results

    home.rename(tmp_path / "gone")  # nowhere to write: the message says so
    with pytest.raises(CommandFailed, match=r"nor elsewhere \(.*\); the results are lost"):
        write_report_or_keep(recipe_results, str(out))


@POSIX_ONLY
def test_sigterm_in_process_is_an_interrupt_with_status_143(neural_file, tmp_path, monkeypatch):
    cleaned = []

    def terminated_recipe(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append(True)

    monkeypatch.setattr("napari_cebra.workflows.recipe.run_recipe", terminated_recipe)
    before = signal.getsignal(signal.SIGTERM)
    started = time.perf_counter()
    assert main(["report", str(neural_file), "--out", str(tmp_path / "out")]) == 143
    assert time.perf_counter() - started < 4
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (tmp_path / "out").exists()


@POSIX_ONLY
def test_sigterm_removes_the_temporary_grid_folder(neural_file, tmp_path):
    temp, out, log_path = tmp_path / "tmp", tmp_path / "out", tmp_path / "stderr.txt"
    temp.mkdir()
    environment = {**os.environ, "MPLBACKEND": "Agg", "TMPDIR": str(temp)}
    environment.pop("DISPLAY", None)
    command = [
        *(sys.executable, "-m", "napari_cebra", "report", str(neural_file), "--out", str(out)),
        *("--iterations", "100", "--runs", "2", "--batch-size", "64", "--gof-batches", "1"),
        *("--threads", "1"),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=environment)
        try:
            deadline = time.monotonic() + 120
            while not list(temp.glob(f"{GRID_FOLDER_PREFIX}*/*.pt")):
                assert process.poll() is None, "the report ended before the grid search trained"
                assert time.monotonic() < deadline, "no grid-search model within 120 s"
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=10)
        finally:
            process.kill()  # never leave the report running if the test fails
    assert code == 143
    assert not list(temp.glob(f"{GRID_FOLDER_PREFIX}*"))
    assert not out.exists()
    assert "terminated; no report was written" in log_path.read_text()


def test_stopping_the_recipe_removes_its_grid_folder_at_once(recording, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def stop_after_the_first_grid_model(record):
        if record.stage == "grid search" and list(tmp_path.glob(f"{GRID_FOLDER_PREFIX}*/*.pt")):
            raise KeyboardInterrupt

    # the exception stays referenced (as sys.last_traceback keeps it in a notebook): the folder
    # must go when the interrupt leaves run_recipe, not when the generator is collected
    with pytest.raises(KeyboardInterrupt) as raised:
        run_recipe(recording.neural, **TINY_RECIPE, progress=stop_after_the_first_grid_model)
    assert raised.value is not None
    assert not list(tmp_path.glob(f"{GRID_FOLDER_PREFIX}*"))


# ---------------------------------------------------------------------------------------------
# item 4: grid-search folders


@pytest.fixture
def fixed(small_sweep_params):
    return {**small_sweep_params, "max_iterations": 4, "seed": 7}


def _index(folder: Path) -> list[dict]:
    return json.loads((folder / RESULTS_FILE).read_text())["models"]


def _model_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.glob("*.pt")}


def test_same_dataset_name_with_other_data_keeps_both(recording, fixed, tmp_path, count_fits):
    params = {**fixed, "output_dimension": [2, 3]}
    first = {"neural": recording.neural}
    GridSearch(gof_batches=1).fit_models(first, params, tmp_path)
    before = _model_files(tmp_path)
    other = {"neural": recording.neural[::-1].copy()}  # same name, other data
    GridSearch(gof_batches=1).fit_models(other, params, tmp_path)
    assert len(count_fits) == 4
    after = _model_files(tmp_path)
    assert len(after) == 4 and {name: after[name] for name in before} == before
    assert {entry["file"] for entry in _index(tmp_path)} == set(after)

    for data in (first, other):  # a rerun of either sweep trains nothing
        records = list(GridSearch(gof_batches=1).iter_fit_models(data, params, tmp_path))
        assert [record.status for record in records] == ["present", "present"]
    assert len(count_fits) == 4

    models, _ = GridSearch().load(tmp_path)
    assert len(models) == 4 and all("@" in name for name in models)
    model, name = GridSearch().get_best_model(models_dir=tmp_path)
    assert name in models and model.n_features_ == 12


def test_another_grid_keeps_the_earlier_entries(recording, fixed, tmp_path, count_fits):
    data = {"neural": recording.neural}
    by_dimension = {**fixed, "learning_rate": 1e-3, "output_dimension": [2, 3]}
    by_rate = {**fixed, "output_dimension": 3, "learning_rate": [1e-3, 1e-2]}
    GridSearch(gof_batches=1).fit_models(data, by_dimension, tmp_path)
    second = GridSearch(gof_batches=1).fit_models(data, by_rate, tmp_path)
    assert len(count_fits) == 3  # (dimension 3, rate 1e-3) is in both grids: trained once
    table = second.get_df_results()
    # a model is named by its file: the shared one keeps the name the first sweep gave it
    assert {name.split("@")[0] for name in table["name"]} == {
        "output_dimension_3_neural",
        "learning_rate_0.01_neural",
    }
    assert sorted(table["learning_rate"]) == [1e-3, 1e-2]
    files = set(_model_files(tmp_path))
    assert len(files) == 3 and {entry["file"] for entry in _index(tmp_path)} == files
    table = GridSearch().get_df_results(tmp_path)
    assert len(table) == 3 and {"learning_rate", "output_dimension"} <= set(table.columns)


def test_interleaved_sweeps_into_one_folder_keep_both(recording, fixed, tmp_path):
    params = {**fixed, "output_dimension": [2, 3]}
    sweeps = [
        GridSearch(gof_batches=1).iter_fit_models({name: recording.neural}, params, tmp_path)
        for name in ("a", "b")
    ]
    while sweeps:
        for sweep in list(sweeps):
            if next(sweep, None) is None:
                sweeps.remove(sweep)
    index = _index(tmp_path)
    assert sorted(entry["dataset_name"] for entry in index) == ["a", "a", "b", "b"]
    assert {entry["file"] for entry in index} == set(_model_files(tmp_path))


@POSIX_ONLY
@pytest.mark.parametrize("lock", ["flock", "lock file"])
def test_a_held_lock_makes_a_sweep_wait(lock, recording, fixed, tmp_path, monkeypatch):
    """Another process's read-merge-write holds the lock: the sweep writes nothing until then."""
    import fcntl

    if lock == "lock file":
        monkeypatch.setattr(grid_module, "fcntl", None)
        (tmp_path / HELD_LOCK_FILE).touch()
    else:
        descriptor = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    errors = []

    def sweep():
        try:
            params = {**fixed, "output_dimension": [2, 3]}
            GridSearch(gof_batches=1).fit_models({"neural": recording.neural}, params, tmp_path)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=sweep)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive() and not (tmp_path / RESULTS_FILE).exists()
    if lock == "lock file":
        (tmp_path / HELD_LOCK_FILE).unlink()
    else:
        os.close(descriptor)
    thread.join(timeout=120)
    assert not thread.is_alive() and errors == []
    assert len(_index(tmp_path)) == 2
    assert not (tmp_path / HELD_LOCK_FILE).exists()


def test_a_stale_lock_file_gives_a_clear_error(recording, fixed, tmp_path, monkeypatch):
    monkeypatch.setattr(grid_module, "fcntl", None)
    monkeypatch.setattr(grid_module, "LOCK_TIMEOUT", 0.2)
    (tmp_path / HELD_LOCK_FILE).touch()
    with pytest.raises(TimeoutError, match=f"{HELD_LOCK_FILE} for over 0.2 s; delete the file"):
        GridSearch().fit_models({"neural": recording.neural}, fixed, tmp_path)


def test_foreign_and_malformed_entries_are_refused(recording, fixed, tmp_path, count_fits):
    folder = tmp_path / "sweep"
    params = {**fixed, "output_dimension": [2, 3]}
    GridSearch(gof_batches=1).fit_models({"neural": recording.neural}, params, folder)
    valid = _index(folder)
    outside = tmp_path / "outside.pt"
    shutil.copy(folder / valid[0]["file"], outside)
    (folder / "link.pt").symlink_to(outside)
    incomplete = {key: value for key, value in valid[0].items() if key != "loss"}
    foreign = [
        {**valid[0], "file": "../outside.pt"},
        {**valid[0], "file": str(outside)},
        {**valid[0], "file": "link.pt"},
        incomplete,
        42,
    ]
    original = json.dumps({"format": 2, "models": [*valid, *foreign]})
    (folder / RESULTS_FILE).write_text(original)

    with pytest.warns(GridIndexWarning, match="ignored 5 index entries") as warned:
        models, grid = GridSearch().load(folder)
    message = str(warned[0].message)
    for problem in ("'../outside.pt' is not in the folder", "'link.pt' is not in the folder"):
        assert problem in message
    assert "missing or invalid loss" in message and "entry 6: not an object" in message
    assert sorted(models) == sorted(entry["name"] for entry in valid) and len(grid) == 2

    with pytest.warns(GridIndexWarning, match="kept as grid_results.json.broken-"):
        GridSearch(gof_batches=1).fit_models({"neural": recording.neural}, params, folder)
    assert len(count_fits) == 2  # nothing retrained
    assert _index(folder) == valid
    (aside,) = folder.glob(f"{RESULTS_FILE}.broken-*")
    assert aside.read_text() == original
    assert outside.is_file()


@pytest.mark.parametrize(
    "content", [b"{not json", b"\xff\xfe", b"[]", b'{"format": 1}', b'{"format": 99, "models": []}']
)
def test_broken_index_gives_a_clear_error_and_a_way_on(content, recording, fixed, tmp_path):
    (tmp_path / RESULTS_FILE).write_bytes(content)
    for read in (GridSearch().load, GridSearch().get_df_results):
        with pytest.raises(GridIndexError, match="is not a readable grid-search index") as raised:
            read(tmp_path)
        assert str(tmp_path / RESULTS_FILE) in str(raised.value)
        assert "a sweep into this folder moves it aside" in str(raised.value)
    with pytest.warns(GridIndexWarning, match="was moved to grid_results.json.broken-"):
        GridSearch(gof_batches=1).fit_models({"neural": recording.neural}, fixed, tmp_path)
    (aside,) = tmp_path.glob(f"{RESULTS_FILE}.broken-*")
    assert aside.read_bytes() == content
    assert len(GridSearch().get_df_results(tmp_path)) == 1


def test_index_of_the_previous_version_loads_and_resumes(recording, fixed, tmp_path, count_fits):
    """Format 1: ``parameter_grid`` at the top, file names without the data hash."""
    data = {"neural": recording.neural}
    params = {**fixed, "output_dimension": [2, 3]}
    search = GridSearch(gof_batches=1).fit_models(data, params, tmp_path)
    records = _index(tmp_path)
    for record in records:
        old_name = record["file"].replace(f"__{record['data_fingerprint']}", "")
        (tmp_path / record["file"]).rename(tmp_path / old_name)
        record["file"] = old_name
    old_index = {"format": 1, "parameter_grid": search.parameter_grid, "models": records}
    (tmp_path / RESULTS_FILE).write_text(json.dumps(old_index))

    models, grid = GridSearch().load(tmp_path)
    assert sorted(models) == sorted(record["name"] for record in records)
    assert grid == search.parameter_grid
    GridSearch(gof_batches=1).fit_models(data, params, tmp_path)
    assert len(count_fits) == 2  # the old files are found, nothing is retrained
    assert set(_model_files(tmp_path)) == {record["file"] for record in records}
    assert json.loads((tmp_path / RESULTS_FILE).read_text())["format"] == 2


def test_sweep_widget_runs_on_one_layer_name_keep_every_recording(recording, fixed, tmp_path):
    """The GUI's usual path: one models folder, the layer name as the dataset name."""
    from napari_cebra._widgets.sweep_widget import SweepRequest, sweep_steps
    from napari_cebra._widgets.workers import NeuralInput

    def run(matrix: np.ndarray) -> int:
        request = SweepRequest(
            params={**fixed, "output_dimension": [2, 3]},
            neural=NeuralInput(matrix=matrix),
            labels=[],
            n_frames=len(matrix),
            dataset_name="neural",
            models_dir=str(tmp_path),
            valid_fraction=0.2,
            executor=None,
        )
        outcome = run_to_end(sweep_steps(request, threading.Event()))
        assert len(outcome.table) == 2
        return outcome.trained

    first, second = recording.neural, recording.neural[:, ::-1].copy()
    assert [run(first), run(second), run(first)] == [2, 2, 0]
    assert len(_model_files(tmp_path)) == 4 and len(_index(tmp_path)) == 4
