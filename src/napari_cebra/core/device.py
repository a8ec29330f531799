"""Resolution of the ``device`` parameter into a concrete torch device string (spec §1.6)."""

from __future__ import annotations

from typing import Any

DEVICE_CHOICES = ("cuda_if_available", "cpu", "cuda", "cuda:<index>", "mps")


def resolve_device(device: Any) -> str:
    """Turn a user device specification into the device string training runs on.

    Parameters
    ----------
    device : str or torch.device
        ``"cuda_if_available"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"`` (first GPU),
        ``"cuda:k"``, ``"mps"`` or a ``torch.device``.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda:k"`` or ``"mps"``.

    Raises
    ------
    ValueError
        If the device is unknown or not available on this machine.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(
            f"device must be a string or torch.device, got {device!r} of type "
            f"{type(device).__name__}; valid choices: {', '.join(DEVICE_CHOICES)}."
        )
    if device == "cuda_if_available":
        if torch.cuda.is_available():
            return "cuda:0"
        if _mps_available():
            return "mps"
        return "cpu"
    if device == "cpu":
        return "cpu"
    if device == "mps":
        if not _mps_available():
            raise ValueError(
                "device='mps' was requested, but MPS is not available on this machine."
            )
        return "mps"
    if device == "cuda" or device.startswith("cuda:"):
        return _resolve_cuda(device)
    raise ValueError(
        f"Unknown device {device!r}; valid choices: {', '.join(DEVICE_CHOICES)} or a torch.device."
    )


def _resolve_cuda(device: str) -> str:
    """Validate ``"cuda"`` / ``"cuda:k"`` against the GPUs present."""
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested, but CUDA is not available on this machine "
            "(use device='cpu' or 'cuda_if_available')."
        )
    if device == "cuda":
        return "cuda:0"
    index_text = device.split(":", 1)[1]
    count = torch.cuda.device_count()
    if not index_text.isdigit() or int(index_text) >= count:
        raise ValueError(
            f"Invalid CUDA device {device!r}: this machine has {count} GPU(s) "
            f"(cuda:0 … cuda:{count - 1})."
        )
    return f"cuda:{int(index_text)}"


def _mps_available() -> bool:
    """Whether Apple's MPS backend is built and usable."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available() and backend.is_built())
