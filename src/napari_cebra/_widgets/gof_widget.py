"""The "CEBRA goodness of fit" dock widget.

For a model of the session it scores the goodness of fit (GoF, bits) on the training and the
validation part of the data it was trained on, plots the GoF history and the loss / temperature
curves of training, and reads them in plain words the way the authors' recipe does.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label

from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.forms import (
    DataPicker,
    DataSelection,
    neural_frames,
    scoring_batches_box,
)
from napari_cebra._widgets.line_plot import LinePlot
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.verdict_format import reading_html
from napari_cebra._widgets.workers import TraceProgress, split_point
from napari_cebra.workflows.verdicts import gof_reading

if TYPE_CHECKING:
    import napari

# ---------------------------------------------------------------------------------------------
# the goodness-of-fit computation (worker side); its reading is workflows.verdicts.gof_reading


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


def format_bits(value: float | None) -> str:
    """``"1.234 bits"`` or ``"—"`` for a missing value."""
    return "—" if value is None else f"{value:.3f} bits"


# ---------------------------------------------------------------------------------------------
# the widget


class GoodnessOfFitWidget(DockWidget):
    """Goodness of fit of a session model on its training and validation data."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.result: GofResult | None = None
        self.model_choice = ComboBox(label="model", choices=self._model_names)
        self.model_info = Label(value="")
        self.data = DataPicker(napari_viewer)
        self.num_batches = scoring_batches_box(
            "Batches averaged by goodness_of_fit_score on each part."
        )
        self.model_box = Container(
            widgets=[self.model_choice, self.model_info, self.num_batches], label="model"
        )
        self.panel = RunPanel(
            self,
            "Compute goodness of fit",
            controls=[self.model_box, self.data],
            status="Train a model (Train CEBRA) or load one (CEBRA models).",
        )
        self.scores = text_label()
        self.reading = text_label()
        self.gof_plot = LinePlot(x_label="step", y_label="GoF (bits)", title="Goodness of fit")
        self.loss_plot = LinePlot(
            x_label="step", y_label="loss / τ", title="InfoNCE loss and temperature τ"
        )

        layout = scrolling_layout(self, footer=[self.panel])  # Run/Stop always in sight
        layout.addWidget(self.model_box.native)
        layout.addWidget(self.data.native)
        for label in (self.scores, self.reading):
            layout.addWidget(label)
        layout.addWidget(self.gof_plot, stretch=1)
        layout.addWidget(self.loss_plot, stretch=1)

        self.run_button.clicked.connect(self.compute)
        self.model_choice.changed.connect(self._on_model_choice)
        self.follow_session_models(self.refresh_models)
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
        try:
            entry = self._selected()
            selection = self.data.read(entry.trained_on.get("n_frames"))
        except (ValueError, KeyError) as error:
            self.panel.not_started("Goodness of fit", error)
            return
        self.panel.start(
            gof_steps(entry.model, selection, int(self.num_batches.value)),
            description=f"Goodness of fit of {entry.name}",
            starting=f"Scoring {entry.name}…",
            on_record=self._on_record,
            on_result=lambda result: self.show_result(entry.name, result),
        )

    def _selected(self) -> Any:
        name = self.model_choice.value
        if not name:
            raise ValueError("No model to score: train one with Train CEBRA or load one.")
        return session_models().get(name)

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.panel.say(record.message)
        else:
            self.panel.say(f"Scoring the {record.stage}: batch {record.step}/{record.total_steps}")

    def show_result(self, name: str, result: GofResult) -> None:
        """Show the scores, the reading and the curves of ``result``."""
        self.result = result
        n_valid = result.n_frames - result.n_train
        self.panel.say(f"{name}: scored on {result.n_train} + {n_valid} frames.")
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
