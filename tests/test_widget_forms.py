"""The layer picker shared by the dock widgets: options, label checks, following layer edits."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra._widgets.forms import (
    KIND_KEY,
    DataPicker,
    behaviour_layer_names,
    neural_layer_names,
    read_neural,
)

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
    picker = DataPicker(viewer, follow_layer_edits=True)
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


def _offered(combo) -> list[str]:
    return sorted(c for c in combo.choices if c is not None)


def test_pickers_offer_only_layers_that_fit(make_napari_viewer):
    viewer = make_napari_viewer()
    n = 40
    viewer.add_image(np.zeros((n, 6), dtype=np.float32), name="matrix")  # untagged: either
    viewer.add_image(np.zeros((n, 8, 8), dtype=np.float32), name="movie")
    viewer.add_image(np.zeros((8, 8, 3), dtype=np.uint8), name="photo", rgb=True)
    viewer.add_image(
        np.zeros((8, 8), dtype=np.float32), name="mean", metadata={KIND_KEY: "mean_image"}
    )
    viewer.add_image(
        np.zeros((n, 5), dtype=np.float32), name="traces", metadata={KIND_KEY: "neural_matrix"}
    )
    viewer.add_image(
        np.zeros((n, 2), dtype=np.float32), name="speed", metadata={KIND_KEY: "behaviour"}
    )
    viewer.add_labels(np.zeros((8, 8), dtype=np.int32), name="rois")
    times = np.arange(n, dtype=np.float32)
    viewer.add_points(np.column_stack([times, times, times]), name="nose")
    viewer.add_tracks(np.column_stack([np.zeros(n), times, times, times]), name="track")

    assert neural_layer_names(viewer) == ["matrix", "movie", "traces"]
    assert behaviour_layer_names(viewer) == ["matrix", "speed", "nose", "track"]
    picker = DataPicker(viewer)
    # tagged layers are preselected
    assert (picker.neural.value, picker.behaviour.value) == ("traces", "speed")
    assert _offered(picker.neural) == ["matrix", "movie", "traces"]
    assert _offered(picker.behaviour) == ["matrix", "nose", "speed", "track"]
    # the chosen neural layer is never offered as behaviour
    picker.behaviour.value = "matrix"
    picker.neural.value = "matrix"
    assert _offered(picker.behaviour) == ["nose", "speed", "track"]
    assert picker.behaviour.value is None
    picker.neural.value = "movie"
    assert _offered(picker.behaviour) == ["matrix", "nose", "speed", "track"]
    assert picker.rois.value == "rois" and not picker.rois.native.isHidden()


def test_untagged_behaviour_is_not_preselected_and_the_note_says_so(place_cell_viewer):
    viewer = place_cell_viewer(60, seed=3)  # "neural" and "behaviour" without tags
    _, report = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA best-practice report")
    _, controls = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA shuffle controls")
    for picker, words in ((report.data, "skip CEBRA-Behavior"), (controls.data, "label column")):
        assert picker.neural.value == "neural" and picker.behaviour.value is None
        assert _offered(picker.behaviour) == ["behaviour"]
        assert not picker.labels_note.native.isHidden() and words in picker.labels_note.value
        picker.behaviour.value = "behaviour"
        assert picker.variables.value == ["position", "right", "left"]
        assert picker.labels_note.native.isHidden()
        picker.variables.value = []
        assert not picker.labels_note.native.isHidden()
    plain = DataPicker(viewer)
    assert plain.labels_note not in list(plain)


PICKER_WIDGETS = {  # dock name -> the attribute holding its DataPicker
    "Train CEBRA": "data",
    "Consistency runs": "recording",
    "CEBRA shuffle controls": "data",
    "CEBRA goodness of fit": "data",
    "Grid search": "recording",
    "CEBRA best-practice report": "data",
    "CEBRA models": "data",
}


def test_every_widget_offers_the_calcium_sample_layers_and_preselects_behaviour(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    names = list(PICKER_WIDGETS)
    before, after = names[:4], names[4:]  # docked before / after the sample is opened
    pickers = {}
    for name in before:
        _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", name)
        pickers[name] = getattr(widget, PICKER_WIDGETS[name])
    viewer.open_sample("napari-cebra", "calcium_imaging")  # movie, ROIs, behaviour
    for name in after:
        _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", name)
        pickers[name] = getattr(widget, PICKER_WIDGETS[name])
    for name, picker in pickers.items():
        chosen = (picker.neural.value, picker.rois.value, picker.behaviour.value)
        assert chosen == ("calcium movie", "ROIs", "behaviour"), name
        assert _offered(picker.neural) == ["calcium movie"], name
        assert _offered(picker.rois) == ["ROIs"], name
        assert _offered(picker.behaviour) == ["behaviour"], name
