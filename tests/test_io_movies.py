"""Movies opened lazily from TIFF, .npy and HDF5 files, and ROI traces extracted from them."""

from __future__ import annotations

import threading
import tracemalloc

import h5py
import numpy as np
import pytest
import tifffile

from napari_cebra.io.movies import LazyMovie, open_movie
from napari_cebra.io.traces import extract_traces, iter_extract_traces


def _write(kind: str, folder, movie: np.ndarray):
    """Write ``movie`` as ``kind``; the path and the ``key`` to open it with."""
    if kind == "npy":
        path = folder / "movie.npy"
        np.save(path, movie)
        return path, None
    if kind.startswith("tiff"):
        path = folder / "movie.tif"
        compression = "zlib" if kind == "tiff-zlib" else None
        tifffile.imwrite(
            path, movie, compression=compression, byteorder=">" if kind == "tiff-be" else "<"
        )
        return path, None
    path = folder / ("movie.nwb" if kind == "nwb" else "movie.h5")
    with h5py.File(path, "w") as handle:
        if kind == "h5-chunked":
            handle.create_dataset(
                "movie", data=movie, chunks=(7, *movie.shape[1:]), compression="lzf"
            )
        else:
            handle.create_dataset("acquisition/TwoPhotonSeries/data", data=movie)
            handle.create_dataset("processing/other", data=movie[:, :2])  # a second 3-D dataset
    return path, None if kind == "h5-chunked" else "acquisition/TwoPhotonSeries/data"


KINDS = ["npy", "tiff", "tiff-be", "tiff-zlib", "h5-chunked", "nwb"]


@pytest.fixture
def small():
    rng = np.random.default_rng(3)
    movie = rng.integers(0, 5000, size=(45, 24, 20)).astype(np.uint16)
    rois = np.zeros((24, 20), dtype=np.int32)
    rois[2:9, 3:8] = 4
    rois[12:20, 10:18] = 1
    rois[0, 19] = 9
    return movie, rois


@pytest.mark.parametrize("kind", KINDS)
def test_lazy_movie_indexes_like_the_array(tmp_path, small, kind):
    movie, _ = small
    path, key = _write(kind, tmp_path, movie)
    with open_movie(path, key) as lazy:
        assert lazy.shape == movie.shape and lazy.ndim == 3 and len(lazy) == 45
        assert lazy.dtype.kind == "u" and lazy.dtype.itemsize == 2
        assert lazy.nbytes == movie.nbytes
        for index in [
            slice(3, 17),
            5,
            -1,
            (5, slice(1, 3), slice(None, None, 2)),
            slice(None, None, 7),
            [1, -1, 4],
            (Ellipsis, 3),
            slice(40, 100),
            slice(10, 2),
        ]:
            np.testing.assert_array_equal(lazy[index], movie[index], err_msg=str(index))
        np.testing.assert_array_equal(np.asarray(lazy), movie)
        with pytest.raises(IndexError, match="frame 45 is out of range"):
            lazy[45]


@pytest.mark.parametrize("kind", KINDS)
def test_traces_of_a_lazy_movie_equal_the_in_memory_ones(tmp_path, small, kind):
    movie, rois = small
    path, key = _write(kind, tmp_path, movie)
    expected = extract_traces(movie, rois)
    with open_movie(path, key) as lazy:
        np.testing.assert_array_equal(extract_traces(lazy, rois, chunk_frames=8), expected)
        np.testing.assert_array_equal(extract_traces(lazy, rois), expected)


def test_a_dask_wrapped_lazy_movie_gives_the_same_traces(tmp_path, small):
    da = pytest.importorskip("dask.array")
    movie, rois = small
    path, _ = _write("npy", tmp_path, movie)
    lazy = open_movie(path)
    wrapped = da.from_array(lazy, chunks=(1, *movie.shape[1:]))  # what napari would display
    np.testing.assert_array_equal(extract_traces(wrapped, rois), extract_traces(movie, rois))


@pytest.mark.parametrize("kind", ["npy", "tiff", "h5-chunked"])
def test_extraction_of_a_100_mb_movie_allocates_a_small_part_of_it(tmp_path, kind):
    frames = np.arange(512 * 256, dtype=np.uint16).reshape(1, 512, 256)
    movie = np.repeat(frames, 400, axis=0) + np.arange(400, dtype=np.uint16)[:, None, None]
    rois = np.zeros((512, 256), dtype=np.int32)
    rois[100:140, 30:60], rois[300:310, 200:250] = 1, 2
    path, key = _write(kind, tmp_path, movie)
    expected = movie[:, rois == 1].mean(axis=1), movie[:, rois == 2].mean(axis=1)
    del movie, frames
    tracemalloc.start()
    try:
        with open_movie(path, key) as lazy:
            traces = extract_traces(lazy, rois, chunk_frames=40)  # 10 MB chunks
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    chunk_bytes = 40 * 512 * 256 * 2
    # the chunk being reduced and the one read ahead (h5py); .npy and TIFF chunks are mapped
    # windows of the file, invisible to tracemalloc: what it sees are the ROI pixel gathers
    assert peak < 2.5 * chunk_bytes < 105e6 / 4, f"{peak / 1e6:.1f} MB for a 105 MB movie"
    np.testing.assert_allclose(traces, np.stack(expected, axis=1), rtol=1e-6)


def test_stopping_the_generator_stops_reading_and_the_reader_thread(tmp_path, small):
    movie, rois = small
    path, _ = _write("npy", tmp_path, movie)
    lazy = open_movie(path)
    reads = []

    def counting_read(start, stop):
        reads.append((start, stop))
        return lazy.read_frames(start, stop)

    counted = LazyMovie(counting_read, lazy.shape, lazy.dtype, "counted")
    steps = iter_extract_traces(counted, rois, chunk_frames=5)
    assert next(steps) == pytest.approx(5 / 45)
    assert next(steps) == pytest.approx(10 / 45)
    steps.close()
    assert reads == [(0, 5), (5, 10), (10, 15)]  # the two reduced and the one read ahead
    assert not [t for t in threading.enumerate() if t.name.startswith("movie-reader")]


def test_h5_movie_is_found_without_a_key_only_when_it_is_the_only_one(tmp_path, small):
    movie, rois = small
    path, _ = _write("nwb", tmp_path, movie)
    with pytest.raises(ValueError, match=r"holds 2 3-D numeric datasets .*choose the movie"):
        open_movie(path)
    with pytest.raises(ValueError, match="has no dataset 'acquisition/nothing'"):
        open_movie(path, "acquisition/nothing")


def _bad_file(kind: str, folder):
    if kind == "2-D tiff":
        tifffile.imwrite(folder / "m.tif", np.zeros((24, 20), np.uint16))
        return folder / "m.tif"
    if kind == "rgb tiff":
        tifffile.imwrite(folder / "m.tif", np.zeros((5, 24, 20, 3), np.uint8), photometric="rgb")
        return folder / "m.tif"
    if kind == "rgb image":
        tifffile.imwrite(folder / "m.tif", np.zeros((24, 20, 3), np.uint8), photometric="rgb")
        return folder / "m.tif"
    if kind == "not a tiff":
        (folder / "m.tif").write_bytes(b"hello, not an image")
        return folder / "m.tif"
    if kind == "complex npy":
        np.save(folder / "m.npy", np.zeros((5, 4, 4), np.complex64))
        return folder / "m.npy"
    if kind == "object npy":
        np.save(folder / "m.npy", np.array([[[None]]], dtype=object), allow_pickle=True)
        return folder / "m.npy"
    if kind == "truncated npy":
        np.save(folder / "m.npy", np.zeros((5, 4, 4), np.uint16))
        data = (folder / "m.npy").read_bytes()
        (folder / "m.npy").write_bytes(data[:-10])
        return folder / "m.npy"
    if kind == "fortran npy":
        np.save(folder / "m.npy", np.asfortranarray(np.zeros((5, 4, 4), np.uint16)))
        return folder / "m.npy"
    if kind == "zarr folder":
        (folder / "m.zarr").mkdir()
        return folder / "m.zarr"
    if kind == "csv":
        (folder / "m.csv").write_text("1,2\n")
        return folder / "m.csv"
    return folder / "missing.tif"


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("2-D tiff", r"'m.tif' has shape \(24, 20\); a movie must be a 3-D"),
        ("rgb tiff", r"'m.tif' holds multi-channel \(e.g. RGB\) images of shape \(5, 24, 20, 3\)"),
        ("rgb image", r"'m.tif' holds multi-channel \(e.g. RGB\) images of shape \(24, 20, 3\)"),
        ("not a tiff", "'m.tif' is not a readable TIFF file"),
        ("complex npy", "'m.npy' of shape .* has dtype complex64; a movie must hold integers"),
        ("object npy", "holds Python objects"),
        ("truncated npy", r"'m.npy' declares a \(5, 4, 4\) uint16 movie \(160 bytes"),
        ("fortran npy", "stored in Fortran order"),
        ("zarr folder", "'.*m.zarr' does not exist \\(or is not a file\\)"),
        ("csv", "'m.csv' is not a movie file"),
        ("missing", "'.*missing.tif' does not exist"),
    ],
)
def test_bad_movie_files_raise_a_value_error_naming_the_file(tmp_path, kind, message):
    with pytest.raises(ValueError, match=message):
        open_movie(_bad_file(kind, tmp_path))


def test_a_movie_file_shrinking_after_opening_is_an_error_not_a_crash(tmp_path, small):
    movie, rois = small
    path, _ = _write("npy", tmp_path, movie)
    lazy = open_movie(path)
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 100)
    with pytest.raises(ValueError, match="holds only"):
        extract_traces(lazy, rois)


def test_external_h5_data_are_refused(tmp_path, small):
    movie, _ = small
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle.create_dataset(
            "movie", shape=movie.shape, dtype=movie.dtype, external=[("raw.bin", 0, movie.nbytes)]
        )
    with pytest.raises(ValueError, match="keeps its data in other files"):
        open_movie(tmp_path / "m.h5")
