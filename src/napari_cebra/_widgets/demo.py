"""``launch_demo()``: napari with the synthetic calcium-imaging sample and Train CEBRA docked."""

from __future__ import annotations

from typing import Any

PLUGIN = "napari-cebra"
DEMO_SAMPLE = "calcium_imaging"
TRAIN_WIDGET = "Train CEBRA"


def open_demo(viewer: Any) -> Any:
    """Load the calcium-imaging sample into ``viewer`` and dock the Train CEBRA widget.

    Returns
    -------
    TrainWidget
        The docked widget, with the sample's movie, ROIs and behaviour already chosen.
    """
    layers = viewer.open_sample(PLUGIN, DEMO_SAMPLE)
    viewer.layers.selection.active = layers[0]  # the movie: its contrast controls are shown
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, TRAIN_WIDGET)
    return widget


def launch_demo(run: bool = True) -> Any:
    """Open napari with the sample recording loaded and the Train CEBRA widget docked.

    Parameters
    ----------
    run : bool
        Start the Qt event loop (blocks until the window is closed). ``False`` returns at once,
        for scripts and tests that drive the viewer themselves.

    Returns
    -------
    napari.Viewer
    """
    import napari

    viewer = napari.Viewer(title="napari-cebra demo")
    open_demo(viewer)
    if run:
        napari.run()
    return viewer
