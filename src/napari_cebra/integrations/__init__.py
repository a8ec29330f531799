"""``cebra.integrations`` mirrored: ``sklearn``, ``matplotlib`` and ``plotly``.

The subpackages hold no code of their own: they give our functions the module paths that CEBRA
notebooks use (``cebra.integrations.plotly.plot_embedding_interactive``, ...). They are imported on
first access, so ``import napari_cebra`` stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = ("sklearn", "matplotlib", "plotly")

__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'napari_cebra.integrations' has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    return sorted(__all__)
