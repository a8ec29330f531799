"""The "CEBRA goodness of fit" dock widget, and the layer picker shared by the analysis widgets.

For a model of the session it scores the goodness of fit (GoF, bits) on the training and the
validation part of the data it was trained on, plots the GoF history and the loss / temperature
curves of training, and reads them in plain words the way the authors' recipe does.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, Select, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.background import BackgroundRunner
from napari_cebra._widgets.line_plot import LinePlot
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import (
    NeuralInput,
    TraceProgress,
    neural_matrix_steps,
    split_point,
)

if TYPE_CHECKING:
    import napari

VERDICT_COLOURS = {"pass": "#3ba55d", "warn": "#e6a23c", "fail": "#e5534b", "info": "#9aa0a6"}


# ---------------------------------------------------------------------------------------------
# choosing layers (shared by the goodness-of-fit, shuffle-control and report widgets)


@dataclass
class DataSelection:
    """Layers read into what a worker needs (no viewer access afterwards).

    Attributes
    ----------
    neural : NeuralInput
        The neural matrix, or the movie and ROIs to extract traces from.
    labels : list of np.ndarray
        Label arrays cut to ``n_frames`` (continuous float32 ``(T, k)`` and/or discrete int64).
    n_frames : int
        Frames used.
    valid_fraction : float
        Last fraction of the frames held out for validation.
    description : dict
        Layer names and label names, for messages and the session registry.
    table : pandas.DataFrame or None
        Behaviour table cut to ``n_frames`` (for layer features).
    time_layer : str or None
        Main-viewer layer whose first axis is time (movie or keypoints), for the time link.
    """

    neural: NeuralInput
    labels: list[np.ndarray]
    n_frames: int
    valid_fraction: float
    description: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    time_layer: str | None = None


def neural_frames(
    selection: DataSelection,
) -> Generator[TraceProgress, None, np.ndarray]:
    """Worker step: the ``(n_frames, n)`` neural matrix, extracting ROI traces if needed."""
    matrix = yield from neural_matrix_steps(selection.neural, threading.Event())
    return matrix[: selection.n_frames]


class DataPicker(Container):
    """Layer pickers: neural data (matrix or movie + ROIs), behaviour and its label columns.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Viewer whose layers are offered.
    discrete : bool
        Offer a discrete label column.
    valid_fraction : float or None
        Default validation fraction; ``None`` hides the control.
    labels_required : bool
        :meth:`read` refuses a selection without any label column.
    """

    def __init__(
        self,
        viewer: Any,
        *,
        discrete: bool = True,
        valid_fraction: float | None = 0.2,
        labels_required: bool = False,
    ) -> None:
        self.viewer = viewer
        self.labels_required = labels_required
        self.offers_discrete = discrete
        self.offers_valid_fraction = valid_fraction is not None
        self._table_cache: tuple[str, pd.DataFrame | None] = ("", None)
        self.neural = ComboBox(label="neural data", choices=self._neural_choices)
        self.rois = ComboBox(label="ROI labels", choices=self._labels_choices, nullable=True)
        self.dff = CheckBox(text="ΔF/F (running-percentile baseline)", value=False)
        self.behaviour = ComboBox(label="behaviour", choices=self._behaviour_choices, nullable=True)
        self.variables = Select(label="continuous labels", choices=self._continuous_choices)
        self.variables.native.setMaximumHeight(80)
        self.discrete = ComboBox(
            label="discrete label", choices=self._discrete_choices, nullable=True
        )
        self.discrete.visible = discrete
        self.common_prefix = CheckBox(text="use common prefix if lengths differ", value=False)
        self.valid_fraction = FloatSpinBox(
            label="validation fraction",
            min=0.0,
            max=0.9,
            step=0.05,
            value=valid_fraction or 0.0,
            tooltip="The last part of the recording is held out from training.",
        )
        self.valid_fraction.visible = valid_fraction is not None
        super().__init__(
            widgets=[
                self.neural,
                self.rois,
                self.dff,
                self.behaviour,
                self.variables,
                self.discrete,
                self.common_prefix,
                self.valid_fraction,
            ],
            label="data",
        )
        for widget in (self.neural, self.rois, self.behaviour):
            widget.changed.connect(self._on_choice)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self.refresh)
        self.native.destroyed.connect(self._disconnect)
        self.refresh()

    # -------------------------------------------------------------- choices
    def _neural_choices(self, _widget: Any = None) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if layer_data.layer_kind(layer) == "image" and layer.ndim in (2, 3)
        ]

    def _labels_choices(self, _widget: Any = None) -> list[str]:
        return [
            layer.name for layer in self.viewer.layers if layer_data.layer_kind(layer) == "labels"
        ]

    def _behaviour_choices(self, _widget: Any = None) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if layer_data.layer_kind(layer) in ("image", "points", "tracks")
            or len(getattr(layer, "features", ())) > 0
        ]

    def _continuous_choices(self, _widget: Any = None) -> list[str]:
        table = self.behaviour_table()
        return [] if table is None else layer_data.continuous_columns(table)

    def _discrete_choices(self, _widget: Any = None) -> list[str]:
        table = self.behaviour_table()
        return [] if table is None else layer_data.discrete_columns(table)

    def _layer(self, name: str | None) -> Any:
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
        """Offer the current layers (after layers were added, removed or reordered)."""
        self._table_cache = ("", None)
        for widget in (self.neural, self.rois, self.behaviour):
            widget.reset_choices()
        self._on_choice()

    def _on_choice(self, _value: Any = None) -> None:
        self._table_cache = ("", None)
        neural = self._layer(self.neural.value)
        is_movie = neural is not None and neural.ndim == 3
        self.rois.visible = self.dff.visible = is_movie
        if is_movie and self.rois.value is None and self.rois.choices[1:]:
            self.rois.value = self.rois.choices[1]
        if self.labels_required and self.behaviour.value is None:
            others = [c for c in self.behaviour.choices[1:] if c != self.neural.value]
            if others:
                self.behaviour.value = others[0]  # triggers this method again
                return
        previous = set(self.variables.value)
        self.variables.reset_choices()
        self.discrete.reset_choices()
        kept = [c for c in self.variables.choices if c in previous]
        self.variables.value = kept or list(self.variables.choices)

    def _disconnect(self, *_args: Any) -> None:
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.disconnect(self.refresh)

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
        n_frames = trained_on.get("n_frames")
        neural = self._layer(self.neural.value)
        if n_frames is not None and neural is not None and n_frames < neural.data.shape[0]:
            self.common_prefix.value = True

    def read(self, n_frames: int | None = None) -> DataSelection:
        """Read the chosen layers into a :class:`DataSelection` (main thread only).

        Parameters
        ----------
        n_frames : int, optional
            Use only the first ``n_frames`` frames (e.g. those a model was trained on).

        Raises
        ------
        ValueError
            For unusable layers, different lengths without the common-prefix option, or no
            label column when labels are required.
        """
        neural_layer = self._layer(self.neural.value)
        is_movie = neural_layer is not None and neural_layer.ndim == 3
        rois_layer = self._layer(self.rois.value) if is_movie else None
        source = layer_data.neural_source(neural_layer, rois_layer)
        if source.kind == "matrix":
            neural = NeuralInput(matrix=layer_data.neural_matrix(neural_layer))
        else:
            neural = NeuralInput(
                movie=neural_layer.data, rois=np.asarray(rois_layer.data), dff=bool(self.dff.value)
            )
        behaviour_layer = self._layer(self.behaviour.value)
        table = None if behaviour_layer is None else layer_data.behaviour_table(behaviour_layer)
        frames = layer_data.common_length(
            source.n_frames,
            None if table is None else len(table),
            neural_name=source.name,
            behaviour_name=getattr(behaviour_layer, "name", ""),
            allow_prefix=bool(self.common_prefix.value),
        )
        if n_frames is not None:
            if n_frames > frames:
                raise ValueError(
                    f"The model was trained on {n_frames} frames but the chosen layers have only "
                    f"{frames}."
                )
            frames = n_frames
        continuous = list(self.variables.value)
        discrete = self.discrete.value if self.offers_discrete else None
        if self.labels_required and not continuous and not discrete:
            raise ValueError(
                "Choose a behaviour layer and at least one label column: CEBRA-Behavior and its "
                "shuffle controls train on behaviour."
            )
        labels = layer_data.label_arrays(table, continuous, discrete, frames)
        time_layer = None
        if source.kind == "movie":
            time_layer = source.name
        elif behaviour_layer is not None and layer_data.layer_kind(behaviour_layer) in (
            "points",
            "tracks",
        ):
            time_layer = behaviour_layer.name
        return DataSelection(
            neural=neural,
            labels=labels,
            n_frames=frames,
            valid_fraction=(
                float(self.valid_fraction.value) if self.offers_valid_fraction else 0.0
            ),
            description={
                "neural": source.name,
                "rois": getattr(rois_layer, "name", None),
                "dff": bool(self.dff.value) if source.kind == "movie" else None,
                "behaviour": getattr(behaviour_layer, "name", None),
                **layer_data.label_description(continuous, discrete),
                "n_frames": frames,
                "valid_fraction": float(self.valid_fraction.value),
                "time_layer": time_layer,
            },
            table=None if table is None else table.iloc[:frames].reset_index(drop=True),
            time_layer=time_layer,
        )


# ---------------------------------------------------------------------------------------------
# the goodness-of-fit computation (worker side) and its reading


@dataclass(frozen=True)
class GofProgress:
    """Progress of a goodness-of-fit computation (``step`` of ``total_steps`` parts scored)."""

    stage: str
    step: int
    total_steps: int


@dataclass
class GofResult:
    """Goodness of fit of one model, with its training curves.

    Attributes
    ----------
    gof_train, gof_valid : float or None
        GoF (bits) on the training part and on the validation part (``None`` without one).
    n_train, n_frames : int
        Frames ``0 … n_train−1`` are the training part.
    history : np.ndarray
        GoF (bits) of every training step.
    loss, pos, neg, temperature : np.ndarray
        Training log per step.
    """

    gof_train: float
    gof_valid: float | None
    n_train: int
    n_frames: int
    history: np.ndarray
    loss: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    temperature: np.ndarray


def iter_goodness_of_fit(
    model: Any, X: np.ndarray, *y: np.ndarray, num_batches: int, stage: str
) -> Generator[GofProgress, None, float]:
    """``goodness_of_fit_score(model, X, *y, num_batches=num_batches)``, yielding between batches.

    Relays the progress of ``core.goodness_of_fit.iter_goodness_of_fit_score`` tagged with
    ``stage``, so a worker can stop within a batch instead of after the whole score.
    """
    from napari_cebra.core.goodness_of_fit import iter_goodness_of_fit_score

    scoring = iter_goodness_of_fit_score(model, X, *y, num_batches=num_batches)
    while True:
        try:
            record = next(scoring)
        except StopIteration as finished:
            return finished.value
        try:
            yield GofProgress(stage, record.step, record.total_steps)
        except GeneratorExit:
            scoring.close()  # restores the encoder's training mode now, not at garbage collection
            raise


def gof_steps(
    model: Any, selection: DataSelection, num_batches: int
) -> Generator[TraceProgress | GofProgress, None, GofResult]:
    """Worker: score ``model`` on the training and validation part of ``selection``.

    The scores equal ``napari_cebra.metrics.goodness_of_fit_score`` with ``num_batches``
    batches on each part; ``goodness_of_fit_history`` gives the curve over training.
    """
    from napari_cebra.metrics import goodness_of_fit_history

    matrix = yield from neural_frames(selection)
    n_train = split_point(selection.n_frames, selection.valid_fraction)
    train_labels = [y[:n_train] for y in selection.labels]
    gof_train = yield from iter_goodness_of_fit(
        model, matrix[:n_train], *train_labels, num_batches=num_batches, stage="training part"
    )
    gof_valid = None
    if n_train < selection.n_frames:
        valid_labels = [y[n_train:] for y in selection.labels]
        gof_valid = yield from iter_goodness_of_fit(
            model,
            matrix[n_train:],
            *valid_labels,
            num_batches=num_batches,
            stage="validation part",
        )
    log = model.state_dict_["log"]
    return GofResult(
        gof_train=gof_train,
        gof_valid=gof_valid,
        n_train=n_train,
        n_frames=selection.n_frames,
        history=np.asarray(goodness_of_fit_history(model), dtype=np.float64),
        loss=np.asarray(log["total"], dtype=np.float64),
        pos=np.asarray(log["pos"], dtype=np.float64),
        neg=np.asarray(log["neg"], dtype=np.float64),
        temperature=np.asarray(log["temperature"], dtype=np.float64),
    )


def late_rise(history: np.ndarray) -> float:
    """GoF gain (bits) of the last fifth of training over the fifth before it (0 if < 10 steps)."""
    n_steps = len(history)
    if n_steps < 10:
        return 0.0
    fifth = n_steps // 5
    return float(np.mean(history[-fifth:]) - np.mean(history[-2 * fifth : -fifth]))


def gof_reading(result: GofResult) -> list[tuple[str, str]]:
    """The recipe's reading of a GoF result: ``(verdict, sentence)`` pairs, most important first.

    Thresholds are the recipe's (``workflows.recipe.THRESHOLDS``: at least 0.1 bits, at most
    0.3 bits between train and validation) and the controls' late-rise limit (0.05 bits).
    """
    from napari_cebra.workflows.controls import LATE_DROP_LIMIT_BITS
    from napari_cebra.workflows.recipe import THRESHOLDS

    minimum, gap_limit = THRESHOLDS["gof_min_bits"], THRESHOLDS["overfit_gap_bits"]
    train, valid = result.gof_train, result.gof_valid
    rise = late_rise(result.history)
    lines: list[tuple[str, str]] = []
    if train < minimum:
        lines.append(
            (
                "fail",
                f"{train:.2f} bits on the training part: the embedding is collapsed or "
                "uninformative (0 bits = chance). Train longer, check that the neural data has "
                "activity, or try another temperature / learning rate.",
            )
        )
    if valid is None:
        lines.append(
            (
                "info",
                "No validation part (the model was trained on every frame): overfitting cannot "
                "be judged. Set a validation fraction when training.",
            )
        )
    else:
        gap = train - valid
        if gap > gap_limit:
            lines.append(
                (
                    "warn",
                    f"Overfitting: {train:.2f} bits on training but {valid:.2f} bits on held-out "
                    f"frames (gap {gap:.2f} > {gap_limit} bits). Use fewer iterations, a smaller "
                    "model or more data.",
                )
            )
        elif valid < minimum <= train:
            lines.append(
                (
                    "warn",
                    f"Only {valid:.2f} bits on held-out frames (< {minimum} bits): what the model "
                    "learned does not carry over to new data.",
                )
            )
    if rise > LATE_DROP_LIMIT_BITS:
        if valid is not None and train - valid > gap_limit:
            text = (
                f"GoF was still rising at the end of training (+{rise:.2f} bits over the last "
                "fifth) while validation lags behind: the late gain is overfitting."
            )
            lines.append(("warn", text))
        else:
            text = (
                f"GoF was still rising at the end of training (+{rise:.2f} bits over the last "
                "fifth): more iterations may help; watch the validation GoF for overfitting."
            )
            lines.append(("info", text))
    if not any(verdict in ("fail", "warn") for verdict, _ in lines):
        if valid is None:
            text = (
                f"{train:.2f} bits on the training part: the embedding is informative "
                f"(≥ {minimum} bits); without held-out frames, generalisation is not judged."
            )
        else:
            text = (
                f"{train:.2f} bits on the training part and {valid:.2f} bits on held-out frames: "
                f"the embedding is informative and generalises (≥ {minimum} bits, gap ≤ "
                f"{gap_limit} bits)."
            )
        lines.insert(0, ("pass", text))
    return lines


def reading_html(lines: list[tuple[str, str]]) -> str:
    """Coloured verdict badges followed by their sentences, one per line."""
    return "<br>".join(
        f"<b style='color:{VERDICT_COLOURS[verdict]}'>{verdict.upper()}</b> {html.escape(text)}"
        for verdict, text in lines
    )


def text_label(text: str = "") -> QLabel:
    """A rich-text label that wraps to the dock's width instead of widening it."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Minimum)
    return label


def format_bits(value: float | None) -> str:
    """``"1.234 bits"`` or ``"—"`` for a missing value."""
    return "—" if value is None else f"{value:.3f} bits"


# ---------------------------------------------------------------------------------------------
# the widget


class GoodnessOfFitWidget(QWidget):
    """Goodness of fit of a session model on its training and validation data.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer this widget is docked in.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.result: GofResult | None = None
        self.model_choice = ComboBox(label="model", choices=self._model_names)
        self.model_info = Label(value="")
        self.data = DataPicker(napari_viewer)
        self.num_batches = SpinBox(
            label="scoring batches",
            min=1,
            max=10_000,
            value=100,
            tooltip="Batches averaged by goodness_of_fit_score on each part.",
        )
        self.model_box = Container(
            widgets=[self.model_choice, self.model_info, self.num_batches], label="model"
        )
        self.run_button = QPushButton("Compute goodness of fit")
        self.stop_button = QPushButton("Stop")
        self.status = text_label("Train a model (Train CEBRA) or load one (CEBRA models).")
        self.scores = text_label()
        self.reading = text_label()
        self.gof_plot = LinePlot(x_label="step", y_label="GoF (bits)", title="Goodness of fit")
        self.loss_plot = LinePlot(
            x_label="step", y_label="loss / τ", title="InfoNCE loss and temperature τ"
        )

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.model_box.native)
        layout.addWidget(self.data.native)
        layout.addLayout(buttons)
        for label in (self.status, self.scores, self.reading):
            layout.addWidget(label)
        layout.addWidget(self.gof_plot, stretch=1)
        layout.addWidget(self.loss_plot, stretch=1)

        self.runner = BackgroundRunner(
            self,
            controls=[self.model_box, self.data, self.run_button],
            stop_button=self.stop_button,
        )
        self.run_button.clicked.connect(self.compute)
        self.model_choice.changed.connect(self._on_model_choice)
        session_models().subscribe(self.refresh_models)
        self.destroyed.connect(lambda *_: session_models().unsubscribe(self.refresh_models))
        self.refresh_models()

    # -------------------------------------------------------------- models
    def _model_names(self, _widget: Any = None) -> list[str]:
        return session_models().names()

    def refresh_models(self) -> None:
        """Offer the models of the session (called whenever the registry changes)."""
        previous = self.model_choice.value
        self.model_choice.reset_choices()
        names = self.model_choice.choices
        if names and previous not in names:
            self.model_choice.value = names[-1]
        self._on_model_choice()

    def _on_model_choice(self, _value: Any = None) -> None:
        name = self.model_choice.value
        if not name:
            self.model_info.value = "No model in this session yet."
            return
        entry = session_models().get(name)
        params = entry.params
        trained = entry.trained_on
        steps = trained.get("steps_done", len(entry.model.state_dict_["log"]["total"]))
        self.model_info.value = (
            f"{params.get('conditional', '?')} conditional, {params.get('output_dimension')}-D, "
            f"{steps} steps; trained on layer '{trained.get('neural', '?')}'"
            if trained
            else f"{steps} steps; loaded from disk: choose the layers to score it on"
        )
        if trained:
            self.data.set_from_description(trained)

    # -------------------------------------------------------------- running
    def compute(self) -> None:
        """Score the chosen model in a worker; problems become notifications."""
        from napari.utils.notifications import show_error

        try:
            entry = self._selected()
            selection = self.data.read(entry.trained_on.get("n_frames"))
        except (ValueError, KeyError) as error:
            show_error(f"Goodness of fit: {error}")
            self.status.setText(f"Not started: {error}")
            return
        self.status.setText(f"Scoring {entry.name}…")
        self.runner.run(
            gof_steps(entry.model, selection, int(self.num_batches.value)),
            description=f"Goodness of fit of {entry.name}",
            on_record=self._on_record,
            on_result=lambda result: self.show_result(entry.name, result),
            on_stopped=lambda: self.status.setText("Stopped."),
        )

    def _selected(self) -> Any:
        name = self.model_choice.value
        if not name:
            raise ValueError("No model to score: train one with Train CEBRA or load one.")
        return session_models().get(name)

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.status.setText(f"Extracting ROI traces: {100 * record.fraction:.0f}%")
        else:
            self.status.setText(
                f"Scoring the {record.stage}: batch {record.step}/{record.total_steps}"
            )

    def show_result(self, name: str, result: GofResult) -> None:
        """Show the scores, the reading and the curves of ``result``."""
        self.result = result
        n_valid = result.n_frames - result.n_train
        self.status.setText(f"{name}: scored on {result.n_train} + {n_valid} frames.")
        self.scores.setText(
            f"<b>GoF train: {format_bits(result.gof_train)}</b> &nbsp;&nbsp; "
            f"<b>GoF validation: {format_bits(result.gof_valid)}</b>"
        )
        self.reading.setText(reading_html(gof_reading(result)))
        steps = np.arange(1, len(result.history) + 1)
        self.gof_plot.clear()
        self.gof_plot.set_reference_lines([0.0])
        self.gof_plot.set_curve("GoF during training", steps, result.history, colour="#56b4e9")
        last = steps[-1] if len(steps) else 0
        self.gof_plot.set_curve(
            "train (final)", [last], [result.gof_train], colour="#009e73", markers=True
        )
        if result.gof_valid is not None:
            self.gof_plot.set_curve(
                "validation (final)", [last], [result.gof_valid], colour="#e69f00", markers=True
            )
        self.loss_plot.clear()
        self.loss_plot.set_curve("total", steps, result.loss, colour="#f0f0f0")
        self.loss_plot.set_curve("pos", steps, result.pos, colour="#56b4e9")
        self.loss_plot.set_curve("neg", steps, result.neg, colour="#e69f00")
        self.loss_plot.set_curve("temperature τ", steps, result.temperature, colour="#cc79a7")
        self.gof_plot.redraw()
        self.loss_plot.redraw()
