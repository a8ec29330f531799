"""The best-practice report: ``report.html`` (self-contained) and ``results.json``.

:func:`write_report` renders the results dict of :func:`napari_cebra.workflows.recipe.run_recipe`.
Everything is rendered in memory first; each file is then written to a temporary file in the
output folder and moved into place with :func:`os.replace`, so an interrupted run never leaves a
truncated report behind.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_cebra.core.files import replace_file_atomically, write_texts_atomically

REPORT_NAME = "report.html"
FALLBACK_PREFIX = "napari-cebra-report-"
PROBE_NAME = ".napari-cebra-write-probe"
RESULTS_NAME = "results.json"
_VERDICT_COLOURS = {"pass": "#1b7f3b", "warn": "#b36b00", "fail": "#b3261e", "skipped": "#666"}
_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: bold; text-transform: uppercase; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; } .figures img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
"""


def to_jsonable(value: Any) -> Any:
    """Convert numpy values, tuples and paths to JSON types; NaN and infinities become None."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, list | tuple | set):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"Cannot store a {type(value).__name__} in results.json: {value!r}")


def write_report(results: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.html`` and ``results.json`` for a recipe run.

    Parameters
    ----------
    results : mapping
        The dict returned by :func:`~napari_cebra.workflows.recipe.run_recipe`.
    out_dir : path-like
        Output folder, created if needed.

    Returns
    -------
    (Path, Path)
        Paths of the HTML report and the JSON results.
    """
    clean = to_jsonable(results)
    results_text = json.dumps(clean, indent=1, allow_nan=False)
    report_text = render_html(clean)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results_path, report_path = folder / RESULTS_NAME, folder / REPORT_NAME
    write_texts_atomically({results_path: results_text, report_path: report_text})
    return report_path, results_path


class ReportKeptElsewhere(OSError):
    """The report could not be written where asked; it was written to ``folder`` instead."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder
        self.report_path = folder / REPORT_NAME
        self.results_path = folder / RESULTS_NAME


def check_writable_folder(out_dir: str | os.PathLike) -> Path:
    """Make sure the report can be written into ``out_dir`` before any work starts.

    A probe file is written and removed with the package's writer; a missing ``out_dir`` is
    created for the probe (its parent must exist) and removed again.

    Returns
    -------
    Path
        ``out_dir`` with ``~`` expanded.

    Raises
    ------
    ValueError
        ``out_dir`` is a file, its parent folder is missing, or the probe could not be written
        (one line that names the folder and the reason).
    """
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"report folder {str(out_dir)!r} is a file, not a folder.")
    if not folder.exists() and not folder.parent.is_dir():
        raise ValueError(
            f"report folder {str(out_dir)!r}: the parent folder {folder.parent} does not exist."
        )
    created = not folder.exists()
    try:
        if created:
            folder.mkdir()
        probe = folder / f"{PROBE_NAME}-{os.getpid()}"
        replace_file_atomically(probe, lambda handle: None).unlink()
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ValueError(
            f"report folder {str(out_dir)!r}: cannot write files into this folder ({reason})."
        ) from error
    finally:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
    return folder


def write_report_or_keep(
    results: Mapping[str, Any], out_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """:func:`write_report` into ``out_dir``; if that fails, keep the report somewhere else.

    Returns
    -------
    (Path, Path)
        The report and results files in ``out_dir``.

    Raises
    ------
    ReportKeptElsewhere
        Writing into ``out_dir`` failed (e.g. a full disk); the files were written to a new
        ``napari-cebra-report-*`` folder in the temporary folder, else in the home folder; the
        message and ``.folder`` say which.
    OSError
        No folder could take them; the message gives each error and says the results are lost.
    """
    try:
        return write_report(results, out_dir)
    except OSError as error:
        failure = f"could not write the report into {out_dir} ({error.strerror or error})"
    problems = []
    for parent in (Path(tempfile.gettempdir()), Path.home()):
        try:
            folder = Path(tempfile.mkdtemp(prefix=FALLBACK_PREFIX, dir=parent))
            write_report(results, folder)
        except OSError as error:
            problems.append(str(error))
            continue
        raise ReportKeptElsewhere(
            f"{failure}; the report and results were written to {folder} instead.", folder
        )
    raise OSError(f"{failure}, nor elsewhere ({'; '.join(problems)}); the results are lost.")


# ---------------------------------------------------------------------------------------------
# HTML rendering


def _escape(value: Any) -> str:
    return html.escape(str(value))


def _format_number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            f"{value:.{digits}g}"
            if abs(value) >= 1e4 or 0 < abs(value) < 1e-3
            else f"{value:.{digits}f}"
        )
    return _escape(value)


class _Html:
    """Markup that a table cell shows as is."""

    def __init__(self, markup: str):
        self.markup = markup


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_escape(name)}</th>" for name in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, _Html):
                cells.append(f"<td>{cell.markup}</td>")
            elif isinstance(cell, int | float) and not isinstance(cell, bool):
                cells.append(f'<td class="num">{_format_number(cell)}</td>')
            else:
                cells.append(f"<td>{_format_number(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_badge(verdict: str | None) -> _Html:
    verdict = verdict or "skipped"
    colour = _VERDICT_COLOURS.get(verdict, "#222")
    return _Html(f'<span class="verdict" style="color:{colour}">{_escape(verdict)}</span>')


def _figure_png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{encoded}">'


def _new_figure(width: float, height: float) -> Any:
    import matplotlib.figure

    return matplotlib.figure.Figure(figsize=(width, height), dpi=90)


def _loss_figure(curves: Sequence[tuple[str, Sequence[float] | None, str]]) -> str:
    from napari_cebra.workflows.plotting import plot_loss

    figure = _new_figure(6.5, 3.2)
    ax = figure.add_subplot()
    for label, values, colour in curves:
        if values:
            plot_loss(np.asarray(values, dtype=float), label=label, ax=ax, color=colour)
    return _figure_png(figure)


def _embedding_figure(preview: Mapping[str, Any] | None, title: str) -> str:
    from napari_cebra.workflows.plotting import plot_embedding

    if not preview or not preview.get("embedding"):
        return ""
    points = np.asarray(preview["embedding"], dtype=float)
    colour = preview.get("colour")
    figure = _new_figure(4.2, 4.2)
    projection = "3d" if points.shape[1] >= 3 else None
    ax = figure.add_subplot(projection=projection)
    labels = np.asarray(colour, dtype=float) if colour else "time"
    plot_embedding(points, labels, ax=ax, markersize=2, alpha=0.6, title=title)
    return _figure_png(figure)


def _consistency_figure(matrix: Sequence[Sequence[float | None]] | None, title: str) -> str:
    from napari_cebra.workflows.plotting import plot_consistency

    if not matrix:
        return ""
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    figure = _new_figure(4.2, 4.0)
    # fixed 0-100 % scale so that train and validation are comparable; red text reads on both
    # ends of the grey scale
    plot_consistency(
        values, ax=figure.add_subplot(), title=title, text_color="tab:red", vmin=0, vmax=100
    )
    return _figure_png(figure)


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{_escape(title)}</h2>{''.join(part for part in parts if part)}</section>"


def _figures(*images: str) -> str:
    shown = [image for image in images if image]
    return f'<div class="figures">{"".join(shown)}</div>' if shown else ""


def _skipped(section: Mapping[str, Any] | None) -> str:
    if not section or section.get("status") == "skipped":
        reason = (section or {}).get("reason", "not run")
        return f'<p class="note">Skipped: {_escape(reason)}</p>'
    return ""


def _checks_section(results: Mapping[str, Any]) -> str:
    rows = [
        (
            check.get("title", check["name"]),
            _verdict_badge(check.get("verdict")),
            check.get("reason", ""),
        )
        for check in results.get("checks", [])
    ]
    overall = results.get("verdict")
    return _section(
        "Checks",
        f"<p>Overall: {_verdict_badge(overall).markup}</p>",
        _table(("check", "verdict", "why"), rows),
    )


def _input_section(results: Mapping[str, Any]) -> str:
    data = results.get("input", {})
    settings = results.get("settings", {})
    rows = [(key, value) for key, value in data.items()]
    rows += [(key, json.dumps(value)) for key, value in settings.items()]
    return _section("Data and settings", _table(("item", "value"), rows))


def _time_section(results: Mapping[str, Any]) -> str:
    section = results.get("time_model") or {}
    if section.get("status") == "skipped":
        return _section("CEBRA-Time", _skipped(section))
    rows = [
        ("goodness of fit, train (bits)", section.get("gof_train")),
        ("goodness of fit, validation (bits)", section.get("gof_valid")),
        ("final InfoNCE loss", section.get("final_loss")),
        ("training time (s)", section.get("seconds")),
    ]
    return _section(
        "CEBRA-Time",
        _figures(
            _embedding_figure(section.get("embedding_preview"), "CEBRA-Time (validation)"),
            _loss_figure([("CEBRA-Time", section.get("loss"), "magenta")]),
        ),
        _table(("measure", "value"), rows),
    )


def _consistency_section(results: Mapping[str, Any]) -> str:
    section = results.get("consistency") or {}
    if section.get("status") == "skipped":
        return _section("Consistency across runs", _skipped(section))
    train, valid = section.get("train", {}), section.get("valid", {})
    collapsed = section.get("collapsed") or []

    def mean(part: Mapping[str, Any]) -> Any:
        if part.get("mean") is None and collapsed:
            return f"collapsed (seeds {collapsed}: every frame maps to one point)"
        return _percent(part.get("mean"))

    rows = [
        ("runs (seeds)", f"{section.get('n_runs')} ({section.get('seeds')})"),
        ("mean consistency, train (%)", mean(train)),
        ("mean consistency, validation (%)", mean(valid)),
        ("time (s)", section.get("seconds")),
    ]
    return _section(
        "Consistency across runs",
        _figures(
            _consistency_figure(train.get("matrix"), "train"),
            _consistency_figure(valid.get("matrix"), "validation"),
        ),
        _table(("measure", "value"), rows),
    )


def _percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _grid_section(results: Mapping[str, Any]) -> str:
    section = results.get("grid_search") or {}
    if section.get("status") == "skipped":
        return _section("Grid search", _skipped(section))
    table = section.get("results") or []
    columns = list(table[0]) if table else []
    best = section.get("best") or {}
    parts = [
        f"<p>Best configuration by {_escape(section.get('scoring', ''))}: "
        f"<b>{_escape(best.get('name', ''))}</b></p>",
        _table(columns, [[row.get(column) for column in columns] for row in table]),
    ]
    fixed = section.get("fixed") or {}
    if fixed:
        settings = ", ".join(f"{name} = {value}" for name, value in fixed.items())
        note = (
            " (full batch: goodness of fit over all validation frames at once, chance = "
            "log2 of their number)"
            if "batch_size" in fixed and fixed["batch_size"] is None
            else ""
        )
        parts.insert(1, f"<p>Every point: {_escape(settings)}{note}.</p>")
    return _section("Grid search", *parts)


def _behaviour_section(results: Mapping[str, Any]) -> str:
    section = results.get("behaviour_model") or {}
    if section.get("status") == "skipped":
        return _section("CEBRA-Behavior and shuffle controls", _skipped(section))
    controls = results.get("controls") or {}
    label, neural = controls.get("label_shuffle") or {}, controls.get("neural_shuffle") or {}
    curves = [
        ("CEBRA-Behavior", section.get("loss"), "magenta"),
        ("labels shuffled", (label.get("control") or {}).get("loss"), "#4854e9"),
        ("neurons shuffled", (neural.get("control") or {}).get("loss"), "#a0a0a0"),
    ]
    rows = [("CEBRA-Behavior", "–", section.get("gof_train"), section.get("gof_valid"), "")]
    for name, control in (("labels shuffled", label), ("neurons shuffled", neural)):
        if control.get("control"):
            rows.append(
                (
                    name,
                    control.get("method"),
                    control["control"].get("gof_train"),
                    control["control"].get("gof_valid"),
                    _verdict_badge(control.get("verdict")),
                )
            )
    return _section(
        "CEBRA-Behavior and shuffle controls",
        _figures(
            _embedding_figure(section.get("embedding_preview"), "CEBRA-Behavior (validation)"),
            _loss_figure(curves),
        ),
        _table(("model", "shuffle", "GoF train (bits)", "GoF validation (bits)", "verdict"), rows),
    )


def _decoding_section(results: Mapping[str, Any]) -> str:
    section = results.get("decoding") or {}
    if section.get("status") == "skipped":
        return _section("Decoding", _skipped(section))
    rows = []
    for name in ("behaviour_model", "time_model"):
        decoded = section.get(name)
        if decoded:
            rows.append(
                (
                    name.replace("_", " "),
                    decoded.get("position_median_abs_error"),
                    decoded.get("position_r2"),
                    decoded.get("direction_accuracy"),
                )
            )
    header = ("embedding", "median |error| (label units)", "R²", "direction accuracy")
    note = (
        f'<p class="note">kNN (k = {_escape(section.get("n_neighbors"))}, cosine) trained on '
        "the training embedding, evaluated on the validation embedding.</p>"
    )
    return _section("Decoding", note, _table(header, rows))


def render_html(results: Mapping[str, Any]) -> str:
    """The report page for a (JSON-clean) results dict, with all figures embedded as PNG."""
    sections = [
        _checks_section(results),
        _input_section(results),
        _time_section(results),
        _consistency_section(results),
        _grid_section(results),
        _behaviour_section(results),
        _decoding_section(results),
    ]
    created = _escape(results.get("created", ""))
    version = _escape(results.get("napari_cebra_version", ""))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>CEBRA best-practice report</title><style>{_STYLE}</style></head><body>"
        "<h1>CEBRA best-practice report</h1>"
        f'<p class="note">napari-cebra {version}, {created}</p>'
        f"{''.join(sections)}</body></html>"
    )
