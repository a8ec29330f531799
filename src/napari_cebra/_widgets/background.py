"""Run a generator off the GUI thread for a widget: progress, Stop, disabled controls, safe slots.

:class:`BackgroundRunner` is the one place where the analysis widgets (goodness of fit, shuffle
controls, report, consistency, sweeps) start work. It wraps a generator in napari's
``thread_worker``, advances the widget's own progress bar, disables the widget's controls and
enables its Stop button while running, hands every yielded record and the returned result to
callbacks **in the main thread**, turns exceptions into napari error notifications, and drops all
callbacks once the widget is closed (the run is then stopped).

Closing a dock: napari's close button (``Window.remove_dock_widget``) only takes the widget out of
its dock (``setParent(None)``); while a worker holds references the widget is not deleted, so
``destroyed`` would come too late. The runner watches both events and stops the run at the first.

Throttling: records are not handed to the widget one by one as the worker yields them. The
runner's slot for a yielded record only queues it; a main-thread timer hands the queued records to
the widget every :data:`FLUSH_MS` milliseconds, as one batch (``on_records``) or one call per
record (``on_record``), and advances the progress bar once per batch. However fast a worker
yields, the GUI thread then does the widget's work a few times per second, and the records that
arrive just before the result are handed over before it; records that arrive after the result
are dropped (they would overwrite the final status).

Why the dock's own bar and not napari's activity dock: while any ``napari.utils.progress`` is
open, napari animates a "loading" GIF in its status bar. Every frame of it repaints the main
window, and the repaint runs inside napari's Python ``QMainWindow.event`` override, i.e. with the
GIL held, while Qt composes the window's OpenGL canvases. Without a GPU (software OpenGL, remote
desktops, this project's CI) the worker then waits for the GIL at every torch call: measured on
the calcium sample, the library's ``fit`` in a thread fell from 45–75 it/s to 4.1 it/s just by
having an activity bar open. The dock's bar is determinate and is repainted only at a flush.

Stop: the worker checks between two records whether Stop was pressed, so the generator must yield
often (a few times per second). Either the runner closes the generator at its next yield
(``run(steps)``), or, when the caller passes its own ``stop`` event to the generator as well, the
generator sees the event, ends itself and may return a partial result
(``run(steps, stop=event)``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QProgressBar, QWidget

Measure = Callable[[Any], "tuple[int, int] | None"]

_LOG = logging.getLogger(__name__)
FLUSH_MS = 1000
"""Milliseconds between two hand-overs of queued records to the widget (once per second).

Each hand-over repaints part of the dock, and without a GPU a repaint of napari's window costs
the GUI thread and the software rasteriser tens of milliseconds, partly with the GIL held (see
above). Measured on the calcium sample (400 steps, three alternating runs, medians), Train
reached 0.70x the library's speed in a thread with a hand-over every 500 ms and 0.93x with one
every 1,000 ms. Stop does not wait for a hand-over."""
_WARM_UP: threading.Thread | None = None
_WARM_UP_LOCK = threading.Lock()
WARM_UP_MODULES = (
    "napari_cebra.core.estimator",  # torch, scikit-learn's base classes
    "napari_cebra.core.goodness_of_fit",
    "napari_cebra.core.consistency",  # scikit-learn's linear models
    "napari_cebra.core.ensemble",
    "napari_cebra.workflows.grid_search",  # pandas
    "napari_cebra.workflows.controls",
    "napari_cebra.workflows.decoding",  # scikit-learn's neighbours
    "scipy.spatial.transform",  # napari's 3-D camera, on the embedding's first 3-D view
)
"""Modules the analysis workers need, imported by :func:`warm_up_engine`."""


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


def leave_a_core_for_the_gui() -> None:
    """Cap torch's CPU threads of the calling (worker) thread at one less than the cores.

    torch starts one OpenMP thread per core. On a small machine those threads and Qt's event loop
    then compete for every core, OpenMP threads spin while waiting for each other, and the GUI
    stalls for hundreds of milliseconds. The cap applies to the thread that calls it, i.e. to the
    computation of the run; scripts and the command line keep torch's default.
    """
    import torch

    wanted = max(1, (os.cpu_count() or 1) - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


WARM_UP_EXIT_WAIT_S = 60.0
"""Longest wait at exit for the engine's warm-up thread (:func:`warm_up_engine`)."""


def _warm_up() -> None:
    import importlib

    import numpy as np

    try:
        for name in WARM_UP_MODULES:
            importlib.import_module(name)
        from napari_cebra.core.estimator import CEBRA

        # One tiny step reaches what torch only loads on first use (``torch._dynamo`` with
        # sympy, imported by the optimizer's first ``zero_grad``; oneDNN's kernels).
        data = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
        CEBRA(
            model_architecture="offset1-model",
            batch_size=8,
            num_hidden_units=4,
            output_dimension=2,
            max_iterations=1,
            device="cpu",
            seed=0,
        ).fit(data)
    except Exception:  # an optimisation only: a real run reports its own errors
        _LOG.debug("napari-cebra warm-up failed", exc_info=True)


def warm_up_engine() -> threading.Thread:
    """Load the engine in a daemon thread, once per process, and return that thread.

    The first run of a session otherwise imports torch's lazily loaded parts (about 1.3 s,
    including sympy), scikit-learn (about 1.2 s) and pandas in its worker thread. Imports hold
    Python's GIL in slices of up to ~150 ms, which would stall the GUI while the user watches a
    run. Every analysis widget calls this when it is created, so the loading happens while the
    user picks layers and parameters; a run started earlier simply waits for the imports.
    """
    global _WARM_UP
    with _WARM_UP_LOCK:
        if _WARM_UP is None:
            _WARM_UP = threading.Thread(target=_warm_up, name="napari-cebra warm-up", daemon=True)
            _WARM_UP.start()
            # Quitting napari while torch is still being imported here crashed the interpreter
            # at exit (a segmentation fault in torch's import as Python tore down); exit waits
            # for the warm-up instead (a few seconds at most).
            atexit.register(_WARM_UP.join, WARM_UP_EXIT_WAIT_S)
    return _WARM_UP


def when_engine_ready(owner: QObject, callback: Callable[[], None]) -> None:
    """Call ``callback()`` in the main thread once the engine is loaded (:func:`warm_up_engine`).

    Widgets open at once with a few safe choices (device ``cpu``, the recipe's encoder) and fill
    in what needs torch (GPUs, the full list of encoders) when this calls back, instead of
    importing torch in the GUI thread. The check runs on a timer owned by ``owner``, so nothing
    is called once ``owner`` is deleted.
    """
    thread = warm_up_engine()
    if not thread.is_alive():
        callback()
        return
    timer = QTimer(owner)
    timer.setInterval(100)

    def check() -> None:
        if not thread.is_alive():
            timer.stop()
            timer.deleteLater()
            callback()

    timer.timeout.connect(check)
    timer.start()


def pump(
    steps: Generator[Any, None, Any], stop: threading.Event, close_on_stop: bool
) -> Generator[Any, None, Any]:
    """Yield the records of ``steps`` and return its result; end early when ``stop`` is set.

    With ``close_on_stop`` the generator is closed at the first yield after ``stop`` is set and
    :data:`STOPPED` is returned; otherwise ``steps`` is expected to watch ``stop`` itself and its
    return value (possibly a partial result) is returned. Runs in the worker thread, which first
    leaves one core to the GUI (:func:`leave_a_core_for_the_gui`).
    """
    leave_a_core_for_the_gui()
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


class CloseWatcher(QObject):
    """Calls ``on_close`` when its widget is taken out of its dock (napari unparents the inner
    widget of a dock that is closed or removed, and the widget may live on unparented)."""

    def __init__(self, widget: QWidget, on_close: Callable[[], None]) -> None:
        super().__init__(widget)
        self.on_close = on_close
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        """Call ``on_close`` when ``watched`` has lost its parent; never consume the event."""
        if event.type() == QEvent.ParentChange and watched.parent() is None:
            self.on_close()
        return False


@dataclass
class _Run:
    """State of one run: its worker and callbacks."""

    worker: Any
    description: str
    callbacks: dict[str, Callable[..., None] | None]
    measure: Measure
    pending: list[Any] = field(default_factory=list)  # yielded, not yet handed to the widget
    ended: bool = False  # result, Stop or error handled: later records are stale
    orphaned: bool = False  # the owner was closed: no callback any more


class BackgroundRunner:
    """Runs one generator at a time for a widget.

    Parameters
    ----------
    owner : QWidget
        The widget the run belongs to; once it is closed (deleted, or taken out of its napari
        dock), no callback of the current run is called any more and its generator is stopped.
    controls : sequence of QWidget or magicgui widgets
        Disabled while a run is going on (parameter boxes, Run buttons, layer pickers).
    stop_button : QWidget, optional
        Enabled only while a run is going on; clicking it calls :meth:`stop`.
    bar : QProgressBar, optional
        Shown while a run is going on and advanced once per batch of records (see ``measure``
        in :meth:`run`); hidden when idle.
    bar_format : str
        The bar's text once counts arrive (Qt's ``%v`` done, ``%m`` total, ``%p`` percent).

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
        bar: QProgressBar | None = None,
        bar_format: str = "%v / %m",
    ) -> None:
        self.owner = owner
        self.controls = list(controls)
        self.stop_button = stop_button
        self.bar = bar
        self.bar_format = bar_format
        if bar is not None:
            bar.hide()
        self._run: _Run | None = None
        self._stop = threading.Event()
        self._flush_timer = QTimer(owner)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush_current)
        if stop_button is not None:
            stop_button.setEnabled(False)
            stop_button.clicked.connect(self.stop)
        owner.destroyed.connect(self._on_owner_closed)
        self._watcher = CloseWatcher(owner, self._on_owner_closed)
        warm_up_engine()

    @property
    def worker(self) -> Any:
        """The napari worker of the current run (``None`` when idle)."""
        return None if self._run is None else self._run.worker

    @property
    def running(self) -> bool:
        """True from :meth:`run` until the worker has finished."""
        return self._run is not None

    @property
    def stop_requested(self) -> bool:
        """True once Stop was pressed (or the owner closed) during the current run."""
        return self._stop.is_set()

    def run(
        self,
        steps: Generator[Any, None, Any],
        *,
        description: str,
        on_record: Callable[[Any], None] | None = None,
        on_records: Callable[[list[Any]], None] | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        keep: Callable[[Any], None] | None = None,
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
            Name of the run in error messages.
        on_record : callable, optional
            Called in the main thread with every yielded record (never after the result), a
            few batches per second (see the module's notes on throttling).
        on_records : callable, optional
            Called in the main thread with each batch of records (a list, oldest first) instead
            of ``on_record`` once per record: for widgets whose update is cheaper per batch.
        on_result : callable, optional
            Called in the main thread with the generator's return value (not after a Stop that
            closed the generator).
        on_stopped : callable, optional
            Called in the main thread when Stop closed the generator.
        on_error : callable, optional
            Called in the main thread with the exception the generator raised (after the error
            notification).
        on_finished : callable, optional
            Called in the main thread at the very end (after success, Stop or an error).
        keep : callable, optional
            Called in the main thread with the result when the owner was closed during the run
            (its other callbacks are then dropped): keeps what the run made somewhere that
            outlives the widget, e.g. the session's models. It must not touch the owner's
            widgets. Needs ``stop`` (a generator that ends itself with a partial result).
        measure : callable, optional
            ``record -> (done, total)`` for the progress bar; ``None`` leaves it unchanged.
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

        self._stop = stop if stop is not None else threading.Event()
        self._stop.clear()
        worker = create_worker(
            pump, steps, self._stop, stop is None, _start_thread=False, _ignore_errors=True
        )
        run = _Run(
            worker=worker,
            description=description,
            callbacks={
                "record": on_record,
                "records": on_records,
                "result": on_result,
                "stopped": on_stopped,
                "error": on_error,
                "finished": on_finished,
                "keep": keep,
            },
            measure=measure,
        )
        self._run = run
        worker.yielded.connect(lambda record: self._on_yielded(run, record))
        worker.returned.connect(lambda result: self._on_returned(run, result))
        worker.errored.connect(lambda error: self._on_errored(run, error))
        worker.finished.connect(lambda: self._on_finished(run))
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
    def _delivers(self, run: _Run) -> bool:
        """Whether ``run``'s callbacks may still be called (its owner is open)."""
        return not run.orphaned and qt_alive(self.owner)

    def _call(self, run: _Run, name: str, *args: Any) -> None:
        callback = run.callbacks[name]
        if callback is not None and self._delivers(run):
            callback(*args)

    def _on_yielded(self, run: _Run, record: Any) -> None:
        if run.ended or not self._delivers(run):  # a closed owner has no timer any more
            return
        run.pending.append(record)
        if not self._flush_timer.isActive():
            self._flush_timer.start(FLUSH_MS)

    def _flush_current(self) -> None:
        if self._run is not None:
            self._flush(self._run)

    def _flush(self, run: _Run) -> None:
        """Hand the queued records to the widget, then advance the progress bar."""
        batch, run.pending = run.pending, []
        if not batch or run.ended:
            return
        if run.callbacks["records"] is not None:
            self._call(run, "records", batch)
        else:
            for record in batch:
                self._call(run, "record", record)
        self._advance_bar(run, batch[-1])

    def _advance_bar(self, run: _Run, record: Any) -> None:
        counts = run.measure(record)
        if counts is None or self.bar is None or not qt_alive(self.bar):
            return
        done, total = counts
        if total > 0:
            self.bar.setMaximum(total)
            self.bar.setValue(min(done, total))
            self.bar.setFormat(self.bar_format)

    @property
    def bar_value(self) -> int:
        """Where the progress bar stands (0 without a bar)."""
        return 0 if self.bar is None else int(self.bar.value())

    def _on_returned(self, run: _Run, result: Any) -> None:
        self._flush(run)
        run.ended = True
        keep = run.callbacks["keep"]
        if keep is not None and not self._delivers(run) and result is not STOPPED:
            keep(result)
        elif result is STOPPED:
            self._call(run, "stopped")
        else:
            self._call(run, "result", result)

    def _on_errored(self, run: _Run, error: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._flush(run)
        run.ended = True
        show_error(f"{run.description} failed: {error}")
        self._call(run, "error", error)

    def _on_finished(self, run: _Run) -> None:
        self._flush(run)
        run.ended = True
        if run is self._run:
            self._run = None
            if self._delivers(run):
                self._set_running(False)
        self._call(run, "finished")

    def _on_owner_closed(self, *_args: Any) -> None:
        if self._run is not None:
            self._run.orphaned = True
            self._stop.set()

    def _set_running(self, running: bool) -> None:
        for control in self.controls:
            _set_enabled(control, not running)
        if self.stop_button is not None and qt_alive(self.stop_button):
            self.stop_button.setEnabled(running)
        if self.bar is not None and qt_alive(self.bar):
            if running:  # determinate from the start: a busy bar would animate (repaints)
                self.bar.setRange(0, 1)
                self.bar.setValue(0)
                self.bar.setFormat("starting…")
            self.bar.setVisible(running)
