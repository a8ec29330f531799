"""The achilles download (file:// URL, checksums, atomic) and code-free loading of joblib files."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle

import numpy as np
import pytest

from napari_cebra.io.datasets import (
    RAT_HIPPOCAMPUS_MD5,
    RAT_HIPPOCAMPUS_URL,
    download_rat_hippocampus,
    load_rat_hippocampus,
)
from napari_cebra.io.safe_pickle import restricted_load

joblib = pytest.importorskip("joblib")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def recording():
    rng = np.random.default_rng(0)
    spikes = rng.poisson(0.3, size=(50, 7)).astype(np.float64)
    position = np.column_stack([rng.uniform(0, 1.6, 50), np.ones(50), np.zeros(50)])
    return {"spikes": spikes, "position": position}


@pytest.fixture
def published(tmp_path, recording):
    """A local achilles.jl.gz in the published format, its file:// URL and its checksums."""
    source = tmp_path / "server"
    source.mkdir()
    joblib.dump(recording, source / "achilles.jl")
    unpacked = (source / "achilles.jl").read_bytes()
    packed = gzip.compress(unpacked)
    (source / "achilles.jl.gz").write_bytes(packed)
    url = (source / "achilles.jl.gz").as_uri()
    return url, (_md5(packed), _md5(unpacked))


def test_published_source_is_the_reference_one():
    url = RAT_HIPPOCAMPUS_URL.format(rat="achilles")
    assert url == "https://cebra.fra1.digitaloceanspaces.com/data/rat_hippocampus/achilles.jl.gz"
    assert RAT_HIPPOCAMPUS_MD5["achilles"] == (
        "5d7b243e07b24c387e5412cd5ff46f0b",
        "c52f9b55cbc23c66d57f3842214058b8",
    )
    assert sorted(RAT_HIPPOCAMPUS_MD5) == ["achilles", "buddy", "cicero", "gatsby"]
    assert RAT_HIPPOCAMPUS_MD5["gatsby"][1] == "2b889da48178b3155011c12555342813"
    with pytest.raises(ValueError, match="unknown rat 'rex'.*achilles, buddy, cicero, gatsby"):
        download_rat_hippocampus("rex", ".")


def test_download_verifies_unpacks_and_loads(tmp_path, published, recording):
    url, md5 = published
    progress = []
    path = download_rat_hippocampus(
        "achilles", tmp_path / "data", url=url, md5=md5, progress=lambda d, t: progress.append(d)
    )
    assert path == tmp_path / "data" / "achilles.jl"
    assert sorted(os.listdir(tmp_path / "data")) == ["achilles.jl"]  # no temporary files left
    assert progress and progress[-1] > 0
    neural, position = load_rat_hippocampus(path)
    assert neural.dtype == np.float32 and neural.shape == (50, 7)
    assert position.dtype == np.float32 and position.shape == (50, 3)
    np.testing.assert_array_equal(neural, recording["spikes"])
    # a second call reuses the verified file without touching the URL
    assert (
        download_rat_hippocampus(
            "achilles", tmp_path / "data", url="file:///does/not/exist", md5=md5
        )
        == path
    )


@pytest.mark.parametrize("which", [0, 1])
def test_checksum_mismatch_leaves_nothing_behind(tmp_path, published, which):
    url, md5 = published
    wrong = list(md5)
    wrong[which] = "0" * 32
    with pytest.raises(
        ValueError, match=f"MD5 checksum mismatch .* expected {'0' * 32}, got {md5[which]}"
    ):
        download_rat_hippocampus("achilles", tmp_path / "data", url=url, md5=tuple(wrong))
    assert os.listdir(tmp_path / "data") == []


def test_unreachable_url_is_a_connection_error(tmp_path):
    with pytest.raises(ConnectionError, match="could not download .*missing.jl.gz: .*No such file"):
        download_rat_hippocampus("buddy", tmp_path, url=(tmp_path / "missing.jl.gz").as_uri())
    assert os.listdir(tmp_path) == []


def test_joblib_files_load_without_joblib_including_compressed(tmp_path, recording):
    content = {**recording, "names": ["a", "b"], "fortran": np.asfortranarray(np.eye(3)[:, :2])}
    for compress in (0, 3, ("gzip", 3)):
        joblib.dump(content, tmp_path / "r.jl", compress=compress)
        loaded = restricted_load(tmp_path / "r.jl")
        np.testing.assert_array_equal(loaded["spikes"], recording["spikes"])
        np.testing.assert_array_equal(loaded["fortran"], content["fortran"])
        assert loaded["names"] == ["a", "b"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickles_of_arrays_load(tmp_path, recording, protocol):
    with open(tmp_path / "r.pkl", "wb") as handle:
        pickle.dump(recording, handle, protocol=protocol)
    neural, position = load_rat_hippocampus(tmp_path / "r.pkl")
    np.testing.assert_array_equal(position, recording["position"].astype(np.float32))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file when unpickled


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_malicious_pickles_are_refused_and_never_run(tmp_path, dump):
    marker = tmp_path / "pwned"
    content = {"spikes": _Payload(str(marker)), "position": np.zeros((2, 3))}
    path = tmp_path / "evil.jl"
    if dump == "joblib":
        joblib.dump(content, path)
    else:
        path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=r"cannot load .* safely: refused to load \w+\.open"):
        load_rat_hippocampus(path)
    assert not marker.exists()


def test_wrong_content_is_explained(tmp_path):
    joblib.dump({"spikes": np.ones((5, 2))}, tmp_path / "x.jl")
    with pytest.raises(
        ValueError, match=r"expected a dict with 'spikes' and 'position', got \['spikes'\]"
    ):
        load_rat_hippocampus(tmp_path / "x.jl")
    joblib.dump({"spikes": np.ones((5, 2)), "position": np.ones((4, 3))}, tmp_path / "y.jl")
    with pytest.raises(ValueError, match=r"same T, got shapes \(5, 2\) and \(4, 3\)"):
        load_rat_hippocampus(tmp_path / "y.jl")


def test_a_failed_update_keeps_the_file_that_was_there(tmp_path, published):
    """A local file with another checksum is downloaded again; when the new unpacked file fails
    its check, the old one stays as it was (written through core.files: whole or not at all)."""
    url, md5 = published
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "achilles.jl").write_bytes(b"an older copy")
    with pytest.raises(ValueError, match="MD5 checksum mismatch for the unpacked file"):
        download_rat_hippocampus("achilles", folder, url=url, md5=(md5[0], "0" * 32))
    assert (folder / "achilles.jl").read_bytes() == b"an older copy"
    assert os.listdir(folder) == ["achilles.jl"]
