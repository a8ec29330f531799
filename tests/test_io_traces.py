"""ROI trace extraction and ΔF/F against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.io.traces import (
    DEFAULT_CHUNK_BYTES,
    delta_f_over_f,
    extract_traces,
    frames_per_chunk,
    iter_extract_traces,
    roi_labels,
    running_percentile,
)


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    movie = rng.integers(0, 1000, size=(23, 9, 7)).astype(np.uint16)
    rois = np.zeros((9, 7), dtype=np.int32)
    rois[1:4, 1:3] = 2
    rois[5:8, 2:6] = 7  # labels need not be contiguous
    rois[0, 6] = 3
    return movie, rois


def _brute_force_means(movie, rois):
    labels = sorted(set(rois.ravel().tolist()) - {0})
    out = np.zeros((movie.shape[0], len(labels)))
    for t in range(movie.shape[0]):
        for j, label in enumerate(labels):
            values = [
                float(movie[t, y, x])
                for y in range(rois.shape[0])
                for x in range(rois.shape[1])
                if rois[y, x] == label
            ]
            out[t, j] = sum(values) / len(values)
    return out


@pytest.mark.parametrize("chunk_frames", [1, 5, 23, 100])
def test_means_match_a_brute_force_loop(tiny, chunk_frames):
    movie, rois = tiny
    traces = extract_traces(movie, rois, chunk_frames=chunk_frames)
    assert traces.shape == (23, 3) and traces.dtype == np.float32
    np.testing.assert_allclose(traces, _brute_force_means(movie, rois), rtol=1e-6)
    np.testing.assert_array_equal(roi_labels(rois), [2, 3, 7])


def _label_order_means(movie, rois):
    """The extraction before issue 17: gather ROI pixels in label order, sum in float64."""
    flat = rois.reshape(-1)
    inside = np.flatnonzero(flat > 0)
    order = inside[np.argsort(flat[inside], kind="stable")]
    _, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    frames = movie.reshape(movie.shape[0], -1)[:, order].astype(np.float64)
    return (np.add.reduceat(frames, starts, axis=1) / counts).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int8])
def test_traces_are_identical_to_the_label_order_sums_whatever_the_chunks(dtype):
    rng = np.random.default_rng(5)
    movie = (rng.normal(size=(40, 37, 29)) * 100).astype(dtype)
    rois = rng.integers(0, 60, size=(37, 29)) * (rng.random((37, 29)) < 0.4)  # scattered labels
    expected = _label_order_means(movie, rois)
    for chunk_frames in (1, 7, 40, None):
        traces = extract_traces(movie, rois, chunk_frames=chunk_frames)
        np.testing.assert_array_equal(traces, expected, err_msg=f"chunk_frames={chunk_frames}")


def test_default_chunks_hold_about_64_mib():
    assert DEFAULT_CHUNK_BYTES == 64 << 20
    assert frames_per_chunk(np.empty((5, 512, 512), np.uint16)) == 128
    assert frames_per_chunk(np.empty((5, 512, 512), np.uint16), chunk_bytes=1) == 1
    huge = type("Huge", (), {"shape": (3, 8192, 8192), "dtype": np.dtype(np.float64)})()
    assert frames_per_chunk(huge) == 1  # a 512 MiB frame is still read one at a time


class _CountingMovie:
    """A movie that records every slice read from it and refuses whole-array conversion."""

    def __init__(self, data):
        self._data, self.shape, self.reads = data, data.shape, []

    def __getitem__(self, item):
        self.reads.append((item.start, item.stop))
        return self._data[item]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole movie was loaded")


def test_movie_is_read_in_chunks_with_progress(tiny):
    movie, rois = tiny
    lazy = _CountingMovie(movie)
    fractions = []
    traces = extract_traces(lazy, rois, chunk_frames=10, progress=fractions.append)
    assert lazy.reads == [(0, 10), (10, 20), (20, 23)]
    assert fractions == pytest.approx([10 / 23, 20 / 23, 1.0])
    np.testing.assert_allclose(traces, _brute_force_means(movie, rois), rtol=1e-6)


def test_dask_movie_is_supported(tiny):
    da = pytest.importorskip("dask.array")
    movie, rois = tiny
    traces = extract_traces(da.from_array(movie, chunks=(4, 9, 7)), rois, chunk_frames=6)
    np.testing.assert_allclose(traces, _brute_force_means(movie, rois), rtol=1e-6)


def test_generator_yields_fractions_can_stop_and_returns_traces(tiny):
    movie, rois = tiny
    steps = iter_extract_traces(movie, rois, chunk_frames=8)
    assert next(steps) == pytest.approx(8 / 23)
    steps.close()  # a worker stopping between chunks
    steps = iter_extract_traces(movie, rois, chunk_frames=8)
    fractions = []
    with pytest.raises(StopIteration) as done:
        while True:
            fractions.append(next(steps))
    assert fractions[-1] == 1.0 and len(fractions) == 3
    np.testing.assert_allclose(done.value.value, _brute_force_means(movie, rois), rtol=1e-6)


def test_running_percentile_matches_a_windowed_loop():
    rng = np.random.default_rng(1)
    traces = rng.normal(size=(400, 2)).cumsum(axis=0) + 50.0
    window, q = 40, 10.0
    baseline = running_percentile(traces, window, q)
    exact = np.stack(
        [np.percentile(traces[max(0, t - 20) : t + 20], q, axis=0) for t in range(400)]
    )
    sampled = np.arange(0, 400, 2)  # evaluated exactly on a stride of window // 20 = 2 frames
    np.testing.assert_allclose(baseline[sampled], exact[sampled])
    assert np.abs(baseline - exact).max() < 0.5 * traces.std()


def test_dff_removes_drift_and_scales_transients():
    n = 3000
    t = np.arange(n)
    baseline = 100.0 + 40.0 * t / n  # slow drift
    transients = np.zeros(n)
    transients[500:530] = 1.0  # ΔF/F of 1 for one second
    traces = (baseline * (1.0 + transients))[:, None]
    dff = delta_f_over_f(traces, baseline_window=300, percentile=8)
    assert dff.shape == (n, 1) and dff.dtype == np.float32
    quiet = np.ones(n, bool)
    quiet[480:560] = False
    # a 40 % drift leaves < 2 % (a low percentile of a ramp lags it by (0.5 - q) * window frames)
    assert np.abs(dff[quiet, 0]).max() < 0.02
    np.testing.assert_allclose(dff[505:525, 0], 1.0, atol=0.05)


def test_extract_traces_dff_option_equals_two_steps(tiny):
    movie, rois = tiny
    movie = movie + 500  # positive baseline
    two_steps = delta_f_over_f(extract_traces(movie, rois), baseline_window=9, percentile=20)
    one_step = extract_traces(movie, rois, dff=True, baseline_window=9, percentile=20)
    np.testing.assert_allclose(one_step, two_steps)


@pytest.mark.parametrize(
    ("movie_shape", "rois", "message"),
    [
        ((5, 9, 7), np.ones((9, 8), np.int32), r"rois shape \(9, 8\) does not match .* \(9, 7\)"),
        ((5, 9, 7), np.zeros((9, 7), np.int32), r"rois of shape \(9, 7\) holds no ROI"),
        ((5, 9, 7), np.ones((9, 7), np.float32), "integer label image, got dtype float32"),
        ((5, 9, 7), -np.ones((9, 7), np.int32), "negative labels, found -1"),
        ((9, 7), np.ones((9, 7), np.int32), r"movie must be 3-D .* got shape \(9, 7\)"),
    ],
)
def test_bad_input_raises_at_call_time(movie_shape, rois, message):
    movie = np.ones(movie_shape, np.uint16)
    with pytest.raises(ValueError, match=message):
        iter_extract_traces(movie, rois)  # before the first next()
    with pytest.raises(ValueError, match=message):
        extract_traces(movie, rois)


def test_dff_of_a_nonpositive_baseline_is_refused():
    traces = np.stack([np.full(50, 10.0), np.full(50, -3.0)], axis=1)
    with pytest.raises(ValueError, match=r"positive baseline.*columns \[1\]"):
        delta_f_over_f(traces, baseline_window=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dff": True, "baseline_window": 0}, "baseline_window must be a positive"),
        ({"dff": True, "percentile": 101}, r"percentile must be in \[0, 100\], got 101"),
        ({"chunk_frames": 0}, "chunk_frames must be at least 1, got 0"),
    ],
)
def test_bad_options_raise(tiny, kwargs, message):
    movie, rois = tiny
    with pytest.raises(ValueError, match=message):
        extract_traces(movie, rois, **kwargs)
