"""What every dock widget of the plugin is made of: the viewer, run/Stop buttons, text labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_cebra._widgets.background import BackgroundRunner, qt_alive
from napari_cebra._widgets.session import session_models

if TYPE_CHECKING:
    import napari

    from napari_cebra._widgets.run_panel import RunPanel

MIN_FORM_HEIGHT = 450  # px: docks added later (e.g. the embedding view) must not squash the form
MIN_SCROLL_HEIGHT = 160  # px: a form with an always-visible footer scrolls in what is left
COLUMN_PROPERTY = "napari_cebra_column"  # marks the QDockWidgets of our tabbed column


def join_plugin_column(widget: QWidget) -> None:
    """Tab ``widget``'s dock together with the plugin's other docks in the same dock area.

    napari stacks the docks of one area vertically, so every widget opened squeezes the others
    and, with their minimum heights, grows the window past a laptop screen. In one tabbed column
    the window needs only the tallest dock's height and the movie keeps its width; each tab's
    float button still makes it a window of its own. Does nothing for an undocked widget.
    """
    dock, window = widget.parent(), widget.window()
    if not isinstance(dock, QDockWidget) or not isinstance(window, QMainWindow):
        return
    area = window.dockWidgetArea(dock)
    others = [
        other
        for other in window.findChildren(QDockWidget)
        if other is not dock
        and other.property(COLUMN_PROPERTY)
        and not other.isFloating()
        and window.dockWidgetArea(other) == area
    ]
    dock.setProperty(COLUMN_PROPERTY, True)
    if others:
        window.tabifyDockWidget(others[0], dock)
    if window.findChild(_ColumnKeeper, _ColumnKeeper.NAME) is None:
        _ColumnKeeper(window)
    dock.show()
    dock.raise_()


def beside_layer_controls(widget: QWidget) -> None:
    """Dock ``widget`` at the left of the window, tabbed with napari's layer controls.

    For a dock used together with the embedding (the selection dock): in the right-hand tabbed
    column it would hide the embedding while in use. At the left, napari's layer list stays
    under it and the movie keeps the middle (on a 1,366 × 768 screen too). Falls back to the
    right-hand column when the window has no left dock of napari's. Does nothing for an
    undocked widget.
    """
    dock, window = widget.parent(), widget.window()
    if not isinstance(dock, QDockWidget) or not isinstance(window, QMainWindow):
        return
    left = Qt.DockWidgetArea.LeftDockWidgetArea
    napari_docks = [
        other
        for other in window.findChildren(QDockWidget)
        if other is not dock
        and not other.property(COLUMN_PROPERTY)
        and not other.isFloating()
        and other.isVisibleTo(window)
        and window.dockWidgetArea(other) == left
    ]
    if not napari_docks:
        join_plugin_column(widget)
        return
    window.addDockWidget(left, dock)
    window.tabifyDockWidget(napari_docks[0], dock)
    dock.show()
    dock.raise_()


def column_width(window_width: int) -> int:
    """Width of the plugin's column in a window ``window_width`` pixels wide: about 30 %, at
    least 380 px (the embedding's controls) and at most 560 px, so the movie keeps the larger
    part of the window."""
    return int(min(560, max(380, 0.3 * window_width)))


class _ColumnKeeper(QObject):
    """Re-fits the plugin's column (:func:`column_width`) when the window's width changes.

    Qt keeps a dock's width in pixels and gives the whole change of the window's width to the
    central canvas: shrinking a 1,700 px window to a 1,366 px laptop size took it all from the
    movie. (A width the user dragged the column to is replaced at the next change of the
    window's width.)
    """

    NAME = "napari_cebra_column_keeper"

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setObjectName(self.NAME)
        self.window = window
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        """On a change of the window's width, resize the column in proportion; never consume."""
        if watched is self.window and event.type() == QEvent.Resize:
            old, new = event.oldSize().width(), event.size().width()
            if old > 0 and new != old:
                docks = [
                    dock
                    for dock in self.window.findChildren(QDockWidget)
                    if dock.property(COLUMN_PROPERTY) and not dock.isFloating() and dock.isVisible()
                ]
                if docks:
                    width = column_width(new)
                    QTimer.singleShot(0, lambda: self._resize(docks, width))
        return False

    def _resize(self, docks: list[QDockWidget], width: int) -> None:
        docks = [dock for dock in docks if qt_alive(dock)]  # one may have closed meanwhile
        if docks:
            self.window.resizeDocks(docks, [width] * len(docks), Qt.Orientation.Horizontal)


def fit_main_view(viewer: napari.viewer.Viewer) -> None:
    """Fit the main canvas to its visible layers (a hidden table must not shrink the movie)."""
    visible = [layer for layer in viewer.layers if layer.visible]
    viewer.reset_view(layers=visible or None)


class _DockedWatcher(QObject):
    """Calls ``on_docked`` once its widget has been put into a QDockWidget."""

    def __init__(self, widget: QWidget, on_docked: Callable[[], None]) -> None:
        super().__init__(widget)
        self.on_docked = on_docked
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        """Join the column once docked (after napari has placed the dock); never consume."""
        if event.type() == QEvent.ParentChange and isinstance(watched.parent(), QDockWidget):
            QTimer.singleShot(0, self.on_docked)
        return False


class DockWidget(QWidget):
    """Base of the plugin's dock widgets (napari creates them with the viewer they dock in).

    Once docked, the widget joins the plugin's tabbed column (:func:`join_plugin_column`). A dock
    that starts work sets :attr:`panel` (a ``RunPanel``); ``run_button``, ``stop_button``,
    ``status`` and ``runner`` are the panel's.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer this widget is docked in.
    """

    panel: RunPanel
    """The dock's Run/Stop panel, set by subclasses that start work."""
    beside_the_embedding: bool = False
    """Dock at the left (:func:`beside_layer_controls`) instead of in the plugin's column, for
    a dock used while looking at the embedding."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        place = beside_layer_controls if self.beside_the_embedding else join_plugin_column
        self._docked_watcher = _DockedWatcher(self, lambda: place(self))

    @property
    def run_button(self) -> QPushButton:
        """The panel's Run button."""
        return self.panel.run_button

    @property
    def stop_button(self) -> QPushButton:
        """The panel's Stop button."""
        return self.panel.stop_button

    @property
    def status(self) -> Any:
        """The panel's status line (a magicgui ``Label``: ``status.value`` is its text)."""
        return self.panel.status

    @property
    def runner(self) -> BackgroundRunner:
        """The panel's :class:`BackgroundRunner`."""
        return self.panel.runner

    def follow_session_models(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the session's model registry changes, until closed."""
        session_models().subscribe(callback)
        self.destroyed.connect(lambda *_: session_models().unsubscribe(callback))


def text_label(text: str = "") -> QLabel:
    """A rich-text label that wraps to the dock's width instead of widening it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)
    return label


def wrap_label(label: Any) -> Any:
    """Make a magicgui ``Label`` wrap to the dock's width (returns it).

    A label that does not wrap asks for the width of its longest line: a long message widens
    the dock and the window (and they never shrink back), and a status line whose text changes
    several times per second makes the whole window lay out again and its canvases redraw.
    """
    native = label.native
    native.setWordWrap(True)
    native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)
    return label


def scrolling_layout(
    widget: QWidget, footer: Sequence[QWidget] = (), stretch: Sequence[int] = ()
) -> QVBoxLayout:
    """Put a vertical scroll area into ``widget`` and return the layout of its contents.

    Docks are often shorter than a form with plots; scrolling keeps every control at its natural
    height instead of squeezing them, and the dock never asks the window to grow past the screen.
    ``footer`` widgets (Run/Stop and a live plot, say) stay under the scroll area, always visible,
    with the given ``stretch`` factors (the scroll area's is 1).
    """
    content = QWidget()
    layout = QVBoxLayout(content)
    scroll = QScrollArea(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.NoFrame)
    scroll.setWidget(content)
    scroll.setMinimumHeight(MIN_SCROLL_HEIGHT if footer else MIN_FORM_HEIGHT)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll, stretch=1)
    factors = list(stretch) + [0] * (len(footer) - len(stretch))
    for item, factor in zip(footer, factors, strict=True):
        outer.addWidget(item, stretch=factor)
    return layout
