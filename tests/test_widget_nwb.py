"""An NWB file from end to end in napari: opened through the plugin's reader, its movie (read
lazily from the file) and masks trained on with behaviour aligned by its own timestamps."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")
from pynwb.behavior import Position  # noqa: E402
from pynwb.ophys import ImageSegmentation, TwoPhotonSeries  # noqa: E402
from pynwb.testing.mock.ophys import mock_ImagingPlane  # noqa: E402

from napari_cebra._widgets.embedding_view import embedding_view  # noqa: E402
from napari_cebra._widgets.forms import BY_TIMESTAMPS  # noqa: E402
from napari_cebra._widgets.session import session_models  # noqa: E402
from napari_cebra.io.movies import LazyMovie  # noqa: E402
from napari_cebra.io.synthetic import calcium_imaging_session  # noqa: E402

pytestmark = pytest.mark.gui

N_FRAMES, RATE = 120, 30.0
TRACKER_START, TRACKER_RATE = 0.5, 50.0  # starts late: frames 0-14 (before 0.5 s) have no behaviour


@pytest.fixture
def nwb_file(tmp_path):
    session = calcium_imaging_session(n_frames=N_FRAMES, shape=(32, 32), n_cells=6, seed=3)
    nwbfile = pynwb.NWBFile(
        session_description="two-photon session",
        identifier="napari-cebra-gui-test",
        session_start_time=datetime(2026, 12, 3, tzinfo=timezone.utc),
    )
    plane = mock_ImagingPlane(nwbfile=nwbfile)
    nwbfile.add_acquisition(
        TwoPhotonSeries(
            name="TwoPhotonSeries",
            data=np.asarray(session.movie),
            imaging_plane=plane,
            rate=RATE,
            unit="a.u.",
        )
    )
    ophys = nwbfile.create_processing_module("ophys", "optical physiology")
    segmentation = ImageSegmentation()
    ophys.add(segmentation)
    table = segmentation.create_plane_segmentation(
        name="PlaneSegmentation", description="cells", imaging_plane=plane
    )
    for label in range(1, int(session.rois.max()) + 1):
        table.add_roi(image_mask=(session.rois == label).astype(float))
    times = TRACKER_START + np.arange(150) / TRACKER_RATE  # 0.5 … 3.48 s
    behaviour = nwbfile.create_processing_module("behavior", "behaviour")
    behaviour.add(Position())
    behaviour["Position"].create_spatial_series(
        name="position", data=np.sin(times), reference_frame="track", timestamps=times
    )
    path = tmp_path / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def test_an_nwb_movie_trains_with_behaviour_aligned_by_time(make_napari_viewer, qtbot, nwb_file):
    viewer = make_napari_viewer()
    viewer.open(str(nwb_file), plugin="napari-cebra")
    movie = viewer.layers["acquisition/TwoPhotonSeries"]
    assert isinstance(movie.data, LazyMovie)  # read from the file, frame by frame
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "Train CEBRA")
    picker = widget.data
    picker.neural.value = "acquisition/TwoPhotonSeries"
    picker.rois.value = "ophys/ImageSegmentation/PlaneSegmentation"
    picker.behaviour.value = "behavior/Position/position"
    assert picker.alignment.value == BY_TIMESTAMPS
    frames = np.arange(15, 105)  # 0.5 s … 3.467 s: inside the tracker's 0.5–3.48 s
    assert picker.alignment_note.value.startswith(
        f"Aligned by time: {len(frames)} neural frames kept. Excluded 30 of 120"
    )
    widget.params.preset.value = "CEBRA-Behavior"
    widget.params.batch_size.value = 32
    widget.params.num_hidden_units.value = 8
    widget.params.max_iterations.value = 3
    widget.data.valid_fraction.value = 0.0
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    entry = list(session_models())[-1]
    points = embedding_view(viewer).layer(entry.name)
    np.testing.assert_array_equal(points.features["frame"], frames)
    np.testing.assert_allclose(points.features["position_x"], np.sin(frames / RATE), atol=1e-3)


def test_a_broken_nwb_file_gives_an_error_and_napari_stays_usable(make_napari_viewer, tmp_path):
    broken = tmp_path / "broken.nwb"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)  # an HDF5 signature, nothing more
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="broken.nwb"):
        viewer.open(str(broken), plugin="napari-cebra")
    viewer.add_image(np.zeros((4, 4)), name="still here")
    assert [layer.name for layer in viewer.layers] == ["still here"]
