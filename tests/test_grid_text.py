"""Grid text (the Grid search widget's text box) read into GridSearch parameters; no Qt."""

from __future__ import annotations

import pytest

from napari_cebra.workflows.grid_text import (
    default_grid_text,
    grid_size,
    parse_grid,
    uses_labels,
    varied_parameters,
)
from napari_cebra.workflows.presets import DEFAULT_GRID


def test_grid_text_is_read_line_by_line():
    params = parse_grid(
        "model_architecture: offset10-model, offset5-model\n"
        "# a comment\n"
        "learning_rate: 3e-4, 1e-3\n"
        "conditional: time_delta\n"
        "delta: None\n"
        "optimizer_kwargs: (('betas', (0.9, 0.999)),)\n"
    )
    assert params["model_architecture"] == ["offset10-model", "offset5-model"]
    assert params["learning_rate"] == [3e-4, 1e-3]
    assert params["conditional"] == "time_delta" and params["delta"] is None
    assert params["optimizer_kwargs"] == (("betas", (0.9, 0.999)),)
    assert grid_size(params) == 4
    assert list(varied_parameters(params)) == ["model_architecture", "learning_rate"]
    assert uses_labels(params) and not uses_labels({"conditional": ["time"]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate 3e-4", "Grid line 1 ('learning_rate 3e-4'): write 'parameter: value'"),
        ("lerning_rate: 3e-4", "'lerning_rate' is not a CEBRA parameter"),
        ("batch_size: 32\nbatch_size: 64", "Grid line 2 ('batch_size: 64'): 'batch_size' is given"),
        ("batch_size: 32,", "a value is missing"),
    ],
)
def test_bad_grid_text_names_the_line(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_grid(text)


def test_default_grid_text_reads_back_as_the_recipe_grid():
    params = parse_grid(default_grid_text())
    assert varied_parameters(params) == DEFAULT_GRID
    assert grid_size(params) == 16 and params["max_iterations"] == 5000
    assert not uses_labels(params)
