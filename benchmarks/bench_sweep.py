"""A local grid sweep one model after the other vs side by side (``GridSearch(workers=…)``).

The grid: two learning rates × two output dimensions of the offset10-model (batch 512, 32 hidden
units) on the synthetic place-cell recording (10,178 frames, 120 neurons), on the CPU. One after
the other, each model uses every torch thread; side by side, ``workers`` models train at once, each
with ``threads // workers`` torch threads. Wall time includes saving and scoring every model.

Usage::

    python benchmarks/bench_sweep.py --steps 300 --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _sweep_seconds(data: tuple, params: dict, workers: int) -> float:
    from napari_cebra import GridSearch

    with tempfile.TemporaryDirectory() as directory:
        began = time.perf_counter()
        GridSearch(gof_batches=5).fit_models(
            {"place_cells": data}, params, directory, workers=workers
        )
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="default: --threads")
    args = parser.parse_args()
    import torch

    from napari_cebra.io.synthetic import place_cell_recording

    torch.set_num_threads(args.threads)
    workers = args.workers or args.threads
    recording = place_cell_recording()
    data = (recording.neural, recording.position)
    params = {
        "model_architecture": "offset10-model",
        "batch_size": 512,
        "max_iterations": args.steps,
        "device": "cpu",
        "seed": 0,
        "learning_rate": [3e-4, 1e-3],
        "output_dimension": [3, 8],
    }
    one_after_another = _sweep_seconds(data, params, 1)
    side_by_side = _sweep_seconds(data, params, workers)
    result = {
        "frames": int(recording.neural.shape[0]),
        "neurons": int(recording.neural.shape[1]),
        "models": 4,
        "steps": args.steps,
        "torch_threads": args.threads,
        "workers": workers,
        "one_after_another_s": round(one_after_another, 2),
        "side_by_side_s": round(side_by_side, 2),
        "speedup": round(one_after_another / side_by_side, 2),
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"sweep_threads{args.threads}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
