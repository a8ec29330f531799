"""load_matrix on .npy/.npz/.csv/.h5 files made in the test."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_cebra.io.matrices import load_matrix


@pytest.fixture
def matrix():
    return np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)


def test_npy_time_by_neurons_and_transposed(tmp_path, matrix):
    np.save(tmp_path / "m.npy", matrix)
    out = load_matrix(tmp_path / "m.npy")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, matrix)
    np.save(tmp_path / "t.npy", matrix.T.astype(np.int16))
    np.testing.assert_array_equal(
        load_matrix(tmp_path / "t.npy", transpose=True), matrix.astype(np.int16)
    )


def test_npz_picks_the_only_2d_array_or_the_key(tmp_path, matrix):
    np.savez(tmp_path / "one.npz", neural=matrix, times=np.arange(12))
    np.testing.assert_array_equal(load_matrix(tmp_path / "one.npz"), matrix)
    np.savez(tmp_path / "two.npz", a=matrix, b=matrix[:, :2])
    with pytest.raises(ValueError, match=r"several 2-D arrays .*'a': \(12, 5\).*key="):
        load_matrix(tmp_path / "two.npz")
    np.testing.assert_array_equal(load_matrix(tmp_path / "two.npz", key="b"), matrix[:, :2])
    with pytest.raises(ValueError, match=r"no array 'c'; it holds \['a', 'b'\]"):
        load_matrix(tmp_path / "two.npz", key="c")


@pytest.mark.parametrize("layout", ["plain", "header", "pandas_index"])
def test_csv_with_or_without_header(tmp_path, matrix, layout):
    import pandas as pd

    path = tmp_path / "m.csv"
    frame = pd.DataFrame(matrix, columns=[f"cell{i}" for i in range(5)])
    if layout == "plain":
        np.savetxt(path, matrix, delimiter=",")
    else:
        frame.to_csv(path, index=layout == "pandas_index")
    np.testing.assert_allclose(load_matrix(path), matrix, rtol=1e-6)


def test_csv_with_text_in_the_data_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(ValueError, match=r"non-numeric entry 'oops' in data row 1, column 1"):
        load_matrix(tmp_path / "bad.csv")


def test_h5_only_2d_dataset_or_key(tmp_path, matrix):
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle["group/traces"] = matrix
        handle["times"] = np.arange(12.0)
    np.testing.assert_array_equal(load_matrix(tmp_path / "m.h5"), matrix)
    np.testing.assert_array_equal(load_matrix(tmp_path / "m.h5", key="group/traces"), matrix)
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        load_matrix(tmp_path / "m.h5", key="nope")
    with h5py.File(tmp_path / "none.h5", "w") as handle:
        handle["times"] = np.arange(12.0)
    with pytest.raises(ValueError, match="holds no 2-D array"):
        load_matrix(tmp_path / "none.h5")


def test_bad_files_raise_clear_errors(tmp_path):
    np.save(tmp_path / "vec.npy", np.arange(5))
    with pytest.raises(ValueError, match=r"must be 2-D \(time × neurons\), got shape \(5,\)"):
        load_matrix(tmp_path / "vec.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a plain numeric .npy array"):
        load_matrix(tmp_path / "obj.npy")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_matrix(tmp_path / "broken.h5")
    (tmp_path / "m.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"suffix '.txt' is not one of"):
        load_matrix(tmp_path / "m.txt")
    with pytest.raises(FileNotFoundError):
        load_matrix(tmp_path / "missing.npy")
    np.save(tmp_path / "m.npy", np.ones((3, 2)))
    with pytest.raises(ValueError, match="key='x' only applies to .npz and .h5"):
        load_matrix(tmp_path / "m.npy", key="x")
