"""Parameter grids written as text: one ``name: value`` or ``name: v1, v2, …`` per line.

What the Grid search widget's text box holds, read into ``GridSearch`` parameters (fixed values
and lists of varied values) with errors that name the line; plus the figures the widget shows
(how many models, which parameters vary, whether behaviour labels are needed). No Qt.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any


def default_grid_text() -> str:
    """The recipe's 16-point grid around its CEBRA-Time configuration, as editable text."""
    from napari_cebra.workflows.presets import DEFAULT_GRID, TIME_PARAMS

    params = {**TIME_PARAMS, "max_iterations": 5000, **DEFAULT_GRID}
    return "\n".join(f"{name}: {format_values(values)}" for name, values in params.items())


def format_values(values: Any) -> str:
    """``[3e-4, 1e-3]`` → ``"0.0003, 0.001"``; strings unquoted."""
    items = values if isinstance(values, list) else [values]
    return ", ".join(str(item) for item in items)


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def _parse_value(token: str) -> Any:
    """A Python literal (number, tuple, None, True/False, quoted string) or a bare string."""
    try:
        return ast.literal_eval(token)
    except (ValueError, SyntaxError):
        return token


def parse_grid(text: str, known: set[str] | None = None) -> dict[str, Any]:
    """Read grid text into ``GridSearch`` parameters.

    Parameters
    ----------
    text : str
        One ``name: value`` or ``name: v1, v2, …`` per line; ``#`` starts a comment.
    known : set of str, optional
        Accepted parameter names (default: every ``CEBRA`` constructor parameter).

    Returns
    -------
    dict
        name → value (fixed) or list of values (varied).

    Raises
    ------
    ValueError
        For a line without ``:``, an empty value, an unknown or repeated parameter name; the
        message names the line.
    """
    if known is None:
        from napari_cebra import CEBRA

        known = set(CEBRA().get_params())
    params: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, colon, values = line.partition(":")
        name = name.strip()
        where = f"Grid line {number} ({raw.strip()!r})"
        if not colon:
            raise ValueError(f"{where}: write 'parameter: value' or 'parameter: value1, value2'.")
        if name not in known:
            raise ValueError(
                f"{where}: {name!r} is not a CEBRA parameter; known: {', '.join(sorted(known))}."
            )
        if name in params:
            raise ValueError(f"{where}: {name!r} is given twice.")
        tokens = _split_top_level(values)
        if not all(tokens):
            raise ValueError(f"{where}: a value is missing.")
        parsed = [_parse_value(token) for token in tokens]
        params[name] = parsed[0] if len(parsed) == 1 else parsed
    return params


def varied_parameters(params: Mapping[str, Any]) -> dict[str, list]:
    """The parameters with two or more values."""
    return {k: v for k, v in params.items() if isinstance(v, list) and len(v) > 1}


def grid_size(params: Mapping[str, Any]) -> int:
    """Number of configurations: the product of the numbers of values of varied parameters."""
    return math.prod(len(v) for v in varied_parameters(params).values())


def uses_labels(params: Mapping[str, Any]) -> bool:
    """True when some configuration trains on behaviour (not only ``conditional: time``)."""
    conditionals = params.get("conditional", "time")
    conditionals = conditionals if isinstance(conditionals, list) else [conditionals]
    hybrid = params.get("hybrid", False)
    hybrids = hybrid if isinstance(hybrid, list) else [hybrid]
    return any(c not in ("time", None) for c in conditionals) or any(hybrids)
