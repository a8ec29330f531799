"""The "CEBRA export" dock widget: save embeddings, publication figures and short movies.

The embeddings live in the "CEBRA embedding" dock (a viewer of their own that File ▸ Save Layers
cannot reach); this dock writes the one picked there as a data file (``.csv``, ``.npz``,
``.h5``), as a figure of its current view (axes and colouring as shown, ``.png``, ``.svg``,
``.pdf``) or as a movie of it rotating or of the trail following the recording (``.gif``,
``.mp4``). The writing itself is :mod:`napari_cebra.workflows.export` (atomic files); this module
only reads the form and reports.
"""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, SpinBox
from qtpy.QtWidgets import QPushButton

from napari_cebra._widgets.background import CloseWatcher, qt_alive
from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.embedding_view import (
    EMBEDDING_DOCK,
    EmbeddingEntry,
    EmbeddingView,
    is_categorical,
)
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra.workflows.export import (
    EMBEDDING_SUFFIXES,
    FIGURE_SUFFIXES,
    MOVIE_MODES,
    MOVIE_SUFFIXES,
    embedding_figure,
    embedding_movie,
    save_embedding,
    save_figure,
)

if TYPE_CHECKING:
    import napari

TITLE = "CEBRA export"
NO_EMBEDDING = (
    "no embedding to export: train or transform one first (it appears in the CEBRA embedding dock)."
)


@dataclass(frozen=True)
class MovieProgress:
    """Progress record of a movie: ``step`` of ``total_steps`` done, and what is happening."""

    message: str
    step: int
    total_steps: int


def movie_steps(
    path: Path, embedding: np.ndarray, colour_values: Any, **options: Any
) -> Generator[MovieProgress, None, Path]:
    """Worker: write the movie with :func:`~napari_cebra.workflows.export.embedding_movie`.

    ``embedding_movie`` renders and writes in one call, so this generator yields once before it
    starts and then returns the file written: a Stop pressed meanwhile takes effect only after
    the movie is complete (the file is then kept and reported).
    """
    yield MovieProgress(f"Rendering {options.get('n_frames', '')} movie frames…", 0, 1)
    return embedding_movie(path, embedding, colour_values, **options)


def file_filter(kind: str, suffixes: tuple[str, ...]) -> str:
    """A Qt file-dialog filter such as ``"Figure (*.png *.svg *.pdf)"``."""
    return f"{kind} ({' '.join('*' + suffix for suffix in suffixes)})"


def chosen_file(box: FileEdit, what: str, suffixes: tuple[str, ...]) -> Path:
    """The file of a FileEdit, checked: chosen, and with one of ``suffixes``.

    The text typed is read (an empty FileEdit's ``value`` is the working folder).

    Raises
    ------
    ValueError
        No file chosen, a folder, or an unsupported suffix.
    """
    text = str(box.line_edit.value or "").strip()
    if text in ("", "."):
        raise ValueError(f"no {what} file chosen.")
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"{path} is a folder; choose a {what} file in it.")
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"cannot write a {what} as {path.name!r}: the name must end in one of "
            f"{', '.join(suffixes)}."
        )
    return path


def export_features(entry: EmbeddingEntry) -> pd.DataFrame:
    """The entry's per-frame features as :func:`save_embedding` takes them: without ``frame``,
    which the files hold as the recording's frame of each row (``frames=entry.frames``)."""
    table = entry.features.reset_index(drop=True)
    return table.drop(columns="frame") if "frame" in table else table


class ExportWidget(DockWidget):
    """Write the embedding picked in the CEBRA embedding dock as data, a figure or a movie.

    Data files and figures are written at once (a few seconds at most); a movie renders in the
    background (Run/Stop below; Stop takes effect only once the movie is written). Problems are
    reported as notifications and on the status line ("Not started: …"), which otherwise says
    what was written where.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer this widget is docked in (its CEBRA embedding dock holds the embeddings).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        # a weak reference: this dock must not keep the embedding dock (and its canvas) alive
        self._view_ref: weakref.ref[EmbeddingView] | None = None
        self._names: list[str] = []
        self.last_figure: Any = None
        """The last figure saved (a matplotlib Figure), for a look at what was written."""
        self.embedding = ComboBox(
            label="embedding",
            choices=self._choices,
            tooltip="Follows the embedding shown in the CEBRA embedding dock.",
        )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)

        self.data_file = FileEdit(
            label="data file", mode="w", filter=file_filter("Embedding", EMBEDDING_SUFFIXES)
        )
        self.save_data_button = QPushButton("Save embedding")
        self.data_box = Container(widgets=[self.data_file], label="data")

        self.figure_file = FileEdit(
            label="figure file", mode="w", filter=file_filter("Figure", FIGURE_SUFFIXES)
        )
        self.figure_width = FloatSpinBox(label="width (in)", min=0.5, max=40, step=0.5, value=5)
        self.figure_height = FloatSpinBox(label="height (in)", min=0.5, max=40, step=0.5, value=4)
        self.figure_dpi = SpinBox(label="dpi", min=20, max=1200, value=300)
        self.figure_title = LineEdit(label="title", value="")
        self.figure_box = Container(
            widgets=[
                self.figure_file,
                self.figure_width,
                self.figure_height,
                self.figure_dpi,
                self.figure_title,
            ],
            label="figure",
        )
        self.save_figure_button = QPushButton("Save figure")

        self.movie_file = FileEdit(
            label="movie file", mode="w", filter=file_filter("Movie", MOVIE_SUFFIXES)
        )
        self.movie_mode = ComboBox(
            label="movie", choices=MOVIE_MODES, value="rotate", tooltip="rotate: needs 3 axes."
        )
        self.movie_frames = SpinBox(label="frames", min=2, max=2000, value=60)
        self.movie_fps = SpinBox(label="fps", min=1, max=60, value=20)
        self.movie_size = FloatSpinBox(label="size (in)", min=1, max=20, step=0.5, value=4)
        self.movie_dpi = SpinBox(label="movie dpi", min=20, max=300, value=100)
        self.movie_box = Container(
            widgets=[
                self.movie_file,
                self.movie_mode,
                self.movie_frames,
                self.movie_fps,
                self.movie_size,
                self.movie_dpi,
            ],
            label="movie",
        )
        self.panel = RunPanel(
            self,
            "Write the movie",
            controls=[
                self.embedding,
                self.refresh_button,
                self.data_box,
                self.save_data_button,
                self.figure_box,
                self.save_figure_button,
                self.movie_box,
            ],
            status="Pick an embedding and a file, then save.",
        )
        self.note = text_label(
            "The figure and the movie show the axes and the colouring of the CEBRA embedding "
            "dock; every file is written completely or not at all."
        )

        layout = scrolling_layout(self, footer=[self.panel])
        layout.addWidget(self.embedding.native)
        layout.addWidget(self.refresh_button)
        layout.addWidget(self.data_box.native)
        layout.addWidget(self.save_data_button)
        layout.addWidget(self.figure_box.native)
        layout.addWidget(self.save_figure_button)
        layout.addWidget(self.movie_box.native)
        layout.addWidget(self.note)
        layout.addStretch(1)
        self.save_data_button.clicked.connect(self.save_data)
        self.save_figure_button.clicked.connect(self.save_figure)
        self.run_button.clicked.connect(self.start_movie)
        self._close_watcher = CloseWatcher(self, self._unwatch)
        self.refresh()

    # ----------------------------------------------------------------- the embedding picker
    def embedding_view(self) -> EmbeddingView | None:
        """The viewer's CEBRA embedding dock, or None when it was never opened (not created)."""
        docks = self.viewer.window.dock_widgets
        view = docks[EMBEDDING_DOCK] if EMBEDDING_DOCK in docks else None
        return view if isinstance(view, EmbeddingView) and qt_alive(view) else None

    def refresh(self, *_args: Any) -> None:
        """Re-read the embeddings of the embedding dock; follow its choice when they changed."""
        if not qt_alive(self):
            return
        view = self.embedding_view()
        self._watch(view)
        names = list(view.entries) if view is not None else []
        previous = self.embedding.value
        changed = names != self._names
        self._names = names
        with self.embedding.changed.blocked():
            self.embedding.reset_choices()
            shown = view.choice.value if view is not None else None
            if names and (changed or previous not in names):
                self.embedding.value = shown if shown in names else names[0]
            elif previous in names:
                self.embedding.value = previous

    def _choices(self, _widget: Any = None) -> list[str]:
        return list(self._names)

    def _watch(self, view: EmbeddingView | None) -> None:
        """Follow ``view``'s choice and its embeddings (added or removed)."""
        if view is self._watched():
            return
        self._unwatch()
        if view is not None:
            view.choice.changed.connect(self._follow_choice)
            view.embeddings_changed.connect(self.refresh)
        self._view_ref = None if view is None else weakref.ref(view)

    def _watched(self) -> EmbeddingView | None:
        return None if self._view_ref is None else self._view_ref()

    def _unwatch(self) -> None:
        view, self._view_ref = self._watched(), None
        if view is None or not qt_alive(view):
            return
        view.choice.changed.disconnect(self._follow_choice)
        view.embeddings_changed.disconnect(self.refresh)

    def _follow_choice(self, name: Any = None) -> None:
        if not qt_alive(self):
            return
        self.refresh()
        if name in self._names:
            self.embedding.value = name

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        """Re-read the embeddings whenever the dock is shown (e.g. its tab is picked)."""
        self.refresh()
        super().showEvent(event)

    def _entry(self) -> tuple[EmbeddingView, EmbeddingEntry]:
        """The view and the picked embedding; ValueError when there is none."""
        self.refresh()
        view = self._watched()
        name = self.embedding.value
        if view is None or not name or name not in view.entries:
            raise ValueError(NO_EMBEDDING)
        return view, view.entries[name]

    def _shown_axes(self, view: EmbeddingView, entry: EmbeddingEntry) -> tuple[int, ...]:
        """The embedding dimensions drawn in the dock for ``entry`` (its x, y, z spins)."""
        axes = view.layer(entry.name).metadata.get("cebra_axes")
        if axes is None:
            axes = tuple(int(spin.value) for spin in view.axis_spins)
        axes = tuple(int(axis) for axis in axes)[: entry.embedding.shape[1]]
        if len(axes) < 2 or entry.embedding.shape[1] < 2:
            raise ValueError(
                f"{entry.name!r} has {entry.embedding.shape[1]} dimension(s); a figure or a movie "
                "needs at least 2."
            )
        return axes

    @staticmethod
    def _colouring(entry: EmbeddingEntry) -> tuple[Any, str, str]:
        """``(values, column, colormap)`` as the dock colours the points (categories as text)."""
        column, colormap = entry.coloured_by
        if not column or column not in entry.features:
            return None, "", colormap or "viridis"
        values = entry.features[column].reset_index(drop=True)
        if is_categorical(values):
            values = values.astype(str)
        return values, column, colormap or "viridis"

    # ----------------------------------------------------------------- writing
    def save_data(self) -> Path | None:
        """Write the picked embedding (all frames) and its features table; the file or None."""
        try:
            _, entry = self._entry()
            path = chosen_file(self.data_file, "data", EMBEDDING_SUFFIXES)
            written = save_embedding(
                path, entry.embedding, export_features(entry), frames=entry.frames
            )
        except (ValueError, OSError) as error:
            self.panel.not_started(f"{TITLE}: embedding data", error)
            return None
        rows, dims = entry.embedding.shape
        self.panel.say(f"Saved {entry.name!r} ({rows} frames × {dims} dimensions) to {written}")
        return written

    def save_figure(self) -> Path | None:
        """Write a figure of the picked embedding as the dock shows it; the file or None."""
        try:
            view, entry = self._entry()
            path = chosen_file(self.figure_file, "figure", FIGURE_SUFFIXES)
            axes = self._shown_axes(view, entry)
            values, column, colormap = self._colouring(entry)
            figure = embedding_figure(
                entry.embedding,
                values,
                axes=axes,
                colour_label=column,
                cmap=colormap,
                title=self.figure_title.value,
                size=(float(self.figure_width.value), float(self.figure_height.value)),
                dpi=float(self.figure_dpi.value),
            )
            written = save_figure(figure, path)
        except (ValueError, OSError) as error:
            self.panel.not_started(f"{TITLE}: figure", error)
            return None
        self.last_figure = figure
        coloured = f", coloured by {column}" if column else ""
        self.panel.say(f"Saved the figure of {entry.name!r}{coloured} to {written}")
        return written

    def start_movie(self) -> Any:
        """Check the form and render the movie in the background; returns the worker or None."""
        try:
            view, entry = self._entry()
            path = chosen_file(self.movie_file, "movie", MOVIE_SUFFIXES)
            if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
                raise ValueError(
                    "an MP4 needs the optional package 'imageio-ffmpeg' (pip install "
                    "imageio-ffmpeg); save a .gif instead."
                )
            axes = self._shown_axes(view, entry)
            mode = str(self.movie_mode.value)
            if mode == "rotate" and len(axes) != 3:
                raise ValueError(
                    f"a rotating movie needs 3 axes and {entry.name!r} shows {len(axes)}; "
                    "choose the trail movie."
                )
            values, _, colormap = self._colouring(entry)
        except ValueError as error:
            self.panel.not_started(f"{TITLE}: movie", error)
            return None
        size = float(self.movie_size.value)
        name = entry.name
        return self.panel.start(
            movie_steps(
                path,
                np.ascontiguousarray(entry.embedding[:, list(axes)]),
                values,
                mode=mode,
                n_frames=int(self.movie_frames.value),
                fps=float(self.movie_fps.value),
                size=(size, size),
                dpi=float(self.movie_dpi.value),
                cmap=colormap,
            ),
            description=f"{TITLE}: movie",
            starting=f"Writing the movie of {name!r}…",
            stopped="Stopped.",
            on_record=lambda record: self.panel.say(record.message),
            on_result=lambda written: self.panel.say(
                f"Saved the {mode} movie of {name!r} to {written}"
            ),
            on_error=lambda error: self.panel.say(f"Movie not written: {error}"),
        )
