"""``cebra.integrations.sklearn.helpers``: its public function, ``align_embeddings``."""

from napari_cebra.core.consistency import align_embeddings

__all__ = ["align_embeddings"]
