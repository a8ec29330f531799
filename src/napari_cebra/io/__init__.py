"""Getting data in: file readers, ROI traces, synthetic sample data, public datasets."""
