"""A second napari canvas, docked next to the movie, that shows embeddings linked to time.

The embedding lives in its own ``ViewerModel`` rendered by a ``QtViewer`` inside a dock widget
of the main window, so its 3-D view and the movie's dims never slice each other. The dock shares
one tabbed column at the right of the window with the plugin's other docks (so the movie keeps
the larger part of the window, also on a 1,366 × 768 laptop screen); its float button turns it
into a window of its own. The two are
linked both ways: moving the main viewer's time slider highlights the current frame's point and a
short trail; clicking (or selecting) a point moves the main viewer to that frame.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, PushButton, Select, SpinBox
from napari.utils.colormaps import ensure_colormap
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QDockWidget, QHBoxLayout, QLabel, QMainWindow, QVBoxLayout, QWidget

from napari_cebra._widgets.background import CloseWatcher
from napari_cebra._widgets.colour_legend import ColourLegend, Legend
from napari_cebra._widgets.dock import (
    column_width,
    fit_main_view,
    join_plugin_column,
    text_label,
)
from napari_cebra._widgets.time_link import frame_at_current_step, go_to_frame

EMBEDDING_DOCK = "CEBRA embedding"
HIGHLIGHT_LAYER = "current frame"
MAX_COMPARED = 3
"""Embeddings shown beside the chosen one at most (each in its own canvas)."""
COLORMAPS = ("viridis", "turbo", "plasma", "twilight", "magma", "gray")
CLICK_TOLERANCE_PX = 4
HOVER_HINT = "Hover over a point to read its frame and features; click it to show that frame."
MAX_CATEGORIES = 12
MAX_SHOWN_POINTS = 20_000
"""Points drawn per embedding; longer recordings show every k-th frame (the time link still
marks every frame exactly). Without a GPU, napari draws 100,000 shaded points in ~1 s per frame
of the time slider and 20,000 in ~0.3 s (llvmpipe, 1,700 × 1,050 window; the movie alone
~0.1 s); with a GPU all of these take a few milliseconds."""
# Okabe-Ito colour-blind-safe palette
CATEGORY_COLOURS = (
    "#e69f00",
    "#56b4e9",
    "#009e73",
    "#f0e442",
    "#0072b2",
    "#d55e00",
    "#cc79a7",
    "#999999",
)


@dataclass
class EmbeddingEntry:
    """An embedding shown in the view.

    Attributes
    ----------
    name : str
        Name of its Points layer.
    embedding : np.ndarray
        ``(T, d)`` embedding, all output dimensions.
    frames : np.ndarray
        ``(T,)`` frame index of each row.
    time_layer : str or None
        Main-viewer layer whose first axis is time (the movie); ``None`` if there is none.
    shown : np.ndarray
        ``(k,)`` rows of the embedding drawn as points (all rows up to
        :data:`MAX_SHOWN_POINTS`, else every ``ceil(T / MAX_SHOWN_POINTS)``-th); point ``i`` of
        the layer is row ``shown[i]``.
    features : pandas.DataFrame
        One row per frame of the embedding (the layer's features hold the ``shown`` rows).
    marker_size : float
        Size of a point in data units (:func:`point_size` of the whole embedding, computed once).
    coloured_by : tuple of str
        ``(features column, colormap)`` the points' colours show now.
    legend : Legend
        The legend of those colours.
    """

    name: str
    embedding: np.ndarray
    frames: np.ndarray
    time_layer: str | None
    shown: np.ndarray
    features: pd.DataFrame
    marker_size: float
    coloured_by: tuple[str, str] = ("", "")
    legend: Legend = field(default_factory=Legend)

    def coordinates(self, axes: tuple[int, ...], rows: np.ndarray) -> np.ndarray:
        """Coordinates on ``axes`` of embedding rows ``rows`` (any rows, not only the shown
        ones); only those rows are copied, so a move of the time link costs a few rows."""
        return embedding_coordinates(self.embedding, axes, rows)

    @property
    def thinned(self) -> bool:
        """True when only part of the rows is drawn."""
        return len(self.shown) < len(self.embedding)


def shown_rows(n_rows: int, budget: int = MAX_SHOWN_POINTS) -> np.ndarray:
    """Rows drawn for an embedding of ``n_rows``: all, or an even stride through time."""
    step = max(1, -(-n_rows // budget))
    return np.arange(0, n_rows, step, dtype=np.int64)


def point_size(embedding: np.ndarray) -> float:
    """Marker size in data units: ≈0.03 for an embedding on the unit sphere."""
    extent = float(np.ptp(embedding, axis=0).max()) if len(embedding) else 1.0
    return 0.015 * (extent if extent > 0 else 1.0)


def embedding_coordinates(
    embedding: np.ndarray, axes: tuple[int, ...], rows: np.ndarray | None = None
) -> np.ndarray:
    """Columns ``axes`` of the embedding's ``rows`` (default all); for a 1-D embedding: the row
    index against the value."""
    rows = np.arange(len(embedding)) if rows is None else np.asarray(rows)
    if embedding.shape[1] == 1:
        return np.column_stack([embedding[rows, 0], rows])
    return np.ascontiguousarray(embedding[np.ix_(rows, list(axes))])


def is_categorical(values: pd.Series) -> bool:
    """Colour by category (not a colormap): text, bool, or integers with few distinct values."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return pd.api.types.is_integer_dtype(values) and values.nunique() <= MAX_CATEGORIES


def feature_colours(values: pd.Series, colormap: str) -> tuple[np.ndarray, Legend]:
    """RGBA colour of every point for one features column, and what the legend shows.

    Numeric columns go through ``colormap`` between their minimum and maximum; categorical
    columns get one colour-blind-safe colour per category.
    """
    if is_categorical(values):
        codes, categories = pd.factorize(values.astype(str))
        palette = {
            str(category): transform_color(CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)])[0]
            for i, category in enumerate(categories)
        }
        table = np.array(list(palette.values()), dtype=np.float32).reshape(-1, 4)
        return table[codes], Legend(categories=palette)
    numbers = values.to_numpy(dtype=np.float64)
    low, high = float(np.nanmin(numbers)), float(np.nanmax(numbers))
    scaled = (numbers - low) / (high - low) if high > low else np.zeros_like(numbers)
    colours = ensure_colormap(colormap).map(np.nan_to_num(scaled)).astype(np.float32)
    return colours, Legend(colormap=colormap, low=low, high=high)


def colour_column(features: pd.DataFrame, preferred: str | None) -> str:
    """The features column to colour by: ``preferred`` when there is one, else the first
    behaviour variable, else ``frame``."""
    names = [str(c) for c in features.columns]
    if preferred in names:
        return preferred
    behaviour = [n for n in names if n not in ("frame", "split")]
    return behaviour[0] if behaviour else names[0]


def cell_column(cell: int) -> str:
    """Features column of cell ``cell`` (1-based), e.g. ``"cell 12"``."""
    return f"cell {cell}"


def cell_number(column: str) -> int | None:
    """The cell of a :func:`cell_column` name (``None`` for any other column)."""
    prefix, _, number = column.partition(" ")
    return int(number) if prefix == "cell" and number.isdigit() and int(number) > 0 else None


def embedding_view(viewer: Any) -> EmbeddingView:
    """The embedding dock of ``viewer``, created and docked on first use."""
    docks = viewer.window.dock_widgets
    if EMBEDDING_DOCK in docks:
        return docks[EMBEDDING_DOCK]
    view = EmbeddingView(viewer)
    viewer.window.add_dock_widget(view, name=EMBEDDING_DOCK, area="right")
    join_plugin_column(view)
    view.fit_column()
    return view


class EmbeddingPane:
    """One canvas of the embedding dock: a ``ViewerModel`` and its ``QtViewer``, the Points
    layers of its embeddings, the time-link highlight and clicks on points.

    The dock's first pane holds every embedding (the one chosen is visible); each embedding
    chosen in "compare with" gets a pane of its own, titled with its name, in a row under the
    first. All follow the main viewer's time slider the same way.

    Parameters
    ----------
    view : EmbeddingView
        The dock the pane belongs to (its entries, trail length and time link).
    title : str
        Title of the pane's viewer.
    min_height : int
        Minimum height of the canvas in pixels.
    caption : bool
        Show the title above the canvas (:attr:`widget` holds both).
    """

    def __init__(
        self, view: EmbeddingView, title: str, min_height: int = 320, caption: bool = False
    ) -> None:
        from napari.components.viewer_model import ViewerModel
        from napari.qt import QtViewer

        self.view = view
        self.viewer = ViewerModel(title=title)
        self.qt_viewer = QtViewer(self.viewer)
        self.qt_viewer.setMinimumSize(200 if caption else 360, min_height)
        self.widget: QWidget = self.qt_viewer
        """What the dock lays out: the canvas, or the caption above the canvas."""
        self.caption: QLabel | None = None
        if caption:
            self.widget = QWidget()
            layout = QVBoxLayout(self.widget)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(2)
            self.caption = QLabel(title)
            self.caption.setWordWrap(True)
            layout.addWidget(self.caption)
            layout.addWidget(self.qt_viewer, stretch=1)
        self.shown: str | None = None
        """Name of the embedding the pane shows (its time link and clicks)."""
        self.highlighted = np.empty(0, dtype=np.int64)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)

    @property
    def entry(self) -> EmbeddingEntry | None:
        """The embedding the pane shows."""
        return self.view.entries.get(self.shown) if self.shown else None

    def layer(self, name: str | None = None) -> Any:
        """Points layer of embedding ``name`` in this pane (default: the one shown)."""
        return self.viewer.layers[name or self.shown]

    def add_points(
        self, entry: EmbeddingEntry, axes: tuple[int, ...], column: str, colormap: str
    ) -> tuple[Any, Legend]:
        """Add ``entry``'s drawn rows as a Points layer (replacing one of the same name),
        coloured by features ``column``; return the layer and its legend."""
        if entry.name in self.viewer.layers:
            self.viewer.layers.remove(entry.name)
        colours, legend = feature_colours(entry.features[column], colormap)
        layer = self.viewer.add_points(
            entry.coordinates(axes, entry.shown),
            name=entry.name,
            features=entry.features.iloc[entry.shown].reset_index(drop=True),
            size=entry.marker_size,
            face_color=colours[entry.shown],
            border_width=0,
            shading="spherical" if len(axes) == 3 else "none",
            metadata={"cebra_axes": axes, "cebra_colour_by": column, "cebra_colormap": colormap},
        )
        self.raise_highlight()
        return layer, legend

    def colour(self, entry: EmbeddingEntry, column: str, colormap: str) -> Legend:
        """Colour ``entry``'s points by features ``column``; return the legend."""
        layer = self.layer(entry.name)
        colours, legend = feature_colours(entry.features[column], colormap)
        layer.face_color = colours[entry.shown]
        layer.metadata = {**layer.metadata, "cebra_colour_by": column, "cebra_colormap": colormap}
        return legend

    def highlight(self, frame: int | None, trail: int) -> None:
        """Mark ``frame``'s point of the shown embedding and the ``trail`` frames before it.

        The highlight layer keeps one slot per trail frame (oldest first, white and fading in; the
        last slot is the current frame, large and magenta), so an update only moves points and
        changes sizes: a few small arrays, however many points the embedding has.
        """
        entry = self.entry
        if entry is None or frame is None:
            rows = np.empty(0, dtype=np.int64)
        else:
            rows = np.flatnonzero((entry.frames <= frame) & (entry.frames >= frame - trail))
            rows = rows[np.argsort(entry.frames[rows])]
        ndim = 3 if entry is None else self.layer(entry.name).ndim
        layer = self._highlight_layer(ndim, trail + 1)
        coords = np.zeros((trail + 1, ndim), dtype=np.float32)
        sizes = np.zeros(trail + 1, dtype=np.float32)
        self.highlighted = np.empty(0, dtype=np.int64)
        if len(rows):
            frames = entry.frames[rows]
            points = entry.coordinates(self.layer(entry.name).metadata["cebra_axes"], rows)
            base = entry.marker_size
            age = frame - frames
            slots = trail - age  # the current frame in the last slot
            coords[:] = points[-1]
            coords[slots] = points
            sizes[slots] = base * (1.6 - 0.8 * age / max(1, trail))
            if age[-1] == 0:
                sizes[-1] = 4 * base
            self.highlighted = frames
        with layer.events.blocker_all():
            layer.size = sizes
        # The highlight marks points of the embedding, inside its extent: the viewer need not
        # recompute its dims from every layer on each move (``data`` and ``affine`` events,
        # two thirds of an update); the canvas still redraws through the layer's refresh.
        with layer.events.data.blocker(), layer.events.affine.blocker():
            layer.data = coords

    def _highlight_layer(self, ndim: int, n_slots: int) -> Any:
        """The highlight Points layer with ``n_slots`` points of ``ndim`` dimensions."""
        layer = (
            self.viewer.layers[HIGHLIGHT_LAYER] if HIGHLIGHT_LAYER in self.viewer.layers else None
        )
        if layer is not None and (layer.ndim != ndim or len(layer.data) != n_slots):
            self.viewer.layers.remove(layer)
            layer = None
        if layer is None:
            alpha = np.linspace(0.25, 1.0, n_slots)
            colours = np.column_stack([np.ones((n_slots, 3)), alpha])
            colours[-1] = (1.0, 0.15, 0.55, 1.0)
            layer = self.viewer.add_points(
                np.zeros((n_slots, ndim)),
                name=HIGHLIGHT_LAYER,
                size=0,
                face_color=colours,
                border_width=0,
                blending="translucent",
            )
        return layer

    def raise_highlight(self) -> None:
        """Keep the highlight layer drawn on top of a newly added embedding (moved, not made
        again: a new Points layer costs a vispy visual and its shaders, ~0.3 s without a GPU)."""
        layers = self.viewer.layers
        if HIGHLIGHT_LAYER in layers:
            layers.move(layers.index(HIGHLIGHT_LAYER), len(layers))

    def close(self) -> None:
        """Close the canvas (its vispy resources go with it)."""
        self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        self.qt_viewer.close()
        self.widget.deleteLater()

    def _on_mouse_drag(self, viewer: Any, event: Any):
        """Click (press and release without dragging) on a point: jump to its frame."""
        entry = self.entry
        if entry is None:
            return
        press = np.asarray(event.pos, dtype=float)
        index = self.layer(entry.name).get_value(
            event.position,
            view_direction=event.view_direction,
            dims_displayed=list(event.dims_displayed),
            world=True,
        )
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = dragged or np.abs(np.asarray(event.pos) - press).max() > CLICK_TOLERANCE_PX
            yield
        if not dragged and index is not None:
            self.view.go_to(entry, int(entry.frames[entry.shown[int(index)]]))


class EmbeddingView(QWidget):
    """Docked second canvas with the embeddings, colour controls and the time link.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The main viewer (the one showing the movie).
    """

    embeddings_changed = Signal()
    """Emitted after an embedding was added or removed."""
    compare_opened = Signal(str)
    """Emitted with an embedding's name when a canvas comparing it was opened."""
    axes_changed = Signal()
    """Emitted after the chosen embedding is drawn on other axes."""

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main_viewer = viewer
        self.entries: dict[str, EmbeddingEntry] = {}
        self.pane = EmbeddingPane(self, EMBEDDING_DOCK)
        self.viewer = self.pane.viewer
        self.qt_viewer = self.pane.qt_viewer
        self.compare_panes: dict[str, EmbeddingPane] = {}
        """A canvas per embedding chosen in "compare with" (in the order chosen)."""
        self._frame: int | None = None
        self.activity: np.ndarray | None = None
        """``(frames, cells)`` activity of the recording's cells (set by the selection dock
        once it has read them): "colour by" then offers every cell, by its column
        :func:`cell_column`."""

        self.choice = ComboBox(label="embedding", choices=self._entry_names)
        self.axis_spins = [SpinBox(label=a, min=0, max=2, value=i) for i, a in enumerate("xyz")]
        self.color_by = ComboBox(label="colour by", choices=self._feature_names)
        self.colormap = ComboBox(label="colormap", choices=COLORMAPS, value="viridis")
        self.trail = SpinBox(label="trail (frames)", min=0, max=500, value=15)
        self.remove_button = PushButton(text="Remove embedding")
        self.compare = Select(label="compare with", choices=self._compare_names)
        self.compare.native.setMaximumHeight(58)
        self.compare.tooltip = (
            f"Show up to {MAX_COMPARED} more embeddings beside this one (ctrl-click to choose "
            "several), each in its own canvas, sharing the time link and the selection."
        )
        axes = Container(widgets=self.axis_spins, layout="horizontal", label="axes")
        self.controls = Container(
            widgets=[
                self.choice,
                axes,
                self.color_by,
                self.colormap,
                self.trail,
                self.remove_button,
                self.compare,
            ]
        )
        self.choice.changed.connect(self._show_entry)
        for spin in self.axis_spins:
            spin.changed.connect(self._on_axes_changed)
        self.color_by.changed.connect(self._apply_colour)
        self.colormap.changed.connect(self._apply_colour)
        self.trail.changed.connect(lambda _: self.highlight_frame(self._frame))
        self.remove_button.changed.connect(self._remove_current)
        self.compare.changed.connect(self._show_compare)

        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.legend = ColourLegend(self)
        self.readout = text_label(HOVER_HINT)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.legend)
        layout.addWidget(self.qt_viewer, stretch=1)
        self.compare_row = QWidget(self)
        """The row of compared embeddings' canvases under the first canvas."""
        row = QHBoxLayout(self.compare_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.compare_row.setVisible(False)
        layout.addWidget(self.compare_row, stretch=1)
        layout.addWidget(self.readout)
        self.viewer.events.status.connect(self._show_status)

        self.main_viewer.dims.events.current_step.connect(self._on_main_step)
        self._close_watcher = CloseWatcher(self, self._on_closed)
        self._update_controls()

    def fit_column(self) -> None:
        """Show this dock's tab and give the right-hand column a width that leaves the movie
        canvas the larger part of the window (about 30 % of the width, 380–560 px)."""
        dock, window = self.parent(), self.window()
        if isinstance(dock, QDockWidget) and isinstance(window, QMainWindow):
            window.resizeDocks([dock], [column_width(window.width())], Qt.Orientation.Horizontal)
        QTimer.singleShot(100, self._fit_views)  # once the canvases have their final size

    def _fit_views(self) -> None:
        for viewer in self.viewers():
            viewer.reset_view()
        fit_main_view(self.main_viewer)

    # ----------------------------------------------------------------- embeddings
    def add_embedding(
        self,
        embedding: np.ndarray,
        *,
        name: str,
        features: pd.DataFrame | None = None,
        time_layer: str | None = None,
    ) -> Any:
        """Add ``embedding`` as a Points layer (replacing one of the same name) and show it.

        Parameters
        ----------
        embedding : np.ndarray
            ``(T, d)`` embedding.
        name : str
            Layer name.
        features : pandas.DataFrame, optional
            One row per frame (behaviour variables, train/validation split, ...); a ``frame``
            column (0 … T−1) is added when missing.
        time_layer : str, optional
            Main-viewer layer whose first axis is time.

        Returns
        -------
        napari.layers.Points
        """
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.ndim != 2 or len(embedding) == 0:
            raise ValueError(
                f"embedding must be a non-empty 2-D array, got shape {embedding.shape}"
            )
        table = pd.DataFrame(index=range(len(embedding))) if features is None else features.copy()
        table = table.reset_index(drop=True)
        if len(table) != len(embedding):
            raise ValueError(
                f"features have {len(table)} rows but the embedding has {len(embedding)} frames."
            )
        if "frame" not in table:
            table.insert(0, "frame", np.arange(len(embedding)))
        shown = shown_rows(len(embedding))
        entry = EmbeddingEntry(
            name,
            embedding,
            table["frame"].to_numpy(np.int64),
            time_layer,
            shown,
            table,
            point_size(embedding),
        )
        axes = tuple(range(min(3, embedding.shape[1])))
        column = colour_column(table, self.color_by.value)
        layer, entry.legend = self.pane.add_points(entry, axes, column, self.colormap.value)
        entry.coloured_by = (column, self.colormap.value)
        layer.selected_data.events.items_changed.connect(self._on_selection)
        self.entries[name] = entry
        with self.choice.changed.blocked():
            self.choice.reset_choices()
            self.choice.value = name
        self._show_entry(name)
        if name in self.compare_panes:
            self._close_compared(name)  # its compared embedding was replaced
            self._show_compare()
        self.viewer.reset_view()
        self.embeddings_changed.emit()
        return layer

    @property
    def current(self) -> EmbeddingEntry | None:
        """The embedding shown now."""
        return self.entries.get(self.choice.value) if self.choice.value else None

    def layer(self, name: str | None = None) -> Any:
        """Points layer of embedding ``name`` (default: the one shown)."""
        name = name or self.choice.value
        return self.viewer.layers[name]

    def panes(self) -> list[EmbeddingPane]:
        """The canvases shown: the chosen embedding's, then the compared ones'."""
        return [self.pane, *self.compare_panes.values()]

    def viewers(self) -> list[Any]:
        """The ``ViewerModel`` of every pane, for other docks to draw in all of them."""
        return [pane.viewer for pane in self.panes()]

    # ----------------------------------------------------------------- time link
    def highlight_frame(self, frame: int | None) -> None:
        """Mark ``frame``'s point and the ``trail`` frames before it in every pane (see
        :meth:`EmbeddingPane.highlight`)."""
        self._frame = frame
        for pane in self.panes():
            pane.highlight(frame, int(self.trail.value))

    def highlighted_frames(self) -> np.ndarray:
        """Frames marked by the highlight (oldest first, current frame last)."""
        return self.pane.highlighted.copy()

    def jump_to_point(self, index: int) -> None:
        """Move the main viewer to the frame of point ``index`` of the shown embedding."""
        entry = self.current
        if entry is None:
            return
        self.go_to(entry, int(entry.frames[entry.shown[index]]))

    def go_to(self, entry: EmbeddingEntry, frame: int) -> None:
        """Move the main viewer to ``frame`` (on ``entry``'s time layer) and highlight it."""
        layer = self._time_layer(entry)
        if layer is not None:
            go_to_frame(self.main_viewer, layer, frame)
        self.highlight_frame(frame)

    # ----------------------------------------------------------------- internals
    def set_feature(self, name: str, column: str, values: Any, *, colour: bool = False) -> None:
        """Add or replace the features column ``column`` of embedding ``name`` (one value per
        frame), for the colours, the hover readout and "colour by"; optionally colour by it.

        A categorical column (text or ``pandas.Categorical``) shows its category names in the
        legend.
        """
        entry = self.entries[name]
        values = pd.Series(values).reset_index(drop=True)
        if len(values) != len(entry.embedding):
            raise ValueError(
                f"column {column!r} has {len(values)} values but embedding {name!r} has "
                f"{len(entry.embedding)} frames."
            )
        entry.features[column] = values.to_numpy() if values.dtype != "category" else values
        layer = self.layer(name)
        layer.features = entry.features.iloc[entry.shown].reset_index(drop=True)
        if entry.coloured_by[0] == column:
            entry.coloured_by = ("", "")  # its colours are stale
        if name in self.compare_panes:
            self.compare_panes[name].layer(name).features = layer.features
            self._colour_compare(force=True)
        if name != self.choice.value:
            return
        with self.color_by.changed.blocked():
            self.color_by.reset_choices()
            if colour:
                self.color_by.value = column
        self._apply_colour()

    def _entry_names(self, _widget: Any = None) -> list[str]:
        return list(self.entries)

    def _compare_names(self, _widget: Any = None) -> list[str]:
        return [n for n in self.entries if n != self.choice.value]

    def _feature_names(self, _widget: Any = None) -> list[str]:
        entry = self.current
        if entry is None or entry.name not in self.viewer.layers:
            return []
        names = [str(c) for c in self.viewer.layers[entry.name].features.columns]
        if self._has_activity(entry):
            known = set(names)
            cells = (cell_column(k) for k in range(1, self.activity.shape[1] + 1))
            names += [c for c in cells if c not in known]
        return names

    def set_cell_activity(self, activity: np.ndarray | None) -> None:
        """Offer colouring by each cell of ``activity`` (``(frames, cells)``, the recording the
        embeddings were made from; ``None``: no more) in "colour by"."""
        self.activity = activity
        with self.color_by.changed.blocked():
            self.color_by.reset_choices()

    def _has_activity(self, entry: EmbeddingEntry) -> bool:
        return (
            self.activity is not None
            and self.activity.ndim == 2
            and int(entry.frames.max()) < len(self.activity)
        )

    def _cell_values(self, entry: EmbeddingEntry, column: str) -> np.ndarray | None:
        """Activity of the cell named ``column`` (e.g. ``"cell 12"``) at ``entry``'s frames."""
        cell = cell_number(column)
        if cell is None or not self._has_activity(entry) or cell > self.activity.shape[1]:
            return None
        return np.asarray(self.activity[entry.frames, cell - 1], dtype=np.float32)

    def _time_layer(self, entry: EmbeddingEntry) -> Any:
        if entry.time_layer and entry.time_layer in self.main_viewer.layers:
            return self.main_viewer.layers[entry.time_layer]
        return None

    def _show_entry(self, name: Any = None) -> None:
        entry = self.current
        self.pane.shown = None if entry is None else entry.name
        with self.compare.changed.blocked():
            compared = list(self.compare.value)
            self.compare.reset_choices()
            self.compare.value = [n for n in compared if n in self.compare.choices]
        if list(self.compare.value) != compared:
            self._show_compare()
        for layer in self.viewer.layers:
            if layer.name != HIGHLIGHT_LAYER:
                layer.visible = entry is not None and layer.name == entry.name
        self._update_controls()
        if entry is None:
            self.highlight_frame(None)
            return
        self.viewer.layers.selection.active = self.layer(entry.name)
        self.viewer.dims.ndisplay = 3 if self.layer(entry.name).ndim == 3 else 2
        self._apply_colour()
        self._on_main_step()

    def _update_controls(self) -> None:
        entry = self.current
        dims = 0 if entry is None else entry.embedding.shape[1]
        axes = self.layer(entry.name).metadata["cebra_axes"] if entry else (0, 1, 2)
        for i, spin in enumerate(self.axis_spins):
            with spin.changed.blocked():
                spin.value = 0
                spin.max = max(0, dims - 1)
                spin.value = min(axes[i] if i < len(axes) else 0, spin.max)
            spin.visible = dims > 3 or (dims >= 2 and i < min(dims, 3))
        with self.color_by.changed.blocked():
            previous = self.color_by.value
            self.color_by.reset_choices()
            names = self._feature_names()
            if previous in names:
                self.color_by.value = previous
            elif names:
                self.color_by.value = colour_column(self.layer(entry.name).features, None)
        self.remove_button.enabled = entry is not None
        self.compare.visible = bool(self.compare.choices)  # only with another embedding
        self.readout.setText(self.hint())

    def _on_axes_changed(self, _value: Any = None) -> None:
        entry = self.current
        if entry is None or entry.embedding.shape[1] <= 3:
            return
        axes = tuple(int(spin.value) for spin in self.axis_spins)
        layer = self.layer(entry.name)
        layer.data = entry.coordinates(axes, entry.shown)
        layer.metadata = {**layer.metadata, "cebra_axes": axes}
        self._apply_colour()
        self.highlight_frame(self._frame)
        self.viewer.reset_view()
        self.axes_changed.emit()

    def _apply_colour(self, _value: Any = None) -> None:
        entry, column = self.current, self.color_by.value
        if entry is None or not column:
            return
        if column not in entry.features:  # a cell's activity, read when first chosen
            values = self._cell_values(entry, column)
            if values is not None:
                self.set_feature(entry.name, column, values)  # colours it
            return
        if entry.coloured_by != (column, self.colormap.value):  # else the colours are there
            entry.legend = self.pane.colour(entry, column, self.colormap.value)
            entry.coloured_by = (column, self.colormap.value)
        self.legend.show_legend(column, entry.legend)
        self._colour_compare()

    def _colour_compare(self, force: bool = False) -> None:
        """Colour the compared embeddings like the chosen one (each by its default column when
        it has no column of that name); unless ``force``, only those whose colours differ."""
        for pane in self.compare_panes.values():
            entry = pane.entry
            if entry is None:
                continue
            column = colour_column(entry.features, self.color_by.value)
            metadata = pane.layer().metadata
            now = (metadata.get("cebra_colour_by"), metadata.get("cebra_colormap"))
            if force or now != (column, self.colormap.value):
                pane.colour(entry, column, self.colormap.value)
                self._caption(pane)

    def _caption(self, pane: EmbeddingPane) -> None:
        """Title a compared pane with its embedding, what colours it and the drawn axes."""
        entry = pane.entry
        if pane.caption is None or entry is None:
            return
        metadata = pane.layer().metadata
        axes = ", ".join(str(a) for a in metadata["cebra_axes"])
        pane.caption.setText(
            f"<b>{html.escape(entry.name)}</b> · colour: "
            f"{html.escape(str(metadata['cebra_colour_by']))} · axes {axes}"
        )

    def _show_compare(self, _value: Any = None) -> None:
        """Show each embedding chosen in "compare with" in a canvas of its own, in a row under
        the first canvas (at most :data:`MAX_COMPARED`; panes of embeddings no longer chosen
        are closed)."""
        wanted = [n for n in self.compare.value if n in self.entries]
        if len(wanted) > MAX_COMPARED:  # the list shows what is drawn
            wanted = wanted[:MAX_COMPARED]
            with self.compare.changed.blocked():
                self.compare.value = wanted
            self.readout.setText(f"At most {MAX_COMPARED} embeddings are compared at once.")
        for name in [n for n in self.compare_panes if n not in wanted]:
            self._close_compared(name)
        for name in wanted:
            if name not in self.compare_panes:
                self._open_compared(self.entries[name])
        self.compare_row.setVisible(bool(self.compare_panes))
        if self.compare_panes:
            QTimer.singleShot(100, self._fit_views)  # once the new canvases have their size

    def _open_compared(self, entry: EmbeddingEntry) -> None:
        pane = EmbeddingPane(self, f"{EMBEDDING_DOCK}: {entry.name}", min_height=200, caption=True)
        self.compare_row.layout().addWidget(pane.widget, stretch=1)
        self.compare_panes[entry.name] = pane
        pane.shown = entry.name
        column = colour_column(entry.features, self.color_by.value)
        axes = tuple(range(min(3, entry.embedding.shape[1])))
        layer, _legend = pane.add_points(entry, axes, column, self.colormap.value)
        pane.viewer.dims.ndisplay = 3 if layer.ndim == 3 else 2
        pane.viewer.layers.selection.active = layer
        pane.viewer.reset_view()
        pane.highlight(self._frame, int(self.trail.value))
        self._caption(pane)
        self.compare_opened.emit(entry.name)

    def _close_compared(self, name: str) -> None:
        pane = self.compare_panes.pop(name)
        self.compare_row.layout().removeWidget(pane.widget)
        pane.close()

    def _remove_current(self, _value: Any = None) -> None:
        entry = self.current
        if entry is None:
            return
        del self.entries[entry.name]
        self.viewer.layers.remove(entry.name)
        self.choice.reset_choices()
        self._show_entry()
        self.embeddings_changed.emit()

    def hint(self) -> str:
        """The readout's text when the cursor is over no point (says when points are thinned)."""
        entry = self.current
        if entry is None or not entry.thinned:
            return HOVER_HINT
        step = int(entry.shown[1] - entry.shown[0])
        return (
            f"Drawn: one frame in {step} of {len(entry.embedding):,} (the current frame is "
            f"always marked). {HOVER_HINT}"
        )

    def _show_status(self, event: Any) -> None:
        """Show what the cursor is over (napari's status of the embedding canvas)."""
        status = event.value
        if isinstance(status, dict):  # napari ≥ 0.5: the layer's status fields
            value = str(status.get("value", "") or "")
            text = self._point_text(status.get("layer_name", ""), value) if value else ""
        else:
            text = "" if status in ("Ready", "[empty]") else str(status)
        self.readout.setText(html.escape(text) if text else self.hint())

    def _point_text(self, layer_name: str, value: str) -> str:
        """``"<embedding>: frame <f>"`` for a point of an embedding, else napari's value."""
        entry = self.entries.get(layer_name)
        if entry is None or not value.isdigit() or int(value) >= len(entry.shown):
            return f"{layer_name}: {value}"
        return f"{layer_name}: frame {int(entry.frames[entry.shown[int(value)]])}"

    def _on_closed(self) -> None:
        """The dock was closed: say what is gone (the embeddings) and what stays (the models)."""
        self.main_viewer.dims.events.current_step.disconnect(self._on_main_step)
        if not self.entries:
            return
        from napari.utils import notifications

        names = ", ".join(self.entries)
        notifications.show_info(
            f"Closed the CEBRA embedding dock; its embeddings ({names}) are gone, their models "
            "stay in this session: Plugins ▸ napari-cebra ▸ CEBRA models ▸ Transform embeds "
            "a recording again."
        )
        self.entries.clear()

    def _on_main_step(self, _event: Any = None) -> None:
        entry = self.current
        layer = None if entry is None else self._time_layer(entry)
        frame = None if layer is None else frame_at_current_step(self.main_viewer, layer)
        self.highlight_frame(frame)

    def _on_selection(self, _event: Any = None) -> None:
        entry = self.current
        if entry is None:
            return
        selected = list(self.layer(entry.name).selected_data)
        if len(selected) == 1:
            self.jump_to_point(int(selected[0]))
