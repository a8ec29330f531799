"""core.run_pool: runs side by side in threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
import torch

from napari_cebra.core.run_pool import RunFinished, RunPool, train_side_by_side


@dataclass(frozen=True)
class _Record:
    step: int
    total_steps: int


def _run(total: int, result: str, threads: list[int] | None = None):
    for step in range(1, total + 1):
        if threads is not None:
            threads.append(torch.get_num_threads())
        yield _Record(step, total)
    return result


def test_pool_hands_out_the_run_with_most_steps_left():
    pool = RunPool([10, 30, 30])
    assert pool.take() == 1  # most steps left, lowest index among equals
    assert pool.take() == 2
    pool.give_back(1, 25)
    assert pool.take() == 1
    assert pool.take() == 0
    assert pool.take() is None  # every run left is held by a thread
    pool.give_back(0, 5)
    pool.give_back(2, 28)
    assert pool.take() == 2
    assert pool.take() == 0


def test_runs_of_different_lengths_are_all_relayed_with_their_results():
    torch_threads = torch.get_num_threads()
    runs = [_run(3, "a"), _run(7, "b"), _run(5, "c")]
    events = list(train_side_by_side(runs, 2, [3, 7, 5]))
    for index, total, result in ((0, 3, "a"), (1, 7, "b"), (2, 5, "c")):
        own = [event for i, event in events if i == index]
        assert [record.step for record in own[:-1]] == list(range(1, total + 1))
        assert own[-1] == RunFinished(result)
    assert torch.get_num_threads() == torch_threads


def test_each_thread_gets_its_share_of_torch_threads():
    torch_threads = torch.get_num_threads()
    seen: list[int] = []
    list(train_side_by_side([_run(4, "a", seen), _run(4, "b", seen)], 2, [4, 4]))
    assert set(seen) == {max(1, torch_threads // 2)}


def test_an_error_in_a_run_is_raised_and_stops_the_others():
    def failing():
        yield _Record(1, 3)
        raise RuntimeError("boom")

    other = _run(1000, "never")
    with pytest.raises(RuntimeError, match="boom"):
        list(train_side_by_side([failing(), other], 2, [3, 1000]))
    assert other.gi_frame is None  # closed


def test_closing_stops_the_threads_and_closes_unfinished_runs():
    closed = threading.Event()

    def endless():
        step = 0
        try:
            while True:
                step += 1
                yield _Record(step, 10**9)
        finally:
            closed.set()

    before = set(threading.enumerate())
    events = train_side_by_side([endless(), endless()], 2, [10**9, 10**9])
    for _ in range(5):
        next(events)
    events.close()
    assert closed.is_set()
    assert set(threading.enumerate()) <= before  # the workers have ended
