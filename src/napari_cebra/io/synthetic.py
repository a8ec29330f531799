"""Synthetic recordings generated in code (no download): sample data and test fixtures.

The place-cell recording imitates the public rat-hippocampus "achilles" recording that the CEBRA
authors use: an animal runs back and forth on a 1.6 m linear track, 120 hippocampal neurons with
direction-selective place fields fire Poisson spikes, counted in 25 ms bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRACK_LENGTH = 1.6  # metres
BIN_SIZE = 0.025  # seconds


@dataclass(frozen=True)
class PlaceCellRecording:
    """A neurons × time matrix with the behaviour that drives it.

    Attributes
    ----------
    neural : np.ndarray
        ``(T, n)`` float32 spike counts per bin.
    position : np.ndarray
        ``(T,)`` float32 position on the track in metres, in ``[0, 1.6]``.
    direction : np.ndarray
        ``(T,)`` int64 running direction, 0 = rightward (increasing position), 1 = leftward.
    bin_size : float
        Bin width in seconds.
    """

    neural: np.ndarray
    position: np.ndarray
    direction: np.ndarray
    bin_size: float = BIN_SIZE

    @property
    def behaviour(self) -> np.ndarray:
        """``(T, 3)`` float32 ``[position, right, left]``, the layout of the achilles labels."""
        right = (self.direction == 0).astype(np.float32)
        return np.stack([self.position, right, 1.0 - right], axis=1).astype(np.float32)

    @property
    def n_frames(self) -> int:
        return int(self.neural.shape[0])


def linear_track_trajectory(
    n_frames: int, rng: np.random.Generator, bin_size: float = BIN_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Back-and-forth runs on the track with variable speed and pauses at both ends.

    Returns
    -------
    position : (T,) float32 metres, direction : (T,) int64 (0 rightward, 1 leftward).
    """
    position = np.empty(n_frames, dtype=np.float64)
    direction = np.empty(n_frames, dtype=np.int64)
    t, x, heading = 0, 0.0, 0
    while t < n_frames:
        # pause at the end of the track (reward), 0.3-1.5 s
        pause = int(rng.uniform(0.3, 1.5) / bin_size)
        stop = min(t + pause, n_frames)
        position[t:stop] = x + rng.normal(0.0, 0.003, stop - t)
        direction[t:stop] = heading
        t = stop
        # one run across the track at 0.4-1.0 m/s with a smooth speed profile
        speed = rng.uniform(0.4, 1.0)
        n_run = max(int(TRACK_LENGTH / speed / bin_size), 2)
        profile = np.sin(np.linspace(0.0, np.pi, n_run)) ** 0.5
        profile /= profile.sum()
        target = TRACK_LENGTH if heading == 0 else 0.0
        path = x + (target - x) * np.cumsum(profile)
        stop = min(t + n_run, n_frames)
        position[t:stop] = path[: stop - t]
        direction[t:stop] = heading
        t = stop
        x, heading = target, 1 - heading
    np.clip(position, 0.0, TRACK_LENGTH, out=position)
    return position.astype(np.float32), direction


def place_field_rates(
    position: np.ndarray,
    direction: np.ndarray,
    n_neurons: int,
    rng: np.random.Generator,
    untuned_fraction: float = 0.15,
) -> np.ndarray:
    """Firing rates (Hz) of direction-selective place cells, shape ``(T, n_neurons)``."""
    centres = rng.uniform(0.0, TRACK_LENGTH, n_neurons)
    widths = rng.uniform(0.06, 0.16, n_neurons)
    peaks = rng.uniform(8.0, 25.0, n_neurons)
    baseline = rng.uniform(0.1, 0.8, n_neurons)
    # 0: fires only running right, 1: only left, 2: both directions
    preference = rng.choice(3, size=n_neurons, p=[0.4, 0.4, 0.2])
    untuned = rng.random(n_neurons) < untuned_fraction
    tuning = np.exp(-0.5 * ((position[:, None] - centres[None, :]) / widths[None, :]) ** 2)
    direction_gate = (preference[None, :] == 2) | (preference[None, :] == direction[:, None])
    rates = baseline[None, :] + peaks[None, :] * tuning * direction_gate
    rates[:, untuned] = rng.uniform(0.5, 4.0, int(untuned.sum()))[None, :]
    return rates


def place_cell_recording(
    n_frames: int = 10178, n_neurons: int = 120, seed: int = 0
) -> PlaceCellRecording:
    """Synthetic hippocampal recording on a 1.6 m linear track (25 ms bins, Poisson spikes).

    Parameters
    ----------
    n_frames : int
        Number of 25 ms bins (10,178 matches the achilles recording).
    n_neurons : int
        Number of neurons (120 matches achilles).
    seed : int
        Seed of the generator; the same seed gives the same recording.

    Returns
    -------
    PlaceCellRecording
    """
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}.")
    if n_neurons < 1:
        raise ValueError(f"n_neurons must be at least 1, got {n_neurons}.")
    rng = np.random.default_rng(seed)
    position, direction = linear_track_trajectory(n_frames, rng)
    rates = place_field_rates(position, direction, n_neurons, rng)
    spikes = rng.poisson(rates * BIN_SIZE).astype(np.float32)
    return PlaceCellRecording(neural=spikes, position=position, direction=direction)
