"""Generalised InfoNCE criterion (spec §3 and §1.7).

For references ``r_i``, positives ``p_i`` (``i = 1 … B``) and separately drawn negatives ``n_j``
(``j = 1 … B'``) with similarity ``φ``::

    pos_term = - mean_i φ(r_i, p_i)
    neg_term =   mean_i log Σ_j exp φ(r_i, n_j)
    total    =   pos_term + neg_term

The positive pair is not part of the denominator, so when all similarities are equal the loss is
``log B'``. ``φ`` is either the dot product (``"cosine"``; the loss does not normalise, the encoder's
last layer does) or the negative *squared* Euclidean distance (``"euclidean"``), divided by the
temperature.

This module imports torch at import time; it is only imported when a model is trained or scored.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

DISTANCES = ("cosine", "euclidean")
TEMPERATURE_MODES = ("constant", "auto")


def dot_similarity(
    ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dot products of references with their positives and with every negative.

    Parameters
    ----------
    ref, pos : torch.Tensor
        Shape ``(B, d)``.
    neg : torch.Tensor
        Shape ``(B', d)``.

    Returns
    -------
    pos_sim : torch.Tensor
        ``(B,)``, ``⟨r_i, p_i⟩``.
    neg_sim : torch.Tensor
        ``(B, B')``, ``⟨r_i, n_j⟩``.
    """
    return (ref * pos).sum(dim=1), ref @ neg.T


def euclidean_similarity(
    ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative squared Euclidean distances, computed as ``‖x‖² + ‖y‖² − 2⟨x, y⟩``.

    Parameters
    ----------
    ref, pos : torch.Tensor
        Shape ``(B, d)``.
    neg : torch.Tensor
        Shape ``(B', d)``.

    Returns
    -------
    pos_sim : torch.Tensor
        ``(B,)``, ``−‖r_i − p_i‖²``.
    neg_sim : torch.Tensor
        ``(B, B')``, ``−‖r_i − n_j‖²``.
    """
    ref_sq = (ref * ref).sum(dim=1)
    pos_sq = (pos * pos).sum(dim=1)
    neg_sq = (neg * neg).sum(dim=1)
    pos_dot, neg_dot = dot_similarity(ref, pos, neg)
    pos_sim = -(ref_sq + pos_sq - 2 * pos_dot)
    neg_sim = -(ref_sq[:, None] + neg_sq[None, :] - 2 * neg_dot)
    return pos_sim, neg_sim


_SIMILARITIES = {"cosine": dot_similarity, "euclidean": euclidean_similarity}


def infonce_from_similarities(
    pos_sim: torch.Tensor, neg_sim: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoNCE from (temperature-scaled) similarities, with a stabilised log-sum-exp.

    The row maximum ``c_i = max_j neg_sim[i, j]`` is subtracted without gradient before the
    log-sum-exp and added back to the returned terms, so ``pos_term`` and ``neg_term`` equal the
    unstabilised formulas and ``∂pos_term/∂neg = ∂neg_term/∂pos = 0``.

    Parameters
    ----------
    pos_sim : torch.Tensor
        ``(B,)`` similarities of each reference with its positive.
    neg_sim : torch.Tensor
        ``(B, B')`` similarities of each reference with every negative.

    Returns
    -------
    total, pos_term, neg_term : torch.Tensor
        Scalar tensors with ``total = pos_term + neg_term``.
    """
    shift = neg_sim.detach().amax(dim=1, keepdim=True)
    align = -(pos_sim - shift[:, 0]).mean()
    uniform = torch.logsumexp(neg_sim - shift, dim=1).mean()
    shift_mean = shift.mean()
    return align + uniform, align - shift_mean, uniform + shift_mean


def infonce(
    ref: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    *,
    distance: str = "cosine",
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoNCE of embedding tensors at a fixed temperature, without building a module.

    Parameters
    ----------
    ref, pos : torch.Tensor
        ``(B, d)`` reference and positive embeddings.
    neg : torch.Tensor
        ``(B', d)`` negative embeddings.
    distance : {"cosine", "euclidean"}
        Similarity measure.
    temperature : float
        Similarities are divided by it; must be > 0.

    Returns
    -------
    total, pos_term, neg_term : torch.Tensor
        Scalar tensors, ``total = pos_term + neg_term``.
    """
    similarity = _similarity_function(distance)
    _check_temperature("temperature", temperature)
    pos_sim, neg_sim = similarity(ref, pos, neg)
    return infonce_from_similarities(pos_sim / temperature, neg_sim / temperature)


class InfoNCE(nn.Module):
    """InfoNCE criterion with cosine or Euclidean similarity and a fixed or learnable temperature.

    Parameters
    ----------
    distance : {"cosine", "euclidean"}
        ``"cosine"``: ``φ(x, y) = ⟨x, y⟩ / τ``; ``"euclidean"``: ``φ(x, y) = −‖x − y‖² / τ``.
    temperature : float
        The constant temperature, or the initial one in ``"auto"`` mode; must be > 0.
    temperature_mode : {"constant", "auto"}
        ``"auto"`` learns ``log_inverse_temperature`` (initialised to ``ln(1/temperature)``).
    min_temperature : float or None
        In ``"auto"`` mode the inverse temperature is clamped from above at ``1/min_temperature``;
        ``None`` disables the clamp. Ignored in ``"constant"`` mode.

    Raises
    ------
    ValueError
        For an unknown distance or temperature mode, or a non-positive temperature.
    """

    def __init__(
        self,
        distance: str = "cosine",
        temperature: float = 1.0,
        temperature_mode: str = "constant",
        min_temperature: float | None = 0.1,
    ) -> None:
        super().__init__()
        self._similarity = _similarity_function(distance)
        if temperature_mode not in TEMPERATURE_MODES:
            raise ValueError(
                f"Unknown temperature_mode {temperature_mode!r}; expected one of {TEMPERATURE_MODES}."
            )
        _check_temperature("temperature", temperature)
        self.distance = distance
        self.temperature_mode = temperature_mode
        self.min_temperature = min_temperature
        self._fixed_temperature = float(temperature)
        self._max_inverse_temperature: float | None = None
        if temperature_mode == "auto":
            if min_temperature is not None:
                _check_temperature("min_temperature", min_temperature)
                self._max_inverse_temperature = 1.0 / float(min_temperature)
            self.log_inverse_temperature = nn.Parameter(
                torch.tensor(math.log(1.0 / float(temperature)))
            )

    @property
    def learnable(self) -> bool:
        """Whether the temperature is a trained parameter."""
        return self.temperature_mode == "auto"

    @property
    def max_inverse_temperature(self) -> float | None:
        """Upper bound of the learnable inverse temperature (``1 / min_temperature``), if any."""
        return self._max_inverse_temperature

    def inverse_temperature(self) -> torch.Tensor | float:
        """Current inverse temperature (a tensor with gradient in ``"auto"`` mode)."""
        if not self.learnable:
            return 1.0 / self._fixed_temperature
        inverse = self.log_inverse_temperature.exp()
        if self._max_inverse_temperature is not None:
            inverse = inverse.clamp(max=self._max_inverse_temperature)
        return inverse

    @property
    def temperature(self) -> float:
        """Current temperature ``τ`` as a float (what the training log records)."""
        if not self.learnable:
            return self._fixed_temperature
        with torch.no_grad():
            return 1.0 / float(self.inverse_temperature())

    def forward(
        self, ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the loss.

        Parameters
        ----------
        ref, pos : torch.Tensor
            ``(B, d)`` reference and positive embeddings.
        neg : torch.Tensor
            ``(B', d)`` negative embeddings.

        Returns
        -------
        total, pos_term, neg_term : torch.Tensor
            Scalar tensors, ``total = pos_term + neg_term``.
        """
        pos_sim, neg_sim = self._similarity(ref, pos, neg)
        if self.learnable:
            inverse = self.inverse_temperature()
            return infonce_from_similarities(pos_sim * inverse, neg_sim * inverse)
        return infonce_from_similarities(
            pos_sim / self._fixed_temperature, neg_sim / self._fixed_temperature
        )

    def extra_repr(self) -> str:
        """Short description shown by ``repr``."""
        return (
            f"distance={self.distance!r}, temperature_mode={self.temperature_mode!r}, "
            f"temperature={self.temperature:.4g}, min_temperature={self.min_temperature}"
        )


def _similarity_function(distance: str):
    """Return the similarity function for ``distance`` or raise a ``ValueError``."""
    try:
        return _SIMILARITIES[distance]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown distance {distance!r}; expected one of {DISTANCES}.") from None


def _check_temperature(name: str, value: float) -> None:
    """Raise a ``ValueError`` unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
