"""The napari workspace under load: widget training speed against the library, GUI stalls, time link.

Runs a real napari viewer (under Xvfb on a machine without a display) and drives it as a user
would: dock Train CEBRA, train CEBRA-Time and CEBRA-Behavior, let the embedding land, recolour
it, scrub the time slider, switch between the embeddings. Meanwhile a ``QTimer`` ticking every
``PROBE_MS`` milliseconds records the gaps between its ticks: the worst gap of a phase is the
freeze the user feels there.

Cases:

* ``calcium`` — the plugin's calcium-imaging sample (3,000 frames, 80 ROIs; traces extracted from
  the movie by the widget).
* ``100k`` — a 100,000 × 300 time × neurons matrix with a 100,000 × 3 behaviour table and a
  100,000-frame movie (small frames, read lazily) as the time axis of the embedding.

For each case and preset it prints widget it/s (steps / training-loop seconds reported by the
widget), the library's it/s for the same ``CEBRA(...).fit`` on the same arrays in a plain Python
thread of the same process, once with the widget's torch thread count and once with torch's
default, the ratios, the worst stall of every phase, and the time-link latency (one move of the
time slider: the embedding's highlight update alone, and the whole ``set_current_step`` call
including the movie's slicing).

Usage::

    xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/bench_gui.py
    python benchmarks/bench_gui.py --cases calcium --iterations 300 --window 1366x768

Figures go to ``benchmarks/results/gui.json``; ``benchmarks/README.md`` summarises them. Numbers
vary with the machine's load: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
PROBE_MS = 15
PRESETS = ("CEBRA-Time", "CEBRA-Behavior")


class StallProbe:
    """Records the gaps between the ticks of a main-thread timer, phase by phase."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)
        self._last = time.perf_counter()
        self._worst = 0.0
        self.phases: dict[str, float] = {}
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self._worst = max(self._worst, now - self._last)
        self._last = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Measure the worst gap (ms) while the block runs and the event loop then settles."""
        self._last = time.perf_counter()
        self._worst = 0.0
        yield
        wait(0.3)  # let queued slots run inside the phase
        self._tick()
        self.phases[name] = max(self.phases.get(name, 0.0), 1000 * self._worst)


def wait(seconds: float) -> None:
    """Run the Qt event loop for ``seconds`` (no busy loop)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(1000 * seconds), loop.quit)
    loop.exec()


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Run the event loop until ``condition()`` holds (checked every 20 ms)."""
    from qtpy.QtCore import QEventLoop, QTimer

    if condition():
        return
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: condition() and loop.quit())
    poll.start(20)
    QTimer.singleShot(int(1000 * timeout), loop.quit)
    loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError(f"not done after {timeout} s")


def library_its(params: dict[str, Any], arrays: list[np.ndarray], threads: int | None) -> float:
    """it/s of ``CEBRA(**params).fit(*arrays)`` in a plain thread with ``threads`` torch threads."""
    import torch

    from napari_cebra import CEBRA

    out: dict[str, float] = {}

    def fit() -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        start = time.perf_counter()
        CEBRA(**params).fit(*arrays)
        out["seconds"] = time.perf_counter() - start

    thread = threading.Thread(target=fit)
    thread.start()
    while thread.is_alive():
        wait(0.05)
    return params["max_iterations"] / out["seconds"]


def default_threads() -> int:
    """torch's default intra-op thread count in a fresh thread of this process."""
    import torch

    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return out[0]


def training_arrays(widget: Any) -> tuple[dict[str, Any], list[np.ndarray], int]:
    """What the widget trains on: its parameters, the training arrays, the worker's threads."""
    from napari_cebra._widgets.workers import neural_matrix_steps, split_point

    request, _ = widget.build_request()
    steps = neural_matrix_steps(request.neural, threading.Event())
    while True:
        try:
            next(steps)
        except StopIteration as done:
            matrix = done.value
            break
    matrix = matrix[: request.n_frames]
    n_train = split_point(len(matrix), request.valid_fraction)
    arrays = [matrix[:n_train], *(y[:n_train] for y in request.labels)]
    return dict(request.params), arrays, widget_threads()


def widget_threads() -> int:
    """torch threads a widget's worker trains with."""
    import torch

    from napari_cebra._widgets import background

    out: list[int] = []

    def probe() -> None:
        background.leave_a_core_for_the_gui()
        out.append(torch.get_num_threads())

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return out[0]


def train_in_widget(widget: Any, probe: StallProbe, tag: str) -> Any:
    """Press Train and wait: phases ``<tag>: start`` (until the first record), ``<tag>: training``
    (until the last step is plotted, which happens in the same slot as the result: this phase
    also holds the embedding's landing in its dock) and ``<tag>: embedding added`` (the second
    after that)."""
    before = widget.last_result
    with probe.phase(f"{tag}: start"):
        widget.train_button.click()
        wait_until(lambda: widget.loss_plot.n_points > 0 or not widget.runner.running, 600)
    total = int(widget.params.max_iterations.value)
    with probe.phase(f"{tag}: training"):
        wait_until(lambda: widget.loss_plot.n_points >= total or not widget.runner.running, 3600)
    with probe.phase(f"{tag}: embedding added"):
        wait_until(lambda: widget.last_result is not before or not widget.runner.running, 600)
        wait(1.0)
    return widget.last_result


def scrub(viewer: Any, view: Any, time_layer: Any, probe: StallProbe, tag: str) -> dict[str, float]:
    """Move the time slider 20 times; latency of the highlight update and of the whole move."""
    from napari_cebra._widgets.time_link import time_axis

    axis = time_axis(viewer, time_layer)
    n_frames = time_layer.data.shape[0]
    highlight_ms: list[float] = []
    move_ms: list[float] = []
    original = view.highlight_frame

    def timed_highlight(frame: Any) -> None:
        start = time.perf_counter()
        original(frame)
        highlight_ms.append(1000 * (time.perf_counter() - start))

    view.highlight_frame = timed_highlight
    try:
        with probe.phase(f"{tag}: scrubbing"):
            for frame in np.linspace(n_frames * 0.1, n_frames * 0.9, 20).astype(int):
                start = time.perf_counter()
                viewer.dims.set_current_step(axis, int(frame))
                move_ms.append(1000 * (time.perf_counter() - start))
                wait(0.05)
    finally:
        del view.highlight_frame
    return {
        "time_link_ms_median": statistics.median(highlight_ms) if highlight_ms else float("nan"),
        "time_link_ms_max": max(highlight_ms) if highlight_ms else float("nan"),
        "slider_move_ms_median": statistics.median(move_ms),
    }


def set_window(viewer: Any, size: str) -> None:
    width, height = (int(v) for v in size.split("x"))
    window = viewer.window._qt_window  # noqa: SLF001 - the benchmark sizes napari's own window
    window.showNormal()
    window.resize(width, height)
    wait(0.5)


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    """Drive one case through every phase; returns its figures."""
    import napari

    from napari_cebra._widgets.embedding_view import embedding_view

    probe = StallProbe()
    viewer = napari.Viewer(title=f"bench {case}")
    set_window(viewer, args.window)
    with probe.phase("open sample / data"):
        time_layer = add_data(viewer, case)
    with probe.phase("dock Train CEBRA"):
        _, widget = viewer.window.add_plugin_dock_widget("napari-cebra", "Train CEBRA")
    wait(0.5)
    figures: dict[str, Any] = {"case": case, "presets": {}}
    names = []
    for preset in PRESETS:
        form = widget.params
        form.preset.value = preset
        form.max_iterations.value = args.iterations
        form.batch_size.value = 512
        tag = preset
        result = train_in_widget(widget, probe, tag)
        view = embedding_view(viewer)
        names.append(view.choice.value)
        entry = view.entries[view.choice.value]
        if entry.time_layer is None:  # a matrix without a known movie: link it to the movie
            entry.time_layer = time_layer
        params, arrays, threads = training_arrays(widget)
        lib_same = library_its(params, arrays, threads)
        lib_default = library_its(params, arrays, None)
        widget_its = result.steps_done / result.seconds
        figures["presets"][preset] = {
            "frames": int(len(arrays[0])),
            "neurons": int(arrays[0].shape[1]),
            "steps": int(result.steps_done),
            "widget_its": widget_its,
            "widget_threads": threads,
            "library_its_same_threads": lib_same,
            "library_its_default_threads": lib_default,
            "ratio_same_threads": widget_its / lib_same,
            "ratio_default_threads": widget_its / lib_default,
        }
        print(
            f"  {case} {preset}: widget {widget_its:.1f} it/s ({threads} threads), library "
            f"{lib_same:.1f} it/s same threads ({widget_its / lib_same:.2f}x), "
            f"{lib_default:.1f} it/s default threads ({widget_its / lib_default:.2f}x)",
            flush=True,
        )
    view = embedding_view(viewer)
    with probe.phase("recolouring"):
        for column in list(view.color_by.choices)[:4]:
            view.color_by.value = column
            wait(0.1)
    figures["time_link"] = scrub(viewer, view, viewer.layers[time_layer], probe, "scrub")
    with probe.phase("switching embeddings"):
        for name in names * 2:
            view.choice.value = name
            wait(0.2)
    figures["stalls_ms"] = dict(probe.phases)
    probe.timer.stop()
    viewer.close()
    return figures


def add_data(viewer: Any, case: str) -> str:
    """Put the case's layers into the viewer; returns the name of the time layer (the movie)."""
    if case == "calcium":
        viewer.open_sample("napari-cebra", "calcium_imaging")
        return "calcium movie"
    rng = np.random.default_rng(0)
    from napari_cebra.io.synthetic import place_cell_recording

    recording = place_cell_recording(n_frames=100_000, n_neurons=300, seed=0)
    viewer.add_image(
        recording.neural,
        name="neural",
        colormap="magma",
        metadata={"napari_cebra_kind": "neural_matrix"},
    )
    viewer.add_image(
        recording.behaviour,
        name="behaviour",
        visible=False,
        metadata={"napari_cebra_kind": "behaviour", "columns": ["position", "right", "left"]},
    )
    frames = rng.integers(0, 255, size=(64, 32, 32), dtype=np.uint8)
    movie = np.broadcast_to(frames[np.arange(100_000) % 64], (100_000, 32, 32))
    viewer.add_image(movie, name="movie", metadata={"napari_cebra_kind": "movie"})
    return "movie"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="calcium,100k")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--window", default="1700x1050")
    parser.add_argument("--out", default=str(RESULTS / "gui.json"))
    args = parser.parse_args()
    os.environ.setdefault("NAPARI_CEBRA_BENCH", "1")
    import napari  # noqa: F401 - creates the Qt application settings
    from napari._qt.qt_event_loop import get_qapp
    from qtpy.QtWidgets import QApplication

    get_qapp()
    print(f"torch default threads {default_threads()}, widget threads {widget_threads()}")
    results = {"window": args.window, "iterations": args.iterations, "cases": []}
    for case in args.cases.split(","):
        print(f"case {case}", flush=True)
        figures = run_case(case, args)
        results["cases"].append(figures)
        for phase, ms in figures["stalls_ms"].items():
            print(f"    worst stall {phase:32s} {ms:8.0f} ms")
        link = figures["time_link"]
        print(
            f"    time link: highlight median {link['time_link_ms_median']:.1f} ms "
            f"(max {link['time_link_ms_max']:.1f}); whole slider move median "
            f"{link['slider_move_ms_median']:.1f} ms",
            flush=True,
        )
    QApplication.processEvents()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
