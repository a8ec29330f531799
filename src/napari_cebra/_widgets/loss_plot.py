"""Live loss curves (positive, negative and total InfoNCE terms) drawn with vispy inside a widget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

CURVES = {  # name -> colour (colour-blind safe)
    "total": "#f0f0f0",
    "pos": "#56b4e9",
    "neg": "#e69f00",
}
BACKGROUND = "#262930"  # napari's dark theme background
REDRAW_MS = 100


class LossPlot(QWidget):
    """A vispy ``SceneCanvas`` with axes and one Line visual per loss term.

    The total loss is always drawn; the positive and negative terms when ``show_terms`` is ticked.

    Records are appended with :meth:`append` (cheap); the lines are redrawn at most every
    ``REDRAW_MS`` milliseconds so that training at hundreds of steps per second does not load the
    GUI thread.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from vispy import scene

        self.canvas = scene.SceneCanvas(keys=None, size=(320, 200), bgcolor=BACKGROUND)
        grid = self.canvas.central_widget.add_grid(spacing=0)
        self.view = grid.add_view(row=0, col=1, border_color="#5a5f66")
        self.view.camera = scene.PanZoomCamera(aspect=None, interactive=False)
        axis_style = {"axis_color": "#c8c8c8", "tick_color": "#c8c8c8", "text_color": "#e0e0e0"}
        y_axis = scene.AxisWidget(
            orientation="left", axis_label="InfoNCE loss", axis_font_size=8, **axis_style
        )
        y_axis.width_max = 60
        x_axis = scene.AxisWidget(
            orientation="bottom", axis_label="step", axis_font_size=8, **axis_style
        )
        x_axis.height_max = 40
        grid.add_widget(y_axis, row=0, col=0)
        grid.add_widget(x_axis, row=1, col=1)
        right_margin = grid.add_widget(row=0, col=2)  # room for the last x tick label
        right_margin.width_max = 16
        y_axis.link_view(self.view)
        x_axis.link_view(self.view)
        self.lines = {
            name: scene.Line(
                pos=np.zeros((2, 2), dtype=np.float32),
                color=colour,
                width=2,
                parent=self.view.scene,
            )
            for name, colour in CURVES.items()
        }
        self.legend = QLabel(self)
        self.show_terms = QCheckBox("pos / neg terms", self)
        self.show_terms.setToolTip(
            "Also draw the positive and negative InfoNCE terms (total = pos + neg); off, the "
            "axis fits the total loss so its decrease is easier to read."
        )
        self.show_terms.toggled.connect(self.redraw)
        legend_row = QHBoxLayout()
        legend_row.addWidget(self.legend, stretch=1)
        legend_row.addWidget(self.show_terms)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas.native)
        layout.addLayout(legend_row)
        self.canvas.native.setMinimumHeight(180)
        self._steps: list[float] = []
        self._values: dict[str, list[float]] = {name: [] for name in CURVES}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.redraw)
        self.clear()

    @property
    def n_points(self) -> int:
        """Number of records appended since the last :meth:`clear`."""
        return len(self._steps)

    def clear(self) -> None:
        """Forget all records and show empty axes."""
        self._steps.clear()
        for values in self._values.values():
            values.clear()
        self.redraw()

    def append(self, step: int, pos: float, neg: float, total: float) -> None:
        """Add one training record and schedule a redraw."""
        self.extend([step], [pos], [neg], [total])

    def extend(
        self,
        steps: Sequence[float] | np.ndarray,
        pos: Sequence[float] | np.ndarray,
        neg: Sequence[float] | np.ndarray,
        total: Sequence[float] | np.ndarray,
    ) -> None:
        """Add the records of several steps at once and schedule a redraw."""
        self._steps.extend(float(s) for s in steps)
        for name, values in (("pos", pos), ("neg", neg), ("total", total)):
            self._values[name].extend(float(v) for v in values)
        if not self._timer.isActive():
            self._timer.start(REDRAW_MS)

    def curve(self, name: str) -> np.ndarray:
        """``(n, 2)`` (step, value) points of curve ``name`` as last drawn or appended."""
        return np.column_stack([self._steps, self._values[name]]).astype(np.float32)

    def redraw(self, _checked: bool = False) -> None:
        """Push the records to the Line visuals and fit the view to them."""
        if len(self._steps) < 2:
            for line in self.lines.values():
                line.visible = False
            self.view.camera.set_range(x=(0, 1), y=(0, 1), margin=0)
            self.legend.setText(self._legend_html())
            return
        low, high = np.inf, -np.inf
        for name, line in self.lines.items():
            line.visible = name == "total" or self.show_terms.isChecked()
            if not line.visible:
                continue
            points = self.curve(name)
            line.set_data(pos=points)
            low, high = min(low, points[:, 1].min()), max(high, points[:, 1].max())
        pad = max(1e-3, 0.05 * (high - low))
        self.view.camera.set_range(
            x=(self._steps[0], self._steps[-1]), y=(low - pad, high + pad), margin=0
        )
        self.legend.setText(self._legend_html())

    def _legend_html(self) -> str:
        parts = []
        for name, colour in CURVES.items():
            values = self._values[name]
            last = f" {values[-1]:.3f}" if values else ""
            parts.append(f"<span style='color:{colour}'>━ {name}{last}</span>")
        step = f"step {int(self._steps[-1])}" if self._steps else "no training yet"
        return "&nbsp;&nbsp;".join([*parts, step])
