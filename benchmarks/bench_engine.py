"""Our engine against cebra 0.6.1, side by side in one process, on the same data and settings.

Sections (all on by default; pick some with ``--sections``):

* ``minibatch`` — it/s of ``time``, ``time_delta``, discrete and ``offset36-model`` training at
  the seed configuration (offset10-model, batch 512, lr 3e-4, d = 3, Δt = 10) on the synthetic
  10,178 × 120 place-cell recording; cebra and our engine alternate, several repeats, medians.
  Quality: final training loss (mean of the last 10 % of steps), GoF of that loss in bits, and
  an *evaluated* GoF that scores every trained model the same way (fp32 embeddings of the whole
  recording, InfoNCE over 200 fixed batches of our seeded sampler).
* ``fullbatch`` — ``batch_size=None`` on 9,600 frames: seconds per step of each and the ratio;
  ours also on a 100,000-frame recording (seconds per step, peak memory).
* ``transform`` — ``transform`` of a 1,000,000 × 200 float32 recording in a child process:
  throughput and peak resident memory above the input (must stay below input + output).
* ``ensemble`` — ``fit_ensemble`` with K = 5 seeds (grouped, one after the other, and side by side
  in threads) against one run with the same settings.

Results go to ``benchmarks/results/<section>.json``; ``benchmarks/README.md`` summarises them.

Usage::

    python benchmarks/bench_engine.py                       # short runs (500 steps, 3 repeats)
    python benchmarks/bench_engine.py --steps 5000 --repeats 1
    python benchmarks/bench_engine.py --sections minibatch --cases time,time_delta
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
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
SEED_SETTINGS = {
    "model_architecture": "offset10-model",
    "batch_size": 512,
    "learning_rate": 3e-4,
    "output_dimension": 3,
    "time_offsets": 10,
    "temperature": 1.0,
    "device": "cpu",
    "verbose": False,
}
CASES = {
    "time": ({"conditional": "time"}, "none"),
    "time_delta": ({"conditional": "time_delta"}, "position"),
    "discrete": ({}, "direction"),
    "offset36_time": ({"conditional": "time", "model_architecture": "offset36-model"}, "none"),
}
EVAL_BATCHES = 200


# --------------------------------------------------------------------------------------------------
# machine and data
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    model = "unknown"
    flags = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_tile" in flags,
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cebra": _cebra_version(),
    }


def _cebra_version() -> str | None:
    try:
        import cebra
    except ImportError:
        return None
    return cebra.__version__


def recording(n_frames: int = 10178) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """The synthetic place-cell recording and its label arrays by name."""
    from napari_cebra.io.synthetic import place_cell_recording

    rec = place_cell_recording(n_frames=n_frames)
    labels = {"none": None, "position": rec.position[:, None], "direction": rec.direction}
    return rec.neural, labels


# --------------------------------------------------------------------------------------------------
# mini-batch training
# --------------------------------------------------------------------------------------------------


def _fit(estimator: Any, data: np.ndarray, label: np.ndarray | None) -> float:
    """Fit and return the wall time in seconds."""
    start = time.perf_counter()
    if label is None:
        estimator.fit(data)
    else:
        estimator.fit(data, label)
    return time.perf_counter() - start


def _loss_history(estimator: Any) -> np.ndarray:
    return np.asarray(estimator.state_dict_["loss"], dtype=np.float64)


def _gof_bits(loss: float, batch_size: int) -> float:
    return (math.log(batch_size) - loss) / math.log(2)


def evaluated_gof(
    embedding: np.ndarray, label: np.ndarray | None, settings: dict[str, Any]
) -> float:
    """GoF (bits) of an embedding of the whole recording, scored identically for every engine.

    References, positives and negatives are drawn by our seeded sampler of the training kind
    (fixed seed), the InfoNCE of ``EVAL_BATCHES`` batches is averaged and converted to bits.
    """
    import torch

    from napari_cebra.core import sampling
    from napari_cebra.core.loss import infonce

    generator = torch.Generator().manual_seed(12345)
    num_samples = embedding.shape[0]
    offset = settings["time_offsets"]
    if label is None:
        sampler = sampling.TimeSampler(num_samples, offset, generator)
    elif label.dtype.kind == "f":
        sampler = sampling.TimeDeltaSampler(label.astype(np.float32), offset, generator)
    else:
        sampler = sampling.DiscreteSampler(label.astype(np.int64), generator)
    rows = torch.from_numpy(embedding)
    batch_size = settings["batch_size"]
    losses = []
    for _ in range(EVAL_BATCHES):
        batch = sampler.sample(batch_size)
        total, _, _ = infonce(
            rows[batch.reference],
            rows[batch.positive],
            rows[batch.negative],
            temperature=settings["temperature"],
        )
        losses.append(float(total))
    return _gof_bits(float(np.mean(losses)), batch_size)


def _engines(precisions: list[str]) -> dict[str, Any]:
    """Estimator factories by engine name: cebra and ours, one per training precision."""
    import cebra

    from napari_cebra import CEBRA

    engines: dict[str, Any] = {"cebra": cebra.CEBRA}
    for precision in precisions:
        engines[f"ours_{precision}"] = functools.partial(CEBRA, precision=precision)
    return engines


def bench_minibatch(args: argparse.Namespace) -> dict[str, Any]:
    """it/s, final loss and GoF of every engine for each case."""
    data, labels = recording()
    engines = _engines(args.precisions.split(","))
    results: dict[str, Any] = {"steps": args.steps, "repeats": args.repeats, "cases": {}}
    for case in args.cases.split(","):
        overrides, label_name = CASES[case]
        settings = {**SEED_SETTINGS, **overrides, "max_iterations": args.steps}
        label = labels[label_name]
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
        for repeat in range(args.repeats):
            for name, factory in engines.items():
                params = dict(settings)
                if name != "cebra":
                    params["seed"] = repeat
                estimator = factory(**params)
                seconds = _fit(estimator, data, label)
                history = _loss_history(estimator)
                tail = history[-max(1, len(history) // 10) :]
                final_loss = float(tail.mean())
                embedding = estimator.transform(data)
                runs[name].append(
                    {
                        "seconds": seconds,
                        "it_per_s": args.steps / seconds,
                        "final_loss": final_loss,
                        "gof_train_bits": _gof_bits(final_loss, settings["batch_size"]),
                        "gof_eval_bits": evaluated_gof(embedding, label, settings),
                    }
                )
                print(f"  {case:14s} {name:15s} repeat {repeat}: {runs[name][-1]}", flush=True)
        results["cases"][case] = _summarise(runs)
        _print_case(case, results["cases"][case])
    return results


def _summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, records in runs.items():
        summary[name] = {
            key: statistics.median(record[key] for record in records) for key in records[0]
        }
        summary[name]["runs"] = records
    base = summary["cebra"]["it_per_s"]
    for name in runs:
        if name != "cebra":
            summary[name]["ratio_vs_cebra"] = summary[name]["it_per_s"] / base
            # each repeat against cebra's run of the same repeat (adjacent in time), which is
            # less sensitive to the machine's drift than a ratio of medians
            summary[name]["ratio_per_repeat"] = [
                ours["it_per_s"] / theirs["it_per_s"]
                for ours, theirs in zip(runs[name], runs["cebra"], strict=True)
            ]
            summary[name]["gof_eval_minus_cebra"] = (
                summary[name]["gof_eval_bits"] - summary["cebra"]["gof_eval_bits"]
            )
    return summary


def _print_case(case: str, summary: dict[str, Any]) -> None:
    print(f"== {case}")
    for name, row in summary.items():
        ratio = row.get("ratio_vs_cebra")
        ratio_text = ""
        if ratio:
            paired = row["ratio_per_repeat"]
            ratio_text = f"  ratio {ratio:5.2f} (repeats {min(paired):.2f}–{max(paired):.2f})"
        print(
            f"   {name:15s} {row['it_per_s']:7.1f} it/s{ratio_text}  final loss "
            f"{row['final_loss']:.3f}  GoF train {row['gof_train_bits']:.3f} bits  "
            f"GoF eval {row['gof_eval_bits']:.3f} bits",
            flush=True,
        )


# --------------------------------------------------------------------------------------------------
# full batch
# --------------------------------------------------------------------------------------------------


def bench_fullbatch(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per full-batch step on 9,600 frames (both engines) and 100,000 frames (ours)."""
    data, labels = recording()
    data = data[:9600]
    position = labels["position"][:9600]
    engines = _engines(args.precisions.split(","))
    settings = {**SEED_SETTINGS, "batch_size": None, "conditional": "time_delta"}
    steps = args.full_batch_steps
    runs: dict[str, list[float]] = {name: [] for name in engines}
    for repeat in range(args.repeats):
        for name, factory in engines.items():
            params = {**settings, "max_iterations": steps}
            if name != "cebra":
                params["seed"] = repeat
            seconds = _fit(factory(**params), data, position)
            runs[name].append(seconds / steps)
            print(f"  full batch {name:15s} repeat {repeat}: {seconds / steps:.3f} s/step")
    summary = {name: {"s_per_step": statistics.median(values)} for name, values in runs.items()}
    for name in engines:
        if name != "cebra":
            summary[name]["ratio_vs_cebra"] = (
                summary["cebra"]["s_per_step"] / summary[name]["s_per_step"]
            )
    large = _child(["fullbatch-large", str(steps)])
    result = {"frames": 9600, "steps": steps, "engines": summary, "ours_100k_frames": large}
    print(json.dumps(result, indent=1))
    return result


def _fullbatch_large_child(steps: int) -> dict[str, Any]:
    """Ours on a 100,000-frame recording (run in a child process for a clean peak RSS)."""
    from napari_cebra import CEBRA
    from napari_cebra.io.synthetic import place_cell_recording

    rec = place_cell_recording(n_frames=100_000)
    before = _peak_rss_bytes()
    model = CEBRA(**{**SEED_SETTINGS, "batch_size": None, "conditional": "time_delta"})
    model.set_params(max_iterations=steps, seed=0)
    seconds = _fit(model, rec.neural, rec.position[:, None])
    return {
        "frames": 100_000,
        "s_per_step": seconds / steps,
        "peak_rss_growth_mb": (_peak_rss_bytes() - before) / 2**20,
        "dense_similarity_would_need_mb": 100_000**2 * 4 / 2**20,
    }


# --------------------------------------------------------------------------------------------------
# transform
# --------------------------------------------------------------------------------------------------


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _transform_child(engine: str, frames: int, features: int) -> dict[str, Any]:
    """Fit a small model, then transform a long recording; report throughput and peak memory."""
    rng = np.random.default_rng(0)
    train = rng.poisson(1.0, size=(2000, features)).astype(np.float32)
    params = {**SEED_SETTINGS, "conditional": "time", "max_iterations": 5, "batch_size": 64}
    if engine == "cebra":
        import cebra

        model = cebra.CEBRA(**params)
    else:
        from napari_cebra import CEBRA

        model = CEBRA(**params, seed=0)
    model.fit(train)
    model.transform(train[:100])
    long = np.empty((frames, features), dtype=np.float32)
    for start in range(0, frames, 100_000):
        stop = min(frames, start + 100_000)
        long[start:stop] = rng.poisson(1.0, size=(stop - start, features))
    input_bytes = long.nbytes
    baseline_rss = _current_rss_bytes()
    start = time.perf_counter()
    if engine == "ours-engine":
        import torch

        from napari_cebra.core.windows import embed_recording

        model.model_.eval()
        with torch.no_grad():
            embedding = embed_recording(model.model_, torch.from_numpy(long)).numpy()
    else:
        embedding = model.transform(long)
    seconds = time.perf_counter() - start
    output_bytes = embedding.nbytes
    peak_growth = _peak_rss_bytes() - baseline_rss
    return {
        "engine": engine,
        "frames": frames,
        "features": features,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "input_mb": input_bytes / 2**20,
        "output_mb": output_bytes / 2**20,
        "peak_growth_mb": peak_growth / 2**20,
        "bound_mb": (input_bytes + output_bytes) / 2**20,
        "within_bound": peak_growth < input_bytes + output_bytes,
        "unit_norm": bool(np.allclose(np.linalg.norm(embedding[:1000], axis=1), 1, atol=1e-4)),
    }


def bench_transform(args: argparse.Namespace) -> dict[str, Any]:
    """Transform of 1,000,000 × 200: ours through ``CEBRA.transform`` and through the engine's
    ``embed_recording`` alone (no input validation copy); cebra too with ``--transform-cebra``."""
    engines = ["ours-engine", "ours"] + (["cebra"] if args.transform_cebra else [])
    result = {}
    for engine in engines:
        result[engine] = _child(["transform", engine, str(args.transform_frames), "200"])
        print(json.dumps(result[engine], indent=1), flush=True)
    return result


# --------------------------------------------------------------------------------------------------
# ensemble
# --------------------------------------------------------------------------------------------------


def bench_ensemble(args: argparse.Namespace) -> dict[str, Any]:
    """K = 5 seeds with ``fit_ensemble`` against one run of the same precision (``time``, seed
    settings), in wall seconds and process CPU seconds: as one grouped model (``batched=True``),
    one member after the other (``batched=False, workers=1``) and side by side in threads, one
    member per torch thread (``batched=False``, the CPU default for these encoders)."""
    from napari_cebra import CEBRA
    from napari_cebra.core.ensemble import fit_ensemble

    data, _ = recording()
    params = {**SEED_SETTINGS, "conditional": "time", "max_iterations": args.ensemble_steps}
    precisions = ("float32", "bfloat16")
    kinds = {
        "one": None,
        "k5_grouped": {"batched": True},
        "k5_one_after_another": {"batched": False, "workers": 1},
        "k5_side_by_side": {"batched": False},
    }
    runs: dict[str, list[tuple[float, float]]] = {
        f"{kind}_{precision}": [] for kind in kinds for precision in precisions
    }
    for _ in range(args.repeats):
        for precision in precisions:
            for kind, options in kinds.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                if kind == "one":
                    CEBRA(**params, seed=0, precision=precision).fit(data)
                else:
                    fit_ensemble(
                        {**params, "precision": precision},
                        data,
                        seeds=[0, 1, 2, 3, 4],
                        **options,
                    )
                runs[f"{kind}_{precision}"].append(
                    (time.perf_counter() - start, time.process_time() - start_cpu)
                )
    seconds = {name: statistics.median(v[0] for v in values) for name, values in runs.items()}
    cpu = {name: statistics.median(v[1] for v in values) for name, values in runs.items()}
    ratios = {
        f"{kind}_over_one{suffix}": {
            p: times[f"{kind}_{p}"] / times[f"one_{p}"] for p in precisions
        }
        for kind in list(kinds)[1:]
        for suffix, times in (("", seconds), ("_cpu", cpu))
    }
    result = {
        "steps": args.ensemble_steps,
        "seconds": seconds,
        "cpu_seconds": cpu,
        **ratios,
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------


def _child(arguments: list[str]) -> dict[str, Any]:
    """Run this script's child mode in a fresh process and return its JSON result."""
    import torch

    threads = ["--threads", str(torch.get_num_threads())]
    completed = subprocess.run(
        [sys.executable, __file__, *threads, "--child", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return {"error": completed.stderr[-2000:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _run_child(arguments: list[str]) -> None:
    mode, *rest = arguments
    if mode == "transform":
        result = _transform_child(rest[0], int(rest[1]), int(rest[2]))
    elif mode == "fullbatch-large":
        result = _fullbatch_large_child(int(rest[0]))
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    print(json.dumps(result))


SECTIONS = {
    "minibatch": bench_minibatch,
    "fullbatch": bench_fullbatch,
    "transform": bench_transform,
    "ensemble": bench_ensemble,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--steps", type=int, default=500, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--full-batch-steps", type=int, default=5)
    parser.add_argument("--transform-frames", type=int, default=1_000_000)
    parser.add_argument("--transform-cebra", action="store_true")
    parser.add_argument("--ensemble-steps", type=int, default=300)
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch

    warnings.filterwarnings("ignore")
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        _run_child(args.child)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(json.dumps(info))
    for section in args.sections.split(","):
        print(f"### {section}", flush=True)
        result = {"machine": info, "arguments": vars(args), **SECTIONS[section](args)}
        suffix = f"_{args.tag}" if args.tag else ""
        (RESULTS / f"{section}{suffix}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
