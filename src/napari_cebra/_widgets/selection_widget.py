"""The "CEBRA selection" dock widget: select frames on the embedding, watch them, keep them.

Frames are selected on the embedding shown in the "CEBRA embedding" dock, by a range of one of
its features (optionally and a value of another, e.g. a running direction) or by a shape drawn
on a 2-D view of it. The selection is drawn over the embedding, summarised in words, played in
the main viewer (the time slider steps through the selected frames only), and saved as a class
of a discrete label: a ``selections`` column of the embedding's features (so the dock can colour
by it) and of a behaviour layer of the main viewer (so the Train CEBRA widget can train on it).
The science is in :mod:`napari_cebra.workflows.selection`.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, PushButton
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QPushButton

from napari_cebra._widgets.background import CloseWatcher
from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.embedding_view import (
    HIGHLIGHT_LAYER,
    MAX_SHOWN_POINTS,
    EmbeddingEntry,
    EmbeddingView,
    embedding_view,
)
from napari_cebra._widgets.time_link import frame_at_current_step, go_to_frame
from napari_cebra.io.napari_contributions import KIND_KEY
from napari_cebra.workflows.selection import (
    frames_in_polygon,
    frames_in_range,
    selection_labels,
)

if TYPE_CHECKING:
    import napari

SHAPE_LAYER = "selection shape"
SELECTED_LAYER = "selected frames"
LABEL_COLUMN = "selections"
LABEL_LAYER = "selections"
REST_CLASS = "other"
PLAY_INTERVAL_MS = 50  # ~20 frames/s
MAX_EQUAL_VALUES = 20  # a column with more distinct values is not offered for "equal to"
NO_SELECTION = "No frames selected."


def count_stretches(frames: np.ndarray) -> int:
    """Number of runs of consecutive frames in ``frames`` (sorted, unique or not)."""
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    return 0 if frames.size == 0 else int(1 + np.count_nonzero(np.diff(frames) > 1))


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

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        view = embedding_view(napari_viewer)
        self.rows = np.empty(0, dtype=np.int64)
        self.saved: dict[str, np.ndarray] = {}
        self._entry_name: str | None = None

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
        view.choice.changed.connect(self._on_entry_changed)
        napari_viewer.dims.events.current_step.connect(self._update_readout)
        self._close_watcher = CloseWatcher(self, self._on_closed)
        self._on_entry_changed()

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
        """Another embedding is shown: offer its columns, forget the selection of the last one."""
        name = None if self.entry is None else self.entry.name
        if name != self._entry_name:
            self._entry_name = name
            self.saved = {}
            self.saved_readout.setText("")
            self.set_selection(np.empty(0, dtype=np.int64))
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
        self.rows = np.unique(np.asarray(rows, dtype=np.int64))
        self._play_index = 0
        self._show_selected()
        self._update_readout()

    def selected_frames(self) -> np.ndarray:
        """Frames (of the recording) of the selected rows, sorted."""
        entry = self.entry
        if entry is None:
            return np.empty(0, dtype=np.int64)
        return np.sort(entry.frames[self.rows])

    # ----------------------------------------------------------------- showing
    def _show_selected(self) -> None:
        """Draw the selected rows over the embedding (thinned to the drawn rows when many)."""
        entry, viewer = self.entry, self.view.viewer
        if SELECTED_LAYER in viewer.layers and (
            entry is None or viewer.layers[SELECTED_LAYER].ndim != self.view.layer(entry.name).ndim
        ):
            viewer.layers.remove(SELECTED_LAYER)
        if entry is None:
            return
        points_layer = self.view.layer(entry.name)
        rows = self.rows
        if len(rows) > MAX_SHOWN_POINTS:
            rows = np.intersect1d(rows, entry.shown)
        coords = entry.coordinates(points_layer.metadata["cebra_axes"], rows)
        if SELECTED_LAYER in viewer.layers:
            layer = viewer.layers[SELECTED_LAYER]
            layer.data = coords
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
        layer.visible = len(rows) > 0
        layers = viewer.layers
        if HIGHLIGHT_LAYER in layers:  # the current frame stays on top
            layers.move(layers.index(SELECTED_LAYER), layers.index(HIGHLIGHT_LAYER))
        layers.selection.active = points_layer

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
            inside = bool(np.isin(frame, self.selected_frames()))
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

    # ----------------------------------------------------------------- closing
    def _on_closed(self) -> None:
        self.timer.stop()
        self.viewer.dims.events.current_step.disconnect(self._update_readout)
