"""The layer picker shared by the dock widgets: options, label checks, following layer edits."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra._widgets.forms import KIND_KEY, DataPicker, read_neural

pytestmark = pytest.mark.gui

MISSING = "choose at least one label"


def test_read_uses_labels_only_when_asked(place_cell_viewer):
    viewer = place_cell_viewer(120, seed=1)
    picker = DataPicker(viewer, discrete=False)
    assert picker.discrete not in list(picker) and picker.valid_fraction in list(picker)
    picker.neural.value, picker.behaviour.value = "neural", "behaviour"
    assert picker.variables.value == ["position", "right", "left"]

    with_labels = picker.read(missing_labels=MISSING)
    assert [y.shape for y in with_labels.labels] == [(120, 3)]
    assert with_labels.description["labels"] == ["position", "right", "left"]
    time_only = picker.read(continuous=False, missing_labels=MISSING)
    assert time_only.labels == [] and time_only.description["continuous"] == []

    picker.variables.value = []
    with pytest.raises(ValueError, match=MISSING):
        picker.read(missing_labels=MISSING)
    assert picker.read().labels == []  # labels are optional unless a message is given


def test_a_picker_without_valid_fraction_reads_no_split(place_cell_viewer):
    viewer = place_cell_viewer(80, seed=2)
    picker = DataPicker(viewer, valid_fraction=None, variables_label="behaviour labels")
    picker.neural.value = "neural"
    assert picker.valid_fraction not in list(picker) and picker.discrete in list(picker)
    assert picker.variables.label == "behaviour labels"
    selection = picker.read()
    assert selection.valid_fraction == 0.0 and selection.n_frames == 80
    assert selection.time_layer is None  # neither a movie nor timed points


def test_tagged_layers_are_preselected_and_renames_followed(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((50, 4), dtype=np.float32), name="other matrix")
    viewer.add_image(
        np.ones((50, 6), dtype=np.float32), name="cells", metadata={KIND_KEY: "neural_matrix"}
    )
    viewer.add_image(
        np.zeros((50, 2), dtype=np.float32), name="track", metadata={KIND_KEY: "behaviour"}
    )
    picker = DataPicker(viewer, preselect_tagged=True, follow_layer_edits=True)
    assert (picker.neural.value, picker.behaviour.value) == ("cells", "track")
    changes = []
    picker.selection_changed.connect(lambda: changes.append(True))

    viewer.layers["cells"].name = "renamed cells"
    assert "renamed cells" in picker.neural.choices and picker.neural.value == "renamed cells"
    viewer.layers["track"].data = np.zeros((50, 3), dtype=np.float32)
    assert len(picker.variables.choices) == 3 and changes


def test_read_neural_extracts_nothing_for_a_matrix_and_needs_rois_for_a_movie(make_napari_viewer):
    viewer = make_napari_viewer()
    matrix = viewer.add_image(np.arange(20, dtype=np.float32).reshape(10, 2), name="matrix")
    movie = viewer.add_image(np.zeros((10, 4, 4), dtype=np.float32), name="movie")
    rois = viewer.add_labels(np.ones((4, 4), dtype=np.int32), name="rois")

    source, neural = read_neural(matrix, rois, dff=True)
    assert source.kind == "matrix" and neural.movie is None and neural.rois is None
    np.testing.assert_array_equal(neural.matrix, matrix.data)
    source, neural = read_neural(movie, rois, dff=True)
    assert source.kind == "movie" and neural.dff and neural.rois.shape == (4, 4)
    with pytest.raises(ValueError, match="choose the Labels layer of its ROIs"):
        read_neural(movie, None, dff=False)
