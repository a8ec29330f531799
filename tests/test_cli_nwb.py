"""``report --nwb``: neural series and behaviour from one NWB file, aligned by time; CaImAn input."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
import scipy.sparse

from napari_cebra.__main__ import main

pynwb = pytest.importorskip("pynwb")

from pynwb.behavior import CompassDirection, Position  # noqa: E402
from pynwb.ophys import Fluorescence, ImageSegmentation  # noqa: E402
from pynwb.testing.mock.ophys import mock_ImagingPlane  # noqa: E402

N_FRAMES, RATE = 300, 10.0


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    """300 frames of 6 ROIs at 10 Hz from 0 s; position at 25 Hz from 1 s; heading; 3 trials."""
    rng = np.random.default_rng(1)
    nwbfile = pynwb.NWBFile(
        session_description="cli test",
        identifier="cli",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    plane = mock_ImagingPlane(nwbfile=nwbfile)
    ophys = nwbfile.create_processing_module("ophys", "optical physiology")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="rois", imaging_plane=plane
    )
    for k in range(6):
        mask = np.zeros((8, 8))
        mask[k, k] = 1.0
        table.add_roi(image_mask=mask)
    ophys.add(Fluorescence())
    ophys["Fluorescence"].create_roi_response_series(
        name="RoiResponseSeries",
        data=rng.normal(size=(N_FRAMES, 6)),
        rois=table.create_roi_table_region("all", region=list(range(6))),
        unit="a.u.",
        rate=RATE,
    )
    behaviour = nwbfile.create_processing_module("behavior", "behaviour")
    behaviour.add(Position())
    times = 1.0 + np.arange(25 * 29) / 25.0  # 1.0 … 29.96 s
    behaviour["Position"].create_spatial_series(
        name="position", data=times - 1.0, reference_frame="track start", timestamps=times
    )
    behaviour.add(CompassDirection())
    behaviour["CompassDirection"].create_spatial_series(
        name="heading", data=np.zeros(400), reference_frame="north", rate=10.0, unit="radians"
    )
    for start in (5.0, 10.0, 15.0):
        nwbfile.add_trial(start_time=start, stop_time=start + 2.0)
    for _ in range(3):
        nwbfile.add_unit(spike_times=np.sort(rng.uniform(0, 30, size=200)))
    path = tmp_path_factory.mktemp("nwb_cli") / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture
def recorded(monkeypatch):
    """What ``report`` would train on (the recipe itself is replaced)."""
    seen = {}

    def fake_run_report(neural, labels, out, *options):
        seen.update(neural=neural, labels=labels)
        return {}

    monkeypatch.setattr("napari_cebra.__main__.run_report", fake_run_report)
    return seen


def test_nwb_traces_with_behaviour_and_trials_aligned_by_time(nwb_path, tmp_path, recorded, capsys):
    argv = ["report", "--nwb", str(nwb_path), "--neural", "Fluorescence/RoiResponseSeries"]
    argv += ["--behaviour", "position", "--behaviour", "heading", "--behaviour", "trials"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    neural, labels = recorded["neural"], recorded["labels"]
    # position is known from 1.0 s to 29.96 s: frames 10 … 299 (t = 1.0 … 29.9 s)
    assert neural.shape == (290, 6) and labels.shape == (290, 3)
    frame_times = np.arange(10, 300) / RATE
    np.testing.assert_allclose(labels[:, 0], frame_times - 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels[:, 1], 0.0)
    trial = np.zeros(290)
    for number, start in enumerate((5.0, 10.0, 15.0), start=1):
        trial[(frame_times >= start) & (frame_times < start + 2.0)] = number
    np.testing.assert_array_equal(labels[:, 2], trial)
    assert "10 of 300 neural frames have no behaviour" in capsys.readouterr().err


def test_nwb_units_binned_without_behaviour(nwb_path, tmp_path, recorded):
    argv = ["report", "--nwb", str(nwb_path), "--neural", "units", "--bin-size", "0.1"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert recorded["labels"] is None
    assert recorded["neural"].shape[1] == 3 and 295 <= recorded["neural"].shape[0] <= 300
    assert recorded["neural"].sum() == 600


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ([], "--nwb needs --neural SERIES; "),
        (["--neural", "position"], "is a behaviour series"),
        (["--neural", "units", "--labels", "x.npy"], "--labels, --key and --transpose apply"),
        (["--neural", "ecephys/LFP"], "has no series 'ecephys/LFP'"),
    ],
)
def test_bad_nwb_input_exits_with_one_line(nwb_path, tmp_path, capsys, extra, reason):
    code = main(["report", "--nwb", str(nwb_path), *extra, "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and reason in lines[0], lines
    if not extra:
        assert "'processing/ophys/Fluorescence/RoiResponseSeries'" in lines[0]


def test_neither_or_both_inputs_is_an_error(nwb_path, tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "o")]) == 2
    assert main(["report", "a.npy", "--nwb", str(nwb_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("give either a NEURAL matrix file or --nwb") == 2


def test_caiman_results_file_as_neural_input(tmp_path, recorded, capsys):
    path = tmp_path / "cnmf.hdf5"
    traces = np.random.default_rng(2).normal(size=(4, 250))
    footprints = scipy.sparse.csc_matrix(np.eye(16)[:, :4])
    with h5py.File(path, "w") as handle:
        handle["estimates/C"] = traces
        handle["estimates/F_dff"] = traces + 1
        for key in ("data", "indices", "indptr", "shape"):
            handle[f"estimates/A/{key}"] = np.asarray(getattr(footprints, key))
        handle["dims"] = np.array([4, 4])
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 0
    np.testing.assert_allclose(recorded["neural"], traces.T, rtol=1e-6)
    assert main(["report", str(path), "--key", "F_dff", "--out", str(tmp_path / "o")]) == 0
    np.testing.assert_allclose(recorded["neural"], traces.T + 1, rtol=1e-6)
    assert main(["report", str(path), "--key", "S", "--out", str(tmp_path / "o")]) == 2
    assert "--key must be C or F_dff" in capsys.readouterr().err


def test_nwb_report_end_to_end(nwb_path, tmp_path):
    out = tmp_path / "report"
    argv = ["report", "--nwb", str(nwb_path), "--neural", "Fluorescence/RoiResponseSeries"]
    argv += ["--behaviour", "position", "--out", str(out), "--iterations", "3", "--runs", "2"]
    assert main([*argv, "--batch-size", "64", "--gof-batches", "2", "--threads", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["input"]["labels_shape"] == [290, 1]
