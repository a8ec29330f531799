"""Synthetic recordings generated in code (no download): sample data and test fixtures.

The place-cell recording imitates the public rat-hippocampus "achilles" recording that the CEBRA
authors use: an animal runs back and forth on a 1.6 m linear track, 120 hippocampal neurons with
direction-selective place fields fire Poisson spikes, counted in 25 ms bins. Both recordings keep
their true place fields (:class:`PlaceFields`) as ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TRACK_LENGTH = 1.6  # metres
BIN_SIZE = 0.025  # seconds


def _achilles_labels(position: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``(T, 3)`` float32 ``[position, right, left]`` with one-hot running directions."""
    right = (direction == 0).astype(np.float32)
    return np.stack([position, right, 1.0 - right], axis=1).astype(np.float32)


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
    fields : PlaceFields
        The neurons' true place fields (ground truth; column ``k`` of ``neural`` is cell ``k``).
    bin_size : float
        Bin width in seconds.
    """

    neural: np.ndarray
    position: np.ndarray
    direction: np.ndarray
    fields: PlaceFields
    bin_size: float = BIN_SIZE

    @property
    def behaviour(self) -> np.ndarray:
        """``(T, 3)`` float32 ``[position, right, left]``, the layout of the achilles labels."""
        return _achilles_labels(self.position, self.direction)

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


PREFERENCE_RIGHT, PREFERENCE_LEFT, PREFERENCE_BOTH = 0, 1, 2
"""Codes of :attr:`PlaceFields.preference`: the running direction(s) in which a cell fires."""


@dataclass(frozen=True, eq=False)
class PlaceFields:
    """The true place fields of a synthetic population (the ground truth behind the rates).

    A tuned cell ``k`` fires at ``baseline[k] + peaks[k] · exp(−½ ((x − centres[k]) /
    widths[k])²)`` Hz at position ``x`` while running in a preferred direction, and at
    ``baseline[k]`` otherwise; an untuned cell fires at the constant ``untuned_rate[k]``.

    Attributes
    ----------
    centres : np.ndarray
        ``(n,)`` float64 field centres in metres, in ``[0, 1.6)``.
    widths : np.ndarray
        ``(n,)`` float64 standard deviations of the Gaussian fields in metres.
    peaks : np.ndarray
        ``(n,)`` float64 in-field rate above baseline in Hz.
    baseline : np.ndarray
        ``(n,)`` float64 out-of-field rate in Hz.
    preference : np.ndarray
        ``(n,)`` int64 preferred running direction: 0 = rightward only, 1 = leftward only,
        2 = both (:data:`PREFERENCE_RIGHT`, :data:`PREFERENCE_LEFT`, :data:`PREFERENCE_BOTH`).
    untuned : np.ndarray
        ``(n,)`` bool, True for cells without a place field (their centres, widths, peaks and
        preference are drawn but unused).
    untuned_rate : np.ndarray
        ``(n,)`` float64 constant rate in Hz of the untuned cells, 0.0 for the tuned ones.
    """

    centres: np.ndarray
    widths: np.ndarray
    peaks: np.ndarray
    baseline: np.ndarray
    preference: np.ndarray
    untuned: np.ndarray
    untuned_rate: np.ndarray

    @property
    def n_neurons(self) -> int:
        return int(self.centres.shape[0])

    def fires_in(self, direction: int) -> np.ndarray:
        """``(n,)`` bool: tuned cells whose field is active when running in ``direction`` (0/1)."""
        return ~self.untuned & ((self.preference == direction) | (self.preference == 2))

    def rates(self, position: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Firing rates (Hz) at each frame, shape ``(T, n)`` float64."""
        tuning = np.exp(
            -0.5 * ((position[:, None] - self.centres[None, :]) / self.widths[None, :]) ** 2
        )
        direction_gate = (self.preference[None, :] == 2) | (
            self.preference[None, :] == direction[:, None]
        )
        rates = self.baseline[None, :] + self.peaks[None, :] * tuning * direction_gate
        rates[:, self.untuned] = self.untuned_rate[self.untuned][None, :]
        return rates


def draw_place_fields(
    n_neurons: int, rng: np.random.Generator, untuned_fraction: float = 0.15
) -> PlaceFields:
    """Random direction-selective place fields (40 % right, 40 % left, 20 % both directions).

    The draws from ``rng`` come in a fixed order (centres, widths, peaks, baseline, preference,
    untuned mask, untuned rates), so the synthetic recordings stay reproducible.
    """
    centres = rng.uniform(0.0, TRACK_LENGTH, n_neurons)
    widths = rng.uniform(0.06, 0.16, n_neurons)
    peaks = rng.uniform(8.0, 25.0, n_neurons)
    baseline = rng.uniform(0.1, 0.8, n_neurons)
    preference = rng.choice(3, size=n_neurons, p=[0.4, 0.4, 0.2]).astype(np.int64)
    untuned = rng.random(n_neurons) < untuned_fraction
    untuned_rate = np.zeros(n_neurons)
    untuned_rate[untuned] = rng.uniform(0.5, 4.0, int(untuned.sum()))
    return PlaceFields(centres, widths, peaks, baseline, preference, untuned, untuned_rate)


def place_field_rates(
    position: np.ndarray,
    direction: np.ndarray,
    n_neurons: int,
    rng: np.random.Generator,
    untuned_fraction: float = 0.15,
) -> np.ndarray:
    """Firing rates (Hz) of direction-selective place cells, shape ``(T, n_neurons)``.

    Shorthand for ``draw_place_fields(n_neurons, rng, untuned_fraction).rates(position,
    direction)`` (:class:`PlaceFields` keeps the fields themselves).
    """
    return draw_place_fields(n_neurons, rng, untuned_fraction).rates(position, direction)


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
    fields = draw_place_fields(n_neurons, rng)
    spikes = rng.poisson(fields.rates(position, direction) * BIN_SIZE).astype(np.float32)
    return PlaceCellRecording(neural=spikes, position=position, direction=direction, fields=fields)


# --- calcium-imaging session -------------------------------------------------------------------

FRAME_RATE = 30.0  # Hz, a typical two-photon resonant-scanner rate
_DARK_OFFSET = 100.0  # camera / PMT offset in counts
_BLOCK_FRAMES = 16
"""Frames rendered together, each block with its own noise generator: a lazily rendered movie
(napari slicing one frame renders its block, ~10 ms) equals the eagerly rendered one."""


@dataclass(frozen=True)
class CalciumImagingSession:
    """A two-photon-like movie of place cells with its ROIs, ground truth and behaviour.

    Attributes
    ----------
    movie : np.ndarray or dask.array.Array
        ``(T, Y, X)`` uint16 fluorescence movie (a dask array, rendered block by block on
        access, when the session was made with ``lazy=True``).
    rois : np.ndarray
        ``(Y, X)`` int32 label image: 0 is background, pixels of cell ``k`` hold ``k`` (1-based).
    traces : np.ndarray
        ``(T, n_cells)`` float32 ground-truth ΔF/F of each cell (column ``k - 1`` is label ``k``).
    spikes : np.ndarray
        ``(T, n_cells)`` float32 spike counts per frame that generated ``traces``.
    position : np.ndarray
        ``(T,)`` float32 position of the animal on the 1.6 m track, in metres.
    direction : np.ndarray
        ``(T,)`` int64 running direction, 0 = rightward, 1 = leftward.
    fields : PlaceFields
        The cells' true place fields (ground truth; entry ``k - 1`` is label ``k``), e.g. to check
        which cells a selection of frames should find.
    frame_rate : float
        Imaging rate in Hz.
    """

    movie: Any
    rois: np.ndarray
    traces: np.ndarray
    spikes: np.ndarray
    position: np.ndarray
    direction: np.ndarray
    fields: PlaceFields
    frame_rate: float = FRAME_RATE

    @property
    def behaviour(self) -> np.ndarray:
        """``(T, 3)`` float32 ``[position, right, left]``, the layout of the achilles labels."""
        return _achilles_labels(self.position, self.direction)

    @property
    def n_frames(self) -> int:
        return int(self.movie.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.traces.shape[1])


def first_order_recursion(x: np.ndarray, a: float, block: int = 64) -> np.ndarray:
    """``y[t] = x[t] + a · y[t−1]`` along axis 0 (``y[−1] = 0``), i.e. an exponential filter.

    Computed block by block, each block as one product with a ``(block, block)`` matrix of
    powers of ``a`` plus the decayed carry of the previous block: vectorised, without the import
    of ``scipy.signal`` (2.4 s in the GUI thread when the napari sample opened).
    """
    x = np.asarray(x, dtype=np.float64)
    lags = np.subtract.outer(np.arange(block), np.arange(block))
    powers = np.where(lags >= 0, a ** np.maximum(lags, 0), 0.0)
    carry_decay = a ** np.arange(1, block + 1, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    y = np.empty_like(flat)
    carry = np.zeros(flat.shape[1])
    for start in range(0, len(flat), block):
        segment = flat[start : start + block]
        n = len(segment)
        y[start : start + n] = powers[:n, :n] @ segment + carry_decay[:n, None] * carry
        carry = y[start + n - 1]
    return y.reshape(x.shape)


def calcium_kernel_response(
    spikes: np.ndarray,
    frame_rate: float,
    rise_time: float = 0.02,
    decay_time: float = 0.7,
) -> np.ndarray:
    """Convolve spike counts with a unit-peak double-exponential GCaMP kernel along time.

    Parameters
    ----------
    spikes : np.ndarray
        ``(T, n)`` spike counts per frame.
    frame_rate : float
        Frames per second.
    rise_time, decay_time : float
        Time constants of the rise and the decay in seconds (the defaults peak ≈ 70 ms after
        the spike and halve ≈ 0.5 s later, like GCaMP6f).

    Returns
    -------
    np.ndarray
        ``(T, n)`` float64 response, 1.0 at the peak of an isolated single spike.
    """
    dt = 1.0 / frame_rate
    a_decay, a_rise = np.exp(-dt / decay_time), np.exp(-dt / rise_time)
    decay = first_order_recursion(spikes, a_decay)
    rise = first_order_recursion(spikes, a_rise)
    lags = np.arange(int(10 * decay_time * frame_rate) + 2)
    kernel = a_decay**lags - a_rise**lags
    return (decay - rise) / kernel.max()


def _cell_centres(
    n_cells: int, shape: tuple[int, int], min_distance: float, rng: np.random.Generator
) -> np.ndarray:
    """Random soma centres ``(n_cells, 2)`` that keep roughly ``min_distance`` apart."""
    margin = 4.0
    centres: list[np.ndarray] = []
    distance = min_distance
    while len(centres) < n_cells:
        for _ in range(200):
            candidate = rng.uniform(margin, np.array(shape) - margin)
            if all(np.hypot(*(candidate - c)) >= distance for c in centres):
                centres.append(candidate)
                break
        else:  # the field of view is crowded: let new cells sit closer
            distance *= 0.9
    return np.array(centres)


def soma_footprints(
    n_cells: int,
    shape: tuple[int, int],
    rng: np.random.Generator,
    radius_range: tuple[float, float] = (3.5, 5.5),
) -> np.ndarray:
    """Elliptical soma footprints with a dimmer nucleus, shape ``(n_cells, Y, X)`` float32.

    Each footprint peaks at 1 in the cytoplasm ring and falls to 0 at the membrane; centres are
    packed a little closer than two radii so that neighbouring cells overlap slightly.
    """
    centres = _cell_centres(n_cells, shape, 1.7 * radius_range[0], rng)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    footprints = np.zeros((n_cells, *shape), dtype=np.float32)
    for k, (cy, cx) in enumerate(centres):
        semi_major = rng.uniform(*radius_range)
        semi_minor = semi_major * rng.uniform(0.7, 1.0)
        angle = rng.uniform(0.0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / semi_major
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / semi_minor
        r = np.sqrt(u**2 + v**2)
        body = np.clip(1.0 - r**4, 0.0, None)  # flat-topped, falls off at the membrane
        nucleus = 1.0 - 0.6 * np.exp(-0.5 * (r / 0.35) ** 2)  # GCaMP is excluded from the nucleus
        footprints[k] = body * nucleus
    return footprints


def labels_from_footprints(footprints: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """ROI label image ``(Y, X)`` int32: each pixel goes to the strongest footprint above threshold.

    A cell hidden entirely under brighter neighbours keeps its own peak pixel, so every footprint
    ``k`` (0-based) owns at least one pixel labelled ``k + 1``.
    """
    strongest = footprints.argmax(axis=0)
    inside = footprints.max(axis=0) > threshold
    labels = np.where(inside, strongest + 1, 0).astype(np.int32)
    for k in np.setdiff1d(np.arange(len(footprints)), labels - 1):
        labels[np.unravel_index(footprints[k].argmax(), labels.shape)] = k + 1
    return labels


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A positive, spatially smooth random field with mean 1 (neuropil / illumination pattern)."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(shape), sigma)
    field = (field - field.mean()) / (field.std() + 1e-12)
    return (1.0 + 0.25 * field).clip(0.3, None).astype(np.float32)


def _baseline_drift(n_frames: int, frame_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative slow drift ``(T,)``: photobleaching times a slow wander of a few percent.

    The wander sums sinusoids with periods of 40–200 s and random phases, so it is equally slow for
    any recording length.
    """
    t = np.arange(n_frames) / frame_rate
    bleaching = 0.85 + 0.15 * np.exp(-t / rng.uniform(150.0, 300.0))
    frequencies = rng.uniform(1.0 / 200.0, 1.0 / 40.0, 4)
    phases = rng.uniform(0.0, 2.0 * np.pi, 4)
    wander = np.sin(2.0 * np.pi * frequencies[None, :] * t[:, None] + phases[None, :]).sum(axis=1)
    return (bleaching * (1.0 + 0.01 * wander)).astype(np.float32)


def calcium_imaging_session(
    n_frames: int = 3000,
    shape: tuple[int, int] = (128, 128),
    n_cells: int = 80,
    seed: int = 0,
    lazy: bool = False,
) -> CalciumImagingSession:
    """Synthetic two-photon calcium-imaging session of hippocampal place cells on a linear track.

    The animal runs back and forth on a 1.6 m track (:func:`linear_track_trajectory` at the imaging
    rate); each cell is a direction-selective place cell (:func:`draw_place_fields`, kept as the
    session's ``fields``) firing Poisson spikes, which become GCaMP-like ΔF/F transients (≈70 ms
    to peak, ≈0.7 s decay). The movie adds soma footprints with a dark nucleus, a modulated
    neuropil background, photobleaching and slow drift, shot noise and read noise.

    Parameters
    ----------
    n_frames : int
        Number of frames at 30 Hz (3000 frames = 100 s).
    shape : tuple of int
        ``(Y, X)`` size of the field of view in pixels.
    n_cells : int
        Number of cells (ROIs).
    seed : int
        Seed of the generator; the same seed gives the same session.
    lazy : bool
        Return the movie as a dask array whose blocks of frames are rendered when read (the
        napari sample opens at once; the values equal those of ``lazy=False``).

    Returns
    -------
    CalciumImagingSession
    """
    shape = _check_session_arguments(n_frames, shape, n_cells)
    rng = np.random.default_rng(seed)
    position, direction = linear_track_trajectory(n_frames, rng, bin_size=1.0 / FRAME_RATE)
    fields = draw_place_fields(n_cells, rng)
    spikes = rng.poisson(fields.rates(position, direction) / FRAME_RATE).astype(np.float32)
    amplitude = rng.uniform(0.15, 0.35, n_cells)  # ΔF/F of one spike
    dff = calcium_kernel_response(spikes, FRAME_RATE) * amplitude
    dff = (dff / (1.0 + dff / 6.0)).astype(np.float32)  # indicator saturation

    footprints = soma_footprints(n_cells, shape, rng)
    rois = labels_from_footprints(footprints)
    brightness = rng.uniform(150.0, 350.0, n_cells).astype(np.float32)
    renderer = _MovieRenderer.build(dff, footprints, brightness, rng, shape, seed)
    movie = renderer.lazy_movie() if lazy else renderer.frames(0, n_frames)
    return CalciumImagingSession(
        movie=movie,
        rois=rois,
        traces=dff,
        spikes=spikes,
        position=position,
        direction=direction,
        fields=fields,
    )


def _check_session_arguments(
    n_frames: int, shape: tuple[int, int], n_cells: int
) -> tuple[int, int]:
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2, got {n_frames}.")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (Y, X) with both sides at least 16 pixels, got {shape}.")
    if n_cells < 1:
        raise ValueError(f"n_cells must be at least 1, got {n_cells}.")
    max_cells = shape[0] * shape[1] // 150
    if n_cells > max_cells:
        raise ValueError(
            f"n_cells={n_cells} cells do not fit in a {shape[0]}×{shape[1]} field of view "
            f"(at most {max_cells})."
        )
    return shape


@dataclass(frozen=True)
class _MovieRenderer:
    """Photon counts of cells + neuropil, with drift and noise, as uint16 frames."""

    dff: np.ndarray
    weights: np.ndarray  # (n_cells, Y·X) soma footprints times brightness
    neuropil_map: np.ndarray  # (Y·X,)
    neuropil_activity: np.ndarray  # (T,)
    drift: np.ndarray  # (T,)
    shape: tuple[int, int]
    seed: int

    @classmethod
    def build(
        cls,
        dff: np.ndarray,
        footprints: np.ndarray,
        brightness: np.ndarray,
        rng: np.random.Generator,
        shape: tuple[int, int],
        seed: int,
    ) -> _MovieRenderer:
        n_pixels = shape[0] * shape[1]
        weights = (footprints * brightness[:, None, None]).reshape(len(brightness), n_pixels)
        neuropil_map = (60.0 * _smooth_field(shape, rng, sigma=12.0)).reshape(n_pixels)
        # the neuropil is the blurred activity of many out-of-focus processes: a slow
        # population signal
        population = dff.mean(axis=1)
        neuropil_activity = (1.0 + 0.5 * (population - population.mean())).astype(np.float32)
        drift = _baseline_drift(len(dff), FRAME_RATE, rng)
        return cls(dff, weights, neuropil_map, neuropil_activity, drift, shape, int(seed))

    @property
    def n_frames(self) -> int:
        return len(self.dff)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start … stop−1`` (``start`` a multiple of the block size)."""
        movie = np.empty((stop - start, *self.shape), dtype=np.uint16)
        for block_start in range(start, stop, _BLOCK_FRAMES):
            block_stop = min(block_start + _BLOCK_FRAMES, stop)
            movie[block_start - start : block_stop - start] = self._block(block_start, block_stop)
        return movie

    def _block(self, start: int, stop: int) -> np.ndarray:
        # ~20-40 photons per soma pixel per frame at rest: noisy pixels, clean ROI means
        gain, read_noise = 8.0, 6.0  # counts per photon, counts
        rng = np.random.default_rng((self.seed, 1, start // _BLOCK_FRAMES))
        signal = (1.0 + self.dff[start:stop]) @ self.weights
        signal += self.neuropil_activity[start:stop, None] * self.neuropil_map
        signal *= self.drift[start:stop, None]
        noise = rng.standard_normal(signal.shape, dtype=np.float32)
        noise *= np.sqrt(gain * signal + read_noise**2)
        signal += noise + _DARK_OFFSET
        return np.clip(signal, 0, 65535).astype(np.uint16).reshape(stop - start, *self.shape)

    def lazy_movie(self) -> Any:
        """The movie as a dask array of blocks rendered on access."""
        import dask.array as da

        first_frames = da.arange(0, self.n_frames, _BLOCK_FRAMES, chunks=1)
        sizes = tuple(
            min(_BLOCK_FRAMES, self.n_frames - s) for s in range(0, self.n_frames, _BLOCK_FRAMES)
        )
        return first_frames.map_blocks(
            lambda start: self._block(
                int(start[0]), min(int(start[0]) + _BLOCK_FRAMES, self.n_frames)
            ),
            dtype=np.uint16,
            chunks=(sizes, (self.shape[0],), (self.shape[1],)),
            new_axis=[1, 2],
            # named, not hashed: tokenizing the renderer would hash its arrays once per block
            name=f"synthetic-calcium-movie-{self.seed}-{self.n_frames}-{id(self)}",
        )
