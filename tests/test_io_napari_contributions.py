"""npe2 readers, writers and sample data of napari-cebra, through npe2 (no viewer, no Qt)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

npe2 = pytest.importorskip("npe2")

from napari_cebra.io import napari_contributions as contrib  # noqa: E402


@pytest.fixture(scope="module")
def plugins():
    manager = npe2.PluginManager.instance()
    manager.discover()
    assert "napari-cebra" in manager._manifests
    return manager


def _readers(plugins, path):
    return {r.command for r in plugins.iter_compatible_readers([str(path)])}


def _read(path):
    return npe2.read([str(path)], stack=False, plugin_name="napari-cebra")


def test_manifest_registers_readers_writers_and_samples(plugins):
    manifest = plugins.get_manifest("napari-cebra")
    commands = {c.id for c in manifest.contributions.commands}
    used = {r.command for r in manifest.contributions.readers}
    used |= {w.command for w in manifest.contributions.writers}
    used |= {s.command for s in manifest.contributions.sample_data}
    assert used <= commands
    assert {s.key for s in manifest.contributions.sample_data} == {"calcium_imaging", "place_cells"}


def test_matrix_file_opens_as_a_neural_image(tmp_path, plugins):
    matrix = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    np.save(tmp_path / "session1.npy", matrix)
    assert "napari-cebra.get_table_reader" in _readers(plugins, tmp_path / "session1.npy")
    [(data, meta, kind)] = _read(tmp_path / "session1.npy")
    assert kind == "image" and meta["name"] == "session1"
    np.testing.assert_array_equal(data, matrix)
    assert meta["metadata"]["napari_cebra_kind"] == "neural_matrix"


def test_deeplabcut_csv_opens_as_points_with_a_time_axis(tmp_path):
    columns = pd.MultiIndex.from_product(
        [["DLC"], ["nose", "tail"], ["x", "y", "likelihood"]],
        names=["scorer", "bodyparts", "coords"],
    )
    values = np.arange(24, dtype=float).reshape(4, 6)
    pd.DataFrame(values, columns=columns).to_csv(tmp_path / "mouseDLC.csv")
    [(data, meta, kind)] = _read(tmp_path / "mouseDLC.csv")
    assert kind == "points" and data.shape == (8, 3)
    np.testing.assert_array_equal(data[:2], [[0, 1, 0], [0, 4, 3]])  # (t, y, x)
    assert list(meta["features"]["bodypart"][:2]) == ["nose", "tail"]
    assert meta["metadata"]["napari_cebra_kind"] == "keypoints"
    assert meta["metadata"]["columns"] == ["nose_x", "nose_y", "tail_x", "tail_y"]


def test_suite2p_folder_opens_as_labels_traces_and_mean_image(tmp_path, plugins):
    plane = tmp_path / "suite2p" / "plane0"
    plane.mkdir(parents=True)
    np.save(plane / "F.npy", np.full((2, 10), 5.0))
    np.save(plane / "Fneu.npy", np.ones((2, 10)))
    np.save(plane / "iscell.npy", np.array([[1.0, 0.9], [1.0, 0.7]]))
    stat = np.array(
        [
            {"ypix": np.array([0]), "xpix": np.array([0])},
            {"ypix": np.array([2]), "xpix": np.array([3])},
        ],
        dtype=object,
    )
    np.save(plane / "stat.npy", stat, allow_pickle=True)
    np.save(plane / "ops.npy", {"Ly": 4, "Lx": 5, "meanImg": np.ones((4, 5))}, allow_pickle=True)
    assert "napari-cebra.get_suite2p_reader" in _readers(plugins, tmp_path / "suite2p")
    layers = _read(tmp_path / "suite2p")
    assert [(meta["name"], kind) for _, meta, kind in layers] == [
        ("suite2p mean image", "image"),
        ("suite2p ROIs", "labels"),
        ("suite2p traces", "image"),
    ]
    np.testing.assert_allclose(layers[2][0], np.full((10, 2), 5.0 - 0.7))
    assert layers[1][0][2, 3] == 2


def test_unknown_files_and_folders_are_declined(tmp_path):
    np.save(tmp_path / "movie.npy", np.zeros((3, 4, 5)))  # left to napari's image reader
    (tmp_path / "notes.txt").write_text("hello")
    assert contrib.get_table_reader(str(tmp_path / "movie.npy")) is None
    np.savez(tmp_path / "vectors.npz", a=np.zeros(3), b=np.zeros((2, 2, 2)))
    assert contrib.get_table_reader(str(tmp_path / "vectors.npz")) is None
    np.savez(tmp_path / "ok.npz", a=np.zeros(3), b=np.zeros((2, 2)))
    assert contrib.get_table_reader(str(tmp_path / "ok.npz")) is contrib.read_matrix_layers
    assert contrib.get_table_reader(str(tmp_path / "notes.txt")) is None
    assert contrib.get_table_reader([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) is None
    assert contrib.get_suite2p_reader(str(tmp_path)) is None
    assert contrib.get_suite2p_reader(str(tmp_path / "notes.txt")) is None


def test_broken_file_of_a_known_format_raises_a_clear_error(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    reader = contrib.get_table_reader(str(tmp_path / "broken.npy"))
    assert reader is not None
    with pytest.raises(ValueError, match="broken.npy"):
        reader(str(tmp_path / "broken.npy"))


def test_points_writers_round_trip(tmp_path):
    data = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    features = pd.DataFrame({"frame": np.arange(5), "position": np.linspace(0, 1.6, 5)})
    [written] = contrib.write_points_csv(str(tmp_path / "emb.csv"), data, {"features": features})
    table = pd.read_csv(written)
    assert list(table.columns) == ["dim_0", "dim_1", "dim_2", "frame", "position"]
    np.testing.assert_allclose(table[["dim_0", "dim_1", "dim_2"]].to_numpy(), data, rtol=1e-6)
    np.testing.assert_array_equal(table["frame"], np.arange(5))
    [written] = contrib.write_points_npy(str(tmp_path / "emb"), data, {})
    assert written.endswith("emb.npy")
    np.testing.assert_array_equal(np.load(written), data)
    with pytest.raises(ValueError, match="features have 2 rows but the layer has 5 points"):
        contrib.write_points_csv(str(tmp_path / "x.csv"), data, {"features": features[:2]})


def test_writers_are_offered_for_points_layers(plugins):
    writers = {w.command for w in plugins.iter_compatible_writers(["points"])}
    assert {"napari-cebra.write_points_csv", "napari-cebra.write_points_npy"} <= writers


def test_calcium_sample(plugins):
    manifest = plugins.get_manifest("napari-cebra")
    sample = next(s for s in manifest.contributions.sample_data if s.key == "calcium_imaging")
    layers = sample.open(_registry=plugins.commands)
    kinds = [(meta["name"], kind) for _, meta, kind in layers]
    assert kinds == [("calcium movie", "image"), ("ROIs", "labels"), ("behaviour", "points")]
    movie, rois, behaviour = (data for data, _, _ in layers)
    assert movie.dtype == np.uint16 and movie.shape == (3000, 128, 128)
    assert rois.shape == (128, 128) and rois.max() == 80
    assert layers[2][1]["metadata"]["columns"] == ["position", "right", "left"]
    # one point per frame, just below the field of view, along its width
    np.testing.assert_array_equal(behaviour[:, 0], np.arange(3000))
    assert np.all(behaviour[:, 1] > 128) and np.all(behaviour[:, 1] < 140)
    assert 0 <= behaviour[:, 2].min() < 5 and 120 < behaviour[:, 2].max() <= 127
    features = layers[2][1]["features"]
    assert features["position"].shape == (3000,) and set(np.unique(features["right"])) == {0, 1}


def test_calcium_sample_keeps_the_movie_large(make_napari_viewer):
    """The behaviour does not stretch the main viewer: after Home the movie fills the canvas."""
    from napari_cebra._widgets.forms import DataPicker
    from napari_cebra._widgets.layer_data import behaviour_table

    viewer = make_napari_viewer()
    viewer.open_sample("napari-cebra", "calcium_imaging")
    extent = viewer.layers.extent.world
    assert extent[1][1] - extent[0][1] < 140 and extent[1][2] - extent[0][2] < 140
    table = behaviour_table(viewer.layers["behaviour"])
    assert list(table.columns) == ["position", "right", "left"] and len(table) == 3000
    picker = DataPicker(viewer)
    assert picker.neural.value == "calcium movie" and "behaviour" in picker.behaviour.choices


def test_place_cell_sample():
    layers = contrib.place_cell_sample()
    (neural, neural_meta, _), (behaviour, behaviour_meta, _) = layers
    assert neural_meta["name"] == "neural" and neural.shape == (10178, 120)
    assert behaviour_meta["name"] == "behaviour" and behaviour.shape == (10178, 3)
    assert neural_meta["metadata"]["napari_cebra_kind"] == "neural_matrix"


def test_place_cell_sample_is_drawn_as_a_readable_raster():
    """Time runs left to right over the full width, the neurons fill a strip a third as tall;
    the hidden behaviour sits under it on the same time axis, and hovering a pixel still gives
    [frame, neuron] of the data."""
    from napari.layers import Image

    (neural, neural_meta, _), (behaviour, behaviour_meta, _) = contrib.place_cell_sample()
    raster = Image(neural, **{k: v for k, v in neural_meta.items() if k != "metadata"})
    below = Image(behaviour, **{k: v for k, v in behaviour_meta.items() if k != "metadata"})
    (top, left), (bottom, right) = raster.extent.world
    n_frames = len(neural)
    assert right - left == pytest.approx(n_frames, rel=0.01)
    assert bottom - top == pytest.approx(n_frames / 3, rel=0.02)
    (b_top, b_left), (b_bottom, b_right) = below.extent.world
    assert b_top > bottom and b_bottom - b_top < 0.2 * (bottom - top)
    assert (b_left, b_right) == pytest.approx((left, right))
    frame, neuron = raster.world_to_data([(top + bottom) / 2, 2000.0])
    assert frame == pytest.approx(2000.0) and neuron == pytest.approx(60, abs=1)
    low, high = neural_meta["contrast_limits"]
    assert 0 <= low < high <= neural.max()


def test_contributions_import_no_gui_or_torch():
    import subprocess

    code = (
        "import sys, napari_cebra.io.napari_contributions; "
        "print(sorted(m for m in ('torch', 'qtpy', 'napari', 'vispy', 'PyQt5') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_points_writers_replace_a_file_whole_or_not_at_all(tmp_path, monkeypatch):
    """napari's File ▸ Save Layers with our writers: a write that fails half-way leaves the
    earlier file as it was and no temporary file behind."""
    target = tmp_path / "emb.npy"
    contrib.write_points_npy(str(target), np.ones((4, 3)), {})
    before = target.read_bytes()

    def broken_save(handle, array):
        handle.write(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(contrib.np, "save", broken_save)
    with pytest.raises(OSError, match="emb.npy"):
        contrib.write_points_npy(str(target), np.zeros((4, 3)), {})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]
