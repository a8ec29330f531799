"""The best-practice report on the synthetic recording: our recipe against the same fits in cebra.

Ours: ``napari_cebra.workflows.recipe.run_recipe`` (CEBRA-Time, ``n_runs`` consistency runs, the
16-point grid, CEBRA-Behavior with a label shuffle and a neural shuffle, decoding), timed end to
end. cebra 0.6.1: the same trainings done one after the other with ``cebra.CEBRA`` on the same
train split (CEBRA-Time, ``n_runs`` seeds, every grid point, CEBRA-Behavior, label-shuffled and
neural-shuffled behaviour models) and the scorings the report shows (goodness of fit of both
models on the validation frames, consistency of the runs, kNN decoding with cebra's embeddings),
timed as the sum of those (no plotting or report: a lower bound of what a cebra user spends).
Both engines' quality numbers are kept side by side (``ours_quality``, ``cebra_quality``).

The grid is passed as the authors' grid-search example passes it, without a batch size: every
grid point trains **full batch** (``--grid-batch mini`` keeps the recipe's batches of 512). A
full-batch step of cebra costs seconds on the CPU, so 16 × ``iterations`` of them would take
hours: by default cebra's grid is timed from short fits of each distinct cost (output dimension
× time offset; learning rate and temperature change no cost) — one fit of 1 step and one of
``1 + --cebra-grid-steps`` steps — as ``t(1) + (iterations − 1) × step``, and the JSON says
so (``cebra_grid``). ``--cebra-grid-steps 0`` trains cebra's grid points in full.

Usage::

    python benchmarks/bench_report.py --iterations 1000 --threads 2   # issue 18's target
    python benchmarks/bench_report.py --iterations 300 --threads 1 --grid-batch mini
    python benchmarks/bench_report.py --threads 1 --engines ours &   # side by side, one per core
    python benchmarks/bench_report.py --threads 1 --engines cebra
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _cebra_fits(
    neural: np.ndarray, position: np.ndarray, args: argparse.Namespace, cpu: list[float]
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """Seconds spent by cebra on each stage (train split, recipe parameters), how its grid was
    timed, and its quality numbers (scored as the recipe scores ours, timed as "scoring").

    The process CPU seconds of all fits are added to ``cpu[0]``.
    """
    import cebra
    from cebra.integrations.sklearn.metrics import consistency_score, goodness_of_fit_score

    from napari_cebra.workflows.decoding import decode_behaviour
    from napari_cebra.workflows.recipe import BEHAVIOUR_PARAMS, DECODING_NEIGHBOURS, TIME_PARAMS
    from napari_cebra.workflows.splits import train_valid_split

    train, valid = train_valid_split(len(neural), 0.2)
    data, labels = neural[train], position[train]
    rng = np.random.default_rng(0)
    models: dict[str, Any] = {}

    def fit(
        params: dict[str, Any],
        features: np.ndarray = data,
        *y: np.ndarray,
        steps: int = 0,
        keep: str = "",
    ) -> float:
        settings = {
            **params,
            "max_iterations": steps or args.iterations,
            "device": "cpu",
            "verbose": False,
        }
        start, start_cpu = time.perf_counter(), time.process_time()
        model = cebra.CEBRA(**settings).fit(features, *y)
        cpu[0] += time.process_time() - start_cpu
        if keep:
            models.setdefault(keep, []).append(model)
        return time.perf_counter() - start

    seconds = {"CEBRA-Time": fit(TIME_PARAMS, keep="time")}
    seconds["consistency runs"] = sum(fit(TIME_PARAMS, keep="runs") for _ in range(args.n_runs))
    seconds["grid search"], grid_timing = _cebra_grid(fit, args)
    seconds["CEBRA-Behavior and label shuffle"] = fit(
        BEHAVIOUR_PARAMS, data, labels, keep="behaviour"
    ) + fit(BEHAVIOUR_PARAMS, data, rng.permutation(labels))
    seconds["neural shuffle"] = fit(BEHAVIOUR_PARAMS, rng.permutation(data), labels)

    start = time.perf_counter()
    time_model, behaviour = models["time"][0], models["behaviour"][0]
    scores, _, _ = consistency_score(
        [run.transform(data) for run in models["runs"]], between="runs"
    )
    decoded = decode_behaviour(
        behaviour.transform(data),
        behaviour.transform(neural[valid]),
        labels,
        position[valid],
        n_neighbors=DECODING_NEIGHBOURS,
    )
    quality = {
        "time_gof_valid": goodness_of_fit_score(
            time_model, neural[valid], num_batches=args.gof_batches
        ),
        "consistency_train_mean": float(np.mean(scores)),
        "behaviour_gof_valid": goodness_of_fit_score(
            behaviour, neural[valid], position[valid], num_batches=args.gof_batches
        ),
        "decoding": decoded.summary(),
    }
    seconds["scoring"] = time.perf_counter() - start
    return seconds, grid_timing, quality


def _grid(args: argparse.Namespace) -> dict[str, Any]:
    """The grid both engines train: the recipe's 16 points, full batch unless ``mini``."""
    from napari_cebra.workflows.recipe import DEFAULT_GRID

    return {**DEFAULT_GRID, "batch_size": None} if args.grid_batch == "full" else DEFAULT_GRID


def _cebra_grid(fit: Any, args: argparse.Namespace) -> tuple[float, dict[str, Any]]:
    """cebra's seconds for the grid: trained in full, or (full batch with ``cebra_grid_steps``)
    extrapolated per distinct cost from a 1-step and a ``1 + cebra_grid_steps``-step fit."""
    from napari_cebra.workflows.grid_search import split_parameters
    from napari_cebra.workflows.recipe import TIME_PARAMS

    fixed, varied = split_parameters(_grid(args))
    points = [
        {**TIME_PARAMS, **fixed, **dict(zip(varied, values, strict=True))}
        for values in itertools.product(*varied.values())
    ]
    steps = args.cebra_grid_steps
    if args.grid_batch == "mini" or steps == 0:
        return sum(fit(point) for point in points), {"how": "trained in full"}
    costs: dict[tuple[int, int], dict[str, float]] = {}
    total = 0.0
    for point in points:
        key = (point["output_dimension"], point["time_offsets"])
        if key not in costs:
            first = fit(point, steps=1)
            longer = fit(point, steps=1 + steps)
            costs[key] = {"first_step_s": first, "step_s": (longer - first) / steps}
        cost = costs[key]
        total += cost["first_step_s"] + (args.iterations - 1) * cost["step_s"]
    timing = {
        "how": f"extrapolated from fits of 1 and {1 + steps} steps per distinct cost",
        "costs": {f"output_dimension={d}, time_offsets={o}": c for (d, o), c in costs.items()},
    }
    return total, timing


def _ours(rec: Any, position: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """``run_recipe`` end to end: wall and CPU seconds, per-stage seconds and the verdict."""
    from napari_cebra.workflows.recipe import run_recipe

    start, start_cpu = time.perf_counter(), time.process_time()
    results = run_recipe(
        rec.neural,
        position,
        iterations=args.iterations,
        n_runs=args.n_runs,
        grid=_grid(args),
        gof_batches=args.gof_batches,
        model_params={"device": "cpu"},
    )
    return {
        "ours_total_s": time.perf_counter() - start,
        "ours_cpu_s": time.process_time() - start_cpu,
        "ours_stage_s": results.get("timings"),
        "ours_verdict": results.get("verdict"),
        "ours_checks": {check["name"]: check["verdict"] for check in results.get("checks", [])},
        "ours_quality": {
            "time_gof_valid": results["time_model"]["gof_valid"],
            "consistency_train_mean": results["consistency"]["train"]["mean"],
            "behaviour_gof_valid": results["behaviour_model"]["gof_valid"],
            "decoding": results["decoding"]["behaviour_model"],
        },
    }


def _cebra(rec: Any, position: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """cebra's trainings of the same stages: wall seconds per stage and CPU seconds in all."""
    cpu = [0.0]
    stages, grid_timing, quality = _cebra_fits(rec.neural, position, args, cpu)
    return {
        "cebra_total_s": sum(stages.values()),
        "cebra_fits_cpu_s": cpu[0],
        "cebra_stage_s": stages,
        "cebra_grid": grid_timing,
        "cebra_quality": quality,
    }


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_cebra.core.device import native_bfloat16
    from napari_cebra.io.synthetic import place_cell_recording

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--n-runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--grid-batch",
        choices=["full", "mini"],
        default="full",
        help="full (default: the grid as the authors pass it, no batch size) or mini (batches "
        "of 512, as the recipe's own models)",
    )
    parser.add_argument("--gof-batches", type=int, default=100, help="scoring batches")
    parser.add_argument(
        "--cebra-grid-steps",
        type=int,
        default=10,
        help="time cebra's full-batch grid from fits of 1 and 1 + this many steps per distinct "
        "cost (0: train every point in full)",
    )
    parser.add_argument(
        "--engines",
        choices=["both", "ours", "cebra"],
        default="both",
        help="both (default; ours first, then cebra), or one of them (two processes may then "
        "run side by side, one per core; compare their CPU seconds)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = place_cell_recording()
    position = rec.position[:, None]
    summary: dict[str, Any] = {
        "iterations": args.iterations,
        "n_runs": args.n_runs,
        "grid_batch": args.grid_batch,
        "torch_threads": torch.get_num_threads(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "native_bfloat16": native_bfloat16("cpu"),
        },
    }
    suffix = "" if args.engines == "both" else f"_{args.engines}"
    out = RESULTS / f"report_{args.iterations}_{args.grid_batch}{suffix}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.engines in ("both", "ours"):
        summary.update(_ours(rec, position, args))
        out.write_text(json.dumps(summary, default=str))  # kept if cebra is interrupted
    if args.engines in ("both", "cebra"):
        summary.update(_cebra(rec, position, args))
    if args.engines == "both":
        summary["cebra_over_ours"] = summary["cebra_total_s"] / summary["ours_total_s"]
        if summary["cebra_grid"]["how"] == "trained in full":  # else its CPU time is partial
            summary["cebra_over_ours_cpu"] = summary["cebra_fits_cpu_s"] / summary["ours_cpu_s"]
    summary["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps(summary, indent=1, default=str))
    out.write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
