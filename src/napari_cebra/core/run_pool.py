"""Training runs side by side in threads, each thread with its share of the torch threads.

A single CEBRA run does not use several CPU cores well (its matrix products are small), so P runs
side by side, each with ``1 / P`` of the torch threads, finish sooner than P runs in a row that
each use every core. :func:`train_side_by_side` takes *runs* — generators yielding progress
records with ``step`` and ``total_steps`` (a ``TrainingSession.run``, ``CEBRA.iter_fit``, or a
workflow task that trains and then saves) — and advances them in ``workers`` threads: a free thread
advances, until its next record, the waiting run with the most steps left (the lowest index among
equals), so runs of equal length stay level and K runs on P threads take about K / P runs' time,
not ⌈K / P⌉. Records are handed to the calling thread.

Every thread runs with the same number of torch threads, so a run's steps do not depend on which
thread runs them: a seeded fit draws only from its own generators (model start, sampler, dropout),
so each run equals the same run trained alone with that many torch threads, bit for bit.

This module imports torch at import time; it is imported only when models are trained.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from napari_cebra.core.validation import check_positive_int


@dataclass(frozen=True)
class RunFinished:
    """The run ended; ``value`` is what its generator returned."""

    value: Any


class RunPool:
    """Runs shared by worker threads: each run is advanced by one thread at a time, and a free
    thread takes the waiting run with the most steps left (the lowest index among equals).

    Parameters
    ----------
    steps_left : sequence of int
        Steps each run has left at the start.
    """

    def __init__(self, steps_left: Sequence[int]) -> None:
        self._waiting = dict(enumerate(int(steps) for steps in steps_left))
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """The index of the run to advance next; ``None`` when every run left is held by another
        thread or has ended (a run is advanced by one thread at a time)."""
        with self._lock:
            if not self._waiting:
                return None
            index = max(self._waiting, key=lambda i: (self._waiting[i], -i))
            del self._waiting[index]
            return index

    def give_back(self, index: int, steps_left: int) -> None:
        """Return a run that has ``steps_left`` steps left after advancing it."""
        with self._lock:
            self._waiting[index] = steps_left


_DONE = object()


def threads_per_worker(workers: int) -> int:
    """Torch threads each of ``workers`` side-by-side runs gets: an equal share, at least one."""
    return max(1, torch.get_num_threads() // workers)


def train_side_by_side(
    runs: Sequence[Generator[Any, None, Any]],
    workers: int,
    steps_left: Sequence[int],
) -> Iterator[tuple[int, Any]]:
    """Advance ``runs`` in ``workers`` threads; yield ``(index, record)`` in the calling thread.

    Each thread runs with :func:`threads_per_worker` torch threads. When run ``index`` ends,
    ``(index, RunFinished(value))`` is yielded with its generator's return value. An exception in a
    run stops every thread and is raised here. Closing this generator stops every thread after
    its current record and then closes the runs that have not ended (they keep their steps).

    Parameters
    ----------
    runs : sequence of generator
        Generators yielding records with ``step`` and ``total_steps`` attributes (steps of the
        run done and planned).
    workers : int
        Threads (at most ``len(runs)`` are started).
    steps_left : sequence of int
        Steps each run has left at the start (the first to start are those with most).

    Yields
    ------
    tuple of (int, record or RunFinished)
    """
    check_positive_int("workers", workers)
    if len(steps_left) != len(runs):
        raise ValueError(f"steps_left has {len(steps_left)} entries for {len(runs)} runs.")
    workers = min(workers, len(runs))
    if workers == 0:
        return
    total_threads = torch.get_num_threads()
    threads_each = threads_per_worker(workers)
    pool = RunPool(steps_left)
    events: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    ended: set[int] = set()

    def work() -> None:
        error = None
        try:
            torch.set_num_threads(threads_each)
            while not stop.is_set():
                index = pool.take()
                if index is None:
                    break
                try:
                    record = next(runs[index])
                except StopIteration as finished:  # the run stays out of the pool
                    ended.add(index)
                    events.put((index, RunFinished(finished.value)))
                    continue
                events.put((index, record))
                pool.give_back(index, record.total_steps - record.step)
        except BaseException as caught:  # handed to the calling thread, which raises it
            error = caught
        finally:
            events.put((_DONE, error))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    running = len(threads)
    try:
        for thread in threads:
            thread.start()
        while running:
            index, event = events.get()
            if index is _DONE:
                running -= 1
                if event is not None:
                    raise event
                continue
            yield index, event
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        torch.set_num_threads(total_threads)
        for index, run in enumerate(runs):
            if index not in ended:
                run.close()  # a stopped run keeps its steps
