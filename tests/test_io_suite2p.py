"""read_suite2p on a tiny plane0 folder written in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_cebra.io.suite2p import labels_from_stat, read_suite2p


def _roi(ys, xs, lam=None):
    ys, xs = np.asarray(ys), np.asarray(xs)
    roi = {"ypix": ys, "xpix": xs, "med": [float(ys.mean()), float(xs.mean())], "npix": ys.size}
    if lam is not None:
        roi["lam"] = np.asarray(lam, dtype=np.float32)
    return roi


def _write_plane(folder, ops_format="npy", with_iscell=True):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    F = rng.uniform(100, 200, size=(3, 20)).astype(np.float32)
    Fneu = rng.uniform(20, 40, size=(3, 20)).astype(np.float32)
    np.save(folder / "F.npy", F)
    np.save(folder / "Fneu.npy", Fneu)
    if with_iscell:
        np.save(folder / "iscell.npy", np.array([[1, 0.9], [0, 0.2], [1, 0.8]]))
    stat = np.array(
        [
            _roi([1, 1, 2], [1, 2, 2], lam=[1.0, 1.0, 0.2]),  # overlaps ROI 2 at (2, 2)
            _roi([4, 4], [4, 5]),
            _roi([2, 3, 3], [2, 2, 3], lam=[0.9, 1.0, 1.0]),
        ],
        dtype=object,
    )
    np.save(folder / "stat.npy", stat, allow_pickle=True)
    ops = {"Ly": 6, "Lx": 7, "fs": 30.0}
    if ops_format == "npy":
        ops["meanImg"] = np.arange(42, dtype=np.float64).reshape(6, 7)
        np.save(folder / "ops.npy", ops, allow_pickle=True)
    elif ops_format == "json":
        (folder / "ops.json").write_text(json.dumps(ops))
    return F, Fneu


def test_accepted_cells_neuropil_corrected_with_roi_labels(tmp_path):
    F, Fneu = _write_plane(tmp_path / "suite2p" / "plane0")
    rec = read_suite2p(tmp_path / "suite2p" / "plane0")
    assert rec.traces.shape == (20, 2) and rec.traces.dtype == np.float32
    np.testing.assert_allclose(rec.traces, (F[[0, 2]] - 0.7 * Fneu[[0, 2]]).T, rtol=1e-6)
    np.testing.assert_array_equal(rec.iscell, [True, False, True])
    np.testing.assert_array_equal(rec.roi_indices, [0, 2])
    assert rec.rois.shape == (6, 7) and rec.rois.dtype == np.int32
    expected = np.zeros((6, 7), np.int32)
    expected[1, 1] = expected[1, 2] = 1
    expected[2, 2] = 2  # shared pixel: ROI 2's weight 0.9 beats ROI 1's 0.2
    expected[3, 2] = expected[3, 3] = 2
    np.testing.assert_array_equal(rec.rois, expected)
    np.testing.assert_array_equal(rec.mean_image, np.arange(42).reshape(6, 7))
    assert rec.frame_rate == 30.0
    # the parent folders are accepted too
    assert read_suite2p(tmp_path).folder == tmp_path / "suite2p" / "plane0"


def test_all_rois_custom_coefficient_ops_json_and_no_iscell(tmp_path):
    F, Fneu = _write_plane(tmp_path / "plane0", ops_format="json", with_iscell=False)
    rec = read_suite2p(tmp_path / "plane0", neuropil_coefficient=0.5, only_cells=False)
    np.testing.assert_allclose(rec.traces, (F - 0.5 * Fneu).T, rtol=1e-6)
    assert rec.mean_image is None and rec.rois.shape == (6, 7)
    np.testing.assert_array_equal(np.unique(rec.rois), [0, 1, 2, 3])


def test_without_ops_the_image_size_comes_from_stat(tmp_path):
    _write_plane(tmp_path / "plane0", ops_format=None)
    rec = read_suite2p(tmp_path / "plane0")
    assert rec.rois.shape == (5, 6) and rec.frame_rate is None  # largest ypix 4, xpix 5


def test_overlap_without_weights_goes_to_the_later_roi():
    labels = labels_from_stat([_roi([0, 0], [0, 1]), _roi([0], [1])], (1, 3))
    np.testing.assert_array_equal(labels, [[1, 2, 0]])


def test_broken_folders_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not a suite2p plane folder: it needs F.npy, Fneu.npy"):
        read_suite2p(tmp_path)
    _write_plane(tmp_path / "plane0")
    np.save(tmp_path / "plane0" / "Fneu.npy", np.zeros((3, 19)))
    with pytest.raises(ValueError, match=r"\(3, 20\) and \(3, 19\)"):
        read_suite2p(tmp_path / "plane0")
    np.save(tmp_path / "plane0" / "Fneu.npy", np.zeros((3, 20)))
    np.save(tmp_path / "plane0" / "iscell.npy", np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"iscell.npy has shape \(4, 2\), but F.npy holds 3 ROIs"):
        read_suite2p(tmp_path / "plane0")
    np.save(tmp_path / "plane0" / "iscell.npy", np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"ROI 1 has pixels outside the 2×3 image"):
        labels_from_stat([_roi([0], [0]), _roi([5], [0])], (2, 3))


def test_a_malicious_stat_file_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo hacked",))

    _write_plane(tmp_path / "plane0")
    np.save(
        tmp_path / "plane0" / "stat.npy", np.array([Evil()] * 3, dtype=object), allow_pickle=True
    )
    with pytest.raises(ValueError, match=r"refused to load \w+\.system"):
        read_suite2p(tmp_path / "plane0")
