"""ROI trace extraction from large movies on disk: frames/s, GB/s and peak memory (issue 17).

Writes a ``T × 512 × 512`` uint16 movie (default T = 20,000: 10.5 GB) as each of

- ``npy``: an ``.npy`` file, read by :func:`napari_cebra.io.movies.open_movie` (plain file reads)
  and, for comparison, as ``np.load(mmap_mode="r")`` (``npy-memmap``);
- ``tiff``: a multi-page BigTIFF, uncompressed and contiguous (tifffile);
- ``h5``: a chunked (32 × 512 × 512), uncompressed HDF5 dataset,

one format at a time (the file is deleted before the next one is written), and extracts the traces
of about 300 disc-shaped ROIs in a fresh subprocess per measurement:

- ``warm``: the file is in the page cache (it was just written or read);
- ``cold``: the file's pages were evicted first (``posix_fadvise(POSIX_FADV_DONTNEED)``, checked
  with ``fincore`` when that is installed);
- ``capped``: cold, in a process whose address space is capped (``RLIMIT_AS``, default 2 GiB)
  far below the movie: the "larger than free memory" case.

Peak RSS is the child's ``ru_maxrss``; "growth" subtracts the RSS after the imports, before the
extraction. Check ``df -h`` first: the movie needs its size free in ``--folder``.

::

    python benchmarks/bench_traces.py                       # 20,000 frames, all formats
    python benchmarks/bench_traces.py --frames 2000 --formats npy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 512
WRITE_BLOCK = 64  # frames generated and written at once
H5_CHUNK_FRAMES = 32
FORMATS = ("npy", "tiff", "h5")


def synthetic_rois(size: int = SIZE, n_rois: int = 300, radius: int = 6) -> np.ndarray:
    """``(size, size)`` int32 label image of ``n_rois`` discs (later discs overwrite earlier)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]
    rois = np.zeros((size, size), dtype=np.int32)
    for label in range(1, n_rois + 1):
        cy, cx = rng.integers(radius + 1, size - radius - 1, size=2)
        rois[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = label
    return rois


def movie_blocks(n_frames: int, size: int = SIZE):
    """Blocks of at most :data:`WRITE_BLOCK` uint16 frames: noise that changes with the block."""
    base = np.random.default_rng(0).integers(
        0, 3000, size=(WRITE_BLOCK, size, size), dtype=np.uint16
    )
    for start in range(0, n_frames, WRITE_BLOCK):
        n = min(WRITE_BLOCK, n_frames - start)
        yield base[:n] + np.uint16(start // WRITE_BLOCK % 1000)


def write_movie(kind: str, path: Path, n_frames: int) -> None:
    """Write the synthetic movie as ``kind`` (``npy``, ``tiff`` or ``h5``) to ``path``."""
    shape = (n_frames, SIZE, SIZE)
    if kind == "npy":
        with open(path, "wb") as handle:
            header = {"descr": "<u2", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_2_0(handle, header)
            for block in movie_blocks(n_frames):
                handle.write(block.tobytes())
    elif kind == "tiff":
        import tifffile

        frames = (frame for block in movie_blocks(n_frames) for frame in block)
        tifffile.imwrite(path, frames, shape=shape, dtype=np.uint16, bigtiff=True)
    elif kind == "h5":
        import h5py

        with h5py.File(path, "w") as handle:
            data = handle.create_dataset(
                "movie", shape=shape, dtype=np.uint16, chunks=(H5_CHUNK_FRAMES, SIZE, SIZE)
            )
            for i, block in enumerate(movie_blocks(n_frames)):
                data[i * WRITE_BLOCK : i * WRITE_BLOCK + len(block)] = block
    else:
        raise ValueError(f"unknown format {kind!r}; expected one of {FORMATS}.")
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def evict(path: Path) -> str:
    """Drop ``path``'s pages from the page cache; what ``fincore`` then reports."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if shutil.which("fincore") is None:
        return "fincore not installed"
    result = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"{result.stdout.strip() or result.stderr.strip()} bytes cached after eviction"


def measure(path: Path, reader: str, address_space_gib: float | None, chunk_mib: int) -> dict:
    """Run :func:`child` in a fresh interpreter; its JSON result."""
    command = [sys.executable, __file__, "--child", str(path), reader, str(chunk_mib)]
    if address_space_gib is not None:
        command.append(str(address_space_gib))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(path: str, reader: str, chunk_mib: str, address_space_gib: str | None = None) -> None:
    """Extract the traces of ``path`` once and print a JSON record (run in a subprocess)."""
    if address_space_gib is not None:
        limit = int(float(address_space_gib) * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from napari_cebra.io.movies import open_movie
    from napari_cebra.io.traces import DEFAULT_CHUNK_BYTES, extract_traces, frames_per_chunk

    rois = synthetic_rois()
    opened = time.perf_counter()
    movie = np.load(path, mmap_mode="r") if reader == "memmap" else open_movie(path)
    open_seconds = time.perf_counter() - opened
    chunk_bytes = int(chunk_mib) << 20 if int(chunk_mib) else DEFAULT_CHUNK_BYTES
    chunk_frames = frames_per_chunk(movie, chunk_bytes)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    cpu_start = time.process_time()
    traces = extract_traces(movie, rois, chunk_frames=chunk_frames)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_frames = movie.shape[0]
    record = {
        "frames_per_s": n_frames / seconds,
        "gb_per_s": n_frames * SIZE * SIZE * 2 / seconds / 1e9,
        "seconds": seconds,
        "open_seconds": open_seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak,
        "rss_growth_mb": peak - rss_before,
        "chunk_frames": chunk_frames,
        "checksum": float(traces[:, :5].sum(dtype=np.float64)),
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--folder", default=tempfile.gettempdir())
    parser.add_argument("--cap-gib", type=float, default=2.0, help="RLIMIT_AS of the capped run")
    parser.add_argument(
        "--chunk-mib", type=int, default=0, help="chunk size (0: DEFAULT_CHUNK_BYTES)"
    )
    parser.add_argument("--out", default=None, help="also write the records to this JSON file")
    args = parser.parse_args()

    folder = Path(args.folder) / "napari_cebra_bench_traces"
    folder.mkdir(exist_ok=True)
    suffix = {"npy": ".npy", "tiff": ".tif", "h5": ".h5"}
    movie_gb = args.frames * SIZE * SIZE * 2 / 1e9
    records = []
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f}; movie {args.frames} × {SIZE} × {SIZE} uint16 = "
        f"{movie_gb:.1f} GB"
    )
    print(
        f"{'format':<12}{'cache':<8}{'frames/s':>10}{'GB/s':>7}{'s':>8}{'CPU s':>8}"
        f"{'peak RSS MB':>13}{'growth MB':>11}"
    )
    for kind in args.formats.split(","):
        path = folder / f"movie{suffix[kind]}"
        start = time.perf_counter()
        write_movie(kind, path, args.frames)
        written = time.perf_counter() - start
        print(f"# wrote {path.name} ({path.stat().st_size / 1e9:.2f} GB) in {written:.0f} s")
        readers = ["lazy", "memmap"] if kind == "npy" else ["lazy"]
        try:
            for reader in readers:
                label = kind if reader == "lazy" else "npy-memmap"
                runs = [("warm", None, False), ("cold", None, True)]
                if reader == "lazy":
                    runs.append(("capped", args.cap_gib, True))
                for cache, cap, cold in runs:
                    note = evict(path) if cold else ""
                    record = measure(path, reader, cap, args.chunk_mib)
                    record.update(format=label, cache=cache, cap_gib=cap, eviction=note)
                    records.append(record)
                    if "error" in record:
                        print(f"{label:<12}{cache:<8} failed: {record['error']}")
                        continue
                    print(
                        f"{label:<12}{cache:<8}{record['frames_per_s']:>10,.0f}"
                        f"{record['gb_per_s']:>7.2f}{record['seconds']:>8.1f}"
                        f"{record['cpu_seconds']:>8.1f}{record['peak_rss_mb']:>13,.0f}"
                        f"{record['rss_growth_mb']:>11,.0f}"
                    )
                    if note:
                        print(f"#   {note}")
        finally:
            path.unlink()
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
