"""The "Grid search" dock widget: sweep CEBRA parameters, read a sortable table, keep the best.

The grid is typed as text, one parameter per line (``learning_rate: 3e-4, 1e-3``); a parameter
with several values is varied, one value is fixed. The sweep runs with the workflow library's
resumable :class:`~napari_cebra.workflows.grid_search.GridSearch`, in this process or on a dask
cluster, writing every model to the models folder as soon as it is trained: Stop keeps the
finished models and pressing Run again trains only the missing ones.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from qtpy.QtCore import Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
)

from napari_cebra._widgets.dock import DockWidget, scrolling_layout, wrap_label
from napari_cebra._widgets.embedding_view import embedding_view
from napari_cebra._widgets.forms import BEHAVIOUR_LABELS_NEEDED, DataPicker
from napari_cebra._widgets.layer_data import embedding_features
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.session import session_models
from napari_cebra._widgets.workers import TraceProgress
from napari_cebra.workflows.grid_text import (
    default_grid_text,
    grid_size,
    parse_grid,
    uses_labels,
    varied_parameters,
)

if TYPE_CHECKING:
    import napari

LOCAL = "this computer"
DASK = "dask scheduler"
SCORINGS = {  # label -> GridSearch scoring
    "validation GoF (bits)": "gof_valid",
    "training GoF (bits)": "gof",
    "final training loss": "infonce_loss",
}
RESULT_COLUMNS = {  # get_df_results column -> table header
    "loss": "final\nloss",
    "gof": "GoF train\n(bits)",
    "gof_valid": "GoF valid\n(bits)",
    "train_time": "time\n(s)",
}
MIN_WIDTH = 500  # px: room for the parameter columns and the scores side by side
STATUS_HEADER = "status"
YIELD_EVERY = 10  # training steps between progress records: Stop acts within a few steps
DEFAULT_MODELS_DIR = Path.home() / "napari-cebra" / "grid-search"


@dataclass(frozen=True)
class SweepUpdate:
    """A progress record of the sweep, with the results table when a model was finished.

    Attributes
    ----------
    progress : GridProgress
        The workflow library's record.
    table : pandas.DataFrame or None
        ``GridSearch.get_df_results()`` after a model was finished or found, else ``None``.
    """

    progress: Any
    table: pd.DataFrame | None

    @property
    def step(self) -> int:
        """Models finished (for the progress bar)."""
        return int(self.progress.models_done)

    @property
    def total_steps(self) -> int:
        """Models in the sweep."""
        return int(self.progress.n_models)


@dataclass
class SweepOutcome:
    """What a sweep run returns: the search, its table and whether it was stopped."""

    search: Any
    table: pd.DataFrame | None
    stopped: bool
    trained: int


@dataclass(frozen=True)
class SweepRequest:
    """Everything a sweep run needs.

    Attributes
    ----------
    params : dict
        Grid parameters (see :func:`parse_grid`).
    neural : NeuralInput
        The neural data.
    labels : list of np.ndarray
        Behaviour labels (empty for a time-only grid).
    n_frames : int
        Frames used.
    dataset_name : str
        Name of the recording in the results.
    models_dir : str
        Folder the models are written to (and found in when resuming).
    valid_fraction : float
        Last fraction of the frames used for the validation GoF.
    executor : str or None
        ``None`` (this process) or a dask scheduler address.
    workers : int or None
        Models trained side by side in this process (``GridSearch.fit_models``); ``None``
        (default) lets the grid search choose.
    """

    params: dict[str, Any]
    neural: Any
    labels: list[np.ndarray]
    n_frames: int
    dataset_name: str
    models_dir: str
    valid_fraction: float
    executor: str | None
    workers: int | None = None


def sweep_steps(
    request: SweepRequest, stop: threading.Event
) -> Generator[Any, None, SweepOutcome | None]:
    """Run (or resume) the grid search; yield progress; return the search and its table.

    Setting ``stop`` ends the sweep at the next record; finished models stay in the folder.
    """
    from napari_cebra._widgets.workers import neural_matrix_steps
    from napari_cebra.workflows.grid_search import GridSearch

    matrix = yield from neural_matrix_steps(request.neural, stop)
    if matrix is None:
        return None
    matrix = matrix[: request.n_frames]
    data = (matrix, *request.labels) if request.labels else matrix
    search = GridSearch(yield_every=YIELD_EVERY)
    records = search.iter_fit_models(
        {request.dataset_name: data},
        request.params,
        request.models_dir,
        valid_fraction=request.valid_fraction or None,
        executor=request.executor,
        workers=request.workers,
    )
    trained, table, stopped = 0, None, False
    for record in records:
        finished = record.status in ("done", "present")
        trained += record.status == "done"
        if finished:
            table = search.get_df_results()
        yield SweepUpdate(record, table if finished else None)
        if stop.is_set():
            records.close()
            stopped = True
            break
    return SweepOutcome(search=search, table=table, stopped=stopped, trained=trained)


def best_model_steps(
    search: Any, scoring: str, neural: Any, stop: threading.Event
) -> Generator[Any, None, tuple[Any, str, np.ndarray] | None]:
    """Load the best model by ``scoring`` and embed the recording with it (worker generator)."""
    from napari_cebra._widgets.workers import neural_matrix_steps

    model, name = search.get_best_model(scoring=scoring)
    matrix = yield from neural_matrix_steps(neural, stop)
    if matrix is None:
        return None
    return model, name, np.asarray(model.transform(matrix), dtype=np.float32)


def _point_key(point: dict[str, Any]) -> tuple:
    """A grid point's varied values as a hashable key (numpy scalars compare as Python's)."""
    return tuple(sorted((name, _plain(value)) for name, value in point.items()))


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _item(value: Any) -> QTableWidgetItem:
    """A table cell that sorts numbers as numbers."""
    item = QTableWidgetItem()
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        item.setData(Qt.DisplayRole, round(number, 4) if np.isfinite(number) else float("nan"))
    else:
        item.setData(Qt.DisplayRole, "" if value is None else str(value))
    item.setFlags(item.flags() & ~Qt.ItemIsEditable)
    return item


class SweepWidget(DockWidget):
    """Edit a parameter grid, run it (resumably), and compare the models in a sortable table."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.search: Any = None
        self.table_data: pd.DataFrame | None = None
        self.trainings = 0
        self._request: SweepRequest | None = None
        self._recording: Any = None
        self._rows: dict[str, int] = {}
        self._keys_by_point: dict[tuple, str] = {}
        self._varied: list[str] = []
        self._columns: list[str] = []

        self.recording = DataPicker(
            napari_viewer, discrete=False, variables_label="behaviour labels", variables_height=70
        )
        self.grid_text = QPlainTextEdit(default_grid_text())
        self.grid_text.setFont(QFont("monospace", 9))
        self.grid_text.setMinimumHeight(150)
        self.grid_text.setToolTip(
            "One CEBRA parameter per line: 'name: value' is fixed, 'name: v1, v2, …' is varied."
        )
        self.grid_summary = QLabel()
        self.grid_summary.setWordWrap(True)
        self.where = ComboBox(label="run on", choices=[LOCAL, DASK], value=LOCAL)
        self.address = LineEdit(label="scheduler", value="tcp://127.0.0.1:8786")
        self.models_dir = FileEdit(label="models folder", mode="d", value=str(DEFAULT_MODELS_DIR))
        self.settings = Container(widgets=[self.where, self.address, self.models_dir])
        self.panel = RunPanel(
            self,
            "Run sweep",
            controls=[self.recording, self.grid_text, self.settings],
            bar_format="models %v / %m",
        )
        self.current = QProgressBar()
        self.current.setFormat("current model: step %v / %m")
        self.current.hide()
        self.table = QTableWidget(0, 0)
        self.table.setSortingEnabled(True)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setMinimumHeight(200)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.scoring = ComboBox(label="best by", choices=list(SCORINGS))
        self.best_label = wrap_label(Label(value=""))
        self.add_best_button = PushButton(text="Best → embedding layer + session model")
        self.best_box = Container(widgets=[self.scoring, self.best_label, self.add_best_button])

        layout = scrolling_layout(self)
        layout.addWidget(self.recording.native)
        layout.addWidget(QLabel("Parameter grid (several values = varied):"))
        layout.addWidget(self.grid_text)
        layout.addWidget(self.grid_summary)
        layout.addWidget(self.settings.native)
        layout.addWidget(self.panel)
        layout.addWidget(self.current)
        layout.addWidget(self.table, stretch=1)
        layout.addWidget(self.best_box.native)
        self.runner.controls.append(self.best_box)
        self.run_button.clicked.connect(self.start)
        self.grid_text.textChanged.connect(self._on_grid_text)
        self.where.changed.connect(self._on_where)
        self.scoring.changed.connect(self._show_best)
        self.add_best_button.changed.connect(self.add_best)
        self._on_where()
        self._on_grid_text()
        self.best_box.enabled = False
        self.setMinimumWidth(MIN_WIDTH)

    # ------------------------------------------------------------------ form
    def grid_params(self) -> dict[str, Any]:
        """The grid as ``GridSearch`` parameters (``ValueError`` for unreadable text)."""
        return parse_grid(self.grid_text.toPlainText())

    def _on_grid_text(self) -> None:
        try:
            params = self.grid_params()
        except ValueError as error:
            self.grid_summary.setText(f"<span style='color:#f08c7f'>{error}</span>")
            return
        varied = varied_parameters(params)
        names = ", ".join(varied) if varied else "nothing varied"
        self.grid_summary.setText(f"<b>{grid_size(params)} models</b> ({names})")

    def _on_where(self, _value: Any = None) -> None:
        self.address.visible = self.where.value == DASK

    def build_request(self) -> SweepRequest:
        """Read layers, grid text and settings.

        Raises
        ------
        ValueError
            Unreadable grid, unusable layers, a behaviour grid without labels, no models folder.
        """
        params = self.grid_params()
        with_labels = uses_labels(params)
        recording = self.recording.read(
            continuous=with_labels, missing_labels=BEHAVIOUR_LABELS_NEEDED
        )
        folder = str(self.models_dir.value).strip()
        if not folder or folder == ".":
            raise ValueError("Choose a models folder: finished models are kept there.")
        address = self.address.value.strip() if self.where.value == DASK else None
        if self.where.value == DASK and not address:
            raise ValueError("Give the dask scheduler address, e.g. tcp://10.0.0.1:8786.")
        self._recording = recording
        return SweepRequest(
            params=params,
            neural=recording.neural,
            labels=recording.labels,
            n_frames=recording.n_frames,
            dataset_name=recording.description["neural"],
            models_dir=folder,
            valid_fraction=float(self.recording.valid_fraction.value),
            executor=address,
        )

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Start (or resume) the sweep in a worker; errors become notifications."""
        if self.runner.running:
            return
        try:
            request = self.build_request()
            planned = self._planned_rows(request)
        except (ValueError, KeyError, OSError) as error:
            self.panel.not_started("Grid search", error)
            return
        self._request = request
        self.search = None
        self.trainings = 0
        self._prepare_table(planned, request)
        self.current.setValue(0)
        # the cluster reports finished models only (and a busy bar would repaint without end)
        self.current.setVisible(request.executor is None)
        self.best_label.value = ""
        self.panel.start(
            sweep_steps(request, stop := threading.Event()),
            description=f"Grid search ({len(planned)} models)",
            on_record=self._on_record,
            on_result=self._on_result,
            stop=stop,
        )

    @staticmethod
    def _planned_rows(request: SweepRequest) -> list[tuple[str, dict[str, Any]]]:
        """``(model key, varied values)`` of every grid point, in grid order."""
        from napari_cebra.workflows.grid_search import GridSearch

        names, grid = GridSearch().generate_models(request.params)
        return [
            (f"{name}_{request.dataset_name}", point)
            for name, point in zip(names, grid, strict=True)
        ]

    def _prepare_table(
        self, planned: list[tuple[str, dict[str, Any]]], request: SweepRequest
    ) -> None:
        varied = sorted(varied_parameters(request.params))
        self._varied = varied
        self._columns = [*varied, *RESULT_COLUMNS, STATUS_HEADER]
        headers = [*(name.replace("_", "\n") for name in varied), *RESULT_COLUMNS.values()]
        headers.append(STATUS_HEADER)
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(planned))
        self._rows = {}
        self._keys_by_point = {}
        for row, (key, point) in enumerate(planned):
            self._rows[key] = row
            self._keys_by_point[_point_key(point)] = key
            for column, name in enumerate(self._columns):
                value = point.get(name) if name in varied else None
                self.table.setItem(row, column, _item(value))
            self._set_status(key, "waiting")
        self.table.setSortingEnabled(True)

    def _row_of(self, key: str) -> int | None:
        """Current row of model ``key`` (rows move when the user sorts)."""
        status_column = self._columns.index(STATUS_HEADER)
        for row in range(self.table.rowCount()):
            item = self.table.item(row, status_column)
            if item is not None and item.data(Qt.UserRole) == key:
                return row
        return None

    def _set_status(self, key: str, text: str) -> None:
        status_column = self._columns.index(STATUS_HEADER)
        row = self._row_of(key)
        if row is None:
            row = self._rows.get(key)
        item = _item(text)
        item.setData(Qt.UserRole, key)
        self.table.setItem(row, status_column, item)

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.status.value = record.message
            return
        progress = record.progress
        if progress.status == "training":
            self.current.setRange(0, progress.total_steps)
            self.current.setValue(progress.step)
            self.status.value = (
                f"Training {progress.name}: loss {progress.loss:.4f}   {progress.elapsed:.0f} s"
            )
            self._set_status(progress.key, f"training {progress.step}/{progress.total_steps}")
            return
        self.trainings += progress.status == "done"
        if record.table is not None:
            self.show_table(record.table)

    def _on_result(self, outcome: SweepOutcome | None) -> None:
        if outcome is None:
            self.status.value = "Stopped before the sweep began."
            return
        self.search = outcome.search
        if outcome.table is not None:
            self.show_table(outcome.table)
        finished = 0 if outcome.table is None else len(outcome.table)
        total = self.table.rowCount()
        if outcome.stopped:
            self.status.value = (
                f"Stopped: {finished} of {total} models are in the folder; press Run sweep to "
                "train the rest."
            )
        else:
            self.status.value = (
                f"Done: {total} models ({outcome.trained} trained now, "
                f"{total - outcome.trained} found in the folder)."
            )
        self.best_box.enabled = finished > 0
        self._show_best()

    # ------------------------------------------------------------------ results
    def show_table(self, results: pd.DataFrame) -> None:
        """Fill the rows of the finished models from ``GridSearch.get_df_results()``."""
        self.table_data = results.reset_index(drop=True)
        self.table.setSortingEnabled(False)
        for record in self.table_data.to_dict("records"):
            point = {name: record[name] for name in self._varied}
            key = self._keys_by_point.get(_point_key(point))
            row = None if key is None else self._row_of(key)
            if row is None:
                continue
            for column, name in enumerate(self._columns):
                if name in record and name != STATUS_HEADER:
                    self.table.setItem(row, column, _item(record[name]))
            self._set_status(key, "done")
        self.table.setSortingEnabled(True)

    def _show_best(self, _value: Any = None) -> None:
        if self.search is None or self.table_data is None or self.table_data.empty:
            self.best_label.value = ""
            return
        try:
            name = self.best_name()
        except (ValueError, NotImplementedError) as error:
            self.best_label.value = str(error)
            return
        self.best_label.value = self.describe(name)
        row = self._row_of(name)
        if row is not None:
            self.table.selectRow(row)

    def best_name(self) -> str:
        """Key of the best finished model by the chosen score (read from the table)."""
        scoring = SCORINGS[self.scoring.value]
        column = {"infonce_loss": "loss", "gof": "gof", "gof_valid": "gof_valid"}[scoring]
        table = self.table_data
        if column not in table or table[column].isna().all():
            raise ValueError(f"No model has a {self.scoring.value} score.")
        values = table[column].astype(float)
        index = values.idxmin() if scoring == "infonce_loss" else values.idxmax()
        return str(table.loc[index, "name"])

    def describe(self, name: str) -> str:
        """``"best: learning_rate 0.001, output_dimension 3 — GoF valid 0.52 bits"``."""
        record = self.table_data.set_index("name").loc[name]
        varied = [c for c in self._columns if c not in RESULT_COLUMNS and c != STATUS_HEADER]
        setting = ", ".join(f"{c} {record[c]}" for c in varied) or name
        scoring = SCORINGS[self.scoring.value]
        column = {"infonce_loss": "loss", "gof": "gof", "gof_valid": "gof_valid"}[scoring]
        unit = "" if column == "loss" else " bits"
        return f"best: {setting} — {self.scoring.value.split(' (')[0]} {record[column]:.3f}{unit}"

    def add_best(self, _value: Any = None) -> None:
        """Load the best model, embed the recording, add the layer and register the model."""
        from napari.utils.notifications import show_error

        if self.search is None or self.runner.running or self._recording is None:
            return
        scoring = SCORINGS[self.scoring.value]
        try:
            self.best_name()
        except ValueError as error:
            show_error(f"Grid search: {error}")
            return
        self.runner.run(
            best_model_steps(
                self.search, scoring, self._recording.neural, stop := threading.Event()
            ),
            description="Embedding with the best model",
            on_result=self._on_best,
            stop=stop,
        )

    def _on_best(self, result: tuple[Any, str, np.ndarray] | None) -> None:
        if result is None:
            return
        from napari_cebra._widgets.workers import split_point

        model, name, embedding = result
        recording = self._recording
        trained_on = {**recording.description, "grid_search": name}
        entry = session_models().add(model, base_name=f"grid best {name}", trained_on=trained_on)
        n_train = split_point(len(embedding), float(trained_on["valid_fraction"]))
        table = recording.table
        features = embedding_features(
            table if table is not None and len(table) >= len(embedding) else None,
            len(embedding),
            n_train,
        )
        embedding_view(self.viewer).add_embedding(
            embedding, name=entry.name, features=features, time_layer=recording.time_layer
        )
        self.status.value = f"{entry.name}: embedding added, model registered in the session."
