"""Selecting frames of a 100,000-frame embedding in the CEBRA selection dock, under load.

Run under Xvfb (or on a desktop)::

    xvfb-run -a -s "-screen 0 1920x1200x24" python benchmarks/bench_selection.py

A real viewer (1,700 × 1,050) with a 100,000-frame movie and a 100,000-point embedding; the
selection dock selects a third to two thirds of the frames three times (by position), then the
time slider is moved 20 times with the selection shown. A 15 ms QTimer measures the event loop's
worst gap (the freeze a user feels). Prints, per selection, the end-to-end time (the dock's work
and one pass of the event loop, i.e. the repaint) and the worst stall, and the slider moves'
median time and worst stall.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def wait(seconds: float) -> None:
    """Run the Qt event loop for ``seconds``."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_cebra._widgets.embedding_view import embedding_view
    from napari_cebra._widgets.selection_widget import SelectionWidget

    n = args.frames
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1700, 1050)
    viewer.add_image(np.zeros((n, 32, 32), dtype=np.uint8), name="movie")
    view = embedding_view(viewer)
    embedding = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    position = np.abs(np.sin(np.arange(n) / 400)) * 1.6
    features = pd.DataFrame({"position": position})
    view.add_embedding(embedding, name="embedding", features=features, time_layer="movie")
    widget = SelectionWidget(viewer)
    viewer.window.add_dock_widget(widget, area="left")
    wait(1.0)

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    widget.set_selection(np.flatnonzero(position < 0.5))  # the markers' layer and shaders
    wait(1.0)
    probe = QTimer()
    probe.timeout.connect(tick)
    probe.start(15)
    for low, high in [(0.0, 0.8), (0.8, 1.6), (0.2, 1.0)]:
        gaps.clear()
        last[0] = start = time.perf_counter()
        widget.set_selection(np.flatnonzero((position >= low) & (position <= high)))
        python = 1000 * (time.perf_counter() - start)
        QApplication.processEvents()
        took = 1000 * (time.perf_counter() - start)
        wait(0.5)
        print(
            f"selected {len(widget.selected_frames()):,} of {n:,} frames: end to end "
            f"{took:.0f} ms ({python:.0f} ms in the dock's Python, the rest the repaint), "
            f"worst stall {1000 * max(gaps):.0f} ms"
        )
    gaps.clear()
    last[0] = time.perf_counter()
    moves = []
    for frame in np.linspace(n * 0.1, n * 0.9, 20).astype(int):
        start = time.perf_counter()
        viewer.dims.set_current_step(0, int(frame))
        moves.append(1000 * (time.perf_counter() - start))
        wait(0.05)
    print(
        f"slider move with a selection shown: median {statistics.median(moves):.0f} ms, "
        f"worst stall {1000 * max(gaps):.0f} ms"
    )
    probe.stop()
    viewer.close()


if __name__ == "__main__":
    main()
