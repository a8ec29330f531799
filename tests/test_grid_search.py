"""GridSearch: reference-compatible API, string parameters, resuming, atomic files, validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from napari_cebra import CEBRA, GridSearch
from napari_cebra.io.synthetic import place_cell_recording
from napari_cebra.workflows import grid_search as grid_module
from napari_cebra.workflows.grid_search import RESULTS_FILE, GridProgress


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=300, n_neurons=12, seed=5)


@pytest.fixture()
def datasets(recording):
    return {"my_data": (recording.neural, recording.position), "other": recording.neural}


@pytest.fixture()
def fixed(small_sweep_params):
    """The parameters every sweep of this module keeps fixed."""
    return {**small_sweep_params, "max_iterations": 6, "seed": 11}


@pytest.fixture()
def grid_params(fixed):
    """Two architectures × two output dimensions: four models per dataset."""
    return {
        **fixed,
        "output_dimension": [2, 3],
        "model_architecture": ["offset1-model", "offset5-model"],
    }


def test_generate_models_varies_lists_and_strings():
    models, grid = GridSearch().generate_models(
        {"learning_rate": [1e-3, 1e-2], "conditional": ["time", "time_delta"], "batch_size": 8}
    )
    assert grid == [
        {"conditional": "time", "learning_rate": 1e-3},
        {"conditional": "time", "learning_rate": 1e-2},
        {"conditional": "time_delta", "learning_rate": 1e-3},
        {"conditional": "time_delta", "learning_rate": 1e-2},
    ]
    assert list(models)[0] == "conditional_time_learning_rate_0.001"
    assert all(m.batch_size == 8 for m in models.values())
    assert models["conditional_time_delta_learning_rate_0.01"].conditional == "time_delta"


def test_generate_models_fixed_values_and_errors():
    models, grid = GridSearch().generate_models({"output_dimension": [4], "temperature": 2.0})
    assert list(models) == [""] and grid == [{}]
    assert models[""].output_dimension == 4 and models[""].temperature == 2.0
    with pytest.raises(ValueError, match="Invalid parameter temperature"):
        GridSearch().generate_models({"temperature": np.ones(2)})
    with pytest.raises(ValueError, match="Invalid parameter optimizer_kwargs"):
        GridSearch().generate_models({"optimizer_kwargs": {"eps": 1e-8}})


def test_sweep_table_best_model_and_load(datasets, grid_params, tmp_path, count_fits):
    grid = GridSearch(gof_batches=5)
    records = []
    grid.fit_models(datasets, grid_params, tmp_path, progress=records.append)
    assert len(count_fits) == 8  # 4 configurations x 2 datasets
    df = grid.get_df_results()
    assert isinstance(df, pd.DataFrame) and len(df) == 8
    assert list(df.columns) == [
        "name",
        "model_architecture",
        "output_dimension",
        "loss",
        "gof",
        "dataset_name",
        "train_time",
    ]
    assert set(df["dataset_name"]) == {"my_data", "other"}  # names kept intact
    assert set(df["model_architecture"]) == {"offset1-model", "offset5-model"}
    assert np.isfinite(df["loss"]).all() and np.isfinite(df["gof"]).all()
    assert (df["train_time"] > 0).all()
    assert records[-1].status == "done" and records[-1].models_done == 8

    model, name = grid.get_best_model(dataset_name="my_data")
    best = df[df.dataset_name == "my_data"].sort_values("loss").iloc[0]
    assert name == best["name"] and re.fullmatch(r".*_my_data@[0-9a-f]{16}", name)
    assert model.state_dict_["loss"][-1].item() == pytest.approx(best["loss"])
    # as cebra's notebooks do: the best model's file is "{name}.pt" in the folder
    reloaded = CEBRA.load(tmp_path / f"{name}.pt")
    X = datasets["my_data"][0]
    np.testing.assert_array_equal(reloaded.transform(X), model.transform(X))
    _, by_gof = grid.get_best_model(scoring="gof")
    assert by_gof == df.sort_values("gof", ascending=False).iloc[0]["name"]
    with pytest.raises(ValueError, match="gof_valid needs validation data"):
        grid.get_best_model(scoring="gof_valid")
    with pytest.raises(NotImplementedError, match="scoring='r2'"):
        grid.get_best_model(scoring="r2")
    with pytest.raises(ValueError, match="No model of dataset 'data'"):
        grid.get_best_model(dataset_name="data")

    models, parameter_grid = GridSearch().load(tmp_path)
    assert len(models) == len(parameter_grid) == 8  # one parameter set per model, as cebra's
    for name, point in zip(models, parameter_grid, strict=True):
        assert f"output_dimension_{point['output_dimension']}_" in name
    X = datasets["other"]
    (key,) = [
        k
        for k in models
        if k.startswith("model_architecture_offset5-model_output_dimension_3_other@")
    ]
    np.testing.assert_allclose(models[key].transform(X), grid._model(key).transform(X))
    pd.testing.assert_frame_equal(GridSearch().get_df_results(tmp_path), df)
    assert grid.plot_loss_comparison() is not None


def test_files_are_safe_unambiguous_and_written_atomically(datasets, fixed, tmp_path):
    odd = {"a/b c": datasets["other"], "a_b_c": datasets["other"]}
    GridSearch(gof_batches=2).fit_models(odd, {**fixed, "output_dimension": [2, 3]}, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert RESULTS_FILE in files
    assert not [name for name in files if name.startswith(".") or "tmp" in name]
    models = [name for name in files if name.endswith(".pt")]
    assert len(models) == 4 and len(set(models)) == 4
    assert all(" " not in name and "/" not in name for name in models)
    index = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert {r["dataset_name"] for r in index["models"]} == {"a/b c", "a_b_c"}


def test_resumed_sweep_trains_only_missing_models(datasets, grid_params, tmp_path, count_fits):
    params = grid_params
    GridSearch(gof_batches=2).fit_models(datasets, params, tmp_path)
    assert len(count_fits) == 8
    first = GridSearch().get_df_results(tmp_path)

    # a rerun finds every model
    records = list(GridSearch(gof_batches=2).iter_fit_models(datasets, params, tmp_path))
    assert len(count_fits) == 8
    assert [r.status for r in records] == ["present"] * 8

    # a deleted model file is trained again, and only that one
    index = json.loads((tmp_path / RESULTS_FILE).read_text())
    (tmp_path / index["models"][0]["file"]).unlink()
    GridSearch(gof_batches=2).fit_models(datasets, params, tmp_path)
    assert len(count_fits) == 9
    again = GridSearch().get_df_results(tmp_path)
    pd.testing.assert_frame_equal(
        first.drop(columns="train_time").sort_values("name").reset_index(drop=True),
        again.drop(columns="train_time").sort_values("name").reset_index(drop=True),
    )

    # changed data under the same name is not taken for the old models, nor does it replace them
    files_before = {p.name: p.read_bytes() for p in tmp_path.glob("*.pt")}
    changed = {"other": datasets["other"] * 2}
    GridSearch(gof_batches=2).fit_models(changed, params, tmp_path)
    assert len(count_fits) == 13
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.pt") if p.name in files_before} == (
        files_before
    )
    assert len(json.loads((tmp_path / RESULTS_FILE).read_text())["models"]) == 12


def test_interrupted_sweep_resumes(datasets, grid_params, tmp_path, count_fits):
    params = grid_params
    sweep = GridSearch(gof_batches=2, yield_every=2).iter_fit_models(datasets, params, tmp_path)
    done = 0
    for record in sweep:
        assert isinstance(record, GridProgress)
        done += record.status == "done"
        if done == 3 and record.status == "training":
            break  # stopped inside the fourth model
    sweep.close()
    assert len(count_fits) == 4
    assert len(GridSearch().get_df_results(tmp_path)) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    GridSearch(gof_batches=2).fit_models(datasets, params, tmp_path)
    assert len(count_fits) == 9  # the 5 missing models
    assert len(GridSearch().get_df_results(tmp_path)) == 8


def test_validation_scores(recording, fixed, tmp_path):
    datasets = {"pc": (recording.neural, recording.position)}
    params = {**fixed, "output_dimension": [2, 3]}
    grid = GridSearch(gof_batches=3).fit_models(datasets, params, tmp_path, valid_fraction=0.25)
    df = grid.get_df_results()
    assert "gof_valid" in df.columns and np.isfinite(df["gof_valid"]).all()
    model, name = grid.get_best_model(scoring="gof_valid")
    assert name == df.sort_values("gof_valid", ascending=False).iloc[0]["name"]
    assert model.n_features_ == 12
    valid = {"pc": (recording.neural[200:], recording.position[200:])}
    explicit = GridSearch(gof_batches=3).fit_models(
        {"pc": (recording.neural[:200], recording.position[:200])},
        params,
        tmp_path / "explicit",
        valid_datasets=valid,
    )
    assert np.isfinite(explicit.get_df_results()["gof_valid"]).all()
    with pytest.raises(ValueError, match="either valid_datasets or valid_fraction"):
        GridSearch().fit_models(
            datasets, params, tmp_path, valid_datasets=valid, valid_fraction=0.2
        )
    with pytest.raises(ValueError, match="'nope', which is not a training dataset"):
        GridSearch().fit_models(datasets, params, tmp_path, valid_datasets={"nope": valid["pc"]})


def test_file_names_stay_short_and_distinct():
    long = grid_module._file_name("x" * 300, "data", "0123456789abcdef", "fedcba9876543210")
    assert len(long) < 160 and long.endswith("@01234567fedcba98.pt")
    assert grid_module._file_name("", "d", "0" * 16, "1" * 16) == "model_d@0000000011111111.pt"
    assert grid_module._file_name("a/b c", "d", "0" * 16, "1" * 16) == "a-b-c_d@0000000011111111.pt"


@pytest.fixture()
def side_by_side_params(fixed):
    """Two learning rates × two output dimensions of an encoder with a channels-last program."""
    return {
        **fixed,
        "model_architecture": "offset5-model",
        "learning_rate": [3e-4, 1e-3],
        "output_dimension": [2, 3],
    }


@pytest.fixture()
def two_torch_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _sweep(datasets, params, directory, **options):
    """Run a sweep; its models by name (loaded from the files), its index records and records."""
    records = []
    search = GridSearch(gof_batches=2, yield_every=2)
    search.fit_models(datasets, params, directory, progress=records.append, **options)
    models, _ = GridSearch().load(directory)
    table = search.get_df_results().set_index("name")
    return models, table, records


def test_side_by_side_sweep_equals_one_after_another(
    datasets, side_by_side_params, tmp_path, two_torch_threads
):
    import torch

    data = {"my_data": datasets["my_data"]}
    together, table, records = _sweep(data, side_by_side_params, tmp_path / "together")
    names = [r.name for r in records if r.status == "training"]
    first, last = names.index(names[0]), len(names) - 1 - names[::-1].index(names[0])
    assert set(names[first:last]) != {names[0]}  # the default trained them side by side
    torch.set_num_threads(1)  # each of the 2 threads had 1 torch thread
    alone, alone_table, _ = _sweep(data, side_by_side_params, tmp_path / "alone", workers=1)
    assert sorted(together) == sorted(alone) and len(alone) == 4
    X = data["my_data"][0]
    for name, model in together.items():
        other = alone[name]
        for key, tensor in model.state_dict_["model"].items():
            assert torch.equal(tensor, other.state_dict_["model"][key]), (name, key)
        np.testing.assert_array_equal(model.transform(X), other.transform(X))
        assert model.state_dict_["loss"].tolist() == other.state_dict_["loss"].tolist()
    columns = ["loss", "gof"]
    pd.testing.assert_frame_equal(table[columns], alone_table.loc[table.index, columns])


def test_side_by_side_records_belong_to_their_models(datasets, side_by_side_params, tmp_path):
    data = {"my_data": datasets["my_data"]}
    _, table, records = _sweep(data, side_by_side_params, tmp_path, workers=2)
    training = [r for r in records if r.status == "training"]
    assert len({r.name for r in training}) == 4
    for name in table.index:
        own = [r for r in training if r.name == name]
        steps = [r.step for r in own]
        assert steps == sorted(steps) and steps[-1] == own[-1].total_steps == 6
        assert own[-1].loss == pytest.approx(table.loc[name, "loss"])
        assert len({r.key for r in own}) == 1
    assert len({r.key for r in training}) == 4
    done = [r for r in records if r.status == "done"]
    assert [r.models_done for r in done] == [1, 2, 3, 4]


def test_stopped_side_by_side_sweep_keeps_finished_models(
    datasets, side_by_side_params, tmp_path, count_fits
):
    data = {"my_data": datasets["my_data"]}
    params = {**side_by_side_params, "max_iterations": 40}
    sweep = GridSearch(gof_batches=2, yield_every=2).iter_fit_models(
        data, params, tmp_path, workers=2
    )
    finished = []
    for record in sweep:
        if record.status == "done":
            finished.append(record.name)
            break
    sweep.close()
    index = json.loads((tmp_path / RESULTS_FILE).read_text())["models"]
    assert [entry["name"] for entry in index] == finished
    assert all((tmp_path / entry["file"]).is_file() for entry in index)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    started = len(count_fits)
    GridSearch(gof_batches=2).fit_models(data, params, tmp_path, workers=2)
    assert len(count_fits) == started + 3  # only the models missing from the index
    assert len(GridSearch().get_df_results(tmp_path)) == 4


def test_workers_with_a_cluster_executor_is_refused(datasets, fixed, tmp_path):
    with pytest.raises(ValueError, match="workers=2 applies to training in this process"):
        list(GridSearch().iter_fit_models(datasets, fixed, tmp_path, executor=object(), workers=2))


def test_full_batch_models_are_scored_over_all_frames(recording, fixed, tmp_path):
    """cebra leaves full-batch models without a goodness of fit; ours scores them as they train:
    near chance (0 bits) after one step, clearly above it after training."""
    grid = GridSearch(gof_batches=2)
    params = {**fixed, "batch_size": None, "max_iterations": [1, 300], "learning_rate": 3e-3}
    grid.fit_models({"data": recording.neural}, params, tmp_path)
    df = grid.get_df_results().set_index("max_iterations")
    assert abs(df.loc[1, "gof"]) < 0.1
    assert df.loc[300, "gof"] > df.loc[1, "gof"] + 0.15
    # the same measure as the last training step's loss over the same frames
    trained = grid.get_best_model(scoring="gof")[0]
    last_loss = float(trained.state_dict_["loss"][-1])
    chance = np.log(len(recording.neural))
    assert df.loc[300, "gof"] == pytest.approx((chance - last_loss) / np.log(2), abs=0.02)
