"""Can K ensemble members share matrix products? The products of one training step, alone and K-wide.

An ensemble of K models trained together (``core.ensemble``) can only beat K runs one after the
other if one product over K members costs less than K products of one member. This measures
the products of one offset10-model step on the benchmark recording (10,178 frames, 120 neurons,
32 hidden units, 1,536 windows) for one member and for K members:

* the first convolution over the recording, whose input columns all members share: one product
  with K · 32 output columns instead of K products with 32;
* a residual block over the recording (forward, weight gradient, input gradient): K independent
  products of the same shape, batched with ``torch.bmm``.

On a device where one member leaves the hardware idle (a GPU), the K-wide products cost far less
than K times one; where a single member already runs the products at full speed (a CPU), they
cost about K times one, and no grouping can make K runs much cheaper than K single runs.

Usage::

    python benchmarks/bench_batching.py --threads 1 --members 5
    python benchmarks/bench_batching.py --device cuda --members 10
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FRAMES, NEURONS, HIDDEN, KERNEL = 10_178, 120, 32, 3


def _seconds(function: Callable[[], object], device: str, repeats: int) -> float:
    """Median seconds of ``function`` (after warm-up), synchronising CUDA around each call."""
    import torch

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(5):
        function()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(members: int, device: str, dtype_name: str, repeats: int) -> dict[str, dict]:
    """Seconds of each product for one member and for ``members`` members, and their ratio."""
    import torch

    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(0)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    rows = FRAMES - 1
    columns = random(rows, 2 * NEURONS)
    columns_t = columns.t().contiguous()
    res_rows = rows - KERNEL + 1
    res_columns = random(members, res_rows, KERNEL * HIDDEN)
    res_weight = random(members, KERNEL * HIDDEN, HIDDEN)
    res_grad = random(members, res_rows, HIDDEN)
    weight_one, weight_wide = random(2 * NEURONS, HIDDEN), random(2 * NEURONS, members * HIDDEN)
    grad_one, grad_wide = random(rows, HIDDEN), random(rows, members * HIDDEN)
    cases = {
        "first convolution, forward": (lambda: columns @ weight_one, lambda: columns @ weight_wide),
        "first convolution, weight gradient": (
            lambda: columns_t @ grad_one,
            lambda: columns_t @ grad_wide,
        ),
        "residual block, forward": (
            lambda: res_columns[0] @ res_weight[0],
            lambda: torch.bmm(res_columns, res_weight),
        ),
        "residual block, weight gradient": (
            lambda: res_columns[0].t() @ res_grad[0],
            lambda: torch.bmm(res_columns.transpose(1, 2), res_grad),
        ),
        "residual block, input gradient": (
            lambda: res_grad[0] @ res_weight[0].t(),
            lambda: torch.bmm(res_grad, res_weight.transpose(1, 2)),
        ),
    }
    results = {}
    for name, (single, grouped) in cases.items():
        one = _seconds(single, device, repeats)
        many = _seconds(grouped, device, repeats)
        results[name] = {"one_member_s": one, "k_members_s": many, "ratio": many / one}
    return results


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = measure(args.members, args.device, args.dtype, args.repeats)
    print(f"K = {args.members}, {args.device}, {args.dtype}, {torch.get_num_threads()} threads")
    for name, row in results.items():
        print(
            f"  {name:36s} one {row['one_member_s'] * 1e6:8.0f} us   K-wide "
            f"{row['k_members_s'] * 1e6:8.0f} us   {row['ratio']:5.2f}x"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"{args.device.replace(':', '')}_{args.dtype}_k{args.members}_t{torch.get_num_threads()}"
    output = {"arguments": vars(args), "threads": torch.get_num_threads(), "products": results}
    (RESULTS / f"batching_{tag}.json").write_text(json.dumps(output, indent=1))


if __name__ == "__main__":
    main()
