"""Training speed against recording size: our engine and cebra 0.6.1 side by side (issue 18).

Every cell of the grid neurons × frames (random float32 data, defaults: offset10-model, batch 512,
lr 3e-4, d = 3, Δt = 10) runs in its own child process, where our engine and cebra alternate
(``--repeats`` rounds). A run's it/s is timed inside one fit, over ``--steps`` steps after
``--warmup`` steps, so the set-up of the fit (copying the data, building the model) is not
counted: ours through a training session (``CEBRA.begin``), cebra's from the times its solver's
``step`` is entered. (Timing two fits of different lengths and subtracting, as before session 10,
fails at 1,000,000 frames, where the set-up's own variation exceeds the steps.) Peak memory
is measured apart, one child per engine that makes the data and fits ``--warmup`` steps: the peak
resident set of that child above its resident set once the data exists.

Cells whose data would need more than ``--memory-limit`` GB (three copies of the float32 array:
ours, cebra's and the input) are skipped and listed.

Usage::

    python benchmarks/bench_scaling.py                                  # the full grid
    python benchmarks/bench_scaling.py --neurons 120,1000 --frames 5000,20000,100000
    python benchmarks/bench_scaling.py --neurons 120 --frames 10178 --conditionals time,time_delta

Results go to ``benchmarks/results/scaling<tag>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {
    "model_architecture": "offset10-model",
    "batch_size": 512,
    "learning_rate": 3e-4,
    "output_dimension": 3,
    "time_offsets": 10,
    "device": "cpu",
    "verbose": False,
}
ENGINES = ("ours", "cebra")


def _estimator(engine: str, conditional: str, steps: int) -> Any:
    if engine == "ours":
        from napari_cebra import CEBRA
    else:
        from cebra import CEBRA
    return CEBRA(**SETTINGS, conditional=conditional, max_iterations=steps)


def _data(neurons: int, frames: int, conditional: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Random float32 activity and, for ``time_delta``, a 1-D random-walk label."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((frames, neurons), dtype=np.float32)
    if conditional == "time":
        return data, None
    label = np.cumsum(rng.standard_normal((frames, 1), dtype=np.float32), axis=0)
    return data, label


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _fit_seconds(engine: str, conditional: str, steps: int, data: np.ndarray, label: Any) -> float:
    estimator = _estimator(engine, conditional, steps)
    start = time.perf_counter()
    estimator.fit(data) if label is None else estimator.fit(data, label)
    return time.perf_counter() - start


def _steps_per_second(
    engine: str, conditional: str, args: argparse.Namespace, data: np.ndarray, label: Any
) -> float:
    """it/s of ``args.steps`` steps after ``args.warmup`` steps of one fit, timed inside the fit
    (the set-up — copying a recording of up to gigabytes, building the model — is not counted):
    ours by a training session's steps, cebra's by the entries into its solver's ``step``."""
    labels = () if label is None else (label,)
    if engine == "ours":
        session = _estimator("ours", conditional, args.warmup + args.steps).begin(data, *labels)
        try:
            session.advance(args.warmup)
            start = time.perf_counter()
            session.advance(args.steps)
            return args.steps / (time.perf_counter() - start)
        finally:
            session.close()
    from cebra.solver.base import Solver

    stamps: list[float] = []
    original = Solver.step

    def timed_step(self: Any, batch: Any) -> Any:
        stamps.append(time.perf_counter())
        return original(self, batch)

    Solver.step = timed_step
    try:
        _estimator("cebra", conditional, args.warmup + args.steps + 1).fit(data, *labels)
    finally:
        Solver.step = original
    return args.steps / (stamps[args.warmup + args.steps] - stamps[args.warmup])


def _speed(neurons: int, frames: int, conditional: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both engines on one recording, alternating: it/s per round."""
    data, label = _data(neurons, frames, conditional)
    rates: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for _ in range(args.repeats):
        for engine in ENGINES:
            rates[engine].append(_steps_per_second(engine, conditional, args, data, label))
    return {f"{engine}_rounds": rates[engine] for engine in ENGINES}


def _memory(
    neurons: int, frames: int, conditional: str, engine: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Peak resident set of one engine's fit above the resident set with the data made."""
    data, label = _data(neurons, frames, conditional)
    baseline = _rss_bytes()
    _fit_seconds(engine, conditional, args.warmup, data, label)
    return {f"{engine}_peak_mb": (_peak_rss_bytes() - baseline) / 2**20}


def _child(arguments: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    mode, neurons, frames, conditional = arguments
    if mode == "speed":
        return _speed(int(neurons), int(frames), conditional, args)
    return _memory(int(neurons), int(frames), conditional, mode, args)


def _run_child(arguments: list[str], argv: list[str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, __file__, *argv, "--child", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _cell(neurons: int, frames: int, conditional: str, argv: list[str]) -> dict[str, Any]:
    """Speed side by side and each engine's peak memory of one grid cell."""
    cell: dict[str, Any] = {"neurons": neurons, "frames": frames, "conditional": conditional}
    for mode in ("speed", *ENGINES):
        cell.update(_run_child([mode, str(neurons), str(frames), conditional], argv))
        if "error" in cell:
            return cell
    cell["ours_its"], cell["cebra_its"] = (
        statistics.median(cell[f"{engine}_rounds"]) for engine in ENGINES
    )
    cell["ratio"] = cell["ours_its"] / cell["cebra_its"]
    return cell


def _integers(text: str) -> list[int]:
    return [int(value) for value in text.split(",")]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=_integers, default=[120, 500, 1000, 2000])
    parser.add_argument("--frames", type=_integers, default=[5000, 20000, 100000, 1000000])
    parser.add_argument("--conditionals", default="time", help="time and/or time_delta")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per run")
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed steps at the start of every timed fit"
    )
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both engines per cell")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--memory-limit", type=float, default=12.0, help="GB per cell")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return
    print(f"load average {os.getloadavg()}, {args.threads} threads, {args.steps} steps")
    print(
        f"{'case':>24} {'ours it/s':>10} {'cebra it/s':>10} {'ratio':>6} {'ours MB':>8} {'cebra MB':>8}"
    )
    cells, skipped = [], []
    for conditional in args.conditionals.split(","):
        for neurons in args.neurons:
            for frames in args.frames:
                case = f"{conditional} {neurons} × {frames}"
                if 3 * 4 * neurons * frames > args.memory_limit * 1e9:
                    skipped.append(case)
                    print(f"{case:>24} skipped (memory)", flush=True)
                    continue
                cell = _cell(neurons, frames, conditional, argv)
                cells.append(cell)
                if "error" in cell:
                    print(f"{case:>24} failed: {cell['error'][-300:]}", flush=True)
                    continue
                print(
                    f"{case:>24} {cell['ours_its']:10.1f} {cell['cebra_its']:10.1f} "
                    f"{cell['ratio']:6.2f} {cell['ours_peak_mb']:8.0f} "
                    f"{cell['cebra_peak_mb']:8.0f}",
                    flush=True,
                )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"arguments": vars(args), "cells": cells, "skipped": skipped}
    (RESULTS / f"scaling{args.tag}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
