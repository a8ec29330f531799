"""Goodness of fit of bfloat16 training against float32, case by case (issue 18, ``precision="auto"``).

``precision="auto"`` trains in bfloat16 where the device runs it natively. This script checks, for
each kind of training the engine has, that bfloat16 reaches the goodness of fit of float32: the
same seed and data trained in both precisions, GoF in bits of the training loss (mean of the last
tenth of the steps, as the widgets show it; for full batch, where cebra's GoF is undefined,
log2(frames) − loss in bits) and of the final model scored on the whole recording
(``napari_cebra.metrics.goodness_of_fit_score``, in the precision the model trained in). A case
passes when both differ by at most ``--tolerance`` bits (0.01). On a CPU without AVX512-BF16/AMX
bfloat16 is emulated: the numbers are those of native bfloat16 (the products round the same way),
only slower.

Usage::

    python benchmarks/bench_precision.py                 # 5,000 steps per run
    python benchmarks/bench_precision.py --steps 2000 --cases "time;discrete"

Results go to ``benchmarks/results/precision.json``, updated case by case (a run of some cases
keeps the others' rows).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SEED_SETTINGS = {
    "model_architecture": "offset10-model",
    "batch_size": 512,
    "learning_rate": 3e-4,
    "output_dimension": 3,
    "time_offsets": 10,
    "device": "cpu",
    "verbose": False,
    "seed": 0,
}
FULL_BATCH_FRAMES = 3_000
"""Frames of the full-batch case (each step embeds every frame)."""
CASES = {
    "time": ({"conditional": "time", "temperature": 1.12}, "none"),
    "time_delta": ({"conditional": "time_delta"}, "position"),
    "discrete": ({}, "direction"),
    "hybrid": ({"conditional": "time_delta", "hybrid": True}, "position"),
    "offset36-model": ({"conditional": "time", "model_architecture": "offset36-model"}, "none"),
    "full batch": ({"conditional": "time", "batch_size": None}, "none"),
    "learnable temperature (euclidean)": (
        {
            "conditional": "time_delta",
            "distance": "euclidean",
            "temperature_mode": "auto",
            "min_temperature": 0.1,
        },
        "position",
    ),
}


def run_case(name: str, steps: int, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Train case ``name`` in float32 and bfloat16; return their GoFs and the differences."""
    from napari_cebra import CEBRA
    from napari_cebra.core.goodness_of_fit import full_batch_goodness_of_fit_score
    from napari_cebra.metrics import (
        goodness_of_fit_history,
        goodness_of_fit_score,
        infonce_to_goodness_of_fit,
    )

    overrides, label = CASES[name]
    X = data["neural"]
    labels = () if label == "none" else (data[label],)
    if overrides.get("batch_size", 0) is None:
        X = X[:FULL_BATCH_FRAMES]
        labels = tuple(y[:FULL_BATCH_FRAMES] for y in labels)
    row: dict[str, float] = {}
    for precision in ("float32", "bfloat16"):
        params = {**SEED_SETTINGS, **overrides, "max_iterations": steps, "precision": precision}
        start = time.perf_counter()
        model = CEBRA(**params).fit(X, *labels)
        seconds = time.perf_counter() - start
        if params["batch_size"] is None:  # cebra's GoF needs a batch: InfoNCE over all frames
            history = infonce_to_goodness_of_fit(
                model.state_dict_["loss"].numpy(), batch_size=len(X), num_sessions=1
            )
            score = full_batch_goodness_of_fit_score(model, X)
        else:
            history = goodness_of_fit_history(model)
            score = float(goodness_of_fit_score(model, X, *labels))
        row[f"{precision}_gof_train_bits"] = float(np.mean(history[-max(1, steps // 10) :]))
        row[f"{precision}_gof_score_bits"] = score
        row[f"{precision}_it_per_s"] = steps / seconds
    for kind in ("train", "score"):
        row[f"difference_{kind}_bits"] = (
            row[f"bfloat16_gof_{kind}_bits"] - row[f"float32_gof_{kind}_bits"]
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--cases", default=";".join(CASES), help="case names, separated by ;")
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()

    from napari_cebra.io.synthetic import place_cell_recording

    recording = place_cell_recording()
    data = {
        "neural": recording.neural.astype(np.float32),
        "position": recording.behaviour[:, :1].astype(np.float32),
        "direction": recording.behaviour[:, 1].astype(np.int64),
    }
    out = RESULTS / "precision.json"
    RESULTS.mkdir(exist_ok=True)
    results = json.loads(out.read_text())["cases"] if out.exists() else {}
    for name in args.cases.split(";"):
        row = run_case(name, args.steps, data)
        differences = [row["difference_train_bits"], row["difference_score_bits"]]
        row["passes"] = bool(np.nanmax(np.abs(differences)) <= args.tolerance)
        row["steps"] = args.steps
        row["date"] = time.strftime("%Y-%m-%d")
        results[name] = row
        print(
            f"{name:34s} GoF train {row['float32_gof_train_bits']:.3f} / "
            f"{row['bfloat16_gof_train_bits']:.3f} bits (Δ {row['difference_train_bits']:+.4f}), "
            f"score {row['float32_gof_score_bits']:.3f} / {row['bfloat16_gof_score_bits']:.3f} "
            f"(Δ {row['difference_score_bits']:+.4f}), it/s {row['float32_it_per_s']:.1f} / "
            f"{row['bfloat16_it_per_s']:.1f}  {'ok' if row['passes'] else 'MISSES'}",
            flush=True,
        )
        out.write_text(  # after every case: a later run of some cases updates theirs
            json.dumps(
                {
                    "tolerance_bits": args.tolerance,
                    "machine": platform.processor() or platform.machine(),
                    "cases": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
