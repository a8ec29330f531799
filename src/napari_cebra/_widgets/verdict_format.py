"""HTML of the verdicts computed in ``napari_cebra.workflows.verdicts``, shared by every dock.

A verdict (``pass``/``warn``/``fail``, ``info`` for informative lines, ``skipped`` for an overall
verdict of nothing) is shown as a coloured upper-case badge followed by its text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

VERDICT_COLOURS = {"pass": "#3ba55d", "warn": "#e6a23c", "fail": "#e5534b", "info": "#9aa0a6"}
OTHER_COLOUR = "#9aa0a6"
"""Colour of a verdict not in :data:`VERDICT_COLOURS` (e.g. ``"skipped"``)."""


def verdict_badge(verdict: str) -> str:
    """The verdict in bold upper case, in its colour."""
    colour = VERDICT_COLOURS.get(verdict, OTHER_COLOUR)
    return f"<b style='color:{colour}'>{html.escape(verdict.upper())}</b>"


def verdict_line(verdict: str, text: str, title: str | None = None) -> str:
    """``BADGE text`` or ``BADGE title: text`` (title in bold); title and text are escaped."""
    prefix = f"{verdict_badge(verdict)} "
    if title:
        prefix += f"<b>{html.escape(title)}</b>: "
    return prefix + html.escape(text)


def reading_html(lines: Iterable[tuple[str, str]]) -> str:
    """One :func:`verdict_line` per ``(verdict, text)`` pair, one per line."""
    return "<br>".join(verdict_line(verdict, text) for verdict, text in lines)
