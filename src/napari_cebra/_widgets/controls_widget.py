"""The "CEBRA shuffle controls" dock widget.

For a CEBRA-Behavior configuration it trains the real model, a label-shuffle control (behaviour
shuffled in time) and a neural-shuffle control (each neuron shuffled in time) with the same
parameters and seed (``napari_cebra.workflows.controls``), plots their loss and goodness of fit
side by side, adds their embeddings as layers and shows each control's verdict with its reason.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container

from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import (
    DataPicker,
    DataSelection,
    neural_frames,
    scoring_batches_box,
)
from napari_cebra._widgets.layer_data import embedding_features
from napari_cebra._widgets.line_plot import LinePlot
from napari_cebra._widgets.params_form import CebraParamsForm
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.verdict_format import verdict_line
from napari_cebra._widgets.workers import TraceProgress, split_point

if TYPE_CHECKING:
    import napari

RUNS = ("real model", "label shuffle", "neural shuffle")
RUN_COLOURS = {"real model": "#56b4e9", "label shuffle": "#e69f00", "neural shuffle": "#cc79a7"}
MISSING_LABELS = (
    "Choose a behaviour layer and at least one label column: CEBRA-Behavior and its shuffle "
    "controls train on behaviour."
)


@dataclass(frozen=True)
class ControlsStep:
    """Progress of the three trainings: which run, its stage and step, its last loss."""

    run: str
    stage: str
    step: int
    total_steps: int
    loss: float


@dataclass
class ControlsOutcome:
    """Both controls (they share the real model) and the training part's length."""

    label: Any
    neural: Any
    n_train: int


def _relabel(run: str, records: Generator[Any, None, Any]) -> Generator[ControlsStep, None, Any]:
    """Re-yield a control's progress naming the model being trained; return its result."""
    while True:
        try:
            record = next(records)
        except StopIteration as finished:
            return finished.value
        name = "real model" if record.stage == "real" else run
        yield ControlsStep(name, record.stage, record.step, record.total_steps, record.loss)


def controls_steps(
    params: dict[str, Any],
    selection: DataSelection,
    *,
    seed: int,
    label_method: str,
    neural_method: str,
    gof_batches: int,
) -> Generator[TraceProgress | ControlsStep, None, ControlsOutcome]:
    """Worker: the label-shuffle control, then the neural-shuffle control reusing its real model."""
    from napari_cebra.workflows.controls import (
        iter_label_shuffle_control,
        iter_neural_shuffle_control,
    )

    matrix = yield from neural_frames(selection)
    labels = selection.labels[0]
    common = {
        "seed": seed,
        "valid_fraction": selection.valid_fraction,
        "gof_batches": gof_batches,
    }
    label = yield from _relabel(
        "label shuffle",
        iter_label_shuffle_control(params, matrix, labels, method=label_method, **common),
    )
    neural = yield from _relabel(
        "neural shuffle",
        iter_neural_shuffle_control(
            params, matrix, labels, method=neural_method, real=label.real, **common
        ),
    )
    return ControlsOutcome(label, neural, split_point(selection.n_frames, selection.valid_fraction))


def scores_table(models: dict[str, Any]) -> str:
    """HTML table: goodness of fit on train and validation and the final loss of each model."""
    rows = "".join(
        f"<tr><td style='color:{RUN_COLOURS[run]}'>{run}</td>"
        f"<td align='right'>{trained.gof_train:.2f}</td>"
        f"<td align='right'>{trained.gof_valid:.2f}</td>"
        f"<td align='right'>{trained.loss[-1]:.3f}</td></tr>"
        for run, trained in models.items()
    )
    header = (
        "<tr><th align='left'>model</th><th>GoF train (bits)</th><th>GoF validation (bits)</th>"
        "<th>final loss</th></tr>"
    )
    return f"<table cellspacing='0' cellpadding='3'>{header}{rows}</table>"


def overall_progress(record: Any) -> tuple[int, int] | None:
    """Steps done over the three trainings, for the progress bar."""
    if not isinstance(record, ControlsStep) or record.total_steps <= 0:
        return None
    index = RUNS.index(record.run)
    return index * record.total_steps + record.step, len(RUNS) * record.total_steps


class ShuffleControlsWidget(DockWidget):
    """Train CEBRA-Behavior next to its label- and neural-shuffle controls and compare them."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.outcome: ControlsOutcome | None = None
        self.data = DataPicker(napari_viewer, discrete=False, no_labels_note=MISSING_LABELS)
        # goodness of fit, which judges the controls, is defined for mini-batches only
        self.params = CebraParamsForm(
            presets=("CEBRA-Behavior",), hidden=("conditional", "hybrid"), full_batch=False
        )
        self.shuffle_box = self._build_shuffle_box()
        self.panel = RunPanel(
            self,
            "Run real model + both controls",
            controls=[self.data, self.params, self.shuffle_box],
            status="Pick the neural and behaviour layers, then press Run.",
        )
        self.scores = text_label()
        self.verdicts = text_label()
        self.loss_plot = LinePlot(
            x_label="step", y_label="InfoNCE loss", title="Loss: real model vs. controls"
        )
        self.gof_plot = LinePlot(
            x_label="step", y_label="GoF (bits)", title="Goodness of fit over training"
        )

        layout = scrolling_layout(self, footer=[self.panel])  # Run/Stop always in sight
        layout.addWidget(self.data.native)
        layout.addWidget(self.params.native)
        layout.addWidget(self.shuffle_box.native)
        layout.addWidget(self.scores)
        layout.addWidget(self.verdicts)
        layout.addWidget(self.loss_plot, stretch=1)
        layout.addWidget(self.gof_plot, stretch=1)
        self.run_button.clicked.connect(self.start)

    def _build_shuffle_box(self) -> Container:
        self.label_method = ComboBox(
            label="label shuffle",
            choices=["permutation", "block", "circular"],
            tooltip="permutation: every frame; block: blocks of 40 frames; circular: a time shift",
        )
        self.neural_method = ComboBox(
            label="neural shuffle",
            choices=["permutation", "circular"],
            tooltip="each neuron independently: permuted frames or a random time shift",
        )
        self.gof_batches = scoring_batches_box()
        return Container(
            widgets=[self.label_method, self.neural_method, self.gof_batches], label="controls"
        )

    def estimator_params(self) -> dict[str, Any]:
        """``CEBRA`` parameters of the configuration: the form's, with the ``time_delta``
        conditional and no hybrid training (the controls shuffle the behaviour it conditions on).

        Raises
        ------
        ValueError
            If a text field of the form does not parse.
        """
        return {**self.params.estimator_params(), "conditional": "time_delta", "hybrid": False}

    # -------------------------------------------------------------- running
    def start(self) -> None:
        """Read layers and parameters and start the three trainings in a worker."""
        try:
            selection = self.data.read(missing_labels=MISSING_LABELS)
            if selection.valid_fraction <= 0:
                raise ValueError(
                    "The controls are judged on held-out frames: set a validation fraction > 0."
                )
            params = self.estimator_params()
        except ValueError as error:
            self.panel.not_started("Shuffle controls", error)
            return
        self.selection = selection
        self.outcome = None
        self.verdicts.setText("")
        self.scores.setText("")
        self.loss_plot.clear()
        self.gof_plot.clear()
        for run in RUNS:
            self.loss_plot.add_curve(run, colour=RUN_COLOURS[run])
        self.panel.start(
            controls_steps(
                params,
                selection,
                seed=int(self.params.seed.value),
                label_method=self.label_method.value,
                neural_method=self.neural_method.value,
                gof_batches=int(self.gof_batches.value),
            ),
            description="Shuffle controls",
            starting="Training the real model…",
            stopped="Stopped: no verdict.",
            on_record=self._on_record,
            on_result=self.show_outcome,
            measure=overall_progress,
        )

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.panel.say(record.message)
            return
        if record.stage == "scoring":
            self.panel.say(f"Scoring the {record.run} (goodness of fit, embeddings)…")
            return
        self.loss_plot.append(record.run, record.step, record.loss)
        self.panel.say(
            f"Training the {record.run}: step {record.step}/{record.total_steps}, "
            f"loss {record.loss:.4f}"
        )

    def trained_models(self) -> dict[str, Any]:
        """The three ``TrainedModel`` records of the last run, by run name."""
        if self.outcome is None:
            return {}
        return {
            "real model": self.outcome.label.real,
            "label shuffle": self.outcome.label.control,
            "neural shuffle": self.outcome.neural.control,
        }

    def show_outcome(self, outcome: ControlsOutcome) -> None:
        """Plot the curves, write the verdicts and add the three embeddings as layers (the real
        model's last, so that the embedding view shows it)."""
        self.outcome = outcome
        models = self.trained_models()
        self.loss_plot.clear()
        self.gof_plot.clear()
        self.gof_plot.set_reference_lines([0.0])
        for run, trained in models.items():
            steps = np.arange(1, len(trained.loss) + 1)
            self.loss_plot.set_curve(run, steps, trained.loss, colour=RUN_COLOURS[run])
            self.gof_plot.set_curve(run, steps, trained.gof_history, colour=RUN_COLOURS[run])
        self.loss_plot.redraw()
        self.gof_plot.redraw()
        self.panel.say("Done.")
        self.scores.setText(scores_table(models))
        self.verdicts.setText(self.verdicts_html())
        self._register_real_model()
        self._add_embeddings()

    def verdicts_html(self) -> str:
        """Each control's verdict badge, title (with the shuffle method) and reason."""
        return "<br>".join(
            verdict_line(result.verdict, result.reason, title=f"{title} ({result.method})")
            for title, result in (
                ("Label shuffle", self.outcome.label),
                ("Neural shuffle", self.outcome.neural),
            )
        )

    def _register_real_model(self) -> None:
        description = dict(self.selection.description)
        description.update(preset="CEBRA-Behavior (shuffle controls)")
        real = self.outcome.label.real
        self.real_entry = session_models().add(
            real.model, base_name="CEBRA-Behavior (controls)", trained_on=description
        )

    def _add_embeddings(self) -> None:
        n_train = self.outcome.n_train
        view = embedding_view(self.viewer)
        for run, trained in reversed(self.trained_models().items()):
            embedding = np.concatenate([trained.train_embedding, trained.valid_embedding])
            features = embedding_features(self.selection.table, len(embedding), n_train)
            name = self.real_entry.name if run == "real model" else f"{self.real_entry.name} {run}"
            view.add_embedding(
                embedding, name=name, features=features, time_layer=self.selection.time_layer
            )
