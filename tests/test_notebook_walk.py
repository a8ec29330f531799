"""The CEBRA authors' best-practice notebook, walked through ``import napari_cebra as cebra``.

Our own walk, written for this project: every call the notebook makes, in its order, with only
the imports changed, on the bundled synthetic place-cell recording served as the
``rat-hippocampus-single-achilles`` file (few iterations; the calls, not the science, are tested
here).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
joblib = pytest.importorskip("joblib")

ITERATIONS = 30


@pytest.fixture
def achilles_here(tmp_path, monkeypatch):
    """The synthetic recording as ``$CEBRA_DATADIR/rat_hippocampus/achilles.jl``."""
    from napari_cebra.io import datasets as io_datasets
    from napari_cebra.io.synthetic import place_cell_recording

    recording = place_cell_recording(n_frames=2400, n_neurons=40, seed=3)
    folder = tmp_path / "data" / "rat_hippocampus"
    folder.mkdir(parents=True)
    joblib.dump(
        {"spikes": recording.neural, "position": recording.behaviour}, folder / "achilles.jl"
    )
    unpacked = (folder / "achilles.jl").read_bytes()
    packed = gzip.compress(unpacked)
    md5 = (hashlib.md5(packed).hexdigest(), hashlib.md5(unpacked).hexdigest())
    monkeypatch.setitem(io_datasets.RAT_HIPPOCAMPUS_MD5, "achilles", md5)
    monkeypatch.setenv("CEBRA_DATADIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return recording


def test_the_notebook_runs_with_changed_imports(achilles_here, tmp_path):
    import napari_cebra as cebra
    from napari_cebra import CEBRA

    # --- load the data; split into train and validation (torch tensors, as in the notebook)
    hippocampus_pos = cebra.datasets.init("rat-hippocampus-single-achilles")
    assert isinstance(hippocampus_pos.neural, torch.Tensor)
    neural, continuous = hippocampus_pos.neural, hippocampus_pos.continuous_index
    split = int(0.8 * len(hippocampus_pos))
    train_data, valid_data = neural[:split], neural[split:]
    train_label, valid_label = continuous[:split].numpy(), continuous[split:].numpy()

    # --- CEBRA-Time
    cebra_time_model = CEBRA(
        model_architecture="offset10-model",
        batch_size=128,
        learning_rate=3e-4,
        temperature=1.12,
        output_dimension=3,
        max_iterations=ITERATIONS,
        distance="cosine",
        conditional="time",
        device="cuda_if_available",
        verbose=False,
        time_offsets=10,
        seed=0,
    )
    cebra_time_model.fit(train_data)
    model_path = tmp_path / "cebra_time_model.pt"
    cebra_time_model.save(model_path)
    cebra_time_model = cebra.CEBRA.load(model_path)
    train_embedding = cebra_time_model.transform(train_data)
    valid_embedding = cebra_time_model.transform(valid_data)
    assert train_embedding.shape == (split, 3) and valid_embedding.shape == (480, 3)
    assert np.allclose(np.linalg.norm(train_embedding, axis=1), 1.0, atol=1e-5)

    ax = cebra.plot_loss(cebra_time_model)
    assert len(ax.lines[0].get_ydata()) == ITERATIONS
    ax = cebra.plot_embedding(train_embedding, embedding_labels=train_label[:, 0])
    assert ax.name == "3d"
    gof_train = cebra.sklearn.metrics.goodness_of_fit_score(cebra_time_model, train_data)
    gof_valid = cebra.sklearn.metrics.goodness_of_fit_score(cebra_time_model, valid_data)
    assert np.isfinite(gof_train) and np.isfinite(gof_valid)
    history = cebra.sklearn.metrics.goodness_of_fit_history(cebra_time_model)
    assert history.shape == (ITERATIONS,)
    figure = cebra.integrations.plotly.plot_embedding_interactive(
        train_embedding,
        embedding_labels=train_label[:, 0],
        title="CEBRA-Time (train)",
        markersize=3,
        cmap="rainbow",
    )
    assert figure.layout.title.text == "CEBRA-Time (train)"

    # --- consistency across 5 runs
    embeddings = []
    for seed in range(5):
        run = CEBRA(
            model_architecture="offset10-model",
            batch_size=128,
            max_iterations=ITERATIONS,
            output_dimension=3,
            time_offsets=10,
            seed=seed,
        ).fit(train_data)
        embeddings.append(run.transform(train_data))
    scores, pairs, ids = cebra.sklearn.metrics.consistency_score(
        embeddings=embeddings, between="runs"
    )
    assert len(scores) == len(pairs) == 20 and len(ids) == 5
    ax = cebra.plot_consistency(scores, pairs, ids)
    assert ax.images[0].get_array().shape == (5, 5)

    # --- grid search; the best model loaded back by its file name
    params_grid = dict(
        output_dimension=[3, 6],
        learning_rate=[3e-4],
        time_offsets=5,
        max_iterations=ITERATIONS,
        batch_size=128,
        temperature_mode="auto",
        verbose=False,
    )
    datasets = {"dataset1": train_data.numpy()}
    models_dir = "saved_models"
    grid_search = cebra.grid_search.GridSearch()
    grid_search.fit_models(datasets, params=params_grid, models_dir=models_dir)
    df_results = grid_search.get_df_results(models_dir=models_dir)
    assert len(df_results) == 2 and set(df_results["output_dimension"]) == {3, 6}
    best_model, best_model_name = grid_search.get_best_model(
        dataset_name="dataset1", models_dir=models_dir
    )
    model = cebra.CEBRA.load(Path(models_dir) / f"{best_model_name}.pt")
    np.testing.assert_array_equal(model.transform(valid_data), best_model.transform(valid_data))

    # --- CEBRA-Behavior, and the label- and neural-shuffle controls
    def behaviour_model(seed: int = 0) -> CEBRA:
        return CEBRA(
            model_architecture="offset10-model",
            batch_size=128,
            learning_rate=3e-4,
            temperature=1,
            output_dimension=3,
            max_iterations=ITERATIONS,
            distance="cosine",
            conditional="time_delta",
            time_offsets=10,
            seed=seed,
        )

    cebra_behavior_model = behaviour_model().fit(train_data, train_label)
    shuffled_label = np.random.default_rng(0).permutation(train_label)
    shuffled_label_model = behaviour_model().fit(train_data, shuffled_label)
    shuffled_neural = train_data[
        torch.randperm(len(train_data), generator=torch.Generator().manual_seed(0))
    ]
    shuffled_neural_model = behaviour_model().fit(shuffled_neural, train_label)
    gofs = [
        cebra.sklearn.metrics.goodness_of_fit_score(model, data, train_label)
        for model, data in (
            (cebra_behavior_model, train_data),
            (shuffled_label_model, train_data),
            (shuffled_neural_model, shuffled_neural),
        )
    ]
    assert all(np.isfinite(gofs))
    ax = cebra.compare_models(
        [cebra_behavior_model, shuffled_label_model, shuffled_neural_model],
        labels=["behaviour", "label shuffle", "neural shuffle"],
    )
    assert len(ax.lines) == 3

    # --- decoding position from the embeddings
    decoder = cebra.KNNDecoder(n_neighbors=36, metric="cosine")
    decoder.fit(cebra_behavior_model.transform(train_data), train_label[:, 0])
    score = decoder.score(cebra_behavior_model.transform(valid_data), valid_label[:, 0])
    assert np.isfinite(score)
    regressor = cebra.L1LinearRegressor().fit(train_embedding, train_label[:, 0])
    assert regressor.predict(valid_embedding).shape == (480,)
    figure, axes = cebra.plot_overview(cebra_behavior_model, valid_data)
    assert len(axes) == 3
