"""Consistency of several embeddings (the science of the Consistency runs widget); no Qt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cebra.core.consistency import consistency_matrix, consistency_score
from napari_cebra.workflows.embedding_consistency import (
    common_numeric_columns,
    compare_embeddings,
    running_loss_text,
    split_rows,
)


def test_running_loss_text_never_shows_nan():
    nan = float("nan")
    assert running_loss_text((nan, nan, nan)) == ""
    assert running_loss_text(()) == ""
    partial = running_loss_text((1.0, nan, 2.0, nan, 3.0))
    assert partial == "mean loss 2.0000 (3 of 5 runs so far)"
    assert running_loss_text((1.0, 2.0)) == "mean loss 1.5000"


def test_runs_are_compared_on_training_and_validation_rows_separately():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 3))
    embeddings = [
        base @ rng.normal(size=(3, 3)) + 0.05 * rng.normal(size=(200, 3)) for _ in range(3)
    ]
    features = pd.DataFrame(
        {"split": ["train"] * 150 + ["validation"] * 50, "pos": np.arange(200.0)}
    )
    masks = [split_rows(features, 200)] * 3
    view = compare_embeddings(embeddings, ["a", "b", "c"], train_masks=masks)
    expected_train = consistency_matrix(
        *consistency_score([e[:150] for e in embeddings], between="runs")
    )
    expected_valid = consistency_matrix(
        *consistency_score([e[150:] for e in embeddings], between="runs")
    )
    np.testing.assert_allclose(view.train, expected_train)
    np.testing.assert_allclose(view.valid, expected_valid)
    assert view.n_train == 150 and view.mean_train > 0.9 and np.isnan(np.diag(view.train)).all()


def test_without_a_split_every_row_is_compared_once():
    rng = np.random.default_rng(1)
    embeddings = [rng.normal(size=(80, 2)) for _ in range(2)]
    view = compare_embeddings(embeddings, ["x", "y"])
    assert view.valid is None and view.mean_valid is None and view.n_train == 80
    assert split_rows(None, 80) is None
    assert split_rows(pd.DataFrame({"split": ["train"] * 79}), 80) is None  # wrong length


@pytest.mark.parametrize(
    ("embeddings", "names", "message"),
    [
        ([np.zeros((10, 2))], ["a"], "at least 2 embeddings"),
        ([np.zeros((10, 2))] * 2, ["a"], "Got 1 names for 2 embeddings"),
    ],
)
def test_bad_comparisons_say_what_is_wrong(embeddings, names, message):
    with pytest.raises(ValueError, match=message):
        compare_embeddings(embeddings, names)


def test_datasets_need_a_label_and_share_numeric_columns():
    with pytest.raises(ValueError, match="needs a label"):
        compare_embeddings([np.zeros((10, 2))] * 2, ["a", "b"], between="datasets")
    tables = [
        pd.DataFrame({"frame": [0, 1], "position": [0.1, 0.2], "kind": ["a", "b"]}),
        pd.DataFrame({"position": [0.3, 0.4], "speed": [1.0, 2.0]}),
    ]
    assert common_numeric_columns(tables) == ["position"]
    assert common_numeric_columns([tables[0], None]) == []
