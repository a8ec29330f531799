"""The "Train CEBRA" dock widget: pick layers, set parameters, train with a live loss plot."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Label

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.dock import DockWidget, scrolling_layout, wrap_label
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import DataPicker
from napari_cebra._widgets.loss_plot import LossPlot
from napari_cebra._widgets.params_form import CebraParamsForm
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import (
    TraceProgress,
    TrainingRequest,
    TrainingUpdate,
    train_steps,
)

if TYPE_CHECKING:
    import napari


class TrainWidget(DockWidget):
    """Train a CEBRA model on napari layers and show its embedding next to the movie."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self._run: _TrainingRun | None = None
        self.last_result: Any = None

        self.data_summary = wrap_label(Label(value=""))
        self.data = DataPicker(
            napari_viewer, variables_height=90, follow_layer_edits=True, extra=[self.data_summary]
        )
        self.params = CebraParamsForm()
        self.panel = RunPanel(
            self,
            "Train",
            controls=[self.data, self.params],
            status="Pick the layers, then press Train.",
        )
        self.train_button = self.panel.run_button
        self.train_button.clicked.connect(self.start_training)
        self.loss_plot = LossPlot(self)

        # Train, Stop and the loss curve stay in sight; the form above them scrolls
        layout = scrolling_layout(self, footer=[self.panel, self.loss_plot], stretch=[0, 1])
        layout.addWidget(self.data.native)
        layout.addWidget(self.params.native)
        layout.addStretch(1)
        self.stop_button.clicked.connect(self._show_stopping)

        for field in (self.params.conditional, self.params.hybrid):
            field.changed.connect(self._update_summary)
        self.data.selection_changed.connect(self._update_summary)
        self._update_summary()

    # ------------------------------------------------------------------ data
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
    def training_labels(self) -> dict[str, Any]:
        """Behaviour columns passed to ``fit`` (continuous ones unless the run is time-only).

        Returns
        -------
        dict
            ``layer_data.label_description``: ``"continuous"``, ``"discrete"`` and the display
            list ``"labels"``.
        """
        continuous = list(self.data.variables.value) if self.params.uses_behaviour() else []
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
        uses_behaviour = self.params.uses_behaviour()
        selection = self.data.read(continuous=uses_behaviour)
        params = self.params.estimator_params()
        if uses_behaviour and not selection.labels:
            raise ValueError(
                f"Conditional {params['conditional']!r} trains on behaviour: choose a behaviour "
                "layer and at least one continuous label, or use the CEBRA-Time preset."
            )
        description = {
            **selection.description,
            "preset": self.params.preset.value,
            "table": selection.table,
        }
        request = TrainingRequest(
            params=params,
            neural=selection.neural,
            labels=selection.labels,
            n_frames=selection.n_frames,
            valid_fraction=selection.valid_fraction,
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
        if self.runner.running:
            return
        try:
            request, description = self.build_request()
        except (ValueError, KeyError) as error:
            self.panel.not_started("Train CEBRA", error)
            return
        stop = threading.Event()
        self.loss_plot.clear()
        # the run must outlive this call: Qt holds its bound-method slots only weakly
        self._run = _TrainingRun(self, description)
        self.panel.start(
            train_steps(request, stop),
            description="Training CEBRA",
            on_records=self._run.on_records,
            on_result=self._run.on_result,
            on_error=self._run.on_error,
            on_finished=self.loss_plot.redraw,
            keep=self._run.keep,
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
    """Progress-bar counts of a training record: percent of the traces, or optimizer steps."""
    if isinstance(record, TraceProgress):
        return round(100 * record.fraction), 100
    return int(record.step), int(record.total_steps)


class _TrainingRun:
    """Main-thread callbacks of one training run (the runner calls them only while the widget
    is open, records never after the result)."""

    def __init__(self, widget: TrainWidget, description: dict[str, Any]) -> None:
        self.widget = widget
        self.viewer = widget.viewer
        self.description = description

    def on_records(self, records: list[Any]) -> None:
        """Show a batch of progress: every step on the loss curve, the latest in the status."""
        updates = [r for r in records if isinstance(r, TrainingUpdate)]
        for update in updates:
            self.widget.loss_plot.extend(update.steps, update.pos, update.neg, update.total)
        last = records[-1]
        if isinstance(last, TraceProgress):
            self.widget.status.value = last.message
        else:
            self.widget.status.value = (
                f"Step {last.step}/{last.total_steps}   loss {last.total[-1]:.4f}   "
                f"τ {last.temperature:.3g}   {last.elapsed:.1f} s"
            )

    def keep(self, result: Any) -> Any:
        """Register the model in the session and add its embedding to the embedding dock.

        Called by :meth:`on_result`, and by the runner directly when the Train dock was closed
        during the run: training then stops at its next update and the model trained so far is
        kept (nothing here touches the closed widget's controls). Returns the session entry, or
        ``None`` when the run ended before its first step.
        """
        from napari.utils.notifications import show_info

        if result is None:
            return None
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
        features = layer_data.embedding_features(table, len(result.embedding), result.n_train)
        view = embedding_view(self.viewer)
        view.add_embedding(
            result.embedding,
            name=entry.name,
            features=features,
            time_layer=description["time_layer"],
        )
        stopped = " (stopped early)" if result.stopped else ""
        show_info(
            f"{entry.name} trained{stopped} ({result.steps_done} steps); its embedding is in the "
            f"'{view.viewer.title}' dock and the model in CEBRA models."
        )
        return entry

    def on_result(self, result: Any) -> None:
        """Keep the model and its embedding (:meth:`keep`), then show the final status."""
        widget = self.widget
        entry = self.keep(result)
        if entry is None:
            widget.status.value = "Stopped before the first step: no model."
            return
        widget.last_result = result
        stopped = " (stopped early)" if result.stopped else ""
        widget.status.value = (
            f"{entry.name}: {result.steps_done} steps in {result.seconds:.1f} s{stopped}; "
            f"goodness of fit {result.goodness_of_fit:.2f} bits (last steps)."
        )

    def on_error(self, error: BaseException) -> None:
        """The runner has notified the error; keep it in the status line too."""
        self.widget.status.value = f"Training failed: {error}"
