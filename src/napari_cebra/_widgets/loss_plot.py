"""Live loss curves of a training run: the total InfoNCE loss, optionally its two terms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qtpy.QtWidgets import QCheckBox, QWidget

from napari_cebra._widgets.line_plot import LinePlot
from napari_cebra._widgets.plot_theme import FOREGROUND

CURVES = {  # name -> colour (colour-blind safe; the total in the theme's text colour)
    "total": FOREGROUND,
    "pos": "#56b4e9",
    "neg": "#e69f00",
}
TERMS = ("pos", "neg")


class LossPlot(LinePlot):
    """A :class:`LinePlot` of the InfoNCE loss during training, appended batch by batch.

    The total loss is always drawn; the positive (alignment) and negative (uniformity) terms
    when ``show_terms`` is ticked, so that off, the axis fits the total and its decrease is
    easy to read. Appending is cheap; redraws are throttled by :class:`LinePlot`.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(x_label="step", y_label="InfoNCE loss", parent=parent)
        self.show_terms = QCheckBox("pos / neg terms", self)
        self.show_terms.setToolTip(
            "Also draw the positive and negative InfoNCE terms (total = pos + neg); off, the "
            "axis fits the total loss so its decrease is easier to read."
        )
        self.show_terms.toggled.connect(self._show_terms)
        self.layout().addWidget(self.show_terms)
        self.clear()

    @property
    def n_points(self) -> int:
        """Number of steps appended since the last :meth:`clear`."""
        return len(self.curve("total"))

    def clear(self) -> None:
        """Forget all steps and show empty axes."""
        super().clear()
        for name, colour in CURVES.items():
            self.add_curve(name, colour=colour)
        self._show_terms(self.show_terms.isChecked())

    def extend(
        self,
        steps: Sequence[float] | np.ndarray,
        pos: Sequence[float] | np.ndarray,
        neg: Sequence[float] | np.ndarray,
        total: Sequence[float] | np.ndarray,
    ) -> None:
        """Add the loss terms of several steps at once (the plot redraws shortly after)."""
        for name, values in (("pos", pos), ("neg", neg), ("total", total)):
            self.extend_curve(name, steps, values)

    def _show_terms(self, checked: bool) -> None:
        for name in TERMS:
            self.set_visible(name, checked)
