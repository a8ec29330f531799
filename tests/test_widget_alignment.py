"""Behaviour aligned to the neural frames by time in the widgets: timestamps carried by the layers,
rates typed in, the frames trained on, the embedding's frames and the time link to the movie."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import (
    BY_FRAME,
    BY_RATES,
    BY_TIMESTAMPS,
    DataPicker,
    neural_frames,
)
from napari_cebra._widgets.session import session_models
from napari_cebra.io.alignment import timestamps_from_rate, wrap_angle
from napari_cebra.io.synthetic import calcium_imaging_session

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
N_NEURAL = 300  # 30 Hz imaging: 0 … 9.967 s
NEURAL_TIMES = timestamps_from_rate(N_NEURAL, 30.0)
CAMERA_TIMES = timestamps_from_rate(1000, 120.0, start_s=0.5)  # 0.5 … 8.825 s
DROPPED = np.arange(300, 320)  # 3.0 … 3.158 s: 20 camera frames lost, a 0.175 s gap


def camera_times() -> np.ndarray:
    return np.delete(CAMERA_TIMES, DROPPED)


def expected_frames() -> np.ndarray:
    """Neural frames inside the camera's span and outside its gap (between samples 299 and 320)."""
    t = NEURAL_TIMES
    in_gap = (t > CAMERA_TIMES[299]) & (t < CAMERA_TIMES[320])
    return np.flatnonzero((t >= CAMERA_TIMES[0]) & (t <= CAMERA_TIMES[-1]) & ~in_gap)


def neural_matrix() -> np.ndarray:
    """Neuron 0 holds the frame number, so the rows a worker gets can be identified."""
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(N_NEURAL, 6)).astype(np.float32)
    matrix[:, 0] = np.arange(N_NEURAL)
    return matrix


def add_timed_layers(viewer) -> None:
    times = camera_times()
    behaviour = np.column_stack([2.0 * times, wrap_angle(3.0 * times)]).astype(np.float32)
    viewer.add_image(neural_matrix(), name="neural", metadata={"timestamps": NEURAL_TIMES})
    viewer.add_image(
        behaviour,
        name="camera",
        metadata={
            "columns": ["position", "heading"],
            "circular_columns": ["heading"],
            "timestamps": times,
        },
        visible=False,
    )


def shown(widget) -> bool:
    """Whether a magicgui widget is not hidden (``visible`` is False until the viewer is shown)."""
    return not widget.native.isHidden()


def small_training(widget, preset: str = "CEBRA-Behavior") -> None:
    widget.params.preset.value = preset
    widget.params.batch_size.value = 32
    widget.params.num_hidden_units.value = 8
    widget.params.max_iterations.value = 3
    widget.params.device.value = "cpu"


def train(qtbot, widget) -> None:
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)


def test_timestamps_on_the_layers_choose_the_frames_trained_on(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    add_timed_layers(viewer)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "Train CEBRA")
    widget.data.neural.value, widget.data.behaviour.value = "neural", "camera"
    assert widget.data.alignment.value == BY_TIMESTAMPS  # both layers carry timestamps
    assert not shown(widget.data.clock_rows[0]) and not shown(widget.data.common_prefix)
    frames = expected_frames()
    n_out = N_NEURAL - len(frames)
    assert n_out == 15 + 35 + 5  # before 0.5 s, after 8.825 s, inside the 3.0–3.175 s gap
    assert widget.data.alignment_note.value == (
        f"Aligned by time: {len(frames)} neural frames kept. Excluded {n_out} of 300 neural "
        "frames without behaviour: 15 before the behaviour starts (0.500 s); 35 after it ends "
        "(8.825 s); 5 in gaps of the behaviour longer than 0.0417 s (dropped or NaN samples)."
    )

    small_training(widget)
    widget.data.valid_fraction.value = 0.2
    request, description = widget.build_request()
    np.testing.assert_array_equal(request.neural.frames, frames)
    assert request.n_frames == len(frames) and description["alignment"] == BY_TIMESTAMPS
    kept_times = NEURAL_TIMES[frames]
    position, heading = request.labels[0].T
    np.testing.assert_allclose(position, 2.0 * kept_times, rtol=1e-5, atol=1e-4)
    angle_error = np.angle(np.exp(1j * (heading - 3.0 * kept_times)))
    assert np.abs(angle_error).max() < 1e-4  # interpolated on the circle, even across ±pi

    selection = widget.data.read()
    steps = neural_frames(selection)
    with pytest.raises(StopIteration) as done:
        next(steps)
    np.testing.assert_array_equal(done.value.value[:, 0], frames)  # the kept rows, in order

    train(qtbot, widget)
    entry = list(session_models())[-1]
    assert entry.trained_on["n_frames"] == len(frames)
    points = embedding_view(viewer).layer(entry.name)
    assert points.data.shape == (len(frames), 3)
    np.testing.assert_array_equal(points.features["frame"], frames)
    np.testing.assert_allclose(points.features["position"], 2.0 * kept_times, atol=1e-4)
    n_train = int(round(0.8 * len(frames)))
    assert (points.features["split"] == "train").sum() == n_train


def test_rates_typed_in_align_a_movie_and_keep_the_time_link(make_napari_viewer, qtbot):
    session = calcium_imaging_session(n_frames=120, shape=(32, 32), n_cells=6, seed=3)
    behaviour_times = timestamps_from_rate(470, 120.0, start_s=0.21)  # 0.21 … 4.11 s
    running = (behaviour_times > 2.0).astype(np.float32)  # a state switching on at 2.0 s
    viewer = make_napari_viewer()
    viewer.add_image(session.movie, name="movie")
    viewer.add_labels(session.rois, name="rois")
    viewer.add_image(
        np.column_stack([np.sin(behaviour_times), running]).astype(np.float32),
        name="tracking",
        metadata={"columns": ["position", "running"], "discrete_columns": ["running"]},
        visible=False,
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "Train CEBRA")
    picker = widget.data
    picker.neural.value, picker.rois.value = "movie", "rois"
    picker.behaviour.value = "tracking"
    assert picker.alignment.value == BY_FRAME  # no timestamps: by frame index, which refuses
    assert "has 120 frames but behaviour layer 'tracking' has 470" in (picker.alignment_note.value)
    picker.alignment.value = BY_RATES
    assert shown(picker.clock_rows[1]) and not shown(picker.common_prefix)
    picker.behaviour_rate.value, picker.behaviour_start.value = 120.0, 0.21
    picker.variables.value = ["position"]
    picker.discrete.value = "running"
    assert picker.alignment_note.value.startswith(
        "Aligned by time: 113 neural frames kept. Excluded 7 of 120 neural frames without "
        "behaviour: 7 before the behaviour starts (0.210 s)."
    )

    small_training(widget)
    widget.data.valid_fraction.value = 0.0
    train(qtbot, widget)
    frames = np.arange(7, 120)  # frame 6 is at 0.2 s, before the behaviour
    entry = list(session_models())[-1]
    assert entry.trained_on["alignment"] == BY_RATES
    assert entry.trained_on["clocks"] == [30.0, 0.0, 120.0, 0.21]
    view = embedding_view(viewer)
    points = view.layer(entry.name)
    assert points.data.shape == (len(frames), 3)  # traces of the whole movie, then kept rows
    np.testing.assert_array_equal(points.features["frame"], frames)
    times = frames / 30.0
    np.testing.assert_allclose(points.features["position"], np.sin(times), atol=2e-4)
    # the state holds from the first sample after 2.0 s (2.0017 s): frame 61 is at 2.033 s
    np.testing.assert_array_equal(points.features["running"], (frames >= 61).astype(np.int64))

    points.selected_data = {0}  # the first point is movie frame 7
    assert viewer.dims.current_step[0] == 7
    viewer.dims.set_current_step(0, 50)
    assert view.highlighted_frames()[-1] == 50
    np.testing.assert_allclose(view.viewer.layers["current frame"].data[-1], points.data[43])


def test_choices_errors_and_restoring_a_model_description(make_napari_viewer):
    viewer = make_napari_viewer()
    add_timed_layers(viewer)
    viewer.add_image(np.zeros((1000, 2), np.float32), name="untimed", visible=False)
    picker = DataPicker(viewer)
    picker.neural.value, picker.behaviour.value = "neural", "camera"
    assert picker.alignment.value == BY_TIMESTAMPS

    picker.behaviour.value = "untimed"  # without timestamps on both: back to frame index
    assert picker.alignment.value == BY_FRAME
    with pytest.raises(ValueError, match="align them by 'timestamps' or 'sampling rates'"):
        picker.read()
    picker.alignment.value = BY_TIMESTAMPS
    with pytest.raises(ValueError, match=r"Layer 'untimed' carries no timestamps"):
        picker.read()
    assert "Layer 'untimed' carries no timestamps" in picker.alignment_note.value

    picker.behaviour.value = "camera"
    camera = viewer.layers["camera"]
    camera.metadata["timestamps"] = camera_times()[::-1].copy()
    with pytest.raises(ValueError, match=r"timestamps'\] of layer 'camera' must be strictly"):
        picker.read()
    camera.metadata["timestamps"] = camera_times() + 100.0
    with pytest.raises(ValueError, match=r"span 0.000 s to 9.967 s .* 100.500 s to 108.825 s"):
        picker.read()
    camera.metadata["timestamps"] = camera_times()
    camera.metadata["circular_columns"] = ["yaw"]
    with pytest.raises(ValueError, match=r"names \['yaw'\], which are not behaviour columns"):
        picker.read()
    camera.metadata["circular_columns"] = ["heading"]

    # the same recording by rates: the camera clock typed in (dropped frames unknown to it)
    picker.alignment.value = BY_RATES
    picker.behaviour_rate.value, picker.behaviour_start.value = 120.0, 0.5
    by_rates = picker.read()
    assert by_rates.n_frames == 300 - 15 - 40  # 980 rows at 120 Hz end at 8.658 s
    assert by_rates.time_layer is None

    other = DataPicker(viewer)
    other.set_from_description(by_rates.description)
    assert other.alignment.value == BY_RATES
    assert (other.behaviour_rate.value, other.behaviour_start.value) == (120.0, 0.5)
    head = other.read(100)
    np.testing.assert_array_equal(head.frames, by_rates.frames[:100])
    np.testing.assert_array_equal(head.neural.frames, by_rates.frames[:100])
    assert head.labels[0].shape == (100, 2) and list(head.table.index) == list(range(15, 115))


def test_same_length_without_timestamps_pairs_frame_by_frame(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(neural_matrix(), name="neural")
    viewer.add_image(np.arange(600, dtype=np.float32).reshape(300, 2), name="b", visible=False)
    picker = DataPicker(viewer)
    picker.neural.value, picker.behaviour.value = "neural", "b"
    selection = picker.read()
    assert picker.alignment.value == BY_FRAME and shown(picker.common_prefix)
    assert selection.frames is None and selection.neural.frames is None
    assert selection.message == "" and not shown(picker.alignment_note)
    np.testing.assert_array_equal(selection.labels[0][:, 0], np.arange(0, 600, 2))
