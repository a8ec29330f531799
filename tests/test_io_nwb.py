"""NWB reader: files written here with pynwb (ophys, units, behaviour, trials), read back."""

from __future__ import annotations

import shutil
import sys
import tracemalloc
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from hdmf.backends.hdf5 import H5DataIO  # noqa: E402
from hdmf.data_utils import DataChunkIterator  # noqa: E402
from pynwb.behavior import BehavioralTimeSeries, CompassDirection, Position  # noqa: E402
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, TwoPhotonSeries  # noqa: E402
from pynwb.testing.mock.ophys import mock_ImagingPlane  # noqa: E402

from napari_cebra.io import napari_contributions as contrib  # noqa: E402
from napari_cebra.io.nwb import NWB_INSTALL_HINT, list_nwb_series, read_nwb  # noqa: E402

N_FRAMES, SHAPE, RATE = 40, (12, 16), 10.0
SPIKES = {0: [0.01, 0.02, 0.26, 1.99], 1: [0.5], 2: [1.0, 1.01, 1.02]}
TRACES = "processing/ophys/Fluorescence/RoiResponseSeries"
DFF = "processing/ophys/DfOverF/RoiResponseSeries"
POSITION = "processing/behavior/Position/position"


def _new_file() -> pynwb.NWBFile:
    return pynwb.NWBFile(
        session_description="test session",
        identifier="napari-cebra-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )


def _image_masks() -> np.ndarray:
    masks = np.zeros((3, *SHAPE))
    masks[0, 1:4, 1:4] = 1.0
    masks[1, 3:6, 3:6] = 2.0  # overlaps ROI 0 at (3, 3) with a larger weight: ROI 1 wins
    masks[2, 8:10, 10:14] = 0.5
    return masks


def _write_session(path, rng) -> dict:
    """An ophys + ecephys + behaviour + trials file; returns what was written."""
    nwbfile = _new_file()
    plane = mock_ImagingPlane(nwbfile=nwbfile)
    movie = (np.arange(N_FRAMES)[:, None, None] + np.zeros((1, *SHAPE))).astype(np.uint16)
    nwbfile.add_acquisition(
        TwoPhotonSeries(
            name="TwoPhotonSeries", data=movie, imaging_plane=plane, rate=RATE, unit="n.a."
        )
    )
    ophys = nwbfile.create_processing_module("ophys", "optical physiology")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="image masks", imaging_plane=plane
    )
    for mask in _image_masks():
        table.add_roi(image_mask=mask)
    pixels = segmentation.create_plane_segmentation(
        name="PixelSegmentation", description="pixel masks", imaging_plane=plane
    )
    pixels.add_roi(pixel_mask=[(2, 5, 1.0), (2, 6, 0.5)])
    pixels.add_roi(pixel_mask=[(2, 6, 0.9), (11, 15, 1.0)])  # (2, 6): ROI 2 is stronger
    rois = table.create_roi_table_region("ROIs 2 and 0", region=[2, 0])
    fluorescence = rng.normal(size=(N_FRAMES, 2))
    dff = rng.normal(size=(N_FRAMES, 2))
    ophys.add(Fluorescence())
    ophys["Fluorescence"].create_roi_response_series(
        name="RoiResponseSeries", data=fluorescence, rois=rois, unit="a.u.", rate=RATE,
        starting_time=2.0,
    )  # fmt: skip
    ophys.add(DfOverF())
    dff_times = 2.0 + np.arange(N_FRAMES) / RATE + 0.001
    ophys["DfOverF"].create_roi_response_series(
        name="RoiResponseSeries", data=dff, rois=rois, unit="a.u.", timestamps=dff_times
    )
    behaviour = nwbfile.create_processing_module("behavior", "behaviour")
    position = rng.uniform(0, 1, size=(100, 2))
    behaviour.add(Position())
    behaviour["Position"].create_spatial_series(
        name="position", data=position, reference_frame="arena corner", rate=25.0,
        starting_time=1.5,
    )  # fmt: skip
    heading = np.linspace(0, 270, 100)
    behaviour.add(CompassDirection())
    behaviour["CompassDirection"].create_spatial_series(
        name="heading", data=heading, reference_frame="north", rate=25.0, unit="degrees",
        starting_time=1.5,
    )  # fmt: skip
    behaviour.add(BehavioralTimeSeries())
    licks = rng.integers(0, 3, size=30)
    behaviour["BehavioralTimeSeries"].create_timeseries(
        name="licks", data=licks, unit="count", timestamps=np.arange(30) * 0.2
    )
    for unit, times in SPIKES.items():
        nwbfile.add_unit(spike_times=times, id=10 + unit)
    nwbfile.add_trial_column("condition", "which side")
    for start, stop, side in [(2.0, 2.5, "left"), (3.0, 3.5, "right"), (4.0, 4.5, "left")]:
        nwbfile.add_trial(start_time=start, stop_time=stop, condition=side)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return {"fluorescence": fluorescence, "dff": dff, "position": position, "heading": heading}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    written = _write_session(path, np.random.default_rng(0))
    return path, written


def test_lists_every_series_with_kind_shape_and_timing(session):
    path, _ = session
    listed = {series.name: series for series in list_nwb_series(path)}
    kinds = {name: series.kind for name, series in listed.items()}
    assert kinds == {
        TRACES: "traces",
        DFF: "traces",
        "units": "units",
        "acquisition/TwoPhotonSeries": "movie",
        "processing/ophys/ImageSegmentation/PixelSegmentation": "roi_masks",
        "processing/ophys/ImageSegmentation/PlaneSegmentation": "roi_masks",
        "processing/behavior/BehavioralTimeSeries/licks": "behaviour",
        "processing/behavior/CompassDirection/heading": "behaviour",
        POSITION: "behaviour",
        "intervals/trials": "trials",
    }
    assert listed[TRACES].shape == (N_FRAMES, 2)
    assert listed[TRACES].timing == "10 Hz from 2 s"
    assert listed[DFF].timing.startswith(f"{N_FRAMES} timestamps")
    assert listed["acquisition/TwoPhotonSeries"].shape == (N_FRAMES, *SHAPE)


def test_ophys_traces_masks_and_movie(session):
    path, written = session
    data = read_nwb(path, ["Fluorescence/RoiResponseSeries", DFF, "PlaneSegmentation"])
    traces = data[TRACES]
    np.testing.assert_allclose(traces.data, written["fluorescence"], rtol=1e-6)
    np.testing.assert_allclose(traces.timestamps, 2.0 + np.arange(N_FRAMES) / RATE)
    assert traces.roi_labels == (3, 1) and traces.columns == ("roi_3", "roi_1")
    assert traces.roi_table == "processing/ophys/ImageSegmentation/PlaneSegmentation"
    np.testing.assert_allclose(data[DFF].timestamps, 2.0 + np.arange(N_FRAMES) / RATE + 0.001)
    labels = data["PlaneSegmentation"].data
    masks = _image_masks()
    expected = np.where(masks.max(axis=0) > 0, masks.argmax(axis=0) + 1, 0)
    np.testing.assert_array_equal(labels, expected)
    assert labels[3, 3] == 2
    pixel_labels = read_nwb(path, "PixelSegmentation")["PixelSegmentation"].data
    assert pixel_labels.shape == SHAPE  # the frame size of the plane's movie
    assert {(2, 5): 1, (2, 6): 2, (11, 15): 2} == {
        tuple(int(i) for i in ij): int(pixel_labels[tuple(ij)]) for ij in np.argwhere(pixel_labels)
    }
    movie = read_nwb(path, "TwoPhotonSeries")["TwoPhotonSeries"]
    assert movie.data.shape == (N_FRAMES, *SHAPE) and not isinstance(movie.data, np.ndarray)
    np.testing.assert_array_equal(movie.data[7], np.full(SHAPE, 7))
    movie.data.close()


def test_units_are_binned_into_spike_counts(session):
    path, _ = session
    units = read_nwb(path, "units", bin_size_s=0.25)["units"]
    assert units.columns == ("unit_10", "unit_11", "unit_12")
    assert units.data.shape == (8, 3)  # 0.0 … 2.0 s in 0.25 s bins
    np.testing.assert_allclose(units.timestamps, 0.125 + 0.25 * np.arange(8))
    np.testing.assert_array_equal(units.data.sum(axis=0), [4, 1, 3])
    np.testing.assert_array_equal(units.data[:, 0], [2, 1, 0, 0, 0, 0, 0, 1])
    assert units.data[4, 2] == 3  # 1.0–1.02 s fall in [1.0, 1.25)
    with pytest.raises(ValueError, match="bin_size_s must be a positive"):
        read_nwb(path, "units", bin_size_s=0.0)


def test_behaviour_columns_angles_and_discrete_values(session):
    path, written = session
    data = read_nwb(path, ["Position/position", "heading", "licks"])
    position = data[POSITION]
    assert position.columns == ("position_x", "position_y")
    np.testing.assert_allclose(position.data, written["position"])
    np.testing.assert_allclose(position.timestamps, 1.5 + np.arange(100) / 25.0)
    heading = data["heading"]
    assert heading.columns == heading.circular_columns == ("heading",)
    assert heading.unit == "radians"
    np.testing.assert_allclose(heading.data[:, 0], np.deg2rad(written["heading"]))
    licks = data["licks"]
    assert licks.discrete_columns == ("licks",) and licks.timestamps[-1] == pytest.approx(5.8)


def test_trials_become_discrete_labels_at_any_times(session):
    path, _ = session
    trials = read_nwb(path, "trials")["trials"]
    assert trials.columns == ("trial", "condition")
    assert trials.categories == {"condition": ("left", "right")}
    labels = trials.labels_at([1.0, 2.0, 2.49, 2.5, 3.2, 4.4, 9.0])
    np.testing.assert_array_equal(labels, [[0, 0], [1, 1], [1, 1], [0, 0], [2, 2], [3, 1], [0, 0]])


def test_napari_reader_gives_one_tagged_layer_per_series(session):
    path, written = session
    assert contrib.get_nwb_reader(str(path)) is contrib.read_nwb_layers
    assert contrib.get_nwb_reader(str(path.with_suffix(".h5"))) is None
    layers = {
        meta["name"]: (data, meta, kind) for data, meta, kind in contrib.read_nwb_layers(path)
    }
    data, meta, kind = layers["ophys/Fluorescence/RoiResponseSeries"]
    assert kind == "image" and meta["metadata"]["napari_cebra_kind"] == "neural_matrix"
    np.testing.assert_allclose(data, written["fluorescence"], rtol=1e-6)
    assert meta["metadata"]["roi_labels"] == [3, 1]
    assert meta["metadata"]["timestamps"].dtype == np.float64
    movie, movie_meta, _ = layers["acquisition/TwoPhotonSeries"]
    assert movie_meta["metadata"]["napari_cebra_kind"] == "movie" and movie.shape[0] == N_FRAMES
    assert layers["ophys/ImageSegmentation/PlaneSegmentation"][2] == "labels"
    _, heading_meta, _ = layers["behavior/CompassDirection/heading"]
    assert heading_meta["metadata"]["circular_columns"] == ["heading"]
    trials, trials_meta, _ = layers["intervals/trials"]
    neural_times = meta["metadata"]["timestamps"]  # the first neural series: DfOverF
    assert trials.shape == (N_FRAMES, 2)
    assert trials_meta["metadata"]["discrete_columns"] == ["trial", "condition"]
    assert trials_meta["metadata"]["categories"] == {"condition": ["left", "right"]}
    inside_first = (neural_times >= 2.0) & (neural_times < 2.5)
    np.testing.assert_array_equal(trials[inside_first, 0], 1)
    assert layers["units"][1]["metadata"]["bin_size"] == pytest.approx(0.025)
    movie.close()


def test_series_missing_from_the_file_is_named_with_the_choices(session):
    path, _ = session
    with pytest.raises(ValueError, match=r"no series 'ecephys/LFP'; it holds \["):
        read_nwb(path, "ecephys/LFP")
    with pytest.raises(ValueError, match="names several series"):
        read_nwb(path, "RoiResponseSeries")


def test_broken_series_is_skipped_with_a_warning_and_the_rest_opens(session, tmp_path):
    path, _ = session
    broken = tmp_path / "broken.nwb"
    shutil.copy(path, broken)
    with h5py.File(broken, "a") as handle:
        del handle[f"{TRACES}/data"]
    data = read_nwb(broken)
    assert list(data.problems) == [TRACES] and "empty" in data.problems[TRACES]
    with pytest.raises(ValueError, match=f"'broken.nwb': series '{TRACES}' cannot be read"):
        read_nwb(broken, TRACES)
    with pytest.warns(UserWarning, match=f"skipped {TRACES}"):
        layers = contrib.read_nwb_layers(broken)
    names = [meta["name"] for _, meta, _ in layers]
    assert "ophys/DfOverF/RoiResponseSeries" in names
    assert "ophys/Fluorescence/RoiResponseSeries" not in names
    next(data for data, meta, _ in layers if meta["name"] == "acquisition/TwoPhotonSeries").close()


@pytest.mark.parametrize(
    ("victim", "reason"),
    [
        (f"{POSITION}/starting_time", r"broken part: 'processing/behavior/Position/position'"),
        ("processing/ophys/ImageSegmentation", "cannot be read as NWB"),
    ],
)
def test_file_pynwb_cannot_read_raises_a_value_error_naming_it(session, tmp_path, victim, reason):
    path, _ = session
    broken = tmp_path / "broken module.nwb"
    shutil.copy(path, broken)
    with h5py.File(broken, "a") as handle:
        del handle[victim]
    with pytest.raises(ValueError, match=reason) as raised:
        contrib.read_nwb_layers(broken)
    assert "'broken module.nwb'" in str(raised.value)


def test_links_to_other_files_are_refused(session, tmp_path):
    path, _ = session
    linked = tmp_path / "linked.nwb"
    shutil.copy(path, linked)
    with h5py.File(linked, "a") as handle:
        del handle[f"{DFF}/data"]
        handle[f"{DFF}/data"] = h5py.ExternalLink(str(path), f"/{TRACES}/data")
    with pytest.raises(ValueError, match="in another file.*refused"):
        read_nwb(linked)


def test_not_an_nwb_file_and_missing_pynwb_give_clear_errors(tmp_path, monkeypatch):
    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="'notes.nwb' is not a readable HDF5 file"):
        read_nwb(text)
    with pytest.raises(FileNotFoundError):
        read_nwb(tmp_path / "absent.nwb")
    monkeypatch.setitem(sys.modules, "pynwb", None)  # import pynwb now raises ImportError
    with pytest.raises(ValueError, match=NWB_INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        contrib.read_nwb_layers(text)


def test_large_movie_is_read_lazily(tmp_path):
    n_frames, shape = 1000, (256, 256)
    nwbfile = _new_file()
    frames = DataChunkIterator(
        data=(np.full(shape, t, dtype=np.uint16) for t in range(n_frames)),
        maxshape=(n_frames, *shape),
        dtype=np.dtype(np.uint16),
        buffer_size=10,
    )
    nwbfile.add_acquisition(
        TwoPhotonSeries(
            name="TwoPhotonSeries",
            data=H5DataIO(frames, chunks=(1, *shape)),
            imaging_plane=mock_ImagingPlane(nwbfile=nwbfile),
            rate=30.0,
            unit="n.a.",
        )
    )
    path = tmp_path / "large.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    movie_bytes = n_frames * shape[0] * shape[1] * 2
    tracemalloc.start()
    try:
        [(movie, meta, kind)] = contrib.read_nwb_layers(path)
        frame = np.asarray(movie[500])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kind == "image" and movie.shape == (n_frames, *shape)
    np.testing.assert_array_equal(frame, np.full(shape, 500))
    assert meta["metadata"]["timestamps"][-1] == pytest.approx((n_frames - 1) / 30.0)
    assert peak < movie_bytes / 10, (
        f"peak {peak / 1e6:.1f} MB for a {movie_bytes / 1e6:.0f} MB movie"
    )
    movie.close()


def test_manifest_offers_the_nwb_reader(session):
    npe2 = pytest.importorskip("npe2")
    path, _ = session
    manager = npe2.PluginManager.instance()
    manager.discover()
    readers = {reader.command for reader in manager.iter_compatible_readers([str(path)])}
    assert "napari-cebra.get_nwb_reader" in readers
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-cebra")
    kinds = sorted(meta["metadata"]["napari_cebra_kind"] for _, meta, _ in layers)
    assert kinds.count("neural_matrix") == 3 and kinds.count("behaviour") == 4
    next(data for data, meta, _ in layers if meta["name"] == "acquisition/TwoPhotonSeries").close()
