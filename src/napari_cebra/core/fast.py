"""Fast training path: channels-last encoder program and fused InfoNCE.

The reference encodes every training window separately with ``Conv1d`` layers on ``(B, n, L)``
tensors. The same numbers come out of a *channels-last* formulation, which is faster on CPUs and
GPUs alike:

* activations are kept *time-major and channels-last*, ``(T, B, c)``: time step ``t`` of all
  ``B`` windows is one contiguous row block. Each convolution becomes one matrix product of the
  column matrix (the ``k`` shifted row blocks side by side) with the weight laid out as
  ``(k · in, out)``; in the backward pass each shift's input gradient is accumulated in place
  into its contiguous row block by one product, and residual shortcuts are contiguous blocks too;
* a convolution and the activation after it are one graph node;
* references, positives and negatives go through the network in one pass;
* the first layers can run once over the whole recording instead of once per window. Windows of
  a batch overlap in the recording, so when ``B · T`` window positions of a layer outnumber the
  ``N`` frames of the recording, computing that layer over the recording is cheaper; the windows
  then gather their rows from it. The convolution is translation-equivariant and has no padding,
  so this gives the per-window values exactly (up to float summation order);
* on CPUs, once the recording is long, the first layer of a wide recording multiplies the
  distinct frames the batch covers, once each, by all kernel shifts, and each window sums its
  shifts' products, so that no per-window column matrix of the ``n``-wide input is copied; a
  narrow one (a few hundred neurons) takes one product over the windows' small column matrix.
  Either way the cost of a step no longer grows with the recording
  (``ChannelsLastEncoder.first_layer_path`` picks the path from a cost model);
* every layer is one autograd function with a hand-written backward pass (weights reshaped and
  cast inside), which keeps the graph and the per-step overhead small.

:func:`compile_encoder` turns the ``net`` of an :class:`~napari_cebra.core.models.Encoder` into
such a program when every layer is supported (stride-1 convolutions, GELU, residual convolution
blocks, Tanh, unit norm) and returns ``None`` otherwise; :class:`ChannelsLastEncoder` runs it on
windows of one recording (``core.windows.WindowEncoder`` uses it when it can).

:class:`FusedCriterion` / :func:`fused_infonce` compute the InfoNCE criterion of ``core.loss``
with an analytic backward pass, in row chunks that bound the memory of full-batch training.

Optionally the matrix products run in bfloat16 with float32 master weights, gradients, loss and
optimizer state (``precision="bfloat16"``): on CPUs with AVX512-BF16/AMX and on GPUs this
multiplies matrix throughput; results stay deterministic for a fixed seed. No step synchronises
with the host: everything stays on the training device.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from napari_cebra.core.models import DropTimeAxis, Residual, UnitNorm
from napari_cebra.core.validation import PRECISIONS

if TYPE_CHECKING:
    from napari_cebra.core.offset import Offset

__all__ = [
    "ChannelsLastEncoder",
    "FusedCriterion",
    "compile_encoder",
    "compute_dtype",
    "fused_infonce",
]


def compute_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a training ``precision`` name (``"float32"`` or ``"bfloat16"``).

    Raises
    ------
    ValueError
        For any other value.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {PRECISIONS}.")
    return torch.float32 if precision == "float32" else torch.bfloat16


@dataclass(frozen=True)
class _Activation:
    """An element-wise activation (GELU or Tanh)."""

    function: str
    approximate: str = "none"


@dataclass(frozen=True)
class _Conv:
    """A stride-1 unpadded convolution, run as one product with its column matrix, and the
    activation that follows it, if any (applied in the same graph node)."""

    module: nn.Conv1d
    activation: _Activation | None = None

    @property
    def kernel(self) -> int:
        return int(self.module.kernel_size[0])


@dataclass(frozen=True)
class _ResidualConv:
    """``x[crop:-crop] + act(conv(x))`` with a kernel of ``2 · crop + 1``."""

    conv: _Conv
    activation: _Activation
    crop: int


_Layer = _Conv | _Activation | _ResidualConv
_COLUMN_CACHE_BYTES = 256 * 2**20
# Cost of copying one element (gathers, column matrices) in multiply-adds of a matrix product, for
# choosing how the first layer runs on CPUs (measured on the benchmark CPU; see
# ``ChannelsLastEncoder.first_layer_path``).
_COPY_COST = 16
# copies of the ``k · c`` products per window row in the frames path (gathering the shifts'
# products, the per-frame scatter of their gradients, ``unique``); calibrated on the benchmark
# CPU against the per-window path (session 10: 120–1,000 neurons × 20,000–100,000 frames)
_FRAME_ROW_COPIES = 16
# Tensors above glibc's mmap threshold are fresh pages at every step, whose faults cost more than
# the products using them (61 MB: 53 ms fresh against 13 ms reused): the per-window path is only
# a candidate on CPUs while its column matrix stays below this
_FRESH_ALLOCATION_BYTES = 32 * 2**20


def _compile_layers(modules: Sequence[nn.Module]) -> tuple[list[_Layer], bool] | None:
    """Translate ``net`` into program layers; ``None`` if a module is not supported.

    Returns the layers before the tail and whether the tail normalises the output.
    """
    layers: list[_Layer] = []
    normalize = False
    for module in modules:
        if isinstance(module, nn.Conv1d):
            if not _plain_conv(module):
                return None
            layers.append(_Conv(module))
        elif isinstance(module, (nn.GELU, nn.Tanh)):
            activation = (
                _Activation("gelu", module.approximate)
                if isinstance(module, nn.GELU)
                else _Activation("tanh")
            )
            previous = layers[-1] if layers else None
            if isinstance(previous, _Conv) and previous.activation is None:
                layers[-1] = _Conv(previous.module, activation)
            else:
                layers.append(activation)
        elif isinstance(module, Residual):
            block = _compile_residual(module)
            if block is None:
                return None
            layers.append(block)
        elif isinstance(module, UnitNorm):
            normalize = True
        elif isinstance(module, DropTimeAxis):
            continue
        else:
            return None
    if not layers or not isinstance(layers[0], _Conv):
        return None
    return layers, normalize


def _plain_conv(module: nn.Conv1d) -> bool:
    return (
        module.stride == (1,)
        and module.dilation == (1,)
        and module.groups == 1
        and module.padding == (0,)
        and module.bias is not None
    )


def _compile_residual(module: Residual) -> _ResidualConv | None:
    branch = list(module.module)
    if len(branch) != 2 or not isinstance(branch[0], nn.Conv1d):
        return None
    if not (_plain_conv(branch[0]) and isinstance(branch[1], nn.GELU)):
        return None
    conv = _Conv(branch[0])
    if module.crop < 1 or conv.kernel != 2 * module.crop + 1:
        return None
    return _ResidualConv(conv, _Activation("gelu", branch[1].approximate), module.crop)


def _activation_forward(
    pre: torch.Tensor, activation: _Activation | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``activation(pre)`` and the tensor its backward pass needs (``None``: identity)."""
    if activation is None:
        return pre, None
    if activation.function == "gelu":
        return F.gelu(pre, approximate=activation.approximate), pre
    output = torch.tanh(pre)
    return output, output


def _activation_backward(
    grad: torch.Tensor, saved: torch.Tensor | None, activation: _Activation | None
) -> torch.Tensor:
    """Gradient before ``activation`` from the gradient after it."""
    if activation is None:
        return grad
    if activation.function == "gelu":
        return torch.ops.aten.gelu_backward(grad, saved, approximate=activation.approximate)
    return torch.ops.aten.tanh_backward(grad, saved)


@dataclass(frozen=True)
class _Program:
    """The compiled layers of one encoder."""

    layers: list[_Layer]
    normalize: bool
    lengths: list[int]

    @property
    def first(self) -> _Conv:
        """The first layer, a convolution (:func:`_compile_layers` accepts no other)."""
        return self.layers[0]  # type: ignore[return-value]


def compile_encoder(encoder: nn.Module) -> _Program | None:
    """The channels-last program of ``encoder``, or ``None`` if it has unsupported layers.

    Supported: convolutional encoders (no subsampling) built from stride-1 unpadded ``Conv1d``,
    GELU, Tanh, residual ``Conv1d → GELU`` blocks, ``UnitNorm`` and ``DropTimeAxis``. Encoders with
    dropout, linear layers or subsampling return ``None``.
    """
    if not getattr(encoder, "is_convolutional", False) or encoder.resample_factor != 1:
        return None
    compiled = _compile_layers(list(encoder.net))
    if compiled is None:
        return None
    layers, normalize = compiled
    return _Program(layers, normalize, _output_lengths(layers, len(encoder.get_offset())))


class ChannelsLastEncoder:
    """Embeds windows of one recording with the channels-last program of an encoder.

    ``self(encoder, centres)`` returns the same ``(B, d)`` float32 embeddings as running
    ``encoder`` on the ``(B, n, L)`` windows around ``centres`` (up to float summation order, or
    bfloat16 rounding when ``compute_dtype`` is ``torch.bfloat16``), with gradients flowing to
    ``encoder``'s parameters. Only encoders that :func:`compile_encoder` supports can be used
    (check with :meth:`supports`).

    Parameters
    ----------
    data : torch.Tensor
        ``(N, n)`` float32 recording on the training device.
    offset : Offset
        Receptive field of the encoders that will be applied.
    compute_dtype : torch.dtype
        ``torch.float32`` or ``torch.bfloat16`` for the matrix products and activations.
    """

    def __init__(
        self, data: torch.Tensor, offset: Offset, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        if compute_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"compute_dtype must be float32 or bfloat16, got {compute_dtype}.")
        self.data = data
        self.num_samples = int(data.shape[0])
        self.compute_dtype = compute_dtype
        self._low = offset.left
        self._high = self.num_samples - offset.right
        self._window = len(offset)
        self._input_cache: torch.Tensor | None = None
        self._columns: dict[int, torch.Tensor] = {}  # transposed input columns per kernel
        self._programs: dict[int, tuple[nn.Module, _Program | None]] = {}
        self._plans: dict[tuple[int, int], tuple[_Program, str, int]] = {}
        self._frame_workspace = _Workspace()

    @property
    def _input(self) -> torch.Tensor:
        """The recording in the compute dtype (a copy only for bfloat16, made on first use)."""
        if self._input_cache is None:
            self._input_cache = self.data.to(self.compute_dtype).contiguous()
        return self._input_cache

    def supports(self, encoder: nn.Module) -> bool:
        """Whether ``encoder`` has a channels-last program."""
        return self.program(encoder) is not None

    def program(self, encoder: nn.Module) -> _Program | None:
        """The compiled program of ``encoder`` (cached per encoder object)."""
        cached = self._programs.get(id(encoder))
        if cached is None or cached[0] is not encoder:
            cached = (encoder, compile_encoder(encoder))
            self._programs[id(encoder)] = cached
        return cached[1]

    def __call__(self, encoder: nn.Module, centres: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, d)`` of the windows around ``centres``."""
        program = self._checked_program(encoder)
        starts = centres.clamp(self._low, self._high) - self._low
        num_windows = int(starts.shape[0])
        path, shared = self._plan(program, num_windows)
        if shared:
            sequence = self._first_layer_over_recording(program.layers[0])
            for layer in program.layers[1:shared]:
                sequence = self._apply_sequence(layer, sequence)
            hidden = _gather_windows(sequence, starts, program.lengths[shared - 1])
        elif path == "frames":
            hidden = self._first_layer_over_frames(program.layers[0], starts)
        else:
            hidden = _gather_windows(self._input, starts, self._window)
            hidden = self._apply_windows(program.layers[0], hidden)
        for layer in program.layers[max(shared, 1) :]:
            hidden = self._apply_windows(layer, hidden)
        # (T, B, d) → (B, T · d); T = 1 for the models of this package
        return _finish(program, hidden.transpose(0, 1).reshape(num_windows, -1))

    def embed_sequence(self, encoder: nn.Module) -> torch.Tensor:
        """Embeddings ``(N − L + 1, d)`` of every full window of the recording, in order.

        Equals ``encoder.embed_sequence(data)`` (used by full-batch training).
        """
        program = self._checked_program(encoder)
        sequence = self._first_layer_over_recording(program.layers[0])
        for layer in program.layers[1:]:
            sequence = self._apply_sequence(layer, sequence)
        return _finish(program, sequence)

    def _checked_program(self, encoder: nn.Module) -> _Program:
        program = self.program(encoder)
        if program is None:
            raise ValueError(
                f"{type(encoder).__name__} {getattr(encoder, 'name', '')!r} has layers without a "
                "channels-last program; use the generic window path."
            )
        return program

    def _plan(self, program: _Program, num_windows: int) -> tuple[str, int]:
        """The first layer's path and the number of leading layers run over the recording
        (0 unless the path is ``"recording"``) for batches of ``num_windows`` windows; worked
        out once per program and batch size, since every step of a run asks the same."""
        key = (id(program), num_windows)
        cached = self._plans.get(key)
        if cached is None or cached[0] is not program:
            path = self.first_layer_path(program, num_windows)
            shared = self._shared_prefix(program, num_windows) if path == "recording" else 0
            cached = self._plans[key] = (program, path, shared)
        return cached[1], cached[2]

    def first_layer_path(self, program: _Program, num_windows: int) -> str:
        """How the first layer runs for batches of ``num_windows`` windows.

        * ``"recording"``: once over the whole recording, and the next layers too while that is
          cheaper (:meth:`_shared_prefix`); the windows gather their rows from the result;
        * ``"frames"``: the recording's distinct frames that the windows cover are gathered and
          multiplied once, and each window sums its kernel shifts from these products (CPU);
        * ``"windows"``: per window, one product of the windows' column matrix (other devices).

        On CPUs the cheapest is taken by a cost model of multiply-adds and copied elements:
        sharing costs ``O(N)`` per step, the frames and per-window paths ``O(B · L)`` whatever
        the length ``N`` of the recording; the per-window path, one product over a column matrix
        of ``B · L' × k · n``, wins for narrow recordings (a few hundred neurons) and is not
        considered once that matrix would be a fresh allocation at every step
        (``_FRESH_ALLOCATION_BYTES``). The choice depends only on the shapes, the device and the
        precision, so every step of a run takes the same path.

        Parameters
        ----------
        program : _Program
            The encoder's compiled program.
        num_windows : int
            Windows per call (``3 · batch_size`` for single-session training).

        Returns
        -------
        str
            ``"recording"``, ``"frames"`` or ``"windows"``.
        """
        shared = self._shared_prefix(program, num_windows)
        if self.data.device.type != "cpu":
            return "recording" if shared else "windows"
        costs = {"frames": self._frames_cost(program, num_windows, shared)}
        if self._window_columns_bytes(program, num_windows) <= _FRESH_ALLOCATION_BYTES:
            costs["windows"] = self._windows_cost(program, num_windows, shared)
        if shared:
            costs["recording"] = self._recording_cost(program, shared)
        # ties go to sharing, then to the frames path (the order of preference)
        return min(("recording", "frames", "windows"), key=lambda path: costs.get(path, math.inf))

    def _recording_cost(self, program: _Program, shared: int) -> float:
        """Modelled cost of the first ``shared`` layers over the whole recording."""
        first = program.first
        channels = first.module.in_channels
        cost = self.num_samples * 2 * channels * first.kernel * first.module.out_channels
        columns_bytes = self.data.numel() * first.kernel * self.compute_dtype.itemsize
        if columns_bytes > _COLUMN_CACHE_BYTES:
            cost += self.num_samples * first.kernel * channels * _COPY_COST  # columns every step
        for layer in program.layers[1:shared]:
            cost += self.num_samples * _layer_cost(layer)
        return cost

    def _frames_cost(self, program: _Program, num_windows: int, shared: int) -> float:
        """Modelled cost of the first layer over the covered frames and of layers ``1 …
        shared − 1`` per window (the layers :meth:`_recording_cost` shares)."""
        first = program.first
        channels = first.module.in_channels
        covered = num_windows * self._window
        # expected distinct frames of ``num_windows`` windows at uniformly random positions
        frames = self.num_samples * -math.expm1(-covered / self.num_samples)
        outputs = first.kernel * first.module.out_channels
        cost = frames * channels * (2 * outputs + _COPY_COST)
        # per window row: gather the shifts' products, spread and sum the gradients per frame
        cost += covered * outputs * _FRAME_ROW_COPIES * _COPY_COST
        return cost + _per_window_cost(program, num_windows, shared)

    def _windows_cost(self, program: _Program, num_windows: int, shared: int) -> float:
        """Modelled cost of the first layer per window (gather the windows, copy their column
        matrix, multiply it forward and for the weight gradient) and of layers ``1 … shared −
        1`` per window."""
        first = program.first
        columns = _window_columns(program, num_windows)
        cost = columns * (2 * first.module.out_channels + _COPY_COST)
        cost += num_windows * self._window * first.module.in_channels * _COPY_COST
        return cost + _per_window_cost(program, num_windows, shared)

    def _window_columns_bytes(self, program: _Program, num_windows: int) -> int:
        """Bytes of the per-window path's column matrix ``(B · L', k · n)``."""
        return _window_columns(program, num_windows) * self.compute_dtype.itemsize

    def _shared_prefix(self, program: _Program, num_windows: int) -> int:
        """Number of leading layers cheaper to run over the whole recording than per window."""
        count = 0
        for length in program.lengths:
            if num_windows * length <= self.num_samples:
                break
            count += 1
        return count

    def _first_layer_over_recording(self, conv: _Conv) -> torch.Tensor:
        """The first convolution over the whole recording.

        The forward pass multiplies the recording itself, one product per shift of the kernel
        (reading the recording instead of its ``k`` times wider column matrix); the transposed
        column matrix, which is constant, is cached for the weight gradient unless it would take
        more than ``_COLUMN_CACHE_BYTES``.
        """
        weight, bias = conv.module.weight, conv.module.bias
        if conv.kernel not in self._columns:
            size = self._input.numel() * conv.kernel * self._input.element_size()
            if size > _COLUMN_CACHE_BYTES:
                return _ConvFunction.apply(
                    self._input.unsqueeze(1), weight, bias, self.compute_dtype, conv.activation
                ).squeeze(1)
            self._columns[conv.kernel] = (
                _columns(self._input[:, None], conv.kernel).t().contiguous()
            )
        return _InputConvFunction.apply(
            self._input,
            self._columns[conv.kernel],
            weight,
            bias,
            self.compute_dtype,
            conv.activation,
        )

    def _first_layer_over_frames(self, conv: _Conv, starts: torch.Tensor) -> torch.Tensor:
        """The first convolution of the windows starting at ``starts``, ``(L − k + 1, B, c)``,
        from one product of the distinct frames they cover (see :class:`_FrameConvFunction`)."""
        frames, where = torch.unique(
            starts + _steps(self._window, starts.device), return_inverse=True
        )
        return _FrameConvFunction.apply(
            self._input,
            frames,
            where,
            conv.module.weight,
            conv.module.bias,
            self.compute_dtype,
            conv.activation,
            self._frame_workspace,
        )

    def _apply_sequence(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        # ``squeeze``/``unsqueeze`` are views in both passes (indexing with ``[:, 0]`` would
        # allocate and fill a zero gradient in the backward pass)
        return _apply_layer(layer, x.unsqueeze(1), self.compute_dtype).squeeze(1)

    def _apply_windows(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        return _apply_layer(layer, x, self.compute_dtype)


def _per_window_cost(program: _Program, num_windows: int, shared: int) -> float:
    """Modelled cost of layers ``1 … shared − 1`` run per window (the layers that sharing over
    the recording would have run once)."""
    layers = zip(program.layers[1:shared], program.lengths[1:shared], strict=True)
    return sum(num_windows * length * _layer_cost(layer) for layer, length in layers)


def _window_columns(program: _Program, num_windows: int) -> int:
    """Elements of the first layer's column matrix over ``num_windows`` windows,
    ``(B · L', k · n)``."""
    first = program.first
    return num_windows * program.lengths[0] * first.kernel * first.module.in_channels


def _layer_cost(layer: _Layer) -> float:
    """Modelled cost of one output row of ``layer`` in training (forward, weight and input
    gradients, column matrix)."""
    if isinstance(layer, _Activation):
        return 0.0
    conv = layer if isinstance(layer, _Conv) else layer.conv
    width = conv.kernel * conv.module.in_channels
    return width * (3 * conv.module.out_channels + _COPY_COST)


class _Workspace:
    """A buffer reused from step to step for the frames that :class:`_FrameConvFunction` gathers.

    Large tensors allocated afresh at every step cost page faults that can take longer than the
    products using them, so the gathered frames go into this buffer. It is lent to one autograd
    node at a time and is free again once that node is gone (after the step's backward pass);
    while it is lent, :meth:`take` allocates a new tensor instead.
    """

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None
        self._borrower: weakref.ref | None = None

    def take(
        self, borrower: object, rows: int, columns: int, like: torch.Tensor, most_rows: int
    ) -> torch.Tensor:
        """A ``(rows, columns)`` tensor of ``like``'s dtype and device, lent to ``borrower``.

        A new buffer holds ``most_rows`` rows (the most that later steps can ask for), so that
        it is allocated once.
        """
        if self._borrower is not None and self._borrower() is not None:
            return like.new_empty(rows, columns)
        size = rows * columns
        buffer = self._buffer
        if buffer is None or buffer.numel() < size or buffer.dtype != like.dtype:
            buffer = self._buffer = like.new_empty(max(most_rows, rows) * columns)
        self._borrower = weakref.ref(borrower)
        return buffer[:size].view(rows, columns)


def _apply_layer(layer: _Layer, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One program layer on time-major, channels-last ``(T, B, c)`` activations."""
    if isinstance(layer, _Activation):
        return _activation_forward(x, layer)[0]
    if isinstance(layer, _Conv):
        module = layer.module
        return _ConvFunction.apply(x, module.weight, module.bias, dtype, layer.activation)
    module = layer.conv.module
    return _ResidualConvFunction.apply(x, module.weight, module.bias, dtype, layer.activation)


# --------------------------------------------------------------------------------------------------
# Autograd functions of the program. Each takes the float32 ``Conv1d`` weight ``(out, in, k)`` and
# bias, multiplies in ``compute_dtype`` and returns float32 weight gradients, so that one graph node
# replaces the reshape/cast/convolution/activation nodes of a layer. Every tensor operation costs
# microseconds of dispatch on top of its arithmetic, a sizeable part of a step on a CPU, so these
# functions avoid operations that only reshape or copy (one copy per layout change, direct ``mm``).
# --------------------------------------------------------------------------------------------------


def _matrix(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(out, in, k)`` → ``(k · in, out)``: row ``j · in + i`` weighs channel ``i`` at shift
    ``j`` (one copy, cast included)."""
    return (
        weight.permute(2, 1, 0)
        .to(dtype, memory_format=torch.contiguous_format)
        .contiguous()  # ``to`` returns the permuted view itself when no cast is needed
        .view(-1, weight.shape[0])
    )


def _weight_grad(grad_matrix: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Inverse layout of :func:`_matrix`, in the weight's dtype (one copy)."""
    out_channels, in_channels, kernel = weight.shape
    return (
        grad_matrix.view(kernel, in_channels, out_channels)
        .permute(2, 1, 0)
        .to(weight.dtype, memory_format=torch.contiguous_format)
        .contiguous()
    )


def _shift_blocks(matrix: torch.Tensor, channels: int) -> torch.Tensor:
    """``(k · in, out)`` weight matrix → ``(k, in, out)``: block ``j`` weighs the input at shift
    ``j`` (a view)."""
    return matrix.view(-1, channels, matrix.shape[1])


def _bias_grad(grad: torch.Tensor) -> torch.Tensor:
    """Float32 bias gradient: the column sums of the output gradient rows (summed in the
    gradient's dtype, which is faster than ``sum(dtype=torch.float32)`` for bfloat16)."""
    return grad.sum(0).float()


def _columns(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Contiguous ``((T − k + 1) · B, k · c)`` column matrix of ``(T, B, c)`` activations.

    Row ``t · B + b`` holds the ``k`` time steps ``t … t + k − 1`` of window ``b``: block ``j``
    of ``c`` columns is the contiguous row block ``x[j : j + T − k + 1]`` (one copy).
    """
    length, batch, channels = x.shape
    out_length = length - kernel + 1
    blocks = [x[shift : shift + out_length] for shift in range(kernel)]
    return torch.cat(blocks, dim=2).view(out_length * batch, kernel * channels)


def _conv_product(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Column matrix of ``(T, B, c)`` activations, the weight matrix and
    ``columns @ matrix + bias`` (``((T − k + 1) · B, out)``), all in ``dtype``."""
    columns = _columns(x, weight.shape[2])
    matrix = _matrix(weight, dtype)
    return columns, matrix, torch.addmm(bias.to(dtype), columns, matrix)


def _conv_input_grad(
    grad: torch.Tensor,
    matrix: torch.Tensor,
    shape: torch.Size,
    shortcut: tuple[int, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Input gradient ``(T, B, c)`` of :func:`_conv_product` from the output gradient ``grad``.

    In the time-major layout the input rows that shift ``j`` of the kernel reads are the
    contiguous row block ``j · B … (j + T') · B``, so each shift's contribution is accumulated in
    place by one product (no column-gradient matrix, no shifted additions). ``shortcut =
    (crop, grad_output)`` adds a residual block's identity path at time offset ``crop``.
    """
    length, batch, channels = shape
    rows = grad.shape[0]  # (T − k + 1) · B
    if rows == batch and shortcut is None:
        # one output step: the shifts read disjoint input steps, so the column gradient,
        # one product, is the input gradient (time-major after one copy)
        columns_grad = torch.mm(grad, matrix.t()).view(batch, length, channels)
        return columns_grad.transpose(0, 1).contiguous()
    blocks = _shift_blocks(matrix, channels).transpose(1, 2)  # (k, out, in)
    grad_input = grad.new_empty(length * batch, channels)
    if shortcut is None:
        torch.mm(grad, blocks[0], out=grad_input[:rows])
        grad_input[rows:].zero_()
        first = 1
    else:
        crop, grad_output = shortcut
        grad_input[: crop * batch].zero_()
        grad_input[crop * batch : crop * batch + rows] = grad_output.reshape(rows, channels)
        grad_input[crop * batch + rows :].zero_()
        first = 0
    for shift in range(first, len(blocks)):
        grad_input[shift * batch : shift * batch + rows].addmm_(grad, blocks[shift])
    return grad_input.view(length, batch, channels)


class _InputConvFunction(torch.autograd.Function):
    """First convolution (and its activation) over the constant recording ``(N, n)``: one
    product per kernel shift forward, the cached transposed column matrix ``(k · n, N − k + 1)``
    for the weight gradient."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        recording: torch.Tensor,
        columns_t: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        dtype: torch.dtype,
        activation: _Activation | None,
    ) -> torch.Tensor:
        blocks = _shift_blocks(_matrix(weight, dtype), recording.shape[1])
        rows = columns_t.shape[1]
        pre_activation = torch.addmm(bias.to(dtype), recording[:rows], blocks[0])
        for shift in range(1, len(blocks)):
            pre_activation.addmm_(recording[shift : shift + rows], blocks[shift])
        output, saved = _activation_forward(pre_activation, activation)
        ctx.save_for_backward(columns_t, weight, saved)
        ctx.activation = activation
        return output

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        columns_t, weight, saved = ctx.saved_tensors
        grad = _activation_backward(grad_output, saved, ctx.activation)
        grad_weight = _weight_grad(torch.mm(columns_t, grad), weight)
        return None, None, grad_weight, _bias_grad(grad), None, None


class _FrameConvFunction(torch.autograd.Function):
    """First convolution (and its activation) of windows of the constant recording ``(N, n)``
    from the distinct frames they cover.

    ``frames`` (``F``) are the distinct recording rows of the windows and ``where`` (``(L, B)``)
    the position in ``frames`` of row ``t`` of window ``b``. The forward pass gathers the frames
    (into a reused :class:`_Workspace`) and multiplies them once by the ``k`` kernel shifts side
    by side, ``(F, n) @ (n, k · c)``; output row ``t`` of window ``b`` sums shift ``j``'s product
    at frame ``where[t + j, b]``. The weight gradient is one product of the gathered frames with
    the output gradients summed per frame and shift. Compared with the column matrix of the
    windows this multiplies each covered frame once instead of up to ``k · B · L / F`` times and
    copies ``F · n`` elements instead of ``B · L · n · (k + 1)``; the cost does not grow with
    the length of the recording.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        recording: torch.Tensor,
        frames: torch.Tensor,
        where: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        dtype: torch.dtype,
        activation: _Activation | None,
        workspace: _Workspace,
    ) -> torch.Tensor:
        out_channels, in_channels, kernel = weight.shape
        most_frames = min(where.numel(), recording.shape[0])
        gathered = workspace.take(ctx, frames.shape[0], in_channels, recording, most_frames)
        torch.index_select(recording, 0, frames, out=gathered)
        matrix = (
            weight.permute(1, 2, 0)
            .to(dtype, memory_format=torch.contiguous_format)
            .contiguous()
            .view(in_channels, kernel * out_channels)
        )
        length, batch = where.shape
        out_length = length - kernel + 1
        shifted = (
            torch.mm(gathered, matrix)
            .index_select(0, where.view(-1))
            .view(length, batch, kernel, out_channels)
        )
        pre_activation = shifted[:out_length, :, 0] + bias.to(dtype)
        for shift in range(1, kernel):
            pre_activation += shifted[shift : shift + out_length, :, shift]
        output, saved = _activation_forward(pre_activation, activation)
        ctx.save_for_backward(gathered, where, weight, saved)
        ctx.activation = activation
        return output

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        gathered, where, weight, saved = ctx.saved_tensors
        grad = _activation_backward(grad_output, saved, ctx.activation)
        out_channels, in_channels, kernel = weight.shape
        length, batch = where.shape
        out_length = length - kernel + 1
        # the output gradient at each window row and shift, summed per frame in float32
        spread = grad.new_zeros(length, batch, kernel, out_channels, dtype=torch.float32)
        for shift in range(kernel):
            spread[shift : shift + out_length, :, shift] = grad
        per_frame = spread.new_zeros(gathered.shape[0], kernel * out_channels)
        per_frame.index_add_(0, where.view(-1), spread.view(length * batch, -1))
        grad_matrix = torch.mm(per_frame.to(gathered.dtype).t(), gathered)  # (k · c, n)
        grad_weight = (
            grad_matrix.view(kernel, out_channels, in_channels)
            .permute(1, 2, 0)
            .to(weight.dtype, memory_format=torch.contiguous_format)
            .contiguous()
        )
        bias_grad = _bias_grad(grad.reshape(-1, out_channels))
        return None, None, None, grad_weight, bias_grad, None, None, None


class _ConvFunction(torch.autograd.Function):
    """A stride-1 convolution (and its activation) on time-major, channels-last ``(T, B, c)``
    activations as one matrix product; the backward pass accumulates the input gradient shift
    by shift (see :func:`_conv_input_grad`), much cheaper than the generic ``unfold`` backward.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        dtype: torch.dtype,
        activation: _Activation | None,
    ) -> torch.Tensor:
        length, batch, _ = x.shape
        out_length = length - weight.shape[2] + 1
        columns, matrix, pre_activation = _conv_product(x, weight, bias, dtype)
        output, saved = _activation_forward(pre_activation, activation)
        ctx.save_for_backward(columns, matrix, weight, saved)
        ctx.shape = x.shape
        ctx.activation = activation
        return output.view(out_length, batch, -1)

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        columns, matrix, weight, saved = ctx.saved_tensors
        grad = grad_output.reshape(columns.shape[0], -1)
        grad = _activation_backward(grad, saved, ctx.activation)
        grad_weight = _weight_grad(torch.mm(columns.t(), grad), weight)
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = _conv_input_grad(grad, matrix, ctx.shape)
        return grad_input, grad_weight, _bias_grad(grad), None, None


class _ResidualConvFunction(torch.autograd.Function):
    """``x[crop:-crop] + gelu(conv(x))`` on time-major, channels-last ``(T, B, c)`` activations.

    One graph node for the whole residual block: the input gradient is assembled in one buffer
    from the shortcut and the ``k`` shifts of the convolution.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        dtype: torch.dtype,
        activation: _Activation,
    ) -> torch.Tensor:
        length, batch, _ = x.shape
        kernel = weight.shape[2]
        crop = (kernel - 1) // 2
        out_length = length - kernel + 1
        columns, matrix, pre_activation = _conv_product(x, weight, bias, dtype)
        branch, saved = _activation_forward(pre_activation, activation)
        ctx.save_for_backward(columns, matrix, weight, saved)
        ctx.shape = x.shape
        ctx.activation = activation
        return branch.view(out_length, batch, -1).add_(x[crop : crop + out_length])

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        columns, matrix, weight, saved = ctx.saved_tensors
        grad_pre = _activation_backward(grad_output.reshape(saved.shape), saved, ctx.activation)
        grad_weight = _weight_grad(torch.mm(columns.t(), grad_pre), weight)
        crop = (weight.shape[2] - 1) // 2
        grad_input = _conv_input_grad(grad_pre, matrix, ctx.shape, (crop, grad_output))
        return grad_input, grad_weight, _bias_grad(grad_pre), None, None


class _NormalizedRows(torch.autograd.Function):
    """Float32 rows divided by their Euclidean norm (no epsilon, like ``UnitNorm``)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        output = x / norm
        ctx.save_for_backward(output, norm)
        return output

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> torch.Tensor:
        output, norm = ctx.saved_tensors
        radial = (grad_output * output).sum(1, keepdim=True)
        return (grad_output - radial * output) / norm


def _finish(program: _Program, output: torch.Tensor) -> torch.Tensor:
    """Float32 output rows, divided by their norm for normalised encoders."""
    if program.normalize:
        return _NormalizedRows.apply(output)
    return output.float()


def _output_lengths(layers: list[_Layer], window: int) -> list[int]:
    """Time length of each layer's output for one input window."""
    lengths = []
    length = window
    for layer in layers:
        if isinstance(layer, _Conv):
            length -= layer.kernel - 1
        elif isinstance(layer, _ResidualConv):
            length -= 2 * layer.crop
        lengths.append(length)
    return lengths


def _gather_windows(sequence: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Rows ``starts[b] … starts[b] + length − 1`` of ``sequence``, time-major:
    ``(length, B, c)``."""
    rows = torch.add(starts, _steps(length, starts.device)).view(-1)
    return sequence.index_select(0, rows).view(length, starts.shape[0], -1)


@functools.cache
def _steps(length: int, device: torch.device) -> torch.Tensor:
    """The column ``0 … length − 1`` (``(length, 1)``, int64) that turns window starts into
    time-major window rows; made once per length and device."""
    return torch.arange(length, device=device)[:, None]


# --------------------------------------------------------------------------------------------------
# Fused InfoNCE
# --------------------------------------------------------------------------------------------------


_CHUNK_ELEMENTS = 1 << 18  # similarity entries per chunk of references (1 MiB in float32)
_MIN_CHUNK_ROWS = 64


class _FusedInfoNCE(torch.autograd.Function):
    """InfoNCE with a hand-written, row-chunked backward pass (spec §3; terms of ``core.loss``).

    With ``S = scale · φ(r, n)`` (``φ`` = dot product or negative squared distance) and
    ``P = softmax(S)`` by rows, the forward pass returns ``total``, ``pos_term`` and ``neg_term``;
    the backward pass uses ``∂total/∂S = P / B`` and ``∂total/∂φ(r_i, p_i) = −scale / B``.

    References are processed in chunks of ``_CHUNK_ELEMENTS`` similarity entries (at least
    ``_MIN_CHUNK_ROWS`` references, so ``64 · B'`` entries for very wide problems), so
    the ``B × B'`` matrix is never materialised for large (full-batch) problems: the backward
    pass recomputes each chunk's similarities from the saved embeddings and log-sum-exps. A
    problem that fits in one chunk keeps ``exp(S − c)`` instead. Products with a chunk are laid
    out as ``(d, B) @ (B, B')`` so that the small embedding dimension is the outer one, which is
    much faster than ``(B, B') @ (B', d)`` on CPUs.

    For the Euclidean similarity the row constant ``−scale · ‖r_i‖²`` is added to the
    log-sum-exp after the softmax, which it does not change.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        ref: torch.Tensor,
        pos: torch.Tensor,
        neg: torch.Tensor,
        scale: torch.Tensor,
        euclidean: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raw_pos = (ref * pos).sum(1)
        if euclidean:
            ref_sq = (ref * ref).sum(1)
            raw_pos = 2 * raw_pos - ref_sq - (pos * pos).sum(1)
        chunk = _chunk_rows(ref.shape[0], neg.shape[0])
        neg_t, column = _negative_operands(neg, scale, euclidean)
        log_sum_exp = torch.empty_like(raw_pos)
        for start in range(0, ref.shape[0], chunk):
            rows = slice(start, start + chunk)
            similarity = _similarities(ref[rows], neg_t, column, scale)
            probabilities = torch.softmax(similarity, 1)
            # log Σ_j exp(S_ij) = max_j S_ij − log(max_j P_ij); softmax's exponential is about
            # 1.5× faster than ``exp`` on CPUs, so this beats subtracting and exponentiating
            torch.sub(similarity.amax(1), probabilities.amax(1).log_(), out=log_sum_exp[rows])
        single_chunk = chunk >= ref.shape[0]
        # the softmax of the only chunk is kept for the backward pass
        saved = probabilities if single_chunk else log_sum_exp
        if euclidean:
            log_sum_exp = log_sum_exp - scale * ref_sq
        pos_term = -(raw_pos * scale).mean()
        neg_term = log_sum_exp.mean()
        ctx.save_for_backward(ref, pos, neg, scale, raw_pos, saved, neg_t, column)
        ctx.euclidean = euclidean
        ctx.chunk = chunk
        ctx.single_chunk = single_chunk
        return pos_term + neg_term, pos_term, neg_term

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx,
        grad_total: torch.Tensor,
        grad_pos_term: torch.Tensor,
        grad_neg_term: torch.Tensor,
    ) -> tuple[torch.Tensor | None, ...]:
        ref, pos, neg, scale, raw_pos, saved, neg_t, column = ctx.saved_tensors
        euclidean = ctx.euclidean
        batch = ref.shape[0]
        # ∂L/∂S_ij = weight_neg · P_ij and ∂L/∂(scale · raw_pos_i) = weight_pos
        weight_neg = (grad_total + grad_neg_term) / batch
        weight_pos = -(grad_total + grad_pos_term) / batch
        neg_mix = torch.empty_like(ref)  # Σ_j ∂L/∂S_ij n_j
        ref_mix = torch.zeros_like(neg)  # Σ_i ∂L/∂S_ij r_i
        column_weight = torch.zeros_like(neg[:, 0])  # Σ_i ∂L/∂S_ij
        for start in range(0, batch, ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            if ctx.single_chunk:
                probabilities = saved
            else:
                probabilities = torch.softmax(_similarities(ref[rows], neg_t, column, scale), 1)
            # ∂L/∂S = weight_neg · P: the weight scales the (d, ·) products, not the B × B' matrix
            neg_mix[rows] = torch.mm(neg_t, probabilities.t()).t()
            ref_mix += torch.mm(ref[rows].t().contiguous(), probabilities).t()
            if euclidean:
                column_weight += probabilities.sum(0)
        neg_mix *= weight_neg
        ref_mix *= weight_neg
        if euclidean:
            column_weight *= weight_neg
        factor = 2 * scale if euclidean else scale
        grad_ref = factor * (neg_mix + weight_pos * pos)
        grad_neg = factor * ref_mix
        grad_pos = factor * weight_pos * ref
        if euclidean:
            grad_ref = grad_ref - factor * (weight_neg + weight_pos) * ref
            grad_neg = grad_neg - factor * column_weight[:, None] * neg
            grad_pos = grad_pos - factor * weight_pos * pos
        grad_scale = None
        if ctx.needs_input_grad[3]:
            # Σ_ij (∂L/∂S_ij) φ_ij + Σ_i (∂L/∂(scale·φ⁺_i)) φ⁺_i
            mixed = (ref * neg_mix).sum()
            if euclidean:
                mixed = 2 * mixed - weight_neg * (ref * ref).sum()
                mixed = mixed - (column_weight * (neg * neg).sum(1)).sum()
            grad_scale = mixed + weight_pos * raw_pos.sum()
        return grad_ref, grad_pos, grad_neg, grad_scale, None


def _chunk_rows(num_rows: int, num_columns: int) -> int:
    """References per chunk: ``_CHUNK_ELEMENTS`` similarities, but at least
    ``_MIN_CHUNK_ROWS`` rows so that very wide problems keep efficient products."""
    return max(1, min(num_rows, max(_MIN_CHUNK_ROWS, _CHUNK_ELEMENTS // max(num_columns, 1))))


def _negative_operands(
    neg: torch.Tensor, scale: torch.Tensor, euclidean: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What every chunk of :func:`_similarities` reads from the negatives, computed once per pass:
    ``neg.t()`` made contiguous (products with the transposed view are ~3× slower on CPUs) and,
    for the Euclidean similarity, the column term ``−scale · ‖n_j‖²`` (``None`` otherwise)."""
    column = -scale * (neg * neg).sum(1) if euclidean else None
    return neg.t().contiguous(), column


def _similarities(
    ref: torch.Tensor, neg_t: torch.Tensor, column: torch.Tensor | None, scale: torch.Tensor
) -> torch.Tensor:
    """``scale · φ(r_i, n_j)`` from :func:`_negative_operands`, without the Euclidean row
    constant ``−scale · ‖r_i‖²`` (which leaves the row softmax unchanged)."""
    if column is not None:
        return torch.addmm(column, ref * (2 * scale), neg_t)
    return torch.mm(ref * scale, neg_t)


def fused_infonce(
    ref: torch.Tensor,
    pos: torch.Tensor,
    neg: torch.Tensor,
    inverse_temperature: torch.Tensor | float,
    distance: str = "cosine",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoNCE ``(total, pos_term, neg_term)`` with a fused backward pass.

    Equals :class:`napari_cebra.core.loss.InfoNCE` up to float rounding.

    Parameters
    ----------
    ref, pos : torch.Tensor
        ``(B, d)`` float32 reference and positive embeddings.
    neg : torch.Tensor
        ``(B', d)`` float32 negative embeddings.
    inverse_temperature : torch.Tensor or float
        ``1 / τ``; a tensor with gradient for a learnable temperature.
    distance : {"cosine", "euclidean"}
        Similarity measure (dot product or negative squared distance).
    """
    if not isinstance(inverse_temperature, torch.Tensor):
        inverse_temperature = torch.tensor(inverse_temperature, dtype=ref.dtype, device=ref.device)
    return _FusedInfoNCE.apply(ref, pos, neg, inverse_temperature, distance == "euclidean")


class FusedCriterion:
    """The InfoNCE criterion's call, computed by :func:`fused_infonce`.

    ``self(ref, pos, neg)`` returns the criterion's ``(total, pos_term, neg_term)`` (up to float
    rounding) with the fused, chunked backward pass; the temperature (constant, or learnable
    with gradient) is read from the criterion at every call.

    Parameters
    ----------
    criterion : InfoNCE
        The wrapped criterion (:class:`napari_cebra.core.loss.InfoNCE`).
    """

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion
        self._constant_scale: torch.Tensor | None = None

    def __call__(
        self, ref: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return fused_infonce(ref, pos, neg, self._scale(ref), self.criterion.distance)

    def _scale(self, like: torch.Tensor) -> torch.Tensor:
        if self.criterion.learnable:
            return self.criterion.inverse_temperature()
        scale = self._constant_scale
        if scale is None or scale.device != like.device:
            inverse = self.criterion.inverse_temperature()
            scale = torch.tensor(inverse, dtype=like.dtype, device=like.device)
            self._constant_scale = scale
        return scale
