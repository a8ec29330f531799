"""A generic multi-curve line plot drawn with vispy inside a Qt widget.

Used by the goodness-of-fit, shuffle-control, consistency and sweep widgets: named curves with
their own colours, axes with labels, a legend under the canvas that shows each curve's last value,
optional horizontal reference lines (e.g. "0 bits"), curves that can be hidden, colours that
follow napari's theme, and redraws throttled so that appending hundreds of points per second does
not load the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_cebra._widgets.plot_theme import FOREGROUND, PlotColours, follow_theme

REFERENCE_COLOUR = (0.54, 0.56, 0.59, 1.0)  # grey, RGBA (InfiniteLine needs floats)
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
        from vispy import scene

        self._scene = scene
        self.canvas = scene.SceneCanvas(keys=None, size=(320, height))
        grid = self.canvas.central_widget.add_grid(spacing=0)
        self.view = grid.add_view(row=0, col=1)
        self.view.camera = scene.PanZoomCamera(aspect=None, interactive=False)
        axis_style = {"axis_font_size": 8, "tick_font_size": 7}
        self.y_axis = scene.AxisWidget(orientation="left", axis_label=y_label, **axis_style)
        self.y_axis.width_max = 62
        self.x_axis = scene.AxisWidget(orientation="bottom", axis_label=x_label, **axis_style)
        self.x_axis.height_max = 40
        grid.add_widget(self.y_axis, row=0, col=0)
        grid.add_widget(self.x_axis, row=1, col=1)
        self.y_axis.link_view(self.view)
        self.x_axis.link_view(self.view)
        for widget in (self.x_axis, self.y_axis, self.view):
            widget.events.resize.connect(self._sync_axes)

        self.title = QLabel(title, self)
        self.title.setVisible(bool(title))
        self.legend = QLabel(self)
        self.legend.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas.native)
        layout.addWidget(self.legend)
        self.canvas.native.setMinimumHeight(height)

        self._curves: dict[str, Curve] = {}
        self._visuals: dict[str, tuple[object, object]] = {}
        self._spare: list[tuple[object, object]] = []
        self._references: dict[float, object] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.redraw)
        self.colours: PlotColours | None = None
        follow_theme(self, self.apply_theme)

    def apply_theme(self, colours: PlotColours) -> None:
        """Draw with ``colours`` (called with napari's theme now and on every theme change)."""
        self.colours = colours
        self.canvas.bgcolor = colours.background
        self.view.border_color = colours.border
        for axis in (self.x_axis.axis, self.y_axis.axis):
            axis.axis_color = axis.tick_color = colours.axis
            axis.text_color = colours.text
        self.redraw()

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
            self._visuals[name] = self._make_visuals()
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

    def append(self, name: str, x: float, y: float) -> None:
        """Add one point to curve ``name`` (created with the next palette colour if new)."""
        self.extend_curve(name, [x], [y])

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

    def curve_visible(self, name: str) -> bool:
        """Whether curve ``name`` is shown (see :meth:`set_visible`)."""
        return self._get(name).visible

    def set_visible(self, name: str, visible: bool) -> None:
        """Show or hide curve ``name``; hidden curves do not count for the axes' range."""
        self._get(name).visible = bool(visible)
        self.redraw()

    def remove_curve(self, name: str) -> None:
        """Delete curve ``name``; unknown names are ignored."""
        if name not in self._curves:
            return
        del self._curves[name]
        visuals = self._visuals.pop(name)
        for visual in visuals:
            visual.visible = False
        self._spare.append(visuals)  # reused: a new visual compiles its shaders on first draw
        self._schedule()

    def clear(self) -> None:
        """Delete every curve and reference line and show empty axes."""
        for name in self.names:
            self.remove_curve(name)
        for value in list(self._references):
            self._references.pop(value).parent = None
        self.redraw()

    def set_reference_lines(self, values: Sequence[float]) -> None:
        """Draw dotted horizontal lines at ``values`` (e.g. ``[0.0]`` for "0 bits")."""
        for value in list(self._references):
            self._references.pop(value).parent = None
        for value in values:
            line = self._scene.InfiniteLine(
                pos=float(value),
                color=REFERENCE_COLOUR,
                vertical=False,
                parent=self.view.scene,
            )
            line.order = -1
            self._references[float(value)] = line
        self._schedule()

    def set_labels(self, x_label: str | None = None, y_label: str | None = None) -> None:
        """Change the axis labels."""
        if x_label is not None:
            self.x_axis.axis.axis_label = x_label
        if y_label is not None:
            self.y_axis.axis.axis_label = y_label
        self.canvas.update()

    def set_title(self, title: str) -> None:
        """Change the text above the canvas (empty hides it)."""
        self.title.setText(title)
        self.title.setVisible(bool(title))

    # ---------------------------------------------------------------- drawing
    def redraw(self) -> None:
        """Push all curves to their visuals, fit the view to them and update the legend."""
        self._timer.stop()
        x_range, y_range = self._data_range()
        for name, entry in self._curves.items():
            line, dots = self._visuals[name]
            points = entry.points().astype(np.float32)
            colour = self.colour(name)
            line.visible = entry.visible and len(points) >= 2
            if line.visible:
                line.set_data(pos=points, color=colour)
            dots.visible = (
                entry.visible and len(points) >= 1 and (entry.markers or len(points) == 1)
            )
            if dots.visible:
                dots.set_data(points, face_color=colour, edge_width=0, size=7)
        self.view.camera.set_range(x=x_range, y=y_range, margin=0)
        self._sync_axes()
        self.legend.setText(self.legend_html())

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
        """Padded x and y ranges covering every curve and reference line."""
        points = [entry.points() for entry in self._curves.values() if entry.visible]
        points = np.concatenate([p for p in points if len(p)] or [np.zeros((0, 2))])
        ys = np.concatenate([points[:, 1], list(self._references)])
        if len(points) == 0:
            x_low, x_high = 0.0, 1.0
        else:
            x_low, x_high = float(points[:, 0].min()), float(points[:, 0].max())
        y_low, y_high = (float(ys.min()), float(ys.max())) if len(ys) else (0.0, 1.0)
        x_pad = max(0.5 if x_low == x_high else 0.0, 0.02 * (x_high - x_low))
        y_pad = max(1e-3, 0.08 * (y_high - y_low), 0.5 if y_low == y_high else 0.0)
        return (x_low - x_pad, x_high + x_pad), (y_low - y_pad, y_high + y_pad)

    def _sync_axes(self, _event: object = None) -> None:
        """Make the tick labels show the camera's range.

        vispy's axes recompute their range only when the view's transform changes, using their own
        size at that moment; when an axis is resized after the view (first layout, dock resize)
        its tick labels would stay stale, so the domains are also set here.
        """
        rect = self.view.camera.rect
        self.x_axis.axis.domain = (rect.left, rect.right)
        self.y_axis.axis.domain = (rect.bottom, rect.top)

    def _make_visuals(self) -> tuple[object, object]:
        if self._spare:
            return self._spare.pop()
        line = self._scene.Line(pos=np.zeros((2, 2), dtype=np.float32), width=2)
        line.parent = self.view.scene
        dots = self._scene.Markers(parent=self.view.scene)
        dots.set_data(np.zeros((1, 2), dtype=np.float32), size=7)  # empty markers have no bounds
        line.visible = dots.visible = False
        return line, dots

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start(REDRAW_MS)

    def _get(self, name: str) -> Curve:
        try:
            return self._curves[name]
        except KeyError:
            raise KeyError(f"No curve {name!r} in this plot; curves: {self.names}") from None
