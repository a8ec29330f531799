"""Encoder registry: every architecture of cebra 0.6.1 (spec §2).

Each encoder keeps its layers in ``self.net`` (an ``nn.Sequential``) in the reference's order, so
state-dict keys, shapes and parameter counts equal the reference's and checkpoints transfer both
ways. Normalised encoders end with ``UnitNorm`` then ``DropTimeAxis``; the ``*-mse`` encoders end
with ``DropTimeAxis`` only.

This module imports torch at import time; it is imported only when a model is built.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from napari_cebra.core.offset import Offset

__all__ = [
    "ClippedEncoder",
    "DropTimeAxis",
    "Encoder",
    "LinearResidual",
    "Residual",
    "SeededDropout1d",
    "StridedConvWithDownsampledInput",
    "UnitNorm",
    "init",
    "init_empty",
    "seed_dropout",
    "supported_model_architectures",
]


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


class Residual(nn.Module):
    """``input (cropped on the time axis) + branch(input)``.

    Parameters
    ----------
    *modules : nn.Module
        The branch, run in order (state-dict keys ``module.0…``).
    crop : int
        Samples removed from each end of the last axis of the shortcut (1 for a kernel-3
        convolution branch, 0 for linear branches).
    """

    def __init__(self, *modules: nn.Module, crop: int = 1) -> None:
        super().__init__()
        self.module = nn.Sequential(*modules)
        self.crop = crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the branch output to the (cropped) input."""
        branch = self.module(x)
        if self.crop:
            return x[..., self.crop : -self.crop] + branch
        return x + branch


class LinearResidual(nn.Module):
    """``linear(x)`` plus ``x`` zero-padded (or truncated) to the linear layer's output width.

    Parameters
    ----------
    linear : nn.Linear
        The branch (state-dict keys ``module.weight``, ``module.bias``).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.module = linear
        self.width_change = linear.out_features - linear.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the linear branch to the shortcut matched to the output width."""
        if self.width_change > 0:
            shortcut = F.pad(x, (0, self.width_change))
        elif self.width_change < 0:
            shortcut = x[..., : self.width_change]
        else:
            shortcut = x
        return shortcut + self.module(x)


class UnitNorm(nn.Module):
    """Divide by the Euclidean norm over the channel axis (dim 1), without epsilon."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x / ‖x‖₂`` along dim 1."""
        return x / torch.linalg.vector_norm(x, dim=1, keepdim=True)


class DropTimeAxis(nn.Module):
    """Drop a singleton third (time) axis; 1-D and 2-D inputs pass through."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x.squeeze(2)`` for 3-D inputs, else ``x``."""
        if x.dim() > 2:
            return x.squeeze(2)
        return x


class SeededDropout1d(nn.Dropout1d):
    """``nn.Dropout1d`` that draws its channel masks from its own generator once one is set.

    torch's dropout draws from the process-wide generator, which every thread shares; a seeded
    training run sets a private generator with :func:`seed_dropout`, so its masks depend only on
    its seed (also while other threads draw random numbers or train). The masks equal those of
    ``nn.Dropout1d`` drawing from a global generator in the same state. Without a generator the
    module is ``nn.Dropout1d``.

    Parameters
    ----------
    p : float
        Probability of zeroing a channel.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero whole channels with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
        if self.generator is None or not self.training or self.p == 0 or x.numel() == 0:
            return super().forward(x)
        if self.p == 1:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)
        # one draw per (sample, channel), as torch's feature dropout: (N, C, 1) or (C, 1)
        noise = torch.empty((*x.shape[:-1], 1), dtype=x.dtype, device=x.device)
        noise.bernoulli_(1 - self.p, generator=self.generator).div_(1 - self.p)
        return x * noise


def seed_dropout(model: nn.Module, generator: torch.Generator) -> None:
    """Make every :class:`SeededDropout1d` of ``model`` draw its masks from ``generator``.

    Parameters
    ----------
    model : nn.Module
        An encoder or a container of encoders.
    generator : torch.Generator
        On the device the model trains on.
    """
    for module in model.modules():
        if isinstance(module, SeededDropout1d):
            module.generator = generator


class StridedConvWithDownsampledInput(nn.Module):
    """Strided convolution concatenated (channels) with the nearest-neighbour downsampled input.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
        Of the convolution (state-dict keys ``layer.weight``, ``layer.bias``).
    stride : int
        Convolution stride and downsampling factor of the input copy.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int):
        super().__init__()
        self.stride = stride
        self.layer = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, out + in, T')`` with ``T'`` the convolution's output length."""
        convolved = self.layer(x)
        downsampled = F.interpolate(x, scale_factor=1 / self.stride, mode="nearest")
        return torch.cat([convolved, downsampled[..., : convolved.shape[-1]]], dim=1)


# --------------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """A CEBRA encoder: ``net`` maps input windows to one embedding per window.

    Parameters
    ----------
    layers : sequence of nn.Module
        The body, in order; ``UnitNorm`` (if ``normalize``) and ``DropTimeAxis`` are appended.
    name : str
        Registry name of the architecture.
    num_input, num_output : int
        Input features ``n`` and embedding dimension ``d``.
    offset : Offset
        Receptive field of the encoder.
    normalize : bool
        Whether outputs lie on the unit sphere.
    is_convolutional : bool
        ``True`` if the encoder runs over a time axis (``(B, n, T)`` inputs).
    resample_factor : int
        Output samples are ``resample_factor`` input samples apart (1 for most encoders).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        *,
        name: str,
        num_input: int,
        num_output: int,
        offset: Offset,
        normalize: bool,
        is_convolutional: bool,
        resample_factor: int = 1,
    ) -> None:
        super().__init__()
        tail = [UnitNorm(), DropTimeAxis()] if normalize else [DropTimeAxis()]
        self.net = nn.Sequential(*layers, *tail)
        self.name = name
        self.num_input = num_input
        self.num_output = num_output
        self.normalize = normalize
        self.is_convolutional = is_convolutional
        self.resample_factor = resample_factor
        self._offset = offset

    def get_offset(self) -> Offset:
        """Return the receptive field ``Offset(left, right)``."""
        return self._offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed windows: ``(B, n, L)`` (or ``(B, n)`` for the offset-1 encoders) → ``(B, d)``."""
        return self.net(x)

    def embed_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a whole recording without padding.

        Parameters
        ----------
        x : torch.Tensor
            ``(T, n)`` with ``T >= L`` (the receptive field).

        Returns
        -------
        torch.Tensor
            ``((T - L) // resample_factor + 1, d)``; ``(T - L + 1, d)`` for non-resampling encoders.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``n`` columns or is shorter than the receptive field.
        """
        self._check_sequence(x)
        length = len(self._offset)
        if self.is_convolutional:
            embedded = self.net(x.T.unsqueeze(0))
            return embedded.reshape(self.num_output, -1).T
        if length == 1 and self.resample_factor == 1:
            return self(x)
        return self(x.unfold(0, length, self.resample_factor))

    def _check_sequence(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` unless ``x`` is a ``(T, n)`` sequence with ``T >= L``."""
        if x.dim() != 2 or x.shape[1] != self.num_input:
            raise ValueError(
                f"Sequence x must have shape (T, {self.num_input}) for {self.name!r}, "
                f"got {tuple(x.shape)}."
            )
        if x.shape[0] < len(self._offset):
            raise ValueError(
                f"Sequence x has {x.shape[0]} samples, fewer than the receptive field "
                f"{len(self._offset)} of {self.name!r} (shape {tuple(x.shape)})."
            )

    def extra_repr(self) -> str:
        """Short description shown by ``repr``."""
        return (
            f"name={self.name!r}, num_input={self.num_input}, num_output={self.num_output}, "
            f"offset={self._offset}, normalize={self.normalize}"
        )


class ClippedEncoder(Encoder):
    """An encoder whose output is clipped to ``[-clip_min, clip_max]`` after ``net``.

    The clamp lives outside ``net`` (as in the reference), so state-dict keys are unchanged.
    """

    def __init__(self, layers: Sequence[nn.Module], *, clip_min: float, clip_max: float, **kwargs):
        super().__init__(layers, **kwargs)
        self.clamp = nn.Hardtanh(-clip_min, clip_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed windows and clip the embedding."""
        return self.clamp(self.net(x))


# --------------------------------------------------------------------------------------------------
# Layer stacks
# --------------------------------------------------------------------------------------------------


def _conv_skips(hidden: int, count: int, dropout: float | None = None) -> list[nn.Module]:
    """``count`` residual blocks ``[Dropout1d →] Conv1d(h, h, 3) → GELU`` cropping 1 per side."""
    blocks = []
    for _ in range(count):
        branch = [nn.Conv1d(hidden, hidden, 3), nn.GELU()]
        if dropout is not None:
            branch.insert(0, SeededDropout1d(p=dropout))
        blocks.append(Residual(*branch, crop=1))
    return blocks


def _conv_stack(n: int, h: int, d: int, skips: int, last_kernel: int) -> list[nn.Module]:
    """``Conv1d(n, h, 2) → GELU → skips → Conv1d(h, d, last_kernel)``."""
    return [
        nn.Conv1d(n, h, 2),
        nn.GELU(),
        *_conv_skips(h, skips),
        nn.Conv1d(h, d, last_kernel),
    ]


def _dropout_conv_stack(n: int, h: int, d: int, dropout_in_skips: bool) -> list[nn.Module]:
    """The offset36 dropout variants: ``Conv1d → Dropout1d(0.1) → GELU → 16 skips → Conv1d``."""
    return [
        nn.Conv1d(n, h, 2),
        SeededDropout1d(p=0.1),
        nn.GELU(),
        *_conv_skips(h, 16, dropout=0.1 if dropout_in_skips else None),
        nn.Conv1d(h, d, 3),
    ]


def _mlp(widths: Sequence[int]) -> list[nn.Module]:
    """``Flatten`` then ``Linear`` layers between consecutive ``widths`` with GELUs in between."""
    layers: list[nn.Module] = [nn.Flatten(start_dim=1, end_dim=-1)]
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if index:
            layers.append(nn.GELU())
        layers.append(nn.Linear(width_in, width_out))
    return layers


def _mse_mlp(n: int, d: int) -> list[nn.Module]:
    """The ``offset1-model-mse`` stack: widths ``n → 30d → 30d → 10d → d`` (ignores ``h``)."""
    return _mlp([n, 30 * d, 30 * d, 10 * d, d])


def _linear_residual_stack(
    n: int, h: int, d: int, skips: int, gelu_inside: bool
) -> list[nn.Module]:
    """``Flatten → Linear(n, h) → GELU → skips × [x + Linear(h, h)(x)] → Linear(h, d)``.

    With ``gelu_inside`` the GELU is the last layer of each residual branch (v4); otherwise it
    follows each residual block (v3, v5).
    """
    layers: list[nn.Module] = [nn.Flatten(start_dim=1, end_dim=-1), nn.Linear(n, h), nn.GELU()]
    for _ in range(skips):
        if gelu_inside:
            layers.append(Residual(nn.Linear(h, h), nn.GELU(), crop=0))
        else:
            layers += [Residual(nn.Linear(h, h), crop=0), nn.GELU()]
    layers.append(nn.Linear(h, d))
    return layers


def _shared_intermediate(layer: nn.Module, count: int) -> list[nn.Module]:
    """``[layer, GELU] * count`` with the *same* layer instance repeated.

    cebra 0.6.1 builds the intermediate layers of the ``offset1-model-mse-v2/resnet-{k}layers``
    families by list repetition, so all ``k`` positions share one set of weights (the parameter
    count does not grow with ``k``, but every position has its own state-dict key). We keep that.
    """
    return [layer, nn.GELU()] * count


def _mse_v2_stack(n: int, h: int, d: int, layers: int, tanh: bool) -> list[nn.Module]:
    """``offset1-model-mse-v2-{k}layers{-tanh}``."""
    stack = [
        nn.Flatten(start_dim=1, end_dim=-1),
        nn.Linear(n, h),
        nn.GELU(),
        *_shared_intermediate(nn.Linear(h, h), layers),
        nn.Linear(h, h // 2),
        nn.GELU(),
        nn.Linear(h // 2, d),
    ]
    return stack + [nn.Tanh()] if tanh else stack


def _mse_resnet_stack(n: int, h: int, d: int, layers: int, tanh: bool) -> list[nn.Module]:
    """``offset1-model-mse-resnet-{k}layers{-tanh}``."""
    stack = [
        nn.Flatten(start_dim=1, end_dim=-1),
        LinearResidual(nn.Linear(n, h)),
        nn.GELU(),
        *_shared_intermediate(LinearResidual(nn.Linear(h, h)), layers),
        LinearResidual(nn.Linear(h, h // 2)),
        nn.GELU(),
        nn.Linear(h // 2, d),
    ]
    return stack + [nn.Tanh()] if tanh else stack


def _subsample_stack(n: int, h: int, d: int, skips: int, last_kernel: int) -> list[nn.Module]:
    """The 4× subsampling conv stacks (``offset40/20-model-4x-subsample``)."""
    return [
        StridedConvWithDownsampledInput(n, h, 4, stride=2),
        nn.Conv1d(n + h, h, 3, stride=2),
        nn.GELU(),
        *_conv_skips(h, skips),
        nn.Conv1d(h, d, last_kernel),
    ]


def _subsample_mlp(n: int, h: int, d: int) -> list[nn.Module]:
    """``offset4-model-2x-subsample``: strided conv + downsampled input, then an MLP."""
    return [
        StridedConvWithDownsampledInput(n, h, 4, stride=2),
        *_mlp([n + h, h, h, h // 2, d]),
    ]


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

LayerBuilder = Callable[[int, int, int], list]


@dataclass
class _Architecture:
    """Everything needed to build one registered architecture.

    ``min_hidden`` is the smallest accepted ``num_units`` (None: ``num_units`` is ignored);
    ``supported`` marks names listed by :func:`supported_model_architectures`; ``clip`` holds the
    ``(clip_min, clip_max)`` of the clipped MSE family.
    """

    build: LayerBuilder
    offset: Offset
    normalize: bool
    is_convolutional: bool
    min_hidden: int | None
    supported: bool = True
    resample_factor: int = 1
    clip: tuple[int, int] | None = None


def _conv(build: LayerBuilder, left: int, right: int, normalize: bool = True) -> _Architecture:
    """A convolutional architecture with offset ``(left, right)`` (needs ``h >= 1``)."""
    return _Architecture(
        build, offset=Offset(left, right), normalize=normalize, is_convolutional=True, min_hidden=1
    )


def _dense(build: LayerBuilder, normalize: bool, min_hidden: int | None = 2) -> _Architecture:
    """A window-free (offset 1) architecture."""
    return _Architecture(
        build,
        offset=Offset(0, 1),
        normalize=normalize,
        is_convolutional=False,
        min_hidden=min_hidden,
    )


def _conv_builder(skips: int, last_kernel: int) -> LayerBuilder:
    """Builder of the plain conv stack with ``skips`` residual blocks."""
    return functools.partial(_conv_stack, skips=skips, last_kernel=last_kernel)


def _offset10_tanh(n: int, h: int, d: int) -> list[nn.Module]:
    """``offset10-model-mse-tanh``: the offset10 stack followed by Tanh."""
    return [*_conv_stack(n, h, d, skips=3, last_kernel=3), nn.Tanh()]


def _mse_tanh(n: int, h: int, d: int) -> list[nn.Module]:
    """``offset1-model-mse-tanh``: the MSE MLP followed by Tanh."""
    return [*_mse_mlp(n, d), nn.Tanh()]


def _offset1_stack(n: int, h: int, d: int) -> list[nn.Module]:
    """``offset1-model``: widths ``n → h → h → h//2 → d``."""
    return _mlp([n, h, h, h // 2, d])


def _offset1_v2_stack(n: int, h: int, d: int) -> list[nn.Module]:
    """``offset1-model-v2``: widths ``n → h → h → h → d``."""
    return _mlp([n, h, h, h, d])


def _ignore_hidden(build: Callable[[int, int], list]) -> LayerBuilder:
    """Adapt a builder of ``(n, d)`` to the ``(n, h, d)`` signature."""
    return lambda n, h, d: build(n, d)


_CLIP_VALUES = (1000, 100, 50, 25, 20, 15, 10, 5, 1)
_FAMILY_LAYERS = tuple(range(1, 11))


def _subsample(
    build: LayerBuilder, left: int, right: int, factor: int, conv: bool
) -> _Architecture:
    """A subsampling architecture (buildable, not in the supported list)."""
    return _Architecture(
        build,
        offset=Offset(left, right),
        normalize=True,
        is_convolutional=conv,
        min_hidden=1 if conv else 2,
        supported=False,
        resample_factor=factor,
    )


def _build_registry() -> dict[str, _Architecture]:
    """All architectures, in the order of ``cebra.models.get_options()``."""
    offset40_sub = _subsample(
        functools.partial(_subsample_stack, skips=3, last_kernel=3), 20, 20, 4, conv=True
    )
    offset20_sub = _subsample(
        functools.partial(_subsample_stack, skips=1, last_kernel=2), 10, 10, 4, conv=True
    )
    offset4_sub = _subsample(_subsample_mlp, 2, 2, 2, conv=False)
    registry = {
        "offset10-model": _conv(_conv_builder(3, 3), 5, 5),
        "offset10-model-mse": _conv(_conv_builder(3, 3), 5, 5, normalize=False),
        "offset5-model": _conv(_conv_builder(1, 2), 2, 3),
        "offset1-model-mse": _dense(_ignore_hidden(_mse_mlp), normalize=False, min_hidden=None),
        "offset1-model": _dense(_offset1_stack, normalize=True),
        "offset1-model-v2": _dense(_offset1_v2_stack, normalize=True),
        "offset1-model-v3": _dense(
            functools.partial(_linear_residual_stack, skips=2, gelu_inside=False), normalize=True
        ),
        "offset1-model-v4": _dense(
            functools.partial(_linear_residual_stack, skips=4, gelu_inside=True), normalize=True
        ),
        "offset1-model-v5": _dense(
            functools.partial(_linear_residual_stack, skips=4, gelu_inside=False), normalize=True
        ),
        "offset40-model-4x-subsample": offset40_sub,
        "resample-model": offset40_sub,
        "offset20-model-4x-subsample": offset20_sub,
        "resample5-model": offset20_sub,
        "offset4-model-2x-subsample": offset4_sub,
        "resample1-model": offset4_sub,
        "offset36-model": _conv(_conv_builder(16, 3), 18, 18),
        "offset36-model-dropout": _conv(
            functools.partial(_dropout_conv_stack, dropout_in_skips=False), 18, 18
        ),
        "offset36-model-more-dropout": _conv(
            functools.partial(_dropout_conv_stack, dropout_in_skips=True), 18, 18
        ),
        "offset40-model": _conv(_conv_builder(18, 3), 20, 20),
        "offset50-model": _conv(_conv_builder(23, 3), 25, 25),
        "offset15-model": _conv(_conv_builder(6, 2), 7, 8),
        "offset20-model": _conv(_conv_builder(8, 3), 10, 10),
        "offset10-model-mse-tanh": _conv(_offset10_tanh, 5, 5, normalize=False),
        "offset1-model-mse-tanh": _dense(_mse_tanh, normalize=False, min_hidden=None),
    }
    for clip_min in _CLIP_VALUES:
        for clip_max in _CLIP_VALUES:
            registry[f"offset1-model-mse-clip-{clip_min}-{clip_max}"] = replace(
                _dense(_ignore_hidden(_mse_mlp), normalize=False, min_hidden=None),
                clip=(clip_min, clip_max),
            )
    for family, stack in (("v2", _mse_v2_stack), ("resnet", _mse_resnet_stack)):
        for layers in _FAMILY_LAYERS:
            for suffix in ("-tanh", ""):
                build = functools.partial(stack, layers=layers, tanh=bool(suffix))
                registry[f"offset1-model-mse-{family}-{layers}layers{suffix}"] = _dense(
                    build, normalize=False
                )
    return registry


_REGISTRY = _build_registry()

_FAMILY_PATTERNS = (
    "offset1-model-mse-clip-{a}-{b} (a, b in 1000, 100, 50, 25, 20, 15, 10, 5, 1)",
    "offset1-model-mse-v2-{k}layers[-tanh] (k = 1 … 10)",
    "offset1-model-mse-resnet-{k}layers[-tanh] (k = 1 … 10)",
)


def supported_model_architectures(pattern: str = "*") -> list[str]:
    """Names of the architectures usable with ``CEBRA`` (cebra 0.6.1's list).

    The subsampling models (``offset40-model-4x-subsample`` etc.) can be built with :func:`init`
    but are not listed, as in the reference.

    Parameters
    ----------
    pattern : str
        ``fnmatch`` pattern the names must match, e.g. ``"offset1-*"``.

    Returns
    -------
    list of str
        Matching names in registry order.
    """
    names = [name for name, architecture in _REGISTRY.items() if architecture.supported]
    return fnmatch.filter(names, pattern)


def init(
    name: str,
    num_neurons: int,
    num_units: int,
    num_output: int,
    *,
    generator: torch.Generator | None = None,
) -> Encoder:
    """Build the encoder ``name`` with freshly initialised weights (PyTorch's default scheme).

    Parameters
    ----------
    name : str
        A registered architecture name (see :func:`supported_model_architectures`).
    num_neurons : int
        Input features ``n`` (>= 1).
    num_units : int
        Hidden units ``h`` (>= 2 for the offset-1 families that use it, >= 1 for conv models;
        ignored by ``offset1-model-mse`` and its tanh/clip variants).
    num_output : int
        Embedding dimension ``d`` (>= 1).
    generator : torch.Generator, optional
        A CPU generator to draw the initial weights from; torch's process-wide generator is then
        neither used nor advanced, so threads do not disturb each other. The weights equal those
        drawn from the global generator in the same state (``torch.manual_seed(s)`` then
        ``init(...)`` gives what ``init(..., generator=torch.Generator().manual_seed(s))``
        gives). ``None``: the global generator, like ``cebra.models.init``.

    Returns
    -------
    Encoder
        On the CPU.

    Raises
    ------
    ValueError
        For an unknown name or out-of-range sizes.
    """
    if generator is None:
        return _assemble(name, num_neurons, num_units, num_output)
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got one on {generator.device}.")
    encoder = init_empty(name, num_neurons, num_units, num_output).to_empty(device="cpu")
    _initialise(encoder, generator)
    return encoder


def init_empty(name: str, num_neurons: int, num_units: int, num_output: int) -> Encoder:
    """The encoder ``name`` with its parameters on the ``meta`` device: no memory, no draws.

    For reading its structure (offset, parameter shapes) before anything is allocated; give it
    storage with ``encoder.to_empty(device=...)`` and then load or initialise its weights.

    Parameters
    ----------
    name, num_neurons, num_units, num_output
        As for :func:`init`.

    Returns
    -------
    Encoder

    Raises
    ------
    ValueError
        For an unknown name or out-of-range sizes.
    """
    with torch.device("meta"):  # thread-local: other threads keep allocating normally
        return _assemble(name, num_neurons, num_units, num_output)


def _assemble(name: str, num_neurons: int, num_units: int, num_output: int) -> Encoder:
    """Build the layers of ``name`` on the current default device."""
    architecture = _lookup(name)
    n = _as_size("num_neurons", num_neurons, 1)
    d = _as_size("num_output", num_output, 1)
    h = _as_size("num_units", num_units, architecture.min_hidden)
    common = dict(
        name=name,
        num_input=n,
        num_output=d,
        offset=architecture.offset,
        normalize=architecture.normalize,
        is_convolutional=architecture.is_convolutional,
        resample_factor=architecture.resample_factor,
    )
    layers = architecture.build(n, h, d)
    if architecture.clip is not None:
        clip_min, clip_max = architecture.clip
        return ClippedEncoder(layers, clip_min=clip_min, clip_max=clip_max, **common)
    return Encoder(layers, **common)


def _initialise(encoder: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every ``Linear``/``Conv1d``, drawn from ``generator``.

    The layers are visited in the order they were built (``modules()`` order), each drawing its
    weight then its bias, as their constructors do: Kaiming-uniform weights with ``a = √5``
    (``U(−1/√fan_in, 1/√fan_in)``) and biases ``U(−1/√fan_in, 1/√fan_in)``.
    """
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    fan_in = module.weight.shape[1] * math.prod(module.weight.shape[2:])
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif any(True for _ in module.parameters(recurse=False)):
                raise TypeError(f"No seeded initialisation for {type(module).__name__} layers.")


def _lookup(name: str) -> _Architecture:
    """Return the registered architecture or raise a ``ValueError`` with suggestions."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    suggestions = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
    plain = [n for n in supported_model_architectures() if not _is_family_member(n)]
    raise ValueError(
        f"Unknown model architecture {name!r}.{hint} Valid names: {', '.join(plain)}; the families "
        f"{'; '.join(_FAMILY_PATTERNS)}; and the subsampling models offset40-model-4x-subsample, "
        "offset20-model-4x-subsample, offset4-model-2x-subsample. "
        "napari_cebra.models.supported_model_architectures() lists all supported names."
    )


def _is_family_member(name: str) -> bool:
    """Whether ``name`` belongs to one of the parametrized families."""
    return name.startswith(
        ("offset1-model-mse-clip-", "offset1-model-mse-v2-", "offset1-model-mse-resnet-")
    )


def _as_size(name: str, value: int, minimum: int | None) -> int:
    """Return ``value`` as an int >= ``minimum`` (any int when ``minimum`` is None)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    try:
        size = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}."
        ) from None
    if minimum is not None and size < minimum:
        raise ValueError(f"{name} must be at least {minimum} for this architecture, got {size}.")
    return size
