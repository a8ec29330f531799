"""The "Consistency runs" dock widget: do several runs (or recordings) find the same embedding?

Three sources of embeddings:

* **train new runs**: K seeds of one configuration trained on a neural layer (the workflow
  library's ``iter_consistency_runs``); the first part of the recording is trained
  on, the last part is validation.
* **session models**: models already trained in this session, all applied to one neural layer.
* **embedding layers**: embeddings already shown (the "CEBRA embedding" dock or Points layers of
  the viewer), compared between runs, or between datasets after aligning on a 1-D label.

The result is an annotated heatmap of the pairwise consistency (R² of a linear map from one
embedding to another, in percent) for the training and the validation frames, the mean score, and
the recipe's reading of it (``workflows.verdicts.consistency_reading``: training consistency in
the 90s = pass).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import Container
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

from napari_cebra._widgets.background import qt_alive
from napari_cebra._widgets.dock import DockWidget, scrolling_layout
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import BEHAVIOUR_LABELS_NEEDED, DataPicker
from napari_cebra._widgets.heatmap import Heatmap
from napari_cebra._widgets.layer_data import embedding_features
from napari_cebra._widgets.params_form import CebraParamsForm
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.verdict_format import verdict_line
from napari_cebra._widgets.workers import TraceProgress
from napari_cebra.workflows.embedding_consistency import (
    ConsistencyView,
    common_numeric_columns,
    compare_embeddings,
    running_loss_text,
    split_rows,
)
from napari_cebra.workflows.verdicts import consistency_reading

if TYPE_CHECKING:
    import napari

YIELD_EVERY = 2  # ensemble steps between records: Stop and closing the dock act within a second


@dataclass(frozen=True)
class ComparisonProgress:
    """One pair of embeddings scored (``step`` of ``total_steps``)."""

    step: int
    total_steps: int
    stage: str


@dataclass(frozen=True)
class RunsRequest:
    """Everything the "train new runs" worker needs.

    Attributes
    ----------
    params : dict
        ``CEBRA`` constructor parameters shared by the runs.
    neural : NeuralInput
        The neural data (matrix, or movie + ROIs).
    labels : list of np.ndarray
        Labels for ``fit`` (empty for CEBRA-Time), cut to ``n_frames``.
    n_frames : int
        Frames used.
    n_runs : int
        Number of runs K.
    first_seed : int
        Seeds are ``first_seed … first_seed + K − 1``.
    valid_fraction : float
        Last fraction of the frames held out.
    """

    params: dict[str, Any]
    neural: Any
    labels: list[np.ndarray]
    n_frames: int
    n_runs: int
    first_seed: int
    valid_fraction: float

    @property
    def seeds(self) -> list[int]:
        """One seed per run."""
        return list(range(self.first_seed, self.first_seed + self.n_runs))


def train_runs_steps(
    request: RunsRequest, stop: threading.Event
) -> Generator[Any, None, ConsistencyView | None]:
    """Train K seeds of one configuration and score their consistency (worker generator).

    Yields trace-extraction and ensemble progress records; returns ``None`` when stopped.
    """
    from napari_cebra._widgets.workers import neural_matrix_steps
    from napari_cebra.workflows.consistency_runs import iter_consistency_runs

    matrix = yield from neural_matrix_steps(request.neural, stop)
    if matrix is None:
        return None
    matrix = matrix[: request.n_frames]
    runs = iter_consistency_runs(
        request.params,
        matrix,
        *request.labels,
        n_runs=request.n_runs,
        seeds=request.seeds,
        valid_fraction=request.valid_fraction,
        yield_every=YIELD_EVERY,
    )
    while True:
        try:
            record = next(runs)
        except StopIteration as done:
            result = done.value
            break
        yield record
        if stop.is_set():
            runs.close()
            return None
    return view_of_runs(result, request.seeds)


def view_of_runs(result: Any, seeds: Sequence[int]) -> ConsistencyView:
    """A :class:`ConsistencyView` of the workflow library's ``ConsistencyRuns``."""
    train = [np.asarray(e, dtype=np.float32) for e in result.train_embeddings]
    valid = [np.asarray(e, dtype=np.float32) for e in result.valid_embeddings]
    embeddings = (
        [np.concatenate([t, v]) for t, v in zip(train, valid, strict=True)] if valid else train
    )
    return ConsistencyView(
        names=[f"run {i + 1}" for i in range(len(train))],
        between="runs",
        train=np.asarray(result.train_matrix),
        valid=np.asarray(result.valid_matrix) if valid else None,
        embeddings=embeddings,
        n_train=len(train[0]),
        seeds=list(seeds),
        models=list(result.models),
    )


def session_models_steps(
    models: Sequence[Any],
    names: Sequence[str],
    neural: Any,
    valid_fraction: float,
    stop: threading.Event,
) -> Generator[Any, None, ConsistencyView | None]:
    """Embed one recording with several models and score their consistency (worker generator)."""
    from napari_cebra._widgets.workers import neural_matrix_steps, split_point

    matrix = yield from neural_matrix_steps(neural, stop)
    if matrix is None:
        return None
    embeddings = []
    for index, model in enumerate(models):
        expected = getattr(model, "n_features_", None)
        if expected is not None and matrix.shape[1] != expected:
            raise ValueError(
                f"Model {names[index]!r} was trained on {expected} neurons but the chosen neural "
                f"data has shape {matrix.shape}."
            )
        embeddings.append(np.asarray(model.transform(matrix), dtype=np.float32))
        yield ComparisonProgress(index + 1, len(models), f"embedded with {names[index]}")
        if stop.is_set():
            return None
    n_train = split_point(len(matrix), valid_fraction)
    mask = np.arange(len(matrix)) < n_train
    return compare_embeddings(embeddings, names, train_masks=[mask] * len(embeddings))


def layers_steps(
    embeddings: Sequence[np.ndarray],
    names: Sequence[str],
    features: Sequence[pd.DataFrame | None],
    between: str,
    align_on: str | None,
    stop: threading.Event,
) -> Generator[Any, None, ConsistencyView | None]:
    """Score the consistency of embeddings already shown in napari (worker generator)."""
    yield ComparisonProgress(0, 1, "comparing embeddings")
    if stop.is_set():
        return None
    masks = [split_rows(f, len(e)) for f, e in zip(features, embeddings, strict=True)]
    labels = None
    if between == "datasets":
        if not align_on:
            raise ValueError("Choose the label to align the datasets on ('align on').")
        labels = [np.asarray(f[align_on], dtype=np.float64) for f in features]
    return compare_embeddings(
        embeddings,
        names,
        between=between,
        train_masks=masks,
        labels=labels,
        features=[f if f is not None else pd.DataFrame() for f in features],
    )


def embedding_candidates(viewer: Any) -> dict[str, tuple[np.ndarray, pd.DataFrame | None]]:
    """Embeddings that can be compared: the "CEBRA embedding" dock's, then the viewer's Points.

    Returns
    -------
    dict
        name → (``(T, d)`` embedding with all output dimensions, per-frame features or ``None``).
    """
    from napari_cebra._widgets.embedding_view import EMBEDDING_DOCK
    from napari_cebra._widgets.layer_data import layer_kind

    found: dict[str, tuple[np.ndarray, pd.DataFrame | None]] = {}
    view = viewer.window.dock_widgets.get(EMBEDDING_DOCK)
    if view is not None:
        for name, entry in view.entries.items():
            features = view.layer(name).features if name in view.viewer.layers else None
            found[name] = (entry.embedding, features)
    for layer in viewer.layers:
        if layer_kind(layer) == "points" and layer.name not in found and len(layer.data) > 1:
            features = layer.features if len(layer.features) == len(layer.data) else None
            found[layer.name] = (np.asarray(layer.data), features)
    return found


SOURCES = ("train new runs", "session models", "embedding layers")


class ConsistencyWidget(DockWidget):
    """Train K runs (or pick models / embeddings) and show how consistent their embeddings are."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        from magicgui.widgets import ComboBox, PushButton, Select, SpinBox

        self.result: ConsistencyView | None = None
        self._run_context: dict[str, Any] = {}

        self.source = ComboBox(label="compare", choices=list(SOURCES), value=SOURCES[0])
        self.recording = DataPicker(
            napari_viewer, discrete=False, variables_label="behaviour labels", variables_height=70
        )
        self.n_runs = SpinBox(label="runs (seeds)", min=2, max=20, value=5)
        self.first_seed = SpinBox(
            label="first seed",
            min=0,
            max=2**31 - 100,
            value=0,
            tooltip="The runs' seeds are first seed, first seed + 1, …",
        )
        self.runs_box = Container(widgets=[self.n_runs, self.first_seed], label="runs")
        self.params = CebraParamsForm(hidden=("seed",))
        self.models = Select(label="session models", choices=self._model_names)
        self.models.native.setMaximumHeight(90)
        self.layers = Select(label="embeddings", choices=self._embedding_names)
        self.layers.native.setMaximumHeight(90)
        self.between = ComboBox(
            label="between",
            choices=["runs", "datasets"],
            tooltip="runs: embeddings of one recording; datasets: different recordings, "
            "aligned on a behaviour label first",
        )
        self.align_on = ComboBox(label="align on", choices=self._align_choices, nullable=True)
        self.refresh_button = PushButton(text="Refresh lists")
        self.choice_box = Container(
            widgets=[self.models, self.layers, self.between, self.align_on, self.refresh_button]
        )
        self.panel = RunPanel(
            self,
            "Compute consistency",
            controls=[
                self.source,
                self.recording,
                self.runs_box,
                self.params,
                self.choice_box,
            ],
        )
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.RichText)
        self.heatmap_train = Heatmap(title="Training frames", height=200)
        self.heatmap_valid = Heatmap(title="Validation frames", height=200)
        self.run_choice = ComboBox(label="embedding", choices=self._result_names)
        self.add_layer_button = PushButton(text="Add as embedding layer")
        self.register_button = PushButton(text="Register runs as session models")
        self.output_box = Container(
            widgets=[self.run_choice, self.add_layer_button, self.register_button]
        )

        layout = scrolling_layout(self)
        layout.addWidget(self.source.native)
        layout.addWidget(self.recording.native)
        layout.addWidget(self.runs_box.native)
        layout.addWidget(self.params.native)
        layout.addWidget(self.choice_box.native)
        layout.addWidget(self.panel)
        layout.addWidget(self.verdict)
        layout.addWidget(self.heatmap_train)
        layout.addWidget(self.heatmap_valid)
        layout.addWidget(self.output_box.native)
        layout.addStretch(1)

        self.runner.controls.append(self.output_box)
        self.run_button.clicked.connect(self.start)
        self.source.changed.connect(self._on_source)
        self.between.changed.connect(self._on_between)
        self.layers.changed.connect(lambda _: self.align_on.reset_choices())
        self.refresh_button.changed.connect(self.refresh)
        self.n_runs.changed.connect(self._on_n_runs)
        self.add_layer_button.changed.connect(self.add_embedding_layer)
        self.register_button.changed.connect(self.register_models)
        self.follow_session_models(self._on_registry)
        layers_events = self.viewer.layers.events
        for event in (layers_events.inserted, layers_events.removed):
            event.connect(self.refresh)
        self._on_source()
        self.show_result(None)

    # ------------------------------------------------------------------ choices
    def _model_names(self, _widget: Any = None) -> list[str]:
        return session_models().names()

    def _embedding_names(self, _widget: Any = None) -> list[str]:
        return list(embedding_candidates(self.viewer))

    def _align_choices(self, _widget: Any = None) -> list[str]:
        candidates = embedding_candidates(self.viewer)
        tables = [candidates[n][1] for n in self.layers.value if n in candidates]
        return common_numeric_columns(tables)

    def _result_names(self, _widget: Any = None) -> list[str]:
        return [] if self.result is None else list(self.result.names)

    def refresh(self, _event: Any = None) -> None:
        """Refresh every list (layers, session models, embeddings)."""
        if not qt_alive(self):
            return
        self.recording.refresh()
        for widget in (self.models, self.layers, self.align_on):
            widget.reset_choices()

    def _on_registry(self) -> None:
        if qt_alive(self):
            self.models.reset_choices()
        else:
            session_models().unsubscribe(self._on_registry)

    def _on_source(self, _value: Any = None) -> None:
        source = self.source.value
        training, models, layers = (source == s for s in SOURCES)
        self.recording.visible = training or models
        for widget in (
            self.recording.behaviour,
            self.recording.variables,
            self.recording.alignment_box,
        ):
            widget.visible = training
        self.runs_box.visible = self.params.visible = training
        self.models.visible = models
        self.choice_box.visible = models or layers
        for widget in (self.layers, self.between, self.refresh_button):
            widget.visible = layers
        self.refresh()
        self._on_between()
        self.run_button.setText(
            f"Train {self.n_runs.value} runs" if training else "Compute consistency"
        )

    def _on_n_runs(self, value: int) -> None:
        if self.source.value == SOURCES[0]:
            self.run_button.setText(f"Train {value} runs")

    def _on_between(self, _value: Any = None) -> None:
        self.align_on.visible = self.source.value == SOURCES[2] and self.between.value == "datasets"
        self.align_on.reset_choices()

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Read the form and start the chosen comparison in a worker; errors become notices."""
        if self.runner.running:
            return
        stop = threading.Event()
        try:
            steps, description = self._steps(stop)
        except (ValueError, KeyError) as error:
            self.panel.not_started("Consistency", error)
            return
        self.panel.start(
            steps,
            description=description,
            on_record=self._on_record,
            on_result=self._on_result,
            stop=stop,
        )

    def _steps(self, stop: threading.Event) -> tuple[Generator[Any, None, Any], str]:
        """The worker generator for the chosen source, and its description."""
        source = self.source.value
        if source == SOURCES[0]:
            params = self.params.estimator_params()
            recording = self.recording.read(
                continuous=self.params.uses_behaviour(), missing_labels=BEHAVIOUR_LABELS_NEEDED
            )
            request = RunsRequest(
                params=params,
                neural=recording.neural,
                labels=recording.labels,
                n_frames=recording.n_frames,
                n_runs=int(self.n_runs.value),
                first_seed=int(self.first_seed.value),
                valid_fraction=float(self.recording.valid_fraction.value),
            )
            self._run_context = {"recording": recording, "preset": self.params.preset.value}
            return train_runs_steps(request, stop), f"Consistency: {request.n_runs} runs"
        if source == SOURCES[1]:
            names = list(self.models.value)
            if len(names) < 2:
                raise ValueError(f"Choose at least 2 session models to compare, got {len(names)}.")
            recording = self.recording.read(continuous=False)
            models = [session_models().get(name).model for name in names]
            self._run_context = {"recording": recording}
            steps = session_models_steps(
                models, names, recording.neural, float(self.recording.valid_fraction.value), stop
            )
            return steps, f"Consistency of {len(names)} models"
        names = list(self.layers.value)
        candidates = embedding_candidates(self.viewer)
        missing = [n for n in names if n not in candidates]
        if missing:
            raise ValueError(f"Embeddings {missing} are gone; press 'Refresh lists'.")
        embeddings = [candidates[n][0] for n in names]
        features = [candidates[n][1] for n in names]
        self._run_context = {}
        steps = layers_steps(
            embeddings, names, features, self.between.value, self.align_on.value, stop
        )
        return steps, f"Consistency of {len(names)} embeddings"

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.status.value = record.message
        elif isinstance(record, ComparisonProgress):
            self.status.value = f"{record.stage} ({record.step}/{record.total_steps})"
        else:
            parts = (
                f"Training {self.n_runs.value} runs: step {record.step}/{record.total_steps}",
                running_loss_text(getattr(record, "losses", ())),
                f"{getattr(record, 'elapsed', 0.0):.1f} s",
            )
            self.status.value = "   ".join(part for part in parts if part)

    def _on_result(self, result: ConsistencyView | None) -> None:
        if result is None:
            self.status.value = "Stopped: no consistency computed."
            return
        recording = self._run_context.get("recording")
        if recording is not None and result.features is None:
            n_frames = len(result.embeddings[0])
            table = recording.table
            if table is not None and len(table) < n_frames:
                table = None
            result.features = [embedding_features(table, n_frames, result.n_train)] * len(
                result.names
            )
        self.show_result(result)
        self.status.value = f"Compared {len(result.names)} embeddings."

    # ------------------------------------------------------------------ results
    def show_result(self, result: ConsistencyView | None) -> None:
        """Draw the heatmaps and the verdict of ``result`` (``None`` clears them)."""
        self.result = result
        self.run_choice.reset_choices()
        self.output_box.visible = result is not None
        if result is None:
            self.heatmap_train.clear()
            self.heatmap_valid.clear()
            self.heatmap_valid.setVisible(False)
            self.verdict.setText(
                "<i>Consistency = R² of a linear map from one embedding to another; the recipe "
                "expects the training consistency between runs in the 90s.</i>"
            )
            return
        split = result.valid is not None
        self.heatmap_train.set_title("Training frames" if split else "All frames")
        self.heatmap_train.set_matrix(result.train, result.names)
        self.heatmap_valid.setVisible(split)
        if split:
            self.heatmap_valid.set_matrix(result.valid, result.names)
        verdict, text = consistency_reading(result.mean_train, result.mean_valid, result.between)
        self.verdict.setText(verdict_line(verdict, text))
        self.register_button.visible = bool(result.models)
        self.register_button.enabled = True

    def add_embedding_layer(self, _value: Any = None) -> Any:
        """Add the chosen run's embedding (every frame) to the "CEBRA embedding" dock."""
        if self.result is None or not self.run_choice.value:
            return None
        index = self.result.names.index(self.run_choice.value)
        features = None if self.result.features is None else self.result.features[index]
        recording = self._run_context.get("recording")
        time_layer = None if recording is None else recording.time_layer
        view = embedding_view(self.viewer)
        name = f"consistency · {self.result.names[index]}"
        if self.result.seeds:
            name += f" (seed {self.result.seeds[index]})"
        return view.add_embedding(
            self.result.embeddings[index],
            name=name,
            features=None if features is None or features.empty else features,
            time_layer=time_layer,
        )

    def register_models(self, _value: Any = None) -> list[Any]:
        """Register every trained run in the session's model list."""
        if self.result is None or not self.result.models:
            return []
        recording = self._run_context.get("recording")
        trained_on = {} if recording is None else dict(recording.description)
        entries = []
        for model, seed in zip(self.result.models, self.result.seeds, strict=True):
            entries.append(
                session_models().add(
                    model,
                    base_name=f"{self._run_context.get('preset', 'CEBRA')} seed {seed}",
                    trained_on=trained_on,
                )
            )
        self.register_button.enabled = False
        self.status.value = f"Registered {len(entries)} models in the session."
        return entries
