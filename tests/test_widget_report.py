"""Best-practice report widget with a real viewer: writes report.html + results.json, Stop, close."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gui

WAIT_MS = 240_000


@pytest.fixture
def report_widget(place_cell_viewer, tmp_path):
    viewer = place_cell_viewer(500, seed=4, behaviour_visible=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA best-practice report")
    widget.data.neural.value = "neural"
    widget.data.behaviour.value = "behaviour"
    widget.data.variables.value = ["position"]
    widget.iterations.value = 4
    widget.n_runs.value = 2
    widget.gof_batches.value = 3
    widget.folder.value = tmp_path / "report"
    widget.open_when_done.value = False
    return viewer, widget


def test_report_widget_writes_the_report_and_results(qtbot, report_widget, tmp_path, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    _, widget = report_widget
    widget.run_button.click()
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)

    outcome = widget.outcome
    assert outcome is not None, widget.status.value
    folder = tmp_path / "report"
    assert outcome.report_path == folder / "report.html"
    results = json.loads((folder / "results.json").read_text())
    assert results["input"]["n_frames"] == 500 and results["input"]["labels_shape"] == [500, 1]
    settings = results["settings"]
    assert (settings["iterations"], settings["n_runs"], settings["gof_batches"]) == (4, 2, 3)
    assert "<html" in (folder / "report.html").read_text().lower()
    assert results["verdict"].upper() in widget.summary.text()
    assert all(check["title"] in widget.summary.text() for check in results["checks"])
    assert str(outcome.report_path) in widget.status.value
    assert opened == [] and widget.run_button.isEnabled()

    widget.open_when_done.value = True
    widget.show_outcome(outcome)
    assert opened == [outcome.report_path.resolve().as_uri()]


def test_report_widget_stop_and_close_mid_run(
    qtbot, report_widget, tmp_path, stop_mid_run, close_mid_run
):
    viewer, widget = report_widget
    widget.iterations.value = 1000
    widget.run_button.click()
    qtbot.waitUntil(lambda: widget.runner.bar_value >= 30, timeout=WAIT_MS)
    assert stop_mid_run(widget, WAIT_MS) < 1.0
    assert widget.outcome is None and widget.status.value.startswith("Stopped")
    assert not (tmp_path / "report" / "report.html").exists()

    widget.run_button.click()
    worker = widget.runner.worker
    qtbot.waitUntil(lambda: widget.runner.bar_value >= 30, timeout=WAIT_MS)
    close_mid_run(viewer, widget, worker, WAIT_MS)
    assert widget.outcome is None
    assert not (tmp_path / "report" / "report.html").exists()


@pytest.mark.parametrize(
    ("make_folder", "reason"),
    [
        (lambda tmp: (tmp / "a_file").write_text("keep") and tmp / "a_file", "is a file"),
        (lambda tmp: tmp / "missing" / "report", "does not exist"),
    ],
    ids=["a file", "missing parent"],
)
def test_an_unusable_folder_is_refused_before_any_work(
    report_widget, tmp_path, make_folder, reason
):
    _, widget = report_widget
    widget.folder.value = make_folder(tmp_path)
    widget.run_button.click()
    assert widget.runner.worker is None and widget.run_button.isEnabled()
    assert widget.status.value.startswith("Not started: report folder") and reason in (
        widget.status.value
    )


def test_a_failed_final_write_keeps_the_report_elsewhere(
    qtbot, report_widget, tmp_path, monkeypatch
):
    import errno
    import tempfile

    from napari_cebra.workflows import report

    real_write = report.write_report
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def full_disk(results, out_dir):
        if "report" == str(out_dir).rsplit("/", 1)[-1]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(results, out_dir)

    monkeypatch.setattr(report, "write_report", full_disk)
    _, widget = report_widget
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=WAIT_MS)
    outcome = widget.outcome
    assert outcome is not None, widget.status.value
    assert outcome.report_path.parent.parent == temp
    assert "No space left" in outcome.note and str(outcome.report_path.parent) in outcome.note
    assert json.loads(outcome.results_path.read_text())["settings"]["iterations"] == 4
    assert "elsewhere" in widget.status.value
