"""``cebra.integrations.sklearn.decoder``: the decoders."""

from napari_cebra.workflows.decoding import Decoder, KNNDecoder, L1LinearRegressor

__all__ = ["Decoder", "KNNDecoder", "L1LinearRegressor"]
