"""The CEBRA engine: models, loss, samplers, training loop, estimator, save/load, metrics."""
