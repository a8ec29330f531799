"""The "CEBRA best-practice report" dock widget.

One button runs the authors' whole recipe (``napari_cebra.workflows.recipe.iter_recipe``:
CEBRA-Time, consistency runs, grid search, CEBRA-Behavior with both shuffle controls, decoding)
on the chosen layers in a worker, writes ``report.html`` and ``results.json``
(``napari_cebra.workflows.report.write_report``) to a folder and opens the report.
"""

from __future__ import annotations

import webbrowser
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container, FileEdit, SpinBox

from napari_cebra._widgets.dock import DockWidget, scrolling_layout, text_label
from napari_cebra._widgets.forms import (
    DataPicker,
    DataSelection,
    neural_frames,
    scoring_batches_box,
)
from napari_cebra._widgets.run_panel import RunPanel
from napari_cebra._widgets.verdict_format import verdict_badge, verdict_line
from napari_cebra._widgets.workers import TraceProgress
from napari_cebra.workflows.report import check_writable_folder

if TYPE_CHECKING:
    import napari

STAGE_UNITS = 1000  # progress-bar units per recipe stage


@dataclass(frozen=True)
class WritingReport:
    """Progress record: the results are being written to ``folder``."""

    folder: str


@dataclass
class ReportOutcome:
    """What a recipe run returns: the results dict, the two files written and, when they could
    not be written into the chosen folder, a note that says where they are instead."""

    results: dict[str, Any]
    report_path: Path
    results_path: Path
    note: str = ""


def report_steps(
    selection: DataSelection,
    out_dir: Path,
    *,
    iterations: int,
    n_runs: int,
    seed: int,
    gof_batches: int,
) -> Generator[Any, None, ReportOutcome]:
    """Worker: run the recipe on the selection and write the report to ``out_dir``."""
    from napari_cebra.workflows.recipe import iter_recipe
    from napari_cebra.workflows.report import ReportKeptElsewhere, write_report_or_keep

    matrix = yield from neural_frames(selection)
    labels = selection.labels[0] if selection.labels else None
    results = yield from iter_recipe(
        matrix,
        labels,
        iterations=iterations,
        n_runs=n_runs,
        valid_fraction=selection.valid_fraction,
        seed=seed,
        gof_batches=gof_batches,
    )
    yield WritingReport(str(out_dir))
    try:
        report_path, results_path = write_report_or_keep(results, out_dir)
    except ReportKeptElsewhere as kept:
        return ReportOutcome(results, kept.report_path, kept.results_path, note=str(kept))
    return ReportOutcome(results, report_path, results_path)


def recipe_progress(record: Any) -> tuple[int, int] | None:
    """Overall progress over the recipe's stages (each stage one equal share of the bar)."""
    n_stages = getattr(record, "n_stages", None)
    if not n_stages:
        return None
    inside = record.step / record.total_steps if record.total_steps else 0.0
    done = (record.stage_index - 1 + min(inside, 1.0)) * STAGE_UNITS
    return int(done), int(n_stages * STAGE_UNITS)


def checks_html(results: dict[str, Any]) -> str:
    """The overall verdict and one coloured line per check of the results dict."""
    lines = [f"<b>Overall:</b> {verdict_badge(results.get('verdict', 'skipped'))}"]
    lines += [
        verdict_line(check["verdict"], check["reason"], title=check["title"])
        for check in results.get("checks", [])
    ]
    return "<br>".join(lines)


class ReportWidget(DockWidget):
    """Run the best-practice recipe on layers and write / open its HTML report."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.outcome: ReportOutcome | None = None
        self.data = DataPicker(
            napari_viewer,
            discrete=False,
            no_labels_note="No behaviour label chosen: the report will skip CEBRA-Behavior, its "
            "shuffle controls and the decoding.",
        )
        self.iterations = SpinBox(
            label="iterations per model",
            min=1,
            max=1_000_000,
            value=5000,
            tooltip="The recipe trains every model for 5,000 steps.",
        )
        self.n_runs = SpinBox(
            label="consistency runs", min=2, max=20, value=5, tooltip="5–10 recommended."
        )
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.gof_batches = scoring_batches_box("Batches averaged for every goodness-of-fit score.")
        self.folder = FileEdit(label="report folder", mode="d", value=Path.home() / "cebra-report")
        self.open_when_done = CheckBox(text="open the report when done", value=True)
        self.settings_box = Container(
            widgets=[
                self.iterations,
                self.n_runs,
                self.seed,
                self.gof_batches,
                self.folder,
                self.open_when_done,
            ],
            label="recipe",
        )
        self.panel = RunPanel(
            self,
            "Run the recipe and write the report",
            controls=[self.data, self.settings_box],
            status="Pick the layers (behaviour is optional), then press Run.",
        )
        self.summary = text_label()

        layout = scrolling_layout(self, footer=[self.panel])  # Run/Stop always in sight
        layout.addWidget(self.data.native)
        layout.addWidget(self.settings_box.native)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self.run_button.clicked.connect(self.start)

    def start(self) -> None:
        """Read the layers and start the recipe in a worker; problems become notifications."""
        try:
            selection = self.data.read()
            folder = check_writable_folder(self.folder.value)
        except ValueError as error:
            self.panel.not_started("Best-practice report", error)
            return
        self.outcome = None
        self.summary.setText("")
        self.panel.start(
            report_steps(
                selection,
                folder,
                iterations=int(self.iterations.value),
                n_runs=int(self.n_runs.value),
                seed=int(self.seed.value),
                gof_batches=int(self.gof_batches.value),
            ),
            description="Best-practice recipe",
            starting="Starting the recipe…",
            stopped="Stopped: no report written.",
            on_record=self._on_record,
            on_result=self.show_outcome,
            measure=recipe_progress,
        )

    def _on_record(self, record: Any) -> None:
        if isinstance(record, TraceProgress):
            self.panel.say(record.message)
        elif isinstance(record, WritingReport):
            self.panel.say(f"Writing the report to {record.folder}…")
        else:
            self.panel.say(record.message)

    def show_outcome(self, outcome: ReportOutcome) -> None:
        """Show the verdicts and where the report is; open it if asked."""
        self.outcome = outcome
        seconds = outcome.results.get("timings", {}).get("total", 0.0)
        if outcome.note:
            from napari.utils.notifications import show_warning

            show_warning(f"Best-practice report: {outcome.note}")
            self.panel.say(f"Report written in {seconds:.0f} s, elsewhere: {outcome.report_path}")
        else:
            self.panel.say(f"Report written in {seconds:.0f} s: {outcome.report_path}")
        self.summary.setText(checks_html(outcome.results))
        if self.open_when_done.value:
            webbrowser.open(outcome.report_path.resolve().as_uri())
