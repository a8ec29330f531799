"""The models trained or loaded in this napari session (plain Python, no Qt).

Every trained model is registered here with its parameters and a description of the data it was
trained on, so the Models widget (save, load, transform) and any later widget can pick from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionModel:
    """A fitted CEBRA estimator and where it came from.

    Attributes
    ----------
    name : str
        Unique name in the session (e.g. ``"CEBRA-Time #1"``).
    model : napari_cebra.CEBRA
        The fitted estimator.
    params : dict
        Constructor parameters of the estimator.
    trained_on : dict
        Description of the data: neural layer, ROI layer, behaviour layer and variables, frames,
        validation fraction, steps done (empty for models loaded from disk).
    source : str
        ``"trained"`` or the path the model was loaded from.
    created : float
        ``time.time()`` at registration.
    """

    name: str
    model: Any
    params: dict[str, Any]
    trained_on: dict[str, Any] = field(default_factory=dict)
    source: str = "trained"
    created: float = field(default_factory=time.time)

    def summary(self) -> str:
        """One line for lists: name, output dimension and data."""
        dims = self.params.get("output_dimension", "?")
        data = self.trained_on.get("neural", self.source)
        return f"{self.name} — {dims}-D, {data}"


class ModelRegistry:
    """Ordered, name-unique collection of :class:`SessionModel` with change callbacks."""

    def __init__(self) -> None:
        self._models: dict[str, SessionModel] = {}
        self._listeners: list[Callable[[], None]] = []

    def __iter__(self) -> Iterator[SessionModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def names(self) -> list[str]:
        """Names in registration order."""
        return list(self._models)

    def get(self, name: str) -> SessionModel:
        """The entry called ``name``; ``KeyError`` naming the known models otherwise."""
        try:
            return self._models[name]
        except KeyError:
            raise KeyError(f"No model {name!r} in this session; known: {self.names()}") from None

    def unique_name(self, base: str) -> str:
        """``base #k`` with the smallest ``k >= 1`` not yet used."""
        k = 1
        while f"{base} #{k}" in self._models:
            k += 1
        return f"{base} #{k}"

    def add(
        self,
        model: Any,
        *,
        base_name: str,
        trained_on: dict[str, Any] | None = None,
        source: str = "trained",
    ) -> SessionModel:
        """Register a fitted estimator under a fresh name and notify listeners."""
        entry = SessionModel(
            name=self.unique_name(base_name),
            model=model,
            params=dict(model.get_params()),
            trained_on=dict(trained_on or {}),
            source=source,
        )
        self._models[entry.name] = entry
        self._notify()
        return entry

    def remove(self, name: str) -> None:
        """Forget the model called ``name``."""
        self.get(name)
        del self._models[name]
        self._notify()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change."""
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()


_SESSION = ModelRegistry()


def session_models() -> ModelRegistry:
    """The registry shared by all widgets of this Python process."""
    return _SESSION
