"""The export dock with a real viewer: data, figure and movie files of the embedding dock's view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.export_widget import ExportWidget

pytestmark = pytest.mark.gui

N_FRAMES = 40
EXPORT_DOCK = "CEBRA export"
WAIT_MS = 60_000


def _export_dock(viewer) -> ExportWidget:
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget, name=EXPORT_DOCK, area="right")
    return widget


@pytest.fixture
def viewer(make_napari_viewer):
    """A movie, a 5-D embedding (shown on axes 3, 1, 2, coloured by speed) and the export dock.

    Only the viewer is returned (see tests/test_widget_embedding.py: a fixture value that holds
    the embedding view would outlive the viewer and fail napari's leak check).
    """
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_FRAMES, 8, 8), dtype=np.uint16), name="movie")
    view = embedding_view(viewer)
    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {"position": np.linspace(0, 1.6, N_FRAMES), "speed": rng.uniform(size=N_FRAMES)}
    )
    view.add_embedding(
        rng.normal(size=(N_FRAMES, 5)), name="emb", features=features, time_layer="movie"
    )
    view.axis_spins[0].value = 3
    view.color_by.value = "speed"
    view.colormap.value = "magma"
    _export_dock(viewer)
    return viewer


def _widget(viewer) -> ExportWidget:
    return viewer.window.dock_widgets[EXPORT_DOCK]


def test_save_embedding_writes_all_frames_and_features(viewer, tmp_path):
    widget = _widget(viewer)
    entry = embedding_view(viewer).entries["emb"]
    assert widget.embedding.value == "emb"
    widget.data_file.value = tmp_path / "emb.npz"
    widget.save_data_button.click()
    with np.load(tmp_path / "emb.npz", allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["embedding"], entry.embedding)
        np.testing.assert_array_equal(saved["frame"], np.arange(N_FRAMES))
        np.testing.assert_allclose(saved["speed"], entry.features["speed"])
        assert set(saved.files) == {"embedding", "frame", "position", "speed"}
    assert str(tmp_path / "emb.npz") in widget.status.value


def test_figure_uses_the_docks_axes_colouring_size_and_dpi(viewer, tmp_path):
    import imageio.v3 as iio

    widget = _widget(viewer)
    widget.figure_file.value = tmp_path / "emb.png"
    widget.figure_width.value, widget.figure_height.value, widget.figure_dpi.value = 2, 1.5, 60
    widget.figure_title.value = "place cells"
    widget.save_figure_button.click()
    assert iio.imread(tmp_path / "emb.png").shape[:2] == (90, 120)
    figure = widget.last_figure
    scatter, colour_bar = figure.axes
    assert (scatter.get_xlabel(), scatter.get_ylabel(), scatter.get_zlabel()) == (
        "latent 4",
        "latent 2",
        "latent 3",
    )
    assert colour_bar.get_ylabel() == "speed"
    assert scatter.collections[-1].get_cmap().name == "magma"
    assert scatter.get_title() == "place cells"
    assert "coloured by speed" in widget.status.value

    widget.figure_file.value = tmp_path / "emb.svg"
    widget.save_figure_button.click()
    assert (tmp_path / "emb.svg").read_text().lstrip().startswith("<?xml")


def test_movie_is_written_in_the_background(viewer, tmp_path, qtbot):
    import imageio.v3 as iio

    widget = _widget(viewer)
    widget.movie_file.value = tmp_path / "emb.gif"
    widget.movie_mode.value = "rotate"
    widget.movie_frames.value, widget.movie_fps.value = 4, 5
    widget.movie_size.value, widget.movie_dpi.value = 1.5, 40
    assert widget.start_movie() is not None
    assert not widget.save_data_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    assert iio.imread(tmp_path / "emb.gif", index=None).shape[:3] == (4, 60, 60)
    assert widget.status.value.startswith("Saved the rotate movie") and "emb.gif" in (
        widget.status.value
    )
    assert widget.save_data_button.isEnabled()


@pytest.mark.parametrize(
    ("box", "button", "name", "reason"),
    [
        ("data_file", "save_data_button", "emb.txt", "must end in one of .csv, .npz, .h5"),
        ("figure_file", "save_figure_button", "emb.jpg", "must end in one of .png, .svg, .pdf"),
        ("movie_file", "run_button", "emb.avi", "must end in one of .gif, .mp4"),
        ("figure_file", "save_figure_button", "", "no figure file chosen"),
    ],
)
def test_bad_file_names_are_refused(viewer, tmp_path, box, button, name, reason):
    widget = _widget(viewer)
    if name:  # else left as a new dock has it: empty
        getattr(widget, box).value = tmp_path / name
    getattr(widget, button).click()
    assert widget.status.value.startswith("Not started:") and reason in widget.status.value
    assert list(tmp_path.iterdir()) == []
    assert not widget.runner.running


def test_mp4_without_imageio_ffmpeg_is_refused(viewer, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a),
    )
    widget = _widget(viewer)
    widget.movie_file.value = tmp_path / "emb.mp4"
    assert widget.start_movie() is None
    assert "imageio-ffmpeg" in widget.status.value and widget.status.value.startswith("Not started")
    assert list(tmp_path.iterdir()) == []


def test_without_an_embedding_nothing_starts(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    widget = _export_dock(viewer)
    assert widget.embedding.choices == ()
    widget.data_file.value = tmp_path / "emb.npz"
    widget.save_data_button.click()
    assert widget.status.value.startswith("Not started: no embedding to export")
    widget.movie_file.value = tmp_path / "emb.gif"
    assert widget.start_movie() is None
    assert list(tmp_path.iterdir()) == []


def test_the_picker_follows_the_embedding_dock(viewer, qtbot):
    widget = _widget(viewer)
    view = embedding_view(viewer)
    view.add_embedding(np.zeros((N_FRAMES, 2)) + np.arange(N_FRAMES)[:, None], name="flat")
    qtbot.waitUntil(lambda: widget.embedding.value == "flat", timeout=WAIT_MS)
    assert widget.embedding.choices == ("emb", "flat")
    view.choice.value = "emb"
    assert widget.embedding.value == "emb"
    view.choice.value = "flat"
    view.remove_button.native.click()
    qtbot.waitUntil(lambda: widget.embedding.choices == ("emb",), timeout=WAIT_MS)
    assert widget.embedding.value == "emb"


def test_an_embedding_of_some_frames_is_saved_with_its_movie_frames(viewer, tmp_path):
    """An embedding of the frames kept by a time alignment (frames 5, 7, 9, ...): the file's
    ``frame`` column holds those movie frames, not the row numbers."""
    view = embedding_view(viewer)
    frames = np.arange(5, N_FRAMES, 2)
    features = pd.DataFrame({"frame": frames, "position": frames / 10.0})
    embedding = np.random.default_rng(2).normal(size=(len(frames), 3))
    view.add_embedding(embedding, name="aligned", features=features, time_layer="movie")
    widget = _widget(viewer)
    widget.embedding.value = "aligned"
    widget.data_file.value = tmp_path / "aligned.csv"
    widget.save_data_button.click()
    saved = pd.read_csv(tmp_path / "aligned.csv")
    assert list(saved.columns) == ["frame", "dim_0", "dim_1", "dim_2", "position"]
    np.testing.assert_array_equal(saved["frame"], frames)
    np.testing.assert_allclose(saved[["dim_0", "dim_1", "dim_2"]], embedding, rtol=1e-6)
