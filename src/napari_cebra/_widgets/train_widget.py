"""The "Train CEBRA" dock widget: pick layers, set parameters, train with a live loss plot."""

from __future__ import annotations

import ast
import threading
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox
from qtpy.QtWidgets import QPushButton, QVBoxLayout

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.background import BackgroundRunner
from napari_cebra._widgets.dock import DockWidget, run_stop_row
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import DataPicker, valid_fraction_box
from napari_cebra._widgets.loss_plot import LossPlot
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import TraceProgress, TrainingRequest, train_steps
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


def available_devices() -> list[str]:
    """``["cpu"]`` plus ``"cuda"`` when torch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def architecture_names() -> list[str]:
    """Every encoder name ``CEBRA(model_architecture=...)`` accepts."""
    from napari_cebra.models import supported_model_architectures

    return list(supported_model_architectures())


class TrainWidget(DockWidget):
    """Train a CEBRA model on napari layers and show its embedding next to the movie."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self._run: _TrainingRun | None = None
        self.last_result: Any = None

        self.data_summary = Label(value="")
        self.data = DataPicker(
            napari_viewer,
            valid_fraction=None,
            variables_height=90,
            preselect_tagged=True,
            follow_layer_edits=True,
            extra=[self.data_summary],
        )
        self.train_box = self._build_train_box()
        self.advanced_box = self._build_advanced_box()
        self.advanced_box.visible = False
        self.advanced_toggle = QPushButton("Advanced parameters ▸")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        self.train_button, self.stop_button, buttons = run_stop_row("Train")
        self.train_button.clicked.connect(self.start_training)
        self.status = Label(value="Pick the layers, then press Train.")
        self.loss_plot = LossPlot(self)

        layout = QVBoxLayout(self)
        layout.addWidget(self.data.native)
        layout.addWidget(self.train_box.native)
        layout.addWidget(self.advanced_toggle)
        layout.addWidget(self.advanced_box.native)
        layout.addLayout(buttons)
        layout.addWidget(self.status.native)
        layout.addWidget(self.loss_plot, stretch=1)

        self.runner = BackgroundRunner(
            self,
            controls=[
                self.data,
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
        self.data.selection_changed.connect(self._update_summary)
        self._update_summary()

    # ------------------------------------------------------------------ building
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
        self.valid_fraction = valid_fraction_box(0.2)
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

    def _update_summary(self) -> None:
        table = self.data.behaviour_table()
        neural = self.data.layer(self.data.neural.value)
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

    def uses_behaviour(self) -> bool:
        """Whether the chosen conditional (or the hybrid option) trains on continuous labels."""
        return self.conditional.value != "time" or bool(self.hybrid.value)

    def training_labels(self) -> dict[str, Any]:
        """Behaviour columns passed to ``fit`` (continuous ones unless the run is time-only).

        Returns
        -------
        dict
            ``layer_data.label_description``: ``"continuous"``, ``"discrete"`` and the display
            list ``"labels"``.
        """
        continuous = list(self.data.variables.value) if self.uses_behaviour() else []
        return layer_data.label_description(continuous, self.data.discrete.value)

    def build_request(self) -> tuple[TrainingRequest, dict[str, Any]]:
        """Read layers and controls into a :class:`TrainingRequest` and a data description.

        Raises
        ------
        ValueError
            For every unusable combination (no neural layer, movie without ROIs, 1-D or RGB
            data, length mismatch without the common-prefix option, missing labels for a
            behaviour-conditioned run, bad parameter text).
        """
        uses_behaviour = self.uses_behaviour()
        selection = self.data.read(continuous=uses_behaviour)
        params = self.estimator_params()
        if uses_behaviour and not selection.labels:
            raise ValueError(
                f"Conditional {params['conditional']!r} trains on behaviour: choose a behaviour "
                "layer and at least one continuous label, or use the CEBRA-Time preset."
            )
        description = {
            **selection.description,
            "valid_fraction": float(self.valid_fraction.value),
            "preset": self.preset.value,
            "table": selection.table,
        }
        request = TrainingRequest(
            params=params,
            neural=selection.neural,
            labels=selection.labels,
            n_frames=selection.n_frames,
            valid_fraction=float(self.valid_fraction.value),
        )
        return request, description

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
            self.widget.status.value = record.message
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
        features = layer_data.embedding_features(table, len(result.embedding), result.n_train)
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


def _parse_literal(name: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"{name}: cannot read {text!r} ({error}).") from None
