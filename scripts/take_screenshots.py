"""Regenerate the workspace screenshots of ``docs/images/`` (on request only, never by the tests).

Opens the demo (calcium sample + Train CEBRA), trains CEBRA-Time for a few hundred steps and
saves the whole window during training and with the embedding next to the movie, at a desktop
size and at a laptop size; then opens the neurons × time sample (its raster) in a laptop-size window::

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/take_screenshots.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
SIZES = {"workspace-1700x1050.png": (1700, 1050), "workspace-1366x768.png": (1366, 768)}


def wait(seconds: float) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(1000 * seconds), loop.quit)
    loop.exec()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--out", default=str(IMAGES))
    args = parser.parse_args()
    import napari

    from napari_cebra._widgets.demo import open_demo

    viewer = napari.Viewer(title="napari-cebra")
    window = viewer.window._qt_window  # noqa: SLF001 - sizing napari's own window for pictures
    window.showNormal()
    window.resize(*SIZES["workspace-1700x1050.png"])
    wait(1.0)
    widget = open_demo(viewer)
    widget.params.max_iterations.value = args.iterations
    wait(1.0)
    widget.train_button.click()
    while widget.loss_plot.n_points < args.iterations // 3 and widget.runner.running:
        wait(0.2)  # mid-run: the progress bar and the live loss curve
    widget.loss_plot.redraw()  # its throttled redraw may not have come yet: training is fast
    target = Path(args.out) / "getting-started-2-training.png"
    viewer.screenshot(path=str(target), canvas_only=False)
    print(f"written {target}")
    while widget.runner.running:
        wait(0.2)
    wait(1.5)
    viewer.dims.set_current_step(0, 1200)
    from napari_cebra._widgets.embedding_view import embedding_view

    for name, size in SIZES.items():
        window.resize(*size)
        wait(0.5)
        embedding_view(viewer).fit_column()  # the column's width and both cameras, as at landing
        wait(1.5)
        target = Path(args.out) / name
        viewer.screenshot(path=str(target), canvas_only=False)
        print(f"written {target}")
    viewer.close()
    viewer = napari.Viewer(title="napari-cebra")
    window = viewer.window._qt_window  # noqa: SLF001
    window.showNormal()
    window.resize(*SIZES["workspace-1366x768.png"])
    viewer.open_sample("napari-cebra", "place_cells")
    viewer.layers["behaviour"].visible = True
    viewer.reset_view()
    wait(1.5)
    target = Path(args.out) / "raster-1366x768.png"
    viewer.screenshot(path=str(target), canvas_only=False)
    print(f"written {target}")
    viewer.close()


if __name__ == "__main__":
    main()
