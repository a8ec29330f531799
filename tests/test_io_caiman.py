"""CaImAn CNMF results files, written here with h5py in the layout of ``CNMF.save``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse

from napari_cebra.io import napari_contributions as contrib
from napari_cebra.io.caiman import is_caiman_file, read_caiman

DIMS = (6, 5)  # (d1, d2); CaImAn flattens pixels in Fortran order


def _footprints() -> np.ndarray:
    """(d1, d2, K) weights of three components; component 1 overlaps component 0 at (2, 2)."""
    images = np.zeros((*DIMS, 3))
    images[0:3, 0:3, 0] = [[1.0, 1.0, 0.1], [1.0, 1.0, 0.1], [0.1, 0.1, 0.5]]
    images[2:4, 2:4, 1] = [[0.8, 0.1], [0.9, 0.9]]
    images[5, 4, 2] = 2.0
    return images


def _write(path, *, dff: bool = True, accepted=None, dims_at="estimates/dims", rng=None):
    rng = rng or np.random.default_rng(0)
    footprints = _footprints()
    A = scipy.sparse.csc_matrix(footprints.reshape(-1, 3, order="F"))
    C = rng.normal(size=(3, 50))
    with h5py.File(path, "w") as handle:
        handle["estimates/C"] = C
        handle["estimates/F_dff"] = C * 2 if dff else "NoneType"
        for key in ("data", "indices", "indptr", "shape"):
            handle[f"estimates/A/{key}"] = np.asarray(getattr(A, key))
        handle[dims_at] = np.array(DIMS)
        handle["estimates/Cn"] = rng.uniform(size=DIMS)
        handle["estimates/idx_components"] = "NoneType" if accepted is None else accepted
        handle["params/data/fr"] = 15.0
        handle["params/data/decay_time"] = 0.4
    return C


def test_traces_labels_and_correlation_image(tmp_path):
    path = tmp_path / "cnmf_results.hdf5"
    C = _write(path)
    assert is_caiman_file(path)
    results = read_caiman(path)
    np.testing.assert_allclose(results.traces, C.T, rtol=1e-6)
    np.testing.assert_allclose(results.dff, 2 * C.T, rtol=1e-6)
    assert results.frame_rate == 15.0 and results.correlation_image.shape == DIMS
    expected = np.zeros(DIMS, dtype=np.int32)
    expected[0:2, 0:2] = 1
    # (2, 2): component 1 (0.8) outweighs component 0 (0.5); (2, 3): 0.1 is under 20 % of
    # component 1's peak 0.9, and the 0.1 tails of component 0 under 20 % of its peak 1.0
    expected[2:4, 2:4] = [[2, 0], [2, 2]]
    expected[5, 4] = 3
    np.testing.assert_array_equal(results.rois, expected)


def test_accepted_components_only_and_dims_elsewhere(tmp_path):
    path = tmp_path / "cnmf.h5"
    C = _write(path, dff=False, accepted=np.array([2, 0]), dims_at="dims")
    results = read_caiman(path)
    assert results.dff is None
    np.testing.assert_array_equal(results.component_indices, [0, 2])
    np.testing.assert_allclose(results.traces, C[[0, 2]].T, rtol=1e-6)
    assert set(np.unique(results.rois)) == {0, 1, 2}
    assert results.rois[5, 4] == 2 and results.rois[3, 3] == 0  # component 1 was rejected
    assert read_caiman(path, only_accepted=False).traces.shape == (50, 3)


def test_napari_opens_caiman_results_as_traces_and_labels(tmp_path):
    path = tmp_path / "cnmf_results.hdf5"
    C = _write(path)
    assert contrib.get_table_reader(str(path)) is contrib.read_caiman_layers
    layers = {
        meta["name"]: (data, meta, kind) for data, meta, kind in contrib.read_caiman_layers(path)
    }
    assert set(layers) == {"CaImAn correlation image", "CaImAn ROIs", "CaImAn C", "CaImAn F_dff"}
    traces, meta, kind = layers["CaImAn C"]
    assert kind == "image" and meta["metadata"]["napari_cebra_kind"] == "neural_matrix"
    np.testing.assert_allclose(traces, C.T, rtol=1e-6)
    np.testing.assert_allclose(meta["metadata"]["timestamps"][:3], [0, 1 / 15, 2 / 15])
    assert layers["CaImAn ROIs"][2] == "labels" and layers["CaImAn ROIs"][0].max() == 3


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda h: h.__delitem__("estimates/A/indptr"), "needs a 1-D dataset 'indptr'"),
        (lambda h: h["estimates/A/shape"].__setitem__(0, 29), r"has shape \(29, 3\)"),
        (
            lambda h: h["estimates/C"].__setitem__((1, 4), np.nan),
            "non-finite value at component 1, frame 4",
        ),
        (lambda h: h.__delitem__("estimates/dims"), "without the image size"),
    ],
)
def test_inconsistent_files_raise_naming_the_file(tmp_path, edit, reason):
    path = tmp_path / "bad.hdf5"
    _write(path)
    with h5py.File(path, "a") as handle:
        edit(handle)
    with pytest.raises(ValueError, match=reason) as raised:
        read_caiman(path)
    assert "'bad.hdf5'" in str(raised.value)


def test_link_to_another_file_is_refused(tmp_path):
    other = tmp_path / "other.hdf5"
    _write(other)
    path = tmp_path / "linked.hdf5"
    _write(path)
    with h5py.File(path, "a") as handle:
        del handle["estimates/C"]
        handle["estimates/C"] = h5py.ExternalLink(str(other), "/estimates/C")
    with pytest.raises(ValueError, match="links to other files are not followed"):
        read_caiman(path)


def test_other_hdf5_files_are_not_caiman(tmp_path):
    path = tmp_path / "matrix.h5"
    with h5py.File(path, "w") as handle:
        handle["neural"] = np.zeros((10, 3))
    assert not is_caiman_file(path)
    assert contrib.get_table_reader(str(path)) is contrib.read_matrix_layers
