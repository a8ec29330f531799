"""Neurodata Without Borders (``.nwb``) files: neural series, ROI masks, behaviour and trials.

:func:`list_nwb_series` says what a file holds; :func:`read_nwb` reads the chosen series as
arrays with their timestamps (seconds, float64). Series are named by their path in the file,
e.g. ``"processing/ophys/Fluorescence/RoiResponseSeries"``; any unique ending of it
(``"Fluorescence/RoiResponseSeries"``) names it too. Kinds:

- ``"traces"``: a ``RoiResponseSeries`` (``Fluorescence``, ``DfOverF``) as ``(T, n)`` float32;
- ``"movie"``: a ``TwoPhotonSeries``/``OnePhotonSeries`` stored in the file, as a
  :class:`~napari_cebra.io.movies.LazyMovie` that reads only the frames asked for;
- ``"roi_masks"``: a ``PlaneSegmentation`` (``image_mask`` or ``pixel_mask``) as a label image,
  ROI ``k`` (table row) labelled ``k + 1``; axes as in the masks (and the movie);
- ``"units"``: the ``units`` table's spike times counted in bins, ``(bins, units)`` float32 with
  bin-centre timestamps;
- ``"behaviour"``: a ``SpatialSeries`` (``Position``, ``CompassDirection``, …) or a
  ``TimeSeries`` in ``BehavioralTimeSeries``/``PupilTracking`` as ``(T, k)`` float64 in the
  series' unit; ``CompassDirection`` angles are circular columns in radians;
- ``"trials"``: the ``trials`` table as intervals with discrete (integer) columns, see
  :class:`NwbTrials`.

Files are read with pynwb (``pip install 'napari-cebra[nwb]'``), read-only, and only after
:func:`check_nwb_file` found no link to another file, no data kept in other files and no
virtual dataset (pynwb would follow those). Data are read through
:func:`napari_cebra.io.matrices.read_h5_dataset`, movies by
:func:`napari_cebra.io.movies.open_movie` and image masks one ROI at a time.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.io.alignment import check_timestamps, timestamps_from_rate
from napari_cebra.io.matrices import open_h5, read_h5_dataset
from napari_cebra.io.movies import open_movie
from napari_cebra.io.roi_masks import check_image_shape, dominant_labels

NWB_INSTALL_HINT = "reading .nwb files needs pynwb: pip install 'napari-cebra[nwb]'"
SERIES_KINDS = ("traces", "units", "movie", "roi_masks", "behaviour", "trials")
DEFAULT_BIN_SIZE_S = 0.025
"""Spike-count bin of ``units`` (25 ms, as in CEBRA's hippocampus recordings)."""
MAX_BINNED_VALUES = 1 << 28
"""Largest spike-count matrix built (bins × units; 1 GiB of float32): choose a larger bin."""
MAX_TRIAL_CATEGORIES = 64
"""Trial columns with more distinct values than this (e.g. reaction times) are left out."""
_SPATIAL_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class NwbSeries:
    """One readable series of an NWB file, as :func:`list_nwb_series` describes it.

    Attributes
    ----------
    name : str
        Path in the file (``"processing/behavior/Position/position"``).
    kind : str
        One of :data:`SERIES_KINDS`.
    shape : tuple of int
        Stored shape: ``(T, …)`` of a series, ``(n_rois, …)`` of masks, ``(n_units,)`` of units,
        ``(n_trials, n_columns)`` of trials.
    timing : str
        How it is timed, e.g. ``"30 Hz from 0 s"`` or ``"1200 timestamps, 0–39.97 s"``.
    unit : str
        Unit of the values as the file gives it (``""`` when none).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    timing: str
    unit: str


@dataclass(frozen=True)
class NwbArray:
    """One series read by :func:`read_nwb`.

    Attributes
    ----------
    name, kind, unit
        As in :class:`NwbSeries`.
    data : array-like
        ``(T, n)`` float32 traces or spike counts, ``(T, k)`` float64 behaviour, ``(T, Y, X)``
        :class:`~napari_cebra.io.movies.LazyMovie`, int32 label image, or ``(n_trials, k)`` int64 trial codes.
    timestamps : np.ndarray or None
        ``(T,)`` float64 seconds of each row/frame (trial start times for trials; ``None`` for
        ROI masks).
    columns : tuple of str
        Name of each column (``"position_x"``, ``"unit_3"``, ``"roi_1"``, ``"trial"``).
    circular_columns : tuple of str
        Columns that are angles in radians.
    discrete_columns : tuple of str
        Columns that are non-negative integer labels.
    rate : float or None
        Sampling rate (Hz) when the series is regularly sampled.
    roi_table : str or None
        Traces: name of the ``PlaneSegmentation`` their ROIs come from.
    roi_labels : tuple of int
        Traces: label of each column's ROI in that table's label image.
    """

    name: str
    kind: str
    data: Any
    timestamps: np.ndarray | None
    columns: tuple[str, ...] = ()
    circular_columns: tuple[str, ...] = ()
    discrete_columns: tuple[str, ...] = ()
    unit: str = ""
    rate: float | None = None
    roi_table: str | None = None
    roi_labels: tuple[int, ...] = ()


@dataclass(frozen=True)
class NwbTrials(NwbArray):
    """The trials table: one row per trial, integer codes per column.

    ``data[:, 0]`` is the trial number (1, 2, …, in table order); every other column codes a
    trial variable (a condition) as ``1 … len(categories[column])``, code ``c`` meaning
    ``categories[column][c - 1]``. Code 0 means "no trial", which is what :meth:`labels_at`
    gives between trials: trial variables become discrete labels at any time points.

    Attributes
    ----------
    stop_times : np.ndarray
        ``(n_trials,)`` float64 end of each trial (``timestamps`` are the starts).
    categories : dict
        Column → the values its codes stand for, as text.
    """

    stop_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def labels_at(self, times: np.ndarray) -> np.ndarray:
        """Codes in effect at ``times`` (seconds): ``(len(times), k)`` int64, 0 outside trials.

        A time belongs to a trial when ``start <= t < stop``; where trials overlap, the one that
        started last.
        """
        times = np.asarray(times, dtype=np.float64).ravel()
        order = np.argsort(self.timestamps, kind="stable")
        starts, stops = self.timestamps[order], self.stop_times[order]
        latest = np.searchsorted(starts, times, side="right") - 1
        inside = latest >= 0
        inside[inside] = times[inside] < stops[latest[inside]]
        labels = np.zeros((times.size, self.data.shape[1]), dtype=np.int64)
        labels[inside] = self.data[order[latest[inside]]]
        return labels


@dataclass(frozen=True)
class NwbData:
    """What :func:`read_nwb` returns.

    Attributes
    ----------
    path : Path
        The file.
    series : dict
        Name → :class:`NwbArray`, in the order of :func:`list_nwb_series`.
    problems : dict
        Name → reason, for series that could not be read (only when ``read_nwb`` was asked for
        every series; a series asked for by name raises instead).
    """

    path: Path
    series: dict[str, NwbArray]
    problems: dict[str, str]

    def __getitem__(self, name: str) -> NwbArray:
        return self.series[_match(name, list(self.series), self.path)]


def list_nwb_series(path: str | os.PathLike) -> list[NwbSeries]:
    """The series of an NWB file that :func:`read_nwb` reads, without reading their data.

    Raises
    ------
    ValueError
        pynwb is missing, the file cannot be read by pynwb, or it links to other files or keeps
        data outside itself (:func:`check_nwb_file`). ``FileNotFoundError`` if it does not exist.
    """
    path = _existing(path)
    with _open_nwb(path) as (io, nwbfile):
        found = []
        for name, kind, container in _find_series(io, nwbfile):
            try:
                found.append(_describe(name, kind, container, path))
            except (ValueError, TypeError, AttributeError, KeyError, OSError) as error:
                found.append(NwbSeries(name, kind, (), f"unreadable: {error}", ""))
        return found


def read_nwb(
    path: str | os.PathLike,
    series: str | Sequence[str] | None = None,
    *,
    bin_size_s: float = DEFAULT_BIN_SIZE_S,
) -> NwbData:
    """Read series of an NWB file as arrays with timestamps.

    Parameters
    ----------
    path : path-like
        The ``.nwb`` file (``~`` is expanded).
    series : str or sequence of str, optional
        Names (paths in the file, or unique endings of them) of the series to read; every series
        :func:`list_nwb_series` lists when omitted (then series that cannot be read are reported
        in :attr:`NwbData.problems` instead of raising).
    bin_size_s : float
        Bin of the spike counts of ``units``, in seconds.

    Returns
    -------
    NwbData

    Raises
    ------
    ValueError
        pynwb is missing; the file is not readable NWB or links outside itself
        (:func:`check_nwb_file`); a named series is missing, ambiguous or broken (the message
        names the file and the series); a bad ``bin_size_s``. ``FileNotFoundError`` if the file
        does not exist.
    """
    path = _existing(path)
    if not (math.isfinite(bin_size_s) and bin_size_s > 0):
        raise ValueError(f"bin_size_s must be a positive number of seconds, got {bin_size_s}.")
    wanted = [series] if isinstance(series, str) else None if series is None else list(series)
    with _open_nwb(path) as (io, nwbfile):
        found = {name: (kind, container) for name, kind, container in _find_series(io, nwbfile)}
        names = list(found) if wanted is None else [_match(w, list(found), path) for w in wanted]
        arrays: dict[str, NwbArray] = {}
        problems: dict[str, str] = {}
        for name in names:
            kind, container = found[name]
            try:
                arrays[name] = _read_series(name, kind, container, path, io, found, bin_size_s)
            except (ValueError, TypeError, AttributeError, KeyError, OSError) as error:
                reason = str(error) or type(error).__name__
                if wanted is not None:
                    raise ValueError(
                        f"{path.name!r}: series {name!r} cannot be read: {reason}"
                    ) from error
                problems[name] = reason
    return NwbData(path=path, series=arrays, problems=problems)


def check_nwb_file(path: Path) -> None:
    """Refuse an HDF5 file with links to other files, external storage or virtual datasets.

    Raises
    ------
    ValueError
        Naming the file and the first offending link or dataset.
    """
    import h5py

    problems: list[str] = []

    def visit_link(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink) and not problems:
            problems.append(f"{name!r} links to {link.path!r} in another file {link.filename!r}")

    def visit_dataset(name: str, node: Any) -> None:
        if not isinstance(node, h5py.Dataset) or problems:
            return
        if node.is_virtual:
            problems.append(f"dataset {name!r} is virtual (mapped from other data)")
        elif node.external:
            problems.append(f"dataset {name!r} keeps its data in other files")

    with open_h5(path) as handle:
        try:
            handle.visititems_links(visit_link)
        except TypeError as error:  # h5py: "Unknown link type", a user-defined link
            raise ValueError(f"{path.name!r} holds a user-defined link: {error}") from error
        handle.visititems(visit_dataset)
    if problems:
        raise ValueError(
            f"{path.name!r}: {problems[0]}; refused (nothing outside the file is read)."
        )


# --- opening and finding series -----------------------------------------------------------------


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"No such NWB file: {path}")
    return path


@contextlib.contextmanager
def _open_nwb(path: Path) -> Iterator[tuple[Any, Any]]:
    """``with _open_nwb(path) as (io, nwbfile)``: checked, read-only, closed after."""
    try:
        from pynwb import NWBHDF5IO
    except ImportError as error:
        raise ValueError(NWB_INSTALL_HINT) from error
    check_nwb_file(path)
    io = None
    try:
        try:
            io = NWBHDF5IO(str(path), mode="r")
            nwbfile = io.read()
        except Exception as error:  # pynwb/hdmf raise many kinds of errors on broken files
            raise ValueError(_unreadable(path, error)) from error
        yield io, nwbfile
    finally:
        if io is not None:
            io.close()


def _unreadable(path: Path, error: Exception) -> str:
    """One-line reason pynwb could not read ``path``, naming the broken part when it can."""
    text = str(error)
    part = re.search(r"root/([\w./-]+)", text)
    where = f" (broken part: {part.group(1)!r})" if part else ""
    if "Could not construct" in text:  # hdmf's ConstructError: the reason is at the end
        text = text[text.index("Could not construct") :].rstrip("\"')")
    reason = text.splitlines()[0][:300] if text else ""
    return f"{path.name!r} cannot be read as NWB{where}: {type(error).__name__}: {reason}"


def _find_series(io: Any, nwbfile: Any) -> Iterator[tuple[str, str, Any]]:
    """``(name, kind, container)`` of every series read here, sorted by kind, then name."""
    found = []
    for container in nwbfile.objects.values():
        kind = _kind(container, nwbfile)
        if kind is not None:
            builder = io.manager.get_builder(container)
            name = builder.path.removeprefix("root/") if builder is not None else container.name
            found.append((name, kind, container))
    found.sort(key=lambda item: (SERIES_KINDS.index(item[1]), item[0]))
    return iter(found)


def _kind(container: Any, nwbfile: Any) -> str | None:
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, PupilTracking, SpatialSeries
    from pynwb.misc import Units
    from pynwb.ophys import OnePhotonSeries, PlaneSegmentation, RoiResponseSeries, TwoPhotonSeries

    if isinstance(container, RoiResponseSeries):
        return "traces"
    if isinstance(container, (TwoPhotonSeries, OnePhotonSeries)):
        return "movie"
    if isinstance(container, PlaneSegmentation):
        return "roi_masks"
    if isinstance(container, Units) and "spike_times" in container.colnames:
        return "units"
    if isinstance(container, SpatialSeries) or (
        isinstance(container, TimeSeries)
        and isinstance(container.parent, (BehavioralTimeSeries, PupilTracking))
    ):
        return "behaviour"
    if container is nwbfile.trials:
        return "trials"
    return None


def _match(wanted: str, names: list[str], path: Path) -> str:
    wanted = wanted.strip("/")
    matches = [n for n in names if n == wanted] or [n for n in names if n.endswith("/" + wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"{path.name!r} has no series {wanted!r}; it holds {names}.")
    raise ValueError(f"{path.name!r}: {wanted!r} names several series {matches}; give the path.")


def _describe(name: str, kind: str, container: Any, path: Path) -> NwbSeries:
    if kind == "units":
        n_spikes = len(container["spike_times"].target.data)
        return NwbSeries(name, kind, (len(container.id),), f"{n_spikes} spike times", "s")
    if kind == "trials":
        span = _span(container["start_time"].data[0], container["stop_time"].data[-1])
        n_trials = len(container.id)
        return NwbSeries(name, kind, (n_trials, len(container.colnames)), span, "")
    if kind == "roi_masks":
        masks = container["image_mask"].data if "image_mask" in container.colnames else None
        shape = tuple(masks.shape) if masks is not None else (len(container.id),)
        return NwbSeries(name, kind, shape, "", "")
    data = container.data
    if data is None:
        raise ValueError("it holds no data")
    return NwbSeries(name, kind, tuple(data.shape), _timing(container), container.unit or "")


def _timing(series: Any) -> str:
    if series.rate is not None:
        return f"{series.rate:g} Hz from {series.starting_time or 0.0:g} s"
    stamps = _timestamps_node(series)
    if stamps is None or len(stamps) == 0:
        return "no timestamps"
    return f"{len(stamps)} timestamps, {_span(stamps[0], stamps[-1])}"


def _span(first: float, last: float) -> str:
    return f"{float(first):g}–{float(last):g} s"


def _timestamps_node(series: Any) -> Any:
    stamps = series.timestamps
    return stamps.timestamps if hasattr(stamps, "timestamps") else stamps  # linked series


# --- reading ------------------------------------------------------------------------------------


def _read_series(
    name: str,
    kind: str,
    container: Any,
    path: Path,
    io: Any,
    found: dict[str, tuple[str, Any]],
    bin_size_s: float,
) -> NwbArray:
    if kind == "traces":
        return _read_traces(name, container, path, io)
    if kind == "movie":
        return _read_movie(name, container, path)
    if kind == "roi_masks":
        return _read_masks(name, container, path, found)
    if kind == "units":
        return _read_units(name, container, path, bin_size_s)
    if kind == "behaviour":
        return _read_behaviour(name, container, path)
    return _read_trials(name, container, path)


def _values(data: Any, path: Path) -> np.ndarray:
    """All values of a dataset pynwb hands out (h5py, hdmf's wrapper or in memory)."""
    import h5py

    dataset = getattr(data, "dataset", data)  # hdmf wraps compound/reference datasets
    if isinstance(dataset, h5py.Dataset):
        return read_h5_dataset(dataset, path)
    if data is None:
        raise ValueError("it holds no data")
    return np.asarray(data)


def _numeric(data: Any, path: Path, what: str) -> np.ndarray:
    values = _values(data, path)
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool) or np.iscomplexobj(
        values
    ):
        raise ValueError(f"its {what} hold {values.dtype} values, not real numbers")
    return values


def _series_times(series: Any, n_samples: int, path: Path, name: str) -> np.ndarray:
    if series.rate is not None:
        start = float(series.starting_time or 0.0)
        return timestamps_from_rate(n_samples, float(series.rate), start)
    stamps = _timestamps_node(series)
    if stamps is None:
        raise ValueError("it has neither timestamps nor a rate")
    return check_timestamps(
        _numeric(stamps, path, "timestamps"), n_samples, f"timestamps of {name!r}"
    )


def _scaled(series: Any, values: np.ndarray) -> np.ndarray:
    """Values in the series' unit: ``data * conversion + offset``."""
    conversion = float(getattr(series, "conversion", 1.0) or 1.0)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    if conversion == 1.0 and offset == 0.0:
        return values.astype(np.float64)
    return values * conversion + offset


def _as_columns(values: np.ndarray, what: str) -> np.ndarray:
    if values.size == 0:
        raise ValueError(f"its {what} are empty (shape {values.shape})")
    if values.ndim == 1:
        return values[:, None]
    if values.ndim != 2:
        raise ValueError(f"its {what} must be (time, columns), got shape {values.shape}")
    return values


def _read_traces(name: str, series: Any, path: Path, io: Any) -> NwbArray:
    values = _as_columns(_scaled(series, _numeric(series.data, path, "data")), "data")
    times = _series_times(series, len(values), path, name)
    roi_table, roi_labels = None, ()
    rois = series.rois
    if rois is not None and rois.table is not None:
        rows = _numeric(rois.data, path, "rois").astype(np.int64).ravel()
        if rows.size == values.shape[1]:
            builder = io.manager.get_builder(rois.table)
            roi_table = builder.path.removeprefix("root/") if builder else rois.table.name
            roi_labels = tuple(int(row) + 1 for row in rows)
    columns = tuple(f"roi_{label}" for label in roi_labels) or _numbered("roi", values.shape[1])
    return NwbArray(
        name=name,
        kind="traces",
        data=np.ascontiguousarray(values, dtype=np.float32),
        timestamps=times,
        columns=columns,
        unit=series.unit or "",
        rate=None if series.rate is None else float(series.rate),
        roi_table=roi_table,
        roi_labels=roi_labels,
    )


def _numbered(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{j}" for j in range(n))


def _read_movie(name: str, series: Any, path: Path) -> NwbArray:
    import h5py

    stored = getattr(series.data, "name", None)
    if not isinstance(series.data, h5py.Dataset) or stored is None:
        files = list(series.external_file or [])
        where = f"in other files {files}" if files else "not in this file"
        raise ValueError(f"its frames are {where}; only movies inside the file are read")
    times = _series_times(series, series.data.shape[0], path, name)
    return NwbArray(
        name=name,
        kind="movie",
        data=open_movie(path, key=stored),  # keeps the file open while the movie is in use
        timestamps=times,
        unit=series.unit or "",
        rate=None if series.rate is None else float(series.rate),
    )


def _read_masks(name: str, table: Any, path: Path, found: dict[str, tuple[str, Any]]) -> NwbArray:
    if "image_mask" in table.colnames:
        labels = _image_mask_labels(table["image_mask"].data, path)
    elif "pixel_mask" in table.colnames:
        labels = _pixel_mask_labels(table, path, _plane_shape(table, found))
    else:
        raise ValueError("it has neither image_mask nor pixel_mask (voxel masks are not read)")
    return NwbArray(name=name, kind="roi_masks", data=labels, timestamps=None)


def _image_mask_labels(masks: Any, path: Path) -> np.ndarray:
    """Labels from ``(n_rois, x, y)`` masks, read one ROI at a time."""
    import h5py

    if masks.ndim != 3:
        raise ValueError(f"its image_mask must be (rois, x, y), got shape {masks.shape}")
    shape = check_image_shape(masks.shape[1:], f"{path.name!r}: image_mask")
    best = np.zeros(shape, dtype=np.float64)
    labels = np.zeros(shape, dtype=np.int32)
    for row in range(masks.shape[0]):
        mask = masks[row] if isinstance(masks, h5py.Dataset) else np.asarray(masks[row])
        mask = np.asarray(mask, dtype=np.float64)
        stronger = (mask > 0) & (mask >= best)
        labels[stronger], best[stronger] = row + 1, mask[stronger]
    return labels


def _plane_shape(table: Any, found: dict[str, tuple[str, Any]]) -> tuple[int, ...] | None:
    """Frame size of a movie of the same imaging plane, if the file holds one."""
    for kind, container in found.values():
        same_plane = getattr(container, "imaging_plane", None) is table.imaging_plane
        if kind == "movie" and same_plane and getattr(container.data, "ndim", 0) >= 3:
            return tuple(container.data.shape[1:])
    return None


def _pixel_mask_labels(table: Any, path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    column = table["pixel_mask"]
    pixels = _values(column.target.data, path)
    ends = _numeric(column.data, path, "pixel_mask_index").astype(np.int64).ravel()
    fields = pixels.dtype.names or ()
    if not {"x", "y", "weight"} <= set(fields):
        raise ValueError(f"its pixel_mask must hold (x, y, weight), got fields {fields}")
    if ends.size and (np.any(np.diff(ends) < 0) or ends[0] < 0 or ends[-1] != pixels.size):
        raise ValueError("its pixel_mask_index does not fit the pixel_mask")
    x = pixels["x"].astype(np.int64)
    y = pixels["y"].astype(np.int64)
    if x.size and min(x.min(), y.min()) < 0:
        raise ValueError("its pixel_mask has negative coordinates")
    if shape is None:
        shape = (int(x.max()) + 1, int(y.max()) + 1) if x.size else (1, 1)
    shape = check_image_shape(shape, f"{path.name!r}: pixel_mask")
    if x.size and (x.max() >= shape[0] or y.max() >= shape[1]):
        raise ValueError(f"its pixel_mask has pixels outside the {shape} image of its movie")
    owners = np.repeat(np.arange(1, ends.size + 1), np.diff(np.concatenate([[0], ends])))
    return dominant_labels(x * shape[1] + y, owners, pixels["weight"], shape)


def _read_units(name: str, units: Any, path: Path, bin_size_s: float) -> NwbArray:
    column = units["spike_times"]
    spikes = _numeric(column.target.data, path, "spike_times").astype(np.float64).ravel()
    ends = _numeric(column.data, path, "spike_times_index").astype(np.int64).ravel()
    if ends.size and (np.any(np.diff(ends) < 0) or ends[0] < 0 or ends[-1] != spikes.size):
        raise ValueError("its spike_times_index does not fit spike_times")
    if spikes.size == 0:
        raise ValueError("its units have no spikes")
    if not np.isfinite(spikes).all():
        raise ValueError("its spike_times hold NaN or infinite values")
    ids = _values(units.id.data, path).ravel()
    start = math.floor(spikes.min() / bin_size_s) * bin_size_s
    n_bins = int((spikes.max() - start) // bin_size_s) + 1
    if n_bins * ends.size > MAX_BINNED_VALUES:
        raise ValueError(
            f"{n_bins} bins of {bin_size_s} s × {ends.size} units exceed {MAX_BINNED_VALUES} "
            "counts; choose a larger bin size"
        )
    owners = np.repeat(np.arange(ends.size), np.diff(np.concatenate([[0], ends])))
    bins = np.minimum(((spikes - start) // bin_size_s).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins * ends.size + owners, minlength=n_bins * ends.size)
    return NwbArray(
        name=name,
        kind="units",
        data=counts.reshape(n_bins, ends.size).astype(np.float32),
        timestamps=start + (np.arange(n_bins) + 0.5) * bin_size_s,
        columns=tuple(f"unit_{unit_id}" for unit_id in ids),
        unit="spikes per bin",
        rate=1.0 / bin_size_s,
    )


def _read_behaviour(name: str, series: Any, path: Path) -> NwbArray:
    from pynwb.behavior import CompassDirection, SpatialSeries

    raw = _numeric(series.data, path, "data")
    values = _as_columns(_scaled(series, raw), "data")
    times = _series_times(series, len(values), path, name)
    unit = series.unit or ""
    base = series.name
    n = values.shape[1]
    circular: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()
    if isinstance(series, SpatialSeries) and not isinstance(series.parent, CompassDirection):
        columns = tuple(f"{base}_{axis}" for axis in _SPATIAL_AXES[:n]) if n <= 3 else ()
    else:
        columns = (base,) if n == 1 else ()
    columns = columns or _numbered(base, n)
    if isinstance(series.parent, CompassDirection):
        if unit.lower().startswith("deg"):
            values, unit = np.deg2rad(values), "radians"
        circular = columns
    elif np.issubdtype(raw.dtype, np.integer) and raw.size and raw.min() >= 0:
        discrete = columns
    return NwbArray(
        name=name,
        kind="behaviour",
        data=np.ascontiguousarray(values, dtype=np.float64),
        timestamps=times,
        columns=columns,
        circular_columns=circular,
        discrete_columns=discrete,
        unit=unit,
        rate=None if series.rate is None else float(series.rate),
    )


def _read_trials(name: str, trials: Any, path: Path) -> NwbTrials:
    starts = _numeric(trials["start_time"].data, path, "start_time").astype(np.float64)
    stops = _numeric(trials["stop_time"].data, path, "stop_time").astype(np.float64)
    n_trials = starts.size
    if stops.shape != starts.shape or not (np.isfinite(starts).all() and np.isfinite(stops).all()):
        raise ValueError("its start_time and stop_time must be finite and of equal length")
    if np.any(stops < starts):
        raise ValueError(f"trial {int(np.argmax(stops < starts))} stops before it starts")
    columns, codes, categories = ["trial"], [np.arange(1, n_trials + 1)], {}
    for column_name in trials.colnames:
        column = trials[column_name]
        if column_name in ("start_time", "stop_time") or _is_ragged_or_reference(column):
            continue
        coded = _categories(_values(column.data, path), n_trials)
        if coded is not None:
            columns.append(column_name)
            codes.append(coded[0])
            categories[column_name] = coded[1]
    return NwbTrials(
        name=name,
        kind="trials",
        data=np.column_stack(codes).astype(np.int64),
        timestamps=starts,
        columns=tuple(columns),
        discrete_columns=tuple(columns),
        stop_times=stops,
        categories=categories,
    )


def _is_ragged_or_reference(column: Any) -> bool:
    """A column with several values per row (a ``VectorIndex``) or rows of another table."""
    return hasattr(column, "target") or hasattr(column, "table")


def _categories(values: np.ndarray, n_trials: int) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """Codes 1…k of a trial column and the k values they stand for; None if not categorical."""
    if values.ndim != 1 or values.size != n_trials:
        return None
    if values.dtype.kind in "OSU":
        values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
    elif values.dtype.kind not in "biuf":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        unique, codes = np.unique(values, return_inverse=True)
    if unique.size > MAX_TRIAL_CATEGORIES:
        return None
    return codes.ravel() + 1, tuple(str(value) for value in unique.tolist())
