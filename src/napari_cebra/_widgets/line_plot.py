"""A generic multi-curve line plot, painted with Qt's ``QPainter`` inside a widget.

Used by the goodness-of-fit, shuffle-control, consistency and sweep widgets: named curves with
their own colours, axes with labels, a legend under the canvas that shows each curve's last value,
optional horizontal reference lines (e.g. "0 bits"), curves that can be hidden, colours that
follow napari's theme, and redraws throttled so that appending hundreds of points per second does
not load the GUI thread.

Why not a vispy canvas: each vispy canvas is an OpenGL context whose creation, shader compilation
and glyph rendering cost the GUI thread ~1 s when a dock opens and again on its first draw, and
~25 ms of Python per redraw; without a GPU that was most of the stall of opening Train CEBRA and
of the first training run. A few thousand points painted by Qt take a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainterPath, QPen
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_cebra._widgets.plot_theme import (
    DARK_FALLBACK,
    FOREGROUND,
    PaintedCanvas,
    PlotColours,
    follow_theme,
)

REFERENCE_COLOUR = "#8a8f96"  # grey
MARGINS = (58, 10, 14, 36)  # left, top, right, bottom: room for tick labels and axis labels
REDRAW_MS = 100
# Okabe–Ito colours (colour-blind safe), used in turn for curves added without a colour.
PALETTE = (
    "#56b4e9",
    "#e69f00",
    "#009e73",
    "#f0e442",
    "#cc79a7",
    "#0072b2",
    "#d55e00",
    FOREGROUND,
)


@dataclass
class Curve:
    """One named curve: its points, colour and how it is drawn.

    Attributes
    ----------
    name : str
        Legend text (unique within a plot).
    colour : str
        Hex colour, or :data:`~napari_cebra._widgets.plot_theme.FOREGROUND` for the theme's
        text colour.
    x, y : list of float
        The points, in the order they were given.
    markers : bool
        Also draw a dot at every point (useful for curves with few points).
    fmt : str
        Format of the last value shown in the legend (``""`` hides it).
    visible : bool
        Drawn and included in the axes' range (the legend always lists it).
    """

    name: str
    colour: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    markers: bool = False
    fmt: str = ".3f"
    visible: bool = True

    def points(self) -> np.ndarray:
        """``(n, 2)`` float64 array of the finite points."""
        data = np.column_stack([self.x, self.y]).astype(np.float64).reshape(-1, 2)
        return data[np.isfinite(data).all(axis=1)]


def nice_ticks(low: float, high: float, target: int = 5) -> np.ndarray:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside ``[low, high]``."""
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return np.array([low])
    raw = span / max(1, target)
    power = 10.0 ** np.floor(np.log10(raw))
    step = power * min((m for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw), default=10.0)
    first = np.ceil(low / step) * step
    ticks = np.arange(first, high + 0.5 * step * 1e-6, step)
    return ticks[(ticks >= low - 1e-9 * span) & (ticks <= high + 1e-9 * span)]


def tick_label(value: float, step: float) -> str:
    """A tick value with as many decimals as the spacing of the ticks needs."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2g}"
    decimals = max(0, -int(np.floor(np.log10(step)))) if step > 0 else 0
    return f"{value:.{decimals}f}"


def envelope(pixels: np.ndarray, width: int) -> np.ndarray:
    """At most ~4 points per pixel column: a long curve as the low and high of each column
    (what a full-resolution line would cover), a short one unchanged."""
    if len(pixels) <= 4 * max(width, 1):
        return pixels
    edges = np.linspace(0, len(pixels), 2 * max(width, 1) + 1).astype(np.int64)
    starts = np.unique(edges[:-1])
    low = np.minimum.reduceat(pixels[:, 1], starts)
    high = np.maximum.reduceat(pixels[:, 1], starts)
    x = pixels[starts, 0]
    return np.column_stack([np.repeat(x, 2), np.column_stack([low, high]).ravel()])


class _Canvas(PaintedCanvas):
    """The painted part of a :class:`LinePlot`: frame, ticks, labels, reference lines, curves."""

    def __init__(self, plot: LinePlot, height: int) -> None:
        super().__init__(plot, height)
        self.plot = plot

    def data_rect(self) -> QRectF:
        left, top, right, bottom = MARGINS
        return QRectF(left, top, self.width() - left - right, self.height() - top - bottom)

    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt name)
        """Paint the plot with the plot's current ranges and colours."""
        plot = self.plot
        painter, text, metrics = self.start_painting(plot.colours)
        axis = QColor((plot.colours or DARK_FALLBACK).axis)
        rect = self.data_rect()
        if rect.width() < 10 or rect.height() < 10:
            painter.end()
            return
        (x_low, x_high), (y_low, y_high) = plot.x_range, plot.y_range

        def to_pixels(points: np.ndarray) -> np.ndarray:
            x = rect.left() + (points[:, 0] - x_low) / (x_high - x_low) * rect.width()
            y = rect.bottom() - (points[:, 1] - y_low) / (y_high - y_low) * rect.height()
            return np.column_stack([x, y])

        painter.setPen(QPen(axis, 1))
        painter.drawRect(rect)
        for value in (ticks := nice_ticks(x_low, x_high)):
            x = rect.left() + (value - x_low) / (x_high - x_low) * rect.width()
            painter.setPen(QPen(axis, 1))
            painter.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + 4))
            label = tick_label(value, ticks[1] - ticks[0] if len(ticks) > 1 else 1.0)
            painter.setPen(text)
            width = metrics.horizontalAdvance(label)
            painter.drawText(QPointF(x - width / 2, rect.bottom() + 5 + metrics.ascent()), label)
        for value in (ticks := nice_ticks(y_low, y_high)):
            y = rect.bottom() - (value - y_low) / (y_high - y_low) * rect.height()
            painter.setPen(QPen(axis, 1))
            painter.drawLine(QPointF(rect.left() - 4, y), QPointF(rect.left(), y))
            label = tick_label(value, ticks[1] - ticks[0] if len(ticks) > 1 else 1.0)
            painter.setPen(text)
            width = metrics.horizontalAdvance(label)
            painter.drawText(QPointF(rect.left() - 6 - width, y + metrics.ascent() / 2 - 1), label)
        painter.setPen(text)
        x_label, y_label = plot.labels
        if x_label:
            width = metrics.horizontalAdvance(x_label)
            painter.drawText(
                QPointF(rect.center().x() - width / 2, self.height() - metrics.descent() - 1),
                x_label,
            )
        if y_label:
            painter.save()
            painter.translate(metrics.ascent() + 1, rect.center().y())
            painter.rotate(-90)
            painter.drawText(QPointF(-metrics.horizontalAdvance(y_label) / 2, 0), y_label)
            painter.restore()
        painter.setClipRect(rect)
        for value in plot.reference_values():
            y = rect.bottom() - (value - y_low) / (y_high - y_low) * rect.height()
            painter.setPen(QPen(QColor(REFERENCE_COLOUR), 1, Qt.DotLine))
            painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
        for name in plot.names:
            if not plot.curve_visible(name):
                continue
            points = plot.curve(name)
            if not len(points):
                continue
            pixels = envelope(to_pixels(points), int(rect.width()))
            colour = QColor(plot.colour(name))
            if len(pixels) >= 2:
                path = QPainterPath(QPointF(*pixels[0]))
                for x, y in pixels[1:]:
                    path.lineTo(x, y)
                painter.setPen(QPen(colour, 1.6))
                painter.setBrush(Qt.NoBrush)
                painter.drawPath(path)
            if plot.has_markers(name) or len(pixels) == 1:
                painter.setPen(Qt.NoPen)
                painter.setBrush(colour)
                for x, y in pixels:
                    painter.drawEllipse(QPointF(x, y), 3.5, 3.5)
        painter.end()


class LinePlot(QWidget):
    """Named curves on shared axes, with a legend and throttled redraws.

    Parameters
    ----------
    x_label, y_label : str
        Axis labels.
    title : str
        Text above the canvas (empty for none).
    height : int
        Minimum canvas height in pixels.
    parent : QWidget, optional
        Qt parent.

    Examples
    --------
    >>> plot = LinePlot(x_label="step", y_label="GoF (bits)")  # doctest: +SKIP
    >>> plot.set_curve("train", steps, gof_train)  # doctest: +SKIP
    >>> plot.append("valid", 500, 1.2)  # doctest: +SKIP
    """

    def __init__(
        self,
        x_label: str = "",
        y_label: str = "",
        title: str = "",
        height: int = 180,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.labels = (x_label, y_label)
        self.x_range: tuple[float, float] = (0.0, 1.0)
        self.y_range: tuple[float, float] = (0.0, 1.0)
        self.colours: PlotColours | None = None
        self._curves: dict[str, Curve] = {}
        self._references: list[float] = []
        self.canvas = _Canvas(self, height)
        self.title = QLabel(title, self)
        self.title.setVisible(bool(title))
        self.legend = QLabel(self)
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, stretch=1)
        layout.addWidget(self.legend)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.redraw)
        follow_theme(self, self.apply_theme)

    def apply_theme(self, colours: PlotColours) -> None:
        """Draw with ``colours`` (called with napari's theme now and on every theme change)."""
        self.colours = colours
        self.redraw()

    @property
    def background(self) -> str:
        """The canvas' background colour (the theme's panel background)."""
        return (self.colours or DARK_FALLBACK).background

    # ----------------------------------------------------------------- curves
    @property
    def names(self) -> list[str]:
        """Curve names in the order they were added."""
        return list(self._curves)

    def curve(self, name: str) -> np.ndarray:
        """``(n, 2)`` (x, y) points of curve ``name`` (finite points only)."""
        return self._get(name).points()

    def colour(self, name: str) -> str:
        """Hex colour curve ``name`` is drawn in (the theme's text colour for ``FOREGROUND``)."""
        colour = self._get(name).colour
        return colour if self.colours is None else self.colours.resolve(colour)

    def has_markers(self, name: str) -> bool:
        """Whether curve ``name`` draws a dot at every point."""
        return self._get(name).markers

    def add_curve(
        self, name: str, colour: str | None = None, markers: bool = False, fmt: str = ".3f"
    ) -> None:
        """Create an empty curve (or restyle an existing one, keeping its points)."""
        if name in self._curves:
            entry = self._curves[name]
            entry.colour = colour or entry.colour
            entry.markers, entry.fmt = markers, fmt
        else:
            colour = colour or PALETTE[len(self._curves) % len(PALETTE)]
            self._curves[name] = Curve(name, colour, markers=markers, fmt=fmt)
        self._schedule()

    def set_curve(
        self,
        name: str,
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        colour: str | None = None,
        markers: bool = False,
        fmt: str = ".3f",
    ) -> None:
        """Replace the points of curve ``name`` (created if new).

        Raises
        ------
        ValueError
            If ``x`` and ``y`` have different lengths.
        """
        x = np.asarray(x, dtype=float).ravel()
        y = np.asarray(y, dtype=float).ravel()
        if x.shape != y.shape:
            raise ValueError(
                f"Curve {name!r}: x has {x.size} values but y has {y.size}; they must match."
            )
        self.add_curve(name, colour=colour, markers=markers, fmt=fmt)
        entry = self._curves[name]
        entry.x, entry.y = x.tolist(), y.tolist()
        self._schedule()

    def extend_curve(
        self, name: str, x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
    ) -> None:
        """Add several points to curve ``name`` (created with the next palette colour if new)."""
        if name not in self._curves:
            self.add_curve(name)
        entry = self._curves[name]
        entry.x.extend(float(v) for v in x)
        entry.y.extend(float(v) for v in y)
        self._schedule()

    def append(self, name: str, x: float, y: float) -> None:
        """Add one point to curve ``name`` (created with the next palette colour if new)."""
        self.extend_curve(name, [x], [y])

    def curve_visible(self, name: str) -> bool:
        """Whether curve ``name`` is shown (see :meth:`set_visible`)."""
        return self._get(name).visible

    def set_visible(self, name: str, visible: bool) -> None:
        """Show or hide curve ``name``; hidden curves do not count for the axes' range."""
        self._get(name).visible = bool(visible)
        self.redraw()

    def remove_curve(self, name: str) -> None:
        """Delete curve ``name``; unknown names are ignored."""
        if self._curves.pop(name, None) is not None:
            self._schedule()

    def clear(self) -> None:
        """Delete every curve and reference line and show empty axes."""
        self._curves.clear()
        self._references = []
        self.redraw()

    def set_reference_lines(self, values: Sequence[float]) -> None:
        """Draw dotted horizontal lines at ``values`` (e.g. ``[0.0]`` for "0 bits")."""
        self._references = [float(value) for value in values]
        self._schedule()

    def reference_values(self) -> list[float]:
        """The y values of the reference lines."""
        return list(self._references)

    def set_title(self, title: str) -> None:
        """Change the text above the canvas (empty hides it)."""
        self.title.setText(title)
        self.title.setVisible(bool(title))

    # ---------------------------------------------------------------- drawing
    def redraw(self) -> None:
        """Fit the axes to the visible curves, update the legend and repaint."""
        self._timer.stop()
        self.x_range, self.y_range = self._data_range()
        self.legend.setText(self.legend_html())
        self.canvas.update()

    def legend_html(self) -> str:
        """Legend text: a coloured line and the last value of every curve."""
        parts = []
        for entry in self._curves.values():
            finite = [v for v in entry.y if np.isfinite(v)]
            last = f" {format(finite[-1], entry.fmt)}" if finite and entry.fmt else ""
            colour = self.colour(entry.name)
            parts.append(f"<span style='color:{colour}'>━ {entry.name}{last}</span>")
        return "&nbsp;&nbsp; ".join(parts) if parts else "<i>nothing to show yet</i>"

    def _data_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Padded x and y ranges covering every visible curve and reference line."""
        points = [entry.points() for entry in self._curves.values() if entry.visible]
        points = np.concatenate([p for p in points if len(p)] or [np.zeros((0, 2))])
        ys = np.concatenate([points[:, 1], self._references])
        if len(points) == 0:
            x_low, x_high = 0.0, 1.0
        else:
            x_low, x_high = float(points[:, 0].min()), float(points[:, 0].max())
        y_low, y_high = (float(ys.min()), float(ys.max())) if len(ys) else (0.0, 1.0)
        x_pad = max(0.5 if x_low == x_high else 0.0, 0.02 * (x_high - x_low))
        y_pad = max(1e-3, 0.08 * (y_high - y_low), 0.5 if y_low == y_high else 0.0)
        return (x_low - x_pad, x_high + x_pad), (y_low - y_pad, y_high + y_pad)

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start(REDRAW_MS)

    def _get(self, name: str) -> Curve:
        try:
            return self._curves[name]
        except KeyError:
            raise KeyError(f"No curve {name!r} in this plot; curves: {self.names}") from None
