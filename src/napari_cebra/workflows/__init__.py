"""The best-practice workflow: consistency runs, grid search, shuffle controls, decoding, plots, report."""
