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


PRECISION_CHOICES = ("auto", "float32", "bfloat16")
BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU features (as Linux's ``/proc/cpuinfo`` names them) that run bfloat16 products natively."""


def resolve_precision(precision: str, device: str) -> str:
    """The arithmetic a run uses: ``precision`` itself, or for ``"auto"`` bfloat16 where
    ``device`` runs it natively (:func:`native_bfloat16`) and float32 elsewhere.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
    device : str
        A resolved device (:func:`resolve_device`).

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``.
    """
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(device) else "float32"


def native_bfloat16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 products in hardware: a CUDA GPU with bfloat16
    units (Ampere or later), or a CPU with AVX512-BF16 or AMX. Emulated bfloat16 (other CPUs,
    older GPUs, MPS) counts as no."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return torch.cuda.get_device_capability(index) >= (8, 0)
    if device == "cpu":
        return bool(BFLOAT16_CPU_FLAGS & cpu_flags())
    return False


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS
    and Windows, where ``"auto"`` then means float32)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()
