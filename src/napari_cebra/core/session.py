"""``TrainingSession``: one training run in progress, the seam every way of training goes through.

``CEBRA.begin(X, *y)`` validates the data, builds the model, sampler and optimizer, sets the
estimator's fitted attributes and returns a session; the session runs the steps. ``CEBRA.fit``,
``partial_fit`` and ``iter_fit``, the ensembles of ``core.ensemble``, grid sweeps, controls and the
GUI all train through it::

    with model.begin(X, position) as session:
        for record in session.run(yield_every=50):
            print(record.step, record.total)

After :meth:`CEBRA.begin` the estimator is fitted (``transform`` works) and it stays consistent
between records: the history holds exactly the steps done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from napari_cebra.core.validation import check_positive_int

if TYPE_CHECKING:
    from napari_cebra.core.estimator import CEBRA
    from napari_cebra.core.training import Objective, Solver, TrainingProgress


class TrainingSession:
    """A training run of ``total_steps`` steps of one estimator; made by :meth:`CEBRA.begin`.

    Parameters
    ----------
    estimator : CEBRA
        The estimator being trained (already fitted with the run's model).
    objective : Objective
        Batches and loss of the run (data, sampler and window encoder on the training device).
    total_steps : int
        Steps the run does when not stopped.
    callback : callable, optional
        ``callback(step, solver)`` after 0-based steps divisible by ``callback_frequency``.
    callback_frequency : int, optional
        How often ``callback`` is called.
    release : callable, optional
        Called by ``close(release=True)``: the estimator drops what it keeps for a later
        ``partial_fit`` (the data on the device and the sampler).

    Attributes
    ----------
    estimator : CEBRA
    objective : Objective
    total_steps : int
    steps_done : int
        Steps done so far (the history holds exactly these).
    records : list of TrainingProgress
        Every record :meth:`run` yielded, oldest first.
    closed : bool
        Whether :meth:`close` was called; a closed session does no further steps.
    """

    def __init__(
        self,
        estimator: CEBRA,
        objective: Objective,
        total_steps: int,
        *,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.estimator = estimator
        self.objective = objective
        self.total_steps = int(total_steps)
        self.steps_done = 0
        self.records: list[TrainingProgress] = []
        self.closed = False
        self._callback = callback
        self._callback_frequency = callback_frequency
        self._release = release
        self._bar: Any = None

    @property
    def solver(self) -> Solver:
        """The estimator's solver (model, criterion, optimizer, history)."""
        return self.estimator.solver_

    @property
    def steps_left(self) -> int:
        """Steps still to do (0 once the run is complete or closed)."""
        return 0 if self.closed else self.total_steps - self.steps_done

    @property
    def uses_channels_last_program(self) -> bool:
        """Whether the run trains on the CPU with the encoder's channels-last program
        (``core.fast``), which makes one run efficient enough that several runs side by side
        (or one after the other) beat a grouped model."""
        from napari_cebra.core.windows import WindowEncoder

        windows = getattr(self.objective, "windows", None)
        return (
            self.estimator.device_ == "cpu"
            and isinstance(windows, WindowEncoder)
            and windows.uses_program(self.estimator.model_)
        )

    def run(
        self,
        steps: int | None = None,
        yield_every: int = 10,
        max_interval: float | None = 0.2,
    ) -> Iterator[TrainingProgress]:
        """Do ``steps`` more steps (default: the rest of the run), yielding progress records.

        A record comes every ``yield_every`` steps of the run, after the last step of this call
        and whenever ``max_interval`` seconds passed since the last record (``None``: by step
        count only), so that a caller can stop within about one step plus ``max_interval``.
        Closing the generator early keeps the steps done; a later :meth:`run` continues.

        Parameters
        ----------
        steps : int, optional
            At most this many steps (fewer when the run ends first).
        yield_every : int
            Steps between records.
        max_interval : float or None
            Seconds between records at most (see above).

        Yields
        ------
        TrainingProgress
            ``step`` counts the steps of the whole run, ``total_steps`` is :attr:`total_steps`.

        Raises
        ------
        RuntimeError
            If the session is closed.
        """
        check_positive_int("yield_every", yield_every)
        if steps is not None:
            check_positive_int("steps", steps)
        if self.closed:
            raise RuntimeError("This training session is closed: begin a new one to train more.")
        count = self.steps_left if steps is None else min(int(steps), self.steps_left)
        if count == 0:
            return
        if self._bar is None and self.estimator.verbose:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total_steps)
        from napari_cebra.core.training import format_stats

        records = self.solver.run(
            self.objective,
            count,
            yield_every,
            self._callback,
            self._callback_frequency,
            max_interval,
            first_step=self.steps_done,
            total_steps=self.total_steps,
        )
        for record in records:
            self.steps_done = record.step
            self.records.append(record)
            if self._bar is not None:
                self._bar.set_description(format_stats(self.solver.last_stats()), refresh=False)
                self._bar.update(record.step - self._bar.n)
            yield record

    def advance(self, steps: int = 1) -> TrainingProgress | None:
        """Do ``steps`` more steps at once; returns the last record (``None`` if none was left)."""
        records = list(self.run(steps, yield_every=steps, max_interval=None))
        return records[-1] if records else None

    def close(self, release: bool = False) -> None:
        """End the session: no further steps; the estimator keeps the model trained so far.

        Parameters
        ----------
        release : bool
            Also drop what the estimator keeps for a later ``partial_fit`` (the data on the
            device and the sampler); a ``partial_fit`` then starts a new run.
        """
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if release and self._release is not None:
            self._release()

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"TrainingSession({self.steps_done}/{self.total_steps} steps, {state})"
