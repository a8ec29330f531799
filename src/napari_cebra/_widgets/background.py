"""Run a generator off the GUI thread for a widget: progress, Stop, disabled controls, safe slots.

:class:`BackgroundRunner` is the one place where the analysis widgets (goodness of fit, shuffle
controls, report, consistency, sweeps) start work. It wraps a generator in napari's
``thread_worker``, shows a bar in napari's activity dock, disables the widget's controls and
enables its Stop button while running, hands every yielded record and the returned result to
callbacks **in the main thread**, turns exceptions into napari error notifications, and drops all
callbacks once the widget is closed (the run is then stopped).

Stop: the worker checks between two records whether Stop was pressed, so the generator must yield
often (a few times per second). Either the runner closes the generator at its next yield
(``run(steps)``), or, when the caller passes its own ``stop`` event to the generator as well, the
generator sees the event, ends itself and may return a partial result
(``run(steps, stop=event)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget

Measure = Callable[[Any], "tuple[int, int] | None"]


def qt_alive(widget: Any) -> bool:
    """False once the C++ side of a Qt widget has been deleted (e.g. its dock was closed)."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True


def step_progress(record: Any) -> tuple[int, int] | None:
    """``(done, total)`` read from a record's ``step`` and ``total_steps``, or ``None``.

    Every progress record of the engine (``TrainingProgress``) and of the workflows
    (``ControlProgress``, ``RecipeProgress``, …) carries these two fields.
    """
    step = getattr(record, "step", None)
    total = getattr(record, "total_steps", None)
    if step is None or total is None:
        return None
    return int(step), int(total)


class _Stopped:
    """Returned by the worker when Stop closed the generator (no result to deliver)."""


STOPPED = _Stopped()


def pump(
    steps: Generator[Any, None, Any], stop: threading.Event, close_on_stop: bool
) -> Generator[Any, None, Any]:
    """Yield the records of ``steps`` and return its result; end early when ``stop`` is set.

    With ``close_on_stop`` the generator is closed at the first yield after ``stop`` is set and
    :data:`STOPPED` is returned; otherwise ``steps`` is expected to watch ``stop`` itself and its
    return value (possibly a partial result) is returned.
    """
    while True:
        try:
            record = next(steps)
        except StopIteration as finished:
            return finished.value
        yield record
        if close_on_stop and stop.is_set():
            steps.close()
            return STOPPED


def _set_enabled(control: Any, enabled: bool) -> None:
    """Enable a Qt widget or a magicgui widget (both are accepted as controls)."""
    if hasattr(control, "setEnabled"):
        if qt_alive(control):
            control.setEnabled(enabled)
    else:
        control.enabled = enabled


class _CloseWatcher(QObject):
    """Calls ``on_close`` when its widget is taken out of its dock (napari unparents the inner
    widget of a dock that is closed or removed, and the widget may live on unparented)."""

    def __init__(self, widget: QWidget, on_close: Callable[[], None]) -> None:
        super().__init__(widget)
        self.on_close = on_close
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.ParentChange and watched.parent() is None:
            self.on_close()
        return False


class BackgroundRunner:
    """Runs one generator at a time for a widget.

    Parameters
    ----------
    owner : QWidget
        The widget the run belongs to; once it is closed (deleted, or taken out of its napari
        dock), no callback is called any more and a running generator is stopped.
    controls : sequence of QWidget or magicgui widgets
        Disabled while a run is going on (parameter boxes, Run buttons, layer pickers).
    stop_button : QWidget, optional
        Enabled only while a run is going on; clicking it calls :meth:`stop`.

    Examples
    --------
    >>> runner = BackgroundRunner(self, controls=[self.run_button], stop_button=self.stop_button)
    ... # doctest: +SKIP
    >>> runner.run(iter_label_shuffle_control(params, X, y), description="Label shuffle",
    ...            on_record=self.plot_record, on_result=self.show_result)  # doctest: +SKIP
    """

    def __init__(
        self,
        owner: QWidget,
        controls: Sequence[Any] = (),
        stop_button: QWidget | None = None,
    ) -> None:
        self.owner = owner
        self.controls = list(controls)
        self.stop_button = stop_button
        self.worker: Any = None
        self.progress: Any = None
        self._stop = threading.Event()
        self.closed = False
        if stop_button is not None:
            stop_button.setEnabled(False)
            stop_button.clicked.connect(self.stop)
        owner.destroyed.connect(self._on_owner_closed)
        self._watcher = _CloseWatcher(owner, self._on_owner_closed)

    @property
    def running(self) -> bool:
        """True from :meth:`run` until the worker has finished."""
        return self.worker is not None

    @property
    def stop_requested(self) -> bool:
        """True once Stop was pressed during the current run."""
        return self._stop.is_set()

    def run(
        self,
        steps: Generator[Any, None, Any],
        *,
        description: str,
        on_record: Callable[[Any], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        measure: Measure = step_progress,
        stop: threading.Event | None = None,
    ) -> Any:
        """Start ``steps`` in a napari ``thread_worker`` and return the worker.

        Parameters
        ----------
        steps : generator
            Yields progress records often (several per second) and returns the result. It must
            not touch the viewer or any widget.
        description : str
            Name of the run in the activity dock and in error messages.
        on_record : callable, optional
            Called in the main thread with every yielded record.
        on_result : callable, optional
            Called in the main thread with the generator's return value (not after a Stop that
            closed the generator).
        on_stopped : callable, optional
            Called in the main thread when Stop closed the generator.
        on_finished : callable, optional
            Called in the main thread at the very end (after success, Stop or an error).
        measure : callable, optional
            ``record -> (done, total)`` for the activity-dock bar; ``None`` leaves it unchanged.
        stop : threading.Event, optional
            An event the generator watches itself (it then ends on its own after :meth:`stop`
            and its return value goes to ``on_result``). Without it, Stop closes the generator.

        Raises
        ------
        RuntimeError
            If a run is already going on.
        """
        if self.running:
            raise RuntimeError(f"{description}: another run of this widget is still going on.")
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._stop = stop if stop is not None else threading.Event()
        self._stop.clear()
        worker = create_worker(
            pump, steps, self._stop, stop is None, _start_thread=False, _ignore_errors=True
        )
        self.worker = worker
        self.progress = progress(total=0, desc=description)
        callbacks = {
            "record": on_record,
            "result": on_result,
            "stopped": on_stopped,
            "finished": on_finished,
        }
        worker.yielded.connect(lambda record: self._on_yielded(record, callbacks, measure))
        worker.returned.connect(lambda result: self._on_returned(result, callbacks))
        worker.errored.connect(lambda error: self._on_errored(error, description))
        worker.finished.connect(lambda: self._on_finished(worker, callbacks))
        self._set_running(True)
        worker.start()
        return worker

    def stop(self, *_args: Any) -> None:
        """Ask the current run to end at its next yield (no-op when idle)."""
        if self.running:
            self._stop.set()
            if self.stop_button is not None and qt_alive(self.stop_button):
                self.stop_button.setEnabled(False)

    # ------------------------------------------------------------ main-thread slots
    def _owner_alive(self) -> bool:
        return not self.closed and qt_alive(self.owner)

    def _on_yielded(self, record: Any, callbacks: dict[str, Any], measure: Measure) -> None:
        counts = measure(record)
        if counts is not None and self.progress is not None:
            done, total = counts
            if total > 0 and self.progress.total != total:
                self.progress.total = total
            self.progress.update(done - self.progress.n)
        if callbacks["record"] is not None and self._owner_alive():
            callbacks["record"](record)

    def _on_returned(self, result: Any, callbacks: dict[str, Any]) -> None:
        if not self._owner_alive():
            return
        if result is STOPPED:
            if callbacks["stopped"] is not None:
                callbacks["stopped"]()
        elif callbacks["result"] is not None:
            callbacks["result"](result)

    def _on_errored(self, error: BaseException, description: str) -> None:
        from napari.utils.notifications import show_error

        show_error(f"{description} failed: {error}")

    def _on_finished(self, worker: Any, callbacks: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if worker is self.worker:
            self.worker = None
        if self._owner_alive():
            self._set_running(False)
            if callbacks["finished"] is not None:
                callbacks["finished"]()

    def _on_owner_closed(self, *_args: Any) -> None:
        self.closed = True
        self._stop.set()

    def _set_running(self, running: bool) -> None:
        for control in self.controls:
            _set_enabled(control, not running)
        if self.stop_button is not None and qt_alive(self.stop_button):
            self.stop_button.setEnabled(running)
