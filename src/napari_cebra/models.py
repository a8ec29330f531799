"""Encoder architectures with the names of ``cebra.models``."""

from napari_cebra.core.models import Encoder, init, supported_model_architectures

__all__ = ["Encoder", "init", "supported_model_architectures"]
