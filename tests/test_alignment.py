"""Aligning behaviour to neural frames by time (napari_cebra.io.alignment).

The recordings mimic a real session: 30 Hz imaging, a 120 Hz camera starting late and ending
early with single dropped frames and one long dropout, and a 50 Hz tracker starting early with
NaN samples. Behaviour is a known function of time sampled on its own clock, so the aligned values
are checked against the function at the neural frame times.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_cebra.io.alignment import (
    AlignedBehaviour,
    align_behaviour,
    behaviour_at,
    check_timestamps,
    timestamps_from_rate,
    wrap_angle,
)

NEURAL_HZ = 30.0
N_NEURAL = 900  # 30 s of imaging, frames at 0, 1/30, ..., 29.967 s


def position(t: np.ndarray) -> np.ndarray:
    """A smooth behaviour variable (cm): a slow oscillation on a drift."""
    return 10.0 * np.sin(2 * np.pi * 0.2 * t) + 0.5 * t


def speed_bound(h: float) -> float:
    """Linear-interpolation error bound max|f''| h² / 8 for :func:`position` and spacing ``h``."""
    return 10.0 * (2 * np.pi * 0.2) ** 2 * h**2 / 8


@pytest.fixture
def neural_times() -> np.ndarray:
    return timestamps_from_rate(N_NEURAL, NEURAL_HZ)


@pytest.fixture
def camera() -> tuple[np.ndarray, np.ndarray]:
    """120 Hz camera from 0.25 s to 29.0 s; 20 single frames dropped, none dropped 10.0–10.5 s."""
    times = timestamps_from_rate(3451, 120.0, start_s=0.25)  # last sample 0.25 + 3450/120 = 29.0
    rng = np.random.default_rng(0)
    singles = rng.choice(np.arange(2, 3449, 3), size=20, replace=False)  # never two in a row
    singles = singles[(times[singles] < 9.9) | (times[singles] > 10.6)]
    dropout = (times > 10.0) & (times < 10.5)
    keep = np.ones(len(times), dtype=bool)
    keep[singles] = False
    keep &= ~dropout
    return times[keep], position(times[keep])


def test_timestamps_from_rate() -> None:
    times = timestamps_from_rate(4, 120.0, start_s=-0.5)
    assert times.dtype == np.float64
    np.testing.assert_allclose(times, [-0.5, -0.5 + 1 / 120, -0.5 + 2 / 120, -0.5 + 3 / 120])
    assert timestamps_from_rate(0, 30.0).shape == (0,)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-1, 30.0), "n_samples must be a whole number ≥ 0, got -1"),
        ((2.5, 30.0), "n_samples must be a whole number"),
        ((10, 0.0), "positive number of Hz, got 0.0"),
        ((10, float("nan")), "positive number of Hz, got nan"),
        ((10, 30.0, float("inf")), "finite number of seconds, got inf"),
    ],
)
def test_timestamps_from_rate_refuses(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        timestamps_from_rate(*args)


def test_check_timestamps_returns_float64_copy() -> None:
    given = np.array([0, 1, 3], dtype=np.int32)
    checked = check_timestamps(given, 3, "t")
    assert checked.dtype == np.float64
    np.testing.assert_array_equal(checked, [0.0, 1.0, 3.0])
    checked[0] = 99
    assert given[0] == 0


@pytest.mark.parametrize(
    ("times", "n", "match"),
    [
        (["a", "b"], 2, r"timestamps of layer 'dlc' must be numbers of seconds.*<U1"),
        (np.zeros((2, 2)), 2, r"'dlc' must be 1-D .* shape \(2, 2\)"),
        (5.0, 1, r"'dlc' must be 1-D .* shape \(\)"),
        ([0.0, 1.0, 2.0], 4, "'dlc' hold 3 times but there are 4 samples"),
        ([0.0, np.nan, 2.0], 3, "'dlc' hold a non-finite time nan at index 1"),
        ([0.0, 1.0, np.inf], 3, "non-finite time inf at index 2"),
        (
            [0.0, 1.0, 2.0, 1.5, 3.0],
            5,
            r"strictly increasing, but time 1.5 s at index 3 is not after 2.0 s at index 2",
        ),
        ([0.0, 1.0, 1.0], 3, "time 1.0 s at index 2 is not after 1.0 s at index 1"),
    ],
)
def test_check_timestamps_refuses(times: object, n: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_timestamps(times, n, "timestamps of layer 'dlc'")


def test_120hz_camera_with_offset_drops_and_dropout(
    neural_times: np.ndarray, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    times, values = camera
    aligned = align_behaviour(neural_times, values, times, "continuous")

    assert isinstance(aligned, AlignedBehaviour)
    # before 0.25 s: frames 0..7; after 29.0 s: frames 871..899 (frame 870 is at exactly 29.0 s);
    # inside the 10.0–10.5 s dropout: frames 301..314 (300 and 315 sit on samples)
    expected = np.setdiff1d(np.arange(8, 871), np.arange(301, 315))
    np.testing.assert_array_equal(aligned.frames, expected)
    assert aligned.frames.dtype == np.int64
    assert aligned.n_excluded == 8 + 29 + 14
    assert aligned.message == (
        "Excluded 51 of 900 neural frames without behaviour: 8 before the behaviour starts "
        "(0.250 s); 29 after it ends (29.000 s); 14 in gaps of the behaviour longer than "
        "0.0417 s (dropped or NaN samples)."
    )
    assert aligned.values.shape == (len(expected), 1)
    truth = position(neural_times[aligned.frames])
    # single dropped frames double the spacing at most: error within the interpolation bound
    assert np.abs(aligned.values[:, 0] - truth).max() < speed_bound(2 / 120)
    assert np.abs(aligned.values[:, 0] - truth).max() > 0  # it did interpolate


def test_linear_behaviour_is_exact_across_dropped_samples(
    neural_times: np.ndarray, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    times, _ = camera
    aligned = align_behaviour(neural_times, 3.0 * times - 2.0, times, ["continuous"])
    truth = 3.0 * neural_times[aligned.frames] - 2.0
    np.testing.assert_allclose(aligned.values[:, 0], truth, rtol=1e-12, atol=1e-12)


def test_50hz_tracker_starting_early_with_nan_samples() -> None:
    neural_times = timestamps_from_rate(N_NEURAL, NEURAL_HZ, start_s=5.0)  # 5.0 … 34.97 s
    times = timestamps_from_rate(1900, 50.0, start_s=3.7)  # 3.7 … 41.68 s: covers every frame
    x = 2.0 * times + 1.0
    y = position(times)
    x[[100, 400, 401]] = np.nan  # isolated tracker misses are interpolated over
    y[np.flatnonzero((times > 20.0) & (times < 20.4))] = np.nan  # 0.4 s > 5 × 20 ms: a gap
    aligned = align_behaviour(neural_times, np.column_stack([x, y]), times, "continuous")

    in_gap = (neural_times > 20.0) & (neural_times < 20.4)
    assert in_gap.sum() == 11
    np.testing.assert_array_equal(aligned.frames, np.flatnonzero(~in_gap))
    assert aligned.message == (
        "Excluded 11 of 900 neural frames without behaviour: 11 in gaps of the behaviour longer "
        "than 0.1 s (dropped or NaN samples)."
    )
    kept = neural_times[aligned.frames]
    np.testing.assert_allclose(aligned.values[:, 0], 2.0 * kept + 1.0)
    assert np.abs(aligned.values[:, 1] - position(kept)).max() < speed_bound(1 / 50)

    # the same columns shown without excluding: NaN only where each column is unknown
    shown = behaviour_at(neural_times, np.column_stack([x, y]), times, "continuous")
    np.testing.assert_allclose(shown[:, 0], 2.0 * neural_times + 1.0)
    np.testing.assert_array_equal(np.isnan(shown[:, 1]), in_gap)


def test_everything_kept_gives_an_empty_message() -> None:
    times = timestamps_from_rate(500, 120.0, start_s=-1.0)
    aligned = align_behaviour(timestamps_from_rate(60, 30.0), times, times, "continuous")
    assert aligned.n_excluded == 0
    assert aligned.message == ""
    np.testing.assert_array_equal(aligned.frames, np.arange(60))


def test_max_gap_s_decides_what_is_a_gap(
    neural_times: np.ndarray, camera: tuple[np.ndarray, np.ndarray]
) -> None:
    times, values = camera
    bridged = align_behaviour(neural_times, values, times, "continuous", max_gap_s=np.inf)
    assert bridged.n_excluded == 8 + 29
    strict = align_behaviour(neural_times, values, times, "continuous", max_gap_s=0.01)
    # with a 10 ms limit every frame between two samples around a single dropped frame goes too
    assert strict.n_excluded > bridged.n_excluded + 14
    assert "longer than 0.01 s" in strict.message


def test_circular_head_direction_crosses_pi(neural_times: np.ndarray) -> None:
    times = timestamps_from_rate(3700, 120.0, start_s=-0.1037)  # samples fall between frames
    omega = -2 * np.pi * 0.7  # turning clockwise, wrapping through ±pi every 1.4 s
    heading = wrap_angle(omega * times + 1.0)
    aligned = align_behaviour(neural_times, heading, times, "circular")
    truth = omega * neural_times[aligned.frames] + 1.0
    assert aligned.n_excluded == 0
    assert (aligned.values > -np.pi).all() and (aligned.values <= np.pi).all()
    angular_error = np.abs(np.angle(np.exp(1j * (aligned.values[:, 0] - truth))))
    assert angular_error.max() < 1e-9
    # a linear interpolation of the raw angles would sweep through 0 at every wrap
    raw = np.interp(neural_times, times, heading)
    assert np.abs(np.angle(np.exp(1j * (raw - omega * neural_times - 1.0)))).max() > 1.0


def test_circular_takes_the_short_way_round() -> None:
    aligned = align_behaviour([0.0, 0.5, 0.75, 1.0], [3.0, -3.0], [0.0, 1.0], "circular")
    gap = 2 * np.pi - 6.0  # 3.0 → -3.0 is +0.283 rad through pi, not -6 rad through 0
    np.testing.assert_allclose(
        aligned.values[:, 0], [3.0, np.pi, wrap_angle(3.0 + 0.75 * gap), -3.0], atol=1e-12
    )


def test_wrap_angle_range() -> None:
    np.testing.assert_allclose(
        wrap_angle(np.array([np.pi, -np.pi, 3 * np.pi, 0.0, -0.5, 7.0])),
        [np.pi, np.pi, np.pi, 0.0, -0.5, 7.0 - 2 * np.pi],
    )


def test_discrete_holds_the_previous_state_and_nearest_picks_the_closest() -> None:
    state_times = [0.0, 1.0, 2.0, 3.0]
    states = [0, 1, 2, 1]
    neural = [0.0, 0.9, 1.0, 1.5, 1.6, 2.99, 3.0]
    previous = align_behaviour(neural, states, state_times, "discrete")
    np.testing.assert_array_equal(previous.values[:, 0], [0, 0, 1, 1, 1, 2, 1])
    nearest = align_behaviour(neural, states, state_times, "nearest")
    np.testing.assert_array_equal(nearest.values[:, 0], [0, 1, 1, 1, 2, 1, 1])  # tie: earlier


def test_mixed_kinds_per_column() -> None:
    times = np.array([0.0, 1.0, 2.0])
    behaviour = np.array([[0.0, 3.0, 0.0], [10.0, -3.0, 5.0], [20.0, -2.0, 7.0]])
    aligned = align_behaviour([0.5, 1.5], behaviour, times, ["continuous", "circular", "discrete"])
    np.testing.assert_allclose(aligned.values[:, 0], [5.0, 15.0])
    np.testing.assert_allclose(aligned.values[:, 1], [np.pi, -2.5])
    np.testing.assert_array_equal(aligned.values[:, 2], [0.0, 5.0])


def test_discrete_nan_state_is_a_dropped_sample() -> None:
    states = np.array([1.0, np.nan, 2.0, 2.0])
    aligned = align_behaviour([0.5, 1.5], states, [0.0, 1.0, 2.0, 3.0], "discrete")
    np.testing.assert_array_equal(aligned.values[:, 0], [1.0, 1.0])  # 1 holds over the miss


def test_no_columns_keeps_the_frames_on_the_behaviour_clock(neural_times: np.ndarray) -> None:
    clock = timestamps_from_rate(1201, 50.0, start_s=1.0)  # 1.0 … 25.0 s
    aligned = align_behaviour(neural_times, np.zeros((len(clock), 0)), clock, [])
    np.testing.assert_array_equal(aligned.frames, np.arange(30, 751))
    assert aligned.values.shape == (721, 0)
    assert "30 before the behaviour starts (1.000 s); 149 after it ends (25.000 s)" in (
        aligned.message
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kinds": ["continuous"]}, r"kinds names 1 column kinds \['continuous'\] but .* 2"),
        ({"kinds": "linear"}, "Unknown column kind 'linear'"),
        ({"behaviour": np.zeros((4, 2, 1))}, r"1-D or 2-D .* shape \(4, 2, 1\)"),
        ({"behaviour": np.array([["a", "b"]] * 4)}, "behaviour must be numeric"),
        ({"behaviour": np.zeros((0, 2)), "behaviour_times": []}, r"no samples \(shape \(0, 2\)"),
        ({"behaviour": np.zeros((3, 2))}, "behaviour timestamps hold 4 times but there are 3"),
        ({"max_gap_s": 0.0}, "max_gap_s must be a positive number of seconds, got 0.0"),
        ({"behaviour_times": [0.0, 2.0, 1.0, 3.0]}, "behaviour timestamps must be strictly"),
        ({"neural_times": [0.0, np.nan]}, "neural timestamps hold a non-finite time nan"),
        (
            {"behaviour": np.array([[np.nan, 1.0]] * 4)},
            "Behaviour column 0 has no valid sample: all its 4 values are NaN",
        ),
        (
            {"neural_times": [10.0, 11.0]},
            r"neural timestamps span 10.000 s to 11.000 s but the behaviour is known from "
            r"0.000 s to 3.000 s: the recordings do not overlap",
        ),
        (
            {"behaviour": np.array([[1.0, np.nan], [1.0, np.nan], [np.nan, 1.0], [np.nan, 1.0]])},
            "never all known at once: one has its last valid sample at 1.000 s, before another's "
            "first valid sample at 2.000 s",
        ),
        (
            {"neural_times": [1.2, 1.5], "max_gap_s": 0.5, "behaviour_times": [0, 1, 2, 3]},
            r"No neural frame has behaviour. Excluded 2 of 2 .*: 2 in gaps .* longer than 0.5 s",
        ),
    ],
)
def test_align_behaviour_refuses(kwargs: dict, match: str) -> None:
    arguments = {
        "neural_times": [0.5, 1.5, 2.5],
        "behaviour": np.arange(8.0).reshape(4, 2),
        "behaviour_times": [0.0, 1.0, 2.0, 3.0],
        "kinds": "continuous",
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        align_behaviour(
            arguments.pop("neural_times"),
            arguments.pop("behaviour"),
            arguments.pop("behaviour_times"),
            arguments.pop("kinds"),
            **arguments,
        )
