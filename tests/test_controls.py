"""Shuffle controls: shuffles, verdicts and the controls trained on the place-cell recording."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.workflows.controls import (
    CONTROL_GOF_LIMIT_BITS,
    ControlProgress,
    ControlResult,
    control_verdict,
    iter_label_shuffle_control,
    label_shuffle_control,
    neural_shuffle_control,
    shuffle_labels,
    shuffle_neurons,
)
from napari_cebra.workflows.verdicts import late_gof_rise

QUICK_PARAMS = {
    "model_architecture": "offset10-model",
    "batch_size": 64,
    "output_dimension": 3,
    "time_offsets": 10,
    "max_iterations": 6,
}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def _sorted_rows(array: np.ndarray) -> np.ndarray:
    return array[np.lexsort(array.T[::-1])] if array.ndim == 2 else np.sort(array)


@pytest.mark.parametrize("method", ["permutation", "block", "circular"])
def test_shuffle_labels_keeps_values_and_rows(rng, method):
    labels = np.stack([np.arange(1000.0), np.arange(1000.0) % 7], axis=1)
    shuffled = shuffle_labels(labels, rng, method)
    assert shuffled.shape == labels.shape and shuffled.dtype == labels.dtype
    np.testing.assert_array_equal(_sorted_rows(shuffled), _sorted_rows(labels))
    np.testing.assert_array_equal(shuffled[:, 1], shuffled[:, 0] % 7)  # rows stay together
    assert np.mean(shuffled[:, 0] == labels[:, 0]) < 0.2


def test_block_shuffle_keeps_blocks_contiguous(rng):
    labels = np.arange(400)
    shuffled = shuffle_labels(labels, rng, "block", block=40)
    blocks = shuffled.reshape(10, 40)
    np.testing.assert_array_equal(np.diff(blocks, axis=1), 1)
    np.testing.assert_array_equal(np.sort(blocks[:, 0]), np.arange(0, 400, 40))


def test_circular_shuffle_is_a_rotation_by_a_large_lag(rng):
    labels = np.arange(1000)
    shuffled = shuffle_labels(labels, rng, "circular")
    lag = int(np.argmax(shuffled == 0))
    np.testing.assert_array_equal(shuffled, np.roll(labels, lag))
    assert 100 <= lag <= 900


def test_shuffles_are_seeded(rng):
    labels = np.arange(100.0)
    first = shuffle_labels(labels, np.random.default_rng(5))
    np.testing.assert_array_equal(first, shuffle_labels(labels, np.random.default_rng(5)))


def test_unknown_shuffle_methods_raise(rng):
    with pytest.raises(ValueError, match="'sideways'"):
        shuffle_labels(np.arange(10), rng, "sideways")
    with pytest.raises(ValueError, match="'sideways'"):
        shuffle_neurons(np.zeros((10, 2)), rng, "sideways")


@pytest.mark.parametrize("method", ["permutation", "circular"])
def test_shuffle_neurons_independently_per_column(rng, method):
    neural = np.tile(np.arange(500.0)[:, None], (1, 4))
    shuffled = shuffle_neurons(neural, rng, method)
    for column in range(4):
        np.testing.assert_array_equal(np.sort(shuffled[:, column]), np.arange(500.0))
    assert not np.array_equal(shuffled[:, 0], shuffled[:, 1])
    if method == "circular":
        steps = np.diff(shuffled, axis=0) % 500
        assert np.all(steps == 1)


@pytest.mark.parametrize(
    ("real", "control", "late", "verdict", "phrase"),
    [
        (1.2, 0.02, 0.0, "pass", "stays at 0.02 bits"),
        (1.2, 0.9, 0.0, "fail", "75%"),
        (1.2, 0.3, 0.0, "warn", "reaches 0.30 bits"),
        (0.15, 0.02, 0.0, "warn", "not clearly above"),
        (1.2, 0.05, 0.2, "warn", "overfitting"),
    ],
)
def test_control_verdicts(real, control, late, verdict, phrase):
    got, reason = control_verdict(real, control, late, "labels")
    assert got == verdict
    assert phrase in reason


def test_late_rise_measures_last_fifth():
    flat_then_rising = np.concatenate([np.zeros(80), np.linspace(0, 0.5, 20)])
    assert late_gof_rise(flat_then_rising) == pytest.approx(0.25)
    assert late_gof_rise(np.zeros(100)) == 0.0
    assert late_gof_rise(np.ones(5)) == 0.0


def test_iter_control_yields_progress_and_can_stop(rng):
    X = rng.poisson(1.0, size=(300, 8)).astype(np.float32)
    y = rng.uniform(0, 1, size=(300, 1)).astype(np.float32)
    generator = iter_label_shuffle_control(QUICK_PARAMS, X, y, seed=1)
    first = next(generator)
    assert isinstance(first, ControlProgress)
    assert first.stage == "real" and first.total_steps == 6
    generator.close()


def test_control_result_structure_and_summary(rng):
    X = rng.poisson(1.0, size=(300, 8)).astype(np.float32)
    y = rng.uniform(0, 1, size=(300, 1)).astype(np.float32)
    records: list[ControlProgress] = []
    result = neural_shuffle_control(QUICK_PARAMS, X, y, seed=1, progress=records.append)
    assert isinstance(result, ControlResult)
    assert {record.stage for record in records} == {"real", "control", "scoring"}
    assert result.kind == "neural_shuffle" and result.method == "permutation"
    assert len(result.real.loss) == 6 and len(result.control.loss) == 6
    assert result.real.train_embedding.shape == (240, 3)
    assert result.real.valid_embedding.shape == (60, 3)
    assert result.verdict in {"pass", "warn", "fail"}
    summary = result.summary()
    assert summary["real"]["loss"] == pytest.approx(result.real.loss.tolist())
    assert summary["control"]["gof_train"] == result.control.gof_train
    reused = label_shuffle_control(QUICK_PARAMS, X, y, seed=1, real=result.real)
    assert reused.real is result.real


def test_control_input_errors(rng):
    with pytest.raises(ValueError, match=r"y has 9 frames but X has 10"):
        label_shuffle_control(QUICK_PARAMS, np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ValueError, match=r"X must be a 2-D.*\(10,\)"):
        label_shuffle_control(QUICK_PARAMS, np.zeros(10), np.zeros(10))


def test_label_shuffle_control_on_place_cells():
    """Issue 3: real CEBRA-Behavior ≥ 0.5 bits, label-shuffle control ≤ 0.1 bits (~9 s)."""
    from napari_cebra.io.synthetic import place_cell_recording

    recording = place_cell_recording()
    params = {
        "model_architecture": "offset10-model",
        "batch_size": 512,
        "learning_rate": 3e-4,
        "temperature": 1.12,
        "output_dimension": 3,
        "time_offsets": 10,
        "max_iterations": 100,
    }
    result = label_shuffle_control(params, recording.neural, recording.behaviour, seed=0)
    numbers = (
        f"real {result.real.gof_train:.3f} bits, control {result.control.gof_train:.3f} bits, "
        f"late rise {result.late_drop_bits:.3f}"
    )
    assert result.real.gof_train >= 0.5, numbers
    assert result.control.gof_train <= CONTROL_GOF_LIMIT_BITS, numbers
    assert result.control.gof_valid <= CONTROL_GOF_LIMIT_BITS, numbers
    assert result.verdict == "pass", result.reason
