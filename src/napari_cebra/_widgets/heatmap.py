"""An annotated heatmap with a colour bar, drawn with vispy inside a Qt widget.

Made for consistency matrices: entry ``[a, b]`` is the R² of a linear fit from embedding ``a`` to
embedding ``b``. Cells show the value in percent with one decimal; NaN cells (the diagonal, pairs
that were not compared) stay blank. Rows are the predicting embedding, columns the predicted one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_cebra._widgets.plot_theme import PlotColours, follow_theme

COLORMAP = "viridis"
LIMITS = (0.0, 100.0)  # percent; fixed so that train and validation maps read alike
SHORT_LABEL = 8  # longer axis labels are replaced by numbers explained under the map
ROW_LABEL_PX = 64
COLUMN_LABEL_PX = 22
COLORBAR_PX = 84


def cell_texts(percent: np.ndarray) -> list[list[str]]:
    """Annotation of every cell: one decimal, empty for NaN."""
    return [["" if np.isnan(value) else f"{value:.1f}" for value in row] for row in percent]


def cell_colours(percent: np.ndarray, limits: tuple[float, float] = LIMITS) -> np.ndarray:
    """``(k, k, 4)`` RGBA colours of the cells; NaN cells are fully transparent."""
    from vispy.color import get_colormap

    low, high = limits
    scaled = np.clip((np.nan_to_num(percent, nan=low) - low) / (high - low), 0.0, 1.0)
    rgba = get_colormap(COLORMAP).map(scaled.reshape(-1, 1)).reshape(*percent.shape, 4)
    rgba[np.isnan(percent)] = 0.0
    return rgba.astype(np.float32)


def text_colours(rgba: np.ndarray) -> np.ndarray:
    """Black on light cells, white on dark ones (``(k·k, 4)``, row-major)."""
    flat = rgba.reshape(-1, 4)
    luminance = flat[:, :3] @ np.array([0.299, 0.587, 0.114])
    colours = np.ones((len(flat), 4), dtype=np.float32)
    colours[luminance > 0.55, :3] = 0.0
    return colours


def axis_labels(names: Sequence[str]) -> tuple[list[str], str]:
    """Tick labels and a key: the names themselves if short, else ``1 … k`` and ``"1 = name"``."""
    names = [str(name) for name in names]
    if all(len(name) <= SHORT_LABEL for name in names):
        return names, ""
    ticks = [str(i + 1) for i in range(len(names))]
    key = ",  ".join(f"{tick} = {name}" for tick, name in zip(ticks, names, strict=True))
    return ticks, key


class Heatmap(QWidget):
    """Square matrix as coloured, annotated cells with row/column labels and a colour bar.

    Parameters
    ----------
    title : str
        Text above the map.
    colorbar_label : str
        Label of the colour bar.
    height : int
        Minimum canvas height in pixels.
    parent : QWidget, optional
        Qt parent.
    """

    def __init__(
        self,
        title: str = "",
        colorbar_label: str = "consistency (%)",
        height: int = 230,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from vispy import scene

        self._scene = scene
        self.matrix = np.zeros((0, 0))
        self.names: list[str] = []
        self.canvas = scene.SceneCanvas(keys=None, size=(320, height))
        grid = self.canvas.central_widget.add_grid(spacing=2, margin=4)
        self.view = grid.add_view(row=0, col=1)
        self.row_view = grid.add_view(row=0, col=0)
        self.row_view.width_min = self.row_view.width_max = ROW_LABEL_PX
        self.column_view = grid.add_view(row=1, col=1)
        self.column_view.height_min = self.column_view.height_max = COLUMN_LABEL_PX
        for view in (self.view, self.row_view, self.column_view):
            view.camera = scene.PanZoomCamera(aspect=None, interactive=False)
        self.view.camera.flip = self.row_view.camera.flip = (False, True, False)
        self.colorbar_view = grid.add_view(row=0, col=2)
        self.colorbar_view.width_min = self.colorbar_view.width_max = COLORBAR_PX
        self.colorbar_view.camera = scene.PanZoomCamera(aspect=None, interactive=False)
        self._build_colorbar(colorbar_label)

        self.image = scene.Image(
            np.zeros((1, 1, 4), dtype=np.float32), interpolation="nearest", parent=self.view.scene
        )
        self.cell_text = scene.Text(color="white", font_size=9, parent=self.view.scene)
        self.row_text = scene.Text(font_size=8, anchor_x="right", parent=self.row_view.scene)
        self.column_text = scene.Text(font_size=8, parent=self.column_view.scene)

        self.title = QLabel(title, self)
        self.title.setVisible(bool(title))
        self.key = QLabel(self)
        self.key.setWordWrap(True)
        self.key.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas.native, stretch=1)
        layout.addWidget(self.key)
        self.canvas.native.setMinimumHeight(height)
        self.clear()
        follow_theme(self, self.apply_theme)

    def apply_theme(self, colours: PlotColours) -> None:
        """Draw with ``colours`` (napari's theme now and after every theme change)."""
        self.canvas.bgcolor = colours.background
        for text in (self.row_text, self.column_text, self.colorbar_ticks, self.colorbar_label):
            text.color = colours.text
        self.canvas.update()

    @property
    def percent(self) -> np.ndarray:
        """The values drawn: ``100 ×`` the matrix."""
        return 100.0 * self.matrix

    def annotations(self) -> list[list[str]]:
        """The text of every cell, row by row (``""`` for blank cells)."""
        return cell_texts(self.percent)

    def set_title(self, title: str) -> None:
        """Change the text above the map (empty hides it)."""
        self.title.setText(title)
        self.title.setVisible(bool(title))

    def clear(self) -> None:
        """Show an empty map."""
        self.matrix = np.zeros((0, 0))
        self.names = []
        for visual in (self.image, self.cell_text, self.row_text, self.column_text):
            visual.visible = False
        self.key.setVisible(False)
        self.canvas.update()

    def set_matrix(self, matrix: np.ndarray, names: Sequence[str]) -> None:
        """Show ``matrix`` (fractions, e.g. R²; NaN = blank) with row/column ``names``.

        Raises
        ------
        ValueError
            If ``matrix`` is not square or ``names`` does not have one name per row.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
            raise ValueError(
                f"matrix must be a non-empty square 2-D array, got shape {matrix.shape}"
            )
        if len(names) != len(matrix):
            raise ValueError(
                f"names has {len(names)} entries but matrix of shape {matrix.shape} needs "
                f"{len(matrix)}: {list(names)}"
            )
        self.matrix = matrix.copy()
        self.names = [str(name) for name in names]
        k = len(matrix)
        rgba = cell_colours(self.percent)
        self.image.set_data(rgba)
        centres = np.arange(k) + 0.5
        rows, columns = np.meshgrid(centres, centres, indexing="ij")
        texts = [text for row in self.annotations() for text in row]
        self.cell_text.text = texts
        self.cell_text.pos = np.column_stack([columns.ravel(), rows.ravel()])
        self.cell_text.color = text_colours(rgba)
        self.cell_text.font_size = 9 if k <= 6 else (7 if k <= 10 else 5)
        ticks, key = axis_labels(self.names)
        self.row_text.text = ticks
        self.row_text.pos = np.column_stack([np.full(k, 0.95), centres])
        self.column_text.text = ticks
        self.column_text.pos = np.column_stack([centres, np.full(k, 0.5)])
        for visual in (self.image, self.cell_text, self.row_text, self.column_text):
            visual.visible = True
        self.view.camera.set_range(x=(0, k), y=(0, k), margin=0)
        self.row_view.camera.set_range(x=(0, 1), y=(0, k), margin=0)
        self.column_view.camera.set_range(x=(0, k), y=(0, 1), margin=0)
        self.key.setText(key)
        self.key.setVisible(bool(key))
        self.canvas.update()

    def _build_colorbar(self, label: str) -> None:
        """A vertical gradient with ticks every 25 % and a rotated label, in its own view."""
        from vispy.color import get_colormap
        from vispy.visuals.transforms import STTransform

        scene, low, high = self._scene, *LIMITS
        steps = 256
        gradient = get_colormap(COLORMAP).map(np.linspace(0.0, 1.0, steps).reshape(-1, 1))
        bar = scene.Image(
            gradient.reshape(steps, 1, 4).astype(np.float32),
            interpolation="nearest",
            parent=self.colorbar_view.scene,
        )
        bar.transform = STTransform(scale=(1.0, (high - low) / steps), translate=(0.0, low))
        ticks = np.linspace(low, high, 5)
        self.colorbar_ticks = scene.Text(
            [f"{value:g}" for value in ticks],
            pos=np.column_stack([np.full(len(ticks), 1.3), ticks]),
            font_size=7,
            anchor_x="left",
            parent=self.colorbar_view.scene,
        )
        self.colorbar_label = scene.Text(
            label,
            pos=(3.5, (low + high) / 2),
            rotation=-90,
            font_size=8,
            parent=self.colorbar_view.scene,
        )
        pad = 0.06 * (high - low)
        self.colorbar_view.camera.set_range(x=(0, 4), y=(low - pad, high + pad), margin=0)
