"""``cebra.datasets.init`` for the four public rat-hippocampus recordings, on local files."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

import napari_cebra as cebra
from napari_cebra.io import datasets as io_datasets

joblib = pytest.importorskip("joblib")
torch = pytest.importorskip("torch")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def recording():
    rng = np.random.default_rng(1)
    spikes = rng.poisson(0.4, size=(80, 9)).astype(np.float64)
    position = np.column_stack([rng.uniform(0, 1.6, 80), rng.integers(0, 2, (80, 2))])
    return {"spikes": spikes, "position": position}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cebra-data"
    monkeypatch.setenv("CEBRA_DATADIR", str(folder))
    return folder


def _publish(tmp_path, monkeypatch, rat, recording):
    """Serve ``rat``'s file from a file:// URL with matching checksums."""
    server = tmp_path / "server"
    server.mkdir(exist_ok=True)
    joblib.dump(recording, server / f"{rat}.jl")
    unpacked = (server / f"{rat}.jl").read_bytes()
    (server / f"{rat}.jl.gz").write_bytes(gzip.compress(unpacked))
    packed = (server / f"{rat}.jl.gz").read_bytes()
    monkeypatch.setattr(io_datasets, "RAT_HIPPOCAMPUS_URL", server.as_uri() + "/{rat}.jl.gz")
    monkeypatch.setitem(io_datasets.RAT_HIPPOCAMPUS_MD5, rat, (_md5(packed), _md5(unpacked)))


def test_names_and_data_folder(data_dir):
    assert cebra.datasets.get_options() == [
        f"rat-hippocampus-single-{rat}" for rat in ("achilles", "buddy", "cicero", "gatsby")
    ]
    assert cebra.datasets.get_options("*cicero") == ["rat-hippocampus-single-cicero"]
    assert cebra.datasets.get_datapath() == data_dir
    assert cebra.datasets.get_datapath("rat_hippocampus") == data_dir / "rat_hippocampus"
    with pytest.raises(ValueError, match="unknown dataset 'rat-hippocampus-single-rex'"):
        cebra.datasets.init("rat-hippocampus-single-rex")


@pytest.mark.parametrize("rat", ["achilles", "gatsby"])
def test_init_downloads_once_and_gives_cebras_attributes(
    rat, recording, data_dir, tmp_path, monkeypatch
):
    _publish(tmp_path, monkeypatch, rat, recording)
    dataset = cebra.datasets.init(f"rat-hippocampus-single-{rat}")
    assert (data_dir / "rat_hippocampus" / f"{rat}.jl").is_file()
    assert isinstance(dataset.neural, torch.Tensor) and dataset.neural.dtype == torch.float32
    assert dataset.continuous_index.dtype == torch.float32
    assert tuple(dataset.continuous_index.shape) == (80, 3)
    np.testing.assert_array_equal(dataset.neural.numpy(), recording["spikes"])
    np.testing.assert_allclose(dataset.continuous_index.numpy(), recording["position"])
    assert len(dataset) == 80 and dataset.input_dimension == 9
    # the second time the verified file is used; the server is gone
    for served in (tmp_path / "server").iterdir():
        served.unlink()
    again = cebra.datasets.init(f"rat-hippocampus-single-{rat}")
    assert torch.equal(again.neural, dataset.neural)


def test_offline_error_says_which_url_where_and_which_command(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(
        io_datasets, "RAT_HIPPOCAMPUS_URL", (tmp_path / "nowhere").as_uri() + "/{rat}.jl.gz"
    )
    with pytest.raises(ValueError) as raised:
        cebra.datasets.init("rat-hippocampus-single-buddy")
    message = str(raised.value)
    assert "could not download" in message
    assert "https://cebra.fra1.digitaloceanspaces.com/data/rat_hippocampus/buddy.jl.gz" in message
    assert str(data_dir / "rat_hippocampus" / "buddy.jl") in message
    assert f"napari-cebra download buddy --dest {data_dir / 'rat_hippocampus'}" in message
    assert list((data_dir / "rat_hippocampus").iterdir()) == []
    with pytest.raises(ValueError, match="does not exist"):
        cebra.datasets.init("rat-hippocampus-single-buddy", download=False)


def test_a_file_with_the_wrong_checksum_is_refused_not_opened(data_dir, recording):
    folder = data_dir / "rat_hippocampus"
    folder.mkdir(parents=True)
    joblib.dump(recording, folder / "cicero.jl")
    with pytest.raises(ValueError, match="MD5 checksum mismatch .*cicero.jl.*cicero.jl.gz"):
        cebra.datasets.init("rat-hippocampus-single-cicero")
