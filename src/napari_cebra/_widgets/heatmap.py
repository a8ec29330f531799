"""An annotated heatmap with a colour bar, painted with Qt's ``QPainter`` inside a widget.

Made for consistency matrices: entry ``[a, b]`` is the R² of a linear fit from embedding ``a`` to
embedding ``b``. Cells show the value in percent with one decimal; NaN cells (the diagonal, pairs
that were not compared) stay blank. Rows are the predicting embedding, columns the predicted one.
Painted by Qt like the line plots (no OpenGL context per map, see ``line_plot``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QLinearGradient, QPainter
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_cebra._widgets.plot_theme import (
    DARK_FALLBACK,
    PaintedCanvas,
    PlotColours,
    follow_theme,
)

COLORMAP = "viridis"
LIMITS = (0.0, 100.0)  # percent; fixed so that train and validation maps read alike
SHORT_LABEL = 8  # longer axis labels are replaced by numbers explained under the map
ROW_LABEL_PX = 64
COLUMN_LABEL_PX = 22
COLORBAR_PX = 84


def cell_texts(percent: np.ndarray) -> list[list[str]]:
    """Annotation of every cell: one decimal, empty for NaN."""
    return [["" if np.isnan(value) else f"{value:.1f}" for value in row] for row in percent]


def cell_colours(percent: np.ndarray, limits: tuple[float, float] = LIMITS) -> np.ndarray:
    """``(k, k, 4)`` RGBA colours of the cells; NaN cells are fully transparent."""
    from vispy.color import get_colormap

    low, high = limits
    scaled = np.clip((np.nan_to_num(percent, nan=low) - low) / (high - low), 0.0, 1.0)
    rgba = get_colormap(COLORMAP).map(scaled.reshape(-1, 1)).reshape(*percent.shape, 4)
    rgba[np.isnan(percent)] = 0.0
    return rgba.astype(np.float32)


@functools.cache
def colorbar_stops(n_stops: int = 9) -> tuple[tuple[float, tuple[float, ...]], ...]:
    """``(position 0–1, RGBA)`` stops of the colour bar's gradient (computed once)."""
    from vispy.color import get_colormap

    positions = np.linspace(0.0, 1.0, n_stops)
    colours = get_colormap(COLORMAP).map(positions.reshape(-1, 1))
    return tuple(
        (float(p), tuple(float(v) for v in rgba))
        for p, rgba in zip(positions, colours, strict=True)
    )


def text_colours(rgba: np.ndarray) -> np.ndarray:
    """Black on light cells, white on dark ones (``(k·k, 4)``, row-major)."""
    flat = rgba.reshape(-1, 4)
    luminance = flat[:, :3] @ np.array([0.299, 0.587, 0.114])
    colours = np.ones((len(flat), 4), dtype=np.float32)
    colours[luminance > 0.55, :3] = 0.0
    return colours


def axis_labels(names: Sequence[str]) -> tuple[list[str], str]:
    """Tick labels and a key: the names themselves if short, else ``1 … k`` and ``"1 = name"``."""
    names = [str(name) for name in names]
    if all(len(name) <= SHORT_LABEL for name in names):
        return names, ""
    ticks = [str(i + 1) for i in range(len(names))]
    key = ",  ".join(f"{tick} = {name}" for tick, name in zip(ticks, names, strict=True))
    return ticks, key


class _HeatmapCanvas(PaintedCanvas):
    """The painted part of a :class:`Heatmap`."""

    def __init__(self, heatmap: Heatmap, height: int) -> None:
        super().__init__(heatmap, height)
        self.heatmap = heatmap

    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt name)
        """Paint cells, their values, the row/column labels and the colour bar."""
        heatmap = self.heatmap
        painter, text, metrics = self.start_painting(heatmap.colours)
        k = len(heatmap.matrix)
        side = min(
            self.width() - ROW_LABEL_PX - COLORBAR_PX - 8, self.height() - COLUMN_LABEL_PX - 8
        )
        if k and side > 10:
            cell = side / k
            left, top = ROW_LABEL_PX + 4, 4
            rgba = cell_colours(heatmap.percent)
            labels = text_colours(rgba).reshape(k, k, 4)
            texts = heatmap.annotations()
            ticks, _ = axis_labels(heatmap.names)
            for row in range(k):
                for column in range(k):
                    area = QRectF(left + column * cell, top + row * cell, cell, cell)
                    if rgba[row, column, 3] > 0:
                        painter.fillRect(area, QColor.fromRgbF(*rgba[row, column]))
                    if texts[row][column] and cell > 2.2 * metrics.height():
                        painter.setPen(QColor.fromRgbF(*labels[row, column]))
                        painter.drawText(area, Qt.AlignCenter, texts[row][column])
                painter.setPen(text)
                label_area = QRectF(0, top + row * cell, ROW_LABEL_PX, cell)
                painter.drawText(label_area, Qt.AlignRight | Qt.AlignVCenter, ticks[row])
                column_area = QRectF(left + row * cell, top + side + 2, cell, COLUMN_LABEL_PX)
                painter.drawText(column_area, Qt.AlignHCenter | Qt.AlignTop, ticks[row])
        self._paint_colorbar(painter, text, metrics)
        painter.end()

    def _paint_colorbar(self, painter: QPainter, text: QColor, metrics: object) -> None:
        low, high = LIMITS
        bar = QRectF(self.width() - COLORBAR_PX + 4, 8, 14, self.height() - 16 - COLUMN_LABEL_PX)
        gradient = QLinearGradient(bar.bottomLeft(), bar.topLeft())
        for stop, rgba in colorbar_stops():
            gradient.setColorAt(stop, QColor.fromRgbF(*rgba))
        painter.fillRect(bar, gradient)
        painter.setPen(text)
        for value in np.linspace(low, high, 5):
            y = bar.bottom() - (value - low) / (high - low) * bar.height()
            painter.drawText(QPointF(bar.right() + 4, y + metrics.ascent() / 2 - 1), f"{value:g}")
        painter.save()
        painter.translate(self.width() - 6, bar.center().y())
        painter.rotate(-90)
        label = self.heatmap.colorbar_label
        painter.drawText(QPointF(-metrics.horizontalAdvance(label) / 2, 0), label)
        painter.restore()


class Heatmap(QWidget):
    """Square matrix as coloured, annotated cells with row/column labels and a colour bar.

    Parameters
    ----------
    title : str
        Text above the map.
    colorbar_label : str
        Label of the colour bar.
    height : int
        Minimum canvas height in pixels.
    parent : QWidget, optional
        Qt parent.
    """

    def __init__(
        self,
        title: str = "",
        colorbar_label: str = "consistency (%)",
        height: int = 230,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.matrix = np.zeros((0, 0))
        self.names: list[str] = []
        self.colorbar_label = colorbar_label
        self.colours: PlotColours | None = None
        self.canvas = _HeatmapCanvas(self, height)
        self.title = QLabel(title, self)
        self.title.setVisible(bool(title))
        self.key = QLabel(self)
        self.key.setWordWrap(True)
        self.key.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(self.key)
        follow_theme(self, self.apply_theme)

    def apply_theme(self, colours: PlotColours) -> None:
        """Draw with ``colours`` (napari's theme now and after every theme change)."""
        self.colours = colours
        self.canvas.update()

    @property
    def background(self) -> str:
        """The canvas' background colour (the theme's panel background)."""
        return (self.colours or DARK_FALLBACK).background

    @property
    def percent(self) -> np.ndarray:
        """The values drawn: ``100 ×`` the matrix."""
        return 100.0 * self.matrix

    def annotations(self) -> list[list[str]]:
        """The text of every cell, row by row (``""`` for blank cells)."""
        return cell_texts(self.percent)

    def set_title(self, title: str) -> None:
        """Change the text above the map (empty hides it)."""
        self.title.setText(title)
        self.title.setVisible(bool(title))

    def clear(self) -> None:
        """Show an empty map."""
        self.matrix = np.zeros((0, 0))
        self.names = []
        self.key.setVisible(False)
        self.canvas.update()

    def set_matrix(self, matrix: np.ndarray, names: Sequence[str]) -> None:
        """Show ``matrix`` (fractions, e.g. R²; NaN = blank) with row/column ``names``.

        Raises
        ------
        ValueError
            If ``matrix`` is not square or ``names`` does not have one name per row.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
            raise ValueError(
                f"matrix must be a non-empty square 2-D array, got shape {matrix.shape}"
            )
        if len(names) != len(matrix):
            raise ValueError(
                f"names has {len(names)} entries but matrix of shape {matrix.shape} needs "
                f"{len(matrix)}: {list(names)}"
            )
        self.matrix = matrix.copy()
        self.names = [str(name) for name in names]
        _, key = axis_labels(self.names)
        self.key.setText(key)
        self.key.setVisible(bool(key))
        self.canvas.update()
