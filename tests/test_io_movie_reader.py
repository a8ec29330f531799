"""The lazy TIFF movie reader contribution, and napari showing a LazyMovie without loading it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_cebra.io.movie_reader import get_movie_reader, read_movie
from napari_cebra.io.movies import LazyMovie, open_movie
from napari_cebra.io.napari_contributions import KIND_KEY


@pytest.fixture
def stack(tmp_path):
    movie = np.arange(30 * 16 * 12, dtype=np.uint16).reshape(30, 16, 12)
    path = tmp_path / "session 1.tif"
    tifffile.imwrite(path, movie)
    return path, movie


def test_a_tiff_stack_is_read_as_a_lazy_movie_layer(stack):
    path, movie = stack
    reader = get_movie_reader(str(path))
    assert reader is read_movie
    assert get_movie_reader([str(path)]) is read_movie
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image" and isinstance(data, LazyMovie)
    np.testing.assert_array_equal(data[12], movie[12])
    assert kwargs["name"] == "session 1"
    assert kwargs["metadata"] == {KIND_KEY: "movie", "path": str(path)}
    low, high = kwargs["contrast_limits"]
    assert movie.min() <= low < high <= movie.max()


def test_files_that_are_not_3d_stacks_are_left_to_napari(tmp_path, stack):
    tifffile.imwrite(tmp_path / "image.tif", np.zeros((16, 12), np.uint16))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((16, 12, 3), np.uint8), photometric="rgb")
    np.save(tmp_path / "movie.npy", np.zeros((3, 4, 4), np.uint16))
    for name in ["image.tif", "rgb.tif", "movie.npy", "missing.tif"]:
        assert get_movie_reader(str(tmp_path / name)) is None, name
    assert get_movie_reader([str(stack[0]), str(stack[0])]) is None


@pytest.mark.gui
def test_napari_shows_a_lazy_movie_reading_only_the_frames_it_shows(stack):
    components = pytest.importorskip("napari.components")
    path, movie = stack
    lazy = open_movie(path)
    reads = []

    def counting_read(start, stop):
        reads.append((start, stop))
        return lazy.read_frames(start, stop)

    counted = LazyMovie(counting_read, lazy.shape, lazy.dtype, "counted")
    [(_, kwargs, _)] = read_movie(path)
    viewer = components.ViewerModel()
    layer = viewer.add_image(counted, **kwargs)
    viewer.dims.set_current_step(0, 17)
    assert layer.data is counted
    assert reads and all(stop - start == 1 for start, stop in reads), reads
    assert (17, 18) in reads
    np.testing.assert_array_equal(layer.get_value((17, 3, 4)), movie[17, 3, 4])


def test_the_manifest_offers_the_lazy_tiff_reader(stack):
    """napari finds the reader for a .tif through the manifest, and reading through npe2 gives
    the lazy movie."""
    npe2 = pytest.importorskip("npe2")
    path, movie = stack
    manager = npe2.PluginManager.instance()
    manager.discover()
    readers = {reader.command for reader in manager.iter_compatible_readers([str(path)])}
    assert "napari-cebra.get_movie_reader" in readers
    [(data, _kwargs, kind)] = npe2.read([str(path)], stack=False, plugin_name="napari-cebra")
    assert kind == "image" and isinstance(data, LazyMovie)
    np.testing.assert_array_equal(data[29], movie[29])
    data.close()
