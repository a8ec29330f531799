"""Command line: ``python -m napari_cebra {report,demo,download}`` (also ``napari-cebra``).

* ``report NEURAL [--labels BEHAVIOUR] --out DIR [--iterations N]`` runs the best-practice recipe
  and writes ``DIR/report.html`` and ``DIR/results.json``. NEURAL may be a CaImAn results file
  (its ``C`` traces, or ``F_dff`` with ``--key F_dff``). ``report --nwb FILE --neural SERIES
  [--behaviour SERIES ...] [--bin-size S]`` reads both from an NWB file and aligns the behaviour
  to the neural frames by their timestamps (frames without behaviour are left out).
* ``demo`` opens napari with the sample data and the Train CEBRA widget; without a display it runs
  a short report on the synthetic place-cell recording into ``./napari-cebra-demo/``.
* ``download {achilles,buddy,cicero,gatsby} --dest DIR`` fetches a public rat-hippocampus recording.

Progress goes to stderr. Bad input exits with status 2 and a one-line reason before anything is
written or trained; that includes an output folder that cannot be written to (checked by creating
and removing a probe file in it; a missing folder is created only if its parent exists). Ctrl-C
exits with status 130, SIGTERM with status 143; both leave no partial files and no temporary
grid-search folder. When writing the report fails at the end anyway (e.g. a full disk), the report
and results are written to a new ``napari-cebra-report-*`` folder in the temporary folder (or, if
that fails too, in the home folder), a one-line error names it and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROG = "napari-cebra"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
DEMO_DIR = "napari-cebra-demo"
DEMO_ITERATIONS = 500
DEMO_RUNS = 3


class InputError(Exception):
    """Bad command-line input; the message is printed as the one-line reason."""

    exit_code = EXIT_BAD_INPUT


class CommandFailed(InputError):
    """A command that could not complete (e.g. a failed download)."""

    exit_code = EXIT_FAILED


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that clean-up runs as for Ctrl-C."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs (main thread only).

    Later SIGTERMs are ignored while the clean-up runs; the previous handler is restored after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output_folder(out: str) -> None:
    """Exit with status 2 before any work when the report cannot be written into ``out``."""
    from napari_cebra.workflows.report import check_writable_folder

    try:
        check_writable_folder(out)
    except ValueError as error:
        raise InputError(str(error)) from error


def _load_neural(path: str, key: str | None, transpose: bool) -> np.ndarray:
    from napari_cebra.io.caiman import is_caiman_file, read_caiman
    from napari_cebra.io.matrices import load_matrix

    try:
        if is_caiman_file(path):
            return _caiman_traces(read_caiman(path), key)
        return load_matrix(path, key=key, transpose=transpose)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(f"neural data: {error}") from error


def _caiman_traces(results: Any, key: str | None) -> np.ndarray:
    """``C`` (default) or ``F_dff`` of CaImAn results, time × components."""
    if key in (None, "C"):
        return results.traces
    if key == "F_dff" and results.dff is not None:
        return results.dff
    raise InputError(
        f"neural data: {results.path.name!r} is a CaImAn results file; --key must be C or F_dff "
        f"(when the file holds it), got {key!r}."
    )


def _load_nwb(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """Neural series and behaviour aligned to its frames, from one NWB file."""
    from napari_cebra.io.nwb import read_nwb

    behaviours = list(args.nwb_behaviour or [])
    try:
        data = read_nwb(args.nwb, [args.nwb_neural, *behaviours], bin_size_s=args.bin_size)
        neural = data[args.nwb_neural]
        behaviour = [data[name] for name in behaviours]
    except (FileNotFoundError, ValueError) as error:
        raise InputError(f"NWB file: {error}") from error
    if neural.kind not in ("traces", "units"):
        raise InputError(
            f"--neural {args.nwb_neural!r} is a {neural.kind} series of {args.nwb!r}; choose "
            "ROI traces or units."
        )
    if not behaviour:
        return neural.data, None
    frames, labels = _aligned_behaviour(neural, behaviour)
    if len(frames) < len(neural.data):
        print(
            f"{len(neural.data) - len(frames)} of {len(neural.data)} neural frames have no "
            "behaviour and are left out.",
            file=sys.stderr,
        )
    return neural.data[frames], labels


def _aligned_behaviour(neural: Any, behaviour: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Neural frames where every behaviour series is known, and the behaviour there (float32)."""
    from napari_cebra.io.alignment import align_behaviour
    from napari_cebra.io.nwb import NwbTrials

    all_frames = np.arange(len(neural.data))
    parts = []
    for series in behaviour:
        if isinstance(series, NwbTrials):
            parts.append((all_frames, series.labels_at(neural.timestamps)))
            continue
        if series.kind != "behaviour":
            raise InputError(
                f"--behaviour {series.name!r} is a {series.kind} series; choose behaviour or trials."
            )
        kinds = [
            "circular"
            if column in series.circular_columns
            else "discrete"
            if column in series.discrete_columns
            else "continuous"
            for column in series.columns
        ]
        try:
            aligned = align_behaviour(neural.timestamps, series.data, series.timestamps, kinds)
        except ValueError as error:
            raise InputError(f"behaviour {series.name!r}: {error}") from error
        parts.append((aligned.frames, aligned.values))
    kept = all_frames
    for frames, _ in parts:
        kept = np.intersect1d(kept, frames)
    if kept.size == 0:
        raise InputError("no neural frame has every behaviour series chosen with --behaviour.")
    columns = [values[np.searchsorted(frames, kept)] for frames, values in parts]
    return kept, np.hstack(columns).astype(np.float32)


def _load_labels(path: str, key: str | None) -> np.ndarray:
    """Behaviour labels: a 1-D vector (.npy) or a time × columns matrix (any matrix format)."""
    from napari_cebra.io.matrices import load_matrix

    file = Path(path)
    try:
        if file.suffix.lower() == ".npy" and file.is_file():
            vector = np.load(file, allow_pickle=False)
            if vector.ndim == 1 and np.issubdtype(vector.dtype, np.number):
                return vector.astype(np.float32)
        return load_matrix(path, key=key)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(f"labels: {error}") from error


def _check_finite(array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first_row = int(np.argwhere(bad)[0][0])
        raise InputError(f"{name} has {int(bad.sum())} NaN/inf values (first in row {first_row}).")


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and check the report's input files; raise :class:`InputError` with the reason."""
    _check_input_options(args)
    if args.nwb is not None:
        neural, labels = _load_nwb(args)
        args.neural = f"{args.nwb}:{args.nwb_neural}"  # names the input in the messages below
        _check_finite(neural, f"neural data {args.neural!r}")
    else:
        neural = _load_neural(args.neural, args.key, args.transpose)
        _check_finite(neural, f"neural data {args.neural!r}")
        labels = None
    if args.labels is not None:
        labels = _load_labels(args.labels, args.labels_key)
        _check_finite(labels, f"labels {args.labels!r}")
        if len(labels) != len(neural):
            raise InputError(
                f"labels {args.labels!r} have {len(labels)} rows but neural data "
                f"{args.neural!r} has {len(neural)} (shapes {labels.shape} and {neural.shape})."
            )
    minimum = 2 * args.min_frames
    if len(neural) < minimum:
        raise InputError(
            f"neural data {args.neural!r} has {len(neural)} time points (shape {neural.shape}); "
            f"the recipe needs at least {minimum}. Is the matrix neurons × time? Use --transpose."
        )
    return neural, labels


def _check_input_options(args: argparse.Namespace) -> None:
    """One neural input: a matrix file, or ``--nwb`` with ``--neural`` (and its own behaviour)."""
    if (args.neural is None) == (args.nwb is None):
        raise InputError("give either a NEURAL matrix file or --nwb FILE --neural SERIES.")
    if args.nwb is None:
        if args.nwb_neural or args.nwb_behaviour:
            raise InputError("--neural and --behaviour name series of an --nwb file.")
        return
    if args.nwb_neural is None:
        raise InputError(f"--nwb needs --neural SERIES; {_nwb_choices(args.nwb)}")
    if args.labels is not None or args.key is not None or args.transpose:
        raise InputError(
            "--labels, --key and --transpose apply to matrix files; with --nwb choose the "
            "behaviour with --behaviour SERIES."
        )


def _nwb_choices(path: str) -> str:
    """The series of an NWB file a report can use, as one line (or why it cannot be read)."""
    from napari_cebra.io.nwb import list_nwb_series

    try:
        series = list_nwb_series(path)
    except (FileNotFoundError, ValueError) as error:
        return str(error)
    neural = [s.name for s in series if s.kind in ("traces", "units")]
    behaviour = [s.name for s in series if s.kind in ("behaviour", "trials")]
    return f"{path!r} holds neural series {neural} and behaviour series {behaviour}."


class ConsoleProgress:
    """Print recipe progress to stderr: every stage change, otherwise at most every ``interval`` s."""

    def __init__(self, stream: Any = sys.stderr, interval: float = 2.0):
        self.stream = stream
        self.interval = interval
        self._stage: str | None = None
        self._last = 0.0

    def __call__(self, record: Any) -> None:
        now = time.monotonic()
        if record.stage != self._stage or now - self._last >= self.interval:
            self._stage, self._last = record.stage, now
            print(f"{record.elapsed:7.1f}s {record.message}", file=self.stream, flush=True)


def _summary_lines(results: dict[str, Any]) -> list[str]:
    lines = [f"Overall verdict: {results['verdict'].upper()}"]
    time_model = results["time_model"]
    lines.append(
        f"CEBRA-Time GoF: train {time_model['gof_train']:.2f} bits, "
        f"validation {time_model['gof_valid']:.2f} bits"
    )
    behaviour = results.get("behaviour_model", {})
    if behaviour.get("status") == "done":
        lines.append(
            f"CEBRA-Behavior GoF: train {behaviour['gof_train']:.2f} bits, "
            f"validation {behaviour['gof_valid']:.2f} bits"
        )
    lines += [f"  {check['verdict']:>4}  {check['title']}" for check in results["checks"]]
    return lines


def run_report(
    neural: np.ndarray,
    labels: np.ndarray | None,
    out: str,
    iterations: int,
    runs: int,
    seed: int,
    model_params: dict[str, Any] | None = None,
    gof_batches: int = 100,
) -> dict[str, Any]:
    """Run the recipe with console progress and write the report; return the results.

    Raises
    ------
    CommandFailed
        The report could not be written into ``out``; it was written elsewhere (see
        :func:`write_report_or_keep`).
    """
    from napari_cebra.workflows.recipe import run_recipe

    with terminate_as_interrupt():
        results = run_recipe(
            neural,
            labels,
            iterations=iterations,
            n_runs=runs,
            seed=seed,
            model_params=model_params,
            gof_batches=gof_batches,
            progress=ConsoleProgress(),
        )
        for line in _summary_lines(results):
            print(line, flush=True)
        report_path, results_path = write_report_or_keep(results, out)
    print(f"Report: {report_path}\nResults: {results_path}")
    return results


def write_report_or_keep(results: dict[str, Any], out: str) -> tuple[Path, Path]:
    """Write the report into ``out``, or keep it elsewhere and fail with a line that says where.

    Raises
    ------
    CommandFailed
        Writing into ``out`` failed; the message names the folder the files were written to
        instead, or says that no folder could take them.
    """
    from napari_cebra.workflows import report

    try:
        return report.write_report_or_keep(results, out)
    except OSError as error:
        raise CommandFailed(str(error)) from error


def _command_report(args: argparse.Namespace) -> int:
    check_output_folder(args.out)
    neural, labels = load_inputs(args)
    overrides: dict[str, Any] = {"precision": args.precision}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    run_report(
        neural,
        labels,
        args.out,
        args.iterations,
        args.runs,
        args.seed,
        overrides,
        args.gof_batches,
    )
    return 0


def _qt_can_start(timeout: float = 30.0) -> bool:
    """Whether a Qt application can open a window here (probed in a child process, because Qt
    aborts the whole process when it cannot reach a display)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    probe = "from qtpy.QtWidgets import QApplication; QApplication([])"
    try:
        completed = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _command_demo(args: argparse.Namespace) -> int:
    if not args.headless and _qt_can_start():
        from napari_cebra._widgets.demo import launch_demo

        launch_demo()
        return 0
    from napari_cebra.io.synthetic import place_cell_recording

    check_output_folder(args.out)
    recording = place_cell_recording(seed=args.seed)
    print(
        f"Headless demo: best-practice report on the synthetic place-cell recording "
        f"{recording.neural.shape} into {args.out}/",
        file=sys.stderr,
    )
    run_report(
        recording.neural, recording.behaviour, args.out, args.iterations, args.runs, args.seed
    )
    return 0


def _command_download(args: argparse.Namespace) -> int:
    from napari_cebra.io.datasets import download_rat_hippocampus

    def show(done: int, total: int | None) -> None:
        size = f"/{total / 1e6:.1f}" if total else ""
        print(f"\r{done / 1e6:.1f}{size} MB", end="", file=sys.stderr, flush=True)

    try:
        path = download_rat_hippocampus(args.dataset, args.dest, progress=show)
    except (ConnectionError, ValueError, OSError) as error:
        print(file=sys.stderr)
        raise CommandFailed(f"download failed: {error}") from error
    print(file=sys.stderr)
    print(path)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def _add_threads_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--threads",
        type=_positive_int,
        help="torch CPU threads (default: one per core); 1 is steadier on a machine busy with "
        "other jobs, where threads that wait for each other slow training down many times",
    )


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-cebra`` argument parser."""
    from napari_cebra.io.nwb import DEFAULT_BIN_SIZE_S

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="run the best-practice recipe, write a report")
    report.add_argument(
        "neural",
        nargs="?",
        help="time × neurons matrix (.npy, .npz, .csv, .h5) or CaImAn results (.hdf5)",
    )
    report.add_argument("--labels", help="behaviour labels, one row per time point")
    report.add_argument(
        "--out", required=True, help="output folder (created if missing; its parent must exist)"
    )
    report.add_argument("--iterations", type=_positive_int, default=5000)
    report.add_argument("--runs", type=_positive_int, default=5, help="consistency runs (≥ 2)")
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--batch-size", type=_positive_int, help="replace the recipe's batch size (512)"
    )
    report.add_argument(
        "--gof-batches", type=_positive_int, default=100, help="batches per goodness-of-fit score"
    )
    report.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="arithmetic of training (auto: bfloat16 where the CPU (AVX512-BF16/AMX) or GPU "
        "runs it natively, else float32)",
    )
    report.add_argument("--key", help="array name in an .npz/.h5 neural file")
    report.add_argument("--labels-key", help="array name in an .npz/.h5 labels file")
    report.add_argument(
        "--transpose", action="store_true", help="the neural file is stored neurons × time"
    )
    report.add_argument("--nwb", help="NWB file holding the neural data (and behaviour)")
    report.add_argument(
        "--neural",
        dest="nwb_neural",
        metavar="SERIES",
        help="with --nwb: ROI traces or 'units' (path in the file or a unique ending of it)",
    )
    report.add_argument(
        "--behaviour",
        dest="nwb_behaviour",
        metavar="SERIES",
        action="append",
        help="with --nwb: behaviour series or 'trials', aligned by time (repeat for several)",
    )
    report.add_argument(
        "--bin-size",
        type=_positive_float,
        default=DEFAULT_BIN_SIZE_S,
        help=f"with --nwb: spike-count bin of 'units' in seconds (default {DEFAULT_BIN_SIZE_S})",
    )
    _add_threads_option(report)
    report.set_defaults(handler=_command_report, min_frames=100)

    demo = commands.add_parser("demo", help="open the napari demo (or a headless report)")
    demo.add_argument("--headless", action="store_true", help="run the report even with a display")
    demo.add_argument("--out", default=DEMO_DIR)
    demo.add_argument("--iterations", type=_positive_int, default=DEMO_ITERATIONS)
    demo.add_argument("--runs", type=_positive_int, default=DEMO_RUNS)
    demo.add_argument("--seed", type=int, default=0)
    _add_threads_option(demo)
    demo.set_defaults(handler=_command_demo)

    download = commands.add_parser("download", help="download a public dataset")
    download.add_argument("dataset", choices=["achilles", "buddy", "cicero", "gatsby"])
    download.add_argument("--dest", required=True, help="folder for the dataset")
    download.set_defaults(handler=_command_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m napari_cebra`` and the ``napari-cebra`` console script."""
    args = build_parser().parse_args(argv)
    try:
        _set_threads(getattr(args, "threads", None))
        return args.handler(args)
    except InputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except ValueError as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"{PROG}: error: {first_line}", file=sys.stderr)
        return EXIT_FAILED
    except Terminated:
        print(f"\n{PROG}: terminated; no report was written.", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; no report was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
