"""``cebra.integrations.sklearn`` (also ``cebra.sklearn``) mirrored: ``cebra`` (the estimator),
``metrics``, ``decoder`` and ``helpers``, each imported on first access."""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = ("cebra", "metrics", "decoder", "helpers")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    return sorted(__all__)
