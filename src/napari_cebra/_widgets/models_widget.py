"""The "CEBRA models" dock widget: the session's models, save, load, transform a layer."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    PushButton,
)

from napari_cebra._widgets import layer_data
from napari_cebra._widgets.background import qt_alive
from napari_cebra._widgets.dock import DockWidget, scrolling_layout, wrap_label
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import DataPicker, DataSelection
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import TraceProgress, transform_steps

if TYPE_CHECKING:
    import napari

MODEL_FILTER = "*.pt *.pth *.ckpt"


class ModelsWidget(DockWidget):
    """List the models of this session; save, load and apply them to other layers."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.registry = session_models()

        self.model = ComboBox(label="model", choices=self._model_names, nullable=True)
        self.details = wrap_label(Label(value=""))
        self.save_path = FileEdit(label="save to", mode="w", filter=MODEL_FILTER)
        self.save_button = PushButton(text="Save model")
        self.remove_button = PushButton(text="Remove from session")
        self.load_path = FileEdit(label="load from", mode="r", filter=MODEL_FILTER)
        self.load_button = PushButton(text="Load model (ours or cebra)")
        self.data = DataPicker(napari_viewer, discrete=False, valid_fraction=None)
        self.data.dff.text = "ΔF/F (as when training)"
        self.data.variables.visible = False  # every behaviour column becomes a point feature
        self.panel = RunPanel(self, "Transform → embedding", controls=[self.data])
        self.transform_button = self.panel.run_button
        self.box = Container(
            widgets=[
                self.model,
                self.details,
                self.save_path,
                self.save_button,
                self.remove_button,
                self.load_path,
                self.load_button,
                Label(
                    value="Embed another recording with the chosen model\n"
                    "(behaviour: optional, its columns become point features):"
                ),
                self.data,
            ]
        )
        layout = scrolling_layout(self)
        layout.addWidget(self.box.native)
        layout.addWidget(self.panel)
        layout.addStretch(1)

        self.model.changed.connect(self._show_details)
        self.save_button.changed.connect(self.save_model)
        self.remove_button.changed.connect(self.remove_model)
        self.load_button.changed.connect(self.load_model)
        self.transform_button.clicked.connect(self.transform_layer)
        self.follow_session_models(self.refresh_models)
        self.refresh_models()

    # ------------------------------------------------------------------ choices
    def _model_names(self, _widget: Any = None) -> list[str]:
        return self.registry.names()

    def refresh_models(self) -> None:
        """Refresh the model list after the session registry changed; pick the newest."""
        if not qt_alive(self):
            self.registry.unsubscribe(self.refresh_models)
            return
        self.model.reset_choices()
        names = self.registry.names()
        if names and self.model.value not in names[:-1]:
            self.model.value = names[-1]
        self._show_details()

    def _show_details(self, _value: Any = None) -> None:
        name = self.model.value
        if not name:
            self.details.value = "No model yet: train one or load a file."
            return
        entry = self.registry.get(name)
        params = entry.params
        lines = [
            f"{params.get('model_architecture')}, {params.get('output_dimension')}-D, "
            f"conditional {params.get('conditional')}, τ {params.get('temperature')}",
            f"{params.get('max_iterations')} iterations, batch {params.get('batch_size')}, "
            f"lr {params.get('learning_rate')}",
        ]
        trained = entry.trained_on
        if trained:
            lines.append(
                f"trained on {trained.get('neural')} ({trained.get('n_frames')} frames), "
                f"labels: {', '.join(trained.get('labels') or ['none'])}, "
                f"{trained.get('steps_done')} steps, "
                f"goodness of fit {trained.get('goodness_of_fit_bits')} bits"
            )
        elif entry.source != "trained":
            lines.append(f"loaded from {entry.source}")
        else:
            lines.append("trained in a script (no record of its data)")
        self.details.value = "\n".join(lines)

    def _selected(self) -> Any:
        if not self.model.value:
            raise ValueError("Choose a model first (train one or load a file).")
        return self.registry.get(self.model.value)

    # ------------------------------------------------------------------ actions
    def save_model(self, _value: Any = None) -> Path | None:
        """Save the chosen model to ``save to``; returns the path, ``None`` on error."""
        from napari.utils.notifications import show_error, show_info

        try:
            entry = self._selected()
            path = Path(self.save_path.value)
            if path.is_dir() or not path.name:
                raise ValueError(f"Choose a file name to save to, got {str(path)!r}.")
            entry.model.save(str(path))
        except (ValueError, OSError, RuntimeError) as error:
            show_error(f"Save model: {error}")
            return None
        show_info(f"Saved {entry.name} to {path}")
        return path

    def load_model(self, _value: Any = None) -> Any:
        """Load ``load from`` (our file or a cebra 0.6 file) into the session."""
        from napari.utils.notifications import show_error, show_info

        from napari_cebra import CEBRA

        path = Path(self.load_path.value)
        try:
            if not path.is_file():
                raise ValueError(f"No model file at {str(path)!r}.")
            model = CEBRA.load(str(path))
        except (ValueError, OSError, RuntimeError, KeyError) as error:
            show_error(f"Load model: {error}")
            return None
        entry = self.registry.add(model, base_name=path.stem, source=str(path))
        self.model.value = entry.name
        show_info(f"Loaded {path.name} as {entry.name}")
        return entry

    def remove_model(self, _value: Any = None) -> None:
        """Forget the chosen model (its embeddings stay)."""
        if self.model.value:
            self.registry.remove(self.model.value)

    @property
    def worker(self) -> Any:
        """The napari worker of the transform going on (``None`` when idle)."""
        return self.runner.worker

    def transform_layer(self, _value: Any = None) -> None:
        """Embed the chosen neural layer with the chosen model in a worker thread.

        Closing the dock stops a trace extraction in progress and discards the result.
        """
        if self.runner.running:
            return
        try:
            entry = self._selected()
            selection = self.data.read(continuous=False)
            matrix = selection.neural.matrix
            expected = getattr(entry.model, "n_features_", None)
            if matrix is not None and expected is not None and matrix.shape[1] != expected:
                raise ValueError(
                    f"{entry.name} was trained on {expected} neurons but layer "
                    f"{selection.description['neural']!r} has shape {matrix.shape}."
                )
        except ValueError as error:
            self.panel.not_started("Transform", error)
            return
        stop = threading.Event()
        source = selection.description["neural"]
        name = f"{entry.name} on {source}"
        self.panel.start(
            transform_steps(entry.model, selection.neural, stop),
            description=f"Embedding {source}",
            starting=f"Embedding {source}…",
            on_record=lambda record: self.panel.say(record.message),
            on_result=lambda embedding: self._on_embedded(embedding, name, selection),
            on_error=lambda error: self.panel.say(f"Transform failed: {error}"),
            measure=trace_progress,
            stop=stop,
        )

    def _on_embedded(
        self, embedding: np.ndarray | None, name: str, selection: DataSelection
    ) -> None:
        if embedding is None:
            self.panel.say("Stopped: no embedding.")
            return
        self.panel.say(f"Added {name} ({len(embedding)} frames) to the embedding dock.")
        view = embedding_view(self.viewer)
        view.add_embedding(
            embedding,
            name=name,
            features=layer_data.embedding_features(selection.table, len(embedding)),
            time_layer=selection.time_layer,
        )


def trace_progress(record: TraceProgress) -> tuple[int, int]:
    """Progress-bar counts (percent) of a trace-extraction record."""
    return round(100 * record.fraction), 100
