"""InfoNCE on new data and the goodness of fit in bits (spec §6.1–6.2).

The goodness of fit (GoF) converts an InfoNCE loss into bits above chance::

    GoF = (ln(B · S) − loss) / ln 2

with B the batch size and S the number of sessions (1 for single-session models): zero means the
embedding is no better than chance, larger is better. For CEBRA-Hybrid models, whose loss is the sum
of a behaviour and a time InfoNCE (each with chance level ln B), the chance level is 2 · ln B, so
the GoF is the sum of the two objectives' GoFs (the reference has no GoF for hybrid models).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from napari_cebra.core import validation
from napari_cebra.core.progress import run_to_end

if TYPE_CHECKING:
    from napari_cebra.core.estimator import CEBRA

_HYBRID = "single-session-hybrid"


@dataclass(frozen=True)
class ScoringProgress:
    """Progress of a score: ``step`` of ``total_steps`` batches evaluated."""

    step: int
    total_steps: int


def iter_infonce_loss(
    model: CEBRA,
    X: Any,
    *y: Any,
    session_id: int | None = None,
    num_batches: int = 500,
    correct_by_batchsize: bool = False,
) -> Generator[ScoringProgress, None, float]:
    """:func:`infonce_loss` as a generator that yields after every scoring batch.

    The arguments are those of :func:`infonce_loss`, which is this generator run to the end, so
    the returned value (``StopIteration.value``) is identical. The input checks run at the first
    ``next()``. While the generator is suspended the encoder stays in eval mode; closing it (or
    breaking out of a loop over it) restores the training mode.

    Yields
    ------
    ScoringProgress
        After each batch: batches done and ``num_batches``.

    Returns
    -------
    float
        The mean InfoNCE loss.
    """
    import torch

    _check_scoring_input(model, X, y, session_id, num_batches, correct_by_batchsize)
    encoder, objective = model.scoring_objective(X, y, session_id)
    criterion = model.solver_.criterion
    was_training = encoder.training
    encoder.eval()
    totals = []
    try:
        for batch in range(num_batches):
            with torch.no_grad():  # not held across the yield: grad mode is per thread
                totals.append(objective.loss(encoder, criterion)[0])
            yield ScoringProgress(batch + 1, num_batches)
    finally:
        encoder.train(was_training)
    loss = float(torch.stack(totals).mean())
    if correct_by_batchsize:
        loss -= float(np.log(model.batch_size))
    return loss


def infonce_loss(
    model: CEBRA,
    X: Any,
    *y: Any,
    session_id: int | None = None,
    num_batches: int = 500,
    correct_by_batchsize: bool = False,
) -> float:
    """Mean InfoNCE of a fitted model on (new) data, over ``num_batches`` batches.

    Batches are drawn as in training (same batch size, sampler, time offset), from a generator
    seeded by the model's ``seed_``, with the encoder in eval mode and without gradients.
    :func:`iter_infonce_loss` computes the same value step by step.

    Parameters
    ----------
    model : CEBRA
        A fitted estimator.
    X : array-like of shape (N, n)
        One recording (multi-session lists are not supported).
    *y : array-like
        Labels of the same number and kind as in training.
    session_id : int, optional
        Encoder to use for multi-session models.
    num_batches : int
        Number of batches to average.
    correct_by_batchsize : bool
        Subtract ``ln(batch_size)`` from the result.

    Returns
    -------
    float

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    NotImplementedError
        For multi-session data or labels.
    ValueError
        If the labels differ in number, kind or width from training, or
        ``correct_by_batchsize`` is used with a full-batch model.
    """
    return run_to_end(
        iter_infonce_loss(
            model,
            X,
            *y,
            session_id=session_id,
            num_batches=num_batches,
            correct_by_batchsize=correct_by_batchsize,
        )
    )


def _check_scoring_input(
    model: CEBRA,
    X: Any,
    y: tuple[Any, ...],
    session_id: int | None,
    num_batches: int,
    correct_by_batchsize: bool,
) -> None:
    """The checks of :func:`infonce_loss`, in the reference's order."""
    check_is_fitted(model, "n_features_")
    if validation.is_multi_session(X):
        raise NotImplementedError(
            f"Data invalid: score cannot be computed on multiple sessions, got {len(X)} sessions."
        )
    if y and isinstance(y[0], (list, tuple)) and y[0] and np.ndim(y[0][0]) >= 1:
        raise NotImplementedError(
            "Labels invalid: score cannot be computed on multiple sessions, got "
            f"{len(y[0])} sessions."
        )
    validation.check_positive_int("num_batches", num_batches)
    model.session_encoder(session_id)
    if correct_by_batchsize and model.batch_size is None:
        raise ValueError(
            "Batch size is None, please provide a model with a batch size to correct the InfoNCE."
        )
    _check_label_types(model, y, session_id)


def _check_label_types(model: CEBRA, y: tuple[Any, ...], session_id: int | None) -> None:
    """Labels must match the training labels in number, kind (float/int) and width."""
    fitted = model.label_types_
    if model.num_sessions_ is not None:
        index = session_id if isinstance(session_id, int) else 0
        fitted = [label_set[index] for label_set in fitted]
    if len(y) != len(fitted):
        raise ValueError(
            f"Number of index invalid: the model was trained with {len(fitted)} label array(s), "
            f"got {len(y)}."
        )
    for position, (label, (dtype, shape)) in enumerate(zip(y, fitted, strict=True)):
        array = validation.as_numpy(label)
        same_kind = (array.dtype.kind == "f") == (np.dtype(dtype).kind == "f")
        width = array.shape[1:] if array.ndim > 1 else ()
        fitted_width = tuple(shape[1:])
        if not same_kind or _squeezed(width) != _squeezed(fitted_width):
            raise ValueError(
                f"Labels invalid: must have the same number of features / type as in training; "
                f"y[{position}] has dtype {array.dtype} and shape {array.shape}, the model was "
                f"trained with dtype {np.dtype(dtype)} and shape {tuple(shape)}."
            )


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(size for size in shape if size != 1)


def iter_goodness_of_fit_score(
    model: CEBRA,
    X: Any,
    *y: Any,
    session_id: int | None = None,
    num_batches: int = 500,
) -> Generator[ScoringProgress, None, float]:
    """:func:`goodness_of_fit_score` as a generator that yields after every scoring batch.

    Yields the records of :func:`iter_infonce_loss` and returns (``StopIteration.value``) the
    value :func:`goodness_of_fit_score` returns for the same arguments.

    Yields
    ------
    ScoringProgress
        After each batch: batches done and ``num_batches``.

    Returns
    -------
    float
        Goodness of fit in bits.
    """
    loss = yield from iter_infonce_loss(
        model, X, *y, session_id=session_id, num_batches=num_batches
    )
    return infonce_to_goodness_of_fit(loss, model)


def goodness_of_fit_score(
    model: CEBRA,
    X: Any,
    *y: Any,
    session_id: int | None = None,
    num_batches: int = 500,
) -> float:
    """Goodness of fit in bits of a fitted model on (new) data.

    ``infonce_to_goodness_of_fit(infonce_loss(model, X, *y, ...), model)``;
    :func:`iter_goodness_of_fit_score` computes the same value step by step.

    Returns
    -------
    float
    """
    return run_to_end(
        iter_goodness_of_fit_score(model, X, *y, session_id=session_id, num_batches=num_batches)
    )


def full_batch_goodness_of_fit_score(model: CEBRA, X: Any, *y: Any) -> float:
    """Goodness of fit in bits of a full-batch model (``batch_size=None``) on (new) data.

    cebra defines none for such models (:func:`infonce_to_goodness_of_fit` refuses them); this
    scores them the way they train: one InfoNCE over all frames of ``X`` at once, each frame with
    all the others as negatives, so chance is log2 of the number of frames. Values compare
    full-batch models scored on the same frames, not mini-batch ones.

    Returns
    -------
    float
    """
    loss = infonce_loss(model, X, *y, num_batches=1)
    return float(infonce_to_goodness_of_fit(loss, batch_size=len(X), num_sessions=1))


def goodness_of_fit_history(model: CEBRA) -> np.ndarray:
    """Goodness of fit in bits of every training step (from ``state_dict_["log"]["total"]``).

    Returns
    -------
    np.ndarray
        One value per step.
    """
    history = np.asarray(model.state_dict_["log"]["total"], dtype=np.float64)
    return infonce_to_goodness_of_fit(history, model)


def infonce_to_goodness_of_fit(
    infonce: float | Iterable[float],
    model: CEBRA | None = None,
    batch_size: int | None = None,
    num_sessions: int | None = None,
) -> float | np.ndarray:
    """Convert InfoNCE loss values into goodness of fit in bits.

    Parameters
    ----------
    infonce : float or array-like
        Loss value(s).
    model : CEBRA, optional
        Fitted model providing the batch size and number of sessions.
    batch_size, num_sessions : int, optional
        Used (both required) when no model is given.

    Returns
    -------
    float or np.ndarray
        A float for a scalar input, else an array of the input's shape.

    Raises
    ------
    ValueError
        If a model is given together with batch_size/num_sessions, if the model was trained with
        ``batch_size=None``, or if neither a model nor both numbers are given.
    RuntimeError
        If the model is not fitted.
    """
    chance_terms = 1
    if model is not None:
        if batch_size is not None or num_sessions is not None:
            raise ValueError(
                "batch_size and num_sessions should not be provided if model is provided."
            )
        if not model.__sklearn_is_fitted__():
            raise RuntimeError("Fit the CEBRA model first.")
        if model.batch_size is None:
            raise ValueError(
                "Computing the goodness of fit is not yet supported for models trained on the "
                "full dataset (batchsize = None). "
            )
        batch_size = model.batch_size
        num_sessions = model.num_sessions_ or 1
        if model.solver_name_ == _HYBRID:
            chance_terms = 2
    elif batch_size is None or num_sessions is None:
        raise ValueError(
            f"batch_size ({batch_size}) and num_sessions ({num_sessions}) should be provided if "
            "model is not provided."
        )
    chance = chance_terms * np.log(batch_size * num_sessions)
    values = (chance - np.asarray(infonce, dtype=np.float64)) / np.log(2.0)
    if values.ndim == 0:
        return float(values)
    return values
