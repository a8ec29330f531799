"""cebra-compatible plots drawn on Figure objects (spec §6.4)."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from sklearn.exceptions import NotFittedError

from napari_cebra.core.consistency import consistency_matrix, consistency_score
from napari_cebra.workflows.plotting import (
    CEBRA_COLORS,
    compare_models,
    plot_consistency,
    plot_embedding,
    plot_loss,
    plot_temperature,
)


@pytest.fixture(scope="module")
def fitted_models():
    """Two real estimators fitted for a few steps on random data."""
    estimator = pytest.importorskip("napari_cebra.core.estimator")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    return [
        estimator.CEBRA(max_iterations=iterations, batch_size=32, seed=seed).fit(X)
        for seed, iterations in ((0, 7), (1, 5))
    ]


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before, "a plot created a pyplot-managed figure"


def _png_bytes(ax) -> bytes:
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_plot_loss_from_history_array():
    history = np.linspace(6.2, 5.0, 50)
    ax = plot_loss(history)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), history)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(50))
    assert line.get_color() == "magenta"
    assert ax.get_ylabel() == "InfoNCE Loss"
    assert ax.get_xlabel() == "Steps"
    assert ax.get_legend() is None
    assert _png_bytes(ax).startswith(b"\x89PNG")


def test_plot_loss_label_and_existing_axes():
    figure = matplotlib.figure.Figure()
    ax = figure.add_subplot()
    returned = plot_loss([3.0, 2.0], ax=ax, label="run 1", x_label=False, y_label=False)
    assert returned is ax
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["run 1"]
    assert ax.get_xlabel() == "" and ax.get_ylabel() == ""


def test_plot_loss_and_temperature_from_fitted_model(fitted_models):
    model = fitted_models[0]
    (line,) = plot_loss(model).get_lines()
    np.testing.assert_allclose(line.get_ydata(), np.asarray(model.state_dict_["loss"]), rtol=1e-6)
    assert len(line.get_ydata()) == 7
    ax = plot_temperature(model)
    (temperature,) = ax.get_lines()
    np.testing.assert_allclose(temperature.get_ydata(), model.state_dict_["log"]["temperature"])
    assert ax.get_ylabel() == "Temperature"
    assert temperature.get_color() == "dodgerblue"


def test_plot_loss_unfitted_model_raises():
    estimator = pytest.importorskip("napari_cebra.core.estimator")
    with pytest.raises(NotFittedError):
        plot_loss(estimator.CEBRA())


def test_plot_loss_rejects_2d_history():
    with pytest.raises(ValueError, match=r"1-D.*\(2, 2\)"):
        plot_loss(np.zeros((2, 2)))


def test_plot_embedding_3d_coloured_by_label():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(100, 4))
    labels = np.linspace(0, 1.6, 100)
    ax = plot_embedding(embedding, labels, title="pos")
    assert ax.name == "3d"
    (collection,) = ax.collections
    np.testing.assert_allclose(collection.get_array(), labels)
    xs, ys, zs = collection._offsets3d
    np.testing.assert_allclose(xs, embedding[:, 0])
    np.testing.assert_allclose(zs, embedding[:, 2])
    assert ax.get_title() == "pos"
    assert not ax.xaxis.pane.fill
    _png_bytes(ax)


def test_plot_embedding_2d_by_time_and_idx_order():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(50, 5))
    ax = plot_embedding(embedding, "time", idx_order=(3, 1))
    assert ax.name == "rectilinear"
    (collection,) = ax.collections
    np.testing.assert_allclose(collection.get_offsets(), embedding[:, [3, 1]])
    np.testing.assert_array_equal(collection.get_array(), np.arange(50))


def test_plot_embedding_single_colour():
    ax = plot_embedding(np.zeros((10, 2)), "red")
    (collection,) = ax.collections
    assert collection.get_array() is None
    np.testing.assert_allclose(collection.get_facecolors()[0][:3], to_rgba("red")[:3])


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "match"),
    [
        (np.zeros(9), {}, ValueError, "Invalid embedding labels: got 9 labels"),
        (np.zeros((10, 2)), {}, NotImplementedError, "one label per sample"),
        ("not-a-colour", {}, ValueError, "colour name"),
        ("grey", {"idx_order": (0, 7)}, ValueError, "dimension 7"),
        ("grey", {"idx_order": (0,)}, ValueError, "2 or 3"),
    ],
)
def test_plot_embedding_errors(labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_embedding(np.zeros((10, 3)), labels, **kwargs)


def test_plot_consistency_from_scores_and_pairs():
    rng = np.random.default_rng(0)
    embeddings = [rng.normal(size=(100, 3)) for _ in range(3)]
    scores, pairs, ids = consistency_score(embeddings, between="runs")
    ax = plot_consistency(scores, pairs, ids, title="runs")
    (image,) = ax.get_images()
    expected = consistency_matrix(scores, pairs, ids) * 100
    np.testing.assert_allclose(image.get_array().filled(np.nan), expected)
    texts = [text.get_text() for text in ax.texts]
    assert texts == [f"{value:0.1f}" for value in expected.ravel() if not np.isnan(value)]
    colorbar_axes = [other for other in ax.figure.axes if other is not ax]
    assert colorbar_axes[0].get_ylabel() == "Consistency score (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert all(t.get_rotation() == 90 for t in ax.get_yticklabels())
    assert ax.get_title() == "runs"
    _png_bytes(ax)


def test_plot_consistency_square_matrix_without_text_or_colorbar():
    matrix = np.array([[1.0, 0.9], [0.8, 1.0]])
    ax = plot_consistency(matrix, datasets=["a", "b"], text_color=None, colorbar_label=None)
    (image,) = ax.get_images()
    shown = image.get_array().filled(np.nan)
    assert np.isnan(shown[0, 0]) and shown[0, 1] == pytest.approx(90.0)
    assert len(ax.texts) == 0
    assert len(ax.figure.axes) == 1


def test_plot_consistency_datasets_order():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    pairs = np.array([["a", "b"], ["a", "c"], ["b", "a"], ["b", "c"], ["c", "a"], ["c", "b"]])
    ax = plot_consistency(scores, pairs, datasets=["c", "b", "a"])
    shown = ax.get_images()[0].get_array().filled(np.nan)
    assert shown[0, 1] == pytest.approx(60.0)  # c -> b
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("scores", "pairs", "match"),
    [
        (np.zeros(3), None, "Missing pairs"),
        (np.zeros(3), np.zeros((2, 2)), "3 scores, 2 pairs"),
        (np.zeros(4), [[0, 1], [1, 0], [0, 2], [2, 0]], "do not match"),
        (np.zeros((2, 3)), None, "square"),
    ],
)
def test_plot_consistency_errors(scores, pairs, match):
    with pytest.raises(ValueError, match=match):
        plot_consistency(scores, pairs)


def test_compare_models_colours_labels_and_data(fitted_models):
    ax = compare_models(fitted_models, labels=["a", "b"])
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, model in zip(lines, fitted_models, strict=True):
        np.testing.assert_allclose(line.get_ydata(), model.state_dict_["loss"], rtol=1e-6)
    assert to_rgba(lines[0].get_color()) == pytest.approx(to_rgba(CEBRA_COLORS[0]))
    assert to_rgba(lines[1].get_color()) == pytest.approx(to_rgba(CEBRA_COLORS[-1]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    same = compare_models(fitted_models, color="black")
    assert {line.get_color() for line in same.get_lines()} == {"black"}


def test_compare_models_errors(fitted_models):
    with pytest.raises(ValueError, match="expect a list"):
        compare_models(tuple(fitted_models))
    with pytest.raises(ValueError, match="only hold CEBRA models"):
        compare_models([np.zeros(3)])
    with pytest.raises(ValueError, match="1 labels for 2 models"):
        compare_models(fitted_models, labels=["a"])
    with pytest.raises(ValueError, match="str, int or float"):
        compare_models(fitted_models, labels=[["a"], "b"])


def test_plot_dispatches_to_the_three_views(fitted_models):
    from napari_cebra.workflows.plotting import plot

    model = fitted_models[0]
    X = np.random.default_rng(3).normal(size=(50, 6)).astype(np.float32)
    loss = plot(model, which="loss")
    np.testing.assert_allclose(loss.lines[0].get_ydata(), model.state_dict_["loss"])
    temperature = plot(model, which="temperature")
    assert temperature.get_ylabel() == "Temperature"
    embedding = plot(model, which="embedding", X=X, embedding_labels="time")
    assert embedding.name == "3d"
    np.testing.assert_allclose(embedding.collections[0]._offsets3d[0], model.transform(X)[:, 0])
    with pytest.raises(ValueError, match="needs X"):
        plot(model, which="embedding")
    with pytest.raises(ValueError, match="'loss', 'temperature' or 'embedding'"):
        plot(model, which="gof")


def test_plot_overview_draws_loss_temperature_and_embedding(fitted_models):
    from napari_cebra.workflows.plotting import plot_overview

    model = fitted_models[0]
    X = np.random.default_rng(4).normal(size=(40, 6)).astype(np.float32)
    figure, (loss_ax, temperature_ax, embedding_ax) = plot_overview(
        model, X, embedding_kwargs={"embedding_labels": "time"}
    )
    assert figure.get_size_inches().tolist() == [15, 4]
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), model.state_dict_["loss"])
    assert loss_ax.get_xlabel() == "" and temperature_ax.get_xlabel() == "Steps"
    assert embedding_ax.name == "3d"
    colours = embedding_ax.collections[0].get_array()
    np.testing.assert_array_equal(colours, np.arange(40))
    assert len(_png_bytes(loss_ax)) > 1000
