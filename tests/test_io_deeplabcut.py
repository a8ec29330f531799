"""DeepLabCut keypoints from .csv and .h5 (pandas layouts written by hand, no PyTables needed)."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_cebra.io.deeplabcut import is_deeplabcut_file, read_deeplabcut

SCORER = "DLC_resnet50_trackApr1shuffle1_1000"
PARTS = ("snout", "tailbase")


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    columns = pd.MultiIndex.from_product(
        [[SCORER], PARTS, ["x", "y", "likelihood"]], names=["scorer", "bodyparts", "coords"]
    )
    values = rng.uniform(0, 100, size=(6, 6))
    values[:, 2::3] = rng.uniform(0, 1, size=(6, 2))
    values[3, 0:2] = np.nan  # snout lost in frame 3
    return pd.DataFrame(values, columns=columns)


def _check(keypoints, table):
    values = table.to_numpy()
    assert keypoints.bodyparts == PARTS and keypoints.scorer == SCORER
    assert keypoints.x.shape == (6, 2) and keypoints.x.dtype == np.float32
    np.testing.assert_allclose(keypoints.x, values[:, [0, 3]], rtol=1e-6)
    np.testing.assert_allclose(keypoints.y, values[:, [1, 4]], rtol=1e-6)
    np.testing.assert_allclose(keypoints.likelihood, values[:, [2, 5]], rtol=1e-6)


def test_csv_as_written_by_deeplabcut(tmp_path, table):
    path = tmp_path / "videoDLC.csv"
    table.to_csv(path)
    assert path.read_text().startswith("scorer,")
    assert is_deeplabcut_file(path)
    keypoints = read_deeplabcut(path)
    _check(keypoints, table)
    data, features = keypoints.points()
    assert data.shape == (11, 3)  # 12 keypoints, one NaN left out
    assert list(features) == ["bodypart", "likelihood"]
    first = data[0]
    np.testing.assert_allclose(first, [0, table.iloc[0, 1], table.iloc[0, 0]], rtol=1e-6)
    assert (
        features["bodypart"][0] == "snout" and 3.0 not in data[features["bodypart"] == "snout", 0]
    )
    confident, _ = keypoints.points(min_likelihood=0.5)
    tracked = np.isfinite(table.to_numpy()[:, [0, 3]])
    assert len(confident) == int(((table.to_numpy()[:, [2, 5]] >= 0.5) & tracked).sum())
    behaviour, names = keypoints.behaviour()
    assert behaviour.shape == (6, 4)
    assert names == ["snout_x", "snout_y", "tailbase_x", "tailbase_y"]


def test_multi_animal_csv(tmp_path):
    columns = pd.MultiIndex.from_product(
        [[SCORER], ["mouse1", "mouse2"], ["nose"], ["x", "y", "likelihood"]],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    pd.DataFrame(np.ones((3, 6)), columns=columns).to_csv(tmp_path / "ma.csv")
    keypoints = read_deeplabcut(tmp_path / "ma.csv")
    assert keypoints.bodyparts == ("mouse1/nose", "mouse2/nose")


def _write_fixed_layout(path, table):
    """The HDF5 layout of pandas' 'fixed' format for a frame with 3-level columns."""
    with h5py.File(path, "w") as handle:
        group = handle.create_group("df_with_missing")
        group.attrs["pandas_type"] = np.bytes_(b"frame")
        group.attrs["nblocks"] = 1
        group.attrs["block0_items_variety"] = np.bytes_(b"multi")
        group.attrs["block0_items_nlevels"] = 3
        for i in range(3):
            codes, uniques = pd.factorize(table.columns.get_level_values(i), sort=True)
            group[f"block0_items_level{i}"] = np.array([u.encode() for u in uniques])
            group[f"block0_items_label{i}"] = codes
        group["block0_values"] = table.to_numpy()
        group["block0_values"].attrs["transposed"] = True


def _write_table_layout(path, table):
    """The HDF5 layout of pandas' 'table' format (DeepLabCut's default), pickled labels."""
    rows = np.zeros(len(table), dtype=[("index", "<i8"), ("values_block_0", "<f8", (6,))])
    rows["index"] = np.arange(len(table))
    rows["values_block_0"] = table.to_numpy()
    with h5py.File(path, "w") as handle:
        group = handle.create_group("df_with_missing")
        group.attrs["pandas_type"] = np.bytes_(b"frame_table")
        group["table"] = rows
        labels = pickle.dumps(list(table.columns), protocol=0)
        group["table"].attrs["values_block_0_kind"] = np.bytes_(labels)


@pytest.mark.parametrize("writer", [_write_fixed_layout, _write_table_layout])
def test_h5_without_pytables(tmp_path, table, writer):
    path = tmp_path / "videoDLC.h5"
    writer(path, table)
    assert is_deeplabcut_file(path)
    _check(read_deeplabcut(path), table)


def test_unsupported_h5_layout_is_declined_clearly(tmp_path):
    with h5py.File(tmp_path / "odd.h5", "w") as handle:
        handle.create_group("df").attrs["pandas_type"] = np.bytes_(b"series")
    with pytest.raises(ValueError, match=r"Cannot read 'odd.h5': .*'series'.*\.csv") as error:
        read_deeplabcut(tmp_path / "odd.h5")
    assert "tables" not in str(error.value)  # no advice to install PyTables (issue 14)


def test_pickled_labels_cannot_run_code(tmp_path, table):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo hacked",))

    path = tmp_path / "evil.h5"
    _write_table_layout(path, table)
    with h5py.File(path, "a") as handle:
        handle["df_with_missing/table"].attrs["values_block_0_kind"] = np.bytes_(
            pickle.dumps([Evil()], protocol=0)
        )
    with pytest.raises(ValueError, match="refused to load"):
        read_deeplabcut(path)


def test_non_deeplabcut_files(tmp_path):
    (tmp_path / "plain.csv").write_text("a,b\n1,2\n")
    assert not is_deeplabcut_file(tmp_path / "plain.csv")
    with pytest.raises(ValueError, match="not a DeepLabCut CSV"):
        read_deeplabcut(tmp_path / "plain.csv")
    (tmp_path / "bad.csv").write_text("scorer,s,s\nbodyparts,a,a\ncoords,x,y\n0,1,zz\n")
    with pytest.raises(ValueError, match="non-numeric coordinate"):
        read_deeplabcut(tmp_path / "bad.csv")
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["x"] = np.ones((2, 2))
    assert not is_deeplabcut_file(tmp_path / "plain.h5")
    with pytest.raises(ValueError, match="holds no pandas table"):
        read_deeplabcut(tmp_path / "plain.h5")
