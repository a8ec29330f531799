"""``python -m napari_cebra``: bad input exits non-zero and writes nothing; a tiny report works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_cebra.__main__ import build_parser, main


def _run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    environment.pop("DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "napari_cebra", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


@pytest.fixture(scope="module")
def recording_files(tmp_path_factory):
    from napari_cebra.io.synthetic import place_cell_recording

    folder = tmp_path_factory.mktemp("inputs")
    recording = place_cell_recording(n_frames=1200, n_neurons=16, seed=4)
    np.save(folder / "neural.npy", recording.neural)
    np.savetxt(folder / "behaviour.csv", recording.behaviour, delimiter=",")
    np.save(folder / "short_labels.npy", recording.position[:-5])
    np.save(folder / "position.npy", recording.position)
    np.save(folder / "cube.npy", np.zeros((4, 5, 6), dtype=np.float32))
    np.save(folder / "few_frames.npy", np.zeros((50, 16), dtype=np.float32))
    return folder


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["missing.npy"], "No such matrix file"),
        (["cube.npy"], "must be 2-D"),
        (["neural.npy", "--labels", "short_labels.npy"], "have 1195 rows but neural data"),
        (["few_frames.npy"], "has 50 time points"),
    ],
)
def test_bad_input_exits_with_one_line_and_writes_nothing(recording_files, args, reason):
    out = recording_files / "out"
    completed = _run("report", *args, "--out", str(out), cwd=recording_files)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("napari-cebra: error:")
    assert reason in lines[0]
    assert not out.exists()


def test_usage_errors_exit_non_zero(recording_files, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["report", "neural.npy"])  # --out missing
    assert raised.value.code == 2
    with pytest.raises(SystemExit):
        main(["report", "neural.npy", "--out", "x", "--iterations", "0"])
    assert "positive integer" in capsys.readouterr().err


def test_parser_defaults():
    args = build_parser().parse_args(["report", "a.npy", "--out", "d"])
    assert (args.iterations, args.runs, args.labels) == (5000, 5, None)
    demo = build_parser().parse_args(["demo"])
    assert demo.out == "napari-cebra-demo"


def test_report_end_to_end(recording_files):
    out = recording_files / "report"
    completed = _run(
        "report",
        "neural.npy",
        "--labels",
        "behaviour.csv",
        "--out",
        str(out),
        "--iterations",
        "3",
        "--runs",
        "2",
        "--batch-size",
        "128",
        "--gof-batches",
        "5",
        cwd=recording_files,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads((out / "results.json").read_text())
    for section in ("time_model", "consistency", "grid_search", "behaviour_model", "controls"):
        assert section in results
    assert results["input"]["labels_shape"] == [1200, 3]
    assert "Overall verdict" in completed.stdout
    assert "[1/6] CEBRA-Time" in completed.stderr
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json"]


def test_report_with_1d_labels_and_no_labels(recording_files, monkeypatch, tmp_path):
    """In-process runs (faster): 1-D .npy labels are accepted."""
    recorded = {}

    def fake_run_report(neural, labels, out, iterations, runs, seed, *options):
        recorded.update(neural=neural, labels=labels, out=out)
        return {}

    monkeypatch.setattr("napari_cebra.__main__.run_report", fake_run_report)
    monkeypatch.chdir(recording_files)
    assert main(["report", "neural.npy", "--labels", "position.npy", "--out", "o"]) == 0
    assert recorded["labels"].shape == (1200,)
    assert recorded["neural"].shape == (1200, 16)
    assert main(["report", "neural.npy", "--out", "o"]) == 0
    assert recorded["labels"] is None


def test_threads_and_precision_options(recording_files, monkeypatch):
    recorded = {}

    def fake_run_report(neural, labels, out, iterations, runs, seed, overrides, *options):
        recorded.update(overrides=overrides, threads=torch.get_num_threads())
        return {}

    monkeypatch.setattr("napari_cebra.__main__.run_report", fake_run_report)
    monkeypatch.chdir(recording_files)
    before = torch.get_num_threads()
    try:
        argv = ["report", "neural.npy", "--out", "o", "--threads", "2", "--precision", "bfloat16"]
        assert main([*argv, "--batch-size", "64"]) == 0
        assert recorded == {"overrides": {"precision": "bfloat16", "batch_size": 64}, "threads": 2}
        assert main(["report", "neural.npy", "--out", "o"]) == 0
        assert recorded["overrides"] == {"precision": "auto"}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["report", "neural.npy", "--out", "o", "--threads", "0"])
    with pytest.raises(SystemExit):
        main(["report", "neural.npy", "--out", "o", "--precision", "float16"])


def test_non_finite_input_rejected(recording_files, tmp_path, capsys):
    neural = np.load(recording_files / "neural.npy")
    neural[3, 2] = np.inf
    np.save(tmp_path / "bad.npy", neural)
    code = main(["report", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "1 NaN/inf values (first in row 3)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_interrupt_leaves_no_files(monkeypatch, recording_files, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_cebra.workflows.recipe.run_recipe", interrupted)
    out = tmp_path / "o"
    code = main(["report", str(recording_files / "neural.npy"), "--out", str(out)])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()


def test_headless_demo_writes_report(monkeypatch, tmp_path):
    calls = {}

    def fake_run_report(neural, labels, out, iterations, runs, seed, *options):
        calls.update(shape=neural.shape, labels=labels.shape, out=out)
        return {}

    monkeypatch.setattr("napari_cebra.__main__.run_report", fake_run_report)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert calls == {"shape": (10178, 120), "labels": (10178, 3), "out": str(tmp_path / "demo")}


def test_download_failure_exits_non_zero(monkeypatch, tmp_path, capsys):
    def unreachable(rat, dest, progress=None):
        raise ConnectionError(f"cannot reach the server for {rat}")

    monkeypatch.setattr("napari_cebra.io.datasets.download_rat_hippocampus", unreachable)
    assert main(["download", "achilles", "--dest", str(tmp_path)]) == 1
    assert "download failed: cannot reach the server for achilles" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_training_exits_130_without_files(recording_files):
    import signal

    out = recording_files / "interrupted"
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "napari_cebra", "report", "neural.npy", "--out", str(out)]
    process = subprocess.Popen(
        command,
        cwd=recording_files,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        # a shell without job control starts background jobs with SIGINT ignored; Python then
        # installs no KeyboardInterrupt handler, so give the child the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stderr:
            if "[1/3] CEBRA-Time" in line:
                break
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()  # never leave a 5,000-iteration report running if the test fails
    assert "interrupted; no report was written" in process.stderr.read()
    assert not out.exists()
