"""The "CEBRA selection" dock widget: select frames on the embedding, watch them, keep them.

Frames are selected on the embedding shown in the "CEBRA embedding" dock, by a range of one of
its features (optionally and a value of another, e.g. a running direction) or by a shape drawn
on a 2-D view of it. The selection is drawn over the embedding, summarised in words, played in
the main viewer (the time slider steps through the selected frames only), and saved as a class
of a discrete label: a ``selections`` column of the embedding's features (so the dock can colour
by it) and of a behaviour layer of the main viewer (so the Train CEBRA widget can train on it).
"Which cells?" ranks the cells of a neural layer by how much more active they are in the selected
frames than in the rest, paints the ROIs of a movie by that score (a "cell scores" Labels layer
with a colour bar) and lists the top cells; choosing a cell (or clicking ROIs, shift-click for
several) colours the embedding by its activity (or by their mean).
The science is in :mod:`napari_cebra.workflows.selection`.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QPushButton

from napari_cebra._widgets.background import CloseWatcher
from napari_cebra._widgets.colour_legend import ColourLegend, Legend
from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.embedding_view import (
    HIGHLIGHT_LAYER,
    MAX_SHOWN_POINTS,
    EmbeddingEntry,
    EmbeddingPane,
    EmbeddingView,
    cell_column,
    embedding_view,
)
from napari_cebra._widgets.forms import DataPicker, read_neural
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.time_link import frame_at_current_step, go_to_frame
from napari_cebra._widgets.workers import NeuralInput, TraceProgress, neural_matrix_steps
from napari_cebra.io.napari_contributions import KIND_KEY
from napari_cebra.io.traces import roi_labels
from napari_cebra.workflows.selection import (
    CellSelectivity,
    cell_selectivity,
    frames_in_polygon,
    frames_in_range,
    selection_labels,
)

if TYPE_CHECKING:
    import napari

SHAPE_LAYER = "selection shape"
MAX_SELECTION_MARKERS = 2_000
"""Markers drawn for a selection at most (an even stride through it): enough to show where it
lies. Each marker costs: drawing every selected point of a long recording took ~0.3 s per
repaint without a GPU, and napari recomputes a Points layer's thumbnail from all its points on
every change (~45 ms for 5,000 markers, ~10 ms for 2,000)."""
SELECTED_LAYER = "selected frames"
LABEL_COLUMN = "selections"
LABEL_LAYER = "selections"
REST_CLASS = "other"
PLAY_INTERVAL_MS = 50  # ~20 frames/s
MAX_EQUAL_VALUES = 20  # a column with more distinct values is not offered for "equal to"
NO_SELECTION = "No frames selected."
SCORES_LAYER = "cell scores"
SCORE_COLORMAP = "RdBu_r"  # diverging: blue = less active in the selection, red = more
SCORE_OPACITY = 0.7
N_LISTED = 10
METHODS = [("z-score", "zscore"), ("difference (ΔF/F)", "difference")]
SCORE_SYMBOLS = {"zscore": "z", "difference": "Δ"}
MAX_EAGER_VALUES = 50_000_000
"""A neurons × time matrix up to this many values is read when chosen, so that "colour by"
offers its cells at once (a larger one, or a movie's ROIs, when first needed)."""


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` as int64, without its cost when ``values`` is sorted and unique
    already (what every selection tool hands over: one comparison instead of a hash table)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size < 2 or bool(np.all(values[1:] > values[:-1])):
        return values
    return np.unique(values)


def count_stretches(frames: np.ndarray) -> int:
    """Number of runs of consecutive frames in ``frames`` (sorted, unique or not)."""
    frames = sorted_unique(frames)
    return 0 if frames.size == 0 else int(1 + np.count_nonzero(np.diff(frames) > 1))


def score_colours(scores: np.ndarray, colormap: str = SCORE_COLORMAP) -> tuple[np.ndarray, float]:
    """RGBA colour of each score on a diverging colormap centred on 0.

    Parameters
    ----------
    scores : np.ndarray
        ``(N,)`` finite scores.
    colormap : str
        A napari colormap name.

    Returns
    -------
    colours : np.ndarray
        ``(N, 4)`` float32 RGBA; the colormap spans ``[-limit, limit]``.
    limit : float
        The largest absolute score (1 when every score is 0).
    """
    from napari.utils.colormaps import ensure_colormap

    scores = np.asarray(scores, dtype=np.float64)
    limit = float(np.abs(scores).max()) if scores.size else 0.0
    limit = limit if limit > 0 else 1.0
    positions = np.clip(0.5 + 0.5 * scores / limit, 0.0, 1.0)
    return np.asarray(ensure_colormap(colormap).map(positions), dtype=np.float32), limit


def cells_title(cells: list[int]) -> str:
    """Name of the features column for the activity of ``cells`` (1-based cell numbers), e.g.
    ``"cell 7"`` or ``"mean of cells 3, 7, 12"``."""
    if len(cells) == 1:
        return cell_column(cells[0])
    return "mean of cells " + ", ".join(str(c) for c in cells)


def _trace_measure(record: Any) -> tuple[int, int] | None:
    """Progress of trace extraction in thousandths (for the run panel's bar)."""
    if isinstance(record, TraceProgress):
        return int(round(1000 * record.fraction)), 1000
    return None


def draw_selected(pane: EmbeddingPane, rows: np.ndarray | None) -> None:
    """Draw ``rows`` of ``pane``'s embedding as the "selected frames" layer of its canvas
    (thinned to the drawn rows when many, and to at most :data:`MAX_SELECTION_MARKERS`
    markers); ``None`` removes the layer."""
    entry, viewer = pane.entry, pane.viewer
    if SELECTED_LAYER in viewer.layers and (
        rows is None or entry is None or viewer.layers[SELECTED_LAYER].ndim != pane.layer().ndim
    ):
        viewer.layers.remove(SELECTED_LAYER)
    if rows is None or entry is None:
        return
    points_layer = pane.layer()
    if len(rows) > MAX_SHOWN_POINTS and entry.thinned:  # only rows that are drawn
        drawn = np.zeros(len(entry.embedding), dtype=bool)
        drawn[entry.shown] = True
        rows = rows[drawn[rows]]
    rows = rows[:: -(-len(rows) // MAX_SELECTION_MARKERS) or 1]
    coords = entry.coordinates(points_layer.metadata["cebra_axes"], rows)
    if SELECTED_LAYER in viewer.layers:
        layer = viewer.layers[SELECTED_LAYER]
        layer.data = coords
        if not np.allclose(layer.size, 2 * entry.marker_size):
            layer.size = 2 * entry.marker_size
    else:
        layer = viewer.add_points(
            coords,
            name=SELECTED_LAYER,
            size=2 * entry.marker_size,
            face_color=[1.0, 0.95, 0.3, 0.35],
            border_width=0,
            blending="translucent_no_depth",
        )
    if layer.visible != (len(rows) > 0):  # setting it redraws the layer, changed or not
        layer.visible = len(rows) > 0
    layers = viewer.layers
    if HIGHLIGHT_LAYER in layers:  # the current frame stays on top
        layers.move(layers.index(SELECTED_LAYER), layers.index(HIGHLIGHT_LAYER))
    layers.selection.active = points_layer


class SelectionWidget(DockWidget):
    """Select frames on the shown embedding, show and play them, save them as a label.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The main viewer (the one showing the movie); its embedding dock is used (created if
        missing).

    Attributes
    ----------
    rows : np.ndarray
        Selected rows of the current embedding (int64, sorted).
    saved : dict of str to np.ndarray
        Saved selections of the current embedding: class name → rows.
    """

    beside_the_embedding = True  # docked at the left: the embedding stays in sight

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        view = embedding_view(napari_viewer)
        self.rows = np.empty(0, dtype=np.int64)
        self.saved: dict[str, np.ndarray] = {}
        self._entry_name: str | None = None
        self._frames_of: tuple[str | None, np.ndarray] = (None, np.empty(0, dtype=np.int64))
        """The recording (time layer) and frames of the selection, kept across embeddings."""

        self.column = ComboBox(label="feature", choices=self._numeric_columns)
        self.low = FloatSpinBox(label="from", min=-1e12, max=1e12, step=0.01)
        self.high = FloatSpinBox(label="to", min=-1e12, max=1e12, step=0.01)
        self.equal_column = ComboBox(
            label="and column", choices=self._equal_columns, nullable=True, value=None
        )
        self.equal_value = ComboBox(label="equal to", choices=self._equal_values)
        self.range_button = PushButton(text="Select in range")
        self.draw_button = PushButton(text="Draw a shape")
        self.inside_button = PushButton(text="Select inside the shape")
        self.clear_button = PushButton(text="Clear selection")
        self.name = LineEdit(label="class name", value="selection 1")
        self.save_button = PushButton(text="Save as label")
        self.range_box = Container(
            widgets=[
                self.column,
                self.low,
                self.high,
                self.equal_column,
                self.equal_value,
                self.range_button,
            ],
            label="by feature range",
        )
        self.shape_box = Container(
            widgets=[self.draw_button, self.inside_button], layout="horizontal"
        )
        self.save_box = Container(widgets=[self.name, self.save_button])
        self.play_button = QPushButton("Play the selection")
        self.play_button.setCheckable(True)
        self.readout = text_label(NO_SELECTION)
        self.saved_readout = text_label("")

        # which cells? (the neural part of the Train widget's picker: same layers, same reading)
        self.picker = DataPicker(napari_viewer, discrete=False, valid_fraction=None)
        for widget in (self.picker.behaviour, self.picker.variables, self.picker.alignment_box):
            widget.visible = False
        self.method = ComboBox(label="score", choices=METHODS, value="zscore")
        self.rises = CheckBox(text="use rises (sharper in time)", value=False)
        self.panel = RunPanel(
            self,
            "Rank cells",
            controls=[self.picker, self.method, self.rises],
            status="Select frames, then rank the cells of the neural data.",
            bar_format="%p%",
        )
        self.rank_button = self.panel.run_button
        self.score_legend = ColourLegend()
        self.score_legend.setVisible(False)
        self.top_readout = text_label("")
        self.cell = SpinBox(label="cell", min=1, max=1, value=1)
        self.cell_button = PushButton(text="Colour the embedding by this cell")
        self.cell_box = Container(widgets=[self.cell, self.cell_button])
        self.cell_readout = text_label(
            "Or click an ROI of the movie (shift-click adds ROIs: their mean)."
        )
        self.ranking: CellSelectivity | None = None
        self.traces: np.ndarray | None = None
        self.roi_ids: np.ndarray | None = None
        self.chosen_cells: list[int] = []
        self._traces_cache: dict[tuple, tuple[np.ndarray, np.ndarray | None]] = {}
        self._clickable: list[Any] = []
        self._rises_for: str | None = None

        layout = scrolling_layout(self)
        layout.addWidget(text_label("<b>Select frames</b> of the shown embedding"))
        layout.addWidget(self.range_box.native)
        layout.addWidget(self.shape_box.native)
        layout.addWidget(self.clear_button.native)
        layout.addWidget(self.readout)
        layout.addWidget(self.play_button)
        layout.addWidget(text_label("<b>Save the selection</b> as a class of a label"))
        layout.addWidget(self.save_box.native)
        layout.addWidget(self.saved_readout)
        layout.addWidget(text_label("<b>Which cells?</b> are more active in the selection"))
        layout.addWidget(self.picker.native)
        layout.addWidget(Container(widgets=[self.method, self.rises]).native)
        layout.addWidget(self.panel)
        layout.addWidget(self.score_legend)
        layout.addWidget(self.top_readout)
        layout.addWidget(self.cell_box.native)
        layout.addWidget(self.cell_readout)
        layout.addStretch(1)

        self.timer = QTimer(self)
        self.timer.setInterval(PLAY_INTERVAL_MS)
        self.timer.timeout.connect(self.play_step)
        self._play_index = 0

        self.column.changed.connect(self._preset_range)
        self.equal_column.changed.connect(lambda _: self.equal_value.reset_choices())
        self.range_button.changed.connect(self.select_range)
        self.draw_button.changed.connect(self.draw_shape)
        self.inside_button.changed.connect(self.select_inside_shape)
        self.clear_button.changed.connect(self.clear)
        self.save_button.changed.connect(self.save_as_label)
        self.play_button.toggled.connect(self.play)
        self.picker.selection_changed.connect(self._preset_rises)
        self.rank_button.clicked.connect(self.rank_cells)
        self.cell_button.changed.connect(self.colour_by_cell)
        view.choice.changed.connect(self._on_entry_changed)
        view.embeddings_changed.connect(self._on_entry_changed)
        view.compare_opened.connect(self._show_selected)
        view.axes_changed.connect(self._show_selected)
        self.picker.selection_changed.connect(self._offer_matrix_cells)
        napari_viewer.dims.events.current_step.connect(self._update_readout)
        self._close_watcher = CloseWatcher(self, self._on_closed)
        self._on_entry_changed()
        self._preset_rises()
        self._offer_matrix_cells()

    # ----------------------------------------------------------------- choices
    @property
    def view(self) -> EmbeddingView:
        """The embedding dock of the main viewer (looked up, not kept: a reference to its
        canvas would outlive the viewer)."""
        return embedding_view(self.viewer)

    @property
    def entry(self) -> EmbeddingEntry | None:
        """The embedding shown in the embedding dock."""
        return self.view.current

    def _numeric_columns(self, _widget: Any = None) -> list[str]:
        entry = self.entry
        if entry is None:
            return []
        return [
            str(c)
            for c in entry.features.columns
            if pd.api.types.is_numeric_dtype(entry.features[c])
            and not pd.api.types.is_bool_dtype(entry.features[c])
        ]

    def _equal_columns(self, _widget: Any = None) -> list[str]:
        entry = self.entry
        if entry is None:
            return []
        return [
            str(c)
            for c in entry.features.columns
            if c != "frame" and entry.features[c].nunique() <= MAX_EQUAL_VALUES
        ]

    def _equal_values(self, _widget: Any = None) -> list[tuple[str, Any]]:
        entry, column = self.entry, self.equal_column.value
        if entry is None or not column or column not in entry.features:
            return []
        values = pd.unique(entry.features[column].dropna())
        return [(str(v), v) for v in sorted(values, key=str)]

    def _preset_range(self, _value: Any = None) -> None:
        """Preset the range to the whole range of the chosen column."""
        entry, column = self.entry, self.column.value
        if entry is None or not column:
            return
        values = entry.features[column].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        self.low.value, self.high.value = low, high

    def _on_entry_changed(self, _value: Any = None) -> None:
        """Another embedding is shown: offer its columns; the selected frames stay selected
        when it shows the same recording (its rows of those frames), else the selection and
        the saved classes are forgotten."""
        entry = self.entry
        name = None if entry is None else entry.name
        if name != self._entry_name:
            self._entry_name = name
            self.saved = {}
            self.saved_readout.setText("")
            same = entry is not None and entry.time_layer == self._frames_of[0]
            rows = np.flatnonzero(np.isin(entry.frames, self._frames_of[1])) if same else []
            self.set_selection(np.asarray(rows, dtype=np.int64))
        for widget in (self.column, self.equal_column):
            widget.reset_choices()
        self.equal_value.reset_choices()
        self._preset_range()

    # ----------------------------------------------------------------- selecting
    def select_range(self, _value: Any = None) -> np.ndarray:
        """Select the rows whose chosen feature lies in [from, to] (and whose "and column"
        equals the chosen value); returns the selected rows."""
        entry, column = self.entry, self.column.value
        if entry is None or not column:
            return self.rows
        low, high = sorted((float(self.low.value), float(self.high.value)))
        rows = frames_in_range(entry.features[column].to_numpy(dtype=np.float64), low, high)
        other = self.equal_column.value
        if other and other in entry.features:
            keep = entry.features[other].to_numpy()[rows] == self.equal_value.value
            rows = rows[keep]
        self.set_selection(rows)
        return rows

    def draw_shape(self, _value: Any = None) -> Any:
        """Show the embedding in 2-D and get the shape layer ready to draw a polygon."""
        entry = self.entry
        if entry is None:
            return None
        viewer = self.view.viewer
        viewer.dims.ndisplay = 2
        ndim = self.view.layer(entry.name).ndim
        layer = viewer.layers[SHAPE_LAYER] if SHAPE_LAYER in viewer.layers else None
        if layer is not None and layer.ndim != ndim:
            viewer.layers.remove(layer)
            layer = None
        if layer is None:
            layer = viewer.add_shapes(
                ndim=ndim,
                name=SHAPE_LAYER,
                edge_color="yellow",
                face_color=[1.0, 1.0, 0.0, 0.15],
                edge_width=entry.marker_size / 2,
            )
        layer.visible = True
        viewer.layers.selection.active = layer
        layer.mode = "add_polygon"
        return layer

    def select_inside_shape(self, _value: Any = None) -> np.ndarray:
        """Select the rows whose points lie inside the last shape drawn (on the two displayed
        axes); returns the selected rows."""
        entry, viewer = self.entry, self.view.viewer
        if entry is None or SHAPE_LAYER not in viewer.layers:
            self.readout.setText("Draw a shape first (Draw a shape).")
            return self.rows
        shapes = viewer.layers[SHAPE_LAYER]
        if len(shapes.data) == 0:
            self.readout.setText("Draw a shape first (Draw a shape).")
            return self.rows
        points_layer = self.view.layer(entry.name)
        displayed = list(viewer.dims.displayed)[-2:]
        layer_axes = [axis - (viewer.dims.ndim - points_layer.ndim) for axis in displayed]
        polygon = np.asarray(shapes.data[-1])[:, layer_axes]
        axes = points_layer.metadata["cebra_axes"]
        all_rows = np.arange(len(entry.embedding))
        points = entry.coordinates(axes, all_rows)[:, layer_axes]
        rows = frames_in_polygon(points, polygon)
        self.set_selection(rows)
        return rows

    def clear(self, _value: Any = None) -> None:
        """Forget the selection (the saved classes stay)."""
        self.set_selection(np.empty(0, dtype=np.int64))

    def set_selection(self, rows: np.ndarray) -> None:
        """Make ``rows`` (rows of the current embedding) the selection and show it."""
        self.rows = sorted_unique(rows)
        entry = self.entry
        self._frames_of = (
            None if entry is None else entry.time_layer,
            np.empty(0, dtype=np.int64) if entry is None else entry.frames[self.rows],
        )
        self._play_index = 0
        self._show_selected()
        self._update_readout()
        if self.ranking is not None and len(self.rows) and not self.runner.running:
            self._rerank()

    def _rerank(self) -> None:
        """Rank the cells again on the new selection when their traces are known (a
        ranking is shown: it must not describe another selection)."""
        try:
            key, _neural, rois = self._neural_key()
        except ValueError:
            return
        if key in self._traces_cache:
            self._rank(*self._traces_cache[key], rois)

    def selected_frames(self) -> np.ndarray:
        """Frames (of the recording) of the selected rows, sorted."""
        entry = self.entry
        if entry is None:
            return np.empty(0, dtype=np.int64)
        return sorted_unique(entry.frames[self.rows])

    # ----------------------------------------------------------------- showing
    def _show_selected(self, _value: Any = None) -> None:
        """Draw the selected frames over the embedding of every pane of the embedding dock (each
        at its own embedding's coordinates of those frames)."""
        entry = self.entry
        frames = None if entry is None else entry.frames[self.rows]
        for pane in self.view.panes():
            shown = pane.entry
            rows = None
            if shown is not None and frames is not None:
                rows = (
                    self.rows
                    if shown is entry
                    else np.flatnonzero(np.isin(shown.frames, frames)).astype(np.int64)
                )
            draw_selected(pane, rows)

    def _current_frame(self) -> int | None:
        layer = self._time_layer()
        return None if layer is None else frame_at_current_step(self.viewer, layer)

    def _time_layer(self) -> Any:
        entry = self.entry
        if entry is None or not entry.time_layer or entry.time_layer not in self.viewer.layers:
            return None
        return self.viewer.layers[entry.time_layer]

    def summary(self) -> str:
        """E.g. ``"231 of 3,000 frames selected (7.7 %) in 5 stretches."``"""
        entry = self.entry
        if entry is None or len(self.rows) == 0:
            return NO_SELECTION
        n, total = len(self.rows), len(entry.embedding)
        stretches = count_stretches(self.selected_frames())
        plural = "stretch" if stretches == 1 else "stretches"
        return (
            f"{n:,} of {total:,} frames selected ({100 * n / total:.1f} %) in "
            f"{stretches:,} {plural}."
        )

    def _update_readout(self, _event: Any = None) -> None:
        text = html.escape(self.summary())
        frame = self._current_frame()
        if len(self.rows) and frame is not None:
            frames = self.selected_frames()
            at = int(np.searchsorted(frames, frame))
            inside = at < len(frames) and int(frames[at]) == frame
            text += f" The current frame ({frame}) is {'in' if inside else 'not in'} it."
        self.readout.setText(text)

    # ----------------------------------------------------------------- playing
    def play(self, on: bool = True) -> None:
        """Start (``on``) or stop stepping the main viewer through the selected frames."""
        if on and len(self.rows) and self._time_layer() is not None:
            self.timer.start()
        else:
            self.timer.stop()
            if self.play_button.isChecked():
                with_signals = self.play_button.blockSignals(True)
                self.play_button.setChecked(False)
                self.play_button.blockSignals(with_signals)

    def play_step(self) -> None:
        """Show the next selected frame in the main viewer (from the first after the last)."""
        frames, layer = self.selected_frames(), self._time_layer()
        if len(frames) == 0 or layer is None:
            self.play(False)
            return
        frame = int(frames[self._play_index % len(frames)])
        self._play_index = (self._play_index + 1) % len(frames)
        go_to_frame(self.viewer, layer, frame)

    # ----------------------------------------------------------------- saving
    def save_as_label(self, _value: Any = None) -> list[str] | None:
        """Save the selection as a class named by the name field; returns the class names.

        The label of every frame (one class per saved selection, :data:`REST_CLASS` for the
        rest) goes into the ``selections`` column of the embedding's features and of the main
        viewer's ``selections`` behaviour layer.
        """
        entry, name = self.entry, str(self.name.value).strip()
        if entry is None or len(self.rows) == 0:
            self.saved_readout.setText("Select frames first.")
            return None
        if not name or name == REST_CLASS:
            self.saved_readout.setText(f"Name the class (not {REST_CLASS!r}).")
            return None
        saved = {**self.saved, name: self.rows}
        try:
            labels, classes = selection_labels(len(entry.embedding), saved, rest=REST_CLASS)
        except ValueError as error:
            self.saved_readout.setText(html.escape(str(error)))
            return None
        self.saved = saved
        self._label_embedding(entry, labels, classes)
        self._label_behaviour(entry, labels, classes)
        self.saved_readout.setText(
            html.escape(
                f"Label {LABEL_COLUMN!r}: "
                + ", ".join(f"{i} = {c}" for i, c in enumerate(classes))
                + f". Colour the embedding by it, or train on the {LABEL_LAYER!r} layer's "
                "discrete label."
            )
        )
        self.name.value = f"selection {len(self.saved) + 1}"
        return classes

    def _label_embedding(self, entry: EmbeddingEntry, labels: np.ndarray, classes: list) -> None:
        """The label as a categorical column of the embedding (the legend shows class names),
        coloured at once."""
        names = pd.Categorical.from_codes(labels, categories=[str(c) for c in classes])
        self.view.set_feature(entry.name, LABEL_COLUMN, names, colour=True)
        for widget in (self.column, self.equal_column):
            widget.reset_choices()

    def _label_behaviour(self, entry: EmbeddingEntry, labels: np.ndarray, classes: list) -> Any:
        """Add (or update) the hidden behaviour layer of the main viewer with the label."""
        n_frames = int(entry.frames.max()) + 1
        per_frame = np.full(n_frames, len(classes) - 1, dtype=np.int64)
        per_frame[entry.frames] = labels
        time_layer = self._time_layer()
        ndim = time_layer.ndim if time_layer is not None else 2
        data = np.zeros((n_frames, ndim))
        data[:, 0] = np.arange(n_frames)
        features = pd.DataFrame({LABEL_COLUMN: per_frame})
        metadata = {
            KIND_KEY: "behaviour",
            "columns": [LABEL_COLUMN],
            "classes": list(classes),
            "embedding": entry.name,
        }
        layers = self.viewer.layers
        active = layers.selection.active
        if LABEL_LAYER in layers:
            layers.remove(LABEL_LAYER)
        layer = self.viewer.add_points(
            data, name=LABEL_LAYER, features=features, metadata=metadata, visible=False, size=1
        )
        if active is not None and active in layers:  # keep the layer the user was working on
            layers.selection.active = active
        return layer

    # ----------------------------------------------------------------- which cells?
    def _preset_rises(self) -> None:
        """Rises on for a movie with ROIs (calcium imaging), off for a matrix; only when the
        neural layer changes (the user's choice stays otherwise)."""
        name = self.picker.neural.value
        if name == self._rises_for:
            return
        self._rises_for = name
        layer = self.picker.layer(name)
        self.rises.value = layer is not None and layer.ndim == 3

    def _neural_key(self) -> tuple[tuple, NeuralInput, Any]:
        """Read the chosen neural layers (as the Train widget does); returns the cache key, the
        worker's input and the ROI layer (``None`` for a matrix)."""
        layer = self.picker.layer(self.picker.neural.value)
        rois = self.picker.layer(self.picker.rois.value)
        source, neural = read_neural(layer, rois, self.picker.dff.value)
        if source.kind != "movie":
            rois = None
        key = (
            source.name,
            None if rois is None else rois.name,
            bool(self.picker.dff.value) if rois is not None else None,
            id(layer.data),
            None if rois is None else id(rois.data),
        )
        return key, neural, rois

    def rank_cells(self, _checked: Any = None) -> CellSelectivity | None:
        """Rank the cells of the chosen neural data by their activity in the selected frames.

        A movie's ROI traces are extracted in a worker (once per layer: a second ranking is
        instant); the ranking then paints the ROIs, lists the top cells and returns the ranking
        (``None`` when it waits for the worker or cannot start).
        """
        if len(self.rows) == 0:
            self.panel.not_started("Rank cells", "select frames first.")
            return None
        return self._with_traces("Rank cells", self._rank)

    def _with_traces(self, action: str, then: Callable[..., Any]) -> Any:
        """Call ``then(traces, roi_ids, rois_layer)`` with the chosen neural data's traces: at
        once when known (or a matrix), else after a worker extracted them (returns ``None``)."""
        try:
            key, neural, rois = self._neural_key()
        except ValueError as error:
            self.panel.not_started(action, error)
            return None
        if rois is not None:
            self._make_clickable(rois)
        if key in self._traces_cache:
            return then(*self._traces_cache[key], rois)
        if self.runner.running:  # extracting them already
            return None
        stop = threading.Event()
        if neural.matrix is not None:  # nothing to extract: no worker
            steps = self._extract(neural, stop)
            try:
                next(steps)
            except StopIteration as done:
                self._keep_traces(key, done.value)
                return then(*done.value, None)
        self.panel.start(
            self._extract(neural, stop),
            description="Extracting ROI traces",
            starting="Extracting ROI traces…",
            on_result=lambda result: self._on_traces(key, result, rois, then),
            measure=_trace_measure,
            stop=stop,
        )
        return None

    def _keep_traces(self, key: tuple, result: tuple[np.ndarray, np.ndarray | None]) -> None:
        """Remember one recording's traces (memory stays bounded) and offer its cells in the
        embedding dock's "colour by"."""
        self._traces_cache = {key: result}
        self.traces, self.roi_ids = result
        self.cell.max = result[0].shape[1]
        self.view.set_cell_activity(result[0])

    def _offer_matrix_cells(self, _value: Any = None) -> None:
        """A neurons × time matrix needs no extraction: offer its cells in "colour by" at once
        (a movie's, once its traces were extracted)."""
        layer = self.picker.layer(self.picker.neural.value)
        if layer is None or layer.ndim != 2 or np.prod(layer.data.shape) > MAX_EAGER_VALUES:
            return
        try:
            key, neural, _rois = self._neural_key()
        except ValueError:
            return
        if key not in self._traces_cache and neural.matrix is not None:
            self._keep_traces(key, (np.asarray(neural.matrix, dtype=np.float32), None))

    @staticmethod
    def _extract(
        neural: NeuralInput, stop: threading.Event
    ) -> Generator[TraceProgress, None, tuple[np.ndarray, np.ndarray | None] | None]:
        """Worker: the ``(T, N)`` traces and the ROI label of each column (``None``: a matrix)."""
        traces = yield from neural_matrix_steps(neural, stop)
        if traces is None:
            return None
        return traces, None if neural.rois is None else roi_labels(neural.rois)

    def _on_traces(
        self,
        key: tuple,
        result: tuple[np.ndarray, np.ndarray | None] | None,
        rois: Any,
        then: Callable[..., Any],
    ) -> None:
        if result is None:
            self.panel.say("Stopped.")
            return
        self._keep_traces(key, result)
        if rois is not None and rois not in self.viewer.layers:
            rois = None
        then(*result, rois)

    def _rank(
        self, traces: np.ndarray, ids: np.ndarray | None, rois: Any
    ) -> CellSelectivity | None:
        """Score the cells on the current selection and show the result."""
        frames = self.selected_frames()
        if len(frames) and frames[-1] >= len(traces):
            self.panel.say(
                f"The selection reaches frame {int(frames[-1])} but the neural data has "
                f"{len(traces)} frames."
            )
            return None
        activity = "rise" if self.rises.value else "trace"
        try:
            result = cell_selectivity(traces, frames, method=self.method.value, activity=activity)
        except ValueError as error:
            self.panel.say(f"Not ranked: {error}")
            return None
        self.ranking, self.traces, self.roi_ids = result, traces, ids
        self.cell.max = result.n_cells
        self.cell.value = int(result.order[0]) + 1
        self._show_ranking(result)
        if rois is not None and ids is not None:
            self._paint_scores(result, ids, rois)
        else:
            self.score_legend.setVisible(False)
        self.panel.say(
            f"Ranked {result.n_cells} cells on {result.n_selected:,} selected frames "
            f"against {result.n_other:,} others ({'rises' if activity == 'rise' else 'traces'})."
        )
        return result

    def cell_label(self, column: int) -> str:
        """E.g. ``"cell 12 (ROI 12)"`` for trace column 11 (``"cell 12"`` for a matrix)."""
        if self.roi_ids is None:
            return f"cell {column + 1}"
        return f"cell {column + 1} (ROI {int(self.roi_ids[column])})"

    def _show_ranking(self, result: CellSelectivity) -> None:
        symbol = SCORE_SYMBOLS.get(result.method, "score")
        lines = [
            f"{self.cell_label(int(c))}: {symbol} = {result.scores[c]:.2f}"
            for c in result.top(N_LISTED)
        ]
        self.top_readout.setText(
            f"<b>Top {len(lines)} cells</b><br>" + "<br>".join(html.escape(x) for x in lines)
        )

    def _paint_scores(self, result: CellSelectivity, ids: np.ndarray, rois: Any) -> Any:
        """Paint the ROIs by score in the "cell scores" Labels layer (created or reused)."""
        from napari.utils.colormaps import DirectLabelColormap

        colours, limit = score_colours(result.scores)
        transparent = np.zeros(4, dtype=np.float32)
        colour_dict: dict[int | None, np.ndarray] = {None: transparent, 0: transparent}
        colour_dict.update({int(label): colours[j] for j, label in enumerate(ids)})
        colormap = DirectLabelColormap(color_dict=colour_dict)
        layers = self.viewer.layers
        active = layers.selection.active
        if SCORES_LAYER in layers:
            layer = layers[SCORES_LAYER]
            if layer.data.shape != rois.data.shape or not np.array_equal(layer.data, rois.data):
                layer.data = np.array(rois.data, copy=True)
            layer.colormap = colormap
        else:
            layer = self.viewer.add_labels(
                np.array(rois.data, copy=True),
                name=SCORES_LAYER,
                colormap=colormap,
                opacity=SCORE_OPACITY,
                scale=rois.scale,
                translate=rois.translate,
            )
        layer.visible = True
        if active is not None and active in layers:
            layers.selection.active = active
        for clickable in (layer, rois):
            self._make_clickable(clickable)
        self.score_legend.show_legend(
            "score", Legend(colormap=SCORE_COLORMAP, low=-limit, high=limit)
        )
        self.score_legend.setVisible(True)
        return layer

    # ----------------------------------------------------------------- cells -> embedding
    def colour_by_cell(self, _value: Any = None) -> str | None:
        """Colour the embedding by the activity of the cell of the "cell" box."""
        return self.colour_by_cells([int(self.cell.value)])

    def colour_by_cells(self, cells: list[int]) -> str | None:
        """Colour the shown embedding by the activity of ``cells`` (1-based; several: their
        mean) at its frames; returns the features column (``None`` when impossible or when the
        traces are being extracted first: the embedding is coloured when they arrive)."""
        if self.entry is None:
            return None
        self.cell_readout.setText("Reading the cells' activity…")
        return self._with_traces(
            "Colour by a cell", lambda traces, ids, _rois: self._colour_by(cells, traces, ids)
        )

    def _colour_by(self, cells: list[int], traces: np.ndarray, ids: np.ndarray | None) -> Any:
        entry = self.entry
        if entry is None:
            return None
        cells = [c for c in dict.fromkeys(int(c) for c in cells) if 1 <= c <= traces.shape[1]]
        if not cells:
            return None
        if entry.frames.max() >= len(traces):
            self.cell_readout.setText(
                f"The embedding reaches frame {int(entry.frames.max())} but the neural data has "
                f"{len(traces)} frames."
            )
            return None
        columns = [c - 1 for c in cells]
        values = traces[entry.frames][:, columns].mean(axis=1)
        column = cells_title(cells)
        self.view.set_feature(entry.name, column, values, colour=True)
        self.chosen_cells = cells
        self.cell_readout.setText(html.escape(f"Embedding coloured by {column}."))
        return column

    def pick_roi(self, label: int, *, add: bool = False) -> str | None:
        """Colour the embedding by the cell of ROI ``label`` (``add``: together with the cells
        picked before, by their mean); returns the features column."""
        if self.roi_ids is None:
            return None
        column = int(np.searchsorted(self.roi_ids, label))
        if column >= len(self.roi_ids) or self.roi_ids[column] != label:
            return None
        cell = column + 1
        cells = [*self.chosen_cells, cell] if add else [cell]
        self.cell.value = cell
        return self.colour_by_cells(cells)

    def _make_clickable(self, layer: Any) -> None:
        """Clicks on ``layer``'s ROIs colour the embedding by their cells."""
        if layer not in self._clickable:
            layer.mouse_drag_callbacks.append(self._on_roi_click)
            self._clickable.append(layer)

    def _on_roi_click(self, layer: Any, event: Any) -> None:
        """Mouse press on an ROI (pan/zoom mode): colour the embedding by its cell."""
        if getattr(layer, "mode", "pan_zoom") != "pan_zoom":
            return
        value = layer.get_value(
            event.position,
            view_direction=event.view_direction,
            dims_displayed=event.dims_displayed,
            world=True,
        )
        if value is None or int(value) <= 0:
            return
        self.pick_roi(int(value), add="Shift" in tuple(event.modifiers))

    # ----------------------------------------------------------------- closing
    def _on_closed(self) -> None:
        self.timer.stop()
        for layer in self._clickable:
            if self._on_roi_click in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._on_roi_click)
        self._clickable = []
        self.viewer.dims.events.current_step.disconnect(self._update_readout)
