"""Exporting embeddings: data files, publication figures and movies (issue 16, item 6)."""

from __future__ import annotations

import errno
import importlib.util

import h5py
import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from napari_cebra.core import files
from napari_cebra.io.matrices import load_matrix
from napari_cebra.workflows import export
from napari_cebra.workflows.export import (
    embedding_figure,
    embedding_movie,
    save_embedding,
    save_figure,
)


@pytest.fixture
def embedding(rng) -> np.ndarray:
    """A 3-D float32 embedding of 50 frames with values that need all their digits."""
    return rng.normal(size=(50, 3)).astype(np.float32) / 3


@pytest.fixture
def numeric_features(rng) -> pd.DataFrame:
    return pd.DataFrame(
        {"position": rng.uniform(0, 1.6, size=50), "trial": np.arange(50) // 10},
        index=np.arange(100, 150),  # a non-default index: features are matched by position
    )


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def _folder_names(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


# --- save_embedding -----------------------------------------------------------------------------


def test_csv_round_trip_through_our_reader(tmp_path, embedding, numeric_features):
    features = numeric_features.assign(running=np.arange(50) % 3 == 0)
    path = save_embedding(tmp_path / "embedding.csv", embedding, features)
    assert path == tmp_path / "embedding.csv"
    header = path.read_text().splitlines()[0]
    assert header == "frame,dim_0,dim_1,dim_2,position,trial,running"
    matrix = load_matrix(path)  # float32, header recognised as text
    assert matrix.shape == (50, 7)
    np.testing.assert_array_equal(matrix[:, 6], np.arange(50) % 3 == 0)
    np.testing.assert_array_equal(matrix[:, 0], np.arange(50))
    np.testing.assert_array_equal(matrix[:, 1:4], embedding)
    np.testing.assert_array_equal(matrix[:, 5], numeric_features["trial"])
    table = pd.read_csv(path)  # float64 features are exact too
    np.testing.assert_array_equal(table["position"], numeric_features["position"])


def test_csv_keeps_text_features(tmp_path, embedding):
    features = pd.DataFrame(
        {"side": ["left, up", "right"] * 25, "speed": np.linspace(0, 1, 50)},
    )
    features.loc[3, "side"] = None
    path = save_embedding(tmp_path / "embedding.csv", embedding, features)
    table = pd.read_csv(path, keep_default_na=False)
    assert list(table.columns) == ["frame", "dim_0", "dim_1", "dim_2", "side", "speed"]
    assert table["side"].tolist()[:4] == ["left, up", "right", "left, up", ""]
    np.testing.assert_array_equal(table["speed"], features["speed"])
    np.testing.assert_array_equal(
        table[["dim_0", "dim_1", "dim_2"]].to_numpy(np.float32), embedding
    )


def test_npz_round_trip_without_pickles(tmp_path, embedding, numeric_features):
    features = numeric_features.assign(side=["left", "right"] * 25, running=np.arange(50) % 3 == 0)
    features.loc[120, "side"] = np.nan
    path = save_embedding(tmp_path / "embedding.npz", embedding, features)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == [
            "embedding",
            "frame",
            "position",
            "running",
            "side",
            "trial",
        ]
        np.testing.assert_array_equal(archive["embedding"], embedding)
        assert archive["embedding"].dtype == np.float32
        np.testing.assert_array_equal(archive["frame"], np.arange(50))
        np.testing.assert_array_equal(archive["position"], numeric_features["position"])
        np.testing.assert_array_equal(archive["trial"], numeric_features["trial"])
        assert archive["running"].dtype == bool
        assert archive["side"].dtype.kind == "U"
        assert archive["side"].tolist()[19:22] == ["right", "", "right"]
    np.testing.assert_array_equal(load_matrix(path, key="embedding"), embedding)


def test_npz_accepts_column_names_that_savez_would_misread(tmp_path, embedding):
    features = pd.DataFrame({"file": np.ones(50), "allow_pickle": np.zeros(50)})
    path = save_embedding(tmp_path / "embedding.npz", embedding, features)
    with np.load(path, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["file"], np.ones(50))
        np.testing.assert_array_equal(archive["allow_pickle"], np.zeros(50))


def test_h5_round_trip(tmp_path, embedding, numeric_features):
    features = numeric_features.assign(side=["gauche", "droite é"] * 25)
    path = save_embedding(tmp_path / "embedding.h5", embedding, features)
    with h5py.File(path, "r") as file:
        assert sorted(file) == ["embedding", "frame", "position", "side", "trial"]
        np.testing.assert_array_equal(file["embedding"][()], embedding)
        np.testing.assert_array_equal(file["frame"][()], np.arange(50))
        np.testing.assert_array_equal(file["position"][()], numeric_features["position"])
        assert file["side"].asstr()[()].tolist()[:2] == ["gauche", "droite é"]
    np.testing.assert_array_equal(load_matrix(path, key="embedding"), embedding)


def test_embedding_without_features_and_tilde(tmp_path, monkeypatch, embedding):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = save_embedding("~/plain.npz", embedding)
    assert path == tmp_path / "plain.npz"
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["embedding", "frame"]


@pytest.mark.parametrize("name", ["embedding.npy", "embedding.txt", "embedding"])
def test_unknown_embedding_suffix(tmp_path, embedding, name):
    with pytest.raises(ValueError, match=r"\.csv, \.npz, \.h5"):
        save_embedding(tmp_path / name, embedding)
    assert _folder_names(tmp_path) == []


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (pd.DataFrame({"x": np.ones(49)}), "49 rows"),
        (pd.DataFrame({"frame": np.ones(50)}), "reserved"),
        (pd.DataFrame({"dim_1": np.ones(50)}), "reserved"),
        (pd.DataFrame({"1.5": np.ones(50)}), "must be text"),
        (pd.DataFrame({"a/b": np.ones(50)}), "must be text"),
        (pd.DataFrame(np.ones((50, 2)), columns=["x", "x"]), "not unique"),
    ],
)
def test_bad_features(tmp_path, embedding, features, message):
    with pytest.raises(ValueError, match=message):
        save_embedding(tmp_path / "embedding.csv", embedding, features)


def test_bad_embedding(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        save_embedding(tmp_path / "embedding.csv", np.ones(10))


@pytest.mark.parametrize("suffix", [".csv", ".npz", ".h5"])
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, embedding, suffix):
    path = tmp_path / f"embedding{suffix}"
    path.write_bytes(b"old")

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match=f"could not write {path}"):
        save_embedding(path, embedding)
    assert _folder_names(tmp_path) == [path.name]
    assert path.read_bytes() == b"old"


def test_failure_between_arrays_leaves_no_file(tmp_path, monkeypatch, embedding):
    written = []
    real = np.lib.format.write_array

    def fail_on_second(handle, array, **kwargs):
        if written:
            raise RuntimeError("interrupted")
        written.append(array)
        real(handle, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_second)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_embedding(tmp_path / "embedding.npz", embedding)
    assert written and _folder_names(tmp_path) == []


# --- figures ------------------------------------------------------------------------------------


def test_png_has_requested_pixel_size_and_colour_bar(tmp_path, embedding):
    figure = embedding_figure(
        embedding, np.linspace(0, 5, 50), colour_label="time (s)", size=(2, 1.5), dpi=60
    )
    main, bar = figure.axes
    assert (main.get_xlabel(), main.get_ylabel(), main.get_zlabel()) == (
        "latent 1",
        "latent 2",
        "latent 3",
    )
    assert bar.get_ylabel() == "time (s)"
    path = save_figure(figure, tmp_path / "figure.png")
    with Image.open(path) as image:
        assert image.size == (120, 90)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # something was drawn


def test_figure_axes_labels_and_2d(embedding):
    figure = embedding_figure(
        embedding, axes=(2, 0), axis_labels=("speed", "angle"), title="run 1", dpi=50
    )
    (ax,) = figure.axes
    assert ax.name == "rectilinear"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("speed", "angle", "run 1")
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets, embedding[:, [2, 0]])
    assert embedding_figure(embedding[:, :2], dpi=50).axes[0].name == "rectilinear"
    assert embedding_figure(embedding, axes=(2, 1, 0), dpi=50).axes[0].get_xlabel() == "latent 3"


def test_categorical_colours_draw_a_legend(embedding):
    sides = pd.Categorical(["left", "right", "rest"] * 16 + ["left", "left"])
    figure = embedding_figure(embedding, sides, colour_label="side", dpi=50)
    (ax,) = figure.axes  # no colour bar
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "side"
    assert [text.get_text() for text in legend.get_texts()] == ["left", "rest", "right"]
    counts = [len(collection.get_offsets()) for collection in ax.collections]
    assert counts == [18, 16, 16]
    colours = {tuple(collection.get_facecolor()[0][:3]) for collection in ax.collections}
    assert len(colours) == 3


def test_text_colours_are_categories(embedding):
    figure = embedding_figure(embedding[:, :2], ["a", "b"] * 25, dpi=50)
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert texts == ["a", "b"]


def test_figure_errors(embedding):
    with pytest.raises(ValueError, match="4 labels"):
        embedding_figure(embedding, np.arange(4.0))
    with pytest.raises(ValueError, match="dimension 5"):
        embedding_figure(embedding, axes=(0, 5))
    with pytest.raises(ValueError, match="3 axis labels"):
        embedding_figure(embedding, axis_labels=("a", "b", "c"), axes=(0, 1))


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_vector_formats(tmp_path, embedding, suffix, magic):
    figure = embedding_figure(embedding, np.arange(50.0), colour_label="frame", dpi=50)
    path = save_figure(figure, tmp_path / f"figure{suffix.upper()}")
    assert path.read_bytes().startswith(magic)


def test_unknown_figure_suffix(tmp_path, embedding):
    with pytest.raises(ValueError, match=r"'\.jpg' is not one of \.png, \.svg, \.pdf"):
        save_figure(embedding_figure(embedding, dpi=50), tmp_path / "figure.jpg")
    assert _folder_names(tmp_path) == []


# --- movies -------------------------------------------------------------------------------------


def _frames(path) -> np.ndarray:
    return iio.imread(path, index=None)


def test_rotating_gif(tmp_path, embedding):
    path = embedding_movie(
        tmp_path / "rotate.gif", embedding, np.arange(50.0), n_frames=10, size=(1, 0.75), dpi=40
    )
    frames = _frames(path)
    assert frames.shape[:3] == (10, 30, 40)
    different = [not np.array_equal(frames[0], frame) for frame in frames[1:]]
    assert all(different)
    assert _folder_names(tmp_path) == ["rotate.gif"]


def test_trail_gif_moves(tmp_path, embedding):
    path = embedding_movie(
        tmp_path / "trail.gif",
        embedding[:, :2],
        ["a", "b"] * 25,
        mode="trail",
        n_frames=10,
        trail=3,
        size=(1, 1),
        dpi=40,
    )
    frames = _frames(path)
    assert frames.shape[:3] == (10, 40, 40)
    assert all(not np.array_equal(a, b) for a, b in zip(frames[:-1], frames[1:], strict=True))


def test_trail_in_3d_with_default_trail(tmp_path, embedding):
    path = embedding_movie(tmp_path / "trail.gif", embedding, mode="trail", n_frames=3, dpi=20)
    assert _frames(path).shape[:3] == (3, 80, 80)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("movie.avi", {}, r"'\.avi' is not one of \.gif, \.mp4"),
        ("movie.gif", {"mode": "spin"}, "Unknown movie mode 'spin'"),
        ("movie.gif", {"n_frames": 0}, "must be positive"),
        ("movie.gif", {"trail": -1, "mode": "trail"}, "trail must be"),
    ],
)
def test_movie_errors(tmp_path, embedding, name, options, message):
    with pytest.raises(ValueError, match=message):
        embedding_movie(tmp_path / name, embedding, **options)
    assert _folder_names(tmp_path) == []


def test_rotation_needs_three_dimensions(tmp_path, embedding):
    with pytest.raises(ValueError, match="3-D embedding"):
        embedding_movie(tmp_path / "movie.gif", embedding[:, :2], n_frames=2, dpi=20)


def test_mp4_without_ffmpeg_names_the_package(tmp_path, monkeypatch, embedding):
    monkeypatch.setattr(export, "_ffmpeg_available", lambda: False)
    with pytest.raises(ValueError, match="imageio-ffmpeg"):
        embedding_movie(tmp_path / "movie.mp4", embedding)
    assert _folder_names(tmp_path) == []


@pytest.mark.skipif(
    importlib.util.find_spec("imageio_ffmpeg") is None, reason="optional imageio-ffmpeg missing"
)
def test_mp4(tmp_path, embedding):
    path = embedding_movie(tmp_path / "movie.mp4", embedding, n_frames=6, size=(1, 1), dpi=41)
    frames = iio.imread(path, index=None, plugin="FFMPEG")  # odd size padded to even
    assert frames.shape[:3] == (6, 42, 42)
    assert _folder_names(tmp_path) == ["movie.mp4"]


def test_gif_magic(tmp_path, embedding):
    path = embedding_movie(tmp_path / "movie.gif", embedding, n_frames=2, dpi=20)
    assert path.read_bytes()[:6] == b"GIF89a"


def test_frames_name_the_recording_frame_of_each_row(tmp_path, embedding):
    frames = np.arange(len(embedding)) * 3 + 7
    path = save_embedding(tmp_path / "embedding.npz", embedding, frames=frames)
    with np.load(path, allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["frame"], frames)
    with pytest.raises(ValueError, match=f"frames must be {len(embedding)} integers"):
        save_embedding(tmp_path / "bad.npz", embedding, frames=frames[:-1])
    with pytest.raises(ValueError, match="dtype float64"):
        save_embedding(tmp_path / "bad.npz", embedding, frames=frames * 1.0)
    assert not (tmp_path / "bad.npz").exists()
