"""Batched ensembles (core.ensemble): K seeds trained as one model equal K single runs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra import CEBRA
from napari_cebra.core.ensemble import (
    EnsembleProgress,
    fit_ensemble,
    iter_fit_ensemble,
    make_ensemble,
)
from napari_cebra.io.synthetic import place_cell_recording

STEPS = 12


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=600, n_neurons=20, seed=3)


def _params(**extra):
    params = dict(
        model_architecture="offset10-model",
        batch_size=32,
        max_iterations=STEPS,
        output_dimension=3,
        num_hidden_units=16,
        device="cpu",
        time_offsets=5,
        # float32 on every machine: under "auto" a CPU with native bfloat16 trains in bfloat16,
        # where the grouped products round differently from a single run's program
        precision="float32",
    )
    params.update(extra)
    return params


def _loss(model):
    return np.asarray(model.state_dict_["loss"].tolist())


CASES = {
    "time, offset10": (_params(), lambda r: ()),
    "time_delta, offset1, euclidean": (
        _params(model_architecture="offset1-model", distance="euclidean"),
        lambda r: (r.position,),
    ),
    "discrete, offset5, learnable temperature": (
        _params(model_architecture="offset5-model", temperature_mode="auto"),
        lambda r: (r.direction,),
    ),
    "mixed, offset10-mse": (
        _params(model_architecture="offset10-model-mse"),
        lambda r: (r.behaviour, r.direction),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_members_follow_their_single_runs(recording, case):
    """Member k uses the init and batches of CEBRA(seed=k): losses agree to float rounding."""
    params, labels = CASES[case]
    y = labels(recording)
    members = fit_ensemble(params, recording.neural, *y, seeds=[7, 8], batched=True)
    single = CEBRA(**params, seed=8).fit(recording.neural, *y)
    np.testing.assert_allclose(_loss(members[1]), _loss(single), rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        members[1].state_dict_["log"]["temperature"],
        single.state_dict_["log"]["temperature"],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        members[1].transform(recording.neural), single.transform(recording.neural), atol=1e-4
    )
    assert not np.allclose(_loss(members[0]), _loss(members[1]))


def test_members_are_normal_fitted_estimators(recording, tmp_path):
    members = fit_ensemble(_params(), recording.neural, seeds=[1, 2, 3], batched=True)
    assert [m.seed for m in members] == [1, 2, 3]
    embeddings = [m.transform(recording.neural) for m in members]
    for member, embedding in zip(members, embeddings, strict=True):
        state = member.state_dict_
        assert len(state["loss"]) == STEPS
        assert all(len(state["log"][key]) == STEPS for key in ("pos", "neg", "total"))
        assert embedding.shape == (600, 3)
        np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
        adam = state["optimizer"]["state"]
        assert len(adam) == len(list(member.model_.parameters()))
        assert all(float(entry["step"]) == STEPS for entry in adam.values())
    assert not np.allclose(embeddings[0], embeddings[1], atol=1e-3)
    members[2].save(tmp_path / "member.pt")
    loaded = CEBRA.load(tmp_path / "member.pt")
    np.testing.assert_allclose(loaded.transform(recording.neural), embeddings[2], atol=1e-6)


def test_identical_seeds_give_identical_members(recording):
    members = fit_ensemble(_params(), recording.neural, seeds=[5, 5])
    np.testing.assert_array_equal(_loss(members[0]), _loss(members[1]))
    np.testing.assert_array_equal(
        members[0].transform(recording.neural), members[1].transform(recording.neural)
    )


def test_generator_reports_progress_and_stops_cleanly(recording):
    members = make_ensemble(_params(max_iterations=40), [0, 1])
    steps = iter_fit_ensemble(members, recording.neural, yield_every=5, batched=True)
    records = [next(steps) for _ in range(3)]
    steps.close()
    assert [r.step for r in records] == [5, 10, 15]
    assert all(isinstance(r, EnsembleProgress) and r.batched for r in records)
    assert records[-1].total_steps == 40 and len(records[-1].losses) == 2
    for member in members:
        assert len(member.state_dict_["loss"]) == 15
        assert member.state_dict_["loss"][-1].item() in records[-1].losses
        assert member.transform(recording.neural).shape == (600, 3)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_on_the_cpu_fast_path_members_are_their_single_runs(recording, precision):
    """By default the channels-last single run is the faster way on the CPU: members train as
    their own single runs (side by side when there are several torch threads) and equal them bit
    for bit."""
    records = []
    params = _params(precision=precision)
    members = fit_ensemble(params, recording.neural, seeds=[0, 1], progress=records.append)
    assert records[-1].step == records[-1].total_steps == 2 * STEPS
    assert not records[-1].batched
    for seed, member in enumerate(members):
        single = CEBRA(**params, seed=seed).fit(recording.neural)
        np.testing.assert_array_equal(_loss(member), _loss(single))
    as_float32 = CEBRA(**_params(), seed=0).fit(recording.neural)
    # bfloat16 matrix products: same batches, losses within bfloat16 rounding of float32
    np.testing.assert_allclose(_loss(members[0]), _loss(as_float32), atol=0.05)


def test_grouped_model_in_bfloat16(recording):
    records = []
    params = _params(precision="bfloat16")
    members = fit_ensemble(
        params, recording.neural, seeds=[0, 1], progress=records.append, batched=True
    )
    assert records[-1].batched and records[-1].step == STEPS
    single = CEBRA(**_params(), seed=0).fit(recording.neural)
    np.testing.assert_allclose(_loss(members[0]), _loss(single), atol=0.05)


def test_unsupported_configurations_train_one_after_another(recording):
    params = _params(model_architecture="offset36-model-dropout", batch_size=16, max_iterations=4)
    records = []
    members = fit_ensemble(params, recording.neural, seeds=[0, 1], progress=records.append)
    assert not records[-1].batched
    assert records[-1].step == records[-1].total_steps == 8
    with pytest.raises(ValueError, match="cannot be trained as one grouped model"):
        fit_ensemble(params, recording.neural, seeds=[0, 1], batched=True)
    single = CEBRA(**params, seed=1).fit(recording.neural)
    np.testing.assert_array_equal(_loss(members[1]), _loss(single))


def test_bad_arguments_raise(recording):
    with pytest.raises(ValueError, match="must not contain 'seed'"):
        make_ensemble({"seed": 1}, [0])
    with pytest.raises(ValueError, match="seeds is empty"):
        make_ensemble({}, [])
    with pytest.raises(ValueError, match="seeds must be integers"):
        make_ensemble({}, [0, 1.5])
    with pytest.raises(ValueError, match="precision"):
        fit_ensemble(_params(precision="float16"), recording.neural, seeds=[0])
    mixed = [CEBRA(**_params(), seed=0), CEBRA(**_params(output_dimension=4), seed=1)]
    with pytest.raises(ValueError, match=r"differs from members\[0\] in \['output_dimension'\]"):
        next(iter_fit_ensemble(mixed, recording.neural))


def test_members_train_side_by_side_in_threads(recording):
    """On the fast path members train ``workers`` at a time, each with its share of the torch
    threads; every member equals its single run and the thread setting is restored."""
    import threading

    import torch

    params = _params(max_iterations=30)
    threads_before = torch.get_num_threads()
    running = []
    records = []

    def progress(record):
        records.append(record)
        running.append(threading.active_count())

    members = fit_ensemble(
        params, recording.neural, seeds=[0, 1, 2], progress=progress, yield_every=5, workers=2
    )
    assert torch.get_num_threads() == threads_before
    assert not records[-1].batched
    assert records[-1].step == records[-1].total_steps == 3 * 30
    assert [r.step for r in records] == sorted(r.step for r in records)
    # members' records interleave: a second member reports before the first has finished
    first_done = next(i for i, r in enumerate(records) if r.losses[0] == _loss(members[0])[-1])
    assert any(not np.isnan(r.losses[1]) for r in records[:first_done])
    assert max(running) >= 3  # the calling thread and two workers
    torch.set_num_threads(max(1, threads_before // 2))
    try:
        singles = [CEBRA(**params, seed=seed).fit(recording.neural) for seed in range(3)]
    finally:
        torch.set_num_threads(threads_before)
    for member, single in zip(members, singles, strict=True):
        np.testing.assert_array_equal(_loss(member), _loss(single))


def test_side_by_side_members_stay_level(recording):
    """Three members on two threads: a free thread takes the run with the most steps left, so
    the third member starts long before the first two have finished (whole members per thread
    would start it only then) and all three finish within the last few records."""
    params = _params(max_iterations=60)
    records = []
    members = fit_ensemble(
        params,
        recording.neural,
        seeds=[0, 1, 2],
        progress=records.append,
        yield_every=5,
        workers=2,
    )
    finals = [_loss(member)[-1] for member in members]
    first_finish = min(
        next(i for i, r in enumerate(records) if r.losses[m] == finals[m]) for m in range(3)
    )
    third_start = next(i for i, r in enumerate(records) if not np.isnan(r.losses[2]))
    assert third_start < first_finish / 2
    assert first_finish >= len(records) - 6
    assert records[-1].step == 3 * 60


def test_side_by_side_training_stops_cleanly_and_reports_errors(recording):
    import threading

    members = make_ensemble(_params(max_iterations=400), [0, 1])
    threads_before = threading.active_count()
    steps = iter_fit_ensemble(members, recording.neural, yield_every=5, workers=2)
    records = [next(steps) for _ in range(4)]
    steps.close()
    assert threading.active_count() == threads_before
    done = [len(member.state_dict_["loss"]) for member in members]
    assert 0 < sum(done) < 800
    assert records[-1].step <= sum(done)
    for member in members:
        assert member.transform(recording.neural).shape == (600, 3)

    broken = make_ensemble(_params(), [0, 1])

    begin = broken[1].begin

    def failing_begin(*args, **kwargs):
        session = begin(*args, **kwargs)

        def failing_run(*args, **kwargs):
            raise RuntimeError("member 1 failed")
            yield  # pragma: no cover

        session.run = failing_run
        return session

    broken[1].begin = failing_begin
    with pytest.raises(RuntimeError, match="member 1 failed"):
        list(iter_fit_ensemble(broken, recording.neural, workers=2))
    assert threading.active_count() == threads_before


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_raise(recording, workers):
    expected = (
        rf"workers must be a positive integer \(or None for one per torch thread\), got {workers!r}"
    )
    with pytest.raises(ValueError, match=expected):
        fit_ensemble(_params(), recording.neural, seeds=[0, 1], workers=workers)


def test_numpy_integer_workers_and_yield_every_are_accepted(recording):
    records = []
    members = fit_ensemble(
        _params(max_iterations=6),
        recording.neural,
        seeds=[0, 1],
        progress=records.append,
        yield_every=np.int64(3),
        workers=np.int64(2),
    )
    assert [len(_loss(member)) for member in members] == [6, 6]
    assert records[-1].step == 12
