"""Issue 14: crafted files must not run code, lose data silently, read other files or exhaust memory.

Every probe below writes a real file (or suite2p folder) and reads it through the public readers.
The memory probes run in a subprocess whose address space is capped at 1.5 GiB above its baseline,
so the old readers (which asked for 1.5 to 10 GiB, or crashed) fail them.
"""

from __future__ import annotations

import codecs
import json
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_cebra.io import datasets
from napari_cebra.io.deeplabcut import is_deeplabcut_file, read_deeplabcut
from napari_cebra.io.matrices import load_matrix
from napari_cebra.io.napari_contributions import get_table_reader, read_matrix_layers
from napari_cebra.io.safe_pickle import read_literal_pickle, restricted_load
from napari_cebra.io.suite2p import read_suite2p

_reconstruct = (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # numpy 2 | 1
SCORER = "DLC_resnet50_openfieldOct30shuffle1_1030000"


class _Reduce:
    """Pickles as ``function(*args)`` (plus ``state``): the shape of a crafted pickle."""

    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


def _dlc_frame(animals: bool) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    levels = [[SCORER], ["m1", "m2"], ["nose", "tail"], ["x", "y", "likelihood"]]
    names = ["scorer", "individuals", "bodyparts", "coords"]
    if not animals:
        levels, names = levels[:1] + levels[2:], names[:1] + names[2:]
    columns = pd.MultiIndex.from_product(levels, names=names)
    values = rng.uniform(0, 640, size=(9, len(columns)))
    values[4, :2] = np.nan  # the first body part lost in frame 4
    return pd.DataFrame(values, columns=columns)


# --- item 1: DeepLabCut .h5 without unpickling --------------------------------------------------


@pytest.mark.parametrize("animals", [False, True], ids=["single", "multi-animal"])
@pytest.mark.parametrize("layout", ["table", "fixed"])
def test_deeplabcut_h5_written_by_pandas_reads_the_same_values_and_names(tmp_path, layout, animals):
    pytest.importorskip("tables")
    frame = _dlc_frame(animals)
    path = tmp_path / "videoDLC.h5"
    frame.to_hdf(path, key="df_with_missing", format=layout, mode="w")
    keypoints = read_deeplabcut(path)
    assert is_deeplabcut_file(path) and keypoints.scorer == SCORER
    parts = [column[1:-1] for column in frame.columns[::3]]
    assert keypoints.bodyparts == tuple("/".join(part) for part in parts)
    for coord in ("x", "y", "likelihood"):
        expected = frame.xs(coord, level="coords", axis=1).to_numpy(dtype=np.float32)
        np.testing.assert_array_equal(getattr(keypoints, coord), expected)


def test_deeplabcut_h5_pickled_attributes_never_run(tmp_path):
    """A pickle in the attributes PyTables unpickles (and our labels) must not create the marker."""
    pytest.importorskip("tables")
    marker = tmp_path / "pwned"
    path = tmp_path / "evilDLC.h5"
    _dlc_frame(animals=False).to_hdf(path, key="df_with_missing", format="table", mode="w")
    evil = np.bytes_(pickle.dumps([_Reduce(open, (str(marker), "w"))], protocol=0))
    with h5py.File(path, "a") as handle:
        group = handle["df_with_missing"]
        group.attrs["non_index_axes"] = group.attrs["info"] = evil
        group["table"].attrs["values_block_0_kind"] = evil
    assert is_deeplabcut_file(path)
    with pytest.raises(ValueError, match=r"'evilDLC.h5'.*refused to load opcode (GLOBAL|REDUCE)"):
        read_deeplabcut(path)
    with pytest.raises(ValueError, match="refused to load"):
        get_table_reader(str(path))(str(path))
    assert not marker.exists()


def test_literal_pickles_decode_like_pickle_and_refuse_anything_else():
    value = [("DLC", "nose", "x"), ("DLC", "nose", "y"), {"n": [1, 2.5, None, True]}, b"raw"]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        if protocol >= 3:  # protocols 0-2 pickle bytes by calling _codecs.encode: refused
            assert read_literal_pickle(pickle.dumps(value, protocol), "labels") == value
        assert read_literal_pickle(pickle.dumps(value[:3], protocol), "labels") == value[:3]
    with pytest.raises(ValueError, match=r"cannot read labels without unpickling: refused"):
        read_literal_pickle(pickle.dumps(_Reduce(print, ("hi",))), "labels")


def test_deeplabcut_labels_that_are_not_text_or_too_long_are_refused(tmp_path, monkeypatch):
    pytest.importorskip("tables")
    path = tmp_path / "videoDLC.h5"
    _dlc_frame(animals=False).to_hdf(path, key="df_with_missing", format="table", mode="w")
    monkeypatch.setattr("napari_cebra.io.deeplabcut.MAX_LABEL_CHARACTERS", 100)
    with pytest.raises(ValueError, match=r"column labels hold more than 100 characters"):
        read_deeplabcut(path)
    monkeypatch.undo()
    with h5py.File(path, "a") as handle:
        nested = pickle.dumps([[[["deep"]]]] * 6, protocol=0)
        handle["df_with_missing/table"].attrs["values_block_0_kind"] = np.bytes_(nested)
    with pytest.raises(ValueError, match=r"values_block_0_kind' holds something other than col"):
        read_deeplabcut(path)


def test_package_has_no_unpickling_readers():
    source = "\n".join(
        path.read_text() for path in Path(datasets.__file__).parents[1].rglob("*.py")
    )
    for call in ("read_hdf(", "allow_pickle=True", "pickle.load(", "pickle.loads(", "joblib.load("):
        assert call not in source


# --- item 2: CSV cells are never dropped silently -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1,,3\n4,5,6\n7,8,9\n",
            r"a missing value \(''\) in data row 0, column 1 \(counted from 0\)",
        ),
        ("nan,2,3\n4,5,6\n7,8,9\n", r"a missing value \('nan'\) in data row 0, column 0"),
        ("NA,2,3\n4,5,6\n", r"a missing value \('NA'\) in data row 0, column 0"),
        ('"1,000",2,3\n4,5,6\n', r"a non-numeric entry '1,000' in data row 0, column 0"),
        ("1,2,3\n4,5,6\n7,,9\n", r"a missing value \(''\) in data row 2, column 1"),
        ("1,2,3\n4,5\n", r"a missing value \(''\) in data row 1, column 2"),
        (
            "a,b\n1,2\nnan,4\n",
            r"a missing value \('nan'\) in data row 1, column 0 .*below the header",
        ),
    ],
)
def test_csv_missing_or_ambiguous_cells_are_errors_that_name_row_and_column(
    tmp_path, text, message
):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(ValueError, match=rf"'m.csv' has {message}"):
        load_matrix(tmp_path / "m.csv")


def test_csv_of_report_size_keeps_every_row_and_column(tmp_path):
    matrix = np.random.default_rng(2).normal(size=(240, 10))
    np.savetxt(tmp_path / "m.csv", matrix, delimiter=",")
    np.testing.assert_allclose(load_matrix(tmp_path / "m.csv"), matrix, rtol=1e-6)
    lines = (tmp_path / "m.csv").read_text().splitlines()
    lines[0] = "nan," + lines[0].split(",", 1)[1]  # once read as a header: 239 × 9, exit 0
    (tmp_path / "m.csv").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=r"missing value \('nan'\) in data row 0, column 0"):
        load_matrix(tmp_path / "m.csv")


@pytest.mark.parametrize(
    "write",
    [
        lambda frame, path: frame.to_csv(path),  # ",0,1,2,3": unnamed index and columns
        lambda frame, path: frame.rename_axis("time").to_csv(path),  # "time,0,1,2,3"
        lambda frame, path: frame.add_prefix("cell ").to_csv(path, index=False),
    ],
    ids=["pandas-default", "named-index", "text-header"],
)
def test_csv_headers_pandas_writes_are_still_recognised(tmp_path, write):
    frame = pd.DataFrame(np.random.default_rng(3).normal(size=(6, 4)))
    write(frame, tmp_path / "m.csv")
    matrix = load_matrix(tmp_path / "m.csv")
    if (tmp_path / "m.csv").read_text().startswith("time"):  # a named index is a data column
        np.testing.assert_allclose(matrix[:, 0], np.arange(6))
        matrix = matrix[:, 1:]
    np.testing.assert_allclose(matrix, frame.to_numpy(), rtol=1e-6)


# --- item 8: HDF5 data from outside the file ----------------------------------------------------


@pytest.fixture
def other_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["secret"] = np.arange(12.0).reshape(3, 4)
    return path


def test_h5_external_storage_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes(range(24)))
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", shape=(4, 6), dtype="u1", external=[(str(outside), 0, 24)])
    for read in (lambda: load_matrix(path), lambda: load_matrix(path, key="x")):
        with pytest.raises(ValueError, match=r"'m.h5': dataset '/x' keeps its data in other files"):
            read()
    with pytest.raises(ValueError, match="keeps its data in other files"):
        read_matrix_layers(str(path))


def test_h5_links_to_other_files_are_not_followed(tmp_path, other_file):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as handle:
        handle["link"] = h5py.ExternalLink(other_file.name, "/secret")
        handle["group/alias"] = h5py.SoftLink("/link")
        handle["folder"] = h5py.ExternalLink(other_file.name, "/")
    for key in ("link", "group/alias", "folder/secret"):
        with pytest.raises(ValueError, match=r"a link to '/.*' in another file \('other.h5'\)"):
            load_matrix(path, key=key)
    with pytest.raises(ValueError, match=r"'m.h5' holds no 2-D array"):
        load_matrix(path)
    assert get_table_reader(str(path)) is None  # nothing of its own to show


def test_h5_virtual_datasets_are_refused(tmp_path, other_file):
    layout = h5py.VirtualLayout(shape=(3, 4), dtype="f8")
    layout[:] = h5py.VirtualSource(str(other_file), "secret", shape=(3, 4))
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle.create_virtual_dataset("x", layout)
    with pytest.raises(ValueError, match=r"dataset '/x' is a virtual dataset"):
        load_matrix(tmp_path / "m.h5")


def test_h5_soft_links_inside_the_file_still_read(tmp_path):
    matrix = np.arange(6.0).reshape(2, 3)
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle["data/traces"] = matrix
        handle["alias"] = h5py.SoftLink("/data")
        handle["data/relative"] = h5py.SoftLink("traces")
    for key in ("alias/traces", "data/relative"):
        np.testing.assert_array_equal(load_matrix(tmp_path / "m.h5", key=key), matrix)


def test_deeplabcut_h5_behind_an_external_link_is_refused(tmp_path):
    pytest.importorskip("tables")
    target = tmp_path / "realDLC.h5"
    _dlc_frame(animals=False).to_hdf(target, key="df_with_missing", format="table", mode="w")
    path = tmp_path / "linkDLC.h5"
    with h5py.File(path, "w") as handle:
        handle["df_with_missing"] = h5py.ExternalLink(target.name, "/df_with_missing")
    assert not is_deeplabcut_file(path)
    with pytest.raises(ValueError, match=r"'linkDLC.h5': '/df_with_missing' is a link to"):
        read_deeplabcut(path)


# --- item 9: clear errors instead of raw ones ---------------------------------------------------


def _empty_npy(path):
    path.write_bytes(b"")


def _npy_named_npz(path):
    with open(path, "wb") as handle:
        np.save(handle, np.ones((3, 2)))


def _npz_with_text_member(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "recorded on Monday")
        with archive.open("traces.npy", "w") as member:
            np.save(member, np.ones((3, 2)))


def _npz_with_a_broken_array(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bad.npy", "not an array")


def _npy_with_huge_header(path):
    path.write_bytes(b"\x93NUMPY\x02\x00" + (1 << 31).to_bytes(4, "little") + b"{'descr'")


def _npy_declaring_a_huge_array(path):
    with open(path, "wb") as handle:
        header = {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(64))


def _npz_member_claiming_a_huge_size(path):
    """A 3.2 GB array declared by the member's header and by the zip directory, 64 bytes stored."""
    with zipfile.ZipFile(path, "w") as archive, archive.open("traces.npy", "w") as member:
        header = {"descr": "<f8", "fortran_order": False, "shape": (20_000, 20_000)}
        np.lib.format.write_array_header_1_0(member, header)
        member.write(bytes(64))
    data = bytearray(path.read_bytes())
    central = data.rindex(b"traces.npy") - 46  # the member's central-directory record
    data[central + 24 : central + 28] = (0xFFFFFFF0).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))


def _complex_npy(path):
    np.save(path, np.ones((3, 2)) * (1 + 2j))


@pytest.mark.parametrize(
    ("name", "write", "key", "message"),
    [
        ("e.npy", _empty_npy, None, r"'e.npy' is empty \(0 bytes\)"),
        ("n.npz", _npy_named_npz, None, r"'n.npz' is not a .npz \(zip\) archive; it is a .npy"),
        ("t.npz", _npz_with_text_member, "notes.txt", r"'notes.txt in t.npz' is not a readable"),
        ("b.npz", _npz_with_a_broken_array, None, r"'bad.npy in b.npz' is not a readable .npy"),
        ("h.npy", _npy_with_huge_header, None, r"header claims 2147483648 bytes, more than"),
        ("a.npy", _npy_declaring_a_huge_array, None, r"declares a \(100000, 100000\) float64 "),
        ("z.npz", _npz_member_claiming_a_huge_size, None, r"claims 4294967280 bytes from 19"),
        ("c.npy", _complex_npy, None, r"'c.npy' is complex \(dtype complex128\)"),
    ],
)
def test_broken_array_files_raise_clear_errors(tmp_path, name, write, key, message):
    write(tmp_path / name)
    with pytest.raises(ValueError, match=message):
        load_matrix(tmp_path / name, key=key)


def test_npz_members_that_are_not_arrays_are_not_candidates(tmp_path):
    _npz_with_text_member(tmp_path / "t.npz")
    np.testing.assert_array_equal(load_matrix(tmp_path / "t.npz"), np.ones((3, 2)))


def test_h5_soft_link_loops_and_dangling_links_are_clear(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        handle["a"] = h5py.SoftLink("/b")
        handle["b"] = h5py.SoftLink("/a")
        handle["dangling"] = h5py.SoftLink("/nowhere")
    with pytest.raises(ValueError, match=r"ends a chain of more than 16 soft links"):
        load_matrix(tmp_path / "m.h5", key="a/x")
    with pytest.raises(ValueError, match=r"has no dataset 'dangling/x'"):
        load_matrix(tmp_path / "m.h5", key="dangling/x")


def test_complex_h5_is_refused(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as handle:
        handle["x"] = np.ones((3, 2)) * 1j
    with pytest.raises(ValueError, match=r"is complex \(dtype complex128\)"):
        load_matrix(tmp_path / "c.h5")


def test_home_is_expanded_in_reader_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    np.save(tmp_path / "m.npy", np.ones((4, 3)))
    assert load_matrix("~/m.npy").shape == (4, 3)
    _dlc_frame(animals=False).to_csv(tmp_path / "videoDLC.csv")
    assert is_deeplabcut_file("~/videoDLC.csv")
    assert read_deeplabcut("~/videoDLC.csv").bodyparts == ("nose", "tail")
    _plane(tmp_path / "plane0")
    assert read_suite2p("~/plane0").traces.shape == (20, 3)
    (tmp_path / "r.pkl").write_bytes(pickle.dumps({"a": np.arange(3)}))
    np.testing.assert_array_equal(restricted_load("~/r.pkl")["a"], np.arange(3))


# --- item 5: memory that a few bytes can ask for ------------------------------------------------


def _object_npy(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        header = {"descr": "|O", "fortran_order": False, "shape": (3,)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(payload)


def _plane(folder: Path, stat: bytes | None = None, ops: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / "F.npy", np.full((3, 20), 2.0, np.float32))
    np.save(folder / "Fneu.npy", np.ones((3, 20), np.float32))
    rois = [{"ypix": np.array([k]), "xpix": np.array([k])} for k in range(3)]
    _object_npy(folder / "stat.npy", stat or pickle.dumps(np.array(rois, dtype=object), 3))
    if ops is not None:
        np.save(folder / "ops.npy", np.array(ops, dtype=object), allow_pickle=True)
    return folder


def _bytearray_bomb(folder):  # 17 × bytearray(10**8) from 115 bytes of pickle
    grow = b"\x80\x02(cbuiltins\nbytearray\nq\x00J\x00\xe1\xf5\x05\x85q\x01R"
    return _plane(folder, grow + b"h\x00h\x01R" * 16 + b"l.")


def _array_shape_bomb(folder):  # _reconstruct(ndarray, (10**10,)): 9.3 GiB from one number
    return _plane(folder, pickle.dumps([_Reduce(_reconstruct, (np.ndarray, (10**10,), b"b"))], 3))


def _shared_text_bomb(folder):  # 2000 latin-1 copies of one memoized 1 MiB string
    text = "x" * (1 << 20)
    copies = [_Reduce(codecs.encode, (text, "latin1")) for _ in range(2000)]
    return _plane(folder, pickle.dumps(copies, protocol=2))


def _nested_lists(folder):  # ypix: 8 levels of 10 shared lists = 10**8 pixels from 355 bytes
    node = list(range(10))
    for _ in range(7):
        node = [node] * 10
    return _plane(folder, pickle.dumps([{"ypix": node, "xpix": node}] * 3, protocol=3))


def _short_object_array(folder):  # numpy reads past a list shorter than the shape: a crash
    roi = {"ypix": [0], "xpix": [0]}
    state = (1, (100_000,), np.dtype("O"), False, [roi, roi])
    return _plane(folder, pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state), 3))


def _forged_dtype(folder):  # a dtype state hiding an object field in raw bytes: a crash
    dtype_state = (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
    dtype = _Reduce(np.dtype, ("V8", False, True), dtype_state)
    state = (1, (3,), dtype, False, b"A" * 24)
    return _plane(folder, pickle.dumps(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state), 3))


def _huge_image(folder):  # a 4 TB label image from ops
    return _plane(folder, ops={"Ly": 10**6, "Lx": 10**6})


def _unwritten_h5(folder, **options):  # 1.4 KB of file, 1.6 or 3.2 GB of fill value
    folder.mkdir()
    with h5py.File(folder / "m.h5", "w") as handle:
        handle.create_dataset("x", shape=(20_000, 20_000), **options)
    return folder / "m.h5"


def _huge_npy(folder):
    folder.mkdir()
    _npy_declaring_a_huge_array(folder / "m.npy")
    return folder / "m.npy"


def _huge_npz(folder):
    folder.mkdir()
    _npz_member_claiming_a_huge_size(folder / "m.npz")
    return folder / "m.npz"


_PROBE = """
import json, resource, sys
from napari_cebra.io.matrices import load_matrix
from napari_cebra.io.suite2p import read_suite2p

with open("/proc/self/status") as status:
    baseline = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (baseline + (3 << 29), resource.RLIM_INFINITY))
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    (read_suite2p if sys.argv[1] == "suite2p" else load_matrix)(sys.argv[2])
    outcome = "read"
except Exception as error:
    outcome = f"{type(error).__name__}: {error}"
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
print(json.dumps({"outcome": outcome, "grown_mib": grown / 1024}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, RLIMIT_AS")
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_bytearray_bomb, r"refused bytearray\(...\) of anything but bytes"),
        (_array_shape_bomb, r"calling _reconstruct would bring what the pickle builds to 10000"),
        (_shared_text_bomb, r"calling encode would bring what the pickle builds to \d+ bytes"),
        (_nested_lists, r"expands to more than \d+ bytes once shared references are copied"),
        (_short_object_array, r"an object array of shape \(100000,\) needs a list of 100000"),
        (_forged_dtype, r"refused dtype .*only plain \(unstructured\) dtypes"),
        (_huge_image, r"ops give an image of 1000000×1000000 pixels"),
        (lambda f: _unwritten_h5(f, dtype="f8", chunks=(1000, 1000)), r"3200000000 were never"),
        (lambda f: _unwritten_h5(f, dtype="f4"), r"1600000000 were never written"),
        (lambda f: _unwritten_h5(f, dtype="f4", chunks=True, compression="gzip"), r"never wri"),
        (_huge_npy, r"declares a \(100000, 100000\) float64 array \(80000000000 bytes\)"),
        (_huge_npz, r"claims 4294967280 bytes from 192 compressed bytes"),
    ],
    ids=[
        "bytearray",
        "array-shape",
        "shared-text",
        "nested-lists",
        "short-object-array",
        "forged-dtype",
        "ops-image-size",
        "h5-unwritten-chunks",
        "h5-unwritten-contiguous",
        "h5-unwritten-gzip",
        "npy-header",
        "npz-member-size",
    ],
)
def test_small_files_cannot_exhaust_memory_or_crash(tmp_path, build, message):
    target = build(tmp_path / "probe")
    reader = "suite2p" if target.is_dir() else "matrix"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, reader, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # a crash (e.g. -11) fails here
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["outcome"].startswith("ValueError"), result
    assert re.search(message, result["outcome"]), result["outcome"]
    assert result["grown_mib"] < 200, result


def test_real_data_within_the_limits_still_reads(tmp_path):
    zeros = np.zeros((2000, 2000))  # 32 MB, stored as a few kilobytes of gzip
    with h5py.File(tmp_path / "z.h5", "w") as handle:
        handle.create_dataset("x", data=zeros, chunks=(500, 500), compression="gzip")
        partial = handle.create_dataset("y", (2000, 1000), dtype="f8", chunks=(100, 1000))
        partial[:100] = 1.0  # 15.2 MB never written: within the 16 MiB allowance
    np.testing.assert_array_equal(load_matrix(tmp_path / "z.h5", key="x"), zeros)
    assert load_matrix(tmp_path / "z.h5", key="y")[:100].min() == 1.0
    big = np.arange(9_000_000, dtype=np.float64)  # 72 MB: above the fixed 64 MiB allowance
    (tmp_path / "big.pkl").write_bytes(pickle.dumps({"spikes": big, "names": ["a"] * 50}, 4))
    np.testing.assert_array_equal(restricted_load(tmp_path / "big.pkl")["spikes"], big)
