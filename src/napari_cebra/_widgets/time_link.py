"""Frame index ↔ main-viewer dims position, through the layer whose first axis is time."""

from __future__ import annotations

from typing import Any

import numpy as np


def time_axis(viewer: Any, layer: Any) -> int:
    """World axis of the viewer that holds ``layer``'s first (time) axis."""
    return int(viewer.dims.ndim - layer.ndim)


def frame_at_current_step(viewer: Any, layer: Any) -> int | None:
    """Frame of ``layer`` at the viewer's current position; ``None`` if time is displayed.

    When the time axis is one of the displayed axes (e.g. a 2-D time × neurons image) there is
    no current frame.
    """
    axis = time_axis(viewer, layer)
    if axis < 0 or axis in viewer.dims.displayed:
        return None
    data_position = layer.world_to_data(np.asarray(viewer.dims.point))
    return int(np.rint(data_position[0]))


def go_to_frame(viewer: Any, layer: Any, frame: int) -> None:
    """Move the viewer's time slider to ``layer``'s frame ``frame``."""
    axis = time_axis(viewer, layer)
    if axis < 0 or axis in viewer.dims.displayed:
        return
    position = np.zeros(layer.ndim)
    position[0] = frame
    viewer.dims.set_point(axis, float(layer.data_to_world(position)[0]))
