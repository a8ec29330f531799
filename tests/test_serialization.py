"""Model files: round trips, cebra 0.6 files without cebra, refusal of unsafe or broken files."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

from napari_cebra import CEBRA
from napari_cebra.core.serialization import FORMAT, FORMAT_VERSION, write_atomically


def _assert_same_model(loaded: CEBRA, original: CEBRA, X: np.ndarray, **transform_kwargs) -> None:
    assert loaded.get_params() == original.get_params()
    _assert_nested_close(loaded.state_dict_, original.state_dict_)
    np.testing.assert_allclose(
        loaded.transform(X, **transform_kwargs), original.transform(X, **transform_kwargs)
    )
    for name in ("offset_", "solver_name_", "n_features_", "num_sessions_", "seed_", "device_"):
        assert getattr(loaded, name) == getattr(original, name)
    assert loaded.label_types_ == original.label_types_


def _assert_nested_close(left, right) -> None:
    if isinstance(left, torch.Tensor):
        torch.testing.assert_close(left, right)
    elif isinstance(left, dict):
        assert set(left) == set(right)
        for key in left:
            _assert_nested_close(left[key], right[key])
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            _assert_nested_close(a, b)
    else:
        assert left == right


@pytest.mark.parametrize(
    ("params", "kinds"),
    [
        ({}, ()),
        ({"temperature_mode": "auto"}, ("continuous", "discrete")),
        ({"hybrid": True}, ("continuous",)),
        ({"batch_size": None}, ("continuous",)),
    ],
)
def test_round_trip_single_session(params, kinds, small_data, fast_params, tmp_path):
    values = {
        "continuous": np.linspace(0, 1, 200).astype(np.float32),
        "discrete": np.arange(200) % 3,
    }
    model = CEBRA(**dict(fast_params, **params)).fit(small_data, *(values[k] for k in kinds))
    path = tmp_path / "model.pt"
    model.save(path)
    _assert_same_model(CEBRA.load(path), model, small_data)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_round_trip_multi_session(rng, fast_params, tmp_path):
    X = [rng.normal(size=(100, 6)).astype(np.float32), rng.normal(size=(90, 4)).astype(np.float32)]
    y = [np.arange(100) % 2, np.arange(90) % 2]
    model = CEBRA(**fast_params).fit(X, y)
    model.save(tmp_path / "multi.pt")
    loaded = CEBRA.load(str(tmp_path / "multi.pt"))
    _assert_same_model(loaded, model, X[1], session_id=1)
    assert loaded.num_sessions == 2


def test_our_file_is_plain_data_with_a_version(small_data, fast_params, tmp_path):
    CEBRA(**fast_params).fit(small_data).save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["params"]["model_architecture"] == "offset5-model"
    assert payload["state"]["offset_"] == [2, 3]
    assert set(payload["metadata"]) >= {"torch_version", "numpy_version", "sklearn_version"}


def test_loaded_model_can_be_trained_again(small_data, fast_params, tmp_path):
    CEBRA(**fast_params).fit(small_data).save(tmp_path / "m.pt")
    loaded = CEBRA.load(tmp_path / "m.pt")
    loaded.partial_fit(small_data)
    assert len(loaded.state_dict_["loss"]) == fast_params["max_iterations"]


def test_saving_unfitted_model_fails(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        CEBRA().save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_save_replaces_atomically(small_data, fast_params, tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        write_atomically(path, {"x": Unsaveable()})
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# ---------------------------------------------------------------------------------------------
# broken, foreign and malicious files
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def saved(small_data, fast_params, tmp_path):
    path = tmp_path / "good.pt"
    CEBRA(**fast_params).fit(small_data).save(path)
    return path


def test_truncated_file(saved, tmp_path):
    broken = tmp_path / "truncated.pt"
    broken.write_bytes(saved.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated.pt.*corrupt, truncated"):
        CEBRA.load(broken)


def test_corrupt_file(tmp_path):
    broken = tmp_path / "noise.pt"
    broken.write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="noise.pt"):
        CEBRA.load(broken)


def _assert_load_refuses(payload, path, match):
    """``torch.save`` ``payload`` to ``path``; loading it must raise a ValueError matching."""
    torch.save(payload, path)
    with pytest.raises(ValueError, match=match):
        CEBRA.load(path)


@pytest.mark.parametrize(
    "payload",
    [torch.zeros(3), {"weights": torch.ones(2)}, [1, 2, 3]],
    ids=["tensor", "dict", "list"],
)
def test_foreign_torch_files(payload, tmp_path):
    _assert_load_refuses(payload, tmp_path / "foreign.pt", "foreign.pt.*not a CEBRA model file")


def test_newer_format_version_is_refused(saved, tmp_path):
    payload = torch.load(saved, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    _assert_load_refuses(payload, tmp_path / "future.pt", "future.pt.*format_version 2")


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    payload = torch.load(saved, weights_only=True)
    payload["params"]["model_architecture"] = "offset10-model"
    _assert_load_refuses(
        payload, tmp_path / "mismatch.pt", "mismatch.pt.*does not contain a usable"
    )


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        CEBRA.load("/nonexistent/model.pt")


class _Exploit:
    """Unpickling this runs a shell command (creates a marker file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("container", ["torch", "plain-pickle"])
def test_malicious_pickle_is_refused_without_running(container, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"args": {}, "state": {}, "state_dict": {}, "x": _Exploit(str(marker))}
    if container == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="evil.pt"):
        CEBRA.load(path)
    assert not marker.exists()


def test_weights_only_false_is_refused(saved):
    with pytest.raises(ValueError, match="weights_only=False"):
        CEBRA.load(saved, weights_only=False)


# ---------------------------------------------------------------------------------------------
# cebra 0.6 files, read without cebra
# ---------------------------------------------------------------------------------------------

LOAD_WITHOUT_CEBRA = textwrap.dedent(
    """
    import sys
    sys.modules["cebra"] = None  # importing cebra now fails
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from napari_cebra import CEBRA
    folder, names = sys.argv[1], sys.argv[2:]
    for name in names:
        model = CEBRA.load(f"{folder}/{name}.pt")
        session_id = 1 if model.num_sessions else None
        data = np.load(f"{folder}/{name}-data.npy")
        np.save(f"{folder}/{name}-ours.npy", model.transform(data, session_id=session_id))
        print(name, model.solver_name_, len(model.state_dict_["loss"]))
    assert not any(name.split(".")[0] == "cebra" for name, mod in sys.modules.items() if mod)
    """
)


def _cebra_file_cases(rng):
    X = rng.normal(size=(300, 12)).astype(np.float32)
    y = rng.normal(size=(300, 2)).astype(np.float32)
    common = dict(model_architecture="offset10-model", batch_size=32, max_iterations=5)
    common.update(device="cpu", output_dimension=4, num_hidden_units=16, time_offsets=10)
    return [
        ("time", common, (X,), None, X),
        (
            "behaviour-auto",
            dict(common, temperature_mode="auto"),
            (X, y, np.arange(300) % 3),
            None,
            X,
        ),
        ("hybrid", dict(common, hybrid=True), (X, y), None, X),
        ("multi", common, ([X, X[:, :5]], [y, y]), 1, X[:, :5]),
        ("offset1", dict(common, model_architecture="offset1-model"), (X, y), None, X),
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cebra_files_load_without_cebra_and_transform_identically(tmp_path, rng):
    cebra = pytest.importorskip("cebra")
    expected = {}
    for name, params, fit_args, session, data in _cebra_file_cases(rng):
        reference = cebra.CEBRA(**params).fit(*fit_args)
        reference.save(str(tmp_path / f"{name}.pt"))
        np.save(tmp_path / f"{name}-data.npy", data)
        expected[name] = (reference.solver_name_, reference.transform(data, session_id=session))
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_CEBRA, str(tmp_path), *expected],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    printed = [line.split() for line in result.stdout.splitlines()]
    assert printed == [[name, solver, "5"] for name, (solver, _) in expected.items()]
    for name, (_, embedding) in expected.items():
        ours = np.load(tmp_path / f"{name}-ours.npy")
        np.testing.assert_allclose(ours, embedding, rtol=1e-5, atol=1e-5, err_msg=name)


def test_cebra_file_zip_contains_the_cebra_offset_global(tmp_path, rng):
    """Guard for the stand-in mapping: the reference pickles its Offset class by name."""
    cebra = pytest.importorskip("cebra")
    X = rng.normal(size=(100, 4)).astype(np.float32)
    path = tmp_path / "ref.pt"
    cebra.CEBRA(max_iterations=2, batch_size=16, device="cpu").fit(X).save(str(path))
    with zipfile.ZipFile(path) as archive:
        pickled = next(name for name in archive.namelist() if name.endswith("data.pkl"))
        assert b"cebra.data.datatypes" in archive.read(pickled)
    assert CEBRA.load(path).transform(X).shape == (100, 8)
