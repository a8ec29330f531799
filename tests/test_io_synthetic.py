"""The synthetic calcium-imaging session: shapes, dtypes, ROIs, kinetics and place tuning."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.io.synthetic import (
    FRAME_RATE,
    TRACK_LENGTH,
    calcium_imaging_session,
    calcium_kernel_response,
    place_cell_recording,
)
from napari_cebra.io.traces import extract_traces


@pytest.fixture(scope="module")
def session():
    return calcium_imaging_session(n_frames=1500, shape=(96, 96), n_cells=40, seed=3)


def test_default_session_has_the_documented_layout():
    s = calcium_imaging_session()
    assert s.movie.shape == (3000, 128, 128) and s.movie.dtype == np.uint16
    assert s.rois.shape == (128, 128) and s.rois.dtype == np.int32
    assert s.traces.shape == (3000, 80) and s.traces.dtype == np.float32
    assert s.behaviour.shape == (3000, 3) and s.behaviour.dtype == np.float32
    assert s.frame_rate == 30.0
    assert s.movie.nbytes < 110e6
    np.testing.assert_array_equal(np.unique(s.rois), np.arange(81))


def test_session_is_reproducible_and_seed_dependent():
    a = calcium_imaging_session(n_frames=100, shape=(48, 48), n_cells=8, seed=1)
    b = calcium_imaging_session(n_frames=100, shape=(48, 48), n_cells=8, seed=1)
    c = calcium_imaging_session(n_frames=100, shape=(48, 48), n_cells=8, seed=2)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.rois, b.rois)
    assert not np.array_equal(a.movie, c.movie)


def test_behaviour_is_a_linear_track(session):
    position, behaviour = session.position, session.behaviour
    assert position.min() >= 0.0 and position.max() <= TRACK_LENGTH
    assert position.max() - position.min() > 0.9 * TRACK_LENGTH
    np.testing.assert_array_equal(behaviour[:, 0], position)
    np.testing.assert_array_equal(behaviour[:, 1] + behaviour[:, 2], 1.0)
    np.testing.assert_array_equal(behaviour[:, 2], session.direction.astype(np.float32))


def test_rois_have_soma_sizes_and_neighbours_overlap(session):
    sizes = np.bincount(session.rois.ravel())[1:]
    assert sizes.size == session.n_cells
    assert 15 <= sizes.min() and sizes.max() <= 120
    from napari_cebra.io.synthetic import soma_footprints

    footprints = soma_footprints(60, (96, 96), np.random.default_rng(0))
    covered = (footprints > 0.05).sum(axis=0)
    assert (covered >= 2).any(), "some neighbouring footprints should overlap"


def test_kernel_rises_fast_and_decays_slowly():
    spikes = np.zeros((90, 1))
    spikes[10] = 1.0
    response = calcium_kernel_response(spikes, frame_rate=30.0)[:, 0]
    peak = int(response.argmax())
    assert response.max() == pytest.approx(1.0)
    assert 11 <= peak <= 13  # peaks 30-100 ms after the spike
    half_decay_frames = np.argmax(response[peak:] < 0.5)
    assert 0.3 <= half_decay_frames / 30.0 <= 0.8  # decay time constant ~0.7 s


def test_extracted_traces_follow_the_ground_truth(session):
    traces = extract_traces(session.movie, session.rois, dff=True, baseline_window=600)
    corr = [np.corrcoef(traces[:, k], session.traces[:, k])[0, 1] for k in range(session.n_cells)]
    assert np.median(corr) > 0.95 and min(corr) > 0.7
    # the movie is noisy: a single ROI pixel is far less clean than the ROI mean
    y, x = np.argwhere(session.rois == 1)[0]
    assert np.corrcoef(session.movie[:, y, x], session.traces[:, 0])[0, 1] < corr[0] - 0.05


def _tuning_sharpness(traces: np.ndarray, bins: np.ndarray) -> float:
    """Median over cells of (peak / mean) of the mean trace per behaviour bin."""
    tuning = np.stack([traces[bins == b].mean(axis=0) for b in np.unique(bins)])
    return float(np.median(tuning.max(axis=0) / (tuning.mean(axis=0) + 1e-6)))


def test_cells_are_tuned_to_position_and_direction(session):
    position_bin = np.digitize(session.position, np.linspace(0, TRACK_LENGTH, 17))
    bins = position_bin + 17 * session.direction
    assert _tuning_sharpness(session.traces, bins) > 2.5
    shuffled = np.random.default_rng(0).permutation(bins)
    assert _tuning_sharpness(session.traces, shuffled) < 1.6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_frames": 1}, "n_frames must be at least 2, got 1"),
        ({"shape": (8, 128)}, "both sides at least 16 pixels, got (8, 128)"),
        ({"n_cells": 0}, "n_cells must be at least 1, got 0"),
        ({"shape": (32, 32), "n_cells": 500}, "n_cells=500 cells do not fit"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        calcium_imaging_session(**kwargs)


@pytest.mark.parametrize("a", [0.0, 0.19, 0.953])
def test_first_order_recursion_equals_scipy_lfilter(a):
    from scipy.signal import lfilter

    from napari_cebra.io.synthetic import first_order_recursion

    x = np.random.default_rng(3).poisson(0.3, size=(1000, 5)).astype(float)
    np.testing.assert_allclose(
        first_order_recursion(x, a), lfilter([1.0], [1.0, -a], x, axis=0), atol=1e-12
    )
    np.testing.assert_allclose(first_order_recursion(np.ones(4), 0.5), [1, 1.5, 1.75, 1.875])


def test_lazy_session_movie_equals_the_rendered_one():
    eager = calcium_imaging_session(n_frames=70, shape=(32, 32), n_cells=4, seed=5)
    lazy = calcium_imaging_session(n_frames=70, shape=(32, 32), n_cells=4, seed=5, lazy=True)
    assert type(lazy.movie).__module__.startswith("dask")
    np.testing.assert_array_equal(np.asarray(lazy.movie[17:53]), eager.movie[17:53])
    np.testing.assert_array_equal(lazy.traces, eager.traces)


def test_true_place_fields_explain_the_spikes(session):
    fields = session.fields
    assert fields.n_neurons == session.n_cells
    assert set(np.unique(fields.preference)) <= {0, 1, 2}
    np.testing.assert_array_equal(fields.untuned_rate[~fields.untuned], 0.0)
    expected = fields.rates(session.position, session.direction) / FRAME_RATE
    # Poisson counts: each cell's total spike count within 4.5 σ of the count its field predicts
    total = expected.sum(axis=0)
    assert np.abs(session.spikes.sum(axis=0) - total).max() < 4.5 * np.sqrt(total).max()
    # and the spikes follow the field frame by frame
    tuned = np.flatnonzero(~fields.untuned)
    corr = [np.corrcoef(session.spikes[:, k], expected[:, k])[0, 1] for k in tuned]
    assert min(corr) > 0.15 and np.median(corr) > 0.35
    # cells tuned to rightward runs barely fire in their field while running left
    right_only = np.flatnonzero(~fields.untuned & (fields.preference == 0))
    near = (
        np.abs(session.position[:, None] - fields.centres[right_only]) < fields.widths[right_only]
    )
    leftward = (session.direction == 1)[:, None]
    spikes = session.spikes[:, right_only]
    assert spikes[near & ~leftward].sum() > 5 * spikes[near & leftward].sum()


def test_place_cell_recording_keeps_its_fields():
    recording = place_cell_recording(n_frames=500, n_neurons=12, seed=1)
    assert recording.fields.n_neurons == 12
    assert recording.fields.rates(recording.position, recording.direction).shape == (500, 12)
