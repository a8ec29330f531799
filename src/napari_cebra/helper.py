"""``cebra.helper``: the dtype checks cebra's decoders and their tests use.

Only these three of cebra's helper functions are mirrored (the rest of ``cebra.helper`` is
internal to its engine). They accept numpy arrays and torch tensors and import nothing heavy.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["_is_floating", "_is_floating_or_integer", "_is_integer"]


def _tensor_kind(values: Any) -> str | None:
    """``"float"``, ``"complex"`` or ``"integer"`` for a torch tensor; None for anything else."""
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported
    if torch is None or not isinstance(values, torch.Tensor):
        return None
    if torch.is_floating_point(values):
        return "float"
    return "complex" if torch.is_complex(values) else "integer"


def _is_integer(values: Any) -> bool:
    """True for an integer numpy array or an integer (or bool) torch tensor."""
    if isinstance(values, np.ndarray):
        return bool(np.issubdtype(values.dtype, np.integer))
    return _tensor_kind(values) == "integer"


def _is_floating(values: Any) -> bool:
    """True for a floating-point numpy array or torch tensor."""
    if isinstance(values, np.ndarray):
        return bool(np.issubdtype(values.dtype, np.floating))
    return _tensor_kind(values) == "float"


def _is_floating_or_integer(values: Any) -> bool:
    """True for a floating-point or integer numpy array or torch tensor."""
    return _is_floating(values) or _is_integer(values)
