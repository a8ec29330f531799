"""The "Train CEBRA" dock widget: pick layers, set parameters, train with a live loss plot."""

from __future__ import annotations

import ast
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    Select,
    SpinBox,
)
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.background import BackgroundRunner
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.loss_plot import LossPlot
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import NeuralInput, TraceProgress, TrainingRequest, train_steps
from napari_cebra.workflows.recipe import BEHAVIOUR_PARAMS, TIME_PARAMS

if TYPE_CHECKING:
    import napari


def _without_device(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "device"}


# The CEBRA authors' recipe (workflows.recipe), minus the device (chosen in the widget), with
# 5,000 iterations; CEBRA-Behavior uses temperature 1 as in the authors' hippocampus demo.
_GUI_DEFAULTS = {"max_iterations": 5000, "temperature_mode": "constant", "hybrid": False}
PRESETS = {
    "CEBRA-Time": {**_without_device(TIME_PARAMS), **_GUI_DEFAULTS},
    "CEBRA-Behavior": {**_without_device(BEHAVIOUR_PARAMS), **_GUI_DEFAULTS},
}
KIND_KEY = "napari_cebra_kind"  # layer metadata set by napari_cebra.io's readers and samples
NEURAL_KINDS = ("movie", "neural_matrix")
BEHAVIOUR_KINDS = ("behaviour", "keypoints")


def available_devices() -> list[str]:
    """``["cpu"]`` plus ``"cuda"`` when torch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def architecture_names() -> list[str]:
    """Every encoder name ``CEBRA(model_architecture=...)`` accepts."""
    from napari_cebra.models import supported_model_architectures

    return list(supported_model_architectures())


class TrainWidget(QWidget):
    """Train a CEBRA model on napari layers and show its embedding next to the movie.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer this widget is docked in.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._run: _TrainingRun | None = None
        self.last_result: Any = None
        self._table_cache: tuple[str, pd.DataFrame | None] = ("", None)

        self.data_box = self._build_data_box()
        self.train_box = self._build_train_box()
        self.advanced_box = self._build_advanced_box()
        self.advanced_box.visible = False
        self.advanced_toggle = QPushButton("Advanced parameters ▸")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.train_button.clicked.connect(self.start_training)
        self.status = Label(value="Pick the layers, then press Train.")
        self.loss_plot = LossPlot(self)

        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.data_box.native)
        layout.addWidget(self.train_box.native)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced_box.native)
        layout.addLayout(buttons)
        layout.addWidget(self.status.native)
        layout.addWidget(self.loss_plot, stretch=1)

        self.runner = BackgroundRunner(
            self,
            controls=[
                self.data_box,
                self.train_box,
                self.advanced_box,
                self.advanced_toggle,
                self.train_button,
            ],
            stop_button=self.stop_button,
        )
        self.stop_button.clicked.connect(self._show_stopping)

        self.preset.changed.connect(self.apply_preset)
        self.apply_preset(self.preset.value)
        layers_events = self.viewer.layers.events
        for event in (layers_events.inserted, layers_events.removed, layers_events.moved):
            event.connect(self.refresh_layers)
        self.refresh_layers()

    # ------------------------------------------------------------------ building
    def _build_data_box(self) -> Container:
        self.neural = ComboBox(label="neural data", choices=self._neural_choices)
        self.rois = ComboBox(label="ROI labels", choices=self._labels_choices, nullable=True)
        self.dff = CheckBox(text="ΔF/F (running-percentile baseline)", value=False)
        self.behaviour = ComboBox(label="behaviour", choices=self._behaviour_choices, nullable=True)
        self.variables = Select(label="continuous labels", choices=self._continuous_choices)
        self.variables.native.setMaximumHeight(90)
        self.discrete = ComboBox(
            label="discrete label", choices=self._discrete_choices, nullable=True
        )
        self.common_prefix = CheckBox(text="use common prefix if lengths differ", value=False)
        self.data_summary = Label(value="")
        for widget in (self.neural, self.rois, self.behaviour):
            widget.changed.connect(self._on_data_choice)
        self.variables.changed.connect(self._update_summary)
        self.discrete.changed.connect(self._update_summary)
        return Container(
            widgets=[
                self.neural,
                self.rois,
                self.dff,
                self.behaviour,
                self.variables,
                self.discrete,
                self.common_prefix,
                self.data_summary,
            ],
            label="data",
        )

    def _build_train_box(self) -> Container:
        self.preset = ComboBox(label="preset", choices=list(PRESETS), value="CEBRA-Time")
        self.output_dimension = SpinBox(label="output dimension", min=1, max=128, value=3)
        self.max_iterations = SpinBox(label="iterations", min=1, max=1_000_000, value=5000)
        self.batch_size = SpinBox(
            label="batch size", min=0, max=1_000_000, value=512, tooltip="0 = full batch"
        )
        self.learning_rate = FloatSpinBox(label="learning rate", min=1e-6, max=1.0, step=1e-5)
        self.learning_rate.native.setDecimals(6)
        self.temperature = FloatSpinBox(label="temperature τ", min=1e-3, max=100.0, step=0.01)
        self.time_offsets = SpinBox(label="time offset Δt", min=1, max=100_000, value=10)
        self.valid_fraction = FloatSpinBox(
            label="validation fraction",
            min=0.0,
            max=0.9,
            step=0.05,
            value=0.2,
            tooltip="The last part of the recording is held out from training.",
        )
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.device = ComboBox(label="device", choices=available_devices())
        return Container(
            widgets=[
                self.preset,
                self.output_dimension,
                self.max_iterations,
                self.batch_size,
                self.learning_rate,
                self.temperature,
                self.time_offsets,
                self.valid_fraction,
                self.seed,
                self.device,
            ],
            label="training",
        )

    def _build_advanced_box(self) -> Container:
        self.model_architecture = ComboBox(label="model", choices=architecture_names())
        self.distance = ComboBox(label="distance", choices=["cosine", "euclidean"])
        self.conditional = ComboBox(
            label="conditional", choices=["time", "time_delta", "delta_normal", "delta"]
        )
        self.temperature_mode = ComboBox(label="temperature mode", choices=["constant", "auto"])
        self.min_temperature = FloatSpinBox(label="min temperature", min=0.0, max=100.0, value=0.1)
        self.delta = FloatSpinBox(
            label="delta", min=0.0, max=1000.0, value=0.0, step=0.01, tooltip="0 = not set"
        )
        self.num_hidden_units = SpinBox(label="hidden units", min=1, max=4096, value=32)
        self.hybrid = CheckBox(text="hybrid (behaviour + time)", value=False)
        self.pad_before_transform = CheckBox(text="pad before transform", value=True)
        self.criterion = ComboBox(label="criterion", choices=["infonce"])
        self.optimizer = ComboBox(label="optimizer", choices=["adam"])
        self.betas = LineEdit(label="Adam betas", value="0.9, 0.999")
        self.eps = LineEdit(label="Adam eps", value="1e-08")
        self.weight_decay = FloatSpinBox(label="weight decay", min=0.0, max=10.0, value=0.0)
        self.amsgrad = CheckBox(text="amsgrad", value=False)
        self.max_adapt_iterations = SpinBox(label="adapt iterations", min=1, max=10**6, value=500)
        self.masking_kwargs = LineEdit(
            label="masking", value="", tooltip="e.g. (('RandomNeuronMask', 0.3),); empty = none"
        )
        self.verbose = CheckBox(text="print progress to the console", value=False)
        self.precision = ComboBox(
            label="precision",
            choices=["float32", "bfloat16"],
            tooltip="bfloat16: matrix products in bfloat16 with float32 weights; 1.6-1.7x faster "
            "on CPUs with AVX512-BF16 at the same goodness of fit",
        )
        return Container(
            widgets=[
                self.model_architecture,
                self.distance,
                self.conditional,
                self.temperature_mode,
                self.min_temperature,
                self.delta,
                self.num_hidden_units,
                self.hybrid,
                self.pad_before_transform,
                self.criterion,
                self.optimizer,
                self.betas,
                self.eps,
                self.weight_decay,
                self.amsgrad,
                self.max_adapt_iterations,
                self.masking_kwargs,
                self.precision,
                self.verbose,
            ],
            label="advanced",
        )

    # ------------------------------------------------------------------ choices
    def _layers_of(self, *kinds: str) -> list[str]:
        return [layer.name for layer in self.viewer.layers if layer_data.layer_kind(layer) in kinds]

    def _neural_choices(self, _widget: Any = None) -> list[str]:
        return [
            layer.name
            for layer in self.viewer.layers
            if layer_data.layer_kind(layer) == "image" and layer.ndim in (2, 3)
        ]

    def _labels_choices(self, _widget: Any = None) -> list[str]:
        return self._layers_of("labels")

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

    def behaviour_table(self) -> pd.DataFrame | None:
        """The per-frame table of the chosen behaviour layer (``None`` if unusable or unset)."""
        name = self.behaviour.value
        if not name or name not in self.viewer.layers:
            return None
        cached_name, cached = self._table_cache
        if cached_name == name:
            return cached
        try:
            table = layer_data.behaviour_table(self.viewer.layers[name])
        except ValueError as error:
            self.data_summary.value = str(error)
            table = None
        self._table_cache = (name, table)
        return table

    def refresh_layers(self, _event: Any = None) -> None:
        """Refresh the layer pickers after layers were added, removed or renamed."""
        for layer in self.viewer.layers:
            layer.events.name.connect(self.refresh_layers)
            layer.events.data.connect(self._on_data_choice)
        self._table_cache = ("", None)
        for widget in (self.neural, self.rois, self.behaviour):
            widget.reset_choices()
        self._pick_by_kind()
        self._on_data_choice()

    def _pick_by_kind(self) -> None:
        """Preselect layers tagged by our readers/sample data (``metadata[KIND_KEY]``)."""
        kinds = {
            layer.name: layer.metadata.get(KIND_KEY)
            for layer in self.viewer.layers
            if isinstance(layer.metadata, dict)
        }
        current = kinds.get(self.neural.value)
        if current not in NEURAL_KINDS:
            tagged = [n for n in self.neural.choices if kinds.get(n) in NEURAL_KINDS]
            if tagged:
                self.neural.value = tagged[0]
        if self.behaviour.value is None:
            tagged = [n for n in self.behaviour.choices if kinds.get(n) in BEHAVIOUR_KINDS]
            if tagged:
                self.behaviour.value = tagged[0]

    def _on_data_choice(self, _value: Any = None) -> None:
        self._table_cache = ("", None)
        neural = self._layer(self.neural.value)
        is_movie = neural is not None and neural.ndim == 3
        self.rois.visible = is_movie
        self.dff.visible = is_movie
        if is_movie and self.rois.value is None and self.rois.choices[1:]:
            self.rois.value = self.rois.choices[1]
        previous = set(self.variables.value)
        self.variables.reset_choices()
        self.discrete.reset_choices()
        keep = [c for c in self.variables.choices if c in previous]
        self.variables.value = keep or list(self.variables.choices)
        self._update_summary()

    def _layer(self, name: str | None) -> Any:
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    def _update_summary(self, _value: Any = None) -> None:
        table = self.behaviour_table()
        neural = self._layer(self.neural.value)
        parts = []
        if neural is not None:
            parts.append(f"neural: {neural.data.shape[0]} frames")
        if table is not None:
            parts.append(f"behaviour: {len(table)} frames, {table.shape[1]} variables")
        labels = self.training_labels()["labels"]
        parts.append("labels used: " + (", ".join(labels) if labels else "none (time only)"))
        self.data_summary.value = "\n".join(parts)

    # ------------------------------------------------------------------ parameters
    def apply_preset(self, name: str) -> None:
        """Set the recipe parameters of preset ``name`` (``"CEBRA-Time"``/``"CEBRA-Behavior"``)."""
        for key, value in PRESETS[name].items():
            getattr(self, key).value = value
        self._update_summary()

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced_box.visible = shown
        self.advanced_toggle.setText("Advanced parameters ▾" if shown else "Advanced parameters ▸")

    def estimator_params(self) -> dict[str, Any]:
        """``CEBRA`` constructor parameters from the controls.

        Raises
        ------
        ValueError
            If a text field (Adam betas/eps, masking) does not parse.
        """
        betas = _parse_literal("Adam betas", f"({self.betas.value})")
        if not (isinstance(betas, tuple) and len(betas) == 2):
            raise ValueError(f"Adam betas must be two numbers, got {self.betas.value!r}.")
        eps = float(_parse_literal("Adam eps", self.eps.value))
        masking_text = self.masking_kwargs.value.strip()
        masking = _parse_literal("masking", masking_text) if masking_text else None
        return {
            "model_architecture": self.model_architecture.value,
            "device": self.device.value,
            "criterion": self.criterion.value,
            "distance": self.distance.value,
            "conditional": self.conditional.value,
            "temperature": float(self.temperature.value),
            "temperature_mode": self.temperature_mode.value,
            "min_temperature": float(self.min_temperature.value),
            "time_offsets": int(self.time_offsets.value),
            "delta": float(self.delta.value) or None,
            "max_iterations": int(self.max_iterations.value),
            "max_adapt_iterations": int(self.max_adapt_iterations.value),
            "batch_size": int(self.batch_size.value) or None,
            "learning_rate": float(self.learning_rate.value),
            "optimizer": self.optimizer.value,
            "output_dimension": int(self.output_dimension.value),
            "verbose": bool(self.verbose.value),
            "num_hidden_units": int(self.num_hidden_units.value),
            "pad_before_transform": bool(self.pad_before_transform.value),
            "hybrid": bool(self.hybrid.value),
            "optimizer_kwargs": (
                ("betas", tuple(float(b) for b in betas)),
                ("eps", eps),
                ("weight_decay", float(self.weight_decay.value)),
                ("amsgrad", bool(self.amsgrad.value)),
            ),
            "masking_kwargs": masking,
            "seed": int(self.seed.value),
            "precision": self.precision.value,
        }

    def training_labels(self) -> dict[str, Any]:
        """Behaviour columns passed to ``fit`` (continuous ones unless the run is time-only).

        Returns
        -------
        dict
            ``layer_data.label_description``: ``"continuous"``, ``"discrete"`` and the display
            list ``"labels"``.
        """
        uses_continuous = self.conditional.value != "time" or bool(self.hybrid.value)
        continuous = list(self.variables.value) if uses_continuous else []
        return layer_data.label_description(continuous, self.discrete.value)

    def build_request(self) -> tuple[TrainingRequest, dict[str, Any]]:
        """Read layers and controls into a :class:`TrainingRequest` and a data description.

        Raises
        ------
        ValueError
            For every unusable combination (no neural layer, movie without ROIs, 1-D or RGB
            data, length mismatch without the common-prefix option, missing labels for a
            behaviour-conditioned run, bad parameter text).
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
        table = None
        if behaviour_layer is not None:
            table = layer_data.behaviour_table(behaviour_layer)
        n_frames = layer_data.common_length(
            source.n_frames,
            None if table is None else len(table),
            neural_name=source.name,
            behaviour_name=getattr(behaviour_layer, "name", ""),
            allow_prefix=bool(self.common_prefix.value),
        )
        params = self.estimator_params()
        label_names = self.training_labels()
        uses_continuous = params["conditional"] != "time" or params["hybrid"]
        if uses_continuous and not label_names["labels"]:
            raise ValueError(
                f"Conditional {params['conditional']!r} trains on behaviour: choose a behaviour "
                "layer and at least one continuous label, or use the CEBRA-Time preset."
            )
        labels = layer_data.label_arrays(
            table, label_names["continuous"], label_names["discrete"], n_frames
        )
        description = {
            "neural": source.name,
            "rois": getattr(rois_layer, "name", None),
            "dff": bool(self.dff.value) if source.kind == "movie" else None,
            "behaviour": getattr(behaviour_layer, "name", None),
            **label_names,
            "n_frames": n_frames,
            "valid_fraction": float(self.valid_fraction.value),
            "preset": self.preset.value,
            "time_layer": self._time_layer_name(source, behaviour_layer),
            "table": None if table is None else table.iloc[:n_frames].reset_index(drop=True),
        }
        request = TrainingRequest(
            params=params,
            neural=neural,
            labels=labels,
            n_frames=n_frames,
            valid_fraction=float(self.valid_fraction.value),
        )
        return request, description

    @staticmethod
    def _time_layer_name(source: layer_data.NeuralSource, behaviour_layer: Any) -> str | None:
        if source.kind == "movie":
            return source.name
        if behaviour_layer is not None and layer_data.layer_kind(behaviour_layer) in (
            "points",
            "tracks",
        ):
            return behaviour_layer.name
        return None

    # ------------------------------------------------------------------ running
    @property
    def worker(self) -> Any:
        """The napari worker of the run going on (``None`` when idle)."""
        return self.runner.worker

    def start_training(self) -> None:
        """Check the inputs and start training in a worker thread; errors become notifications.

        Stop (or closing the dock) ends the run at the next step; Stop keeps the partially
        trained model, closing the dock discards it.
        """
        from napari.utils.notifications import show_error

        if self.runner.running:
            return
        try:
            request, description = self.build_request()
        except (ValueError, KeyError) as error:
            show_error(f"Train CEBRA: {error}")
            self.status.value = f"Not started: {error}"
            return
        stop = threading.Event()
        self.loss_plot.clear()
        # the run must outlive this call: Qt holds its bound-method slots only weakly
        self._run = _TrainingRun(self, description)
        self.status.value = "Starting…"
        self.runner.run(
            train_steps(request, stop),
            description="Training CEBRA",
            on_record=self._run.on_record,
            on_result=self._run.on_result,
            on_error=self._run.on_error,
            on_finished=self.loss_plot.redraw,
            measure=training_progress,
            stop=stop,
        )

    def stop_training(self) -> None:
        """End training at the next step; the partial model and its embedding are kept."""
        self.runner.stop()
        self._show_stopping()

    def _show_stopping(self, *_args: Any) -> None:
        self.status.value = "Stopping…"


def training_progress(record: Any) -> tuple[int, int]:
    """Activity-dock counts of a training record: percent of the traces, or optimizer steps."""
    if isinstance(record, TraceProgress):
        return round(100 * record.fraction), 100
    return int(record.step), int(record.total_steps)


class _TrainingRun:
    """Main-thread callbacks of one training run (the runner calls them only while the widget
    is open, records never after the result)."""

    def __init__(self, widget: TrainWidget, description: dict[str, Any]) -> None:
        self.widget = widget
        self.description = description

    def on_record(self, record: Any) -> None:
        """Show trace-extraction or training progress (status first, then the loss curve)."""
        if isinstance(record, TraceProgress):
            self.widget.status.value = f"Extracting ROI traces: {100 * record.fraction:.0f}%"
            return
        self.widget.status.value = (
            f"Step {record.step}/{record.total_steps}   loss {record.total:.4f}   "
            f"τ {record.temperature:.3g}   {record.elapsed:.1f} s"
        )
        self.widget.loss_plot.append(record.step, record.pos, record.neg, record.total)

    def on_result(self, result: Any) -> None:
        """Register the model, show the final status, then add its embedding to the dock."""
        from napari.utils.notifications import show_info

        widget = self.widget
        if result is None:
            widget.status.value = "Stopped before the first step: no model."
            return
        description = dict(self.description)
        table = description.pop("table")
        description.update(
            steps_done=result.steps_done,
            stopped=result.stopped,
            goodness_of_fit_bits=round(result.goodness_of_fit, 4),
        )
        entry = session_models().add(
            result.model, base_name=description["preset"], trained_on=description
        )
        widget.last_result = result
        stopped = " (stopped early)" if result.stopped else ""
        widget.status.value = (
            f"{entry.name}: {result.steps_done} steps in {result.seconds:.1f} s{stopped}; "
            f"goodness of fit {result.goodness_of_fit:.2f} bits (last steps)."
        )
        features = embedding_features(table, len(result.embedding), result.n_train)
        view = embedding_view(widget.viewer)
        view.add_embedding(
            result.embedding,
            name=entry.name,
            features=features,
            time_layer=description["time_layer"],
        )
        show_info(
            f"{entry.name} trained{stopped}; its embedding is in the '{view.viewer.title}' dock."
        )

    def on_error(self, error: BaseException) -> None:
        """The runner has notified the error; keep it in the status line too."""
        self.widget.status.value = f"Training failed: {error}"


def embedding_features(table: pd.DataFrame | None, n_frames: int, n_train: int) -> pd.DataFrame:
    """Point features: frame index, every behaviour variable, and the train/validation split."""
    features = pd.DataFrame({"frame": np.arange(n_frames)})
    if table is not None:
        features = pd.concat([features, table.iloc[:n_frames].reset_index(drop=True)], axis=1)
    split = np.where(np.arange(n_frames) < n_train, "train", "validation")
    features["split"] = pd.Categorical(split, categories=["train", "validation"])
    return features


def _parse_literal(name: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"{name}: cannot read {text!r} ({error}).") from None
