"""Where workflow tasks run: in this process, or as dask tasks on a cluster.

A *task function* is a generator function ``function(task, shared)``: it yields progress records
while it works and returns its result. The local executor runs it in this process and relays its
records, so a GUI can show progress and stop between records: one task after the other, or
``workers`` tasks side by side in threads (``core.run_pool``), each thread with its share of the
torch threads — for training runs that do not use several cores well, several side by side finish
sooner, and each still equals the same run trained alone with that many torch threads. The dask executor submits one dask
task per item to the cluster's workers, which run the generator to its end; results come back as
they finish (``distributed.as_completed``).

dask is optional: it is imported only when a dask client or scheduler address is given, and a
missing installation raises an ``ImportError`` telling how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from napari_cebra.core.progress import run_to_end as core_run_to_end
from napari_cebra.core.validation import check_positive_int

DASK_INSTALL_HINT = (
    "Running on a dask cluster needs dask.distributed: pip install 'napari-cebra[dask]'."
)

TaskFunction = Callable[[Any, Any], Generator[Any, None, Any]]
# Steps left of a task that has not started: more than any started run has, so the tasks start in
# order before started ones are advanced further.
_NOT_STARTED = 2**62


@dataclass(frozen=True)
class TaskProgress:
    """A progress record yielded by the task at ``index`` (local execution only)."""

    index: int
    record: Any


@dataclass(frozen=True)
class TaskDone:
    """The task at ``index`` finished with ``result``."""

    index: int
    result: Any


class Executor(Protocol):
    """Runs task functions over a list of tasks."""

    #: whether tasks run in this process (progress records are relayed, stopping is immediate)
    in_process: bool

    def run(
        self, function: TaskFunction, tasks: Sequence[Any], shared: Any = None
    ) -> Iterator[TaskProgress | TaskDone]:
        """Run ``function(task, shared)`` for every task; yield progress and results.

        Closing the returned generator stops the work that has not finished (finished results
        have been yielded already).
        """


def run_to_end(function: TaskFunction, task: Any, shared: Any) -> Any:
    """Exhaust the generator ``function(task, shared)`` and return its return value."""
    return core_run_to_end(function(task, shared))


class LocalExecutor:
    """Runs the tasks in this process: one after the other, or side by side in threads.

    Parameters
    ----------
    workers : int
        ``1`` (default): one task after the other, in the calling thread. More: that many tasks
        at a time, each in its own thread with ``torch.get_num_threads() // workers`` torch
        threads (at least one); a free thread advances, until its next record, the task with the
        most steps left (tasks not started yet first, in order). The task function's records
        must then have ``step`` and ``total_steps`` attributes, and its work must not depend on
        the thread (seeded CEBRA fits draw only from their own generators).
    """

    in_process = True

    def __init__(self, workers: int = 1) -> None:
        check_positive_int("workers", workers)
        self.workers = int(workers)

    def run(
        self, function: TaskFunction, tasks: Sequence[Any], shared: Any = None
    ) -> Iterator[TaskProgress | TaskDone]:
        if self.workers > 1 and len(tasks) > 1:
            yield from self._run_side_by_side(function, tasks, shared)
            return
        for index, task in enumerate(tasks):
            result = yield from _relay(index, function(task, shared))
            yield TaskDone(index, result)

    def _run_side_by_side(
        self, function: TaskFunction, tasks: Sequence[Any], shared: Any
    ) -> Iterator[TaskProgress | TaskDone]:
        from napari_cebra.core.run_pool import RunFinished, train_side_by_side

        runs = [function(task, shared) for task in tasks]
        not_started = [_NOT_STARTED] * len(tasks)
        for index, event in train_side_by_side(runs, self.workers, not_started):
            if isinstance(event, RunFinished):
                yield TaskDone(index, event.value)
            else:
                yield TaskProgress(index, event)

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers})" if self.workers > 1 else "LocalExecutor()"


def _relay(index: int, generator: Generator[Any, None, Any]) -> Generator[TaskProgress, None, Any]:
    """Yield the generator's records wrapped in :class:`TaskProgress`; return its value."""
    while True:
        try:
            record = next(generator)
        except StopIteration as stop:
            return stop.value
        try:
            yield TaskProgress(index, record)
        except GeneratorExit:
            generator.close()
            raise


class DaskExecutor:
    """Runs every task as a dask task on the workers of a ``distributed.Client``.

    Parameters
    ----------
    client : distributed.Client
        A connected client. ``shared`` objects are scattered to the cluster once per :meth:`run`.
    close_client : bool
        Close the client when the executor is closed (for clients the executor created itself).
    """

    in_process = False

    def __init__(self, client: Any, close_client: bool = False) -> None:
        self.client = client
        self.close_client = close_client

    def run(
        self, function: TaskFunction, tasks: Sequence[Any], shared: Any = None
    ) -> Iterator[TaskProgress | TaskDone]:
        distributed = import_distributed()
        if not tasks:
            return
        shared_future = self.client.scatter(shared, broadcast=True) if shared is not None else None
        futures = {
            self.client.submit(run_to_end, function, task, shared_future, pure=False): index
            for index, task in enumerate(tasks)
        }
        try:
            for future in distributed.as_completed(futures):
                yield TaskDone(futures[future], future.result())
        finally:
            unfinished = [future for future in futures if not future.done()]
            if unfinished:
                self.client.cancel(unfinished)

    def close(self) -> None:
        """Close the client if the executor owns it."""
        if self.close_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client!r})"


def import_distributed() -> Any:
    """Import ``dask.distributed`` or raise an ``ImportError`` with the install command."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(DASK_INSTALL_HINT) from error
    return distributed


def resolve_executor(executor: Any = None) -> LocalExecutor | DaskExecutor | Executor:
    """Turn the ``executor`` argument of the workflows into an executor.

    Parameters
    ----------
    executor : None, "local", str, distributed.Client or Executor
        ``None`` or ``"local"``: this process. Any other string: the address of a dask scheduler
        (e.g. ``"tcp://10.0.0.1:8786"``), connected to with a new client that the executor closes.
        A ``distributed.Client``: its cluster. An object with ``run`` and ``in_process``: itself.

    Returns
    -------
    Executor

    Raises
    ------
    ImportError
        If a dask client or address is given and dask.distributed is not installed.
    ValueError
        For anything else.
    """
    if executor is None or executor == "local":
        return LocalExecutor()
    if isinstance(executor, str):
        distributed = import_distributed()
        return DaskExecutor(distributed.Client(executor), close_client=True)
    if hasattr(executor, "run") and hasattr(executor, "in_process"):
        return executor
    if _is_dask_client(executor):
        return DaskExecutor(executor)
    raise ValueError(
        f"executor must be None, 'local', a dask scheduler address, a dask.distributed.Client or "
        f"an Executor, got {executor!r}."
    )


def _is_dask_client(value: Any) -> bool:
    module = type(value).__module__ or ""
    if not module.startswith("distributed"):
        return False
    return isinstance(value, import_distributed().Client)


def close_executor(executor: Any) -> None:
    """Close an executor created by :func:`resolve_executor` (no-op for the others)."""
    close = getattr(executor, "close", None)
    if callable(close):
        close()
