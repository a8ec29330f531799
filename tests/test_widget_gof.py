"""Goodness-of-fit widget with a real viewer, and the generic line plot and background runner."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_cebra._widgets.layer_data import label_description
from napari_cebra._widgets.session import session_models
from napari_cebra.io.synthetic import place_cell_recording

pytestmark = pytest.mark.gui

WAIT_MS = 60_000
N_FRAMES = 400
COLUMNS = ["position", "right", "left"]
PARAMS = {
    "model_architecture": "offset10-model",
    "conditional": "time_delta",
    "batch_size": 64,
    "num_hidden_units": 16,
    "output_dimension": 3,
    "max_iterations": 30,
    "learning_rate": 3e-3,
    "temperature": 1.0,
    "time_offsets": 10,
    "device": "cpu",
    "seed": 3,
}


@pytest.fixture(scope="module")
def recording():
    return place_cell_recording(n_frames=N_FRAMES, n_neurons=24, seed=2)


# ------------------------------------------------------------------------------ line plot


def test_plots_follow_napari_theme_light_and_dark(qtbot):
    """Background, axis text and the theme-coloured curve change with Preferences → theme; a
    hidden curve leaves the axis range to the visible ones."""
    from napari.settings import get_settings

    from napari_cebra._widgets.heatmap import Heatmap
    from napari_cebra._widgets.loss_plot import LossPlot
    from napari_cebra._widgets.plot_theme import theme_colours

    appearance = get_settings().appearance
    original = appearance.theme
    plot, heatmap = LossPlot(), Heatmap()
    qtbot.addWidget(plot)
    qtbot.addWidget(heatmap)
    plot.extend([1, 2, 3], [0.1, 0.2, 0.3], [5.0, 5.5, 6.0], [5.1, 5.7, 6.3])
    plot.redraw()
    try:
        for theme in ("light", "dark"):
            appearance.theme = theme
            colours = theme_colours(theme)
            assert plot.background == colours.background
            assert heatmap.background == colours.background
            assert plot.colour("total") == colours.text
            assert f"color:{colours.text}" in plot.legend_html()
        assert theme_colours("light").background != theme_colours("dark").background
    finally:
        appearance.theme = original
    assert not plot.curve_visible("pos")
    assert plot.y_range[0] > 4.0  # fitted to the total only
    plot.show_terms.setChecked(True)
    assert plot.y_range[0] < 0.2


def test_plot_paints_long_curves_as_their_envelope(qtbot):
    """A 200,000-point curve is painted as the low/high of each pixel column, keeping its
    extremes, and the picture shows the curve's colour on the theme's background."""
    from napari_cebra._widgets.line_plot import LinePlot, envelope

    x = np.arange(200_000, dtype=float)
    y = np.sin(x / 5000.0)
    y[123_456] = 3.0  # a single spike must survive
    pixels = envelope(np.column_stack([x, y]), 300)
    assert len(pixels) <= 4 * 300 and pixels[:, 1].max() == 3.0 and pixels[:, 1].min() < -0.99
    plot = LinePlot(x_label="step", y_label="value")
    qtbot.addWidget(plot)
    plot.resize(400, 260)
    plot.set_curve("long", x, y, colour="#e69f00")
    plot.redraw()
    image = plot.canvas.grab().toImage()
    colours = {
        image.pixelColor(i, j).name()
        for i in range(0, image.width(), 3)
        for j in range(0, image.height(), 3)
    }
    assert plot.background in colours and "#e69f00" in colours
    assert plot.y_range[1] >= 3.0


def test_line_plot_holds_named_curves_and_shows_them_in_the_legend(qtbot):
    from napari_cebra._widgets.line_plot import PALETTE, LinePlot

    plot = LinePlot(x_label="step", y_label="GoF (bits)", title="GoF")
    qtbot.addWidget(plot)
    plot.set_curve("train", [1, 2, 3], [0.5, 1.0, 1.5])
    for step, value in enumerate([0.2, 0.4], start=1):
        plot.append("valid", step, value)
    plot.set_reference_lines([0.0])
    plot.redraw()

    assert plot.names == ["train", "valid"]
    np.testing.assert_array_equal(plot.curve("valid"), [[1, 0.2], [2, 0.4]])
    assert plot.colour("train") == PALETTE[0] and plot.colour("valid") == PALETTE[1]
    assert "train 1.500" in plot.legend_html() and "valid 0.400" in plot.legend_html()
    # tick labels follow the data range (x 1…3, y from the 0-bit line up to 1.5)
    x_low, x_high = plot.x_range
    y_low, y_high = plot.y_range
    assert x_low <= 1 < 3 <= x_high and x_high - x_low < 3
    assert y_low <= 0.0 < 1.5 <= y_high and y_high - y_low < 2.5

    with pytest.raises(ValueError, match="x has 2 values but y has 3"):
        plot.set_curve("bad", [1, 2], [1, 2, 3])
    plot.set_curve("with gaps", [1, 2, 3], [1.0, np.nan, 2.0])
    assert plot.curve("with gaps").shape == (2, 2)
    plot.remove_curve("valid")
    assert plot.names == ["train", "with gaps"]
    with pytest.raises(KeyError, match="No curve 'valid'"):
        plot.curve("valid")
    plot.clear()
    assert plot.names == [] and "nothing to show" in plot.legend_html()


def test_line_plot_throttles_redraws(qtbot):
    from napari_cebra._widgets.line_plot import REDRAW_MS, LinePlot

    plot = LinePlot()
    qtbot.addWidget(plot)
    plot.redraw()
    for step in range(500):
        plot.append("loss", step, 1.0 / (step + 1))
    assert "loss" not in plot.legend.text()  # not drawn yet: appends only schedule a redraw
    qtbot.waitUntil(lambda: "loss 0.002" in plot.legend.text(), timeout=10 * REDRAW_MS)
    assert plot.curve("loss").shape == (500, 2)


# ------------------------------------------------------------------------------ runner


def _counting(n: int, pause: float = 0.0, fail_at: int | None = None):
    for step in range(1, n + 1):
        if step == fail_at:
            raise ValueError(f"bad value at step {step}")
        time.sleep(pause)
        yield _Record(step, n)
    return {"thread": threading.current_thread().name, "steps": n}


class _Record:
    def __init__(self, step: int, total_steps: int) -> None:
        self.step, self.total_steps = step, total_steps


@pytest.fixture
def owner(qtbot):
    from qtpy.QtWidgets import QProgressBar, QPushButton, QWidget

    widget = QWidget()
    widget.run_button = QPushButton("Run", widget)
    widget.stop_button = QPushButton("Stop", widget)
    widget.bar = QProgressBar(widget)
    qtbot.addWidget(widget)
    return widget


def _runner(owner):
    from napari_cebra._widgets.background import BackgroundRunner

    return BackgroundRunner(
        owner, controls=[owner.run_button], stop_button=owner.stop_button, bar=owner.bar
    )


def test_runner_relays_records_and_result_to_the_main_thread(qtbot, owner):
    runner = _runner(owner)
    seen, results, in_main = [], [], []
    main = threading.current_thread()
    assert not owner.stop_button.isEnabled()
    runner.run(
        _counting(5, pause=0.01),
        description="counting",
        on_record=lambda r: (
            seen.append(r.step),
            in_main.append(threading.current_thread() is main),
        ),
        on_result=results.append,
    )
    assert runner.running and not owner.run_button.isEnabled() and owner.stop_button.isEnabled()
    assert not owner.bar.isHidden() and owner.bar.maximum() == 1  # determinate, never busy
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    assert seen == [1, 2, 3, 4, 5] and all(in_main)
    assert results[0]["steps"] == 5 and results[0]["thread"] != main.name
    assert runner.bar_value == 5 and owner.bar.maximum() == 5 and owner.bar.isHidden()
    assert not runner.running and owner.run_button.isEnabled() and not owner.stop_button.isEnabled()
    with pytest.raises(RuntimeError, match="another run"):
        runner.run(_counting(1000, pause=0.05), description="first")
        runner.run(_counting(1), description="second")
    with qtbot.waitSignal(runner.worker.finished, timeout=WAIT_MS):
        runner.stop()


def test_runner_stop_ends_an_endless_run_within_a_second(qtbot, owner):
    runner = _runner(owner)
    stopped, results, seen = [], [], []
    worker = runner.run(
        _counting(10**9, pause=0.05),
        description="endless",
        on_record=seen.append,
        on_result=results.append,
        on_stopped=lambda: stopped.append(True),
    )
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=WAIT_MS)
    started = time.perf_counter()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        owner.stop_button.click()
    assert time.perf_counter() - started < 1.0
    assert stopped == [True] and results == []
    assert owner.run_button.isEnabled()


def test_runner_cooperative_stop_keeps_the_partial_result(qtbot, owner):
    runner = _runner(owner)
    stop = threading.Event()

    def partial():
        done = 0
        while not stop.is_set():
            time.sleep(0.02)
            done += 1
            yield _Record(done, 0)
        return done

    results = []
    worker = runner.run(partial(), description="partial", on_result=results.append, stop=stop)
    qtbot.wait(100)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        runner.stop()
    assert stop.is_set() and runner.stop_requested
    assert len(results) == 1 and results[0] >= 1


def test_runner_errors_become_notifications(qtbot, owner, monkeypatch):
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    runner = _runner(owner)
    results = []
    runner.run(_counting(5, fail_at=3), description="failing", on_result=results.append)
    qtbot.waitUntil(lambda: not runner.running, timeout=WAIT_MS)
    assert shown == ["failing failed: bad value at step 3"]
    assert results == [] and owner.run_button.isEnabled()


def test_runner_survives_its_widget_being_deleted_mid_run(qtbot):
    from qtpy.QtWidgets import QPushButton, QWidget

    from napari_cebra._widgets.background import BackgroundRunner

    owner = QWidget()
    button = QPushButton("Run", owner)
    runner = BackgroundRunner(owner, controls=[button])
    calls = []
    worker = runner.run(
        _counting(10**9, pause=0.02),
        description="orphan",
        on_record=calls.append,
        on_result=calls.append,
        on_finished=lambda: calls.append("finished"),
    )
    qtbot.waitUntil(lambda: len(calls) >= 2, timeout=WAIT_MS)
    n_calls = len(calls)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        owner.deleteLater()
    qtbot.wait(50)
    assert runner.stop_requested and not runner.running
    assert len(calls) <= n_calls + 1 and "finished" not in calls


# ------------------------------------------------------------------------------ GoF widget


@pytest.fixture
def trained(recording):
    from napari_cebra import CEBRA

    model = CEBRA(**PARAMS).fit(recording.neural[:300], recording.behaviour[:300])
    trained_on = {
        "neural": "neural",
        "rois": None,
        "behaviour": "behaviour",
        **label_description(COLUMNS, None),
        "n_frames": N_FRAMES,
        "valid_fraction": 0.25,
        "steps_done": PARAMS["max_iterations"],
    }
    entry = session_models().add(model, base_name="test GoF", trained_on=trained_on)
    yield entry
    if entry.name in session_models():
        session_models().remove(entry.name)


@pytest.fixture
def gof_widget(make_napari_viewer, recording, trained):
    viewer = make_napari_viewer()
    viewer.add_image(recording.neural, name="neural")
    viewer.add_image(recording.behaviour, name="behaviour", metadata={"columns": COLUMNS})
    _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "CEBRA goodness of fit")
    widget.model_choice.value = trained.name
    return viewer, widget


def test_gof_widget_shows_the_scores_of_goodness_of_fit_score(
    qtbot, gof_widget, trained, recording
):
    from napari_cebra.metrics import goodness_of_fit_history, goodness_of_fit_score

    _, widget = gof_widget
    assert widget.data.neural.value == "neural" and widget.data.behaviour.value == "behaviour"
    assert widget.data.variables.value == COLUMNS
    assert widget.data.valid_fraction.value == pytest.approx(0.25)
    widget.num_batches.value = 5
    widget.run_button.click()
    assert not widget.run_button.isEnabled()
    qtbot.waitUntil(
        lambda: widget.result is not None and not widget.runner.running, timeout=WAIT_MS
    )

    model, X, y = trained.model, recording.neural, recording.behaviour
    expected_train = goodness_of_fit_score(model, X[:300], y[:300], num_batches=5)
    expected_valid = goodness_of_fit_score(model, X[300:], y[300:], num_batches=5)
    result = widget.result
    assert result.n_train == 300
    assert result.gof_train == pytest.approx(expected_train, abs=1e-6)
    assert result.gof_valid == pytest.approx(expected_valid, abs=1e-6)
    assert f"{expected_train:.3f} bits" in widget.scores.text()
    assert f"{expected_valid:.3f} bits" in widget.scores.text()
    history = goodness_of_fit_history(model)
    np.testing.assert_allclose(
        widget.gof_plot.curve("GoF during training")[:, 1], history, rtol=1e-5
    )
    assert widget.loss_plot.curve("temperature τ").shape == (PARAMS["max_iterations"], 2)
    np.testing.assert_allclose(widget.loss_plot.curve("temperature τ")[:, 1], 1.0)
    assert any(word in widget.reading.text() for word in ("PASS", "WARN", "FAIL"))
    assert widget.run_button.isEnabled()


def test_data_picker_restores_the_labels_a_model_was_trained_on(make_napari_viewer, recording):
    from napari_cebra._widgets.forms import DataPicker

    viewer = make_napari_viewer()
    viewer.add_image(recording.neural, name="neural")
    metadata = {"columns": COLUMNS, "discrete_columns": ["right", "left"]}
    viewer.add_image(recording.behaviour, name="behaviour", metadata=metadata)
    picker = DataPicker(viewer)
    trained_on = {"neural": "neural", "behaviour": "behaviour", "valid_fraction": 0.1}
    picker.set_from_description({**trained_on, **label_description(["position"], "left")})
    assert picker.variables.value == ["position"] and picker.discrete.value == "left"
    selection = picker.read()
    assert selection.description["labels"] == ["position", "left (discrete)"]
    assert selection.description["continuous"] == ["position"]
    assert selection.description["discrete"] == "left"
    np.testing.assert_array_equal(selection.labels[0][:, 0], recording.position)
    np.testing.assert_array_equal(selection.labels[1], recording.behaviour[:, 2].astype(np.int64))
    assert selection.valid_fraction == pytest.approx(0.1)


def test_gof_widget_reports_bad_layers_as_a_notification(gof_widget, monkeypatch):
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    viewer, widget = gof_widget
    viewer.add_image(np.zeros((50, 5), dtype=np.float32), name="short")
    widget.data.neural.value = "short"
    widget.run_button.click()
    assert not widget.runner.running
    assert "Neural layer 'short' has 50 frames but behaviour layer 'behaviour' has 400" in shown[0]
    assert shown[0].startswith("Goodness of fit:")


def test_closing_the_gof_widget_mid_run_does_not_crash(qtbot, gof_widget, close_mid_run):
    viewer, widget = gof_widget
    widget.num_batches.value = 5000
    widget.run_button.click()
    worker = widget.runner.worker
    qtbot.waitUntil(lambda: widget.runner.bar_value >= 2, timeout=WAIT_MS)
    assert close_mid_run(viewer, widget, worker, WAIT_MS) < 1.0
    assert widget.result is None
    assert not any(k.startswith("CEBRA goodness of fit") for k in viewer.window.dock_widgets)


@pytest.mark.parametrize(
    ("train", "valid", "history", "verdict", "words"),
    [
        (0.02, 0.01, np.zeros(50), "fail", "collapsed"),
        (2.0, 1.0, np.linspace(0, 2, 50), "warn", "Overfitting"),
        (2.0, 1.9, np.r_[np.linspace(0, 1.9, 40), np.full(10, 2.0)], "pass", "generalises"),
        (2.0, None, np.full(50, 2.0), "pass", "generalisation is not judged"),
    ],
)
def test_gof_reading_follows_the_recipe(train, valid, history, verdict, words):
    from napari_cebra._widgets.gof_widget import GofResult, gof_reading

    empty = np.zeros(len(history))
    result = GofResult(train, valid, 80, 100, history, empty, empty, empty, empty)
    lines = gof_reading(result)
    assert lines[0][0] == verdict and words in lines[0][1]
    assert ("No validation part" in lines[-1][1]) == (valid is None)


def test_gof_reading_calls_a_late_rise_with_a_validation_gap_overfitting():
    from napari_cebra._widgets.gof_widget import GofResult, gof_reading

    history = np.r_[np.full(40, 1.0), np.linspace(1.0, 2.0, 10)]
    empty = np.zeros(50)
    lines = gof_reading(GofResult(2.0, 1.2, 80, 100, history, empty, empty, empty, empty))
    assert [verdict for verdict, _ in lines] == ["warn", "warn"]
    assert "late gain is overfitting" in lines[1][1]


def test_creating_a_runner_loads_the_engine_once_in_the_background():
    """The lazily loaded parts of torch, scikit-learn and pandas are imported by the warm-up
    thread, not by the first run's worker (where their imports stall the GUI)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from qtpy.QtWidgets import QApplication, QWidget\n"
        "from napari_cebra._widgets.background import BackgroundRunner, warm_up_engine\n"
        "app = QApplication([])\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n"
        "BackgroundRunner(QWidget())\n"
        "thread = warm_up_engine()\n"
        "assert thread.name == 'napari-cebra warm-up' and warm_up_engine() is thread\n"
        "thread.join(120)\n"
        "print(sorted(m for m in ('torch._dynamo', 'sklearn.neighbors', 'pandas') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "['pandas', 'sklearn.neighbors', 'torch._dynamo']"


def test_quitting_during_the_engine_warm_up_waits_for_it(tmp_path):
    """Quitting while the warm-up thread still imports torch crashed the interpreter at exit:
    exit now waits for the warm-up (checked by an exit handler that runs after that wait)."""
    import subprocess
    import sys

    script = tmp_path / "quit_early.py"
    script.write_text(
        "import atexit, threading\n"
        "def report():\n"
        "    alive = [t.name for t in threading.enumerate() if 'warm-up' in t.name]\n"
        "    print('alive at exit:', alive)\n"
        "atexit.register(report)\n"
        "from napari_cebra._widgets.background import warm_up_engine\n"
        "warm_up_engine()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alive at exit: []" in done.stdout
