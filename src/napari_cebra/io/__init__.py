"""Getting data in: file readers, ROI traces, synthetic sample data, public datasets."""

from napari_cebra.io.caiman import read_caiman
from napari_cebra.io.nwb import list_nwb_series, read_nwb

__all__ = ["list_nwb_series", "read_caiman", "read_nwb"]
