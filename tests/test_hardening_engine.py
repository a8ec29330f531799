"""Issue 14 probes of the engine: what one number may ask for (memory), seeded training in threads,
damaged model files, ``~`` in model paths and collapsed embeddings."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from napari_cebra import CEBRA
from napari_cebra.core.consistency import (
    COLLAPSE_RELATIVE_SPREAD,
    CollapsedEmbeddingWarning,
    consistency_score,
    is_collapsed,
)
from napari_cebra.workflows.consistency_runs import consistency_runs
from napari_cebra.workflows.verdicts import consistency_check, consistency_reading

SMALL = dict(
    model_architecture="offset5-model",
    batch_size=16,
    max_iterations=3,
    output_dimension=3,
    num_hidden_units=8,
    time_offsets=2,
    device="cpu",
    seed=0,
)


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(recording, tmp_path_factory):
    """A small fitted model file and its payload (read back as plain data)."""
    path = tmp_path_factory.mktemp("model") / "good.pt"
    CEBRA(**SMALL).fit(recording).save(path)
    return path, torch.load(path, weights_only=True)


def _resaved(payload, path):
    torch.save(payload, path)
    return path


# ---------------------------------------------------------------------------------------------
# 5. memory: bounded before anything is allocated
# ---------------------------------------------------------------------------------------------

MEMORY_PROBES = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from napari_cebra import CEBRA

    folder = sys.argv[1]
    X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    CEBRA(max_iterations=2, batch_size=8, device="cpu", seed=0).fit(X, np.arange(60) % 3)
    CEBRA.load(f"{folder}/good.pt")  # warm up: every lazy import and first allocation done

    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))

    def labels(value):
        y = np.zeros(60, dtype=np.int64)
        y[7] = value
        return y

    probes = {
        "batch": lambda: CEBRA(batch_size=10**9, max_iterations=1, device="cpu").fit(X[:40]),
        "label 1e8": lambda: CEBRA(batch_size=8, max_iterations=2, device="cpu").fit(
            X, labels(10**8)
        ),
        "label 1e12": lambda: CEBRA(batch_size=8, max_iterations=2, device="cpu").fit(
            X, labels(10**12)
        ),
        "n_features 1e6": lambda: CEBRA.load(f"{folder}/features-1e6.pt"),
        "n_features 1e7": lambda: CEBRA.load(f"{folder}/features-1e7.pt"),
        "hidden units 1e5": lambda: CEBRA.load(f"{folder}/hidden-1e5.pt"),
    }
    results = {}
    for name, call in probes.items():
        before = peak_kib()
        try:
            call()
            outcome = "ok"
        except Exception as error:
            outcome = f"{type(error).__name__}: {error}"
        results[name] = {"outcome": outcome, "growth_mib": (peak_kib() - before) / 1024}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def memory_probes(saved, tmp_path_factory):
    """Run every probe in one subprocess whose address space is limited to 1 GiB more than it
    uses after warming up; report each probe's outcome and growth of the peak memory."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space limit and /proc are Linux features")
    path, payload = saved
    folder = tmp_path_factory.mktemp("claims")
    (folder / "good.pt").write_bytes(path.read_bytes())
    for name, width in (("features-1e6", 10**6), ("features-1e7", 10**7)):
        claim = {**payload, "state": {**payload["state"], "n_features_in_": width}}
        claim["state"]["n_features_"] = width
        _resaved(claim, folder / f"{name}.pt")
    hidden = {**payload, "params": {**payload["params"], "num_hidden_units": 10**5}}
    _resaved(hidden, folder / "hidden-1e5.pt")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBES, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    ("probe", "outcome"),
    [
        ("batch", r"ValueError: batch_size=1000000000 is larger than the 40 samples of X"),
        ("label 1e8", "ok"),
        ("label 1e12", "ok"),
        ("n_features 1e6", r"ValueError: .*1e6\.pt.*n_features_in_=1000000, .*'net.0.weight' has"),
        ("n_features 1e7", r"ValueError: .*1e7\.pt.*n_features_in_=10000000, .*'net.0.weight' has"),
        ("hidden units 1e5", r"ValueError: .*1e5\.pt.*num_hidden_units=100000, .*has shape"),
    ],
)
def test_one_number_cannot_exhaust_memory(memory_probes, probe, outcome):
    """Issue 14 #5: a huge batch is refused, huge label values cost nothing, sizes claimed by a
    model file are compared with its tensors before anything of that size is allocated."""
    result = memory_probes[probe]
    assert re.match(outcome, result["outcome"]), result["outcome"]
    assert result["growth_mib"] < 100, result


def test_batch_size_is_bounded_by_each_recording(recording):
    CEBRA(**dict(SMALL, batch_size=120)).fit(recording)  # as many as there are samples: fine
    with pytest.raises(ValueError, match=r"batch_size=121 .* 120 samples of X.*batch_size <= 120"):
        CEBRA(**dict(SMALL, batch_size=121)).fit(recording)
    sessions = [recording, recording[:50]]
    labels = [np.linspace(0, 1, len(x)).astype(np.float32) for x in sessions]
    with pytest.raises(ValueError, match=r"batch_size=64 .* 50 samples of X\[1\]"):
        CEBRA(**dict(SMALL, batch_size=64)).fit(sessions, labels)
    model = CEBRA(**dict(SMALL, batch_size=100)).fit(recording)
    with pytest.raises(ValueError, match=r"batch_size=100 .* 90 samples of X"):
        model.fit(recording[:90, :4], adapt=True)


@pytest.mark.parametrize("kind", ["discrete", "mixed", "multi-session"])
def test_discrete_labels_train_as_classes_whatever_their_values(recording, kind):
    """Large, sparse label values give bit for bit the run of the labels 0 … K − 1."""
    classes = np.arange(120) % 3
    sparse = np.array([0, 10**12, 7])[classes]  # same classes, order kept by value: 0 < 7 < 10¹²
    dense = np.array([0, 2, 1])[classes]
    position = np.linspace(0, 1, 120).astype(np.float32)

    def embed(labels):
        if kind == "multi-session":
            halves = [recording[:60], recording[60:]]
            model = CEBRA(**SMALL).fit(halves, [labels[:60], labels[60:]])
            return model.transform(halves[1], session_id=1)
        extra = (position,) if kind == "mixed" else ()
        return CEBRA(**SMALL).fit(recording, *extra, labels).transform(recording)

    np.testing.assert_array_equal(embed(sparse), embed(dense))


# ---------------------------------------------------------------------------------------------
# 6. seeded training in threads
# ---------------------------------------------------------------------------------------------

THREADED = dict(batch_size=16, max_iterations=15, output_dimension=3, num_hidden_units=8)
THREADED.update(device="cpu", time_offsets=2)
THREAD_RUNS = [
    ({"model_architecture": "offset10-model", "seed": 1}, ()),
    ({"model_architecture": "offset1-model", "seed": 2}, ("continuous",)),
    ({"model_architecture": "offset36-model-dropout", "seed": 3}, ()),
    ({"model_architecture": "offset36-model-more-dropout", "seed": 4}, ("discrete",)),
]


def _thread_data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    labels = {
        "continuous": rng.normal(size=(200, 2)).astype(np.float32),
        "discrete": np.arange(200) % 4,
    }
    return X, labels


def _seeded_fit(params, kinds, X, labels, barrier=None, torch_threads=None):
    model = CEBRA(**{**THREADED, **params})
    if torch_threads is not None:  # a new thread may not inherit the intra-op thread count
        torch.set_num_threads(torch_threads)
    if barrier is not None:
        barrier.wait()
    model.fit(X, *(labels[kind] for kind in kinds))
    return model.transform(X)


def test_seeded_fits_in_threads_equal_fits_one_after_another():
    """Issue 14 #6: four seeded fits (two with dropout) started together in threads give the
    embeddings of the same seeds fitted one after the other, bit for bit."""
    X, labels = _thread_data()
    expected = [_seeded_fit(params, kinds, X, labels) for params, kinds in THREAD_RUNS]
    barrier = threading.Barrier(len(THREAD_RUNS))
    with ThreadPoolExecutor(len(THREAD_RUNS)) as pool:
        futures = [
            pool.submit(_seeded_fit, params, kinds, X, labels, barrier, torch.get_num_threads())
            for params, kinds in THREAD_RUNS
        ]
        threaded = [future.result() for future in futures]
    for (params, _), ours, alone in zip(THREAD_RUNS, threaded, expected, strict=True):
        np.testing.assert_array_equal(ours, alone, err_msg=params["model_architecture"])


def test_dropout_training_does_not_touch_other_threads_seeded_draws():
    """A thread drawing seeded ``torch.rand`` while a dropout model trains gets the draws it gets
    alone, and the dropout model its result alone."""
    X, labels = _thread_data()
    params, kinds = THREAD_RUNS[3]

    def seeded_draws():
        torch.manual_seed(123)
        return torch.cat([torch.rand(32) for _ in range(8)])

    expected_draws = seeded_draws()
    expected_embedding = _seeded_fit(dict(params, max_iterations=40), kinds, X, labels)
    finished = threading.Event()
    mismatches = []
    checks = 0

    def draw_until_finished():
        nonlocal checks
        while not finished.is_set() or checks == 0:
            if not torch.equal(seeded_draws(), expected_draws):
                mismatches.append(checks)
            checks += 1

    drawer = threading.Thread(target=draw_until_finished)
    drawer.start()
    try:
        embedding = _seeded_fit(dict(params, max_iterations=40), kinds, X, labels)
    finally:
        finished.set()
        drawer.join()
    assert checks > 1 and mismatches == []
    np.testing.assert_array_equal(embedding, expected_embedding)


# ---------------------------------------------------------------------------------------------
# 7. damaged model files
# ---------------------------------------------------------------------------------------------


def _overwrite_tensor_bytes(path, member_suffix="/data/0", count=64):
    """Overwrite ``count`` bytes in the middle of a tensor's data inside the zip archive."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    assert info.file_size >= 2 * count
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
        start = info.header_offset + 30 + name_length + extra_length + count // 2
        handle.seek(start)
        original = handle.read(count)
        handle.seek(start)
        handle.write(bytes(255 - byte for byte in original))


def test_overwritten_tensor_bytes_are_refused(saved, tmp_path):
    path = tmp_path / "damaged.pt"
    path.write_bytes(saved[0].read_bytes())
    _overwrite_tensor_bytes(path)
    with pytest.raises(ValueError, match=r"damaged\.pt.*is damaged.*CRC-32"):
        CEBRA.load(path)


def test_damaged_cebra_file_is_refused(recording, tmp_path):
    cebra = pytest.importorskip("cebra")
    path = tmp_path / "reference.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cebra.CEBRA(max_iterations=2, batch_size=16, device="cpu").fit(recording).save(str(path))
    assert CEBRA.load(path).transform(recording).shape == (120, 8)
    _overwrite_tensor_bytes(path)
    with pytest.raises(ValueError, match=r"reference\.pt.*CRC-32"):
        CEBRA.load(path)


def test_compressed_archive_members_are_refused(saved, tmp_path):
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(saved[0]) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"deflated\.pt.*is compressed"):
        CEBRA.load(path)


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, True, None])
def test_format_version_must_be_a_positive_integer(saved, tmp_path, version):
    payload = {**saved[1], "format_version": version}
    path = _resaved(payload, tmp_path / "version.pt")
    with pytest.raises(ValueError, match=r"version\.pt.*format_version .* not a positive integer"):
        CEBRA.load(path)


def _with_model_tensor(payload, key, tensor):
    state_dict = {**payload["state_dict"], "model": {**payload["state_dict"]["model"]}}
    state_dict["model"][key] = tensor
    return {**payload, "state_dict": state_dict}


def test_unknown_and_misshapen_tensors_are_refused(saved, tmp_path):
    payload = saved[1]
    extra = _with_model_tensor(payload, "net.9.weight", torch.zeros(4))
    with pytest.raises(ValueError, match=r"extra\.pt.*unexpected tensor 'net.9.weight'"):
        CEBRA.load(_resaved(extra, tmp_path / "extra.pt"))
    first = next(iter(payload["state_dict"]["model"]))
    wrong = _with_model_tensor(payload, first, torch.zeros(8, 6, 3))
    with pytest.raises(ValueError, match=rf"wrong\.pt.*'{first}' has shape \(8, 6, 3\)"):
        CEBRA.load(_resaved(wrong, tmp_path / "wrong.pt"))
    stray = {**payload, "metadata": {**payload["metadata"], "blob": torch.zeros(1000)}}
    with pytest.raises(ValueError, match=r"stray\.pt.*unknown tensor at 'metadata.blob'"):
        CEBRA.load(_resaved(stray, tmp_path / "stray.pt"))
    optimizer = payload["state_dict"]["optimizer"]
    state = {**optimizer["state"], 0: {**optimizer["state"][0], "exp_avg": torch.zeros(5)}}
    bad_state = {**payload["state_dict"], "optimizer": {**optimizer, "state": state}}
    with pytest.raises(ValueError, match=r"adam\.pt.*'exp_avg' of parameter 0 has shape \(5,\)"):
        CEBRA.load(_resaved({**payload, "state_dict": bad_state}, tmp_path / "adam.pt"))


# ---------------------------------------------------------------------------------------------
# 9. "~" in model paths
# ---------------------------------------------------------------------------------------------


def test_save_and_load_expand_the_home_folder(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    model = CEBRA(**SMALL).fit(recording)
    model.save("~/model.pt")
    assert (tmp_path / "model.pt").is_file()
    loaded = CEBRA.load("~/model.pt")
    np.testing.assert_array_equal(loaded.transform(recording), model.transform(recording))


# ---------------------------------------------------------------------------------------------
# Also: collapsed embeddings do not pass
# ---------------------------------------------------------------------------------------------


def test_what_counts_as_collapsed():
    rng = np.random.default_rng(2)
    spread = rng.normal(size=(200, 3))
    assert is_collapsed(np.zeros((200, 3)))
    assert is_collapsed(np.ones((200, 3)) + 1e-7 * spread)  # float rounding only
    assert is_collapsed(np.ones((1, 3)))
    assert not is_collapsed(spread)
    assert not is_collapsed(np.ones((200, 3)) + 10 * COLLAPSE_RELATIVE_SPREAD * spread)


def test_pairs_with_a_collapsed_embedding_score_nan():
    rng = np.random.default_rng(3)
    good = [rng.normal(size=(100, 3)) for _ in range(2)]
    expected, _, _ = consistency_score(good, between="runs")
    with pytest.warns(CollapsedEmbeddingWarning, match=r"embeddings \[2\] are collapsed"):
        scores, pairs, ids = consistency_score([*good, np.zeros((100, 3))], between="runs")
    assert scores.shape == (6,) and pairs.shape == (6, 2) and ids.tolist() == [0, 1, 2]
    with_collapsed = (pairs == 2).any(axis=1)
    assert np.isnan(scores[with_collapsed]).all()
    np.testing.assert_array_equal(scores[~with_collapsed], expected)
    labels = [np.linspace(0, 1, 100)] * 2
    with pytest.warns(CollapsedEmbeddingWarning):
        scores, _, _ = consistency_score(
            [good[0], np.full((100, 3), 0.5)], between="datasets", labels=labels
        )
    assert np.isnan(scores).all()


def test_all_zero_recording_fails_the_consistency_check_as_collapsed():
    """Issue 14: an all-zero recording used to get "83 % consistency"."""
    params = dict(model_architecture="offset10-model", batch_size=32, max_iterations=10)
    params.update(output_dimension=3, num_hidden_units=8, device="cpu")
    with pytest.warns(CollapsedEmbeddingWarning):
        runs = consistency_runs(params, np.zeros((300, 10), np.float32), n_runs=3)
    assert runs.collapsed == [0, 1, 2]
    assert np.isnan(runs.mean_train) and np.isnan(runs.mean_valid)
    for part, mean in (("train", runs.mean_train), ("valid", runs.mean_valid)):
        check = consistency_check(part, mean)
        assert check["verdict"] == "fail" and "collapsed" in check["reason"]
    verdict, text = consistency_reading(runs.mean_train, runs.mean_valid)
    assert verdict == "fail" and "collapsed" in text and "%" not in text
