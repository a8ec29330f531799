"""The running part of every analysis dock: Run and Stop, a progress bar, a status line.

Every widget that starts work in the background builds one :class:`RunPanel` and calls
:meth:`RunPanel.start` with its generator; the panel owns the :class:`BackgroundRunner`
(throttled records, controls disabled while running, errors as notifications), shows the run's
progress and keeps the status line, including the "Not started: …" routine when the form's
values are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from magicgui.widgets import Label
from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_cebra._widgets.background import BackgroundRunner
from napari_cebra._widgets.dock import wrap_label


class RunPanel(QWidget):
    """Run and Stop buttons, a progress bar (shown while running) and a wrapping status line.

    Parameters
    ----------
    owner : QWidget
        The dock the runs belong to (closing it stops the run, see :class:`BackgroundRunner`).
    run_text : str
        Text of the Run button; the caller connects ``run_button.clicked`` to its start method.
    controls : sequence
        Qt or magicgui widgets disabled while a run is going on (the Run button is added).
    status : str
        First text of the status line (what to do before pressing Run).
    bar_format : str
        Text of the progress bar (Qt's ``%v`` done, ``%m`` total, ``%p`` percent).

    Attributes
    ----------
    run_button, stop_button : QPushButton
    bar : QProgressBar
    status : magicgui.widgets.Label
        The status line (``status.value`` is its text).
    runner : BackgroundRunner
    """

    def __init__(
        self,
        owner: QWidget,
        run_text: str,
        controls: Sequence[Any] = (),
        status: str = "",
        bar_format: str = "%v / %m",
    ) -> None:
        super().__init__()
        self.run_button = QPushButton(run_text)
        self.stop_button = QPushButton("Stop")
        self.bar = QProgressBar()
        self.status = wrap_label(Label(value=status))
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status.native)
        self.runner = BackgroundRunner(
            owner,
            controls=[*controls, self.run_button],
            stop_button=self.stop_button,
            bar=self.bar,
            bar_format=bar_format,
        )

    def say(self, text: str) -> None:
        """Put ``text`` on the status line."""
        self.status.value = text

    def not_started(self, title: str, error: BaseException | str) -> None:
        """A refused form: an error notification ``"<title>: <error>"`` and the status line."""
        from napari.utils.notifications import show_error

        show_error(f"{title}: {error}")
        self.say(f"Not started: {error}")

    def start(
        self,
        steps: Generator[Any, None, Any],
        *,
        description: str,
        starting: str = "Starting…",
        stopped: str = "Stopped.",
        on_stopped: Callable[[], None] | None = None,
        **callbacks: Any,
    ) -> Any:
        """Say ``starting`` and run ``steps`` (see :meth:`BackgroundRunner.run`).

        When Stop closes the generator the status line says ``stopped`` (or ``on_stopped`` is
        called instead). Returns the worker.
        """
        self.say(starting)
        return self.runner.run(
            steps,
            description=description,
            on_stopped=on_stopped if on_stopped is not None else lambda: self.say(stopped),
            **callbacks,
        )
