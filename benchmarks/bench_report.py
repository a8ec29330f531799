"""The best-practice report on the synthetic recording: our recipe against the same fits in cebra.

Ours: ``napari_cebra.workflows.recipe.run_recipe`` (CEBRA-Time, ``n_runs`` consistency runs, the
16-point grid, CEBRA-Behavior with a label shuffle and a neural shuffle, decoding), timed end to
end. cebra 0.6.1: the same trainings done one after the other with ``cebra.CEBRA`` on the same
train split (CEBRA-Time, ``n_runs`` seeds, every grid point, CEBRA-Behavior, label-shuffled and
neural-shuffled behaviour models), timed as the sum of its fits (no scoring, plotting or report:
a lower bound of what a cebra user spends).

Usage::

    python benchmarks/bench_report.py --iterations 5000        # the recipe's settings
    python benchmarks/bench_report.py --iterations 300 --threads 1
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
    neural: np.ndarray, position: np.ndarray, iterations: int, n_runs: int, cpu: list[float]
) -> dict[str, float]:
    """Seconds spent by cebra on each stage's trainings (train split, recipe parameters).

    The process CPU seconds of all fits are added to ``cpu[0]``.
    """
    import cebra

    from napari_cebra.workflows.recipe import BEHAVIOUR_PARAMS, DEFAULT_GRID, TIME_PARAMS
    from napari_cebra.workflows.splits import train_valid_split

    train, _ = train_valid_split(len(neural), 0.2)
    data, labels = neural[train], position[train]
    rng = np.random.default_rng(0)

    def fit(params: dict[str, Any], features: np.ndarray = data, *y: np.ndarray) -> float:
        settings = {**params, "max_iterations": iterations, "device": "cpu", "verbose": False}
        start, start_cpu = time.perf_counter(), time.process_time()
        cebra.CEBRA(**settings).fit(features, *y)
        cpu[0] += time.process_time() - start_cpu
        return time.perf_counter() - start

    seconds = {"CEBRA-Time": fit(TIME_PARAMS)}
    seconds["consistency runs"] = sum(fit(TIME_PARAMS) for _ in range(n_runs))
    keys = list(DEFAULT_GRID)
    seconds["grid search"] = sum(
        fit({**TIME_PARAMS, **dict(zip(keys, values, strict=True))})
        for values in itertools.product(*DEFAULT_GRID.values())
    )
    seconds["CEBRA-Behavior and label shuffle"] = fit(BEHAVIOUR_PARAMS, data, labels) + fit(
        BEHAVIOUR_PARAMS, data, rng.permutation(labels)
    )
    seconds["neural shuffle"] = fit(BEHAVIOUR_PARAMS, rng.permutation(data), labels)
    return seconds


def _ours(rec: Any, position: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """``run_recipe`` end to end: wall and CPU seconds, per-stage seconds and the verdict."""
    from napari_cebra.workflows.recipe import DEFAULT_GRID, run_recipe

    start, start_cpu = time.perf_counter(), time.process_time()
    results = run_recipe(
        rec.neural,
        position,
        iterations=args.iterations,
        n_runs=args.n_runs,
        grid=DEFAULT_GRID,
        model_params={"device": "cpu"},
    )
    return {
        "ours_total_s": time.perf_counter() - start,
        "ours_cpu_s": time.process_time() - start_cpu,
        "ours_stage_s": results.get("timings"),
        "ours_verdict": results.get("verdict"),
    }


def _cebra(rec: Any, position: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """cebra's trainings of the same stages: wall seconds per stage and CPU seconds in all."""
    cpu = [0.0]
    stages = _cebra_fits(rec.neural, position, args.iterations, args.n_runs, cpu)
    return {
        "cebra_fits_total_s": sum(stages.values()),
        "cebra_fits_cpu_s": cpu[0],
        "cebra_stage_s": stages,
    }


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_cebra.io.synthetic import place_cell_recording

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--n-runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
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
        "torch_threads": torch.get_num_threads(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
    }
    suffix = "" if args.engines == "both" else f"_{args.engines}"
    out = RESULTS / f"report_{args.iterations}{suffix}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.engines in ("both", "ours"):
        summary.update(_ours(rec, position, args))
        out.write_text(json.dumps(summary, default=str))  # kept if cebra is interrupted
    if args.engines in ("both", "cebra"):
        summary.update(_cebra(rec, position, args))
    if args.engines == "both":
        summary["cebra_over_ours"] = summary["cebra_fits_total_s"] / summary["ours_total_s"]
        summary["cebra_over_ours_cpu"] = summary["cebra_fits_cpu_s"] / summary["ours_cpu_s"]
    summary["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps(summary, indent=1, default=str))
    out.write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
