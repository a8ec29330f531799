"""Form pieces shared by the dock widgets: the layer picker and controls several widgets show.

:class:`DataPicker` offers the viewer's layers, keeps its lists current as layers come and go,
and reads the chosen layers into a :class:`DataSelection` (arrays and names, no viewer access
afterwards) for a worker. The train, goodness-of-fit, shuffle-controls, report, consistency and
grid-search widgets embed one.

Behaviour is paired with the neural frames by frame index (same length, or the common prefix
when asked) or by time: from the layers' ``metadata["timestamps"]``, or from sampling rates and
start times typed in (see :mod:`napari_cebra.io.alignment`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    Select,
    SpinBox,
    Widget,
)
from psygnal import Signal
from qtpy.QtWidgets import QAbstractSpinBox

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.workers import NeuralInput, TraceProgress, neural_matrix_steps
from napari_cebra.io.alignment import timestamps_from_rate
from napari_cebra.io.napari_contributions import KIND_KEY  # set by our readers and samples

NEURAL_KINDS = ("movie", "neural_matrix")
BEHAVIOUR_KINDS = ("behaviour", "keypoints")
TIMED_KINDS = ("points", "tracks")  # behaviour layers whose first axis is time
BY_FRAME = "frame index"
BY_TIMESTAMPS = "timestamps"
BY_RATES = "sampling rates"
ALIGNMENTS = (BY_FRAME, BY_TIMESTAMPS, BY_RATES)
"""How behaviour is paired with the neural frames (the "align by" choice)."""
ALIGNMENT_TOOLTIP = (
    "frame index: behaviour row i goes with neural frame i (same length).\n"
    "timestamps: by the times (s) the layers carry in metadata['timestamps'].\n"
    "sampling rates: by times built from the rates and start times typed below.\n"
    "By time, behaviour is interpolated at each neural frame (states hold until the next "
    "sample); frames outside the behaviour or in long gaps of it are left out."
)


def layer_tag(layer: Any) -> str | None:
    """What our readers and sample data tagged ``layer`` as (``metadata[KIND_KEY]``), if any."""
    metadata = getattr(layer, "metadata", None)
    return metadata.get(KIND_KEY) if isinstance(metadata, dict) else None


def is_neural_layer(layer: Any) -> bool:
    """Whether ``layer`` can be neural data: a non-RGB Image, 2-D (time × neurons) or 3-D (a
    movie), untagged or tagged as neural data (not as behaviour, keypoints, a mean image)."""
    tag = layer_tag(layer)
    return (
        layer_data.layer_kind(layer) == "image"
        and not getattr(layer, "rgb", False)
        and layer.ndim in (2, 3)
        and (tag is None or tag in NEURAL_KINDS)
    )


def is_behaviour_layer(layer: Any) -> bool:
    """Whether ``layer`` can hold per-frame behaviour: a non-RGB 2-D Image (time × variables),
    Points with a time axis, Tracks, or another non-Labels layer with features, untagged or
    tagged as behaviour or keypoints; never a movie, neural data or a mean image."""
    kind = layer_data.layer_kind(layer)
    tag = layer_tag(layer)
    if (tag is not None and tag not in BEHAVIOUR_KINDS) or kind == "labels":
        return False
    if kind == "image":
        return not getattr(layer, "rgb", False) and layer.ndim == 2
    if kind == "points":
        return layer.ndim >= 2
    if kind == "tracks":
        return True
    return len(getattr(layer, "features", ())) > 0


def neural_layer_names(viewer: Any) -> list[str]:
    """Layers that can be neural data (:func:`is_neural_layer`)."""
    return [layer.name for layer in viewer.layers if is_neural_layer(layer)]


def labels_layer_names(viewer: Any) -> list[str]:
    """Labels layers (ROI candidates)."""
    return [layer.name for layer in viewer.layers if layer_data.layer_kind(layer) == "labels"]


def behaviour_layer_names(viewer: Any) -> list[str]:
    """Layers that can hold per-frame behaviour (:func:`is_behaviour_layer`)."""
    return [layer.name for layer in viewer.layers if is_behaviour_layer(layer)]


def layer_choices(viewer: Any, names: Callable[[Any], list[str]]) -> Callable[[Any], list[str]]:
    """A magicgui ``choices`` callback offering ``names(viewer)`` (e.g. :func:`neural_layer_names`)."""

    def choices(_widget: Any = None) -> list[str]:
        return names(viewer)

    return choices


BEHAVIOUR_LABELS_NEEDED = (
    "A behaviour-conditioned model (CEBRA-Behavior, conditional other than 'time') trains on "
    "behaviour: choose a behaviour layer and at least one behaviour label, or train on time only."
)


def valid_fraction_box(value: float) -> FloatSpinBox:
    """The "validation fraction" control: the last part of the recording is held out."""
    return FloatSpinBox(
        label="validation fraction",
        min=0.0,
        max=0.9,
        step=0.05,
        value=value,
        tooltip="The last part of the recording is held out from training.",
    )


def scoring_batches_box(tooltip: str | None = None) -> SpinBox:
    """The "scoring batches" control: batches averaged for a goodness-of-fit score."""
    return SpinBox(label="scoring batches", min=1, max=10_000, value=100, tooltip=tooltip)


def read_neural(
    neural_layer: Any, rois_layer: Any, dff: bool
) -> tuple[layer_data.NeuralSource, NeuralInput]:
    """Check the neural layer and read it into what a worker needs.

    Parameters
    ----------
    neural_layer : napari.layers.Image or None
        Time × neurons matrix or time × y × x movie.
    rois_layer : napari.layers.Labels or None
        ROI labels; used only when ``neural_layer`` is a movie.
    dff : bool
        Convert a movie's extracted traces to ΔF/F.

    Raises
    ------
    ValueError
        Every problem :func:`layer_data.neural_source` finds (no layer, RGB, wrong number of
        dimensions, a movie without matching ROIs).
    """
    is_movie = neural_layer is not None and neural_layer.ndim == 3
    source = layer_data.neural_source(neural_layer, rois_layer if is_movie else None)
    if source.kind == "matrix":
        return source, NeuralInput(matrix=layer_data.neural_matrix(neural_layer))
    return source, NeuralInput(
        movie=neural_layer.data, rois=np.asarray(rois_layer.data), dff=bool(dff)
    )


def time_layer_name(source: layer_data.NeuralSource, behaviour_layer: Any) -> str | None:
    """Main-viewer layer whose first axis is time: the movie, else timed behaviour points."""
    if source.kind == "movie":
        return source.name
    if behaviour_layer is not None and layer_data.layer_kind(behaviour_layer) in TIMED_KINDS:
        return behaviour_layer.name
    return None


@dataclass
class DataSelection:
    """Layers read into what a worker needs (no viewer access afterwards).

    Attributes
    ----------
    neural : NeuralInput
        The neural matrix, or the movie and ROIs to extract traces from.
    labels : list of np.ndarray
        Label arrays, one row per frame used (continuous float32 ``(T, k)`` and/or discrete
        int64).
    n_frames : int
        Frames used.
    valid_fraction : float
        Last fraction of the frames held out for validation.
    description : dict
        Layer names and label names, for messages and the session registry.
    table : pandas.DataFrame or None
        Behaviour at the frames used (for layer features), indexed by neural frame (index name
        ``"frame"``, which :func:`layer_data.embedding_features` reads).
    time_layer : str or None
        Main-viewer layer whose first axis is time (movie or keypoints), for the time link.
    frames : np.ndarray or None
        Indices of the neural frames used when they are not the first ``n_frames`` (after
        aligning by time); ``neural.frames`` holds them too, so the worker's matrix has one row
        per frame used.
    message : str
        Frames left out and why, for the user (``""`` when every frame is used).
    """

    neural: NeuralInput
    labels: list[np.ndarray]
    n_frames: int
    valid_fraction: float
    description: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    time_layer: str | None = None
    frames: np.ndarray | None = None
    message: str = ""


def neural_frames(
    selection: DataSelection,
) -> Generator[TraceProgress, None, np.ndarray]:
    """Worker step: the ``(n_frames, n)`` matrix of the frames used, extracting ROI traces if
    needed."""
    matrix = yield from neural_matrix_steps(selection.neural, threading.Event())
    return matrix[: selection.n_frames]


def _clock_fields(name: str) -> tuple[FloatSpinBox, FloatSpinBox]:
    """Sampling rate (Hz) and start time (s) of the ``name`` recording, for "sampling rates"."""
    rate = FloatSpinBox(
        label=f"{name} rate",
        min=0.001,
        max=1e6,
        step=1.0,
        value=30.0,
        tooltip=f"Sampling rate of the {name} recording (Hz): frames or rows per second.",
    )
    start = FloatSpinBox(
        label=f"{name} start",
        min=-1e9,
        max=1e9,
        step=0.1,
        value=0.0,
        tooltip=f"Time of the first {name} sample (s), on the same clock as the other start.",
    )
    for field_box, suffix in ((rate, " Hz"), (start, " s")):
        field_box.native.setSuffix(suffix)
        field_box.native.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
    return rate, start


class DataPicker(Container):
    """Layer pickers: neural data (matrix or movie + ROIs), behaviour and its label columns.

    Only layers that fit are offered (:func:`is_neural_layer`, :func:`is_behaviour_layer`; the
    behaviour list never holds the chosen neural layer). Every picker preselects the same way:
    when it opens and when layers are added, a layer our readers or sample data tagged as neural
    data (``metadata[KIND_KEY]``) replaces an untagged neural choice, and the first tagged
    behaviour layer is chosen if no behaviour is; without tagged layers the neural choice is the
    first that fits and the behaviour stays unset.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Viewer whose layers are offered.
    discrete : bool
        Offer a discrete label column.
    valid_fraction : float or None
        Default validation fraction; ``None`` hides the control.
    variables_label, variables_height : str, int
        Label and height (px) of the continuous-label list.
    no_labels_note : str, optional
        Shown under the label lists while no label column is chosen, for widgets that need
        labels or skip steps without them.
    follow_layer_edits : bool
        Also refresh when a layer is renamed (a chosen layer stays chosen under its new name) or
        its data replaced.
    extra : sequence of magicgui widgets
        Shown below the pickers (e.g. a summary of the selection).

    Attributes
    ----------
    labels_note : magicgui.widgets.Label
        ``no_labels_note`` (hidden while a label column is chosen, or without a note).
    alignment_box : magicgui.widgets.Container
        How behaviour is paired with the neural frames: ``alignment`` (one of
        :data:`ALIGNMENTS`; when the chosen layers change it becomes "timestamps" if both
        carry them, else "frame index" unless "sampling rates" was chosen), ``common_prefix``
        (frame index only), the rate and start-time fields (sampling rates only) and
        ``alignment_note``, which says how many frames are used and why some are left out.
        Widgets that show neural data only hide the box.
    selection_changed : psygnal.Signal
        Emitted after the chosen layers or label columns changed.
    """

    selection_changed = Signal()

    def __init__(
        self,
        viewer: Any,
        *,
        discrete: bool = True,
        valid_fraction: float | None = 0.2,
        variables_label: str = "continuous labels",
        variables_height: int = 80,
        no_labels_note: str | None = None,
        follow_layer_edits: bool = False,
        extra: Sequence[Widget] = (),
    ) -> None:
        self.viewer = viewer
        self.offers_discrete = discrete
        self.offers_valid_fraction = valid_fraction is not None
        self.no_labels_note = no_labels_note
        self.follow_layer_edits = follow_layer_edits
        self._table_cache: tuple[str, pd.DataFrame | None] = ("", None)
        self.neural = ComboBox(
            label="neural data", choices=layer_choices(viewer, neural_layer_names)
        )
        self.rois = ComboBox(
            label="ROI labels", choices=layer_choices(viewer, labels_layer_names), nullable=True
        )
        self.dff = CheckBox(text="ΔF/F (running-percentile baseline)", value=False)
        self.behaviour = ComboBox(label="behaviour", choices=self._behaviour_choices, nullable=True)
        self.variables = Select(label=variables_label, choices=self._continuous_choices)
        self.variables.native.setMaximumHeight(variables_height)
        self.discrete = ComboBox(
            label="discrete label", choices=self._discrete_choices, nullable=True
        )
        self.labels_note = Label(value=no_labels_note or "", label="")
        self.labels_note.native.setWordWrap(True)
        self._build_alignment_box()
        self.valid_fraction = valid_fraction_box(valid_fraction or 0.0)
        shown = [self.neural, self.rois, self.dff, self.behaviour, self.variables]
        shown += [self.discrete] if discrete else []
        shown += [self.labels_note] if no_labels_note else []
        shown += [self.alignment_box]
        shown += [self.valid_fraction] if valid_fraction is not None else []
        super().__init__(widgets=[*shown, *extra], label="data")
        for widget in (self.neural, self.rois, self.behaviour):
            widget.changed.connect(self._on_choice)
        for widget in (self.variables, self.discrete):
            widget.changed.connect(self._on_labels_choice)
        for widget in (self.alignment, self.common_prefix, *self.clock_fields):
            widget.changed.connect(self._on_alignment_choice)
        events = viewer.layers.events
        events.inserted.connect(self._on_inserted)
        for event in (events.removed, events.moved):
            event.connect(self.refresh)
        self.native.destroyed.connect(self._disconnect)
        self.refresh()
        self._preselect(list(viewer.layers))

    def _build_alignment_box(self) -> None:
        self.alignment = ComboBox(
            label="align by", choices=ALIGNMENTS, value=BY_FRAME, tooltip=ALIGNMENT_TOOLTIP
        )
        self.common_prefix = CheckBox(text="use common prefix if lengths differ", value=False)
        self.neural_rate, self.neural_start = _clock_fields("neural")
        self.behaviour_rate, self.behaviour_start = _clock_fields("behaviour")
        self.clock_fields = (
            self.neural_rate,
            self.neural_start,
            self.behaviour_rate,
            self.behaviour_start,
        )
        self.clock_rows = (
            Container(widgets=self.clock_fields[:2], layout="horizontal", labels=False),
            Container(widgets=self.clock_fields[2:], layout="horizontal", labels=False),
        )
        for row, label in zip(self.clock_rows, ("neural clock", "behaviour clock"), strict=True):
            row.label = label
            row.margins = (0, 0, 0, 0)
        self.alignment_note = Label(value="", label="")
        self.alignment_note.native.setWordWrap(True)
        self.alignment_box = Container(
            widgets=[self.alignment, self.common_prefix, *self.clock_rows, self.alignment_note],
            label="",
        )
        self.alignment_box.margins = (0, 0, 0, 0)
        self._paired_layers: tuple[str | None, str | None] = (None, None)
        self._show_alignment_fields()

    # -------------------------------------------------------------- choices
    def _continuous_choices(self, _widget: Any = None) -> list[str]:
        table = self.behaviour_table()
        return [] if table is None else layer_data.continuous_columns(table)

    def _discrete_choices(self, _widget: Any = None) -> list[str]:
        table = self.behaviour_table()
        return [] if table is None else layer_data.discrete_columns(table)

    def _behaviour_choices(self, _widget: Any = None) -> list[str]:
        return [n for n in behaviour_layer_names(self.viewer) if n != self.neural.value]

    def layer(self, name: str | None) -> Any:
        """The viewer's layer called ``name`` (``None`` if unset or gone)."""
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def behaviour_table(self) -> pd.DataFrame | None:
        """Per-frame table of the chosen behaviour layer (``None`` if unset or unusable)."""
        name = self.behaviour.value
        if not name or name not in self.viewer.layers:
            return None
        if self._table_cache[0] != name:
            try:
                table = layer_data.behaviour_table(self.viewer.layers[name])
            except ValueError:
                table = None
            self._table_cache = (name, table)
        return self._table_cache[1]

    def refresh(self, _event: Any = None) -> None:
        """Offer the current layers (after layers were added, removed, reordered or edited)."""
        if self.follow_layer_edits:
            for layer in self.viewer.layers:
                layer.events.name.connect(self._on_rename)
                layer.events.data.connect(self._on_choice)
        self._table_cache = ("", None)
        with self.neural.changed.blocked(), self.rois.changed.blocked():
            with self.behaviour.changed.blocked():
                for widget in (self.neural, self.rois, self.behaviour):
                    widget.reset_choices()
        self._on_choice()

    def _on_inserted(self, event: Any) -> None:
        self.refresh()
        self._preselect([event.value])

    def _on_rename(self, event: Any) -> None:
        """A chosen layer that was renamed stays chosen under its new name."""
        new_name = event.source.name
        for widget in (self.neural, self.rois, self.behaviour):
            if widget.value is not None and widget.value not in self.viewer.layers:
                with widget.changed.blocked():
                    widget.reset_choices()
                    if new_name in widget.choices:
                        widget.value = new_name
        self.refresh()

    def _preselect(self, layers: Sequence[Any]) -> None:
        """Choose tagged layers among ``layers`` (those just added): a tagged neural layer
        replaces an untagged choice, a tagged behaviour layer fills an empty one."""
        tags = {layer.name: layer_tag(layer) for layer in layers}
        if layer_tag(self.layer(self.neural.value)) not in NEURAL_KINDS:
            tagged = [n for n in self.neural.choices if tags.get(n) in NEURAL_KINDS]
            if tagged:
                self.neural.value = tagged[0]
        if self.behaviour.value is None:
            tagged = [n for n in self.behaviour.choices if tags.get(n) in BEHAVIOUR_KINDS]
            if tagged:
                self.behaviour.value = tagged[0]

    def _on_choice(self, _value: Any = None) -> None:
        self._table_cache = ("", None)
        with self.behaviour.changed.blocked():
            self.behaviour.reset_choices()  # the behaviour list never holds the neural layer
        neural = self.layer(self.neural.value)
        is_movie = neural is not None and neural.ndim == 3
        self.rois.visible = self.dff.visible = is_movie
        if is_movie and self.rois.value is None and self.rois.choices[1:]:
            self.rois.value = self.rois.choices[1]
        previous = set(self.variables.value)
        with self.variables.changed.blocked(), self.discrete.changed.blocked():
            self.variables.reset_choices()
            self.discrete.reset_choices()
            kept = [c for c in self.variables.choices if c in previous]
            self.variables.value = kept or list(self.variables.choices)
        self._default_alignment()
        self._on_labels_choice()

    def _on_labels_choice(self, _value: Any = None) -> None:
        has_labels = bool(self.variables.value) or (
            self.offers_discrete and self.discrete.value is not None
        )
        self.labels_note.visible = bool(self.no_labels_note) and not has_labels
        self._preview_alignment()
        self.selection_changed.emit()

    def _on_alignment_choice(self, _value: Any = None) -> None:
        self._show_alignment_fields()
        self._preview_alignment()
        self.selection_changed.emit()

    def _default_alignment(self) -> None:
        """When the chosen layers change: by timestamps if both carry them, else by frame index
        (a typed-in "sampling rates" choice stays)."""
        pair = (self.neural.value, self.behaviour.value)
        if pair == self._paired_layers:
            return
        self._paired_layers = pair
        layers = [self.layer(name) for name in pair]
        timed = all(
            layer is not None and layer.metadata.get(layer_data.TIMESTAMPS_KEY) is not None
            for layer in layers
        )
        if timed or self.alignment.value == BY_TIMESTAMPS:
            with self.alignment.changed.blocked():
                self.alignment.value = BY_TIMESTAMPS if timed else BY_FRAME
            self._show_alignment_fields()

    def _show_alignment_fields(self) -> None:
        self.common_prefix.visible = self.alignment.value == BY_FRAME
        for row in self.clock_rows:
            row.visible = self.alignment.value == BY_RATES

    def _preview_alignment(self) -> None:
        """Say in ``alignment_note`` which frames the chosen layers and labels give."""
        neural = self.layer(self.neural.value)
        behaviour = self.layer(self.behaviour.value)
        table = self.behaviour_table()
        note = ""
        if neural is not None and behaviour is not None and table is not None:
            try:
                note = self.pairing(neural, neural.data.shape[0], behaviour, table).message
            except ValueError as error:
                note = str(error)
        self.alignment_note.value = note
        self.alignment_note.visible = bool(note)

    def _disconnect(self, *_args: Any) -> None:
        events = self.viewer.layers.events
        events.inserted.disconnect(self._on_inserted)
        for event in (events.removed, events.moved):
            event.disconnect(self.refresh)
        if self.follow_layer_edits:
            for layer in self.viewer.layers:
                layer.events.name.disconnect(self._on_rename)
                layer.events.data.disconnect(self._on_choice)

    # -------------------------------------------------------------- reading
    def set_from_description(self, trained_on: dict[str, Any]) -> None:
        """Select the layers and labels a session model was trained on (as far as they exist)."""
        self.refresh()
        for widget, key in (
            (self.neural, "neural"),
            (self.rois, "rois"),
            (self.behaviour, "behaviour"),
        ):
            name = trained_on.get(key)
            if name in widget.choices:
                widget.value = name
        if trained_on.get("dff") is not None:
            self.dff.value = bool(trained_on["dff"])
        continuous = trained_on.get("continuous") or []
        self.variables.value = [c for c in continuous if c in self.variables.choices]
        discrete = trained_on.get("discrete")
        self.discrete.value = discrete if discrete in self.discrete.choices else None
        if "valid_fraction" in trained_on:
            self.valid_fraction.value = float(trained_on["valid_fraction"])
        alignment = trained_on.get("alignment", BY_FRAME)
        if alignment in ALIGNMENTS:
            self.alignment.value = alignment
        for widget, value in zip(self.clock_fields, trained_on.get("clocks") or (), strict=False):
            widget.value = float(value)
        n_frames = trained_on.get("n_frames")
        neural = self.layer(self.neural.value)
        if (
            alignment == BY_FRAME
            and n_frames is not None
            and neural is not None
            and n_frames < neural.data.shape[0]
        ):
            self.common_prefix.value = True

    def pairing(
        self,
        neural_layer: Any,
        n_neural: int,
        behaviour_layer: Any,
        table: pd.DataFrame,
        label_columns: list[str] | None = None,
    ) -> layer_data.FramePairing:
        """Pair ``table`` with the ``n_neural`` frames of ``neural_layer`` as "align by" says.

        Parameters
        ----------
        neural_layer, behaviour_layer : napari layers
            The chosen layers (for their timestamps and names).
        n_neural : int
            Frames of the neural data.
        table : pandas.DataFrame
            Behaviour table of ``behaviour_layer``.
        label_columns : list of str, optional
            Columns trained on (default: the chosen continuous and discrete columns); by time,
            they decide which frames are kept.

        Raises
        ------
        ValueError
            Different lengths by frame index without the common prefix; by timestamps, a layer
            without (valid) timestamps; by time, every problem of
            :func:`layer_data.pair_by_time`.
        """
        if self.alignment.value == BY_FRAME:
            return layer_data.pair_by_index(
                n_neural,
                table,
                neural_name=neural_layer.name,
                behaviour_name=behaviour_layer.name,
                allow_prefix=bool(self.common_prefix.value),
            )
        if label_columns is None:
            label_columns = list(self.variables.value)
            if self.offers_discrete and self.discrete.value:
                label_columns.append(self.discrete.value)
        neural_times, behaviour_times = self._clocks(
            neural_layer, n_neural, behaviour_layer, len(table)
        )
        return layer_data.pair_by_time(
            table,
            neural_times,
            behaviour_times,
            list(dict.fromkeys(label_columns)),
            layer_data.circular_columns(behaviour_layer),
        )

    def _clocks(
        self, neural_layer: Any, n_neural: int, behaviour_layer: Any, n_behaviour: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps (s) of the neural frames and of the behaviour rows."""
        if self.alignment.value == BY_RATES:
            return (
                timestamps_from_rate(n_neural, self.neural_rate.value, self.neural_start.value),
                timestamps_from_rate(
                    n_behaviour, self.behaviour_rate.value, self.behaviour_start.value
                ),
            )
        neural_times = layer_data.layer_timestamps(neural_layer, n_neural)
        behaviour_times = layer_data.layer_timestamps(behaviour_layer, n_behaviour)
        untimed = [
            layer.name
            for layer, times in ((neural_layer, neural_times), (behaviour_layer, behaviour_times))
            if times is None
        ]
        if untimed:
            raise ValueError(
                f"Layer {' and '.join(repr(n) for n in untimed)} carries no timestamps "
                f"(metadata['{layer_data.TIMESTAMPS_KEY}']): align by '{BY_RATES}' and type the "
                f"rates, or by '{BY_FRAME}'."
            )
        return neural_times, behaviour_times

    def read(
        self,
        n_frames: int | None = None,
        *,
        continuous: bool = True,
        missing_labels: str | None = None,
    ) -> DataSelection:
        """Read the chosen layers into a :class:`DataSelection` (main thread only).

        Parameters
        ----------
        n_frames : int, optional
            Use only the first ``n_frames`` of the frames paired with behaviour (e.g. those a
            model was trained on).
        continuous : bool
            Use the chosen continuous label columns (``False``: a time-only model).
        missing_labels : str, optional
            Refuse, with this message, a selection that uses labels (``continuous``) but has no
            label column.

        Raises
        ------
        ValueError
            For unusable layers, behaviour that cannot be paired with the neural frames
            (:meth:`pairing`), more frames asked for than are paired, or ``missing_labels``.
        """
        neural_layer = self.layer(self.neural.value)
        behaviour_layer = self.layer(self.behaviour.value)
        rois_layer = self.layer(self.rois.value)
        source, neural = read_neural(neural_layer, rois_layer, self.dff.value)
        columns = list(self.variables.value) if continuous else []
        discrete = self.discrete.value if self.offers_discrete else None
        if continuous and missing_labels and not columns and not discrete:
            raise ValueError(missing_labels)
        if behaviour_layer is None:
            pairing = layer_data.FramePairing(source.n_frames, None, None, "")
        else:
            table = layer_data.behaviour_table(behaviour_layer)
            labels = columns + ([discrete] if discrete else [])
            pairing = self.pairing(neural_layer, source.n_frames, behaviour_layer, table, labels)
        if n_frames is not None:
            if n_frames > pairing.n_frames:
                raise ValueError(
                    f"The model was trained on {n_frames} frames but the chosen layers have only "
                    f"{pairing.n_frames}."
                )
            pairing = pairing.head(n_frames)
        self.alignment_note.value = pairing.message
        self.alignment_note.visible = bool(pairing.message)
        is_movie = source.kind == "movie"
        by_time = pairing.frames is not None
        time_layer = time_layer_name(source, behaviour_layer)
        if by_time and time_layer != source.name:
            time_layer = None  # timed behaviour points count behaviour samples, not neural frames
        return DataSelection(
            neural=dataclasses.replace(neural, frames=pairing.frames),
            labels=layer_data.label_arrays(pairing.table, columns, discrete, pairing.n_frames),
            n_frames=pairing.n_frames,
            valid_fraction=(
                float(self.valid_fraction.value) if self.offers_valid_fraction else 0.0
            ),
            description={
                "neural": source.name,
                "rois": rois_layer.name if is_movie else None,
                "dff": bool(self.dff.value) if is_movie else None,
                "behaviour": getattr(behaviour_layer, "name", None),
                **layer_data.label_description(columns, discrete),
                "n_frames": pairing.n_frames,
                "valid_fraction": float(self.valid_fraction.value),
                "time_layer": time_layer,
                "alignment": self.alignment.value if behaviour_layer is not None else BY_FRAME,
                **(
                    {"clocks": [float(w.value) for w in self.clock_fields]}
                    if self.alignment.value == BY_RATES
                    else {}
                ),
            },
            table=pairing.table,
            time_layer=time_layer,
            frames=pairing.frames,
            message=pairing.message,
        )
