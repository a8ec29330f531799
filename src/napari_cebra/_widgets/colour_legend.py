"""A small legend under the embedding: a colour bar with its range, or one swatch per category."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import QLabel, QWidget

BAR_HEIGHT = 14
TEXT_WIDTH = 70


@dataclass
class Legend:
    """What to draw: a colormap with its value range, or category → RGBA colour."""

    colormap: str | None = None
    low: float = 0.0
    high: float = 1.0
    categories: dict[str, np.ndarray] = field(default_factory=dict)


class ColourLegend(QLabel):
    """Shows the column the points are coloured by, as a gradient bar or as swatches."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.column = ""
        self.legend = Legend()
        self.setMinimumHeight(BAR_HEIGHT + 8)
        self.setTextFormat(Qt.TextFormat.RichText)

    def show_legend(self, column: str, legend: Legend) -> None:
        """Show ``legend`` for the features column ``column``."""
        self.column, self.legend = column, legend
        if legend.colormap is None:
            swatches = "&nbsp;&nbsp;".join(
                f"<span style='color:{_hex(rgba)}'>■</span> {name}"
                for name, rgba in legend.categories.items()
            )
            self.setText(f"{column}: {swatches}")
        else:
            self.setText("")
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if self.legend.colormap is None:
            return
        from napari.utils.colormaps import ensure_colormap

        colormap = ensure_colormap(self.legend.colormap)
        painter = QPainter(self)
        width = self.width()
        bar = QRectF(TEXT_WIDTH, 4, max(10, width - 2 * TEXT_WIDTH - 8), BAR_HEIGHT)
        gradient = QLinearGradient(bar.left(), 0, bar.right(), 0)
        for stop in np.linspace(0, 1, 16):
            r, g, b, a = colormap.map(np.array([stop]))[0]
            gradient.setColorAt(float(stop), QColor.fromRgbF(r, g, b, a))
        painter.fillRect(bar, gradient)
        painter.setPen(self.palette().color(self.foregroundRole()))
        low = QRectF(0, 0, TEXT_WIDTH - 4, BAR_HEIGHT + 8)
        high = QRectF(bar.right() + 4, 0, TEXT_WIDTH + 8, BAR_HEIGHT + 8)
        align = Qt.AlignmentFlag.AlignVCenter
        painter.drawText(low, align | Qt.AlignmentFlag.AlignRight, f"{self.legend.low:.3g}")
        painter.drawText(high, align | Qt.AlignmentFlag.AlignLeft, f"{self.legend.high:.3g}")
        painter.end()
        self.setToolTip(f"colour = {self.column}")


def _hex(rgba: np.ndarray) -> str:
    r, g, b = (int(round(255 * float(c))) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"
