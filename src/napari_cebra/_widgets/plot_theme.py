"""What the plugin's plots share: napari's theme colours (light or dark) and a painted canvas.

The plots (loss curves, goodness of fit, consistency heatmaps) paint their own widgets, which
napari's stylesheet does not reach. :func:`follow_theme` gives a plot the theme's colours now and
again whenever the user switches theme (Preferences → Appearance), until the plot is deleted;
:class:`PaintedCanvas` is the base of their painted areas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qtpy.QtGui import QColor, QFont, QFontMetricsF, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_cebra._widgets.background import qt_alive

FOREGROUND = "foreground"
"""Colour name a curve can be given to be drawn in the theme's text colour (e.g. the total loss:
white on the dark theme, near-black on the light one)."""


@dataclass(frozen=True)
class PlotColours:
    """Hex colours of a plot.

    Attributes
    ----------
    background : str
        Canvas background (the theme's panel background, so the plot sits in its dock).
    text : str
        Axis labels, tick labels, annotations and :data:`FOREGROUND` curves.
    axis : str
        Axis lines and ticks.
    border : str
        Frame around the data area.
    """

    background: str
    text: str
    axis: str
    border: str

    def resolve(self, colour: str) -> str:
        """``colour`` itself, or the text colour for :data:`FOREGROUND`."""
        return self.text if colour == FOREGROUND else colour


def theme_colours(theme: str | None = None) -> PlotColours:
    """Plot colours of napari theme ``theme`` (default: the one in napari's settings)."""
    from napari.settings import get_settings
    from napari.utils.theme import get_system_theme, get_theme

    name = theme or get_settings().appearance.theme
    if name == "system":
        name = get_system_theme()
    palette = get_theme(name)
    return PlotColours(
        background=palette.background.as_hex(),
        text=palette.text.as_hex(),
        axis=palette.icon.as_hex(),
        border=palette.highlight.as_hex(),
    )


def follow_theme(widget: QWidget, apply: Callable[[PlotColours], None]) -> None:
    """Call ``apply(colours)`` now and after every theme change, until ``widget`` is deleted."""
    from napari.settings import get_settings

    appearance = get_settings().appearance

    def on_theme(_event: Any = None) -> None:
        if qt_alive(widget):
            apply(theme_colours())

    appearance.events.theme.connect(on_theme)
    widget.destroyed.connect(lambda *_: appearance.events.theme.disconnect(on_theme))
    on_theme()


class PaintedCanvas(QWidget):
    """A widget that a plot paints with ``QPainter``, at least ``height`` pixels tall."""

    def __init__(self, parent: QWidget, height: int) -> None:
        super().__init__(parent)
        self.setMinimumHeight(height)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def start_painting(self, colours: PlotColours | None) -> tuple[QPainter, QColor, QFontMetricsF]:
        """A painter on this widget, its background filled with ``colours`` (or the dark
        theme's until the theme is known), a small font set; with the text colour and the
        font's metrics. The caller ends the painter."""
        colours = colours or DARK_FALLBACK
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor(colours.background))
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.8))
        painter.setFont(font)
        return painter, QColor(colours.text), QFontMetricsF(font)


DARK_FALLBACK = PlotColours(background="#262930", text="#e0e0e0", axis="#c8c8c8", border="#5a5f66")
"""Colours used before a plot has received napari's theme."""
