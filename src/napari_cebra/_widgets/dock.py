"""What every dock widget of the plugin is made of: the viewer, run/Stop buttons, text labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_cebra._widgets.session import session_models

if TYPE_CHECKING:
    import napari

MIN_FORM_HEIGHT = 450  # px: docks added later (e.g. the embedding view) must not squash the form


class DockWidget(QWidget):
    """Base of the plugin's dock widgets (napari creates them with the viewer they dock in).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer this widget is docked in.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer

    def follow_session_models(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the session's model registry changes, until closed."""
        session_models().subscribe(callback)
        self.destroyed.connect(lambda *_: session_models().unsubscribe(callback))


def run_stop_row(run_text: str) -> tuple[QPushButton, QPushButton, QHBoxLayout]:
    """A run button labelled ``run_text`` and a Stop button, side by side.

    Returns
    -------
    tuple
        ``(run_button, stop_button, row)``; add ``row`` to the widget's layout.
    """
    run_button = QPushButton(run_text)
    stop_button = QPushButton("Stop")
    row = QHBoxLayout()
    row.addWidget(run_button)
    row.addWidget(stop_button)
    return run_button, stop_button, row


def text_label(text: str = "") -> QLabel:
    """A rich-text label that wraps to the dock's width instead of widening it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)
    return label


def scrolling_layout(widget: QWidget) -> QVBoxLayout:
    """Put a vertical scroll area into ``widget`` and return the layout of its contents.

    Docks are often shorter than a form with plots; scrolling keeps every control at its natural
    height instead of squeezing them.
    """
    content = QWidget()
    layout = QVBoxLayout(content)
    scroll = QScrollArea(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(content)
    scroll.setMinimumHeight(MIN_FORM_HEIGHT)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return layout
