"""``CEBRA``: the scikit-learn estimator with the scripting API of ``cebra`` 0.6.1.

Importing this module does not import torch; torch is imported when a model is fitted, loaded or
used.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from napari_cebra.core import validation

if TYPE_CHECKING:
    import torch

    from napari_cebra.core.offset import Offset
    from napari_cebra.core.serialization import ModelState
    from napari_cebra.core.session import TrainingSession
    from napari_cebra.core.training import Objective, Solver, TrainingProgress

DEFAULT_OPTIMIZER_KWARGS = (
    ("betas", (0.9, 0.999)),
    ("eps", 1e-08),
    ("weight_decay", 0),
    ("amsgrad", False),
)
SOLVER_SINGLE = "single-session"
SOLVER_FULL = "single-session-full"
SOLVER_HYBRID = "single-session-hybrid"
SOLVER_MULTI = "multi-session"
_FIT_CHUNK_QUIET = 100
_FIT_CHUNK_VERBOSE = 10


@dataclass
class _TrainingTask:
    """What ``partial_fit`` needs to continue: the objective built on the first call's data."""

    objective: Objective
    n_features: int | list[int]


@dataclass(frozen=True)
class _Recording:
    """Validated data and labels of one fit call."""

    data: list[np.ndarray]
    labels: list[validation.LabelSet]
    multi_session: bool

    @property
    def n_features(self) -> int | list[int]:
        widths = [array.shape[1] for array in self.data]
        return widths if self.multi_session else widths[0]


class CEBRA(TransformerMixin, BaseEstimator):
    """Consistent EmBeddings of high-dimensional Recordings using Auxiliary variables.

    The constructor parameters, their order and defaults are those of ``cebra.CEBRA`` 0.6.1, plus
    ``seed``.

    Parameters
    ----------
    model_architecture : str
        Encoder name, see ``napari_cebra.models.supported_model_architectures()``.
    device : str
        ``"cuda_if_available"``, ``"cpu"``, ``"cuda"``, ``"cuda:k"`` or ``"mps"``.
    criterion : str
        Only ``"infonce"``.
    distance : {"cosine", "euclidean"}
        Similarity of embeddings (the Euclidean one is the negative squared distance).
    conditional : {None, "time", "time_delta", "delta", "delta_normal"}
        Positive-pair distribution for continuous labels (``None`` → ``"time_delta"``).
    temperature : float
        InfoNCE temperature (initial value in ``"auto"`` mode).
    temperature_mode : {"constant", "auto"}
        Fixed or learnable temperature.
    min_temperature : float or None
        Lower bound of the learnable temperature.
    time_offsets : int
        Δt of the time-based samplers.
    delta : float, optional
        σ of the ``delta_normal`` distribution (required for it).
    max_iterations : int
        Gradient steps per ``fit``/``partial_fit``.
    max_adapt_iterations : int
        Gradient steps of ``fit(..., adapt=True)``.
    batch_size : int or None
        Batch size B, at most the number of samples of the recording (of each session);
        ``None`` trains on the full recording at every step. (cebra 0.6.1 also accepts larger
        batches, sampled with replacement; ``fit`` refuses them, as their memory grows without
        bound while they carry no more information than the recording.)
    learning_rate : float
        Adam learning rate.
    optimizer : str
        Only ``"adam"``.
    output_dimension : int
        Embedding dimension d.
    verbose : bool
        Show a progress bar with the loss terms while training.
    num_hidden_units : int
        Hidden units h of the encoder.
    pad_before_transform : bool
        Pad inputs in ``transform`` so that there is one embedding row per input row.
    hybrid : bool
        CEBRA-Hybrid: behaviour objective on the first 3 dimensions plus a time objective.
    optimizer_kwargs : tuple of (str, value) pairs
        Extra arguments of ``torch.optim.Adam``.
    masking_kwargs : tuple of pairs, optional
        Data-augmentation masks of the reference; stored but not implemented (``fit`` raises
        ``NotImplementedError`` when set).
    seed : int, optional
        Makes training reproducible: model initialisation, every sampler and dropout draw from
        private generators seeded from it (bit-identical embeddings on the CPU for the same
        number of torch threads), never from torch's process-wide generator, so fits running in
        several threads at once give the results they give alone. ``None`` draws a fresh seed
        at every fit; the seed used is stored in ``seed_``.
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the training step's matrix products (master weights, gradients, loss and
        Adam state stay float32). ``"bfloat16"`` is 1.7–2.2× faster on CPUs with AVX512-BF16 or
        AMX and on GPUs with bfloat16 units, with unchanged goodness of fit in our benchmarks,
        and still deterministic for a given seed and machine. ``"auto"`` (the default) uses it
        where the device runs it natively and float32 elsewhere (on CPUs without those features
        bfloat16 is emulated), and only for single-session training (every kind of run whose
        goodness of fit it is measured to keep: mini-batch, full batch, hybrid, learnable
        temperature); the choice made is ``precision_``. ``"float32"`` forces float32.
        ``transform`` always runs in float32.

    Attributes
    ----------
    model_ : torch.nn.Module
        The encoder (an ``nn.ModuleList`` of encoders for multi-session fits).
    solver_ : Solver
        Criterion, optimizer, loss history and per-step log.
    device_ : str
        The device training ran on.
    offset_ : Offset
        Receptive field of the encoder.
    solver_name_ : str
        ``"single-session"``, ``"single-session-full"``, ``"single-session-hybrid"`` or
        ``"multi-session"``.
    label_types_ : list
        ``(dtype, shape)`` of the label arrays of the fit (per session for multi-session fits).
    n_features_, n_features_in_ : int or list of int
        Input width(s).
    num_sessions_ : int or None
        Number of sessions (``None`` for single-session fits).
    seed_ : int
        The seed training used.
    precision_ : {"float32", "bfloat16"}
        The arithmetic training used (what ``precision="auto"`` chose on this machine); kept
        in model files.
    """

    def __init__(
        self,
        model_architecture: str = "offset1-model",
        device: str = "cuda_if_available",
        criterion: str = "infonce",
        distance: str = "cosine",
        conditional: str | None = None,
        temperature: float = 1.0,
        temperature_mode: str = "constant",
        min_temperature: float | None = 0.1,
        time_offsets: int = 1,
        delta: float | None = None,
        max_iterations: int = 10000,
        max_adapt_iterations: int = 500,
        batch_size: int | None = None,
        learning_rate: float = 3e-4,
        optimizer: str = "adam",
        output_dimension: int = 8,
        verbose: bool = False,
        num_hidden_units: int = 32,
        pad_before_transform: bool = True,
        hybrid: bool = False,
        optimizer_kwargs: tuple = DEFAULT_OPTIMIZER_KWARGS,
        masking_kwargs: tuple | None = None,
        seed: int | None = None,
        precision: str = "auto",
    ) -> None:
        self.model_architecture = model_architecture
        self.device = device
        self.criterion = criterion
        self.distance = distance
        self.conditional = conditional
        self.temperature = temperature
        self.temperature_mode = temperature_mode
        self.min_temperature = min_temperature
        self.time_offsets = time_offsets
        self.delta = delta
        self.max_iterations = max_iterations
        self.max_adapt_iterations = max_adapt_iterations
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.output_dimension = output_dimension
        self.verbose = verbose
        self.num_hidden_units = num_hidden_units
        self.pad_before_transform = pad_before_transform
        self.hybrid = hybrid
        self.optimizer_kwargs = optimizer_kwargs
        self.masking_kwargs = masking_kwargs
        self.seed = seed
        self.precision = precision
        if optimizer != "adam":
            raise NotImplementedError("Only adam optimizer supported currently.")

    # ------------------------------------------------------------------------------------------
    # scikit-learn plumbing
    # ------------------------------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.seed is None
        tags.input_tags.allow_nan = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_")

    def __getstate__(self) -> dict[str, Any]:
        # The partial_fit continuation state (data on the device, generators) is not pickled.
        state = dict(self.__dict__)
        state.pop("_task", None)
        return state

    @property
    def num_sessions(self) -> int | None:
        """Number of sessions of a multi-session fit, ``None`` for single-session fits."""
        return self.num_sessions_

    @property
    def state_dict_(self) -> dict[str, Any]:
        """Solver state: ``model``, ``optimizer``, ``loss``, ``log``, ``criterion``, …"""
        return self.solver_.state_dict()

    @staticmethod
    def supported_model_architectures(pattern: str = "*") -> list[str]:
        """Names of the encoder architectures ``model_architecture`` accepts."""
        from napari_cebra.core.models import supported_model_architectures

        return supported_model_architectures(pattern)

    # ------------------------------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        *y: Any,
        adapt: bool = False,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
    ) -> CEBRA:
        """Train a new model on ``X`` (and labels ``y``) for ``max_iterations`` steps.

        Parameters
        ----------
        X : array-like of shape (N, n), or list of such arrays (multi-session)
            Neural data, time along the first axis.
        *y : array-like
            Labels: float arrays are continuous, integer arrays discrete (spec §1.2). For
            multi-session data each label is a list with one array per session.
        adapt : bool
            Adapt a fitted model to new data: a fresh first layer is trained for
            ``max_adapt_iterations`` steps while all other parameters stay frozen.
        callback : callable, optional
            ``callback(step, solver)``, called after 0-based steps divisible by
            ``callback_frequency``.
        callback_frequency : int, optional
            How often ``callback`` is called.

        Returns
        -------
        CEBRA
            ``self``.
        """
        with self.begin(
            X, *y, adapt=adapt, callback=callback, callback_frequency=callback_frequency
        ) as session:
            self._train_to_end(session)
            session.close(release=True)
        return self

    def partial_fit(
        self,
        X: Any,
        *y: Any,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
    ) -> CEBRA:
        """Train ``max_iterations`` more steps.

        The first call (or the first after ``fit``) builds the model and the sampler on ``X``;
        later calls continue on the data of that first call (as the reference): the new ``X`` only
        has to have the same number of features. The loss history accumulates.

        Returns
        -------
        CEBRA
            ``self``.
        """
        with self.begin(
            X, *y, reset=False, callback=callback, callback_frequency=callback_frequency
        ) as session:
            self._train_to_end(session)
        return self

    def _train_to_end(self, session: TrainingSession) -> None:
        """Run ``session`` to its end, yielding only every few steps (more when verbose)."""
        chunk = _FIT_CHUNK_VERBOSE if self.verbose else _FIT_CHUNK_QUIET
        for _ in session.run(yield_every=chunk, max_interval=None):
            pass

    def fit_transform(self, X: Any, *y: Any, **fit_params: Any) -> np.ndarray:
        """``fit(X, *y)`` then ``transform(X)``."""
        return self.fit(X, *y, **fit_params).transform(X)

    def begin(
        self,
        X: Any,
        *y: Any,
        reset: bool = True,
        adapt: bool = False,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
    ) -> TrainingSession:
        """Start a training run on ``X`` (and labels ``y``) and return it as a session.

        Validates the inputs, builds the model, criterion, optimizer and sampler and sets the
        fitted attributes (``transform`` works from here on); the steps are done by the session
        (:meth:`TrainingSession.run <napari_cebra.core.session.TrainingSession.run>`). This is
        the seam ``fit``, ``partial_fit``, ``iter_fit``, ensembles, sweeps and GUIs train through.

        Parameters
        ----------
        X, *y
            As for :meth:`fit`.
        reset : bool
            ``True``: a new model (``fit``) trained for ``max_iterations`` steps. ``False``:
            ``max_iterations`` more steps of the current run if there is one (``partial_fit``),
            else a new one.
        adapt, callback, callback_frequency
            As for :meth:`fit` (an adaptation run has ``max_adapt_iterations`` steps).

        Returns
        -------
        TrainingSession
        """
        from napari_cebra.core.session import TrainingSession

        if callback_frequency is not None and callback is None:
            raise ValueError("callback_frequency requires to specify a callback.")
        if callback_frequency is not None:
            validation.check_positive_int("callback_frequency", callback_frequency)
        if adapt and self.__sklearn_is_fitted__():
            self._start_adaptation(X, y)
            num_steps = self.max_adapt_iterations
        else:
            if reset or getattr(self, "_task", None) is None:
                self._start(X, y)
            else:
                self._check_continuation(X)
            num_steps = self.max_iterations
        return TrainingSession(
            self,
            self._task.objective,
            num_steps,
            callback=callback,
            callback_frequency=callback_frequency,
            release=self._release_task,
        )

    def _release_task(self) -> None:
        """Drop the ``partial_fit`` continuation (data on the device, sampler)."""
        self.__dict__.pop("_task", None)

    def iter_fit(
        self,
        X: Any,
        *y: Any,
        yield_every: int = 10,
        reset: bool = True,
        adapt: bool = False,
        callback: Callable[[int, Solver], None] | None = None,
        callback_frequency: int | None = None,
        max_interval: float | None = 0.2,
    ) -> Iterator[TrainingProgress]:
        """Train step by step, yielding a :class:`TrainingProgress` every ``yield_every`` steps.

        A generator over :meth:`begin` and its session's ``run``: after its first yield the
        estimator is fitted (``transform`` works) and it stays consistent between yields; closing
        it early (``.close()`` or leaving the loop) keeps the partially trained model, with its
        history holding exactly the steps done. Input checks run when iteration starts.

        Parameters
        ----------
        X, *y
            As for :meth:`fit`.
        yield_every : int
            Steps between records (and the last step is always reported).
        max_interval : float or None
            Also yield whenever this many seconds passed since the last record (default 0.2 s),
            so that a caller can stop within about one step plus ``max_interval`` however slow a
            step is. ``None``: yield by step count only.
        reset, adapt, callback, callback_frequency
            As for :meth:`begin`.

        Yields
        ------
        TrainingProgress
        """
        validation.check_positive_int("yield_every", yield_every)
        with self.begin(
            X,
            *y,
            reset=reset,
            adapt=adapt,
            callback=callback,
            callback_frequency=callback_frequency,
        ) as session:
            yield from session.run(yield_every=yield_every, max_interval=max_interval)

    def _start(self, X: Any, y: tuple[Any, ...]) -> None:
        """Validate everything, build model, criterion, optimizer and sampler; set fitted state."""
        params = self.get_params()
        validation.check_hyperparameters(params)
        if self.masking_kwargs is not None:
            raise NotImplementedError(
                "masking_kwargs (data-augmentation masks) is not implemented in napari-cebra; "
                "use masking_kwargs=None."
            )
        from napari_cebra.core.device import resolve_device

        device = resolve_device(self.device)
        architecture = _architecture_info(self.model_architecture, self.num_hidden_units)
        recording = self._validate_recording(X, y, architecture)
        self._check_batch_size(recording)
        seed = int(self.seed) if self.seed is not None else secrets.randbelow(2**63)
        seeds = _derive_seeds(seed)
        model = self._build_model(recording, seeds.init)
        self._install(recording, model, device, seed, seeds)

    def _start_adaptation(self, X: Any, y: tuple[Any, ...]) -> None:
        """Set up ``fit(..., adapt=True)``: new first layer, other parameters frozen (spec §1.3)."""
        if self.num_sessions_ is not None or validation.is_multi_session(X):
            raise NotImplementedError(
                "The adapt option with a multisession training is not handled; adapt a "
                "single-session model to a single recording."
            )
        validation.check_hyperparameters(self.get_params())
        architecture = _architecture_info(self.model_architecture, self.num_hidden_units)
        recording = self._validate_recording(X, y, architecture)
        self._check_batch_size(recording)
        seeds = _derive_seeds(self.seed_)
        model = self._build_model(recording, seeds.adapt)
        _copy_all_but_first_layer(self.model_, model)
        self._install(recording, model, self.device_, self.seed_, seeds)

    def _install(
        self, recording: _Recording, model: torch.nn.Module, device: str, seed: int, seeds: _Seeds
    ) -> None:
        """Build criterion, optimizer, sampler and solver, then set every fitted attribute."""
        import torch

        from napari_cebra.core.device import resolve_precision
        from napari_cebra.core.models import seed_dropout
        from napari_cebra.core.training import Solver

        model = model.to(device)
        precision = resolve_precision(self.precision, device)
        if self.precision == "auto" and not self._bfloat16_verified(recording):
            precision = "float32"
        seed_dropout(model, torch.Generator(device=device).manual_seed(seeds.dropout))
        criterion, optimizer = self._criterion_and_optimizer(model, device)
        offset = _first_encoder(model).get_offset()
        generator = torch.Generator(device=device).manual_seed(seeds.sampler)
        solver_name, objective = self._build_objective(
            recording, model, offset, generator, precision
        )
        solver = Solver(
            solver_name, model, criterion, optimizer, objective.stat_keys, recording.n_features
        )
        self._set_fitted(
            model, solver, device, solver_name, _label_types(recording), recording.n_features, seed
        )
        self.precision_ = precision
        self._task = _TrainingTask(objective, recording.n_features)

    def _bfloat16_verified(self, recording: _Recording) -> bool:
        """Whether bfloat16 is measured to reach float32's goodness of fit for this kind of run
        (``benchmarks/bench_precision.py``, 5,000 steps on a CPU with AVX512-BF16: time,
        time_delta, discrete, hybrid, offset36-model, full batch and learnable-temperature
        Euclidean runs within 0.002 bits). ``precision="auto"`` keeps float32 for multi-session
        training, which that benchmark does not cover."""
        return not recording.multi_session

    def _criterion_and_optimizer(
        self, model: torch.nn.Module, device: str
    ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """The InfoNCE criterion on ``device`` and Adam over the model's and its parameters."""
        from napari_cebra.core.loss import InfoNCE
        from napari_cebra.core.training import adam

        criterion = InfoNCE(
            distance=self.distance,
            temperature=self.temperature,
            temperature_mode=self.temperature_mode,
            min_temperature=self.min_temperature,
        ).to(device)
        optimizer = adam(
            [*model.parameters(), *criterion.parameters()],
            self.learning_rate,
            dict(self.optimizer_kwargs),
            device,
        )
        return criterion, optimizer

    def _set_fitted(
        self,
        model: torch.nn.Module,
        solver: Solver,
        device: str,
        solver_name: str,
        label_types: list,
        n_features: int | list[int],
        seed: int | None,
    ) -> None:
        """Set the fitted attributes (``model_``, ``solver_``, ``offset_``, …)."""
        self.device_ = device
        self.offset_ = _first_encoder(model).get_offset()
        self.solver_name_ = solver_name
        self.label_types_ = label_types
        self.model_ = model
        self.solver_ = solver
        self.n_features_ = n_features
        self.n_features_in_ = n_features
        self.num_sessions_ = len(n_features) if isinstance(n_features, list) else None
        self.seed_ = seed

    def _check_continuation(self, X: Any) -> None:
        """``partial_fit`` continues on its first data; the new ``X`` must have its width."""
        if self.num_sessions_ is not None:
            return
        array = validation.as_numpy(X)
        width = array.shape[1] if array.ndim == 2 else None
        if width != self.n_features_:
            raise ValueError(
                f"X has {width} features, but CEBRA is expecting {self.n_features_} features as "
                "input (partial_fit continues training the model of its first call)."
            )

    # ------------------------------------------------------------------------------------------
    # input validation and model building
    # ------------------------------------------------------------------------------------------

    def _validate_recording(
        self, X: Any, y: tuple[Any, ...], architecture: _ArchitectureInfo
    ) -> _Recording:
        if validation.is_multi_session(X):
            return self._validate_multi_session(X, y, architecture)
        minimum, reason = architecture.minimum_samples()
        data = validation.check_data(X, "X", min_samples=minimum, requirement=reason)
        for index, label in enumerate(y):
            if (
                isinstance(label, (list, tuple))
                and len(label) != data.shape[0]
                and len(label) > 0
                and np.ndim(label[0]) >= 1
            ):
                raise ValueError(
                    f"Invalid number of sessions: X is one recording but y[{index}] is a list of "
                    f"{len(label)} arrays; pass X as a list of recordings for multi-session "
                    "training, or one label array per label."
                )
        labels = validation.check_labels(y, data.shape[0])
        self._check_time_offset(data.shape[0], labels.kind, "X")
        return _Recording([data], [labels], multi_session=False)

    def _validate_multi_session(
        self, X: Any, y: tuple[Any, ...], architecture: _ArchitectureInfo
    ) -> _Recording:
        if len(y) == 0:
            raise RuntimeError(
                "No label: labels are needed for alignment in multi-session training; give one "
                "list of label arrays (one per session), e.g. fit([X1, X2], [y1, y2])."
            )
        if len(y) > 1:
            raise NotImplementedError(
                "Support for multiple set of index is not implemented in multissesion training; "
                "give either continuous or discrete labels."
            )
        sessions = list(y[0]) if isinstance(y[0], (list, tuple)) else None
        if sessions is None or len(sessions) != len(X):
            count = "not a list" if sessions is None else f"{len(sessions)} label arrays"
            raise ValueError(
                f"Invalid number of sessions: X has {len(X)} sessions but y[0] is {count}; give "
                "one label array per session."
            )
        minimum, reason = architecture.minimum_samples()
        data, labels = [], []
        for session, (recording, label) in enumerate(zip(X, sessions, strict=True)):
            name = f"X[{session}]"
            array = validation.check_data(recording, name, min_samples=minimum, requirement=reason)
            length = np.shape(validation.as_numpy(label))[:1]
            if length != (array.shape[0],):
                raise ValueError(
                    f"Invalid number of samples in session {session}: X[{session}] has "
                    f"{array.shape[0]} samples but y[0][{session}] has "
                    f"{length[0] if length else 'no'} samples."
                )
            typed = validation.check_labels([label], array.shape[0], names=[f"y[0][{session}]"])
            self._check_time_offset(array.shape[0], typed.kind, name)
            data.append(array)
            labels.append(typed)
        kinds = {typed.kind for typed in labels}
        if len(kinds) != 1:
            raise ValueError(
                f"All sessions need labels of the same kind (continuous or discrete), got {kinds}."
            )
        return _Recording(data, labels, multi_session=True)

    def _check_batch_size(self, recording: _Recording) -> None:
        """A mini-batch may not hold more samples than its recording (each session) has.

        cebra 0.6.1 accepts larger batches and samples them with replacement, so one number can
        ask for any amount of memory (``batch_size=10**9`` on 40 samples needs tens of GB); a
        batch larger than the recording holds no more information than the recording.
        """
        if self.batch_size is None:
            return
        for session, array in enumerate(recording.data):
            if self.batch_size > array.shape[0]:
                name = f"X[{session}]" if recording.multi_session else "X"
                raise ValueError(
                    f"batch_size={self.batch_size} is larger than the {array.shape[0]} samples "
                    f"of {name}: a batch cannot hold more samples than the recording has. Use "
                    f"batch_size <= {array.shape[0]}, or batch_size=None to train on the whole "
                    "recording at every step."
                )

    def _check_time_offset(self, num_samples: int, label_kind: str, name: str) -> None:
        """Time-based sampling needs more samples than ``time_offsets`` (spec §1.4)."""
        time_offset = validation.resolve_time_offset(self.time_offsets)
        uses_time = label_kind in ("none", "continuous", "mixed")
        if uses_time and num_samples <= time_offset:
            raise ValueError(
                f"{name} has {num_samples} samples, but the number of samples has to exceed the "
                f"time offset, but got {num_samples} <= {time_offset} (time_offsets)."
            )

    def _build_model(self, recording: _Recording, init_seed: int) -> torch.nn.Module:
        """Encoder(s) initialised on the CPU from a private generator seeded with ``init_seed``
        (torch's global generator is neither used nor advanced)."""
        import torch

        from napari_cebra.core.models import init

        generator = torch.Generator().manual_seed(init_seed)

        def build(num_neurons: int) -> torch.nn.Module:
            return init(
                self.model_architecture,
                num_neurons=num_neurons,
                num_units=self.num_hidden_units,
                num_output=self.output_dimension,
                generator=generator,
            )

        if not recording.multi_session:
            return build(recording.data[0].shape[1])
        return torch.nn.ModuleList([build(array.shape[1]) for array in recording.data])

    def _build_objective(
        self,
        recording: _Recording,
        model: torch.nn.Module,
        offset: Offset,
        generator: torch.Generator,
        precision: str,
    ) -> tuple[str, Objective]:
        """The loader/solver selection table of spec §1.2, computing in ``precision``."""
        import torch

        from napari_cebra.core import sampling
        from napari_cebra.core.training import (
            ContrastiveObjective,
            FullBatchObjective,
            HybridObjective,
            MultiSessionObjective,
        )
        from napari_cebra.core.windows import WindowEncoder

        device = generator.device
        tensors = [torch.from_numpy(array).to(device) for array in recording.data]
        convolutional = _first_encoder(model).is_convolutional
        time_offset = validation.resolve_time_offset(self.time_offsets)
        if recording.multi_session:
            if self.batch_size is None or self.hybrid:
                raise NotImplementedError(
                    "Multi-session training supports mini-batches only (batch_size must be an "
                    "integer) and no hybrid mode."
                )
            kind = recording.labels[0].kind
            sampler = sampling.MultiSessionSampler(
                [labels.continuous for labels in recording.labels]
                if kind == "continuous"
                else None,
                [labels.discrete for labels in recording.labels] if kind == "discrete" else None,
                time_offset,
                generator,
            )
            windows = [WindowEncoder(data, offset, convolutional, precision) for data in tensors]
            return SOLVER_MULTI, MultiSessionObjective(windows, sampler, self.batch_size)
        labels = recording.labels[0]
        data = tensors[0]
        sampler = self._single_session_sampler(labels, data.shape[0], time_offset, generator)
        if self.batch_size is None:
            return SOLVER_FULL, FullBatchObjective(
                data, sampler, offset, generator, precision=precision
            )
        windows = WindowEncoder(data, offset, convolutional, precision)
        if self.hybrid:
            return SOLVER_HYBRID, HybridObjective(windows, sampler, self.batch_size)
        return SOLVER_SINGLE, ContrastiveObjective(windows, sampler, self.batch_size)

    def _single_session_sampler(
        self,
        labels: validation.LabelSet,
        num_samples: int,
        time_offset: int,
        generator: torch.Generator,
    ) -> Any:
        from napari_cebra.core import sampling

        kind = labels.kind
        if kind == "none":
            if self.hybrid:
                raise ValueError(
                    "Invalid index combination: hybrid=True needs continuous labels, e.g. "
                    "fit(X, position)."
                )
            return sampling.TimeSampler(num_samples, time_offset, generator)
        if kind in ("discrete", "mixed") and (self.hybrid or self.batch_size is None):
            raise NotImplementedError(
                f"Invalid index combination: {kind} labels need mini-batches (batch_size set) and "
                "hybrid=False."
            )
        if kind == "discrete":
            return sampling.DiscreteSampler(labels.discrete, generator)
        if kind == "mixed":
            return sampling.MixedSampler(labels.continuous, labels.discrete, time_offset, generator)
        conditional = validation.resolve_conditional(self.conditional)
        if self.hybrid:
            if self.batch_size is None:
                raise NotImplementedError(
                    "Hybrid training needs mini-batches: set batch_size to an integer."
                )
            return sampling.HybridSampler(
                labels.continuous, time_offset, generator, conditional=conditional, delta=self.delta
            )
        if conditional == "time":
            return sampling.TimeSampler(num_samples, time_offset, generator)
        if conditional == "time_delta":
            return sampling.TimeDeltaSampler(labels.continuous, time_offset, generator)
        return sampling.DeltaNormalSampler(labels.continuous, self.delta, generator)

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------

    def transform(
        self, X: Any, batch_size: int | None = None, session_id: int | None = None
    ) -> np.ndarray:
        """Embed ``X`` with the fitted encoder.

        Parameters
        ----------
        X : array-like of shape (N, n)
            Data with the fitted number of features.
        batch_size : int, optional
            Embed in chunks of this many rows (identical result, less memory).
        session_id : int, optional
            Encoder of this session (required for multi-session models).

        Returns
        -------
        np.ndarray
            ``(N, d)`` float32 (``(N - L + 1, d)`` when ``pad_before_transform=False``).
        """
        import torch

        from napari_cebra.core.windows import embed_recording

        check_is_fitted(self, "n_features_")
        encoder, n_features = self.session_encoder(session_id)
        offset = encoder.get_offset()
        data = validation.check_data(
            X,
            "X",
            min_samples=max(len(offset), 1),
            requirement=f"the receptive field of {self.model_architecture}",
            copy=False,  # only read: a long recording is not duplicated
        )
        if data.shape[1] != n_features:
            session = "" if self.num_sessions_ is None else f" (model for session {session_id})"
            raise ValueError(
                f"X has {data.shape[1]} features, but CEBRA is expecting {n_features} features "
                f"as input{session}: invalid input shape {data.shape}."
            )
        device = next(encoder.parameters()).device
        encoder.eval()
        with warnings.catch_warnings():  # the tensor is only read
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            recording = torch.from_numpy(data)
        with torch.no_grad():
            embedding = embed_recording(
                encoder,
                recording.to(device),
                pad=self.pad_before_transform,
                batch_size=batch_size,
            )
        return embedding.cpu().numpy().astype(np.float32, copy=False)

    def scoring_objective(
        self, X: Any, y: tuple[Any, ...], session_id: int | None
    ) -> tuple[Any, Objective]:
        """The encoder of ``session_id`` and a batch source of the training kind built on new
        single-session data (used by ``core.goodness_of_fit.infonce_loss``).

        The sampler is seeded from ``seed_``, so repeated scores of the same data are identical.
        """
        import torch

        encoder, n_features = self.session_encoder(session_id)
        architecture = _architecture_info(self.model_architecture, self.num_hidden_units)
        recording = self._validate_recording(X, y, architecture)
        if recording.n_features != n_features:
            raise ValueError(
                f"X has {recording.n_features} features, but CEBRA is expecting {n_features} "
                "features as input."
            )
        device = next(encoder.parameters()).device
        seed = self.seed_ if self.seed_ is not None else secrets.randbelow(2**63)
        generator = torch.Generator(device=device).manual_seed(_derive_seeds(seed).scoring)
        _, objective = self._build_objective(
            recording, encoder, encoder.get_offset(), generator, self.precision_
        )
        return encoder, objective

    def session_encoder(self, session_id: int | None) -> tuple[Any, int]:
        """The encoder and input width selected by ``session_id`` (spec §1.5)."""
        if self.num_sessions_ is None:
            if session_id not in (None, 0):
                raise RuntimeError(
                    f"Invalid session_id {session_id!r}: this is a single-session model, use "
                    "session_id=None or 0."
                )
            return self.model_, self.n_features_
        if session_id is None:
            raise RuntimeError(
                f"No session_id provided: this model was fitted on {self.num_sessions_} sessions; "
                "pass session_id=0 … num_sessions - 1."
            )
        if (
            isinstance(session_id, bool)
            or not isinstance(session_id, (int, np.integer))
            or not 0 <= session_id < self.num_sessions_
        ):
            raise RuntimeError(
                f"Invalid session_id {session_id!r}: it must be an integer in "
                f"[0, {self.num_sessions_ - 1}]."
            )
        return self.model_[int(session_id)], self.n_features_[int(session_id)]

    def to(self, device: Any) -> CEBRA:
        """Move the fitted model (and optimizer state) to ``device`` (str or torch.device).

        A ``partial_fit`` after moving starts a new run.
        """
        from napari_cebra.core.device import resolve_device

        resolved = resolve_device(device)
        self.device = str(device)
        if self.__sklearn_is_fitted__():
            self.model_.to(resolved)
            self.solver_.criterion.to(resolved)
            _move_optimizer_state(self.solver_.optimizer, resolved)
            self.device_ = resolved
            self.__dict__.pop("_task", None)
        return self

    # ------------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------------

    def to_state(self) -> ModelState:
        """The fitted estimator as a plain state: constructor parameters, fitted attributes and
        the solver state (tensors on the training device); what a model file holds.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        """
        from napari_cebra.core.serialization import ModelState

        check_is_fitted(self, "n_features_")
        return ModelState(
            params=self.get_params(),
            device=self.device_,
            solver_name=self.solver_name_,
            label_types=list(self.label_types_),
            n_features=self.n_features_in_,
            seed=self.seed_,
            solver_state=self.solver_.state_dict(),
            offset=(self.offset_.left, self.offset_.right),
            precision=self.precision_,
        )

    @classmethod
    def from_state(cls, state: ModelState, source: str = "the state") -> CEBRA:
        """A fitted estimator built from a state of :meth:`to_state` (or read from a file).

        Encoder(s), criterion, optimizer and solver are rebuilt and the solver state loaded. The
        tensor shapes are compared on storage-free models first, so sizes claimed by a file are
        never allocated unless its tensors have them.

        Parameters
        ----------
        state : ModelState
        source : str
            Names the state's origin in warnings and errors (e.g. the file's path).

        Returns
        -------
        CEBRA

        Raises
        ------
        ValueError
            If the state does not fit its parameters (e.g. weights of another architecture, or
            input widths the weights do not have).

        Warns
        -----
        UserWarning
            For parameters this version does not know (they are ignored).
        """
        known = cls().get_params()
        unknown = sorted(set(state.params) - set(known))
        if unknown:
            warnings.warn(
                f"{source} has parameters this napari-cebra does not know, ignored: {unknown}.",
                UserWarning,
                stacklevel=3,
            )
        estimator = cls(**{key: value for key, value in state.params.items() if key in known})
        try:
            estimator._restore_fitted(state)
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{source} does not contain a usable {state.params.get('model_architecture')!r} "
                f"model: {type(error).__name__}: {error}"
            ) from None
        return estimator

    def _restore_fitted(self, state: ModelState) -> None:
        """Rebuild encoder(s), criterion, optimizer and solver from ``state``."""
        import torch

        from napari_cebra.core.models import init_empty
        from napari_cebra.core.training import HYBRID_STAT_KEYS, STAT_KEYS, Solver

        n_features, solver_state, device = state.n_features, state.solver_state, state.device
        multi_session = isinstance(n_features, list)
        widths = list(n_features) if multi_session else [n_features]
        model_state = solver_state["model"]
        if not isinstance(model_state, dict) or len(widths) > len(model_state):
            raise ValueError(
                f"n_features_in_ claims {len(widths)} encoder(s), but the file holds "
                f"{len(model_state) if isinstance(model_state, dict) else 'no'} weight tensors."
            )
        encoders = [
            init_empty(self.model_architecture, width, self.num_hidden_units, self.output_dimension)
            for width in widths
        ]
        model = torch.nn.ModuleList(encoders) if multi_session else encoders[0]
        described = (
            f"{self.model_architecture!r} with n_features_in_={n_features}, num_hidden_units="
            f"{self.num_hidden_units}, output_dimension={self.output_dimension}"
        )
        _check_tensor_shapes(model.state_dict(), model_state, f"the model weights of {described}")
        model = model.to_empty(device=device)
        criterion, optimizer = self._criterion_and_optimizer(model, device)
        _check_tensor_shapes(
            criterion.state_dict(), solver_state["criterion"], "the criterion's parameters"
        )
        _check_optimizer_state(optimizer, solver_state["optimizer"])
        stat_keys = HYBRID_STAT_KEYS if state.solver_name == SOLVER_HYBRID else STAT_KEYS
        solver = Solver(state.solver_name, model, criterion, optimizer, stat_keys, n_features)
        solver.load_state_dict(solver_state)
        self._set_fitted(
            model, solver, device, state.solver_name, state.label_types, n_features, state.seed
        )
        self.precision_ = state.precision or _stated_precision(self.precision)

    def save(self, filename: Any, backend: str = "sklearn") -> None:
        """Write the fitted model to ``filename`` (our versioned format, see
        ``core.serialization``); ``~`` is expanded and an existing file is replaced atomically.

        Raises
        ------
        ValueError
            If the estimator is not fitted or ``backend`` is not ``"sklearn"``.
        """
        from napari_cebra.core.serialization import write_model_file

        if not self.__sklearn_is_fitted__():
            raise ValueError(
                "CEBRA object is not fitted. Saving a non-fitted model is not supported."
            )
        write_model_file(self.to_state(), filename, backend=backend)

    @classmethod
    def load(cls, filename: Any, backend: str = "auto", **kwargs: Any) -> CEBRA:
        """Read a model written by :meth:`save` or by ``cebra`` 0.6.x ``CEBRA.save``.

        ``~`` in ``filename`` is expanded. The archive's CRC-32 checksums are verified first, then
        the file is read with ``torch.load(weights_only=True)`` (no pickled code is executed) and
        its tensors are checked against the model's architecture (see ``core.serialization``);
        a damaged or inconsistent file raises a ``ValueError`` naming it.
        """
        from pathlib import Path

        from napari_cebra.core.serialization import read_model_file

        state = read_model_file(filename, backend=backend, **kwargs)
        return cls.from_state(state, source=repr(str(Path(filename).expanduser())))


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArchitectureInfo:
    name: str
    offset: Offset
    convolutional: bool

    def minimum_samples(self) -> tuple[int, str]:
        """Rows needed to fit or embed, and why."""
        return max(len(self.offset), 2), f"the receptive field of {self.name} is {len(self.offset)}"


def _architecture_info(name: str, num_hidden_units: int) -> _ArchitectureInfo:
    """Offset and kind of an architecture, read from a model without storage (no random draws).

    Raises
    ------
    ValueError
        For an unknown architecture (listing valid names) or one the estimator cannot train.
    """
    from napari_cebra.core.models import init_empty

    probe = init_empty(name, num_neurons=1, num_units=num_hidden_units, num_output=1)
    offset = probe.get_offset()
    if not probe.is_convolutional and len(offset) > 1:
        raise ValueError(
            f"It is not yet supported to run non-convolutional models with receptive fields/"
            f"offsets larger than 1 via the sklearn API ({name!r} has {len(offset)})."
        )
    return _ArchitectureInfo(name, offset, probe.is_convolutional)


@dataclass(frozen=True)
class _Seeds:
    init: int
    sampler: int
    dropout: int
    adapt: int
    scoring: int


def _derive_seeds(seed: int) -> _Seeds:
    """Independent streams for model init, sampling, dropout, adaptation and scoring."""
    state = np.random.SeedSequence(seed).generate_state(5, dtype=np.uint64)
    values = [int(value) >> 1 for value in state]
    return _Seeds(*values)


def _stated_precision(precision: str) -> str:
    """The arithmetic of a model file that does not record it (cebra's, and ours before
    ``"auto"`` existed): its ``precision`` parameter, float32 when there was none."""
    return precision if precision in ("float32", "bfloat16") else "float32"


def _first_encoder(model: Any) -> Any:
    import torch

    return model[0] if isinstance(model, torch.nn.ModuleList) else model


def _check_tensor_shapes(expected: dict[str, Any], found: Any, what: str) -> None:
    """Raise a ``ValueError`` unless ``found`` has exactly the keys and tensor shapes of
    ``expected`` (a state dict, possibly of storage-free tensors)."""
    import torch

    if not isinstance(found, dict):
        raise ValueError(f"{what} are not a dictionary of tensors ({type(found).__name__}).")
    problems = [f"unexpected tensor {key!r}" for key in found if key not in expected]
    problems += [f"missing tensor {key!r}" for key in expected if key not in found]
    for key, tensor in expected.items():
        value = found.get(key)
        if key in found and not isinstance(value, torch.Tensor):
            problems.append(f"{key!r} is a {type(value).__name__}, not a tensor")
        elif key in found and value.shape != tensor.shape:
            problems.append(
                f"{key!r} has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}"
            )
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{what} do not match the file: {'; '.join(problems[:5])}{more}.")


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any) -> None:
    """The saved Adam state has, per parameter, scalars and tensors of the parameter's shape.

    Structural problems (other group sizes) are left to ``Optimizer.load_state_dict``.
    """
    import torch

    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        raise ValueError("the optimizer state is not a dictionary with a 'state' entry.")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    groups = state.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("the optimizer state has no valid 'param_groups'.")
    ids = [index for group in groups for index in group.get("params", [])]
    shapes = dict(zip(ids, (parameter.shape for parameter in parameters), strict=False))
    for index, values in state["state"].items():
        if index not in shapes or not isinstance(values, dict):
            raise ValueError(f"the optimizer state has an entry for unknown parameter {index!r}.")
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != shapes[index]:
                raise ValueError(
                    f"the optimizer state {name!r} of parameter {index} has shape "
                    f"{tuple(value.shape)}, expected {tuple(shapes[index])}."
                )


def _label_types(recording: _Recording) -> list:
    if recording.multi_session:
        return [[labels.label_types[0] for labels in recording.labels]]
    return list(recording.labels[0].label_types)


def _copy_all_but_first_layer(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy every parameter except the first two state-dict entries and freeze the copies."""
    source_state = source.state_dict()
    keys = list(source_state)[2:]
    target.load_state_dict({key: source_state[key] for key in keys}, strict=False)
    parameters = dict(target.named_parameters())
    for key in keys:
        if key in parameters:
            parameters[key].requires_grad_(False)


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: str) -> None:
    """Put the optimizer state next to its (already moved) parameters.

    ``load_state_dict`` applies torch's own placement rules (e.g. the step counter stays on the
    CPU for the default Adam and moves with the parameters for the fused one). The fused kernel
    exists on CPU and CUDA only; elsewhere the default implementation takes over.
    """
    import torch

    state = optimizer.state_dict()
    if torch.device(device).type not in ("cpu", "cuda"):
        for group in state["param_groups"]:
            group["fused"] = None
        for values in state["state"].values():
            if isinstance(values.get("step"), torch.Tensor):
                values["step"] = values["step"].cpu()
    optimizer.load_state_dict(state)
