"""``import napari_cebra as cebra``: cebra's public names reach our objects, lazily."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import napari_cebra as cebra

# (path under the package, the object it must be) for every name a CEBRA notebook reaches
CEBRA_NAMES = [
    ("CEBRA", "napari_cebra.core.estimator.CEBRA"),
    ("KNNDecoder", "napari_cebra.workflows.decoding.KNNDecoder"),
    ("L1LinearRegressor", "napari_cebra.workflows.decoding.L1LinearRegressor"),
    ("plot", "napari_cebra.workflows.plotting.plot"),
    ("plot_overview", "napari_cebra.workflows.plotting.plot_overview"),
    ("plot_loss", "napari_cebra.workflows.plotting.plot_loss"),
    ("plot_temperature", "napari_cebra.workflows.plotting.plot_temperature"),
    ("plot_embedding", "napari_cebra.workflows.plotting.plot_embedding"),
    ("plot_consistency", "napari_cebra.workflows.plotting.plot_consistency"),
    ("compare_models", "napari_cebra.workflows.plotting.compare_models"),
    (
        "plot_embedding_interactive",
        "napari_cebra.workflows.interactive_plots.plot_embedding_interactive",
    ),
    ("sklearn.cebra.CEBRA", "napari_cebra.core.estimator.CEBRA"),
    ("sklearn.metrics.goodness_of_fit_score", "napari_cebra.metrics.goodness_of_fit_score"),
    ("sklearn.metrics.goodness_of_fit_history", "napari_cebra.metrics.goodness_of_fit_history"),
    ("sklearn.metrics.consistency_score", "napari_cebra.metrics.consistency_score"),
    ("sklearn.metrics.infonce_loss", "napari_cebra.metrics.infonce_loss"),
    ("sklearn.decoder.KNNDecoder", "napari_cebra.workflows.decoding.KNNDecoder"),
    ("sklearn.decoder.L1LinearRegressor", "napari_cebra.workflows.decoding.L1LinearRegressor"),
    ("sklearn.decoder.Decoder", "napari_cebra.workflows.decoding.Decoder"),
    ("sklearn.helpers.align_embeddings", "napari_cebra.core.consistency.align_embeddings"),
    ("integrations.sklearn.metrics.consistency_score", "napari_cebra.metrics.consistency_score"),
    ("integrations.matplotlib.plot_overview", "napari_cebra.workflows.plotting.plot_overview"),
    ("integrations.matplotlib.plot", "napari_cebra.workflows.plotting.plot"),
    (
        "integrations.plotly.plot_embedding_interactive",
        "napari_cebra.workflows.interactive_plots.plot_embedding_interactive",
    ),
    ("grid_search.GridSearch", "napari_cebra.workflows.grid_search.GridSearch"),
    ("metrics.goodness_of_fit_score", "napari_cebra.core.goodness_of_fit.goodness_of_fit_score"),
]


def _resolve(dotted: str, root=cebra):
    value = root
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _defined(path: str):
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("name", "defined"), CEBRA_NAMES)
def test_cebra_names_reach_our_objects(name, defined):
    assert _resolve(name) is _defined(defined)


def test_sklearn_is_the_integration_and_unknown_names_fail():
    assert cebra.sklearn is cebra.integrations.sklearn
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = cebra.nothing
    with pytest.raises(AttributeError, match="no attribute 'pandas'"):
        _ = cebra.integrations.pandas
    assert {"sklearn", "integrations", "grid_search", "metrics", "plot_overview"} <= set(dir(cebra))


def test_the_alias_stays_lazy():
    """The namespace imports nothing heavy until a name is used."""
    code = (
        "import sys, napari_cebra as cebra, napari_cebra.integrations, "
        "napari_cebra.integrations.sklearn\n"
        "heavy = ('torch', 'qtpy', 'napari', 'vispy', 'plotly', 'matplotlib', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_interactive_embedding_from_tensors_frames_and_lists():
    import torch

    go = pytest.importorskip("plotly.graph_objects")
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(30, 4)).astype(np.float32)
    position = np.linspace(0, 1.6, 30)
    for given in (torch.from_numpy(embedding), pd.DataFrame(embedding), embedding.tolist()):
        figure = cebra.plot_embedding_interactive(
            given, embedding_labels=position, title="pos", markersize=3, cmap="rainbow"
        )
        assert isinstance(figure, go.Figure)
        (trace,) = figure.data
        assert trace.type == "scatter3d"
        np.testing.assert_allclose(trace.x, embedding[:, 0], rtol=1e-6)
        np.testing.assert_allclose(trace.marker.color, position)
        assert trace.marker.size == 3 and figure.layout.title.text == "pos"
    flat = cebra.plot_embedding_interactive(embedding, idx_order=(3, 1), embedding_labels="time")
    assert flat.data[0].type == "scatter"
    np.testing.assert_allclose(flat.data[0].x, embedding[:, 3], rtol=1e-6)


def test_interactive_embedding_with_discrete_labels_keeps_one_colour_scale():
    pytest.importorskip("plotly")
    embedding = np.random.default_rng(1).normal(size=(12, 3))
    labels = np.array([0, 1, 2] * 4)
    figure = cebra.plot_embedding_interactive(
        embedding, embedding_labels=labels, discrete=True, showlegend=True
    )
    assert [trace.name for trace in figure.data] == ["0", "1", "2"]
    assert all(len(trace.x) == 4 for trace in figure.data)
    assert {(trace.marker.cmin, trace.marker.cmax) for trace in figure.data} == {(0.0, 2.0)}
    with pytest.raises(ValueError, match="legend with continuous labels"):
        cebra.plot_embedding_interactive(embedding, embedding_labels=labels, showlegend=True)


def test_interactive_embedding_without_plotly_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match=r"napari-cebra\[plotly\]"):
        cebra.plot_embedding_interactive(np.zeros((5, 3)))


def _inputs():
    """The same recording as cebra users pass it: numpy of several dtypes, tensors, pandas,
    lists."""
    import torch

    rng = np.random.default_rng(2)
    X = rng.poisson(2.0, size=(240, 6)).astype(np.float64)
    y = np.linspace(0.0, 1.6, 240)
    return {
        "float64": (X, y),
        "float32": (X.astype(np.float32), y.astype(np.float32)),
        "int16": (X.astype(np.int16), y),
        "uint8": (X.astype(np.uint8), y),
        "tensor": (torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)),
        "pandas": (pd.DataFrame(X), pd.Series(y)),
        "list": (X.tolist(), y.tolist()),
    }


def _copy(value):
    if hasattr(value, "clone"):
        return value.clone()
    if hasattr(value, "copy"):
        return value.copy()
    return [list(row) if isinstance(row, list) else row for row in value]


def _same(before, after) -> bool:
    if hasattr(after, "equals"):
        return after.equals(before)
    if hasattr(after, "clone"):
        import torch

        return bool(torch.equal(before, after))
    return np.array_equal(np.asarray(before), np.asarray(after))


@pytest.mark.parametrize(
    "kind", ["float64", "float32", "int16", "uint8", "tensor", "pandas", "list"]
)
def test_inputs_are_taken_as_cebra_takes_them_and_left_unchanged(kind):
    X, y = _inputs()[kind]
    X_before, y_before = _copy(X), _copy(y)
    reference_X, reference_y = _inputs()["float64"]

    model = cebra.CEBRA(
        max_iterations=3, batch_size=32, seed=0, conditional="time_delta", time_offsets=2
    ).fit(X, y)
    reference = cebra.CEBRA(
        max_iterations=3, batch_size=32, seed=0, conditional="time_delta", time_offsets=2
    ).fit(reference_X, reference_y)
    embedding = model.transform(X)
    assert embedding.shape == (240, model.output_dimension)
    if kind in ("float64", "float32", "tensor", "pandas", "list"):  # same values as float64
        np.testing.assert_allclose(embedding, reference.transform(reference_X), atol=1e-5)
    assert np.isfinite(cebra.sklearn.metrics.goodness_of_fit_score(model, X, y))
    assert cebra.sklearn.metrics.infonce_loss(model, X, y, num_batches=2) > 0
    import torch

    as_given = {"tensor": torch.from_numpy, "pandas": pd.DataFrame, "list": np.ndarray.tolist}
    embedded = as_given.get(kind, np.asarray)(embedding)  # the embedding in the input's kind
    assert np.isfinite(cebra.KNNDecoder(n_neighbors=5).fit(embedded, y).score(embedded, y))
    assert np.isfinite(cebra.L1LinearRegressor().fit(embedded, y).score(embedded, y))
    scores, pairs, ids = cebra.sklearn.metrics.consistency_score(
        embeddings=[embedded, embedded], between="runs"
    )
    assert len(scores) == 2
    assert cebra.plot_embedding(embedded, embedding_labels=y) is not None

    assert _same(X_before, X) and _same(y_before, y)


def test_cebra_colormap_and_colour_scale_like_cebras():
    import matplotlib

    cebra.plot_loss  # noqa: B018 - importing the plots registers the colormap
    colormap = matplotlib.colormaps["cebra"]
    np.testing.assert_allclose(colormap(0.0)[:3], matplotlib.colors.to_rgb("#4854e9"), atol=0.01)
    scale = cebra.integrations.plotly._convert_cmap2colorscale(matplotlib.colormaps["viridis"])
    assert len(scale) == 11 and scale[0] == [0.0, "rgb(68, 1, 84)"] and scale[-1][0] == 1.0


def test_dtype_helpers():
    import torch

    assert cebra.helper._is_floating(torch.tensor([4.5])) and cebra.helper._is_floating(
        np.array([4.5])
    )
    assert cebra.helper._is_integer(torch.tensor([4])) and cebra.helper._is_integer(np.array([4]))
    assert not cebra.helper._is_integer(np.array([4.5])) and not cebra.helper._is_floating([4.5])
    assert not cebra.helper._is_floating_or_integer(torch.tensor([1j]))
