"""Layer → array glue and the session registry (napari layer objects, no viewer, no Qt)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.layers import Image, Labels, Points, Shapes, Tracks

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.session import ModelRegistry
from napari_cebra._widgets.time_link import frame_at_current_step


def test_matrix_layer_gives_float32_time_by_neurons():
    data = np.arange(12, dtype=np.uint16).reshape(6, 2)
    layer = Image(data, name="spikes")
    assert layer_data.neural_source(layer) == layer_data.NeuralSource("matrix", 6, "spikes")
    matrix = layer_data.neural_matrix(layer)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, data)


@pytest.mark.parametrize(
    ("layer", "rois", "message"),
    [
        (Image(np.zeros((10, 1)), name="trace"), None, "needs at least 2 frames and 2 neurons"),
        (Image(np.zeros((3, 2, 4, 4)), name="zstack"), None, r"shape \(3, 2, 4, 4\); expected"),
        (Image(np.zeros((5, 4, 4)), name="movie"), None, "choose the Labels layer of its ROIs"),
        (
            Image(np.zeros((5, 4, 4)), name="movie"),
            Labels(np.zeros((4, 3), dtype=int), name="rois"),
            r"ROI layer 'rois' has shape \(4, 3\) but the frames of movie 'movie' have shape "
            r"\(4, 4\)",
        ),
        (Labels(np.zeros((5, 4), dtype=int), name="lab"), None, "is a labels layer"),
        (Image(np.zeros((5, 4, 3)), rgb=True, name="photo"), None, "RGB"),
    ],
)
def test_unusable_neural_layers_are_rejected_with_a_clear_message(layer, rois, message):
    with pytest.raises(ValueError, match=message):
        layer_data.neural_source(layer, rois)


def test_movie_with_matching_rois_is_accepted():
    source = layer_data.neural_source(
        Image(np.zeros((7, 4, 5)), name="movie"), Labels(np.ones((4, 5), dtype=int))
    )
    assert (source.kind, source.n_frames) == ("movie", 7)


def test_non_finite_neural_values_are_named():
    data = np.ones((4, 3))
    data[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite value nan at frame 2, neuron 1"):
        layer_data.neural_matrix(Image(data, name="x"))


def test_behaviour_image_uses_metadata_column_names():
    values = np.column_stack([np.linspace(0, 1.6, 5), np.ones(5), np.zeros(5)]).astype(np.float32)
    layer = Image(values, name="behaviour", metadata={"columns": ["position", "right", "left"]})
    table = layer_data.behaviour_table(layer)
    assert list(table.columns) == ["position", "right", "left"]
    np.testing.assert_allclose(table["position"], values[:, 0])
    unnamed = layer_data.behaviour_table(Image(values, name="b"))
    assert list(unnamed.columns) == ["b[0]", "b[1]", "b[2]"]


def test_keypoints_become_per_frame_columns_with_gaps_interpolated():
    # DeepLabCut-like: two body parts, (t, y, x); 'nose' misses frame 1
    data = np.array(
        [[0, 10, 20], [2, 14, 24], [0, 1, 2], [1, 3, 4], [2, 5, 6]],
        dtype=float,
    )
    features = pd.DataFrame(
        {
            "scorer": ["DLC"] * 5,
            "bodypart": ["nose", "nose", "tail", "tail", "tail"],
            "likelihood": [0.9, 0.8, 1, 1, 1],
        }
    )
    table = layer_data.behaviour_table(Points(data, features=features, name="dlc"))
    assert list(table.columns) == [
        "nose y",
        "nose x",
        "nose likelihood",
        "tail y",
        "tail x",
        "tail likelihood",
    ]
    np.testing.assert_allclose(table["nose y"], [10, 12, 14])
    np.testing.assert_allclose(table["tail x"], [2, 4, 6])
    assert layer_data.discrete_columns(table) == []


def test_points_without_identity_and_two_points_per_frame_are_rejected():
    points = Points(np.array([[0, 1, 1], [0, 2, 2], [1, 3, 3]], dtype=float), name="p")
    with pytest.raises(ValueError, match="several points in one frame"):
        layer_data.behaviour_table(points)


def test_tracks_give_one_column_group_per_track():
    data = np.array([[1, 0, 5, 6], [1, 1, 7, 8], [2, 0, 0, 0], [2, 1, 1, 1]], dtype=float)
    table = layer_data.behaviour_table(Tracks(data, name="tracks"))
    assert list(table.columns) == ["track 1 y", "track 1 x", "track 2 y", "track 2 x"]
    np.testing.assert_allclose(table["track 1 x"], [6, 8])


def test_integer_feature_columns_are_discrete_labels():
    shapes = Shapes(
        [np.array([[0, 0], [1, 1]]), np.array([[2, 2], [3, 3]]), np.array([[4, 4], [5, 5]])],
        shape_type="line",
        features=pd.DataFrame({"speed": [0.1, 0.2, 0.3], "arm": [0, 1, 1], "name": list("abc")}),
        name="table",
    )
    table = layer_data.behaviour_table(shapes)
    assert list(table.columns) == ["speed", "arm"]
    assert layer_data.discrete_columns(table) == ["arm"]
    assert layer_data.continuous_columns(table) == ["speed", "arm"]
    labels = layer_data.label_arrays(table, ["speed"], "arm", n_frames=2)
    assert labels[0].dtype == np.float32 and labels[0].shape == (2, 1)
    assert labels[1].dtype == np.int64
    np.testing.assert_array_equal(labels[1], [0, 1])


def test_sample_behaviour_flags_become_discrete_labels():
    values = np.column_stack([np.linspace(0, 1.6, 4), [1, 1, 0, 0], [0, 0, 1, 1]])
    layer = Image(
        values.astype(np.float32),
        name="behaviour",
        metadata={"columns": ["position", "right", "left"], "discrete_columns": ["right", "left"]},
    )
    table = layer_data.behaviour_table(layer)
    assert layer_data.discrete_columns(table) == ["right", "left"]
    assert table["position"].dtype == np.float32


def test_length_mismatch_needs_the_common_prefix_option():
    with pytest.raises(ValueError, match=r"'movie' has 100 frames but behaviour layer 'b' has 90"):
        layer_data.common_length(
            100, 90, neural_name="movie", behaviour_name="b", allow_prefix=False
        )
    assert (
        layer_data.common_length(100, 90, neural_name="m", behaviour_name="b", allow_prefix=True)
        == 90
    )
    assert (
        layer_data.common_length(100, None, neural_name="m", behaviour_name="", allow_prefix=False)
        == 100
    )


def test_frame_at_current_step_follows_the_movie_axis():
    class Dims:
        ndim, displayed, point = 3, (1, 2), (7.0, 3.0, 3.0)

    class Viewer:
        dims = Dims()

    movie = Image(np.zeros((10, 4, 4)), scale=(0.5, 1, 1))
    assert frame_at_current_step(Viewer(), movie) == 14
    Dims.displayed = (0, 1)
    assert frame_at_current_step(Viewer(), movie) is None


def test_registry_names_are_unique_and_listeners_are_called():
    class Model:
        def get_params(self):
            return {"output_dimension": 3}

    registry = ModelRegistry()
    calls = []
    registry.subscribe(lambda: calls.append(len(registry)))
    first = registry.add(Model(), base_name="CEBRA-Time", trained_on={"neural": "movie"})
    second = registry.add(Model(), base_name="CEBRA-Time")
    assert (first.name, second.name) == ("CEBRA-Time #1", "CEBRA-Time #2")
    assert first.summary() == "CEBRA-Time #1 — 3-D, movie"
    registry.remove(first.name)
    assert registry.names() == ["CEBRA-Time #2"]
    assert calls == [1, 2, 1]
    with pytest.raises(KeyError, match="known: \\['CEBRA-Time #2'\\]"):
        registry.get("nope")
