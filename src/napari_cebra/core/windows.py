"""From centre indices and recordings to embeddings.

Two paths turn data into embeddings:

* training: :class:`WindowEncoder` embeds, for a batch of centre indices, the input windows of an
  encoder from a device-resident ``(N, n)`` recording (spec §4.1: centres are clamped into
  ``[left, N - right]``). Plain convolutional encoders run the channels-last program of
  :mod:`napari_cebra.core.fast` (one matrix product per layer, first layers shared over the
  recording, optionally in bfloat16); other encoders run as modules on gathered windows.
* inference: :func:`embed_recording` embeds a whole recording with edge-replicate padding and the
  chunked ("batched") algorithm of spec §5.6, whose result equals the unbatched one. Without a
  batch size long recordings are still embedded in chunks of :data:`INFERENCE_CHUNK_ROWS`
  output rows, so memory stays bounded (the result is the same).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import torch

from napari_cebra.core.fast import ChannelsLastEncoder, compute_dtype

if TYPE_CHECKING:
    from napari_cebra.core.models import Encoder
    from napari_cebra.core.offset import Offset


CPU_WINDOWS_PER_CALL = 512
INFERENCE_CHUNK_ROWS = 1 << 15


class WindowEncoder:
    """Embeds batches of centre indices of one recording.

    Parameters
    ----------
    data : torch.Tensor
        ``(N, n)`` float32 recording on the training device.
    offset : Offset
        Receptive field of the encoder that will be applied.
    convolutional : bool
        ``True`` for encoders taking ``(B, n, L)`` windows, ``False`` for the offset-1 encoders
        taking ``(B, n)`` rows.
    precision : {"float32", "bfloat16"}
        Arithmetic of the channels-last program (plain convolutional encoders): ``"bfloat16"``
        multiplies in bfloat16 with float32 accumulation, weights, gradients and loss. Other
        encoders always run in float32.
    """

    def __init__(
        self,
        data: torch.Tensor,
        offset: Offset,
        convolutional: bool,
        precision: str = "float32",
    ) -> None:
        self.data = data
        self.num_samples = int(data.shape[0])
        self.convolutional = convolutional
        self.precision = precision
        self._left = offset.left
        self._high = self.num_samples - offset.right
        # (N - L + 1, n, L) view: window k covers rows k … k + L - 1 (no copy)
        self._windows = data.unfold(0, len(offset), 1) if convolutional else data
        dtype = compute_dtype(precision)
        self._program = ChannelsLastEncoder(data, offset, dtype) if convolutional else None

    def uses_program(self, encoder: torch.nn.Module) -> bool:
        """Whether ``encoder`` runs through the channels-last program (``core.fast``)."""
        return self._program is not None and self._program.supports(encoder)

    def windows(self, centres: torch.Tensor) -> torch.Tensor:
        """Input windows for ``centres`` (shape ``(B,)``, int64 on the data's device).

        Returns
        -------
        torch.Tensor
            Contiguous ``(B, n, L)`` for convolutional encoders, ``(B, n)`` otherwise.
        """
        clamped = centres.clamp(self._left, self._high)
        if not self.convolutional:
            return self.data[clamped]
        return self._windows[clamped - self._left]

    def __call__(self, encoder: torch.nn.Module, centres: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, d)`` of the windows around ``centres``.

        Encoders with a channels-last program use it. Otherwise, on the CPU, the encoder runs
        over at most :data:`CPU_WINDOWS_PER_CALL` windows per call (smaller convolutions stay
        in cache); on GPUs all windows go through in one call.
        """
        if self.uses_program(encoder):
            return self._program(encoder, centres)
        windows = self.windows(centres)
        if self.data.device.type != "cpu" or windows.shape[0] <= CPU_WINDOWS_PER_CALL:
            return encoder(windows)
        return torch.cat([encoder(part) for part in windows.split(CPU_WINDOWS_PER_CALL)])

    def embed_sequence(self, encoder: torch.nn.Module) -> torch.Tensor:
        """Embeddings ``(N − L + 1, d)`` of every full window of the recording (with gradient):
        ``encoder.embed_sequence(data)``, through the channels-last program when there is one."""
        if self.uses_program(encoder):
            return self._program.embed_sequence(encoder)
        return encoder.embed_sequence(self.data)


def replicate_pad(data: torch.Tensor, offset: Offset) -> torch.Tensor:
    """Pad the time axis by edge replication: ``left`` copies of the first row before and
    ``right - 1`` copies of the last row after, so every row gets a full window."""
    before = data[:1].expand(offset.left, -1)
    after = data[-1:].expand(offset.right - 1, -1)
    return torch.cat([before, data, after])


def embed_recording(
    encoder: Encoder,
    data: torch.Tensor,
    pad: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Embed a whole ``(N, n)`` recording (the algorithm of ``CEBRA.transform``, spec §5.6).

    Parameters
    ----------
    encoder : Encoder
        The encoder, already in the wanted mode (eval for inference).
    data : torch.Tensor
        ``(N, n)`` float32 recording on the encoder's device.
    pad : bool
        Replicate-pad so that the output has one row per input row (``N`` rows, or
        ``ceil(N / resample_factor)`` for subsampling encoders); without padding the output has
        ``N - L + 1`` rows.
    batch_size : int, optional
        Embed at most this many output rows per encoder call when ``N > 2 * batch_size`` (the last
        two chunks are merged). The result equals the unbatched one. Subsampling encoders are
        always embedded in one call.

    Returns
    -------
    torch.Tensor
        ``(rows, d)`` embeddings.

    Raises
    ------
    ValueError
        If ``batch_size`` is not positive, or too small for the encoder's receptive field.
    """
    offset = encoder.get_offset()
    length = len(offset)
    padded = pad and length > 1
    num_rows = data.shape[0] + (length - 1 if padded else 0) - length + 1
    if batch_size is not None:
        _check_batch_size(batch_size)
    batched = (
        batch_size is not None
        and encoder.resample_factor == 1
        and data.shape[0] > 2 * batch_size
        and num_rows > 2 * batch_size
    )
    if batched:
        _check_batch_covers_window(batch_size, offset)
        starts = list(range(0, num_rows, batch_size))
        ends = [*starts[1:-1], num_rows]
    elif encoder.resample_factor == 1 and num_rows > INFERENCE_CHUNK_ROWS:
        # same rows as one call, in chunks that bound the memory of the convolutions
        starts = list(range(0, num_rows, INFERENCE_CHUNK_ROWS))
        ends = [*starts[1:], num_rows]
        starts.append(num_rows)
    else:
        sequence = replicate_pad(data, offset) if padded else data
        return encoder.embed_sequence(sequence)
    chunks = [
        encoder.embed_sequence(_padded_rows(data, offset, padded, start, end + length - 1))
        for start, end in zip(starts[:-1], ends, strict=True)
    ]
    return torch.cat(chunks)


def _padded_rows(
    data: torch.Tensor, offset: Offset, padded: bool, start: int, stop: int
) -> torch.Tensor:
    """Rows ``start … stop − 1`` of the (virtually) replicate-padded recording, without
    padding the whole recording."""
    if not padded:
        return data[start:stop]
    first, last = start - offset.left, stop - offset.left
    rows = data[max(first, 0) : min(last, data.shape[0])]
    before = data[:1].expand(max(-first, 0), -1)
    after = data[-1:].expand(max(last - data.shape[0], 0), -1)
    if before.shape[0] == 0 and after.shape[0] == 0:
        return rows
    return torch.cat([before, rows, after])


def _check_batch_size(batch_size: int) -> None:
    """Reject non-positive batch sizes."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}.")


def _check_batch_covers_window(batch_size: int, offset: Offset) -> None:
    """The first chunk (batch plus ``right - 1`` real neighbours) must exceed the window, as in
    the reference."""
    first_chunk = batch_size + offset.right - 1
    if len(offset) > 1 and first_chunk <= len(offset):
        raise ValueError(
            f"The batch has length {first_chunk} which is smaller or equal than the required "
            f"offset length {len(offset)}: use a batch_size of at least {offset.left + 2}."
        )
